"""The Sequence Lab's sections below its live view: look closer at one sequence (and edit it),
ask why (attributions, units, ablation), let a language model write, see a forecast, and
race the three cell types. Each draws from a copy of the network at its current weights,
taken under the job's lock, so none of them disturbs training."""
from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from dl_core import seqexplain as se
from dl_core.data import seqsources
from dl_core.data.sequences import SEQ_TASKS
from dl_core.explain import eval_copy
from dl_core.losses import LOSSES
from dl_core.recurrence import look_inside
from dl_core.seqlab import RACE_EPOCHS, SeqSetup, best, race

from . import charts, widgets
from . import seq_figures as sf

ss = st.session_state
SHOW = 40  # test sequences a learner can pick from


def frozen(job):
    """The network as it is now, in eval mode, for reading (training goes on meanwhile)."""
    with job.lock:
        return eval_copy(job.model)


def answer_text(data, out: np.ndarray) -> str:
    """What the network says: its top classes, a label per step, or a value in the data's units."""
    if data.per_step:
        return "`" + " ".join(data.classes[k] for k in out.argmax(0)) + "` (a label per step)"
    if data.task != "classification":
        return f"{float(out[0]) * data.scale[1] + data.scale[0]:.3f}"
    p = np.exp(out - out.max())
    p /= p.sum()
    return ", ".join(f"**{data.classes[k]}** {p[k]:.0%}" for k in np.argsort(-p)[:3])


def _edited(data, x: torch.Tensor) -> torch.Tensor | None:
    """The learner's edit of sequence `x` (tokens: its text; values: one step), or None."""
    if data.tokens:
        original = "".join(data.text(x)).lstrip(data.vocab[0])
        text = st.text_input("What if? Edit the sequence (any length up to 3× the task's)", original,
                             key=f"seq_edit_{data.name}_{hash(original)}", max_chars=3 * data.length)
        if text == original:
            return None
        index = {c: i for i, c in enumerate(data.vocab)}
        unknown = sorted({c for c in text if c not in index or c == data.vocab[0]})
        if not text or unknown:
            st.warning("Use only this task's characters" + (f" (not {', '.join(map(repr, unknown[:5]))})" if unknown
                                                            else "") + "; showing the original.")
            return None
        return torch.tensor([index[c] for c in text])
    c = st.columns(3)
    step = c[0].number_input("What if? Change step", 1, data.length, data.length, key="seq_edit_step") - 1
    value = c[1].number_input("to the value", -1e6, 1e6, float(x[step, 0]), key=f"seq_edit_value_{step}",
                              format="%.3f")
    if value == float(x[step, 0]):
        return None
    x = x.clone()
    x[step, 0] = value
    return x


@dataclass
class Example:
    """The sequence the sections below look at, and what the network makes of it."""

    x: torch.Tensor
    target: se.Target  # what is explained: a class, (class, last step) per step, None: a regression's output
    model: object  # the network, frozen at its current weights
    tokens: list[str]  # each step's text
    step: int  # the step selected everywhere
    seen: dict  # look_inside's states, gates and gradients


def example(job, data) -> Example:
    """Pick a test sequence (or edit it), see the answer, select a step."""
    c = st.columns([1, 3])
    i = c[0].number_input("Test sequence #", 1, min(SHOW, len(data.x_test)), 1, key="seq_pick") - 1
    with c[1]:
        edit = _edited(data, data.x_test[i])
    x = data.x_test[i] if edit is None else edit
    model = frozen(job)
    if edit is None:
        y = data.y_test[i]
    else:  # an edit has no known answer: the gradients and attributions explain the network's own
        with torch.no_grad():
            out = model(x[None])[0]
        y = out.argmax(0) if data.task == "classification" else out  # a class, or a class per step
    seen = look_inside(model, x, y, LOSSES[data.task].make())
    tokens = data.text(x) if data.tokens else [f"{float(v[0]):.2f}" for v in x]
    known = "" if edit is not None else f" · answer **{truth(data, y)}**"
    st.markdown(f"The network says {answer_text(data, seen['output'])}{known}")
    chosen = min(int(ss.get("seq_step", len(tokens))), len(tokens)) - 1
    st.vega_lite_chart(spec=charts.arrow(sf.unrolled(tokens, np.linalg.norm(seen["h"], axis=1), chosen)),
                       key="seq_unrolled", on_select=_picked, selection_mode="pick")
    step = st.slider("Time step (selected in every chart below)", 1, len(tokens), len(tokens), key="seq_step") - 1
    target = ((int(y[-1]), len(tokens) - 1) if data.per_step else int(y) if data.task == "classification" else None)
    return Example(x, target, model, tokens, step, seen)


