import io
from dataclasses import replace

import numpy as np
import pytest
import torch

from dl_core.activations import ACTIVATIONS
from dl_core.checkpoint import CheckpointError, load_bytes, save_bytes
from dl_core.export import script
from dl_core.spec import LAYERS, PARAM_BUDGET, LayerSpec, ModelSpec, SpecError, build, mlp_spec, summarize


def spec_with(*layers, n_in=2, task="classification"):
    return ModelSpec((n_in,), tuple(layers), task)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_summary_matches_the_built_pytorch_model(act):
    spec = mlp_spec(3, [8, 5], act, 4, dropout=0.1, batchnorm=True)
    rows = summarize(spec)
    model = build(spec, seed=0)
    assert len(rows) == len(model.layers) == len(spec.layers)
    for row, module in zip(rows, model.layers):
        assert row.params == sum(p.numel() for p in module.parameters())
    model.eval()
    x = torch.randn(6, 3)
    shape = x
    for row, module in zip(rows, model.layers):
        shape = module(shape)
        assert tuple(shape.shape[1:]) == row.out_shape


def test_every_layer_type_is_used_by_the_mlp_builder_or_a_cnn_preset():
    from dl_core.data import sequences
    from dl_core.deepnets import deep_spec
    from dl_core.presets import PRESETS, preset_spec
    from dl_core.seqlab import seq_spec

    kinds = {l.kind for l in mlp_spec(2, [4], "relu", 2, dropout=0.2, batchnorm=True).layers}
    kinds |= {l.kind for l in deep_spec(2, 3, 4, "relu", 2, residual=True).layers}
    for key in PRESETS:
        kinds |= {l.kind for l in preset_spec(key, (1, 8, 8), 3).layers}
    kinds |= {l.kind for l in seq_spec(sequences.make("recall", 20, 5, 0), "GRU", 4, 1, 3).layers}
    kinds |= {l.kind for l in seq_spec(sequences.make("depth_steps", 20, 5, 0), "GRU", 4, 1, 3).layers}
    assert kinds == set(LAYERS)


@pytest.mark.parametrize("layers, message, where", [
    ((LayerSpec.of("linear", out_features=0),), "Layer 1 .* 0 neurons", 1),
    ((LayerSpec.of("linear", out_features=4), LayerSpec.of("linear", out_features=100_000)), "Layer 2 .* 4,096", 2),
    ((LayerSpec.of("linear", out_features=4), LayerSpec.of("activation", fn="swish")), "unknown activation", 2),
    ((LayerSpec.of("dropout", p=1.0), LayerSpec.of("linear", out_features=2)), "Layer 1 .*Dropout", 1),
    ((LayerSpec.of("conv9d"),), "unknown type", 1),
    ((LayerSpec.of("linear", out_features=1),), "at least 2 outputs", 1),
])
def test_invalid_stacks_are_explained_at_the_offending_layer(layers, message, where):
    with pytest.raises(SpecError, match=message) as info:
        summarize(spec_with(*layers))
    assert info.value.layer == where


def test_parameter_budget_refuses_huge_models():
    spec = mlp_spec(2, [4096, 4096], "relu", 2)
    with pytest.raises(SpecError, match="over this app's budget"):
        build(spec)
    assert sum(r.params for r in summarize(mlp_spec(2, [64] * 8, "relu", 8))) < PARAM_BUDGET


def test_empty_specs_are_refused():
    with pytest.raises(SpecError, match="no layers"):
        summarize(spec_with())
    with pytest.raises(SpecError, match="input feature"):
        summarize(spec_with(LayerSpec.of("linear", out_features=2), n_in=0))


def test_spec_json_round_trip_and_malformed_json():
    spec = mlp_spec(2, [8, 8], "tanh", 3, dropout=0.25, input_names=("x", "y"))
    assert ModelSpec.from_json(spec.to_json()) == spec
    with pytest.raises(SpecError):
        ModelSpec.from_json('{"layers": 3}')
    with pytest.raises(SpecError, match="not valid JSON"):
        ModelSpec.from_json("{")


@pytest.mark.parametrize("task, features", [("classification", ("x", "y", "xy", "sinx")), ("regression", ("x", "y2"))])
def test_exported_code_reproduces_the_model(task, features):
    from dl_core.data.data2d import feature_matrix, input_code

    spec = replace(mlp_spec(len(features), [6, 5], "tanh", 3 if task == "classification" else 1, task,
                            batchnorm=True, input_names=features), input_code=input_code(features))
    model = build(spec, seed=3)
    with torch.no_grad():  # make batch-norm statistics non-trivial
        model.train()
        model(torch.randn(64, len(features)) * 3)
    model.eval()
    ns: dict = {}
    exec(compile(script(spec), "model.py", "exec"), ns)
    twin = ns["Net"]()
    twin.load_state_dict(model.state_dict())
    twin.eval()
    pts = np.random.default_rng(0).uniform(-6, 6, (50, 2)).astype(np.float32)
    ours = model(torch.tensor(feature_matrix(pts, features)))
    theirs = twin(ns["features"](torch.tensor(pts)))
    torch.testing.assert_close(theirs, ours)
    trained = ns["train"](ns["features"](torch.tensor(pts)), torch.tensor((pts[:, 0] > 0).astype(np.int64))
                          if task == "classification" else torch.tensor(pts[:, :1]), epochs=2)
    assert isinstance(trained, torch.nn.Module)


