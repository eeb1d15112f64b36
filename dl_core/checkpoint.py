"""Save a model as its spec plus weights, and load it back safely.

A checkpoint is a plain dict of strings and tensors written by torch.save and
read with `weights_only=True`, so an uploaded file can never run code. The
spec travels with the weights (as nanoGPT keeps its config), so a loaded file
rebuilds exactly the network it came from, and is checked against it.

Loading is the app's edge with the outside world: whatever the bytes are,
`load_bytes` raises only CheckpointError, whose message is a sentence or two
for a learner. Torch's own messages (internals, escape codes, advice about
`weights_only`) never reach the page; the reason is read from the bytes instead.
"""
from __future__ import annotations

import io
import itertools
import json
import pickletools
import re
import zipfile
from collections.abc import Mapping

import torch

from .layers import LAYERS
from .spec import ModelSpec, SpecError, SpecTooLarge, build

FORMAT = "deep-learning-lab/1"
MAX_BYTES = 50 * 2**20
# Budgets checked before torch reads anything: a file within MAX_BYTES could still list 1M entries (zipfile spends
# ~14 µs on each), hold a pickle of 50M steps (torch takes each in Python: ~0.5 µs and a reference) or settings
# whose JSON makes 20 bytes of objects per byte. A network of MAX_LAYERS layers needs a few thousand entries
# (one per tensor, ~30 steps each); a lab keeps at most a series of 100,000 numbers in its settings.
MAX_ENTRIES = 10_000
MAX_STEPS = 40 * MAX_ENTRIES
MAX_META_ITEMS = 1_000_000  # commas and brackets in the settings' JSON: an upper bound on its values
ZIP = b"PK\x03\x04"
SAFE_TORCH = (2, 10)  # weights_only=True could still run code before this (CVE-2025-32434 and a later advisory)

NOT_A_MODEL = "This is not a model saved by Deep Learning Lab; it is not a model file at all."
DAMAGED = ("This model file is damaged or cut short, so it is not a model saved by Deep Learning Lab that can be "
           "opened. Save or download it again.")
UNSAFE = ("This file is not a model saved by Deep Learning Lab: it tries to run code when opened, so it was "
          "refused for safety and nothing ran.")
COMPRESSED = "This file is compressed; unpack it and load the model file inside."
NO_TAG = "This file holds weights but is not a Deep Learning Lab model (its format tag is missing)."
INCOMPLETE = "This Deep Learning Lab file is incomplete: part of the model is missing or unreadable."
MISFIT = "The weights do not fit the network described in the file"


class CheckpointError(ValueError):
    """An unusable model file; the message is for the learner."""


def torch_is_safe(version: str | None = None) -> bool:
    """Whether this torch opens a file with weights_only=True without letting it run code."""
    release = re.match(r"(\d+)\.(\d+)", version or torch.__version__)
    return release is not None and tuple(map(int, release.groups())) >= SAFE_TORCH


