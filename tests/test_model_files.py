"""Every bad model file is refused with a sentence or two for a learner, never a traceback,
and no file ever runs code when opened."""
import pickle
import re

import pytest
import torch

from dl_core import checkpoint
from dl_core.checkpoint import CheckpointError, load_bytes
from modelfiles import MARKER, SPEC, corpus, good_checkpoint, good_model, small_limit

pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch, on the non-torch pickles
LAB = "playground"
with small_limit():
    FILES = corpus(LAB)

# What each kind of bad file must be told as (first matching name prefix).
EXPECTED = {
    "empty": "empty", "too_large": "too large", "gzip": "compressed",
    "truncated_header": "not a model file at all",
    "truncated": "damaged or cut short", "flipped": "damaged or cut short",
    "pickle_": "refused for safety and nothing ran", "torch_save_payload": "refused for safety and nothing ran",
    "plain_tensor": "format tag", "dict_without_tag": "format tag",
    "other_lab": "another lab, “gradflow”", "other_shapes": "do not fit .* layer 1, Linear",
    "garbage_spec": "network described in this file is invalid", "invalid_spec": "invalid \\(layer 1\\)",
    "missing_weights": "incomplete", "garbage_meta": "incomplete",
    "too_many_layers": "300 layers; this app builds at most 256",
}
INTERNALS = re.compile(r"\x1b|torch|traceback|pickl|weights_only|_reconstruct|state_dict|\w+(error|exception|warning)\b"
                       r"|badzipfile|stopiteration|global|[/\\]|\.pkl|\.py\b|line \d|0x[0-9a-f]", re.I)


def expected(name: str) -> str:
    return next((v for k, v in EXPECTED.items() if name.startswith(k)), "not a model file at all")


@pytest.fixture(autouse=True)
def limit_and_marker():
    MARKER.unlink(missing_ok=True)
    with small_limit():
        yield
    assert not MARKER.exists(), "a model file ran code when it was opened"


@pytest.mark.parametrize("name", list(FILES))
def test_bad_files_are_refused_in_plain_words(name):
    with pytest.raises(CheckpointError) as info:
        load_bytes(FILES[name], lab=LAB)
    message = str(info.value)
    assert re.search(expected(name), message), message
    assert not INTERNALS.search(message), message
    assert len(message) <= 200 and message.endswith(".") and message[0].isupper(), message
    assert len(re.split(r"(?<=[.!?])\s+", message)) <= 2, message


def test_the_payloads_are_real_so_refusing_them_means_something(tmp_path):
    marker = tmp_path / "ran"
    files = corpus(LAB, marker=marker)
    pickle.loads(files["pickle_open_payload"]).close()  # what an unsafe loader would do
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError, match="nothing ran"):
        load_bytes(files["pickle_open_payload"])
    assert not marker.exists()


def test_corpus_covers_every_message_and_builds_fast():
    import time

    start = time.perf_counter()
    corpus("cnn")
    assert time.perf_counter() - start < 1.0
    assert len(FILES) >= 30 and max(map(len, FILES.values())) <= checkpoint.MAX_BYTES + 1


def test_a_good_file_round_trips_with_the_same_predictions():
    _, model = good_model(seed=3)
    spec, loaded, meta = load_bytes(checkpoint.save_bytes(SPEC, model, {"seed": 3}, lab=LAB), lab=LAB)
    assert spec == SPEC and meta == {"seed": 3}
    x = torch.randn(7, 2)
    torch.testing.assert_close(loaded(x), model(x))


def test_lab_tags_are_checked_only_when_both_sides_have_one():
    load_bytes(good_checkpoint("cnn"), lab="cnn")
    load_bytes(good_checkpoint("cnn"))  # a caller that does not care
    load_bytes(good_checkpoint(None), lab="cnn")  # files saved before lab tags existed
    with pytest.raises(CheckpointError, match="another lab, “CNN Lab”, so it cannot be opened here"):
        load_bytes(good_checkpoint("cnn"), lab="playground", titles={"cnn": "CNN Lab"})
    with pytest.raises(CheckpointError, match="another lab, “cnn”"):
        load_bytes(good_checkpoint("cnn"), lab="playground")
    with pytest.raises(CheckpointError, match="^This model was saved in another lab, so"):
        load_bytes(good_checkpoint("\x1b[31mevil/../path"), lab="playground")  # never echoed


def test_model_files_are_refused_on_a_torch_that_would_let_them_run_code(monkeypatch):
    """torch.load(weights_only=True) could run code before torch 2.10 (CVE-2025-32434 and a later advisory)."""
    assert checkpoint.torch_is_safe("2.10.0") and checkpoint.torch_is_safe("2.14.1+cu130")
    assert not checkpoint.torch_is_safe("2.5.1") and not checkpoint.torch_is_safe("2.9.0+cpu")
    monkeypatch.setattr(checkpoint.torch, "__version__", "2.5.1")
    with pytest.raises(CheckpointError, match=r"PyTorch \(2\.5\.1\) is too old to open model files safely"):
        load_bytes(good_checkpoint())


def test_a_spec_of_400000_layers_is_refused_before_anything_is_built():
    import json
    import time

    from dl_core.spec import ModelSpec, SpecError

    text = json.dumps({"input_shape": [2], "layers": [{"kind": "activation", "fn": "relu"}] * 400_000})
    start = time.perf_counter()
    with pytest.raises(SpecError, match=r"too long for this app \(14,844 KB; the limit is 256 KB\)"):
        ModelSpec.from_json(text)  # the 14.5 MiB description of the report
    with pytest.raises(SpecError, match="has 400,000 layers; this app builds at most 256"):
        ModelSpec.from_dict(json.loads(text))
    assert time.perf_counter() - start < 2.0  # it cost 21.8 s and 1.2 GB before a lab refused it
    with pytest.raises(SpecError, match=r"too long for this app \(300 KB; the limit is 256 KB\)"):
        ModelSpec.from_json(" " * (300 * 1024) + SPEC.to_json())
