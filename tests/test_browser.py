"""The app in a real browser: headless Chromium (Debian's) against `streamlit run` on 127.0.0.1.

Screenshots of every page land in test-artifacts/ for a human to look at. The server and
browser fixtures (and the skip-locally, fail-under-CI rule for a missing Chromium) live in
browser_fixtures.py, shared with test_browser_runs.py.
"""
import re
import time

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from benchmarks.browser import counter
from browser_fixtures import ARTIFACTS
from browser_fixtures import epoch as _epoch
from browser_fixtures import idle as _idle
from browser_fixtures import no_exception as _no_exception
from browser_fixtures import open_page as _open
from ui.labs import LABS

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1500, "height": 2200})
    pg = ctx.new_page()
    yield pg
    ctx.close()


# Direct links first: a fresh server must route a shared link through router.py's navigation.
@pytest.mark.parametrize("key", sorted(LABS, key=lambda k: LABS[k].default))
def test_each_page_opens_and_is_screenshotted(server, page, key):
    lab = LABS[key]
    _open(page, f"{server}/{lab.url_path}")
    if lab.hidden:  # reached by its address only: the page opens, the navigation never lists it
        page.locator("h1").filter(has_text=lab.title).wait_for(timeout=30_000)
        assert page.locator("[data-testid='stSidebarNavLink']").filter(has_text=lab.title).count() == 0
    else:
        current = page.locator("[data-testid='stSidebarNavLink'][aria-current='page']")
        current.filter(has_text=lab.title).wait_for(timeout=30_000)  # the router opened this lab
    page.get_by_text("Compute").first.wait_for()  # the app's sidebar, not a bare page
    time.sleep(2)
    _no_exception(page)
    assert page.get_by_text("Page not found").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page-{key}.png"), full_page=True)


def test_training_in_the_playground_moves_the_counter_and_the_loss_chart(server, page):
    _open(page, f"{server}/playground?lesson=depth_spiral&stop=never")
    page.get_by_text("Epoch").first.wait_for(timeout=30_000)
    assert _epoch(page) == 0
    page.get_by_role("button", name="▶ Train", exact=True).click()
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline and len(set(seen)) < 3:
        seen.append(_epoch(page))
        time.sleep(0.5)
    if len(set(seen)) < 3:
        page.screenshot(path=str(ARTIFACTS / "FAILED-playground-training.png"), full_page=True)
    assert len(set(seen)) >= 3 and seen == sorted(seen), seen  # the counter moves, live
    page.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=30_000)  # loss curve drawn
    _no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "playground-training.png"), full_page=True)
    page.get_by_role("button", name="⏸ Pause", exact=True).click()


def _running_jobs(page) -> int:
    text = page.get_by_text("Training now on this server").first.inner_text()
    return int(re.search(r"server: (\d+) jobs? ", text).group(1))


def test_clicking_the_plane_adds_a_point(server, page):
    _open(page, f"{server}/playground")
    page.get_by_text("Your own points").first.click()
    chart = page.locator("[data-testid='stExpander']").filter(has_text="Your own points").locator(
        ".stPlotlyChart").first
    chart.wait_for(timeout=30_000)
    _idle(page)
    time.sleep(1)  # plotly attaches its click handlers after drawing
    box = chart.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    from playwright.sync_api import expect

    expect(page.get_by_role("combobox", name="Data", exact=True)).to_have_value("Your data (upload / clicks)",
                                                                               timeout=30_000)
    _no_exception(page)


def test_closing_the_tab_stops_its_training_after_the_grace_period(server, browser):
    trainer = browser.new_context().new_page()
    _open(trainer, f"{server}/playground?stop=never")
    trainer.get_by_role("button", name="▶ Train", exact=True).click()
    trainer.get_by_role("button", name="⏸ Pause", exact=True).wait_for(timeout=30_000)
    watcher = browser.new_context().new_page()
    _open(watcher, f"{server}/")
    assert _running_jobs(watcher) >= 1
    trainer.context.close()
    time.sleep(4)  # grace period is 2 s on this server
    watcher.reload()
    watcher.wait_for_selector("[data-testid='stSidebar']", timeout=60_000)
    assert _running_jobs(watcher) == 0
    watcher.context.close()


def test_the_cnn_lab_trains_in_the_browser(server, page):
    _open(page, f"{server}/cnn")
    page.get_by_role("button", name="▶ Train", exact=True).click()
    epoch = counter(page, "Epoch")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and re.search(r"Epoch\s+0 /", epoch.inner_text()):
        time.sleep(0.5)
    assert not re.search(r"Epoch\s+0 /", epoch.inner_text()), epoch.inner_text()
    page.get_by_text("First-layer filters").first.wait_for(timeout=30_000)
    _no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "cnn-training.png"), full_page=True)
    # The default 20 epochs can be over by now (the page then reruns and Pause turns into Train):
    # pause only while it still trains; either way the controls must come back to Train.
    pause = page.get_by_role("button", name="⏸ Pause", exact=True)
    if pause.count() and "finished" not in page.locator("[data-testid='stMain']").inner_text():
        try:
            pause.click(timeout=10_000)
        except PlaywrightTimeout:  # it finished while we clicked: the button left the page
            pass
    page.get_by_role("button", name="▶ Train", exact=True).wait_for(timeout=30_000)
    _no_exception(page)


def test_a_digit_drawn_on_the_canvas_reaches_the_network(server, page):
    """AppTest cannot draw: a real mouse stroke on the canvas component must become the input image."""
    _open(page, f"{server}/cnn")
    page.get_by_text("Draw", exact=True).first.click()
    _idle(page)
    canvas = page.locator("canvas").last
    canvas.wait_for(timeout=30_000)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    for i in range(1, 21):  # a vertical stroke: a "1"
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (0.15 + 0.035 * i))
    page.mouse.up()
    page.get_by_text("your drawing").first.wait_for(timeout=30_000)
    _idle(page)
    _no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "cnn-drawing.png"), full_page=True)


def test_the_explainability_lab_renders_a_grid_of_maps(server, page):
    _open(page, f"{server}/explain")
    timed = page.locator("[data-testid='stImage']").filter(has_text=re.compile(r"\d+ ms"))
    timed.nth(3 * 4 - 1).wait_for(timeout=90_000)  # 3 inputs × 4 default methods (first use trains the model)
    page.get_by_text("Can you trust it?").first.wait_for(timeout=60_000)
    _idle(page)
    _no_exception(page)
    assert timed.count() >= 3 * 4, timed.count()
    page.screenshot(path=str(ARTIFACTS / "explain.png"), full_page=True)


def test_a_labs_settings_survive_a_visit_to_another_page(server, page):
    """Streamlit drops a widget's value when a run does not draw it; the labs keep theirs."""
    _open(page, f"{server}/cnn")
    images = page.get_by_role("combobox", name="Images", exact=True)
    images.click()
    page.get_by_role("option", name="Shapes (offline, generated)").click()
    _idle(page)
    page.get_by_role("link", name="Optimizers").click()
    page.get_by_role("heading", name="Optimizers").first.wait_for(timeout=30_000)
    _idle(page)
    page.get_by_role("link", name="CNN Lab").click()
    page.get_by_role("button", name="▶ Train", exact=True).wait_for(timeout=60_000)
    _idle(page)
    from playwright.sync_api import expect

    expect(page.get_by_role("combobox", name="Images", exact=True)).to_have_value("Shapes (offline, generated)")
    _no_exception(page)
