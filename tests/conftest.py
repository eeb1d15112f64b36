"""Shared test set-up: one torch thread (CI has 2 cores and runs the app
server beside the tests), the repository on sys.path, small job helpers."""
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)
pytest_plugins = ["browser_fixtures"]  # the browser tests' server and Chromium fixtures


def wait_for(predicate, timeout=30.0, interval=0.005):
    """Poll until predicate() is truthy; fail the test on timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s")


@pytest.fixture
def runner():
    """A private runner, so tests never queue behind each other's jobs."""
    from dl_core.runner import JobRunner

    return JobRunner(8)


@pytest.fixture(autouse=True)
def _forget_runs():
    """Every AppTest session has the same id, so one test's runs would reappear in the next
    (the shell reattaches a session's own runs): stop and forget them after each test."""
    yield
    from dl_core.runs import RUNS

    RUNS.stop_all()


def pytest_sessionfinish(session, exitstatus):
    """No training thread may outlive the tests (torch aborts on exit under a live thread)."""
    from dl_core.runs import RUNS

    RUNS.stop_all()