def _image_spec():
    from dl_core.presets import preset_spec

    return preset_spec("tiny_vgg", (1, 8, 8), 3)


def _playground_spec():
    from dl_core import playground

    return playground.make_job(playground.Setup(features=("x", "sinx", "xy"), hidden=(4,)))[1]


def _sequence_spec():
    from dl_core import seqlab

    return seqlab.make_job(seqlab.SeqSetup(task="parens", lag=6, cell="GRU", hidden=8, layers=2, n_samples=40))[1]


@pytest.mark.parametrize("make_spec", [_image_spec, _playground_spec, _sequence_spec],
                         ids=["image, no features", "features", "tokens through a recurrent layer"])
def test_exported_script_runs_as_a_program_with_or_without_an_input_transform(make_spec, capsys, monkeypatch):
    spec = make_spec()
    code = script(spec)
    assert ("def features(" in code) == (spec.input_code is not None)
    monkeypatch.setattr("sys.argv", ["model.py"])
    exec(compile(code, "model.py", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out  # it trained on made-up data, then predicted
    assert "accuracy: " in out or "mean squared error: " in out


def test_the_exported_script_runs_as_printed_on_the_apps_own_files_and_predicts_as_the_app(tmp_path):
    """It said "Run it: python model.py", but its load line failed on the app's own model file,
    it trained on random labels and printed raw scores."""
    import subprocess
    import sys

    from dl_core import playground
    from dl_core.data.data2d import feature_matrix, parse_csv, to_csv

    job, spec, ds = playground.make_job(playground.Setup(dataset="xor", features=("x", "y", "xy"), hidden=(6,)))
    job.advance(max_batches=400, max_seconds=60)  # trained in this thread: no executor needed
    (tmp_path / "model.py").write_text(script(spec, job.config))
    (tmp_path / "model.pt").write_bytes(save_bytes(spec, job.model))
    (tmp_path / "data.csv").write_text(to_csv(ds))
    usage = script(spec).split('"""')[1]
    assert "python model.py model.pt [data.csv]" in usage and "python model.py data.csv" in usage

    def run(*args) -> list[str]:
        done = subprocess.run([sys.executable, "model.py", *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.splitlines()

    points = parse_csv((tmp_path / "data.csv").read_bytes())  # the learner's data, as downloaded
    job.model.eval()
    with torch.no_grad():
        app = job.model(torch.as_tensor(feature_matrix(points.points, ("x", "y", "xy")))).argmax(dim=1)
    accuracy = (app.numpy() == points.targets).mean()
    assert run("model.pt", "data.csv") == [f"predicted classes (first 10): {app[:10].tolist()}",
                                           f"accuracy: {accuracy:.4f}"]
    assert accuracy > 0.8  # a trained network, not chance
    assert run("data.csv")[-1].startswith("accuracy: ") and run()[-1].startswith("accuracy: ")


def test_checkpoint_round_trip_keeps_spec_weights_and_meta():
    spec = mlp_spec(2, [8], "relu", 2, input_names=("x", "y"))
    model = build(spec, seed=1)
    data = save_bytes(spec, model, {"dataset": "circle"})
    spec2, model2, meta = load_bytes(data)
    assert spec2 == spec and meta == {"dataset": "circle"}
    x = torch.randn(5, 2)
    torch.testing.assert_close(model2(x), model(x))


def test_checkpoints_that_are_corrupt_or_foreign_are_refused_without_running_code():
    spec = mlp_spec(2, [8], "relu", 2)
    good = save_bytes(spec, build(spec))
    with pytest.raises(CheckpointError, match="empty"):
        load_bytes(b"")
    with pytest.raises(CheckpointError, match="not a model saved"):
        load_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="not a model saved|format"):
        load_bytes(b"PK\x03\x04 definitely not torch")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    torch.save({"format": "x", "payload": Evil()}, buf)
    with pytest.raises(CheckpointError, match="not a model saved"):
        load_bytes(buf.getvalue())
    other = io.BytesIO()
    torch.save({"some": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="format tag"):
        load_bytes(other.getvalue())
    wrong = mlp_spec(2, [9], "relu", 2)
    blob = torch.load(io.BytesIO(good), weights_only=True)
    blob["spec"] = wrong.to_json()
    bad = io.BytesIO()
    torch.save(blob, bad)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_bytes(bad.getvalue())


@pytest.mark.parametrize("optimizer", list(__import__("dl_core.optim", fromlist=["OPTIMIZERS"]).OPTIMIZERS))
def test_exported_code_trains_with_the_jobs_own_optimizer(optimizer):
    from dl_core.engine import TrainConfig
    from dl_core.optim import OPTIMIZERS

    spec = mlp_spec(2, [4], "relu", 2, input_names=("x", "y"))
    code = script(spec, TrainConfig(optimizer=optimizer, lr=0.05, batch_size=7))
    assert (OPTIMIZERS[optimizer].code(TrainConfig(lr=0.05).optimizer_settings()) in code
            and "range(0, len(inputs), 7)" in code)
    ns: dict = {}
    exec(compile(code, "model.py", "exec"), ns)
    pts = torch.rand(20, 2)
    assert isinstance(ns["train"](pts, (pts[:, 0] > 0.5).long(), epochs=1), torch.nn.Module)
