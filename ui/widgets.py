"""Widgets every page shares: the sidebar (device, seed), the session's presence, job controls."""
from __future__ import annotations

import io
import os
import queue
import secrets
import threading
from collections import OrderedDict
from typing import Callable
from urllib.parse import urlencode, urlsplit

import streamlit as st
import torch

from dl_core.classroom import CHALLENGES, LESSON
from dl_core.device import available_kinds, configure_threads, pick_device
from dl_core.engine import RUNS, executor

from . import state


def session_id() -> str:
    """This browser session's id, kept in its session state: like Streamlit's own session it survives a
    reconnect (a Wi-Fi blip) and a reload starts a new one."""
    return st.session_state.setdefault(state.SESSION_ID, secrets.token_urlsafe(12))


def _released(sid: str) -> None:
    """Runs on the server's event loop when the tab's connection drops: schedule only, never block."""
    RUNS.session_ended(sid)


@st.cache_resource(scope="session", on_release=_released, show_spinner=False)
def _session_marker(sid: str) -> str:
    return sid


def keep_alive() -> None:
    """Called on every run and poll: the session is here, cancel any scheduled stop."""
    sid = session_id()
    _session_marker(sid)
    RUNS.touch(sid)


def sidebar() -> None:
    """Compute device and global seed, shown on every page."""
    configure_threads(int(os.environ.get("DLLAB_TORCH_THREADS", "1")))
    with st.sidebar:
        st.markdown("### ⚙️ Compute")
        kinds = ["auto", *available_kinds()]
        choice = st.selectbox("Device", kinds, key=state.DEVICE, bind="query-params",
                              format_func=lambda k: {"auto": "Automatic (best available)", "cuda": "CUDA GPU",
                                                     "mps": "Apple GPU (MPS)", "cpu": "CPU"}[k],
                              help="New networks are built on this device. GPUs pay off for big models and "
                                   "batches; the Playground's tiny networks are fastest on the CPU.")
        info = pick_device(choice)
        st.caption(f"**{info.name}** · {info.detail}  \n{info.reason}.")
        state.finite_url(state.SEED)  # `?seed=inf` broke Streamlit's own number input
        st.number_input("Random seed", 0, 9999, 1, key=state.SEED, bind="query-params",
                        help="Fixes the data and the starting weights, so everyone in a class sees the same run.")
        _challenge()
        load = executor().load()
        n, lanes = load["training"], load["lanes"]
        st.caption(f"Training now on this server: {n} job{'s' * (n != 1)} taking turns on {lanes} "
                   f"worker{'s' * (lanes != 1)}" + (f", {load['queued']} waiting." if load["queued"] else "."))


def _challenge() -> None:
    """The class challenge the teacher set, and the learner's (optional) name for its board."""
    if LESSON.challenge is None:
        return
    st.markdown(f"### 🏆 Class challenge\n{CHALLENGES[LESSON.challenge].rule}")
    st.text_input("Your name on the class board (optional)", key="board_name", max_chars=40,
                  on_change=lambda: RUNS.set_name(session_id(), st.session_state.get("board_name", "")),
                  help="Left empty, the board shows you as 'Learner n'.")


def device() -> torch.device:
    return pick_device(st.session_state.get(state.DEVICE, "auto")).torch_device


def seed() -> int:
    return int(st.session_state.get(state.SEED, 1))


STATE_TEXT = {
    "idle": "ready — press ▶ Train or take one step",
    "queued": "waiting for a free training slot",
    "running": "training",
    "paused": "paused",
    "finished": "finished",
    "stopped": "stopped (press ▶ Train to continue)",
    "failed": "stopped by a problem",
}


def action(label: str, key: str, **kwargs) -> bool:
    """A button that reports its click exactly once, even if the script reruns before reaching it:
    the click sets a flag in a callback (callbacks run first) and this run takes the flag. A bare
    st.button's True lives for one run only, and was lost here under AppTest's reruns."""
    flag = f"{key}__clicked"
    st.button(label, key=key, on_click=st.session_state.__setitem__, args=(flag, True), **kwargs)
    return bool(st.session_state.pop(flag, False))


