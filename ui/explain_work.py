"""The Explainability Lab's heavy work, off the page's run: the session's one explanation job
(dl_core.explain_jobs) and its shuffled-label twin, both on the executor's lanes.

A page run says what it needs (`Work.get`); what the model's explainer has cached is drawn at
once, the rest becomes the session's one explanation job (`Work.submit`, at the end of the
run): kept while it computes exactly that, replaced when the request changes (a slider moved),
and, when it would take longer than GATE_S, only after the learner clicks a button that says
how long. The grid is drawn in a fragment that polls while the job computes (`live`), so it
fills in map by map; the page never waits for a map.
"""
from __future__ import annotations

from typing import Callable

import streamlit as st

from dl_core import explain, explain_jobs, reference

from . import state, widgets

ss = st.session_state
JOB, TWIN, PASS_S = state.XP_JOB, state.XP_TWIN, state.XP_PASS_S
GATE_S = 10.0  # work estimated longer than this waits for a click
POLL_S = 0.5


class Work:
    """What one page run needs of the explainer `ex` for inputs shaped `shape`."""

    def __init__(self, ex: explain.Explainer, shape: tuple):
        self.ex, self.shape = ex, shape
        self.nets = {"model": ex.model}  # what the tasks run on: "twin" too once it has trained
        self.missing: dict = {}  # task key -> Task, in the order asked
        self.slot = None  # where a section would put the cost question (set by the page per section)
        self._ask_in = None
        self.harvest()

    @property
    def job(self):
        """The session's explanation job for this model version, if any."""
        held = ss.get(JOB)
        return held[1] if held is not None and held[0] == self.ex.version else None

    def harvest(self) -> None:
        """What the session's job has done so far, into the explainer's cache."""
        if self.job is not None:
            for key, result in explain_jobs.done(self.job).items():
                self.ex.keep(key, result)

    def get(self, task: explain_jobs.Task, ask: bool = True):
        """The task's result if it is done, else None (and, if `ask`, the task is asked for)."""
        result = self.ex.cached(task.key)
        if result is None and ask and task.key not in self.missing:
            self.missing[task.key] = task
            self._ask_in = self._ask_in or self.slot
        return result

    def pass_s(self) -> float:
        """Seconds an input takes through this model and back, measured once per model version."""
        held = ss.get(PASS_S)
        if held is None or held[0] != self.ex.version:
            held = ss[PASS_S] = (self.ex.version, explain_jobs.pass_seconds(self.ex.model, self.shape))
        return held[1]

    def pending(self) -> set:
        """Keys of the session's job's tasks still to compute."""
        job = self.job
        return set() if job is None else {t.key for t in job.trainer.tasks if self.ex.cached(t.key) is None}

    def map(self, image, target: int | None, key: str, params: dict | None = None, layer: int | None = None,
            tunnel: str = "none", tunnel_params: dict | None = None):
        """An attribution map (explain.Result) if it is done, else None (and it is asked for)."""
        return self.get(explain_jobs.map_task(image, target, key, params, layer, tunnel, tunnel_params,
                                              self.ex.background))

    def submit(self) -> None:
        """End of the page run: the session's one job computes exactly what this run missed (a
        result that came back during the run counts as done for both)."""
        job = self.job
        wanted = [t for t in self.missing.values() if self.ex.cached(t.key) is None]
        if job is not None and self.pending() == {t.key for t in wanted}:
            if wanted and not job.active and job.status()["state"] != "failed":  # paused while nobody
                job.start()  # looked, or rested with work left (a halt, a stop rule): on again
            return
        if not wanted:
            return _stop(JOB)
        seconds = explain_jobs.seconds(wanted, self.pass_s())
        if seconds > GATE_S and not self._confirmed(wanted, seconds):
            return _stop(JOB)  # the old request is not wanted either
        _stop(JOB)
        new = explain_jobs.explanation_job({n: self.nets[n] for n in {t.net for t in wanted}}, wanted)
        new.start()
        ss[JOB] = (self.ex.version, new)
        st.rerun()  # the grid's fragment is drawn again, polling

    def _confirmed(self, tasks: list, seconds: float) -> bool:
        maps = sum(t.fn is explain.explain_image for t in tasks)
        what = f"{maps} maps" if maps == len(tasks) else f"{len(tasks)} explanations"
        with (self._ask_in or st).container(border=True):
            st.markdown(f"**These settings are slow:** {what} to compute, {sum(t.passes for t in tasks):,.0f} "
                        f"passes through the network, **{about(seconds)}** on this server, shared with everyone's "
                        "training.")
            return widgets.action(f"▶ Compute {what} ({about(seconds)})", key="xp_compute", type="primary")

    def progress(self) -> None:
        """One line on the session's job: how far it is, its place in the queue, or its failure."""
        job = self.job
        if job is None:
            return
        status, tasks = job.status(), job.trainer.tasks
        left = [t for t in tasks if self.ex.cached(t.key) is None]
        if status["state"] == "failed":
            _failed(job, "The explanations could not be computed", "xp_retry")
        elif status["state"] == "queued":
            st.info(f"The server is busy: your maps are number {status['queue_position']} in the queue.", icon="⏳")
        elif left and job.active:
            st.caption(f"⏳ Computing on the server's training lanes: {len(tasks) - len(left)} of {len(tasks)} done, "
                       f"{about(explain_jobs.seconds(left, self.pass_s()))} left.")


