"""Shared test set-up: one torch thread (CI has 2 cores and runs the app
server beside the tests), the repository on sys.path, small job helpers."""
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from streamlit import config as st_config

os.environ.setdefault("DLLAB_RUN_STORE", tempfile.mkdtemp(prefix="dllab-runs-"))  # never the learner's own cache
# Pages do not start the worker pool on sight: hundreds of page runs in one process would boot
# workers (~3 s of CPU each) that no test trains on. Executor.warm has its own test.
os.environ.setdefault("DLLAB_WARM_WORKERS", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)
pytest_plugins = ["browser_fixtures"]  # the browser tests' server and Chromium fixtures
from dl_core.engine import executor as server_executor  # noqa: E402  (after sys.path and the environment)

# a job a test makes without naming an executor trains where the app's would (ui/boot.py)
server_executor()
# The app hides uncaught errors' details from learners (.streamlit/config.toml); a failing page
# test shows them.
st_config.set_option("client.showErrorDetails", "full")


def wait_for(predicate, timeout=30.0, interval=0.005, seen=None):
    """Poll until predicate() is truthy; fail the test on timeout, saying what `seen()` shows then."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s" + (f"; then: {seen()}" if seen else ""))


def new_job(executor, **train):
    """A small Playground job (4-4 hidden units, an 8×8 output map) on `executor`."""
    from dl_core.engine import TrainConfig
    from dl_core.playground import Setup, make_job

    job = make_job(Setup(hidden=(4, 4), train=TrainConfig(**train), resolution=8))[0]
    job.executor = executor
    return job


@pytest.fixture
def executor():
    """A private in-process executor, so tests never queue behind each other's jobs."""
    from dl_core.engine import Executor, ThreadBackend

    ex = Executor(ThreadBackend(2), capacity=8)
    yield ex
    ex.shutdown()


@pytest.fixture(autouse=True)
def _forget_runs():
    """Every AppTest session has the same id, so one test's runs would reappear in the next
    (the shell reattaches a session's own runs): stop and forget them after each test."""
    yield
    from dl_core.engine import RUNS

    RUNS.stop_all()


def pytest_sessionfinish(session, exitstatus):
    """No training thread may outlive the tests (torch aborts on exit under a live thread)."""
    from dl_core.engine import RUNS

    RUNS.stop_all()


@pytest.fixture(scope="session")
def ray_cluster():
    """A small local Ray cluster, started outside the tests' process as a classroom would
    (`ray start --head`), on loopback; stopped at the end. Yields its address."""
    import shutil
    import socket
    import subprocess

    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([ray, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                    "--include-dashboard=false", "--disable-usage-stats"], check=True, env=env,
                   capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)