SPEEDS = {  # key: (label, steps a second from the steps in one epoch; None: as fast as it goes)
    "step1": ("🐢 1 step/s", lambda per_epoch: 1.0),
    "step5": ("5 steps/s", lambda per_epoch: 5.0),
    "epoch1": ("1 epoch/s", lambda per_epoch: float(per_epoch)),
    "epoch10": ("10 epochs/s", lambda per_epoch: 10.0 * per_epoch),
    "full": ("full", lambda per_epoch: None),  # label = key: a link can say ?speed=full
}
STOPS = {  # key: (label, the TrainConfig fields it sets, the tasks it suits)
    "e100": ("at epoch 100", {"max_epochs": 100}, ("classification", "regression")),
    "e300": ("at epoch 300", {"max_epochs": 300}, ("classification", "regression")),
    "e1000": ("at epoch 1,000", {"max_epochs": 1000}, ("classification", "regression")),
    "acc95": ("at 95 % test accuracy", {"target_acc": 0.95}, ("classification",)),
    "acc99": ("at 99 % test accuracy", {"target_acc": 0.99}, ("classification",)),
    "loss01": ("at test loss 0.01", {"target_loss": 0.01}, ("regression",)),
    "never": ("never", {}, ("classification", "regression")),  # label = key: a link can say ?stop=never
}
NO_STOP = {"max_epochs": None, "target_acc": None, "target_loss": None}


def _default(env: str, options, fallback: str) -> str:
    """The server's default for a pacing control (a teacher may start a room in slow motion:
    DLLAB_SPEED=step1; the benchmarks train at full speed: DLLAB_SPEED=full, DLLAB_STOP=never)."""
    wanted = os.environ.get(env, fallback)
    return wanted if wanted in options else fallback


