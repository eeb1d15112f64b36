"""The Sequence Lab's own seams in a real browser: a text file uploaded through Chromium's file
chooser (junk first: one sentence, no traceback), the language model trained on it writing
text, a race of the three cells drawing the memory horizon (AppTest runs one to its end), a
click on the unrolled network, and the teacher's link in a fresh context."""
import time

import pytest
from playwright.sync_api import expect

from browser_fixtures import ARTIFACTS, WAIT, button, idle, no_exception, open_lab, slide_to

pytestmark = pytest.mark.browser


def _pick(page, label: str, option: str):
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    idle(page)


def _upload(page, name: str, data: bytes):
    page.locator("[data-testid='stFileUploader']").filter(has_text="Your file").locator(
        "input[type='file']").set_input_files(files=[{"name": name, "mimeType": "text/plain", "buffer": data}])
    idle(page)


def test_an_uploaded_text_trains_a_language_model_that_writes(server, new_page):
    page = new_page()
    open_lab(page, f"{server}/sequence")
    _pick(page, "Task", "Your text (next character)")
    page.get_by_text("Upload a file to train on it").wait_for(timeout=WAIT)
    _upload(page, "junk.txt", bytes(range(256)) * 4)
    page.get_by_text("Could not use junk.txt: That file is not text").wait_for(timeout=WAIT)
    no_exception(page)
    text = ("the cat sat on the mat and the dog sat on the log. " * 40).encode()
    _upload(page, "cats.txt", text)
    page.get_by_text("Loaded cats.txt").first.wait_for(timeout=WAIT)
    expect(page.get_by_text("Your file cats.txt").first).to_be_attached()
    page.get_by_role("tab", name="✍️ Let it write").click()  # untrained, it still writes only the text's letters
    idle(page)
    button(page, "✍️ Write").click()
    idle(page)
    written = page.locator("[data-testid='stCode']").filter(has_text="the").first.inner_text()
    assert len(written) > 100 and set(written) <= set(text.decode()) | {"¿", "\n"}
    no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "sequence-write.png"))


def test_a_race_draws_the_three_cells_and_the_memory_horizon(server, new_page):
    page = new_page()
    open_lab(page, f"{server}/sequence")
    page.get_by_role("tab", name="🏁 RNN vs LSTM vs GRU").click()
    idle(page)
    lag = page.locator("[data-testid='stSlider']").filter(has_text="Lag (steps back)").get_by_role("slider")
    lag.focus()  # Home takes it to 1, then up to 5: a quick race
    lag.press("Home")
    idle(page)
    slide_to(page, lag, "5")
    page.get_by_role("button", name="🏁 Race all three (lag 5)").click()
    page.get_by_text("Memory horizon").wait_for(timeout=WAIT)  # a point per cell once each has an epoch
    page.get_by_text("How far back each cell's learning signal reaches").wait_for(timeout=WAIT)
    no_exception(page)
    charts = page.locator("[data-testid='stVegaLiteChart']")
    assert charts.count() >= 2
    page.screenshot(path=str(ARTIFACTS / "sequence-race.png"), full_page=True)


def _click_a_step(page) -> None:
    """Click a cell of the unrolled diagram (an SVG path Vega labels with its step); the step it
    selects everywhere (the slider, the caption, the window). The cell is found by its label,
    not by where the chart should be: in one CI run a click at computed coordinates landed off
    the cells three times in a row."""
    slider = page.locator("[data-testid='stSlider']").filter(has_text="Time step")
    slider.wait_for(timeout=WAIT)

    def selected() -> str:
        return slider.locator("[data-testid='stSliderThumbValue']").inner_text().strip()

    assert selected() == "101"  # the last step, where the answer is read
    diagram = page.locator("[data-testid='stVegaLiteChart']").filter(has_text="Unrolled: steps 78–101")
    cell = diagram.locator("g.mark-rect path[aria-label*='step: 80;']")  # near the window's left edge
    for _ in range(3):  # a click while the chart is redrawn is lost: click again, at most 3 times
        cell.click(timeout=WAIT)
        deadline = time.monotonic() + 10
        while selected() == "101" and time.monotonic() < deadline:
            time.sleep(0.25)
        if selected() != "101":
            break
    idle(page)
    assert selected() == "80"
    expect(page.locator("[data-testid='stVegaLiteChart']").filter(has_text="Unrolled: steps 68–91")
           ).to_be_attached()  # the window recentred on the selection
    expect(page.get_by_text("Step 80 (").first).to_be_attached()  # the caption follows the selection
    no_exception(page)


def test_a_click_selects_a_step_and_the_teachers_link_opens_the_setup_elsewhere(server, new_page):
    page = new_page()
    open_lab(page, f"{server}/sequence")
    _click_a_step(page)
    page.locator("[data-testid='stRadio']").filter(has_text="Cell").get_by_text("GRU", exact=True).click()
    idle(page)
    _pick(page, "Task", "Bracket depth at every step")
    page.get_by_text("🧑‍🏫 For teachers: share this exact setup").click()
    idle(page)
    link = page.locator("[data-testid='stCode']").filter(has_text="seq_cell=GRU").first.inner_text().strip()
    assert "run=" not in link
    other = new_page()  # a student: a new browser context, a new session
    open_lab(other, link)
    expect(other.get_by_role("combobox", name="Task", exact=True)).to_have_value("Bracket depth at every step")
    expect(other.locator("[data-testid='stRadio']").filter(has_text="Cell").get_by_role("radio", name="GRU")
           ).to_be_checked()
    no_exception(other)
