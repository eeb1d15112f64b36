"""A lab's run in a real browser: model files out and back in, a visit to another lab, a reload,
someone else opening the address, and the teacher's share link (ui/shell.py, dl_core/runs.py).

Headless Chromium against one `streamlit run` for the module (closed tabs stop their jobs
after 2 s). Each test changes settings away from their defaults first, so a run that came
back rebuilt from defaults, or restarted, shows.
"""
import re
import time

import pytest
import torch
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from benchmarks.browser import counter
from browser_fixtures import (
    ARTIFACTS,
    GRACE_S,
    WAIT,
    epoch,
    epoch_metric,
    idle,
    no_exception,
    run_id,
    slide_to,
    wait_epoch,
)
from browser_fixtures import button as _button
from browser_fixtures import open_lab as _open_lab
from browser_fixtures import press_pause as _press_pause
from browser_fixtures import press_train as _press_train
from conftest import ROOT
from dl_core.checkpoint import load_bytes
from ui.labs import LABS

pytestmark = pytest.mark.browser
LIVE_LABS = ["playground", "cnn", "gradflow", "sequence"]  # the training labs whose job trains on a thread, live
LOADING_LABS = ["playground", "cnn", "sequence"]  # ... and those with a "Load a saved model" uploader


def test_the_lists_cover_every_lab_with_a_run():
    """A new lab on the shell joins these tests (or this fails)."""
    sources = {p.stem: p.read_text() for p in (ROOT / "labs").glob("*.py")}
    assert {k for k, src in sources.items() if "Shell(" in src} == set(LIVE_LABS)
    assert {k for k, src in sources.items() if "model_panel(" in src} == set(LOADING_LABS)


def _status(page) -> str:
    """The status line, or the box that says how a run ended (its stop: "Finished 300 epochs.")."""
    return page.get_by_text(re.compile(r"^(Status: |Finished |Goal reached)")).first.inner_text().lower()


def _max_epochs(page) -> int | None:
    """The CNN Lab's "Epoch 3 / 60": the run's max epochs (None where the metric has no maximum)."""
    m = re.search(r"/\s*([\d,]+)", epoch_metric(page).inner_text())
    return int(m.group(1).replace(",", "")) if m else None


def _errors(page) -> list[str]:
    return [e.inner_text() for e in page.locator("[data-testid='stAlertContentError']").all()]


def _nav(page, title):
    page.locator("[data-testid='stSidebarNavLink']").filter(has_text=title).first.click()


# ---------- settings changed away from their defaults, and how each lab shows them ----------
def _change_settings(page, lab):
    if lab == "playground":
        page.get_by_role("combobox", name="Learning rate", exact=True).click()
        page.get_by_role("option", name="0.01", exact=True).click()
    elif lab == "cnn":
        epochs = page.get_by_role("spinbutton", name="Epochs", exact=True)
        epochs.fill("150")  # more than the module's tests take, at full speed
        epochs.press("Enter")
        idle(page)
        slide_to(page, page.get_by_role("slider", name="Learning rate").first, "0.01")  # from 0.003
    elif lab == "gradflow":
        _button(page, "🔧 Fix 1: ReLU + He init").click()  # sigmoid, default init → ReLU, He init
    elif lab == "sequence":
        page.get_by_text("⚙️ More settings").first.click()  # the finer settings are folded away
        slide_to(page, page.get_by_role("slider", name="Learning rate").first, "0.03")  # from 0.01
    idle(page)
    _check_settings(page, lab)


def _check_settings(page, lab):
    if lab == "playground":
        expect(page.get_by_role("combobox", name="Learning rate", exact=True)).to_have_value("0.01", timeout=WAIT)
    elif lab == "cnn":
        expect(page.get_by_role("spinbutton", name="Epochs", exact=True)).to_have_value("150", timeout=WAIT)
        lr = page.get_by_role("slider", name="Learning rate").first
        expect(lr).to_have_attribute("aria-valuetext", "0.01", timeout=WAIT)
    elif lab == "gradflow":
        expect(page.get_by_role("combobox", name="Activation", exact=True)).to_have_value("ReLU", timeout=WAIT)
        expect(page.get_by_role("combobox", name="Initialisation", exact=True)).to_have_value(
            "Kaiming/He (for ReLU)", timeout=WAIT)
    elif lab == "sequence":  # after a reload the fold is closed again, and the value is in it
        more = page.locator("[data-testid='stExpander']").filter(has_text="⚙️ More settings")
        if more.locator("details").first.get_attribute("open") is None:
            more.locator("summary").first.click()
        expect(page.get_by_role("slider", name="Learning rate").first).to_have_attribute("aria-valuetext", "0.03",
                                                                                         timeout=WAIT)
    if lab == "cnn":  # the job trains to the epochs set, not the default 20 ("Epoch 53 / 20")
        assert _max_epochs(page) == 150, epoch_metric(page).inner_text()


