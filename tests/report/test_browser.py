"""The report page in Debian's Chromium: offline, no console errors, every chart drawn."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Request

from cloudbench.report import build_report
from tests.dashboard.test_browser import browser  # noqa: F401  (the Chromium fixture)
from tests.report.synth import random_run
from tests.report.synth_runs import speed_run

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / ".screenshots"


def test_report_page_offline(tmp_path: Path, browser: Browser) -> None:  # noqa: F811
    run = random_run(
        tmp_path / "results",
        types=3,
        tasks=4,
        benchmarks=3,
        executables=("interp", "yjit"),
        machines_per_type=2,
    )
    prices = tmp_path / "prices.csv"
    prices.write_text(
        "provider,instance_type,region,usd_per_hour\n"
        "aws,c0.large,,0.1\naws,c1.large,,0.12\naws,c2.large,,0.2\n"
    )
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
        drawn = page.evaluate(
            "document.querySelectorAll('.chart .main-svg').length > 0 && "
            "[...document.querySelectorAll('.chart')].filter("
            "c => c.querySelector('.main-svg')).length"
        )
        # forest, pareto, plus a strip and a warm-up chart per benchmark.
        assert count == 2 + 2 * 3 and drawn == count, (count, drawn)
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


WIDEST = """[...document.querySelectorAll('body *')].reduce((w, e) => {
  const r = e.getBoundingClientRect();
  return r.width > 0 && r.right > w.right ? {right: r.right, tag: e.tagName, id: e.id,
    cls: e.className.baseVal === undefined ? e.className : ''} : w;
}, {right: 0})"""


def _first_screen(browser: Browser, url: str) -> tuple[str, dict[str, object]]:  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(url)
    page.wait_for_function("document.body.dataset.charts !== undefined")
    answer = page.locator("#answer")
    box = answer.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 800, box  # on the first screen
    for summary in page.locator("details > summary").all():  # unfolded, still no wider
        summary.click()
    widest = page.evaluate(WIDEST)
    text = answer.inner_text()
    words = set(page.inner_text("body").replace(",", " ").split())
    assert not words & {"None", "True", "False", "[]", "{}", "nan"}, words  # no Python reprs
    page.close()
    return text, widest


def test_first_screen_answers(tmp_path: Path, browser: Browser) -> None:  # noqa: F811
    """The truth is known: fast is fastest, cheap best per dollar; c7g and c8g are the same."""
    run = speed_run(tmp_path, 1, {"cheap": 1.0, "fast": 1.5, "mid": 1.1})
    report = build_report(
        [run],
        offline=True,
        config_prices={"cheap.large": 0.05, "fast.large": 0.2, "mid.large": 0.15},
    )
    text, widest = _first_screen(browser, report.index.resolve().as_uri())
    assert "Fastest: fast" in text and "Best per dollar: cheap" in text, text
    assert float(widest["right"]) <= 1280, widest  # type: ignore[arg-type]
    tied = speed_run(
        tmp_path, 2, {"c7g.medium": 1.0, "c8g.medium": 1.01}, noise=0.05, machine_noise=0.05
    )
    report = build_report([tied], offline=True)
    text, widest = _first_screen(browser, report.index.resolve().as_uri())
    assert "cannot be told apart with 3 machines each" in text, text
    assert float(widest["right"]) <= 1280, widest  # type: ignore[arg-type]


def test_tables_sort_axes_read_and_colour_means_a_difference(
    tmp_path: Path,
    browser: Browser,  # noqa: F811
) -> None:
    run = speed_run(tmp_path, 1, {"cheap": 1.0, "fast": 1.5, "mid": 1.02}, noise=0.04)
    report = build_report([run], offline=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(report.index.resolve().as_uri())
    page.wait_for_function("document.body.dataset.charts !== undefined")
    first_type = "#ranking + .wrap tbody tr:first-child td:nth-child(2)"
    header = page.locator("#ranking + .wrap th", has_text="speedup")
    header.click()  # ascending
    assert page.locator(first_type).inner_text().startswith("cheap")
    header.click()  # descending
    assert page.locator(first_type).inner_text().startswith("fast")
    ticks = page.locator("#forest .xtick text").all_text_contents()
    assert ticks and all(t.endswith("x") for t in ticks), ticks  # "0.9x", never "6 7 8 9"
    cells = page.evaluate("""[...document.querySelectorAll('#grid td.n')].map(
        td => [td.className, td.querySelector('.small').textContent])""")
    assert len(cells) == 3 * 6, cells
    coloured = 0
    # The baseline (cheap) against itself is the reference: 1 without an interval, never
    # coloured (issue 24: no "[1.00, 1.00]" interval for the baseline).
    reference = [(c, i) for c, i in cells if i == "reference"]
    assert len(reference) == 6 and all("reference" in c for c, _ in reference), reference
    for classes, interval in (c for c in cells if c[1] != "reference"):
        low, high = (float(v) for v in interval.strip("[]").split(", "))
        differs = low > 1 or high < 1
        assert ("faster" in classes or "slower" in classes) == differs, (classes, interval)
        coloured += differs
    assert 0 < coloured < len(cells)  # fast differs from the baseline, mid mostly not


HOSTILE = ["<!--<script>", "</script><script>window.pwned=1</script>", "a&b>c"]


def test_runner_text_cannot_break_the_charts(tmp_path: Path, browser: Browser) -> None:  # noqa: F811
    """Benchmark names come from runners' output.json: `<!--<script>` in one made the
    HTML parser swallow the figures' <script> element, and no chart rendered."""
    run = random_run(
        tmp_path / "results",
        types=2,
        tasks=3,
        benchmarks=3,
        names=HOSTILE,
        executables=("yjit",),
        machines_per_type=1,
    )
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
    drawn = page.evaluate(
        "[...document.querySelectorAll('.chart')].filter(c => c.querySelector('.main-svg')).length"
    )
    assert count > 0 and drawn == count, (count, drawn)
    assert page.evaluate("window.pwned") is None
    assert not errors, errors
    page.close()


def test_matrix_section_fits_and_opens(tmp_path: Path, browser: Browser) -> None:  # noqa: F811
    """A two-Ruby, five-column run: the matrix section fits a 1,280 px and a phone screen,
    and every column's ranking opens with a click."""
    from tests.report.test_matrix_report import TIMES
    from tests.report.test_matrix_report import _run as matrix_run

    report = build_report([matrix_run(tmp_path)], offline=True)
    for width in (1280, 390):
        page = browser.new_page(viewport={"width": width, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))  # noqa: B023
        page.goto(report.index.resolve().as_uri())
        assert page.locator("#matrix-speedups tbody tr").count() == 10
        rankings = page.locator("#matrix-rankings")
        assert not rankings.locator("table").is_visible()
        rankings.locator("summary").click()
        assert rankings.locator("table").is_visible()
        assert rankings.locator("thead th").count() == 1 + len(TIMES)
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width + 1, f"page wider than the {width}px screen: {overflow}"
        assert not errors, errors
        page.close()
