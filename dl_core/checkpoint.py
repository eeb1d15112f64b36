"""Save a model as its spec plus weights, and load it back safely.

A checkpoint is a plain dict of strings and tensors written by torch.save and
read with `weights_only=True`, so an uploaded file can never run code. The
spec travels with the weights (as nanoGPT keeps its config), so a loaded file
rebuilds exactly the network it came from, and is checked against it.
"""
from __future__ import annotations

import io
import json
import pickle
import zipfile

import torch

from .spec import ModelSpec, SpecError, build

FORMAT = "deep-learning-lab/1"
MAX_BYTES = 50 * 2**20


class CheckpointError(ValueError):
    """An unusable model file; the message is for the learner."""


def save_bytes(spec: ModelSpec, model: torch.nn.Module, meta: dict | None = None) -> bytes:
    """Serialise spec, weights (on CPU) and JSON-able metadata."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "spec": spec.to_json(), "meta": json.dumps(meta or {}), "state_dict": state}, buf)
    return buf.getvalue()


def load_bytes(data: bytes) -> tuple[ModelSpec, torch.nn.Module, dict]:
    """Rebuild (spec, model, meta) from `save_bytes` output, or raise CheckpointError."""
    if not data:
        raise CheckpointError("The file is empty.")
    if len(data) > MAX_BYTES:
        raise CheckpointError(f"The file is {len(data) / 2**20:.0f} MiB; models here are at most {MAX_BYTES // 2**20} MiB.")
    try:
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, AttributeError) as exc:
        raise CheckpointError("This is not a model saved by Deep Learning Lab (the file could not be read safely: "
                              f"{str(exc).splitlines()[0][:120]}).") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError("This file is not a Deep Learning Lab model (its format tag is missing).")
    try:
        spec = ModelSpec.from_json(blob["spec"])
        meta = json.loads(blob.get("meta", "{}"))
        model = build(spec)
        model.load_state_dict(blob["state_dict"], strict=True)
    except SpecError as exc:
        raise CheckpointError(f"The model inside the file is invalid: {exc}") from None
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"The file is incomplete ({exc}).") from None
    except RuntimeError as exc:
        raise CheckpointError("The weights do not fit the model described in the file "
                              f"({str(exc).splitlines()[0][:160]}).") from None
    return spec, model, meta
