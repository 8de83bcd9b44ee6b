// Live updates: re-fetch the server-rendered run fragment and swap it in. No build step.
(function () {
  "use strict";

  // Delegated, so forms inside a freshly swapped fragment are covered too.
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  var picker = document.getElementById("run-select");
  if (picker) {
    picker.addEventListener("change", function () { picker.form.submit(); });
  }

  var live = document.getElementById("live");
  var status = document.getElementById("live-status");
  if (!live) {
    return;
  }
  var interval = parseInt(live.getAttribute("data-interval"), 10) || 3000;

  function isFinal() {
    var run = live.querySelector("[data-final]");
    return run !== null && run.getAttribute("data-final") === "1";
  }

  function schedule() {
    if (!isFinal()) {
      window.setTimeout(poll, interval);
    }
  }

  function poll() {
    if (document.hidden) {
      schedule();
      return;
    }
    fetch(live.getAttribute("data-src"), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) {
          window.location.assign("/login");
          throw new Error("logged out");
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        status.textContent = "";
      })
      .catch(function (err) {
        status.textContent = "Live update failed (" + err.message + "); retrying.";
      })
      .then(schedule);
  }

  schedule();
})();
