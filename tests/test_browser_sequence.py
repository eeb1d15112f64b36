"""The Sequence Lab's own seams in a real browser: a text file uploaded through Chromium's file
chooser (junk first: one sentence, no traceback), the language model trained on it writing
text, and a race of the three cells drawing the memory horizon, with a screenshot of each."""
import time

import pytest
from playwright.sync_api import expect

from browser_fixtures import ARTIFACTS, WAIT, button, idle, no_exception, open_lab

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
    button(page, "⏩ Epoch").click()
    idle(page)
    page.get_by_role("tab", name="✍️ Let it write").click()
    idle(page)
    button(page, "✍️ Write").click()
    idle(page)
    written = page.locator("[data-testid='stCode']").first.inner_text()
    assert len(written) > 100 and set(written) <= set(text.decode()) | {"¿", "\n"}
    no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "sequence-write.png"))


def test_a_race_draws_the_three_cells_and_the_memory_horizon(server, new_page):
    page = new_page()
    open_lab(page, f"{server}/sequence")
    page.get_by_role("tab", name="🏁 RNN vs LSTM vs GRU").click()
    idle(page)
    lag = page.locator("[data-testid='stSlider']").filter(has_text="Lag (steps back)").get_by_role("slider")
    lag.focus()  # Home takes it to 1, then 4 steps up to 5: a quick race
    page.keyboard.press("Home")
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    idle(page)
    page.get_by_role("button", name="🏁 Race all three (lag 5)").click()
    page.get_by_text("Memory horizon").wait_for(timeout=WAIT)
    deadline = time.monotonic() + 90
    while button(page, "⏸ Pause the race").count() and time.monotonic() < deadline:
        time.sleep(1)
    idle(page)
    no_exception(page)
    charts = page.locator("[data-testid='stVegaLiteChart']")
    assert charts.count() >= 2
    page.screenshot(path=str(ARTIFACTS / "sequence-race.png"), full_page=True)