def about(seconds: float) -> str:
    return f"about {seconds:,.0f} s" if seconds >= 1 else "under a second"


def _failed(job, what: str, key: str) -> None:
    """A job's failure in one sentence, and a button to go on from the task or step it stopped at."""
    st.error(f"{what}: {job.status()['message'].removeprefix('Training stopped with an error: ')}", icon="💥")
    if st.button("↻ Try again", key=key):
        job.start()
        st.rerun()  # the whole page: its views poll again


def _stop(key: str) -> None:
    held = ss.pop(key, None)
    if held is not None:
        held[-1].stop()


def live(work: Work, draw: Callable[[], None], key: str = "xp_live") -> None:
    """`draw()` now and, while the session's job computes, again every POLL_S or slower as the
    room fills, with what has come back; once the job ends, the whole page once more."""
    job = work.job
    every = widgets.poll_interval(POLL_S, job.status()) if job is not None and job.active else None

    @st.fragment(run_every=every)
    def frame():
        widgets.keep_alive()
        if job is not None:
            job.watched()
            work.harvest()
        work.progress()
        draw()
        if job is not None:
            widgets.rerun_when_idle(job, key)

    frame()


def twin(spec, ds):
    """The session's shuffled-label twin of `spec` on `ds`: started on first request, trained on
    the executor's lanes within reference's cap, never waited for; one per session."""
    held = ss.get(TWIN)
    if held is None or held[:2] != (spec, ds.name):
        _stop(TWIN)
        job = reference.shuffled_label_job(spec, ds)
        job.start()
        held = ss[TWIN] = (spec, ds.name, job)
    job = held[2]
    if job.status()["state"] == "paused":  # paused while nobody looked: on again
        job.start()
    return job


def twin_progress(job, key: str = "xp_twin_live") -> None:
    """The twin's training, live: a line that polls while it trains, the whole page once it is done."""
    every = widgets.poll_interval(POLL_S, job.status()) if job.active else None

    @st.fragment(run_every=every)
    def frame():
        widgets.keep_alive()
        job.watched()
        status, epochs = job.status(), job.latest()[0]
        cap = f"at most {reference.TWIN_EPOCHS} epochs on {reference.TWIN_IMAGES:,} training images"
        acc = epochs[-1].get("train_acc") if epochs else None
        if status["state"] == "failed":
            _failed(job, "The copy on shuffled labels could not be trained", "xp_twin_retry")
        elif status["state"] == "queued":
            st.info(f"The server is busy: the copy's training is number {status['queue_position']} in the queue.",
                    icon="⏳")
        elif job.active:
            st.caption(f"⏳ Training a copy of the network on shuffled labels ({cap}, on the server's training "
                       f"lanes): epoch {status['epoch']} of {job.config.max_epochs}"
                       + (f", training accuracy {acc:.0%}." if acc is not None else "."))
        elif status["state"] == "finished" and acc is not None:
            st.caption(f"The copy trained {status['epoch']} epochs on shuffled labels ({cap}): training accuracy "
                       f"{acc:.0%} on labels that mean nothing, so whatever it learned is not about the classes.")
        widgets.rerun_when_idle(job, key)

    frame()
