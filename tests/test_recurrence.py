"""The Sequence Lab's engine against its oracles: hand-run cell equations against torch.nn's
fused RNN, LSTM and GRU; gradients through time against autograd on the module; the data's
answers against their definitions; and memory that really works (and fails)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from dl_core.data import sequences
from dl_core.engine import Executor, ThreadBackend
from dl_core.layers import Recurrent
from dl_core.recurrence import GATE_NAMES, look_inside, parts, spectrum, unroll
from dl_core.seqlab import CELLS, SeqSetup, make_job, seq_spec
from dl_core.spec import build

POOL = Executor(ThreadBackend(1), unwatched_s=None)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_the_hand_run_equations_reproduce_the_torch_module_and_its_gradients(cell, layers):
    torch.manual_seed(0)
    rnn = Recurrent(cell, 5, 7, layers).cell
    x = torch.randn(3, 11, 5, requires_grad=True)
    ours = unroll(rnn, x)
    theirs, _ = rnn(x)
    torch.testing.assert_close(ours["output"], theirs, rtol=1e-5, atol=1e-6)
    assert set(ours["layers"][-1]["gates"]) == set(GATE_NAMES[cell])
    if cell == "LSTM":  # h = o · tanh(c): the page's cell state is the one the outputs come from
        last = ours["layers"][-1]
        torch.testing.assert_close(torch.stack(last["h"], 1), last["gates"]["output"] * torch.tanh(last["c"]))
    weights = torch.randn_like(theirs)
    (g_ours,) = torch.autograd.grad((ours["output"] * weights).sum(), x)
    (g_theirs,) = torch.autograd.grad((theirs * weights).sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-6)


def test_the_gradient_through_time_is_autograds_and_fades_for_a_plain_rnn():
    """‖∂L/∂hₜ‖ read off the unrolled graph equals autograd's for a loss on the last output,
    and for an untrained tanh RNN with small weights it shrinks going back in time."""
    data = sequences.make("recall", 50, 30, 0)
    model = build(seq_spec(data, "RNN", 16, 1, 8), 0)
    with torch.no_grad():
        parts(model)[1].weight_hh_l0.mul_(0.3)
    seen = look_inside(model, data.x_test[0], data.y_test[0], torch.nn.CrossEntropyLoss())
    before, rnn, after = parts(model)
    states = before(data.x_test[:1])
    run = unroll(rnn, states)
    loss = torch.nn.functional.cross_entropy(after(run["output"]), data.y_test[:1])
    grads = torch.autograd.grad(loss, run["layers"][-1]["h"])
    assert seen["grad_h"] == pytest.approx([float(g.norm()) for g in grads], rel=1e-5)
    assert seen["grad_h"][0] < 1e-3 * seen["grad_h"][-1]
    inputs = before(data.x_test[:1]).detach().requires_grad_()  # each input's pull, through torch's own module
    torch.nn.functional.cross_entropy(after(rnn(inputs)[0]), data.y_test[:1]).backward()
    assert seen["input_grad"] == pytest.approx(inputs.grad[0].norm(dim=-1).tolist(), rel=1e-4, abs=1e-12)


def test_the_tasks_answers_follow_their_definitions():
    r = sequences.make("recall", 200, 12, 3)
    assert r.length == 13 and bool((r.x_train[:, 0] - 1 == r.y_train).all())
    assert bool((r.x_train >= 1).all() & (r.x_train <= 4).all())  # the same four symbols all along
    a = sequences.make("adding", 200, 12, 3)
    assert a.x_train.shape[1:] == (14, 2) and bool((a.x_train[..., 1].sum(1) == 2).all())
    torch.testing.assert_close((a.x_train[..., 0] * a.x_train[..., 1]).sum(1, keepdim=True), a.y_train)
    p = sequences.make("parens", 200, 20, 3)
    steps = torch.where(p.x_train == 1, 1, torch.where(p.x_train == 2, -1, 0))
    assert bool((steps.cumsum(1) >= 0).all()) and torch.equal(steps.sum(1), p.y_train)
    d = sequences.make("depth_steps", 200, 20, 3)  # a label per step: the running depth
    steps = torch.where(d.x_train == 1, 1, torch.where(d.x_train == 2, -1, 0))
    assert d.per_step and torch.equal(steps.cumsum(1), d.y_train)
    rb = sequences.make("reber", 100, 20, 3)
    for x, y in zip(rb.x_train, rb.y_train):
        text = "".join(rb.text(x)).lstrip(sequences.PAD)
        assert text[0] == "B" and text[1] == rb.classes[int(y)] and text[2] == "B" and text[-1] == "E"
        state = 0  # the inner string is a Reber string, at least 20 symbols long
        for symbol in text[3:-1]:
            state = dict(sequences.REBER[state])[symbol]
        assert state == 5 and len(text) - 2 >= 20
    n = sequences.make("names", 6000, 12, 3)
    assert len(n.classes) == 6 and np.bincount(torch.cat([n.y_train, n.y_test]).numpy()).min() >= 300
    assert all(len(set(n.text(x))) > 1 for x in n.x_train[:20])


def test_the_spectrum_has_one_set_of_singular_values_per_gate():
    rnn = Recurrent("GRU", 3, 6).cell
    s = spectrum(rnn)
    assert list(s) == list(GATE_NAMES["GRU"]) and all(len(v) == 6 for v in s.values())


def _train(task: str, lag: int, cell: str, seed: int, seconds: float) -> float:
    job = make_job(SeqSetup(task=task, lag=lag, cell=cell, seed=seed, n_samples=1200))[0]
    job.executor, job._want_run = POOL, True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job.advance(None, seconds)
    return job.view()["epochs"][-1]["test_acc"]


def _epochs_to(goal: float, cell: str, lag: int, seed: int, max_epochs: int) -> int | None:
    """Epochs of the default recall task until test accuracy reaches `goal` (None: not within max_epochs)."""
    job = make_job(SeqSetup(task="recall", lag=lag, cell=cell, seed=seed))[0]
    job.executor, job._want_run = POOL, True
    per_epoch = -(-len(job.trainer.data.x_train) // job.config.batch_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in range(1, max_epochs + 1):
            job.advance(per_epoch, 60)
            if job.view()["epochs"][-1]["test_acc"] >= goal:
                return epoch
    return None


def _epochs_one_thread(args) -> int | None:
    torch.set_num_threads(1)  # two of these share the two cores
    return _epochs_to(*args)


def test_lstm_and_gru_recall_a_symbol_100_steps_back_where_a_plain_rnn_fails():
    """The lab's claim, measured: at lag 100 (the default) the gated cells reach 95 % within 40
    epochs in seeds 1, 2 and 3; the plain RNN does not, in the same budget. Seven trainings of
    10-40 epochs: two at a time, in processes of their own."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    assert SeqSetup().lag == 100
    runs = [(cell, seed) for seed in (1, 2, 3) for cell in ("LSTM", "GRU")] + [("RNN", 1)]
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        epochs = dict(zip(runs, pool.map(_epochs_one_thread, [(0.95, c, 100, s, 40) for c, s in runs])))
    assert all(epochs[run] is not None for run in runs[:-1]), epochs
    assert epochs[("RNN", 1)] is None


