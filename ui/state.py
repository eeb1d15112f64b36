"""The one owner of Streamlit session-state keys and of the Playground's settings table.

Each setting's key is also its URL parameter: widgets are created with
`bind="query-params"`, Streamlit's own two-way URL sync, so a teacher shares
an exact configuration by sharing the address (only values that differ from
the defaults appear). The same table builds the `Setup` for dl_core, says
which changes need a fresh network (structural) and which a running job can
take (hyperparameters), and lets a teacher hide chosen controls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import streamlit as st

from dl_core.activations import ACTIVATIONS
from dl_core.data.data2d import DATASETS, FEATURES
from dl_core.engine import TrainConfig
from dl_core.optim import OPTIMIZERS
from dl_core.playground import Setup

# ---- session-state keys that are not widgets ----
LESSON_SEEN = "pg_lesson_seen"  # the lesson a link already applied
CUSTOM_DATA = "pg_custom_data"  # an uploaded or edited Dataset2D
UPLOAD_NONCE = "pg_upload_nonce"
DEVICE, SEED = "device", "seed"  # global settings, rendered by app.py's sidebar

# CNN Lab
CNN_LAYERS = "cnn_layers"  # the learner's layer stack: list[LayerSpec] (input and output sizes come from the data)
CNN_UPLOAD = "cnn_upload"  # an ImageDataset from a zip

# Backpropagation lab
BP_MODEL = "bp_model"  # the step-through network (its weights change with each update)
BP_STEP = "bp_step"  # index into the trace's steps
BP_LOSSES = "bp_losses"  # loss after each update taken so far

# Optimizers lab
OPT_BATCH = "opt_batch"  # results of the batch-size comparison
OPT_SCHEDULES = "opt_schedules"  # results of training under each learning-rate schedule
OPT_LANDSCAPE = "opt_landscape"  # (alphas, 1-D slice, 2-D slice, path coordinates, explained share, directions)

# Explainability Lab
XP_EXPLAINER = "xp_explainer"  # explain.Explainer for the model version on show (it caches its maps)
XP_JOB = "xp_job"  # (model version, the session's explanation job): ui/explain_work.py
XP_TWIN = "xp_twin"  # (network spec, data name, the shuffled-label twin's training job)
XP_PASS_S = "xp_pass_s"  # (model version, seconds an input takes through it and back)

SESSION_ID = "session_id"  # this browser session's own id (widgets.session_id)
RESTORED = "restored_notice"  # (job uid, its step, what came back): said until the job trains on
SET_UP_HERE = "hide_set_here"  # this session chose the hidden controls: the teacher's own page
TEACHER = "teacher_seal"  # the teacher's seal (dl_core.classroom.Gate): only the token makes it

KEPT = "kept_widget_keys"  # keys marked by kept(): their values outlive a visit to another page


def kept(key: str) -> str:
    """Mark a settable widget's key so its value survives a visit to another page.

    Streamlit drops a widget's value at the end of any run that did not draw it, so without this
    every lab forgot its settings when the learner looked at another page (and the gradient-flow
    lab built a fresh network on return). Only for widgets whose range never changes, or that
    fall back by themselves (select boxes, radios, multiselects): a restored value outside a
    slider's current range would raise. Never for buttons, uploads or chart selections, whose
    values Streamlit does not let a script set."""
    st.session_state.setdefault(KEPT, set()).add(key)
    return key


def restore_kept() -> None:
    """Re-save every kept key; app.py calls this before each page runs. A value set by the
    script is kept although no widget drew it (Streamlit's documented way round the clean-up)."""
    ss = st.session_state
    for key in ss.get(KEPT, ()):
        if key in ss:
            ss[key] = ss[key]


MAX_LAYERS, MAX_NEURONS = 8, 64
LEARNING_RATES = (0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
REG_RATES = (0.0, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
UPLOAD = "upload"


@dataclass(frozen=True)
class Setting:
    key: str
    label: str
    kind: str  # select | slider | number | toggle | pills | multiselect
    default: Any
    options: tuple = ()
    lo: float | None = None
    hi: float | None = None
    step: float | None = None
    fmt: Callable[[Any], str] | None = None
    help: str | None = None
    role: str = "structure"  # structure: needs a new network | hyper: a job takes it live | view


PLAYGROUND: dict[str, Setting] = {s.key: s for s in [
    Setting("dataset", "Data", "select", "circle", tuple(DATASETS) + (UPLOAD,),
            fmt=lambda k: DATASETS[k].label if k in DATASETS else "Your data (upload / clicks)",
            help="Which points the network must learn to separate (or, for regression, to fit)."),
    Setting("noise", "Noise", "slider", 0, lo=0, hi=50, step=5,
            help="How much the points stray from the pattern, in %."),
    Setting("n", "Points", "slider", 500, lo=50, hi=2000, step=50),
    Setting("train_pct", "Training share", "slider", 50, lo=10, hi=90, step=10,
            help="Points used for training, in %; the rest only test the network. Overfitting shows as a gap."),
    Setting("features", "Input features", "pills", ("x", "y"), tuple(FEATURES), fmt=lambda k: FEATURES[k].label,
            help="What the first layer sees. Hand-made features like x² can replace hidden layers."),
    Setting("layers", "Hidden layers", "number", 3, lo=0, hi=MAX_LAYERS, step=1),
    *[Setting(f"n{i}", f"#{i}", "number", 8, lo=1, hi=MAX_NEURONS, step=1)
      for i in range(1, MAX_LAYERS + 1)],
    Setting("activation", "Activation", "select", "gelu", tuple(ACTIVATIONS), fmt=lambda k: ACTIVATIONS[k].label,
            help="The non-linearity after each hidden layer. 'linear' makes any depth a straight-line model."),
    Setting("dropout", "Dropout", "slider", 0.0, lo=0.0, hi=0.5, step=0.05,
            help="Randomly silence this share of neurons while training: a regulariser."),
    Setting("batchnorm", "Batch norm", "toggle", False, help="Normalise each hidden layer's inputs per batch."),
    Setting("optimizer", "Optimizer", "select", "adam", tuple(OPTIMIZERS), fmt=lambda k: OPTIMIZERS[k].label,
            role="hyper"),
    Setting("lr", "Learning rate", "select", 0.03, LEARNING_RATES, fmt=lambda v: f"{v:g}", role="hyper",
            help="How far each step moves the weights. Too high and the loss explodes; too low and it crawls."),
    Setting("batch", "Batch size", "slider", 32, lo=1, hi=100, step=1, role="hyper",
            help="Examples averaged per gradient step: small batches are noisy, large ones slow per epoch."),
    Setting("reg", "Regularisation", "select", "none", ("none", "L1", "L2"), role="hyper",
            help="Penalise large weights: L2 shrinks them, L1 pushes many to exactly zero."),
    Setting("reg_rate", "Regularisation rate", "select", 0.001, REG_RATES, fmt=lambda v: f"{v:g}", role="hyper"),
    Setting("show_test", "Show test data", "toggle", False, role="view"),
    Setting("discretize", "Discretize output", "toggle", False, role="view"),
]}
PLAYGROUND["hide"] = Setting("hide", "Hide these controls from students", "multiselect", (),
                             tuple(k for k in PLAYGROUND if not k[1:].isdigit()) + ("teacher",),
                             fmt=lambda k: PLAYGROUND[k].label if k in PLAYGROUND else "this teacher box",
                             role="view")


def _names(s: Setting, option) -> tuple[str, str]:
    """What names `option` in a URL. Streamlit's URL binding writes an option's label (what
    `fmt` shows: `dataset=XOR`, `hide=Activation`); a hand-written link may use the key
    (`dataset=xor`, `hide=activation`). Both name the same option."""
    return str(option), (s.fmt or str)(option)


def _option(s: Setting, raw: str):
    """The option a URL value names (StopIteration: none)."""
    return next(o for o in s.options if raw in _names(s, o))


def hidden() -> set[str]:
    """Keys of the controls the link hides, whichever way the link names them."""
    out = set()
    for raw in st.query_params.get_all("hide"):
        try:
            out.add(_option(PLAYGROUND["hide"], raw))
        except StopIteration:
            pass  # a control that does not exist: nothing to hide
    return out


def _parse(s: Setting, raw: list[str]):
    """A URL value for a control that is hidden (so not rendered); invalid → default."""
    try:
        if s.kind in ("pills", "multiselect"):  # in the link's order (features feed the network so), once each
            return tuple(dict.fromkeys(o for v in raw for o in s.options if v in _names(s, o))) or s.default
        value = raw[-1]
        if s.kind == "toggle":
            return value.lower() in ("true", "1")
        cast = type(s.default)
        out = _option(s, value) if s.options else cast(float(value))
        if s.lo is not None and not s.lo <= out <= s.hi:
            return s.default
        return out
    except (IndexError, StopIteration, ValueError, OverflowError):  # OverflowError: int(float("inf"))
        return s.default


def link_problems(table: dict[str, Setting]) -> list[str]:
    """The link's values that `table`'s controls cannot take, each with why, as a learner reads
    them: the controls fall back to their defaults, which a mistyped link should not do silently."""
    out = []
    for key, s in table.items():
        raw = st.query_params.get_all(key)
        if not raw or key == "hide":
            continue
        if s.kind in ("pills", "multiselect") or s.options:
            bad = [v for v in raw if not any(v in _names(s, o) for o in s.options)]
            if bad:
                out.append(f"{key}={bad[0]} ({s.label.lower()}: not one of its choices)")
        elif s.kind == "toggle":
            if raw[-1].lower() not in ("true", "false", "1", "0"):
                out.append(f"{key}={raw[-1]} ({s.label.lower()}: true or false)")
        else:
            try:
                value = float(raw[-1])
                ok = math.isfinite(value) and (s.lo is None or s.lo <= value <= s.hi)
            except ValueError:
                ok = False
            if not ok:
                out.append(f"{key}={raw[-1]} ({s.label.lower()}: a number from {s.lo:g} to {s.hi:g})")
    return out


def finite_url(key: str) -> None:
    """Drop the link's value for a whole-number input when it is infinite: Streamlit 1.67 reads `?seed=inf`
    as int(float("inf")) inside its number_input, and the page broke with OverflowError. Call before the
    input is drawn; it then starts at its default, as with any other invalid value."""
    raw = st.query_params.get_all(key)
    try:
        infinite = bool(raw) and math.isinf(float(raw[-1]))
    except ValueError:  # not a number: Streamlit refuses it by itself
        infinite = False
    if infinite:
        del st.query_params[key]
        st.rerun()  # inputs read the address the run started with: start again from the corrected one


def _checked(s: Setting, value):
    """A session value for a control as the control would hold it (tuples for multi-choice)."""
    return tuple(value) if s.kind in ("pills", "multiselect") else value


def _url(s: Setting, value) -> str | list[str]:
    """A value as Streamlit's URL binding writes it: option labels, "true"/"false", numbers."""
    fmt = s.fmt or str
    if isinstance(value, tuple):
        return [fmt(v) for v in value]
    if s.kind == "toggle":
        return str(bool(value)).lower()
    return fmt(value) if s.options else str(value)


def control(key: str, where=None, **extra):
    """Render one setting as a URL-bound widget and return its value (hidden → from the URL)."""
    s = PLAYGROUND[key]
    where = where or st
    if key in hidden() and key != "hide":
        raw = st.query_params.get_all(key)
        # Just hidden (the teacher ticked it in the box): the link has lost the value, because
        # Streamlit drops a bound widget's parameter when the widget is not drawn. Its last value
        # is still in the session: put it back into the link, so the link still shares it.
        value = _parse(s, raw) if raw or key not in st.session_state else _checked(s, st.session_state[key])
        if not raw and value != s.default:
            st.query_params[key] = _url(s, value)
        shown = ", ".join(map(s.fmt or str, value)) if isinstance(value, tuple) else \
            ("on" if value else "off") if s.kind == "toggle" else (s.fmt or str)(value)
        where.caption(f"{s.label}: **{shown}** (set by the link)")  # read-only: the learner still knows
        return value
    common = dict(key=key, help=s.help, bind="query-params", **extra)
    if s.kind == "select":
        return where.selectbox(s.label, s.options, index=s.options.index(s.default),
                               format_func=s.fmt or str, **common)
    if s.kind == "slider":
        return where.slider(s.label, s.lo, s.hi, s.default, s.step, **common)
    if s.kind == "number":
        finite_url(key)
        return int(where.number_input(s.label, int(s.lo), int(s.hi), int(s.default), int(s.step), **common))
    if s.kind == "toggle":
        return where.toggle(s.label, s.default, **common)
    if s.kind == "pills":
        return tuple(where.pills(s.label, s.options, selection_mode="multi", default=list(s.default),
                                 format_func=s.fmt, wrap=True, **common) or ())
    if key == "hide":  # not bound: Streamlit's binding would drop a hand-written `hide=activation`
        return tuple(where.multiselect(s.label, s.options, default=sorted(hidden(), key=s.options.index),
                                       format_func=s.fmt, key=key, help=s.help, on_change=_hide_changed))
    return tuple(where.multiselect(s.label, s.options, default=list(s.default), format_func=s.fmt, **common))


def _hide_changed() -> None:
    """The teacher's choice into the link, as labels (`hide=Data`), as a bound widget would write it;
    this page is the teacher's own from now on (it keeps the teacher box, hidden or not)."""
    st.session_state[SET_UP_HERE] = True
    st.query_params["hide"] = [PLAYGROUND["hide"].fmt(k) for k in st.session_state.get("hide", ())]


def setup_from(values: dict, seed: int) -> Setup:
    """dl_core's Setup from the table's values."""
    depth = values["layers"]
    rate = values["reg_rate"]
    return Setup(dataset=values["dataset"], n_samples=values["n"], noise=values["noise"] / 100,
                 train_ratio=values["train_pct"] / 100, seed=seed, features=tuple(values["features"]),
                 hidden=tuple(values[f"n{i}"] for i in range(1, depth + 1)), activation=values["activation"],
                 dropout=values["dropout"], batchnorm=values["batchnorm"],
                 train=TrainConfig(optimizer=values["optimizer"], lr=values["lr"], batch_size=values["batch"],
                                   l1=rate if values["reg"] == "L1" else 0.0,
                                   l2=rate if values["reg"] == "L2" else 0.0))


def structure(setup: Setup) -> tuple:
    """The part of a Setup that fixes the network and data; changing it needs a new network."""
    return (setup.dataset, setup.n_samples, setup.noise, setup.train_ratio, setup.seed, setup.features,
            setup.hidden, setup.activation, setup.dropout, setup.batchnorm)


def settings_from(values: dict) -> dict:
    """Settings saved in a file, as the Playground's controls hold them: its own keys only, each parsed
    as a URL value is (an invalid one gets its default; a missing one too). Nothing else in a file
    reaches the session, so no file sets a role (the teacher's view) or another page's state."""
    out = {}
    for key, s in PLAYGROUND.items():
        value = values.get(key, s.default) if isinstance(values, dict) else s.default
        try:
            raw = _url(s, tuple(value) if isinstance(value, list) else value)
        except (KeyError, TypeError, ValueError):  # KeyError: a name the control's labels do not know
            raw = _url(s, s.default)
        out[key] = _parse(s, raw if isinstance(raw, list) else [raw])
    return out


def widget_values(values: dict) -> dict:
    """What to put back into session state to restore these controls."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items() if k != "hide"}


def apply_values(values: dict) -> None:
    """Set controls programmatically; call only from a widget callback (before widgets render)."""
    for k, v in values.items():
        st.session_state[k] = v
