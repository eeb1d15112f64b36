"""The lab shell: everything a training lab does around its own content, written once.

A lab's run (its job, the settings it was built from, what the lab needs besides) lives
in the server's run registry (dl_core.engine.runs) and is current in this session under one
key. The shell finds it again after a page change or a reload (through the run id in the
address bar), keeps the previous run for one undo, shows notices, draws the training
controls, the polling live view and the "Model & code" panel. Pages call it; no page
copies it. Other labs reach a lab's networks through `networks(kind)`, never through
another page's session keys.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

import streamlit as st

from dl_core.checkpoint import CheckpointError, load_bytes, save_bytes
from dl_core.engine import RUNS, Run, executor
from dl_core.export import script
from dl_core.spec import summarize

from . import browsers, budget, counters, state, widgets
from .labs import LABS

ss = st.session_state
RUN_PARAM = "run"  # the address bar's run id
SIDEBAR = (state.SEED, state.DEVICE)  # drawn before any page: settable only from callbacks


def _key(lab: str, what: str) -> str:
    return f"shell_{lab}_{what}"


def run_key(lab: str) -> str:
    """The session key of a lab's current run (tests read it; pages use current())."""
    return _key(lab, "run")


def previous_key(lab: str) -> str:
    """The session key of the run a new one replaced, kept for one undo (tests read it)."""
    return _key(lab, "previous")


def networks_of(job) -> None:
    """Every network the job trains, with its optimizer, its rate and what of it is frozen: one line
    for a lab of one network, a table for several (a GAN's two)."""
    rows = []
    for name, model in job.models.items():
        opt = job.optimizers.get(name)
        total = sum(p.numel() for p in model.parameters())
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        rows.append({"network": name, "parameters": f"{total:,}", "frozen": f"{frozen:,}" if frozen else "none",
                     "optimizer": type(opt).__name__ if opt else "—",
                     "learning rate": f"{opt.param_groups[0]['lr']:.3g}" if opt else "—"})
    if len(rows) == 1 and rows[0]["frozen"] == "none":
        r = rows[0]
        st.caption(f"One network, {r['parameters']} parameters, all trained by {r['optimizer']} at a learning "
                   f"rate of {r['learning rate']}.")
    else:
        st.dataframe(rows, hide_index=True)


def panel_key(lab: str) -> str:
    """The "Model & code" panel's key: True while it is open (tests open it with it)."""
    return _key(lab, "panel")


def upload_key(lab: str, nonce: int = 0) -> str:
    """The model uploader's key; it changes after each upload so the box empties itself."""
    return _key(lab, f"upload{nonce}")


def current(lab: str) -> Run | None:
    """This session's current run in `lab` (None before the lab first built one)."""
    return ss.get(_key(lab, "run"))


@dataclass(frozen=True)
class Network:
    """A trained network another lab may use: which lab made it and what it is."""

    lab: str
    title: str
    kind: str  # "image-classifier", "points-classifier", "points-regressor": what it takes and gives
    run: Run

    job = property(lambda self: self.run.job)
    extra = property(lambda self: self.run.extra)


def networks(kind: str | None = None) -> list[Network]:
    """The networks this learner has now, one per lab, optionally of one kind ("points" matches
    both points-classifier and points-regressor)."""
    out = []
    for lab in LABS.values():
        run = current(lab.key)
        if run is not None and run.extra.get("kind", "").startswith(kind or ""):
            out.append(Network(lab.key, lab.title, run.extra.get("kind", ""), run))
    return out


def notify(lab: str, kind: str, text: str) -> None:
    """A one-shot message shown at the top of the lab on its next run."""
    ss[_key(lab, "notice")] = (kind, text)