def test_the_names_classifier_beats_the_commonest_language_by_far():
    acc = _train("names", 12, "GRU", 1, 12)
    assert acc > 0.45  # six languages, equally many names each: the commonest is 1/6


def test_the_exported_code_rebuilds_the_same_recurrent_network():
    from dl_core.export import script

    job, spec, data = make_job(SeqSetup(task="recall", lag=6, cell="LSTM", hidden=8, n_samples=60))
    ns: dict = {}
    exec(compile(script(spec, job.config), "model.py", "exec"), ns)
    twin = ns["Net"]()
    twin.load_state_dict(job.model.state_dict())
    job.model.eval()
    twin.eval()
    torch.testing.assert_close(twin(ns["features"](data.x_test.tolist())), job.model(data.x_test))


def test_a_sequence_labeller_guesses_at_every_step_and_its_code_rebuilds_it():
    from dl_core.export import script

    job, spec, data = make_job(SeqSetup(task="depth_steps", lag=9, cell="GRU", hidden=8, n_samples=80))
    out = job.model(data.x_test)
    assert out.shape == (len(data.x_test), 5, 9)  # classes first, as torch's cross-entropy takes them
    ns: dict = {}
    exec(compile(script(spec, job.config), "model.py", "exec"), ns)
    twin = ns["Net"]()
    twin.load_state_dict(job.model.state_dict())
    torch.testing.assert_close(twin.eval()(data.x_test), job.model.eval()(data.x_test))
    seen = look_inside(job.model, data.x_test[0], data.y_test[0], torch.nn.CrossEntropyLoss())
    assert seen["output"].shape == (5, 9) and len(seen["grad_h"]) == 9
    measured = job.evaluate()  # accuracy: the share of steps labelled right, the oracle computed here
    with torch.no_grad():
        right = (job.model.eval()(data.x_test).argmax(1) == data.y_test).float().mean()
    assert measured["test_acc"] == pytest.approx(float(right), abs=1e-6)
    assert measured["confusion"].sum() == data.y_test.numel()


def test_dropout_between_layers_is_torchs_own_and_the_exported_code_keeps_it():
    from dl_core.export import script

    job, spec, data = make_job(SeqSetup(task="recall", lag=6, cell="GRU", hidden=8, layers=2, dropout=0.3,
                                        n_samples=60))
    rnn = parts(job.model)[1]
    assert rnn.dropout == 0.3
    code = script(spec, job.config)
    assert "dropout=0.3" in code
    one = make_job(SeqSetup(task="recall", lag=6, layers=1, dropout=0.3, n_samples=60))[0]
    assert parts(one.model)[1].dropout == 0  # nothing to drop between: one layer