def save_bytes(spec: ModelSpec, model: torch.nn.Module, meta: dict | None = None, lab: str | None = None) -> bytes:
    """Serialise spec, weights (on CPU) and JSON-able metadata; `lab` records which lab made the file,
    so another lab can refuse it by name instead of failing on a network it does not expect."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    blob = {"format": FORMAT, "spec": spec.to_json(), "meta": json.dumps(meta or {}), "state_dict": state}
    if lab:
        blob["lab"] = lab
    buf = io.BytesIO()
    torch.save(blob, buf)
    return buf.getvalue()


def load_bytes(data: bytes, lab: str | None = None,
               titles: Mapping[str, str] | None = None) -> tuple[ModelSpec, torch.nn.Module, dict]:
    """Rebuild (spec, model, meta) from `save_bytes` output, or raise CheckpointError.

    With `lab`, a file recorded as made by another lab is refused, named by `titles[key]` when given;
    files without a lab tag (saved before tags existed) are accepted."""
    if not torch_is_safe():
        raise CheckpointError(f"This server's PyTorch ({torch.__version__}) is too old to open model files safely, "
                              "so none is opened here; PyTorch 2.10 or newer is needed.")
    if not data:
        raise CheckpointError("The file is empty.")
    if len(data) > MAX_BYTES:
        raise CheckpointError(
            f"This file is too large to be a model from this app (the limit is {MAX_BYTES / 2**20:g} MB).")
    if data[:4] != ZIP:  # this app writes only zips: anything else is explained from its bytes, never loaded
        raise CheckpointError(_unreadable(data))
    try:
        _zip_pickle(data)  # its budgets, and the checksums torch does not check (a flipped bit: a wrong weight)
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except CheckpointError:  # over a budget: the sentence says which
        raise
    except Exception:  # any failure at all: torch raises IndexError, KeyError, ... on junk
        raise CheckpointError(_unreadable(data)) from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(NO_TAG)
    made_in = blob.get("lab")
    if lab and made_in is not None and made_in != lab:
        raise CheckpointError(f"This model was saved in another lab{_lab_name(made_in, titles)}, so it cannot be "
                              "opened here; open it there instead.")
    state = blob.get("state_dict")
    if not isinstance(blob.get("spec"), str) or not isinstance(state, dict):
        raise CheckpointError(INCOMPLETE)
    try:
        spec = ModelSpec.from_json(blob["spec"])
        model = build(spec)
    except SpecTooLarge as exc:  # refused before parsing or building: its size cost a server 21.8 s and 1.2 GB
        raise CheckpointError(str(exc)) from None
    except Exception as exc:  # SpecError, or a description of the wrong types
        where = f" (layer {exc.layer})" if isinstance(exc, SpecError) and exc.layer else ""
        raise CheckpointError(
            f"The network described in this file is invalid{where}, so it cannot be rebuilt.") from None
    meta = blob.get("meta", "{}")
    if isinstance(meta, str) and sum(map(meta.count, ",[{")) > MAX_META_ITEMS:
        raise CheckpointError(f"The settings saved in this file hold more than {MAX_META_ITEMS:,} values, the limit.")
    try:
        meta = json.loads(meta)
    except Exception:  # not text, or not JSON
        meta = None
    if not isinstance(meta, dict):
        raise CheckpointError(INCOMPLETE)
    _check_fit(spec, model, state)
    try:
        model.load_state_dict(state, strict=True)
    except Exception:
        raise CheckpointError(MISFIT + ".") from None
    return spec, model, meta


def _zip_pickle(data: bytes) -> bytes | None:
    """The pickle inside a torch zip file (None: not a zip), within this module's budgets (CheckpointError),
    its members stored as torch stores them (uncompressed: no zip bomb unpacks), each with a right
    checksum, no name twice and one pickle: the one checked here is the one torch reads."""
    if data[:4] != ZIP:
        return None
    if data.count(b"PK\x01\x02") > MAX_ENTRIES:  # every entry's record starts so: counted before zipfile parses
        raise CheckpointError(f"This file holds more than {MAX_ENTRIES:,} files inside; a model from this app "
                              f"holds fewer (the limit is {MAX_ENTRIES:,}).")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        if sum(i.file_size for i in infos) > MAX_BYTES:  # entries may overlap: each would be read again
            raise CheckpointError(f"This file unpacks to more than {MAX_BYTES / 2**20:g} MB, the limit for a model.")
        pickles = [i for i in infos if i.filename.endswith("data.pkl")]
        if (len(pickles) != 1 or len({i.filename for i in infos}) < len(infos)
                or any(i.compress_type != zipfile.ZIP_STORED for i in infos) or zf.testzip() is not None):
            raise zipfile.BadZipFile("not as torch writes it")
        pickled = zf.read(pickles[0])
    if sum(1 for _ in _steps(pickled)) > MAX_STEPS:
        raise CheckpointError(f"This file is too complex to be a model from this app (more than {MAX_STEPS:,} "
                              "parts, the limit).")
    return pickled


def _unreadable(data: bytes) -> str:
    """Why torch could not load `data`, told from the bytes themselves."""
    if data[:2] == b"\x1f\x8b":
        return COMPRESSED
    if data[:4] == ZIP:  # a zip: torch's own (data.pkl near the start) or any other
        try:
            pickled = _zip_pickle(data)
        except Exception:
            return DAMAGED if b"data.pkl" in data[:256] else NOT_A_MODEL
        return UNSAFE if _calls_code(pickled) else DAMAGED
    return UNSAFE if _calls_code(data) else NOT_A_MODEL


def _calls_code(pickled: bytes) -> bool:
    """A complete pickle that names functions or classes; torch refused it, so one of them was not
    a plain weight type: opening the file would have called it (nothing was called)."""
    try:
        ops = [op.name for op, _, _ in _steps(pickled)]
    except Exception:  # not a whole pickle: text, random bytes
        return False
    return len(ops) <= MAX_STEPS and bool({"GLOBAL", "STACK_GLOBAL", "INST", "OBJ"} & set(ops))


def _steps(pickled: bytes):
    """A pickle's steps (opcodes), read without running any, one past MAX_STEPS at most."""
    return itertools.islice(pickletools.genops(pickled), MAX_STEPS + 1)


def _check_fit(spec: ModelSpec, model: torch.nn.Module, state: dict) -> None:
    """Refuse weights of other names or shapes, naming the first layer where they differ."""
    want = model.state_dict()
    for key in [*want, *(k for k in state if k not in want)]:
        got = state.get(key)
        if isinstance(got, torch.Tensor) and key in want and got.shape == want[key].shape:
            continue
        found = re.fullmatch(r"layers\.(\d+)\..+", key) if isinstance(key, str) else None
        index = int(found[1]) if found else len(spec.layers)
        if index >= len(spec.layers):
            raise CheckpointError(MISFIT + ".")
        raise CheckpointError(f"{MISFIT}: they differ at layer {index + 1}, {LAYERS[spec.layers[index].kind].label}.")


def _lab_name(key, titles: Mapping[str, str] | None) -> str:
    """', “title”' for a message; the key comes from the file, so only a short plain word is echoed."""
    if titles and isinstance(key, str) and key in titles:
        return f", “{titles[key]}”"
    return f", “{key}”" if isinstance(key, str) and re.fullmatch(r"[a-z0-9_-]{1,24}", key) else ""
