"""What the browser tests share: one `streamlit run` and one headless Chromium per test module,
and small readers of the page (Streamlit idle, the Epoch metric, the run id in the address bar).

conftest.py registers this module as a plugin, so every test module has the `server` and `browser`
fixtures without importing them. (One server for the whole session was tried: with both modules'
tests on it, a second browser's Train click timed out waiting for Pause; one server per module passes.)
"""
import os
import re
import sys
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from benchmarks.browser import CHROMIUM_ARGS, chromium, counter, streamlit_server
from conftest import ROOT

ARTIFACTS = ROOT / "test-artifacts"
GRACE_S = 2  # the server's DLLAB_SESSION_GRACE_S: a closed tab's jobs stop this long after
WAIT = 20_000  # ms for a page to show something (2 cores, a server training beside the browser)


@pytest.fixture(scope="module")
def server(request):
    try:
        with streamlit_server({"DLLAB_SESSION_GRACE_S": str(GRACE_S)},
                              on_exit=lambda out: _report_errors(request.module.__name__, out)) as url:
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


def _report_errors(module: str, out: str) -> None:
    """A server that logged an error says so on the terminal, past pytest's capture (shown for a
    failing test only): a download that never came once in a CI run left no other trace."""
    if "Traceback" in out or "Error" in out:
        sys.__stderr__.write(f"\n--- the server of {module} logged errors (its last 6000 characters) ---\n"
                             f"{out[-6000:]}\n---\n")


@pytest.fixture(scope="module")
def browser():
    path = chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing; .ci/run should have installed it")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(page, url):
    page.goto(url)
    page.wait_for_selector("[data-testid='stSidebar']", timeout=60_000)
    page.wait_for_selector("h1", timeout=60_000)
    idle(page)


def idle(page):
    """Wait until no script run is in flight (Streamlit shows its status widget while running)."""
    time.sleep(0.5)
    page.wait_for_selector("[data-testid='stStatusWidget']", state="detached", timeout=60_000)


def no_exception(page):
    assert page.locator("[data-testid='stException']").count() == 0


def epoch_metric(page):
    return counter(page, "Epoch")


def epoch(page) -> int:
    text = epoch_metric(page).inner_text()
    return int(re.search(r"Epoch\s+([\d,]+)", text).group(1).replace(",", ""))


def wait_epoch(page, at_least: int, timeout: float = 60) -> int:
    """Poll the live Epoch metric until it reaches `at_least`; fail with what it showed."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            seen = epoch(page)
        except Exception:  # the fragment is redrawing this instant  # noqa: BLE001
            seen = None
        if seen is not None and seen >= at_least:
            return seen
        time.sleep(0.25)
    pytest.fail(f"the Epoch metric did not reach {at_least} within {timeout}s (it showed {seen})")


def run_id(page) -> str | None:
    """The run id the address bar names (?run=...)."""
    return parse_qs(urlsplit(page.url).query).get("run", [None])[0]


@pytest.fixture
def new_page(browser):
    """Fresh browser contexts (each its own Streamlit session), closed after the test: their
    jobs stop after the grace period, so no test trains beside the next for long."""
    contexts = []

    def make():
        ctx = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


def open_lab(page, url):
    """Open a lab and wait for its live view (drawn after the notices and the controls), so the
    checks below see the whole page, not the part streamed so far."""
    open_page(page, url)
    epoch_metric(page).wait_for(timeout=60_000)
    idle(page)


def button(page, name):
    return page.get_by_role("button", name=name, exact=True)


def slide_to(page, slider, text: str, key: str = "ArrowRight", presses: int = 12):
    """Press `key` on a slider until it reads `text` (aria-valuetext: the value a select_slider
    shows, not its index), letting the page settle after each press. Four quick presses once moved
    the Playground's noise three steps in CI (15, not 20): a press that lands while a rerun redraws
    the slider is lost, so the value is read back after each one."""
    for _ in range(presses):
        if slider.get_attribute("aria-valuetext") == text:
            return
        slider.focus()
        slider.press(key)
        idle(page)
    raise AssertionError(f"the slider reads {slider.get_attribute('aria-valuetext')!r}, not {text!r}")


def press_train(page, tries: int = 3):
    """Press ▶ Train until the controls show ⏸ Pause. In one CI run in three, a copied run's page
    dropped the first click while it was still redrawing (Pause never came); a dropped click is
    pressed again, at most `tries` times, and the test still fails if training never starts."""
    _press_until(page, "▶ Train", "⏸ Pause", tries, "▶ Train never started the job")


def press_pause(page, tries: int = 3):
    """Press ⏸ Pause until the controls show ▶ Train: a copied run's page training live dropped a
    Pause click too, once in a CI run (▶ Train never came back); as press_train does."""
    _press_until(page, "⏸ Pause", "▶ Train", tries, "⏸ Pause never paused the job")


def _press_until(page, name: str, then: str, tries: int, why: str) -> None:
    for _ in range(tries):
        if button(page, then).count():
            return
        button(page, name).click(timeout=WAIT)
        try:
            button(page, then).wait_for(timeout=10_000)
            return
        except PlaywrightTimeout:
            idle(page)
    raise AssertionError(why)
