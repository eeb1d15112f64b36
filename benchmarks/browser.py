"""Headless Chromium (Debian's) against a real `streamlit run` on 127.0.0.1: the set-up the
browser tests and the live benchmark share (playwright cannot download browsers here)."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from classroom import healthy, streamlit_cmd

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]


def counter(page, label: str):
    """A live view's counter (ui/counters.py, in its component's shadow root, which Playwright's
    selectors enter) or an st.metric, by its label."""
    return page.locator(".dl-counter, [data-testid='stMetric']").filter(has_text=label).first


def chromium() -> str | None:
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(cmd: list[str], env: dict | None = None, **popen) -> subprocess.Popen:
    """Start a server (from the repository's root) with its output going to a temporary file,
    which `output(proc)` reads. Not to a pipe: a pipe nobody reads fills at 64 KB, and then the
    server's next write blocks for good, whichever thread makes it (the event loop, the thread
    building a download)."""
    with tempfile.NamedTemporaryFile(prefix="dllab-server-", suffix=".log", delete=False) as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {}),
                                stdout=log, stderr=subprocess.STDOUT, **popen)
    proc.log_path = log.name
    return proc


def output(proc: subprocess.Popen) -> str:
    """What a server started by `spawn` has written so far."""
    return Path(proc.log_path).read_text(errors="replace")


def wait_healthy(url: str, proc, timeout: float = 60) -> None:
    """Wait until `url`'s /_stcore/health answers ok; RuntimeError (with the output) if `proc` ends first."""
    if not healthy(url, timeout, lambda: proc.poll() is None):
        proc.kill()
        raise RuntimeError(f"{url} did not become healthy: " + output(proc)[-3000:])


@contextlib.contextmanager
def streamlit_server(env: dict | None = None, timeout: float = 60, on_exit=None):
    """The app on a free local port; yields its URL once /_stcore/health answers ok.
    `on_exit(output)` gets what the server wrote, once it has stopped."""
    port = free_port()
    proc = spawn(streamlit_cmd(port), env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if on_exit is not None:
            on_exit(output(proc))
        os.unlink(proc.log_path)