def _train_to(page, at_least=2) -> int:
    _button(page, "▶ Train").click()
    return wait_epoch(page, at_least)


def _still_training(page, before: int) -> int:
    """The same job, on: its count did not restart, and it trains on (or has just finished).
    Returns the count it showed last."""
    now = wait_epoch(page, before, timeout=30)
    status = _status(page)
    assert "training" in status or "finished" in status, status
    deadline = time.monotonic() + 30
    while "training" in status and time.monotonic() < deadline:  # and it moves
        if epoch(page) > now:
            return epoch(page)
        time.sleep(0.25)
        status = _status(page)
    assert "finished" in status, f"the count stayed at {now}: {status}"
    return now


# ---------- 1. model files out and back in ----------
def _expander(page):
    return page.locator("[data-testid='stExpander']").filter(has_text="📦 Model & code").first


def _download(page, name, tries: int = 3) -> tuple[bytes, str]:
    """Click a download button and read the file. Once in a full run, a click right after an epoch
    started no download in 30 s (the page was redrawing): a dropped click is pressed again, at
    most `tries` times, and the test still fails if no file ever comes."""
    for attempt in range(tries):
        idle(page)
        try:
            with page.expect_download(timeout=20_000) as info:
                _expander(page).get_by_role("button", name=name).click()
            break
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise
    download = info.value
    with open(download.path(), "rb") as f:
        return f.read(), download.suggested_filename


def _one_epoch(page, at_least, tries: int = 3):
    """⏩ Epoch until the Epoch metric reaches `at_least`. Once in a full run the click was dropped
    while the page redrew (the metric stayed at 0 for 60 s; alone the test passed): a dropped
    click is pressed again, at most `tries` times, and the test still fails if no epoch ends."""
    for attempt in range(tries):
        expect(_button(page, "⏩ Epoch")).to_be_enabled(timeout=WAIT)
        _button(page, "⏩ Epoch").click()
        try:
            wait_epoch(page, at_least, timeout=20)
            break
        except pytest.fail.Exception:
            if attempt == tries - 1:
                raise
            idle(page)
    expect(_button(page, "⏩ Epoch")).to_be_enabled(timeout=WAIT)  # paused again, the buttons redrawn
    idle(page)


def _a_few_steps(page, n=3):
    """⏭ Step n times. A step often ends before the page has drawn its live view: the buttons
    must still come back (they stayed greyed out, under ⏸ Pause, until the next click)."""
    for _ in range(n):
        _button(page, "⏭ Step").click(timeout=WAIT)
        expect(_button(page, "▶ Train")).to_be_visible(timeout=10_000)
        expect(_button(page, "⏭ Step")).to_be_enabled(timeout=10_000)


def _outputs(model, spec, seed=0):
    gen = torch.Generator().manual_seed(seed)
    first = spec.layers[0]
    x = (torch.randint(1, first.p["vocab"], (32, *spec.input_shape), generator=gen) if first.kind == "embedding"
         else torch.randn(32, *spec.input_shape, generator=gen))  # token numbers for a sequence model
    model.eval()
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("lab", LOADING_LABS)
def test_a_downloaded_model_loads_back_and_downloads_the_same(server, new_page, lab):
    page = new_page()
    _open_lab(page, f"{server}/{LABS[lab].url_path}")
    _a_few_steps(page)
    _one_epoch(page, 1)
    _expander(page).locator("summary").click()
    idle(page)

    data, name = _download(page, "⬇ Trained model (.pt)")
    spec, model, meta = load_bytes(data, lab=lab)
    assert meta["epoch"] >= 1 and sum(p.numel() for p in model.parameters()) > 0

    code, code_name = _download(page, "⬇ PyTorch code (.py)")
    assert code_name.endswith(".py")
    compile(code.decode(), code_name, "exec")

    _one_epoch(page, 2)  # the network moves on, so loading the file must really put its weights back
    moved = load_bytes(_download(page, "⬇ Trained model (.pt)")[0])[1]
    assert not torch.equal(_outputs(moved, spec), _outputs(model, spec))

    _expander(page).locator("input[type='file']").set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}])
    page.get_by_text(f"Loaded {name}").first.wait_for(timeout=30_000)
    idle(page)
    assert not _errors(page)
    no_exception(page)
    # The notice above must not shift the page: the panel the learner was working in stays open.
    expect(_expander(page).locator("details").first).to_have_attribute("open", "", timeout=WAIT)

    again, _ = _download(page, "⬇ Trained model (.pt)")
    spec2, model2, _ = load_bytes(again, lab=lab)
    assert spec2 == spec
    first, second = model.state_dict(), model2.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    for seed in (0, 1):
        assert torch.equal(_outputs(model2, spec, seed), _outputs(model, spec, seed))


