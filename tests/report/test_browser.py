"""The report page in Debian's Chromium: offline, no console errors, every chart drawn."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Request

from cloudbench.report import build_report
from tests.dashboard.test_browser import browser  # noqa: F401  (the Chromium fixture)
from tests.report.synth import random_run

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / ".screenshots"


def test_report_page_offline(tmp_path: Path, browser: Browser) -> None:  # noqa: F811
    run = random_run(tmp_path / "results", types=3, tasks=4, benchmarks=3,
                     executables=("interp", "yjit"), machines_per_type=2)  # fmt: skip
    prices = tmp_path / "prices.csv"
    prices.write_text("provider,instance_type,region,usd_per_hour\n"
                      "aws,c0.large,,0.1\naws,c1.large,,0.12\naws,c2.large,,0.2\n")  # fmt: skip
    report = build_report([run], prices_file=prices, offline=True)
    url = report.index.resolve().as_uri()
    SHOTS.mkdir(exist_ok=True)
    for width in (1280, 390):
        page = browser.new_page(viewport={"width": width, "height": 900})
        errors: list[str] = []
        outside: list[str] = []
        page.on("console", lambda m: _error(m, errors))  # noqa: B023
        page.on("pageerror", lambda e: errors.append(str(e)))  # noqa: B023
        page.on("request", lambda r: _outside(r, url, outside))  # noqa: B023
        page.goto(url)
        page.wait_for_function("document.body.dataset.charts !== undefined")
        count = int(page.evaluate("document.body.dataset.charts"))
        drawn = page.evaluate("document.querySelectorAll('.chart .main-svg').length > 0 && "
                              "[...document.querySelectorAll('.chart')].filter("
                              "c => c.querySelector('.main-svg')).length")  # fmt: skip
        # forest, heatmap, pareto, plus a strip and a warm-up chart per benchmark.
        assert count == 3 + 2 * 3 and drawn == count, (count, drawn)
        assert page.locator("#ranking + .wrap tr").count() == 4
        assert "no price" not in page.locator("#ranking + .wrap").inner_text()
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width + 1, f"page wider than the {width}px screen: {overflow}"
        page.screenshot(path=str(SHOTS / f"report-{width}.png"), full_page=True)
        assert not errors, errors
        assert not outside, outside
        page.close()


def _error(message: ConsoleMessage, errors: list[str]) -> None:
    if message.type == "error":
        errors.append(message.text)


def _outside(request: Request, url: str, outside: list[str]) -> None:
    if request.url != url and not request.url.startswith("data:"):
        outside.append(request.url)


HOSTILE = ["<!--<script>", "</script><script>window.pwned=1</script>", "a&b>c"]


def test_runner_text_cannot_break_the_charts(tmp_path: Path, browser: Browser) -> None:  # noqa: F811
    """Benchmark names come from runners' output.json: `<!--<script>` in one made the
    HTML parser swallow the figures' <script> element, and no chart rendered."""
    run = random_run(tmp_path / "results", types=2, tasks=3, benchmarks=3, names=HOSTILE,
                     executables=("yjit",), machines_per_type=1)  # fmt: skip
    report = build_report([run], offline=True)
    html = report.index.read_text()
    figures = html.split('<script id="figures" type="application/json">', 1)[1]
    figures = figures.split("</script>", 1)[0]
    assert "<" not in figures and ">" not in figures and "&" not in figures
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(report.index.resolve().as_uri())
    page.wait_for_function("document.body.dataset.charts !== undefined")
    count = int(page.evaluate("document.body.dataset.charts"))
    drawn = page.evaluate("[...document.querySelectorAll('.chart')].filter("
                          "c => c.querySelector('.main-svg')).length")  # fmt: skip
    assert count > 0 and drawn == count, (count, drawn)
    assert page.evaluate("window.pwned") is None
    assert not errors, errors
    page.close()