def _reached(cell: str, job) -> str:
    """When a race's cell first reached 95 % test accuracy, in a few words."""
    epochs = job.view()["epochs"]
    first = next((e["epoch"] for e in epochs if (e.get("test_acc") or 0) >= 0.95), None)
    if first is not None:
        return f"{cell} at epoch {first}"
    return f"{cell} not in {job.epoch} epoch{'s' * (job.epoch != 1)}" + ("" if job.active else " (done)")


def _picked() -> None:
    """A click on a step of the unrolled diagram selects that step everywhere (the slider too)."""
    points = ss["seq_unrolled"].selection.get("pick") or []
    if points and "t" in points[0]:
        ss["seq_step"] = int(points[0]["t"])


def truth(data, y: torch.Tensor) -> str:
    """The right answer, as answer_text says the network's."""
    if data.per_step:
        return "`" + " ".join(data.classes[int(k)] for k in y) + "`"
    if data.task == "classification":
        return data.classes[int(y)]
    return f"{float(y) * data.scale[1] + data.scale[0]:.3f}"


def look_closer(ex: Example) -> None:
    """The text coloured by one unit, the hidden states over the steps, and their path (PCA)."""
    T, H = ex.seen["h"].shape
    unit = st.number_input("Colour the text by unit", 1, H, 1, key="seq_unit") - 1
    st.html(_coloured(ex.tokens, ex.seen["h"][:, unit], ex.step))
    at = {"hidden hₜ": ex.seen["h"][ex.step, unit]} | {g: v[ex.step, unit] for g, v in ex.seen["gates"].items()}
    st.caption(f"Step {ex.step + 1} ({ex.tokens[ex.step]!r}), unit {unit + 1}: " +
               ", ".join(f"{k} {v:+.2f}" for k, v in at.items()) +
               (". Gates run from 0 (shut) to 1 (open)." if ex.seen["gates"] else "."))
    st.vega_lite_chart(spec=charts.arrow(sf.state_heatmap(ex.seen["h"], ex.tokens, "hidden state hₜ, step by step",
                                                          True, unit, ex.step)))
    if T >= 3 and H >= 2:
        xy, share = se.trajectory(ex.seen["h"])
        st.markdown("**The memory's path**: each step's hidden state, projected onto the two directions along "
                    "which it varies most (PCA). Steps that leave the state where it was change nothing.")
        st.vega_lite_chart(spec=charts.arrow(sf.trajectory(xy, ex.tokens, share, ex.step)))


def _coloured(tokens: list[str], values: np.ndarray, step: int) -> str:
    """The sequence's text, each step's background by the unit's value (orange −, blue +)."""
    spans = []
    for t, (tok, v) in enumerate(zip(tokens, np.clip(values, -1, 1))):
        rgb = (8, 119, 189) if v >= 0 else (245, 147, 34)
        border = "border-bottom:3px solid #d62728;" if t == step else ""
        shown = html.escape({" ": "␣", "\n": "⏎"}.get(tok, tok))
        spans.append(f'<span title="step {t + 1}: {v:+.2f}" style="background:rgba({rgb[0]},{rgb[1]},{rgb[2]},'
                     f'{abs(v):.2f});{border}padding:2px 1px;">{shown}</span>')
    return ('<div style="font-family:monospace;font-size:20px;line-height:1.9;word-break:break-all;">'
            + "".join(spans) + "</div>")