# ---------- 2 and 3. a visit to another lab, then a reload, while training ----------
@pytest.mark.parametrize("lab", LIVE_LABS)
def test_a_run_outlives_a_visit_to_another_lab_and_a_reload(server, new_page, lab):
    """One learner's story (one page load for both, to keep the module quick), mid-training: with
    no stop (a Playground run reaches the default 300 epochs in seconds)."""
    page = new_page()
    _open_lab(page, f"{server}/{LABS[lab].url_path}?stop=never")
    _change_settings(page, lab)
    rid = run_id(page)
    assert rid
    before = _train_to(page)

    # Another lab through the sidebar, a moment there (longer than the grace period), and back.
    _nav(page, LABS["optimizers"].title)
    page.get_by_role("heading", name="Optimizers").first.wait_for(timeout=30_000)
    assert epoch_metric(page).count() == 0  # really on the other lab
    time.sleep(GRACE_S + 0.5)
    _nav(page, LABS[lab].title)
    epoch_metric(page).wait_for(timeout=60_000)
    idle(page)
    assert run_id(page) == rid, "back from another lab, the address names another run"
    assert page.get_by_text("own copy").count() == 0
    _check_settings(page, lab)
    before = _still_training(page, before)

    # A reload: a new session, which must find the same run, still training, settings and all.
    page.reload()
    page.get_by_text("Welcome back").first.wait_for(timeout=60_000)
    epoch_metric(page).wait_for(timeout=60_000)
    idle(page)
    assert run_id(page) == rid, "after a reload the address names another run"
    assert page.get_by_text("own copy").count() == 0
    _check_settings(page, lab)
    _still_training(page, before)
    no_exception(page)
    if lab == "cnn":  # 1440×900, scrolled to the notice (the lab draws it above its training controls)
        notice = page.get_by_text("Welcome back").first
        notice.scroll_into_view_if_needed()
        time.sleep(0.5)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "runs-cnn-after-reload.png"))


# ---------- 4. someone else opens a live run's address ----------
def test_someone_elses_address_gives_an_own_copy_and_never_their_controls(server, new_page):
    a = new_page()
    _open_lab(a, f"{server}/playground?stop=never")  # trains through the whole test
    before = _train_to(a)
    url, rid_a = a.url, run_id(a)
    assert rid_a and "run=" in url

    b = new_page()  # a fresh context: another browser, another session
    _open_lab(b, url)
    b.get_by_text("you have your own copy").first.wait_for(timeout=30_000)
    assert b.get_by_text("Welcome back").count() == 0
    assert epoch(b) > 0  # their network as it was, trained
    expect(b).to_have_url(re.compile(r"[?&]run="), timeout=WAIT)
    rid_b = run_id(b)
    assert rid_b and rid_b != rid_a

    # B's controls drive B's copy only: train it, pause it; A trains on, with its own run and controls.
    _press_train(b)
    _press_pause(b)
    idle(b)
    assert "paused" in _status(b)
    assert run_id(a) == rid_a and run_id(b) == rid_b
    _still_training(a, before)
    _press_pause(a)
    no_exception(a)
    no_exception(b)


def test_a_closed_tabs_address_in_another_browser_gives_a_copy_and_its_owner_gets_it_back(server, new_page):
    """The address is not a password: once the owner's tab closed, another browser opening it
    took the run over ("Welcome back"); the owner, coming back, got only a copy."""
    owner = new_page()
    _open_lab(owner, f"{server}/playground?stop=never")
    _train_to(owner)
    url, rid, ctx = owner.url, run_id(owner), owner.context
    secret = [c for c in ctx.cookies() if c["name"] == "dllab_browser"]
    assert secret and secret[0]["httpOnly"] and secret[0]["value"] not in url
    owner.close()
    time.sleep(GRACE_S + 0.5)  # the owner's session is gone and its job stopped

    other = new_page()  # a fresh context: another browser, with the address only
    _open_lab(other, url)
    other.get_by_text("you have your own copy").first.wait_for(timeout=30_000)
    assert other.get_by_text("Welcome back").count() == 0 and run_id(other) != rid

    back = ctx.new_page()  # the owner's browser opens the address again
    _open_lab(back, url)
    back.get_by_text("Welcome back").first.wait_for(timeout=60_000)
    assert run_id(back) == rid and back.get_by_text("own copy").count() == 0
    no_exception(other)
    no_exception(back)


