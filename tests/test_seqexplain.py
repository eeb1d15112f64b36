"""The Sequence Lab's explanations against their oracles: Integrated Gradients' completeness,
a trained recall network's attribution on the one step that holds the answer, deletion
curves that fall faster in attribution order, ablations that are exact where the answer is
known, and units found where they were planted."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from dl_core import seqexplain as se
from dl_core.engine import Executor, ThreadBackend
from dl_core.recurrence import parts
from dl_core.seqlab import CELLS, SeqSetup, make_job

POOL = Executor(ThreadBackend(1), unwatched_s=None)


def _trained(setup: SeqSetup, epochs: int):
    job, spec, data = make_job(setup)
    job.executor, job._want_run = POOL, True
    per_epoch = -(-len(data.x_train) // job.config.batch_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job.advance(per_epoch * epochs, 120)
    return job, data


@pytest.mark.parametrize("task,cell", [("recall", "LSTM"), ("names", "GRU"), ("adding", "RNN"), ("sunspots", "LSTM"),
                                       ("docs", "GRU"), ("depth_steps", "LSTM")])
def test_attributions_add_up_to_the_change_in_output_completeness(task, cell):
    job, _, data = make_job(SeqSetup(task=task, cell=cell, lag=20, n_samples=200))
    x = data.x_test[0]
    target = ((int(data.y_test[0, -1]), data.length - 1) if data.per_step else
              int(data.y_test[0]) if data.task == "classification" else None)
    r = se.token_attributions(job.model, x, target)
    with torch.no_grad():  # the oracle: the model itself at the input and at the baseline
        out = job.model.eval()(torch.stack([x, torch.zeros_like(x)]))
        out = out[:, target[0], target[1]] if data.per_step else out[:, target or 0]
    assert r.change == pytest.approx(float(out[0] - out[1]), abs=1e-6)
    assert r.scores.shape == (data.length,)
    assert abs(r.scores.sum() - r.change) < 1e-4 and r.gap < 1e-4


def test_a_trained_recall_network_credits_the_first_step_and_deleting_it_first_hurts_most():
    job, data = _trained(SeqSetup(task="recall", lag=12, cell="GRU", n_samples=1200), 8)
    assert job.view()["epochs"][-1]["test_acc"] > 0.95
    scores = []
    for i in range(8):
        x, y = data.x_test[i], int(data.y_test[i])
        r = se.token_attributions(job.model, x, y)
        scores.append(r.scores)
        curves = se.faithfulness(job.model, x, y, r)
        assert curves["most attributed first"].area < curves["random order"].area
    # The answer lies at step 0, and that is where the credit goes, on average. (Not in every
    # example: where the all-padding baseline already leans to the answer, little is left to
    # explain, and IG spreads it thin: a lesson about baselines the page states.)
    assert int(np.argmax(np.mean(scores, 0))) == 0


@pytest.mark.parametrize("cell", CELLS)
def test_ablation_is_exact_where_the_answer_is_known(cell):
    job, _, data = make_job(SeqSetup(task="recall", lag=8, cell=cell, hidden=6, n_samples=200))
    model = job.model.eval()
    x = data.x_test[:20]
    with torch.no_grad():
        torch.testing.assert_close(se.forward_without(model, x, []), model(x), rtol=1e-5, atol=1e-6)
        # every unit removed: the answer comes from the output layer's bias alone
        _, _, after = parts(model)
        torch.testing.assert_close(se.forward_without(model, x, list(range(6))),
                                   after(torch.zeros(20, data.length, 6)), rtol=1e-5, atol=1e-6)
        # a unit nothing reads from (its recurrent and output weights at 0) changes nothing when removed
        rnn, head = parts(model)[1], model.layers[-1]
        rnn.weight_hh_l0[:, 2] = 0
        head.weight[:, 2] = 0
        torch.testing.assert_close(se.forward_without(model, x, [2]), model(x), rtol=1e-5, atol=1e-6)
    res = se.ablation(model, x, data.y_test[:20], torch.nn.CrossEntropyLoss(), [0, 1])
    assert set(res) == {"loss_with", "loss_without", "acc_with", "acc_without"}


def test_units_are_found_where_they_were_planted():
    rng = np.random.default_rng(0)
    h = rng.normal(0, 0.3, (30, 8))
    h[10:16, 5] += 2.0  # unit 5 lights up inside steps 10-15
    h[:, 2] = -h[:, 5]  # unit 2 is its mirror image
    found = se.tracking_units(h, (10, 15), top=3)
    assert {u for u, _ in found[:2]} == {2, 5} and found[0][1] == pytest.approx(-found[1][1])
    assert se.tracking_units(h, (0, 29)) == []  # no inside and outside: nothing to track


def test_the_trajectory_keeps_the_states_main_directions():
    t = np.linspace(0, 4 * np.pi, 50)
    h = np.stack([np.cos(t), np.sin(t) * 0.5, np.zeros(50), 0.01 * np.cos(3 * t)], 1) @ np.eye(4)[[2, 0, 3, 1]]
    xy, share = se.trajectory(h)
    assert xy.shape == (50, 2) and share[0] >= share[1] and share.sum() > 0.99
