"""The classroom in a real browser: concurrent first sessions, a clean stop while jobs train,
and the classroom start (HAProxy with cookie affinity in front of two web processes that
share the run store), where a reload that reaches the other process still finds the run, and
a killed web process or HAProxy is started again while the room goes on.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from benchmarks.browser import free_port, output, spawn, streamlit_server, wait_healthy
from browser_fixtures import (
    WAIT,
    epoch,
    idle,
    no_exception,
    open_lab,
    open_page,
    press_pause,
    press_train,
    run_id,
    wait_epoch,
)
from classroom import streamlit_cmd

pytestmark = pytest.mark.browser


def test_concurrent_first_sessions_see_no_import_race(browser, tmp_path):
    """Six learners open a freshly started server at the same moment (its first sessions)."""
    with streamlit_server({"DLLAB_RUN_STORE": str(tmp_path)}) as url:
        ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        pages = [ctx.new_page() for _ in range(6)]
        for page in pages:
            page.goto(f"{url}/playground", wait_until="commit")
        for page in pages:
            page.get_by_role("button", name="▶ Train").wait_for(timeout=120_000)
            idle(page)
            no_exception(page)
        ctx.close()


def test_stopping_the_server_while_jobs_train_exits_cleanly(browser, tmp_path):
    """SIGTERM with two jobs training: a clean stop (it was -6, an abort), and the runs saved.
    Uvicorn stops gracefully, then ends the process by the signal it caught (-15): the runs
    are saved on the way (app.py's lifespan), not by an atexit handler, which that skips."""
    port = free_port()
    proc = spawn(streamlit_cmd(port), {"DLLAB_RUN_STORE": str(tmp_path), "PYTHONFAULTHANDLER": "1"})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        for _ in range(2):
            page = ctx.new_page()
            open_lab(page, f"{url}/playground")
            press_train(page)
            wait_epoch(page, 3)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:  # say where it hangs: SIGABRT makes faulthandler print every thread
            proc.send_signal(signal.SIGABRT)
            proc.wait(10)
            pytest.fail("The server did not stop within 60 s of SIGTERM:\n" + output(proc)[-12000:])
        ctx.close()
        log = output(proc)
        assert proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in log, log[-3000:]
        assert len(list(tmp_path.glob("*.run"))) == 2  # paused at shutdown, and saved
    finally:
        if proc.poll() is None:
            proc.kill()
        os.unlink(proc.log_path)


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    if shutil.which("haproxy") is None and not os.path.exists("/usr/sbin/haproxy"):
        if os.environ.get("CI"):
            pytest.fail("HAProxy is missing; .ci/run should have installed it")
        pytest.skip("HAProxy not installed (apt-get install haproxy)")
    port = free_port()
    proc = spawn([sys.executable, "classroom.py", "--web", "2", "--port", str(port)],
                 {"DLLAB_RUN_STORE": str(tmp_path_factory.mktemp("store"))})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, 120)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield url, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    os.unlink(proc.log_path)


def _web(ctx) -> str:
    return next(c["value"] for c in ctx.cookies() if c["name"] == "DLLAB_WEB")


def test_the_classroom_start_keeps_a_browser_on_its_process_and_shares_saved_runs(browser, classroom):
    url, _ = classroom
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    open_lab(page, f"{url}/playground?stop=never")
    press_train(page)
    trained = wait_epoch(page, 5)
    press_pause(page)
    rid, web = run_id(page), _web(ctx)
    assert rid and web in ("web1", "web2")

    page.reload()  # affinity: the same process, the same run, in memory
    open_lab(page, page.url)
    assert _web(ctx) == web and run_id(page) == rid
    page.get_by_text("Welcome back").wait_for(timeout=WAIT)

    other = "web2" if web == "web1" else "web1"  # as if its process had restarted: the other one
    ctx.add_cookies([{"name": "DLLAB_WEB", "value": other, "url": url}])
    page.reload()
    open_lab(page, page.url)
    assert _web(ctx) == other
    page.get_by_text("Welcome back").wait_for(timeout=WAIT)
    assert run_id(page) == rid and wait_epoch(page, trained, timeout=5) >= trained
    no_exception(page)
    ctx.close()