# ---------- 5. the teacher's share link ----------
def test_the_share_link_carries_settings_but_never_the_run(server, new_page):
    teacher = new_page()
    _open_lab(teacher, f"{server}/playground")
    _change_settings(teacher, "playground")
    teacher.get_by_text("For teachers").first.click()
    idle(teacher)
    box = teacher.locator("[data-testid='stExpander']").filter(has_text="For teachers").first
    link = box.locator("[data-testid='stCode']").first.inner_text().strip()
    assert re.search(r"[?&]lr=0\.01(&|$)", link), link
    expect(box.get_by_text("names this computer")).to_be_visible()  # 127.0.0.1: no student device can open it
    assert "run=" not in link, link
    assert run_id(teacher) and run_id(teacher) not in link  # the teacher's own address does name a run

    student = new_page()
    _open_lab(student, link)
    _check_settings(student, "playground")  # the link's learning rate
    assert student.get_by_text("Welcome back").count() == 0
    assert student.get_by_text("own copy").count() == 0
    assert epoch(student) == 0  # a fresh network, not the teacher's
    assert run_id(student) not in (None, run_id(teacher))
    no_exception(student)


def _pick(page, combobox, option):
    page.get_by_role("combobox", name=combobox, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    idle(page)


def test_a_link_that_hides_controls_hides_them_and_carries_their_values(server, new_page):
    """The teacher box's multiselect writes labels into the link (hide=Data, dataset=XOR): a
    student who opens it in a fresh context sees none of those controls and gets every value.
    (Hiding a control also dropped its value from the link: Streamlit removes the parameter of a
    bound widget that is not drawn.)"""
    teacher = new_page()
    _open_lab(teacher, f"{server}/playground")
    _pick(teacher, "Data", "XOR")
    slide_to(teacher, teacher.get_by_role("slider", name="Noise").first, "20")  # from 0, in steps of 5
    _pick(teacher, "Optimizer", "SGD")
    _button(teacher, "x²").click()
    idle(teacher)
    teacher.get_by_text("For teachers").first.click()
    idle(teacher)
    for label in ("Data", "Activation", "Optimizer", "Input features"):
        hide = teacher.get_by_role("combobox", name="Hide these controls from students")
        hide.click()
        hide.press_sequentially(label)  # the list opens on typing
        teacher.get_by_role("option", name=label, exact=True).click()
        idle(teacher)
    box = teacher.locator("[data-testid='stExpander']").filter(has_text="For teachers").first
    link = box.locator("[data-testid='stCode']").first.inner_text().strip()
    assert "hide=" in link and "noise=20" in link, link

    student = new_page()
    _open_lab(student, link)
    for name in ("Data", "Activation", "Optimizer"):
        assert student.get_by_role("combobox", name=name, exact=True).count() == 0, name
    assert _button(student, "x²").count() == 0  # the feature pills are gone too
    for shown in ("Data: XOR", "Optimizer: SGD", "Input features: x, y, x²", "Activation: GELU"):
        pattern = r"\s*".join(map(re.escape, shown.split(" "))) + r"\s*\(set by the link\)"  # **bold** splits it
        expect(student.get_by_text(re.compile(pattern)).first).to_be_visible(timeout=WAIT)
    expect(student.get_by_role("slider", name="Noise").first).to_have_attribute("aria-valuetext", "20")
    student.get_by_text("📦 Model & code").first.click()
    idle(student)
    code = _expander(student).locator("[data-testid='stCode']").first.inner_text()
    assert "torch.optim.SGD" in code and "x * x" in code, code  # the network and its trainer got them
    no_exception(student)


def _step_count(page) -> int:
    metric = counter(page, "Step")
    return int(re.search(r"Step\s+([\d,]+)", metric.inner_text()).group(1).replace(",", ""))


def test_twelve_steps_each_move_the_counter_and_give_the_buttons_back(server, new_page):
    """⏭ Step twelve times: after each, ▶ Train and ⏭ Step come back (in 2 of 12 clicks they once
    stayed on ⏸ Pause, greyed out) and the step counter shows one more, with its batch's loss."""
    page = new_page()
    _open_lab(page, f"{server}/playground")
    for n in range(1, 13):
        _button(page, "⏭ Step").click(timeout=WAIT)
        expect(_button(page, "▶ Train")).to_be_visible(timeout=10_000)
        expect(_button(page, "⏭ Step")).to_be_enabled(timeout=10_000)
        deadline = time.monotonic() + 10
        while _step_count(page) != n and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _step_count(page) == n
    expect(page.get_by_text("batch loss").first).to_be_visible(timeout=WAIT)
    no_exception(page)