def why(ex: Example, data) -> None:
    """Which steps the answer rests on (Integrated Gradients, checked), and a unit put to the test."""
    x, target, model, tokens, step, seen = ex.x, ex.target, ex.model, ex.tokens, ex.step, ex.seen
    r = se.token_attributions(model, x, target)
    what = ("the forecast" if target is None else f"the score of **{data.classes[target[0]]}** at the last step"
            if isinstance(target, tuple) else f"the score of **{data.classes[target]}**")
    top = int(np.argmax(r.scores))
    st.markdown(f"**Which steps made the answer?** Most credit goes to **step {top + 1}** "
                f"({tokens[top]!r}). Each bar is a step's share of {what}, measured against a sequence of "
                "nothing but padding (Integrated Gradients).")
    st.vega_lite_chart(spec=charts.arrow(sf.attributions(tokens, r.scores, step)))
    said = (f"Completeness: the scores add up to {r.total:+.4f}; the output changed by {r.change:+.4f} (gap "
            f"{r.gap:.1e}, {r.points:,} points on the path).")
    if r.gap <= 1e-3 * max(1.0, abs(r.change)):
        st.caption(f"✅ {said} Where the padding baseline already leans to the answer, little is left to credit.")
    else:
        st.caption(f"⚠️ {said} The scores miss part of the change: somewhere on the path from padding to this "
                   "sequence the answer flips almost at once (the memory latches), and even this many points do not "
                   "resolve the jump. Read the scores as a rough guide.")
    if target is not None:
        st.vega_lite_chart(spec=charts.arrow(sf.deletion(se.faithfulness(model, x, target, r))))
        st.caption("Faithful scores make the answer's probability fall fastest when their top steps are blanked "
                   "first (lower area than a random order).")
    st.markdown("**Find a unit and test it.** Pick a span of steps: the units whose activity follows it are listed. "
                "Remove one (held at 0 at every step, inside the recurrence) and measure the test set again.")
    T = len(tokens)
    lo, hi = st.select_slider("Span of steps", list(range(1, T + 1)), (max(1, T // 3), max(1, 2 * T // 3)),
                              key=f"seq_span_{T}")
    found = se.tracking_units(seen["h"], (lo - 1, hi - 1))
    if not found:
        st.caption("Pick a span shorter than the whole sequence.")
        return
    st.dataframe([{"unit": u + 1, "follows the span (correlation)": round(r_, 2)} for u, r_ in found],
                 hide_index=True)
    units = st.multiselect("Units to remove", [u + 1 for u, _ in found], [found[0][0] + 1], key="seq_ablate")
    if units and st.button("✂️ Remove them and measure", key="seq_ablate_go"):
        res = se.ablation(model, data.x_test, data.y_test, LOSSES[data.task].make(), [u - 1 for u in units])
        ss["seq_ablation"] = (units, res)
    done = ss.get("seq_ablation")
    if done:
        units_, res = done
        line = f"Without unit{'s' * (len(units_) > 1)} {', '.join(map(str, units_))}: test loss " \
               f"{res['loss_with']:.3f} → **{res['loss_without']:.3f}**"
        if "acc_with" in res:
            line += f", accuracy {res['acc_with']:.1%} → **{res['acc_without']:.1%}**"
        st.info(line + ".", icon="✂️")


def write(job, data) -> None:
    """A language model writes: the next character's probabilities, then text drawn from them."""
    if job.epoch == 0:
        st.info("This network has not trained yet: it writes random characters. Train a few epochs first, then "
                "come back and write again.", icon="🎲")
    c = st.columns([2, 1, 1])
    sample = "".join(data.text(data.x_test[0])).lstrip(data.vocab[0])
    start = sample[-30:].split(" ", 1)[-1] if " " in sample[-30:] else sample[-30:]  # from a word's start
    prompt = c[0].text_input("Start with", start, key="seq_prompt", max_chars=200)
    temp = c[1].slider("Temperature", 0.0, 2.0, 0.7, 0.05, key="seq_temp",
                       help="Divides the scores before the softmax: near 0 always the likeliest character, 1 the "
                            "model's own odds, above 1 flatter and wilder.")
    length = c[2].slider("Characters", 20, 400, 200, 20, key="seq_len")
    model = frozen(job)
    st.vega_lite_chart(spec=charts.arrow(sf.char_probs(list(data.classes),
                                                       seqsources.next_char_probs(model, data, prompt, temp))))
    if st.button("✍️ Write", key="seq_write"):
        ss["seq_written"] = (prompt, seqsources.generate(model, data, prompt, length, temp, widgets.seed()))
    if ss.get("seq_written"):
        start, text = ss["seq_written"]
        st.code(start + text, language=None, wrap_lines=True)


def forecast(job, data) -> None:
    """The held-out future, forecast one step ahead, against persistence."""
    model = frozen(job)
    with torch.no_grad():
        pred = model(data.x_test).double()[:, 0].numpy()[::-1]
    mean, spread = data.scale
    actual = data.y_test[:, 0].double().numpy()[::-1] * spread + mean
    last = data.x_test[:, -1, 0].double().numpy()[::-1] * spread + mean
    naive = np.zeros_like(actual) if data.changes else last  # persistence: no change, or the last value again
    net_mse = float(((pred * spread + mean - actual) ** 2).mean())
    what = "change from the step before" if data.changes else "value"
    st.vega_lite_chart(spec=charts.arrow(sf.forecast(actual, pred * spread + mean, naive, what, data.changes)))
    base = seqsources.persistence_loss(data) * spread ** 2
    verdict = "beats" if net_mse < base else "does not beat"
    st.caption(f"Mean squared error on the held-out part: the network {net_mse:.4g}, persistence {base:.4g}: the "
               f"network {verdict} the naive forecast.")


def races(run, setup: SeqSetup, poll_s: float) -> None:
    """RNN, LSTM and GRU on the same task, data and seed; each race adds a point per cell to the
    memory horizon (best test accuracy against lag)."""
    data = run.extra["data"]
    jobs = run.extra.get("race")
    c = st.columns([1.5, 1, 2.5])
    label = SEQ_TASKS[setup.task].lag_label.split(" (")[0].lower()
    if c[0].button(f"🏁 Race all three ({label} {setup.lag})", key="seq_race", type="primary", width="stretch"):
        for old in (jobs or {}).values():
            old.stop()
        jobs = run.extra["race"] = race(setup, data, widgets.device())
        run.extra["race_lag"] = setup.lag
        for job in jobs.values():
            job.start()
    if jobs and any(j.active for j in jobs.values()) and c[1].button("⏸ Pause the race", key="seq_race_pause"):
        for job in jobs.values():
            job.pause()
    c[2].caption(f"RNN, LSTM and GRU each train {RACE_EPOCHS} epochs on the same data, from the same seed, with "
                 "the same settings. Race at several lags to draw the memory horizon.")
    if not jobs:
        return
    active = any(j.active for j in jobs.values())
    every = widgets.poll_interval(poll_s, {"busy": active, "state": "running"}) if active else None

    @st.fragment(run_every=every)
    def board():
        for job in jobs.values():
            job.watched()
        points = run.extra.setdefault("horizon", {})
        for cell, job in jobs.items():
            score = best(job, data.task)
            if score is not None and data.task == "classification":
                points[(cell, run.extra["race_lag"])] = score
        key = "test_acc" if data.task == "classification" else "test_loss"
        st.vega_lite_chart(spec=charts.arrow(sf.race({k: j.view()["epochs"] for k, j in jobs.items()}, key)))
        grads = {cell: snap["grad_h"] for cell, snap in ((c, j.snapshot()) for c, j in jobs.items()) if snap}
        if grads:
            st.markdown("**How far back each cell's learning signal reaches** now: ‖∂L/∂hₜ‖ for the same test "
                        "sequence. Where a line falls to nothing, that cell cannot learn from those steps.")
            st.vega_lite_chart(spec=charts.arrow(sf.gradient_through_time(grads, sf.CELL_COLOURS)))
        if data.task == "classification":
            st.markdown("**Reached 95 %:** " + ", ".join(_reached(c, j) for c, j in jobs.items()) + ".")
        if points:
            st.markdown("**Memory horizon**: the best test accuracy each cell reached, at each lag raced so far.")
            st.vega_lite_chart(spec=charts.arrow(sf.horizon(points)))
        if st.session_state.get("seq_race_was") and not any(j.active for j in jobs.values()):
            st.session_state["seq_race_was"] = False
            st.rerun()
        st.session_state["seq_race_was"] = any(j.active for j in jobs.values())

    board()

