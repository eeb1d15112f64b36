"""The app in a real browser: headless Chromium (Debian's) against `streamlit run` on 127.0.0.1.

Screenshots of every page land in test-artifacts/ for a human to look at.
Without Chromium the tests skip locally, but fail under CI (CI=true), where
.ci/run installs it: a browser test that silently never runs is a defect.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT

pytestmark = pytest.mark.browser
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]


def _chromium() -> str | None:
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.address", "127.0.0.1", "--server.port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("streamlit did not become healthy: " + proc.stdout.read().decode()[-2000:])
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    path = _chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing; .ci/run should have installed it")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1500, "height": 2200})
    pg = ctx.new_page()
    yield pg
    ctx.close()


def _open(page, url):
    page.goto(url)
    page.wait_for_selector("[data-testid='stSidebar']", timeout=60_000)
    page.wait_for_selector("h1", timeout=60_000)


def _no_exception(page):
    assert page.locator("[data-testid='stException']").count() == 0


# Direct links first: a fresh server must route a shared link through app.py's navigation.
@pytest.mark.parametrize("path, heading", [("network-playground", "Network Playground"), ("", "Deep Learning Lab")])
def test_each_page_opens_and_is_screenshotted(server, page, path, heading):
    _open(page, f"{server}/{path}")
    page.get_by_role("heading", name=re.compile(heading)).first.wait_for(timeout=30_000)
    page.get_by_text("Compute").first.wait_for()  # the app's sidebar, not a bare page
    time.sleep(2)
    _no_exception(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page-{path or 'start'}.png"), full_page=True)


def _epoch(page) -> int:
    text = page.locator("[data-testid='stMetric']").filter(has_text="Epoch").first.inner_text()
    return int(re.search(r"Epoch\s+([\d,]+)", text).group(1).replace(",", ""))


def test_training_in_the_playground_moves_the_counter_and_the_loss_chart(server, page):
    _open(page, f"{server}/network-playground?lesson=depth_spiral")
    page.get_by_text("Epoch").first.wait_for(timeout=30_000)
    assert _epoch(page) == 0
    page.get_by_role("button", name=re.compile("Train")).first.click()
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline and len(set(seen)) < 3:
        seen.append(_epoch(page))
        time.sleep(0.5)
    assert len(set(seen)) >= 3 and seen == sorted(seen), seen  # the counter moves, live
    page.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=30_000)  # loss curve drawn
    _no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "playground-training.png"), full_page=True)
    page.get_by_role("button", name=re.compile("Pause")).first.click()