def pacing(job, where, stops: bool, task: str) -> None:
    """Speed (slow motion to full) and, where the lab has no stop of its own, when to stop; both
    in the address bar (`?speed=…&stop=…`), both handed to the job as they change. A run solved
    in two seconds that never stops leaves nothing to watch and curves thousands of epochs long."""
    per_epoch = max(1, -(-job.trainer.n_train // job.config.batch_size))
    c = where.columns(2 if stops else 1)
    # 10 epochs a second by default: the spiral takes ~20 s to solve, which a class can watch (at full
    # speed it took 2); the server does less for a room, too.
    speed = c[0].select_slider("Speed", list(SPEEDS), _default("DLLAB_SPEED", SPEEDS, "epoch10"),
                               format_func=lambda k: SPEEDS[k][0],
                               key=state.kept("speed"),
                               bind="query-params", help="Slow motion shows every step's change in the "
                               "pictures; at full speed the server trains as fast as it can.")
    changes = {"steps_per_s": SPEEDS[speed][1](per_epoch)}
    if stops:
        options = [k for k, v in STOPS.items() if task in v[2]]
        if st.session_state.get("stop", "e300") not in options:  # an accuracy goal, and now regression data
            st.session_state["stop"] = _default("DLLAB_STOP", options, "e300")
        stop = c[1].selectbox("Stop", options, options.index(_default("DLLAB_STOP", options, "e300")),
                              format_func=lambda k: STOPS[k][0],
                              key=state.kept("stop"), bind="query-params", help="When training ends by itself "
                              "(never: until you pause); ▶ Train after a stop trains on until the next one.")
        changes |= NO_STOP | STOPS[stop][1]
    changed = {k: v for k, v in changes.items() if getattr(job.config, k) != v}
    if changed:
        job.set_config(**changed)


def job_controls(job, on_reset, stops: bool = True, task: str = "classification") -> None:
    """Train/pause, step one batch, step one epoch, reset, speed and stop: the same row on every lab."""
    status = job.status()
    running = status["busy"] and status["state"] in ("running", "queued")
    cols = st.columns([1.2, 1, 1, 1, 3.5])
    pacing(job, cols[4], stops, task)  # first: the buttons read the Stop it sets
    at_limit = stops and not running and job.config.max_epochs is not None and job.epoch >= job.config.max_epochs
    if running:
        cols[0].button("⏸ Pause", on_click=job.pause, type="primary", width="stretch", key="ctl_pause")
    elif at_limit:  # ▶ Train would stop again at once, at the same limit: it raises Stop instead
        later = _later_stop(job.epoch)
        cols[0].button("▶ Train on", on_click=_train_on, args=(job, later), type="primary", width="stretch",
                       key="ctl_train", help=f"Raises Stop to '{STOPS[later][0]}' and trains on.")
    else:
        cols[0].button("▶ Train", on_click=job.start, type="primary", width="stretch", key="ctl_train",
                       help="Train continuously until you pause.")
    cols[1].button("⏭ Step", on_click=job.step_batch, width="stretch", key="ctl_step", disabled=running,
                   help="One gradient step on one batch, then pause.")
    cols[2].button("⏩ Epoch", on_click=job.step_epoch, width="stretch", key="ctl_epoch", disabled=running,
                   help="Train to the end of this pass over the training data.")
    cols[3].button("↺ Reset", on_click=on_reset, width="stretch", key="ctl_reset",
                   help="Fresh random weights (you can undo this).")


def _restore_peak(job) -> None:
    epoch = job.restore_peak()
    if epoch is not None:
        st.session_state[state.RESTORED] = (job.uid, job.step, f"The weights from epoch {epoch:,} are back: every "
                                            "number and picture now shows that network.")


def _later_stop(epoch: int) -> str:
    """The first epoch limit past `epoch` ("never" past them all)."""
    return next((k for k, v in STOPS.items() if v[1].get("max_epochs", 0) > epoch), "never")


def _train_on(job, stop: str) -> None:
    st.session_state["stop"] = stop  # the Stop box (and the address) show the new limit
    job.set_config(**(NO_STOP | STOPS[stop][1]))
    job.start()


def job_status(status: dict, job=None) -> None:
    """One line on what the job is doing: its problem, its place in the queue, how it ended; and,
    above it, a collapse the job noticed, with its best weights one click away."""
    notice = st.session_state.get(state.RESTORED)
    restored = notice is not None and job is not None and notice[:2] == (job.uid, job.step)  # until it trains on
    if restored:
        st.success(notice[2], icon="⏪")
    collapse = status.get("collapse")
    if collapse:
        st.warning(collapse["message"], icon="📉")
        if job is not None:
            st.button(f"↶ Bring back the weights from epoch {collapse['peak_epoch']:,}", on_click=_restore_peak,
                      args=(job,), key="ctl_restore_peak")
    if status["state"] == "failed":
        st.error(status["message"], icon="💥")
    elif status["state"] == "queued":
        st.info(f"The server is busy: your job is number {status['queue_position']} in the queue and starts "
                "as soon as a slot frees up.", icon="⏳")
    elif status["state"] == "finished" and status["message"] and not restored:
        limit = job is not None and job.config.max_epochs is not None and job.epoch >= job.config.max_epochs
        st.success(status["message"] + (" ▶ Train on raises *Stop* and trains further." if limit else ""), icon="🏁")
    elif not restored:  # the last asked-for step is done a moment before the worker calls itself paused
        shown = "paused" if status["state"] == "running" and not status["busy"] else status["state"]
        st.caption(f"Status: {STATE_TEXT.get(shown, shown)}.")


def rerun_when_idle(job, key: str) -> None:
    """Inside a polling fragment: once the job stops, rerun the whole page once, so the
    fragment is redefined without polling and the controls show Train again."""
    if st.session_state.get(key) and not job.active:
        st.session_state[key] = False
        st.rerun()
    st.session_state[key] = job.active


def lazy_tabs(labels: list[str], key: str) -> list:
    """st.tabs of which only the open one is drawn: each entry is the tab to draw into, or None
    for a closed one (the first counts as open until the browser says which is). Each chart or
    network copy in a closed tab would otherwise cost the server on every redraw."""
    tabs = st.tabs(labels, key=key, on_change="rerun")
    return [t if (t.open is not False if i == 0 else t.open) else None for i, t in enumerate(tabs)]


def share_link() -> str:
    """This page's address with its settings but without the run id: a link for a class."""
    base = urlsplit(st.context.url or "")
    query = [(k, v) for k in st.query_params for v in st.query_params.get_all(k) if k != "run"]
    return f"{base.scheme}://{base.netloc}{base.path}" + (f"?{urlencode(query)}" if query else "")


def _encoded(image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def picture(key: str, version, make: Callable[[], object], fmt: str = "JPEG", ahead: str | None = None,
            **kwargs) -> None:
    """st.image of `make()` (a PIL image), built and encoded once per `version`, or taken from
    picture_ahead(`ahead`, version, …) when that built it already. A live view
    redraws many times between two snapshots (and never while a job waits for its turn): the
    same bytes go out again, under the same media address, so the browser keeps its copy.
    JPEG at quality 90: it encodes in ~2 ms where PNG took ~46 ms for the network picture, and
    it is what the browser got anyway. The format is named to st.image, which otherwise
    decodes the bytes and, for an image without transparency, encodes them again as JPEG on
    every redraw (measured: a fifth of the web process's time with 30 learners)."""
    memo = st.session_state.setdefault("_pictures", {})
    hit = memo.get(key)
    if hit is None or hit[0] != version:
        done = _BUILT.get(ahead) if ahead else None
        data = done[1] if done is not None and done[0] == version else _encoded(make(), fmt)
        memo[key] = hit = (version, data)
    st.image(hit[1], output_format=fmt, **kwargs)


# Pictures built ahead, on one thread per web process, as their snapshot arrives (TrainingJob.on_snapshot):
# the network picture is 15-20 ms of the ~45 ms a full room's pictures run takes, and Streamlit runs one
# script run at a time per session, so while that run lasts (0.5-1 s on a web process serving 15
# learners) the session's counters wait (docs/PERFORMANCE.md, session 5).
_AHEAD: queue.SimpleQueue = queue.SimpleQueue()
_BUILT: OrderedDict = OrderedDict()  # ahead key -> (version, bytes, what keeps the version's ids alive)
_BUILT_MAX = 256
_builder_lock = threading.Lock()
_builder: list[threading.Thread] = []


def picture_ahead(ahead: str, version, make: Callable[[], object], fmt: str = "JPEG", keep=None) -> None:
    """Build picture(…, ahead=`ahead`)'s bytes for `version` soon, off the caller's thread (the
    caller may hold a job's locks: this only queues). `keep` is held with the bytes: when the
    version names objects by id, keeping them alive keeps their ids from being reused."""
    _AHEAD.put((ahead, version, make, fmt, keep))
    if not _builder:
        with _builder_lock:
            if not _builder:
                _builder.append(threading.Thread(target=_build_ahead, daemon=True, name="pictures-ahead"))
                _builder[0].start()


def _build_ahead() -> None:
    while True:
        queued = [_AHEAD.get()]
        while True:
            try:
                queued.append(_AHEAD.get_nowait())
            except queue.Empty:
                break
        # A picture's newest version only: an older one still queued (the builder fell behind a
        # room's snapshots) would never be shown.
        for ahead, version, make, fmt, keep in {item[0]: item for item in queued}.values():
            try:
                _BUILT[ahead] = (version, _encoded(make(), fmt), keep)
            except Exception:  # noqa: BLE001 - the page builds it again itself, and shows what went wrong
                continue
            _BUILT.move_to_end(ahead)
            while len(_BUILT) > _BUILT_MAX:
                _BUILT.popitem(last=False)


# A live view's counters are asked by the browser itself (ui/counters.py: an HTTP route, no script
# run) every TICK_S in a full room; its status line, pictures and charts redraw in a fragment, every
# VIEWS_S once the room is full (shell.live). With the counters off the script runs, 30 learners on
# two web processes beside a Chromium page read an update gap of p50 0.34-0.36 s, p95 1.05-1.10 s
# (docs/PERFORMANCE.md, session 7; p95 2.3-5.3 s with the counters in a fragment every 0.5 s).
TICK_S, VIEWS_S = 0.3, 2.0
FULL_ROOM_S = 1.0  # the slowest a live view redraws at the room's pace: from there its views wait VIEWS_S


def poll_interval(poll_s: float, status: dict) -> float | None:
    """How often a live view redraws: `poll_s` for one learner, slower as the room fills (each
    redraw costs the web process while training happens elsewhere), never slower than once a
    second; a queued job only waits for its turn (once a second); an idle one not at all."""
    if not status["busy"]:
        return None
    if status["state"] == "queued":
        return 1.0
    load = executor().load()
    wanted = poll_s * load["training"] / (2 * load["lanes"])
    return next((p for p in (poll_s, 0.5, 0.75) if wanted <= p), FULL_ROOM_S)  # a few paces: few full reruns
