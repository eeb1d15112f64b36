"""The Sequence Lab's real data and uploads: series split in time, a persistence baseline
computed independently, a language model's probabilities against softmax(logits / T), and
every kind of junk file turned into one plain sentence (SeqDataError), never a traceback."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from dl_core.data import seqsources, sequences
from dl_core.data.seqdata import SeqDataError
from dl_core.engine import Executor, ThreadBackend
from dl_core.seqlab import SeqSetup, make_job

POOL = Executor(ThreadBackend(1), unwatched_s=None)


def test_every_task_in_the_registry_makes_its_data_or_asks_for_an_upload():
    for key, task in sequences.SEQ_TASKS.items():
        if task.upload:
            assert task.make is None
            continue
        data = sequences.make(key, 300, task.lags[2], 1)
        assert len(data.x_train) > len(data.x_test) > 0, key
        assert data.task == {"forecast": "regression", "language": "classification"}.get(task.kind, data.task), key


def test_a_series_is_forecast_into_its_future_in_the_training_scale():
    values = np.arange(100.0) ** 1.5
    data = seqsources.series_task(values, "t", 10, "test")
    mean, spread = data.scale
    back = data.y_test[:, 0].double() * spread + mean  # undo the scaling
    assert float(back[0]) == pytest.approx(values[-1], rel=1e-5)  # the first test window ends the series
    latest_train = float(data.y_train[:, 0].max()) * spread + mean
    assert latest_train < float(back.min())  # no test target lies in the training part
    assert mean == pytest.approx(values[:100 - 90 // 4].mean())  # scaled by the training part alone
    changes = seqsources.series_task(values, "t", 10, "test", changes=True)
    assert float(changes.y_test[0, 0]) * changes.scale[1] + changes.scale[0] == pytest.approx(values[-1] - values[-2],
                                                                                                rel=1e-4)


def test_the_persistence_baseline_is_the_last_value_or_no_change():
    data = sequences.make("sunspots", 0, 10, 1)
    assert seqsources.persistence_loss(data) == pytest.approx(
        float(((data.x_test[:, -1, 0] - data.y_test[:, 0]) ** 2).mean()), rel=1e-5)
    co2 = sequences.make("co2", 0, 10, 1)
    zero = -co2.scale[0] / co2.scale[1]  # a change of 0, in the scaled units
    assert seqsources.persistence_loss(co2) == pytest.approx(float(((co2.y_test[:, 0] - zero) ** 2).mean()), rel=1e-5)


def _train(task: str, seconds: float, **kw):
    job, _, data = make_job(SeqSetup(task=task, lag=sequences.SEQ_TASKS[task].lags[2], **kw))
    job.executor, job._want_run = POOL, True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job.advance(None, seconds)
    return job, data


def test_the_sunspot_forecaster_beats_persistence():
    job, data = _train("sunspots", 4, cell="GRU")
    assert min(e["test_loss"] for e in job.view()["epochs"]) < 0.6 * seqsources.persistence_loss(data)


def test_the_language_model_beats_the_commonest_character_and_its_probabilities_are_softmax_over_t():
    job, data = _train("docs", 10, cell="GRU", n_samples=6000)
    common = np.bincount(data.y_test.numpy()).max() / len(data.y_test)
    assert job.view()["epochs"][-1]["test_acc"] > common + 0.1
    model = job.model
    context = "The function returns "
    codes = [data.vocab.index(c) for c in context[-data.length:]]
    with torch.no_grad():
        logits = model.eval()(torch.tensor([[0] * (data.length - len(codes)) + codes]))[0].double()
    for t in (0.3, 1.0, 2.0):
        p = seqsources.next_char_probs(model, data, context, t)
        np.testing.assert_allclose(p, torch.softmax(logits / t, 0).numpy(), rtol=1e-6, atol=1e-9)
    entropy = [float(-(p * np.log(p + 1e-12)).sum()) for p in
               (seqsources.next_char_probs(model, data, context, t) for t in (0.3, 1.0, 2.0))]
    assert entropy[0] < entropy[1] < entropy[2]  # a low temperature sharpens, a high one flattens
    greedy = seqsources.generate(model, data, context, 5, 0.0, seed=1)
    assert greedy[0] == data.classes[int(logits.argmax())] and len(greedy) == 5
    assert greedy == seqsources.generate(model, data, context, 5, 0.0, seed=2)  # no chance at T → 0


JUNK = {
    "empty": b"",
    "binary": bytes(range(256)) * 8,
    "latin-1": "café ".encode("latin-1") * 200,
    "zip header": b"PK\x03\x04" + b"\x00" * 600,
    "too big": b"a" * (seqsources.MAX_UPLOAD_BYTES + 1),
    "whitespace": b" \n\t " * 300,
    "short": b"hello",
}
SERIES_JUNK = JUNK | {
    "words": b"value\nten\neleven\n" * 20,
    "nan": b"\n".join([b"1", b"nan"] * 30),
    "inf": b"\n".join([b"1", b"inf"] * 30),
    "constant": b"\n".join([b"7"] * 50),
    "huge": b"\n".join([b"1e300", b"-1e300"] * 30),
    "too long": b"\n".join([b"1", b"2"] * 60_000),
    "empty rows": b",,,\n" * 100,
    "ragged": b"a,b\n1\n2,3,4\n" * 20 + b"x",
}


@pytest.mark.parametrize("junk", list(JUNK))
def test_junk_text_uploads_become_one_plain_sentence(junk):
    with pytest.raises(SeqDataError) as err:
        seqsources.parse_text(JUNK[junk])
    assert "\n" not in str(err.value) and str(err.value).endswith((".", ")"))


@pytest.mark.parametrize("junk", list(SERIES_JUNK))
def test_junk_series_uploads_become_one_plain_sentence(junk):
    with pytest.raises(SeqDataError) as err:
        seqsources.parse_series(SERIES_JUNK[junk])
    assert "\n" not in str(err.value) and str(err.value).endswith((".", ")"))


def test_good_uploads_make_tasks_and_odd_characters_are_read_as_rare():
    text = seqsources.parse_text(("Ünïcödé ✓ " + "the cat sat on the mat. " * 40).encode("utf-8-sig"))
    data = sequences.from_upload("my_text", text, 500, 20, 1, "cats.txt")
    assert data.length == 20 and "cats.txt" in data.source and data.task == "classification"
    wide = "".join(chr(0x4E00 + k) for k in range(200)) * 5  # 200 distinct characters
    assert seqsources.RARE in sequences.from_upload("my_text", wide, 300, 10, 1, "w.txt").vocab
    values = seqsources.parse_series(b"date,value\n" + b"\n".join(f"2020-{i},{np.sin(i / 3):.4f}".encode()
                                                                  for i in range(80)))
    assert len(values) == 80
    data = sequences.from_upload("my_series", values, 0, 12, 1, "s.csv")
    assert data.task == "regression" and data.x_train.shape[1:] == (12, 1)
    with pytest.raises(SeqDataError):  # a window longer than the series allows
        sequences.from_upload("my_series", values[:30], 0, 150, 1, "s.csv")
