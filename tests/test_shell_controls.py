"""The training controls never stay stale: a job that ends between drawing the buttons and
drawing the live view (a ⏭ Step or ⏩ Epoch often does) gets the page redrawn once.

Found in the browser (tests/test_browser_runs.py): after a step the buttons stayed on
⏸ Pause with ⏭ Step and ⏩ Epoch greyed out, and nothing polled, until the next click.
Here the race is made certain: the job reports itself busy to the first `n` status reads.
"""
import pytest

from test_pages import open_page
from ui.shell import run_key


class EndsWhileDrawing:
    """A real, idle job that says "running" to the first `busy_reads` status() calls."""

    def __init__(self, job, busy_reads: int):
        self._job, self._left = job, busy_reads

    def status(self):
        status = self._job.status()
        if self._left > 0:
            self._left -= 1
            status |= {"busy": True, "state": "running"}
        return status

    def __getattr__(self, name):
        return getattr(self._job, name)


@pytest.mark.parametrize("lab", ["playground", "cnn", "gradflow"])
def test_controls_drawn_busy_for_a_job_that_has_ended_are_redrawn(lab):
    at = open_page(lab)
    run = at.session_state[run_key(lab)]
    assert not run.job.active
    run.job = EndsWhileDrawing(run.job, busy_reads=2)  # whatever the shell reads before drawing, and the buttons
    at.run()
    assert not at.exception
    keys = {b.key for b in at.button}
    assert "ctl_train" in keys and "ctl_pause" not in keys, keys
    assert not next(b for b in at.button if b.key == "ctl_step").disabled