class Shell:
    """One lab's side of the shell; see the module docstring."""

    def __init__(self, lab: str, restore: Callable[[dict], None] | None = None):
        """`restore(settings)` puts a run's control values back (before any widget draws);
        by default each setting is written to the session key of the same name."""
        self.lab, self.title = lab, LABS[lab].title
        self._restore = restore or (lambda values: ss.update(values))
        self._drawn_busy = False  # the training controls were drawn for a job at work (see live)

    @property
    def run(self) -> Run | None:
        return current(self.lab)

    @property
    def own_address(self) -> bool:
        """Whether this page's address named this browser's own run (a reload of the teacher's page)."""
        return bool(ss.get(_key(self.lab, "own_address")))

    @property
    def previous(self) -> Run | None:
        return ss.get(_key(self.lab, "previous"))

    # ---- finding the run: call first, before the page's widgets ----
    def attach(self) -> Run | None:
        """This session's run, else the one the address bar names (a reload, or someone's link)."""
        widgets.keep_alive()
        run = self.run
        if run is not None:  # controls that Streamlit forgot while the learner was on another page
            missing = {k: v for k, v in run.settings.items() if k not in ss and k not in SIDEBAR}
            if missing:
                self._restore(missing)
        wanted = st.query_params.get(RUN_PARAM)
        if run is None and not wanted:  # a lab visited after a reload elsewhere: the runs came along
            mine = RUNS.runs_of(widgets.session_id(), self.lab)
            if mine:
                run, wanted, how = mine[0], mine[0].id, "own"
        if run is None and wanted:
            run, how = RUNS.open(wanted, widgets.session_id(), browsers.key())
            if how == "private":
                notify(self.lab, "info", "That link's run trained on its owner's own data, which stays with them. "
                       "Here is a fresh network.")
                return None
            if run is None or run.lab != self.lab:
                notify(self.lab, "warning", "That link's training run is no longer on this server (trained runs are "
                       "kept for a few hours after their tab closes). Here is a fresh network.")
                return None
        if run is not None and self.run is None:
            ss[_key(self.lab, "own_address")] = how in ("own", "reattached")  # this browser's own page
            self._show(run)
            self._restore({k: v for k, v in run.settings.items() if k not in SIDEBAR})  # those are in the URL
            notify(self.lab, *{
                "reattached": ("success", f"Welcome back: your network is here, at epoch {run.job.epoch}."),
                "own": ("success", f"Welcome back: your network is here, at epoch {run.job.epoch}."),
                "copied": ("info", f"This link shows someone else's live run: you have your own copy of their "
                                   f"network as it was just now (epoch {run.job.epoch}). Training it changes "
                                   "only yours."),
            }[how])
        return run

    def install(self, job, settings: dict, **extra) -> Run:
        """Make `job` the lab's current run; the one it replaces steps aside, paused, for one undo."""
        old = self.run
        run = RUNS.create(widgets.session_id(), self.lab, job, settings, extra, browser=browsers.key())
        if old is not None:
            old.job.pause()
            dropped = self.previous
            if old.job.step > 0:
                ss[_key(self.lab, "previous")] = old
                old = dropped
            if old is not None:
                RUNS.discard(old)
        self._show(run)
        budget.keep_within([_key(key, "previous") for key in LABS])
        return run

    def _show(self, run: Run) -> None:
        run.shown_at = time.monotonic()
        ss[_key(self.lab, "run")] = run

    def run_for(self, key, build: Callable[[], object], settings: dict,
                keep_trained: Callable[[], bool] | None = None, **extra) -> Run:
        """The current run if it was built for `key` (it now trains with `settings`), else a new
        run of `build()`'s job. `keep_trained()` may keep a trained run whose key no longer
        matches, until the learner asks for a fresh one (the page then says why)."""
        run = self.run
        if run is not None and run.extra.get("key") == key:
            self.remember(settings)
            return run
        if run is not None and run.job.step > 0 and keep_trained is not None and keep_trained():
            return run
        return self.install(build(), settings, key=key, **extra)

    def retune(self, config, fields: tuple[str, ...]) -> None:
        """Hand the run's job those of `fields` that changed in `config` (a TrainConfig); the job
        applies each as a change, so a running schedule carries on."""
        job = self.run.job
        changed = {f: getattr(config, f) for f in fields if getattr(config, f) != getattr(job.config, f)}
        if changed:
            job.set_config(**changed)

    def remember(self, settings: dict) -> None:
        """The run now trains with these settings (hyperparameters changed live)."""
        self.run.settings = dict(settings)

    def undo(self) -> None:
        """Callback: swap the current run with the previous one and put its settings back."""
        prev = ss.pop(_key(self.lab, "previous"), None)
        if prev is None:
            return
        now = self.run
        if now is not None:
            now.job.pause()
            if now.job.step > 0:
                ss[_key(self.lab, "previous")] = now
            else:
                RUNS.discard(now)
        self._show(prev)
        self._restore(prev.settings)

    def header(self) -> None:
        """The address bar names the current run; a pending notice is shown once."""
        if self.run is not None and st.query_params.get(RUN_PARAM) != self.run.id:
            st.query_params[RUN_PARAM] = self.run.id
        slot = st.empty()  # always there, so a notice never shifts what follows (open expanders stay open)
        notice = ss.pop(_key(self.lab, "notice"), None)
        if notice:
            getattr(slot, notice[0])(notice[1])

    def notify(self, kind: str, text: str) -> None:
        notify(self.lab, kind, text)

    def read_upload(self, key: str, parse: Callable[[object], object], errors: type | tuple) -> tuple | None:
        """In an uploader's callback: (what `parse` made of the uploaded file (its getvalue() and
        name), the file's name), or None when no file came or `parse` refused it with one of
        `errors` (the learner is told why, in a sentence at the top of the lab)."""
        file = ss.get(key)
        if file is None:
            return None
        try:
            parsed = parse(file)
        except errors as exc:
            self.notify("error", f"Could not use {file.name}: {exc}")
            return None
        refusal = budget.refusal(parsed)
        if refusal:
            self.notify("error", f"Could not use {file.name}: {refusal}")
            return None
        return parsed, file.name

    # ---- training controls and the live view ----
    def controls(self, on_reset: Callable[[], None], stops: bool = True, task: str = "classification") -> None:
        """The training controls; `stops=False` for a lab that sets its own number of epochs."""
        # Read before drawing: a job only ever stops being busy on its own, so this is never
        # "idle" while the buttons below show it at work (live() redraws them once it ends).
        self._drawn_busy = self.run.job.status()["busy"]
        widgets.job_controls(self.run.job, on_reset, stops, task)
        prev = self.previous
        if prev is not None:
            st.button(f"↶ Undo: bring back the previous network (trained {prev.job.step:,} steps)",
                      on_click=self.undo, key=_key(self.lab, "undo"),
                      help="Its settings come back with it; the current one is kept for another undo.")

    def live(self, render: Callable[[object], None], poll_s: float, values: counters.Values) -> None:
        """Draw the counters (`values(job)`) and `render(job)` (the status line, pictures and
        charts) now and, while the job trains, again every `poll_s` seconds, or slower as the
        room fills (widgets.poll_interval). The counters are kept fresh by the browser itself
        (ui/counters.py: no script run); in a full room, where the pace reaches once a second,
        they still come every widgets.TICK_S and the rest redraws every widgets.VIEWS_S."""
        job, flag = self.run.job, _key(self.lab, "was_active")
        if self._drawn_busy:
            # The controls show the job at work. A step or an epoch can end before this line: then
            # nothing would poll, and Pause with greyed-out Step/Epoch would stay until the next
            # click. Marked as active, the frame below sees it idle and reruns the page once.
            ss[flag] = True

        status = job.status()
        every = widgets.poll_interval(poll_s, status) if job.active else None
        if not job.active:
            executor().warm()  # the ▶ Train on this page should find the workers ready (Executor.warm)
        full_room = every is not None and every >= widgets.FULL_ROOM_S and status["state"] != "queued"
        counters.draw(job, values, min(every, widgets.TICK_S) if every else None, key=_key(self.lab, "counters"))

        @st.fragment(run_every=widgets.VIEWS_S if full_room else every)
        def frame():
            widgets.keep_alive()
            job.watched()
            widgets.job_status(job.status(), job)
            render(job)
            if every is not None and widgets.poll_interval(poll_s, job.status()) not in (every, None):
                st.rerun()  # the room filled or emptied: a full run sets the counters' and views' new pace
            widgets.rerun_when_idle(job, flag)

        frame()

    # ---- sharing ----
    def share_box(self, note: str = "", extra: Callable[[], None] | None = None) -> None:
        """The teacher's link to this exact setup (the settings in the address bar, never the run),
        with a warning when it names this computer; `extra` draws more inside (the Playground's
        hidden controls)."""
        with st.expander("🧑‍🏫 For teachers: share this exact setup"):
            st.markdown("Share this link: students who open it get the same data, network and starting weights. "
                        "It carries the settings only, never your trained network (the address bar also names "
                        "your run, so that a reload finds it). " + note)
            link = widgets.share_link()
            st.code(link, language=None)
            if urlsplit(link).hostname in ("localhost", "127.0.0.1", "::1"):
                st.warning("This link names this computer (localhost): students' devices cannot open it. Open the "
                           "app by the server's network address (e.g. http://192.168.1.20:8501) and share that link.")
            if extra is not None:
                extra()

    def link_notice(self, problems: list[str]) -> None:
        """Say once, for this link, which of its values were left out and why (they have defaults)."""
        seen = ss.setdefault(_key(self.lab, "link_checked"), set())
        said = tuple(problems)
        if problems and said not in seen:
            seen.add(said)
            self.notify("warning", "This link's " + ("value " if len(problems) == 1 else "values ") +
                        "; ".join(problems) + (" was" if len(problems) == 1 else " were") +
                        " left out, so the default is used.")

    # ---- model & code ----
    def model_panel(self, spec, stem: str, meta: dict | None = None,
                    on_load: Callable[[object, object, dict], None] | None = None, layers: bool = True) -> None:
        """The "Model & code" panel every training lab has: the layer table (`layers=False` where
        the page shows its own), the trained model and its PyTorch code to download, a saved
        model to load back, and the code itself. The table and the highlighted code are drawn only
        while the panel is open (a browser spent ~0.85 s of a first page drawing them)."""
        title = "the layers, PyTorch code, save and load" if layers else "PyTorch code, save and load"
        panel = st.expander(f"📦 Model & code: {title}", key=panel_key(self.lab), on_change="rerun")
        with panel:
            if layers and panel.open:
                rows = summarize(spec)
                st.dataframe([{"#": r.index, "layer": r.label, "output shape": str(r.out_shape),
                               "parameters": r.params} for r in rows], hide_index=True)
                st.caption(f"{sum(r.params for r in rows):,} parameters in total.")
            if panel.open:
                networks_of(self.run.job)
            code = script(spec, self.run.job.config)
            self.model_files(spec, code, stem, meta, on_load)
            if panel.open:
                st.code(code, language="python")

    def model_files(self, spec, code: str, stem: str, meta: dict | None = None,
                    on_load: Callable[[object, object, dict], None] | None = None, where=None) -> None:
        """Download the model and its code, and load a saved model back (through `on_load(spec,
        model, meta)`, which says what came back or raises CheckpointError in plain words).

        The model file is built when clicked, so it holds the weights of that moment, also while
        the job trains on: on a worker thread, from values captured here (there is no session
        state there). A click never reruns the page (`on_click="ignore"`): Streamlit 1.67 drops
        the file's reply when a full run starts before the reply is sent, which left the button
        greyed out for good (seen in the browser tests, once in a few full runs)."""
        where = where or st
        c = where.columns(3 if on_load else 2)
        job, lab, meta = self.run.job, self.lab, dict(meta or {})

        def checkpoint() -> bytes:
            with job.lock:
                return save_bytes(spec, job.model, meta | {"epoch": job.epoch, "step": job.step}, lab=lab)

        c[0].download_button("⬇ Trained model (.pt)", checkpoint, f"{stem}-model.pt", "application/octet-stream",
                             key=_key(lab, "download"), on_click="ignore", help="Weights and the network "
                             "description. Load it back here, or in PyTorch with torch.load(..., weights_only=True).")
        c[1].download_button("⬇ PyTorch code (.py)", code, f"{stem}_model.py", "text/x-python",
                             key=_key(lab, "code"), on_click="ignore")
        if on_load:
            nonce = ss.get(_key(lab, "nonce"), 0)
            c[2].file_uploader("Load a saved model", type=["pt"], key=upload_key(lab, nonce),
                               on_change=self._load_file, args=(on_load,))

    def _load_file(self, on_load) -> None:
        nonce = ss.get(_key(self.lab, "nonce"), 0)
        file = ss.get(upload_key(self.lab, nonce))
        ss[_key(self.lab, "nonce")] = nonce + 1  # a fresh, empty uploader next run
        if file is None:
            return
        try:
            spec, model, meta = load_bytes(file.getvalue(), lab=self.lab,
                                           titles={k: v.title for k, v in LABS.items()})
            what = on_load(spec, model, meta)
        except CheckpointError as exc:
            self.notify("error", f"Could not load {file.name}. {exc}")
            return
        counts = [meta.get(k) for k in ("epoch", "step")]
        if self.run is not None and all(type(c) is int and 0 <= c < 10**9 for c in counts):
            self.run.job.carry_on_from(*counts)  # a new run shows the epochs its network trained
        self.notify("success", f"Loaded {file.name}: {what}")

