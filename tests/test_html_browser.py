"""The results page in a real browser (issue #31): headless Chromium + chromedriver from Debian
(`make install-browser`), driven by selenium (PyPI). Opened from file://, it is sorted, filtered and
hovered, and nothing is requested from the network while it renders (Chromium's performance log, and
the page's CSP ``default-src 'none'`` would report any attempt in the console log).

Screenshots are kept as artefacts in ``$LODABENCH_ARTEFACTS`` when set (e.g. results/artefacts), else in
this session's pytest temporary directory (``html_artefacts*``; pytest keeps the last three sessions').
Without Chromium, chromedriver or selenium the tests skip and say which is missing; under CI=true
(CI runs `make install-browser`) their absence fails, as a missing ../shared does (conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import IN_CI
from lodabench.results import html_page
from lodabench.results.runs import load_runs
from test_html_page import _run

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def _need_browser() -> tuple[str, str]:
    chrome = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
        missing = []
    except ImportError:
        missing = ["selenium (pip install -e '.[dev]')"]
    missing += [] if chrome else ["chromium (make install-browser)"]
    missing += [] if driver else ["chromedriver (make install-browser: Debian's chromium-driver)"]
    if missing:
        msg = f"not found: {', '.join(missing)}"
        if IN_CI:
            pytest.fail(f"{msg}; under CI=true the browser tests must run")
        pytest.skip(msg)
    return chrome, driver


@pytest.fixture(scope="module")
def driver():
    chrome, chromedriver = _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1800",
                "--disable-background-networking", "--disable-component-update"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    d = webdriver.Chrome(options=opts, service=Service(chromedriver))
    yield d
    d.quit()


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory) -> Path:
    where = os.environ.get("LODABENCH_ARTEFACTS")
    path = Path(where) if where else tmp_path_factory.mktemp("html_artefacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _open(driver, path: Path) -> list[str]:
    """Load the page from file:// and return every URL the browser requested while rendering."""
    driver.get_log("performance")   # drop what came before
    driver.get(path.resolve().as_uri())
    events = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
    return [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]


def _offline(driver, path: Path) -> None:
    urls = _open(driver, path)
    assert urls and all(u.startswith(("file://", "data:")) for u in urls), urls
    blocked = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not blocked, blocked


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("html_runs") / "runs"
    for seed, (a, b) in zip((110, 111, 112), ((0.50, 0.55), (0.52, 0.57), (0.49, 0.58))):
        _run(root, "loda", seed, a, 1000, {"train_s": 10.0 + seed % 3, "adapter_bytes": 4000,
                                           "peak_memory_mb": {"train": 800}})
        _run(root, "lora", seed, b, 4000, {"train_s": 12.0, "adapter_bytes": 16000, "peak_memory_mb": {"train": 820}})
    out = root.parent / "page.html"
    html_page.write_tables_page(out, load_runs(root), root, None)
    return out


def _visible_rows(driver):
    return [r for r in driver.find_elements("css selector", "#cells tbody tr") if r.is_displayed()]


def test_offline_sort_filter_hover(driver, page: Path, artefacts: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    _offline(driver, page)
    heads = driver.find_elements("css selector", "#cells thead th")
    col = [h.text for h in heads].index("ours")
    heads[col].click()
    cells = [r.find_elements("tag name", "td")[col].get_attribute("data-v") for r in _visible_rows(driver)]
    numbers = [float(v) for v in cells if v]
    assert numbers == sorted(numbers) and len(numbers) == 2
    assert cells[:2] == [c for c in cells if c] and heads[col].get_attribute("aria-sort") == "ascending"
    heads[col].click()
    numbers = [float(v) for v in (r.find_elements("tag name", "td")[col].get_attribute("data-v")
                                  for r in _visible_rows(driver)) if v]
    assert numbers == sorted(numbers, reverse=True)

    Select(driver.find_element("css selector", ".filters select[name=metric]")).select_by_value("BLEU")
    assert len(_visible_rows(driver)) == 2
    Select(driver.find_element("css selector", ".filters select[name=method]")).select_by_value("lora")
    rows = _visible_rows(driver)
    assert len(rows) == 1 and rows[0].get_attribute("data-method") == "lora"
    assert driver.find_element("css selector", ".filters .count").text == "1 of 10 rows"
    Select(driver.find_element("css selector", ".filters select[name=ours]")).select_by_value("none")
    assert not _visible_rows(driver)       # every row of these runs links a run
    Select(driver.find_element("css selector", ".filters select[name=ours]")).select_by_value("")

    tip = driver.find_element("id", "tip")
    assert not tip.is_displayed()
    mark = driver.find_element("css selector", '#pareto svg[data-axis="params"] circle.mark')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", mark)
    ActionChains(driver).move_to_element(mark).perform()
    assert tip.is_displayed() and "seed 11" in tip.text
    driver.save_screenshot(str(artefacts / "html_page_hover.png"))
    mark.click()   # opens the run's provenance
    run = driver.find_element("id", mark.get_attribute("data-run"))
    assert run.get_attribute("open") is not None and "python -m lodabench" in run.text


@pytest.mark.slow
def test_loda_report_in_the_browser(driver, tmp_path: Path, artefacts: Path) -> None:
    """The bar: `make report PAPER=loda`'s page renders offline with >= 20 rows (LoDA among them), a mark
    per method and seed of the committed grid and an item-level comparison."""
    from lodabench.results import reports

    paths = reports.build("loda", tmp_path, tmp_path / "no-runs", reports.DEFAULT_GRIDS,  # the page's
                          reports.REPO_ROOT / "results" / "paper", paired=None, attribution=False)  # own parts
    _offline(driver, paths["html"])
    rows = driver.find_elements("css selector", "#published-vs-ours tbody tr")
    assert len(rows) >= 20 and any(r.get_attribute("data-method") == "loda" for r in rows)
    from selenium.webdriver.support.ui import Select
    Select(driver.find_element("css selector", ".filters select[name=ours]")).select_by_value("run")
    shown = _visible_rows(driver)
    assert 0 < len(shown) < len(rows)      # the grid's cells, not the paper setting's missing ones
    assert all(r.find_elements("css selector", 'a[href^="#run-"]') for r in shown)
    Select(driver.find_element("css selector", ".filters select[name=ours]")).select_by_value("")
    marks = driver.find_elements("css selector", '#pareto .panel[data-dataset="e2e"] svg[data-axis="params"] circle')
    assert len(marks) >= 18
    assert driver.find_elements("css selector", '#items .cmp[data-a="loda"] tr.item')
    for sid in ("published-vs-ours", "pareto", "items"):
        driver.execute_script("arguments[0].scrollIntoView()", driver.find_element("id", sid))
        driver.save_screenshot(str(artefacts / f"loda_{sid}.png"))