def _child(pid: int, *words: str) -> int | None:
    """The process id of `pid`'s child whose command line holds all `words`, or None."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, IndexError, ValueError):  # it ended while we looked
            continue
        if ppid == pid and all(w in cmdline for w in words):
            return int(stat.parent.name)
    return None


def _logged(proc, *words: str, timeout: float = 30) -> str:
    """The first line of the room's output that holds all `words`, waiting for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line := next((ln for ln in output(proc).splitlines() if all(w in ln for w in words)), None):
            return line
        time.sleep(0.2)
    pytest.fail(f"no line with {words} in the room's output:\n" + output(proc)[-3000:])


def test_the_classroom_outlives_a_dead_web_process(browser, classroom):
    """kill -9 of one web process (an out-of-memory kill, say) used to stop the whole room. Now
    the room answers on, a learner on the other process keeps training, and the killed process
    is started again on its port, with one line saying how it ended."""
    url, proc = classroom
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    open_lab(page, f"{url}/playground?stop=never")
    press_train(page)
    wait_epoch(page, 2)
    other = 2 if _web(ctx) == "web1" else 1
    port = int(url.rsplit(":", 1)[1]) + 9 + other  # classroom.py: web process n listens on --port + 9 + n
    victim = _child(proc.pid, "--server.port", str(port))
    assert victim is not None
    os.kill(victim, signal.SIGKILL)

    assert urllib.request.urlopen(f"{url}/_stcore/health", timeout=30).read() == b"ok"
    wait_epoch(page, epoch(page) + 3)  # the surviving process's learner trains on
    line = _logged(proc, f"web{other}", "SIGKILL")
    assert "starting it again" in line
    wait_healthy(f"http://127.0.0.1:{port}", proc, 90)
    assert proc.poll() is None and _child(proc.pid, "--server.port", str(port)) not in (None, victim)
    no_exception(page)
    ctx.close()


def test_the_classroom_restarts_a_dead_haproxy(classroom):
    url, proc = classroom
    haproxy = _child(proc.pid, "-db")
    assert haproxy is not None
    os.kill(haproxy, signal.SIGKILL)
    _logged(proc, "HAProxy", "SIGKILL")
    wait_healthy(url, proc, 30)
    assert _child(proc.pid, "-db") not in (None, haproxy)


def test_the_classroom_start_stops_every_process_on_sigterm(classroom):
    url, proc = classroom
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)


def test_the_teachers_view_needs_the_token_and_never_shows_run_ids(browser, tmp_path):
    """A learner trains; in a fresh context the teacher's address refuses a wrong token and,
    with the right one, counts the learner training, with no run id anywhere on the page."""
    with streamlit_server({"DLLAB_RUN_STORE": str(tmp_path), "DLLAB_TEACHER_TOKEN": "owl-42-spiral"}) as url:
        learner = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        open_lab(learner, f"{url}/playground?stop=never")
        press_train(learner)
        wait_epoch(learner, 2)
        secret = run_id(learner)
        teacher_ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        teacher = teacher_ctx.new_page()
        open_page(teacher, f"{url}/teacher")
        box = teacher.get_by_label("Teacher's token")
        box.fill("owl-41-spiral")
        box.press("Enter")
        teacher.get_by_text("That is not this server's teacher token.").wait_for(timeout=WAIT)
        assert teacher.locator("[data-testid='stMetric']").count() == 0
        box.fill("owl-42-spiral")
        box.press("Enter")
        training = teacher.locator("[data-testid='stMetric']").filter(has_text="Training now")
        training.wait_for(timeout=WAIT)
        deadline = time.monotonic() + 30
        while int(training.inner_text().split()[-1]) < 1 and time.monotonic() < deadline:
            teacher.wait_for_timeout(500)
        assert int(training.inner_text().split()[-1]) >= 1
        assert secret and secret not in teacher.content()
        no_exception(teacher)
        teacher_ctx.close()
        learner.context.close()
