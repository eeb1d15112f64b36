"""Bad model files, made in memory, for every lab's model loader to refuse politely.

    with small_limit():                  # so the "too large" file is 256 KB, not 50 MB
        for name, data in corpus("cnn").items():
            ...upload `data`; expect one plain sentence, no traceback...
    assert not MARKER.exists()           # no payload ever ran

`good_checkpoint` makes the real file the damaged ones start from. The whole corpus
builds in a few milliseconds from a tiny network, so page tests can upload all of it.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import pickle
import random
import shlex
import struct
import tempfile
import zipfile
from pathlib import Path
from unittest import mock

import torch

from dl_core import checkpoint
from dl_core.spec import ModelSpec, build, mlp_spec

SPEC = mlp_spec(2, [4], "relu", 2, input_names=("x", "y"))
OTHER_SHAPES = mlp_spec(2, [5], "relu", 3, input_names=("x", "y"))
SMALL_LIMIT = 256 * 2**10
MARKER = Path(tempfile.gettempdir()) / f"deep-learning-lab-payload-ran-{os.getpid()}"


@contextlib.contextmanager
def small_limit(limit: int = SMALL_LIMIT):
    """Lower checkpoint.MAX_BYTES while loading, so the too-large file stays cheap."""
    with mock.patch.object(checkpoint, "MAX_BYTES", limit):
        yield limit


def good_model(spec: ModelSpec = SPEC, seed: int = 0):
    return spec, build(spec, seed=seed)


def good_checkpoint(lab: str | None = None, spec: ModelSpec = SPEC, seed: int = 0, meta: dict | None = None) -> bytes:
    """A valid file, as the lab `lab` saves it (None: an older file without a lab tag)."""
    return checkpoint.save_bytes(*good_model(spec, seed), meta, lab=lab)


class Payload:
    """Unpickling this calls `fn(*args)`: a file that runs code when opened."""

    def __init__(self, fn, *args):
        self.call = (fn, args)

    def __reduce__(self):
        return self.call


def corpus(lab: str, max_bytes: int | None = None, marker: Path = MARKER) -> dict[str, bytes]:
    """name -> bytes of a file that `lab`'s loader must refuse with a plain sentence.
    The too-large file is one byte over `max_bytes` (default: checkpoint.MAX_BYTES now);
    the payloads would create `marker` if anything ran them."""
    good = good_checkpoint(lab)
    other_lab = "gradflow" if lab != "gradflow" else "playground"
    touch = Payload(os.system, f"touch {shlex.quote(str(marker))}")
    rng = random.Random(0)
    files = {
        "empty": b"",
        "plain_text": b"hello world\n",
        "text_renamed_pt": b"age,height,label\n31,1.80,1\n",  # 'a' is pickle's append: IndexError in torch
        "csv_text": b"x,y,label\n0.1,0.2,1\n-0.3,0.5,0\n",
        "csv_without_header": b"0.1,0.2,1\n-0.3,0.5,0\n",
        "python_source": b"class Net:\n    pass\n",
        "json_text": b'{"layers": [4, 2], "activation": "relu"}\n',
        "html_page": b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>\n",
        "png_header": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(17),
        "zeros": bytes(4096),
        **{f"random_{n}": rng.randbytes(n) for n in (1, 2, 7, 100, 4096)},
        "zip_header_junk": b"PK\x03\x04 definitely not a model",
        "zip_of_junk": zip_bytes({"notes.txt": b"hello", "data/0": rng.randbytes(64)}),
        **{f"truncated_header_{n}": good[:n] for n in (2, 30)},  # too short to tell from any zip
        **{f"truncated_{n}": good[:n] for n in (100, len(good) // 2, len(good) - 100, len(good) - 1)},
        "flipped_weight": _flip_in(good, "data/0"),
        "flipped_pickle": _flip_in(good, "data.pkl"),
        "flipped_middle": _flip(good, len(good) // 2),
        "plain_tensor": _torch_save(torch.zeros(3)),
        "dict_without_tag": _torch_save({"state_dict": good_model()[1].state_dict()}),
        "pickle_payload_p2": pickle.dumps(touch, protocol=2),
        "pickle_payload": pickle.dumps(touch),
        "pickle_open_payload": pickle.dumps(Payload(open, str(marker), "w")),
        "torch_save_payload": _torch_save({"format": checkpoint.FORMAT, "spec": touch}),
        "other_lab": good_checkpoint(other_lab),
        "other_shapes": _edit(good, state_dict=good_model(OTHER_SHAPES)[1].state_dict()),
        "garbage_spec": _edit(good, spec="{this is not json"),
        "invalid_spec": _edit(good, spec=mlp_spec(2, [0], "relu", 2).to_json()),
        "too_many_layers": _edit(good, spec=json.dumps({"input_shape": [2], "task": "classification",
                                                        "layers": [{"kind": "activation", "fn": "relu"}] * 300})),
        "missing_weights": _edit(good, state_dict=None),
        "garbage_meta": _edit(good, meta="[not json"),
        "gzip_checkpoint": gzip.compress(good),
        "too_large": bytes((checkpoint.MAX_BYTES if max_bytes is None else max_bytes) + 1),
    }
    return files


def _torch_save(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _edit(data: bytes, **changes) -> bytes:
    """The checkpoint `data` with some entries replaced (None: removed)."""
    blob = torch.load(io.BytesIO(data), weights_only=True)
    blob.update(changes)
    return _torch_save({k: v for k, v in blob.items() if v is not None})


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip file made in memory (test_cnn's uploads can share this)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0xFF
    return bytes(out)


def _flip_in(data: bytes, member: str) -> bytes:
    """Flip the middle byte of a zip member's stored content (torch's zips are uncompressed)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(member))
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)  # the local header's own
    return _flip(data, info.header_offset + 30 + name_len + extra_len + info.compress_size // 2)
