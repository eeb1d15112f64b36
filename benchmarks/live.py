"""Training speed as a learner sees it: the labs in headless Chromium against `streamlit run`,
each page polling and redrawing its live views, against the bare PyTorch loop on the same work.

The in-process suites (playground, cnn) time the job alone; this one includes everything the
page does while it trains (fragment ticks, charts, pictures) and the browser drawing them, on
the same machine, which is what a laptop user gets. On a classroom server the browsers run
elsewhere and the figures would be higher.
"""
from __future__ import annotations

import math
import re
import time

from dl_core import cnn, playground
from dl_core.data import images
from dl_core.engine import TrainConfig

from .browser import CHROMIUM_ARGS, chromium, counter, streamlit_server
from .common import bare_steps_per_s

CNN_EPOCHS = 20  # the CNN Lab's default run
PLAYGROUND_SECONDS = 15


def _epoch(page) -> int:
    text = counter(page, "Epoch").inner_text()
    return int(re.search(r"Epoch\s+([\d,]+)", text).group(1).replace(",", ""))


def _open(page, url: str) -> None:
    page.goto(url)
    page.get_by_role("button", name="▶ Train", exact=True).wait_for(timeout=120_000)
    time.sleep(2)


def _bare_cnn_images_per_s() -> float:
    ds = images.digits(16)
    make = lambda: cnn.make_job(ds, cnn.preset("tiny_vgg", ds), cnn.DEFAULT_CONFIG)  # noqa: E731
    bare_steps_per_s(make(), 1)  # warm-up
    return bare_steps_per_s(make(), 4) * cnn.DEFAULT_CONFIG.batch_size


def _bare_playground_steps_per_s() -> float:
    make = lambda: playground.make_job(playground.Setup(train=TrainConfig(max_epochs=1)))[0]  # noqa: E731
    bare_steps_per_s(make(), 5)  # warm-up
    return bare_steps_per_s(make(), 50)


def run() -> dict:
    path = chromium()
    if path is None:
        raise SystemExit("the live suite needs Chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with streamlit_server() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        _open(page, f"{url}/cnn")
        n_train = len(images.digits(16).part("train")[0])
        page.get_by_role("button", name="▶ Train", exact=True).click()
        t0 = time.perf_counter()
        while _epoch(page) < CNN_EPOCHS and time.perf_counter() - t0 < 300:
            time.sleep(0.1)
        cnn_s = time.perf_counter() - t0
        _open(page, f"{url}/playground?stop=never&speed=full")
        page.get_by_role("button", name="▶ Train", exact=True).click()
        time.sleep(PLAYGROUND_SECONDS)
        pg_epochs = _epoch(page)
        page.get_by_role("button", name="⏸ Pause", exact=True).click()
        browser.close()
    setup = playground.Setup()
    steps_per_epoch = math.ceil(setup.n_samples * setup.train_ratio / setup.train.batch_size)
    cnn_rate, pg_rate = CNN_EPOCHS * n_train / cnn_s, pg_epochs * steps_per_epoch / PLAYGROUND_SECONDS
    cnn_bare, pg_bare = _bare_cnn_images_per_s(), _bare_playground_steps_per_s()
    return {
        "cnn_seconds_for_default_run_browser": round(cnn_s, 1),
        "cnn_images_per_s_browser": round(cnn_rate), "cnn_images_per_s_bare": round(cnn_bare),
        "cnn_browser_vs_bare": round(cnn_rate / cnn_bare, 2),
        "playground_steps_per_s_browser": round(pg_rate), "playground_steps_per_s_bare": round(pg_bare),
        "playground_browser_vs_bare": round(pg_rate / pg_bare, 2),
        "setup": f"CNN Lab defaults (digits 16x16, Tiny VGG, {CNN_EPOCHS} epochs, timed from the click to the "
                 f"last epoch on screen); Playground defaults for {PLAYGROUND_SECONDS} s; Chromium on the same "
                 "machine as the server",
    }
