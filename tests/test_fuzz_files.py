"""Property-based fuzzing (Hypothesis) of the files a learner uploads: model files (zips of
pickles, read by torch after checkpoint's own checks) and zips of class folders and pictures.
Whatever the bytes, a file loads or is refused with one plain sentence (CheckpointError,
DataError), nothing in it runs, and every budget (entries, unpacked size, steps, pixels) is
checked before the work it bounds. Valid files are mutated, and hostile zips built with zipfile.
"""
import io
import json
import os
import pickle
import pickletools
import struct
import warnings
import zipfile
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from test_fuzz_parsers import FUZZ, JSONISH, SPEC, assert_plain, edits, mutated, peak_mib

from dl_core import checkpoint
from dl_core.checkpoint import CheckpointError, load_bytes
from dl_core.data import images
from dl_core.data.data2d import DataError
from dl_core.spec import build, mlp_spec
from modelfiles import MARKER, Payload, _edit, _torch_save, good_checkpoint

pytestmark = [pytest.mark.filterwarnings("ignore:Duplicate name"),
              pytest.mark.filterwarnings("ignore:Detected pickle protocol")]
GOOD = good_checkpoint("playground")
with zipfile.ZipFile(io.BytesIO(GOOD)) as _zf:
    MEMBERS = {i.filename: _zf.read(i) for i in _zf.infolist()}
HOSTILE_NAMES = ["../x", "/abs/data.pkl", "a/../../b", "C:\\x\\y.png", "x" * 300, "\x00.png", "a/", "", "./cat/3.gif",
                 "__MACOSX/a/1.png", "archive/data.pkl", "archive/data/0", "other/data.pkl", "é/ü.png", "cat/1.png",
                 "dog/2.PNG"]
METHODS = st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])


def zip_of(members) -> bytes:
    """A zip of (name, content, compression) members, names taken as they come (duplicates too)."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")
        for name, content, method in members:
            zf.writestr(zipfile.ZipInfo(name), content, compress_type=method)
    return buf.getvalue()


def central(data: bytes, offset: int, fmt: str, value) -> bytes:
    """`data` with a field of its first central directory record (at `offset` in it) set to `value`."""
    out = bytearray(data)
    struct.pack_into(fmt, out, data.index(b"PK\x01\x02") + offset, value)
    return bytes(out)


# ---- model files ----
def check_model(data: bytes):
    MARKER.unlink(missing_ok=True)
    try:
        spec, model, meta = load_bytes(data, lab="playground")
        assert isinstance(meta, dict) and isinstance(model, torch.nn.Module) and spec.layers
    except Exception as exc:  # noqa: BLE001 - assert_plain fails on any type but CheckpointError
        assert_plain(exc, CheckpointError)
    assert not MARKER.exists(), "a model file ran code when it was opened"


@FUZZ
@given(edits(len(GOOD)))
def test_a_damaged_model_file_loads_or_is_refused_in_one_sentence(changes):
    check_model(mutated(GOOD, changes))


CONTENTS = st.one_of(st.sampled_from(list(MEMBERS.values())), st.binary(max_size=64),
                    st.just(pickle.dumps(Payload(os.system, f"touch {MARKER}"))), st.just(b"\x80\x02" + b"N" * 99))


@FUZZ
@given(st.lists(st.tuples(st.one_of(st.sampled_from(HOSTILE_NAMES + list(MEMBERS)), st.text(max_size=20)), CONTENTS,
                          METHODS), max_size=8), st.booleans())
def test_a_hostile_zip_as_a_model_file_loads_or_is_refused_in_one_sentence(members, with_the_real_ones):
    real = [(name, content, zipfile.ZIP_STORED) for name, content in MEMBERS.items()] if with_the_real_ones else []
    check_model(zip_of(real + members))


LEAF = st.one_of(JSONISH, st.builds(torch.zeros, st.integers(0, 3)), st.just(torch.ones(4, 2)), st.binary(max_size=8))
VALUE = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                       max_size=3), max_leaves=5)


@FUZZ
@given(st.dictionaries(st.sampled_from(["format", "spec", "meta", "state_dict", "lab", "other"]), VALUE, max_size=5),
       st.booleans(), st.dictionaries(st.sampled_from(["layers.0.weight", "layers.2.bias", "layers.9.weight", "x"]),
                                      VALUE, max_size=3))
def test_a_model_file_with_entries_of_any_type_loads_or_is_refused_in_one_sentence(changes, keep, weights):
    blob = torch.load(io.BytesIO(GOOD), weights_only=True) if keep else {}
    blob["state_dict"] = dict(blob.get("state_dict", {})) | weights
    check_model(_torch_save(blob | changes))


@FUZZ
@given(st.one_of(SPEC, JSONISH))
def test_a_model_file_describing_any_network_loads_or_is_refused_in_one_sentence(description):
    check_model(_edit(GOOD, spec=json.dumps(description)))


def calls(monkeypatch, module, name: str) -> list:
    """Record each call of module.name (still made)."""
    real, seen = getattr(module, name), []
    monkeypatch.setattr(module, name, lambda *a, **k: seen.append(a) or real(*a, **k))
    return seen


def test_a_model_zip_with_too_many_entries_is_refused_before_it_is_parsed(monkeypatch):
    """A zip may list any number of entries (200,000 empty ones cost 2.8 s and 200 MB): they are
    counted first, and neither zipfile nor torch reads such a file."""
    many = zip_of([(f"archive/{k}", b"", zipfile.ZIP_STORED) for k in range(checkpoint.MAX_ENTRIES + 1)])
    parsed, loaded = calls(monkeypatch, checkpoint.zipfile, "ZipFile"), calls(monkeypatch, checkpoint.torch, "load")
    message = assert_plain(pytest.raises(CheckpointError, load_bytes, many).value, CheckpointError)
    assert "more than 10,000 files inside" in message and "the limit is 10,000" in message
    assert not parsed and not loaded


@pytest.mark.parametrize("data, message", [
    (central(GOOD, 24, "<I", 2**31), "unpacks to more than 50 MB, the limit"),  # its stored size, claimed
    (zip_of([(n, b"\x80\x02" + b"N" * (checkpoint.MAX_STEPS + 1) + b"." if n.endswith("data.pkl") else c, 0)
             for n, c in MEMBERS.items()]), "more than 400,000 parts, the limit"),  # torch takes each in Python
], ids=["unpacked size", "steps"])
def test_a_model_zip_over_a_budget_is_refused_before_torch_reads_it(monkeypatch, data, message):
    loaded = calls(monkeypatch, checkpoint.torch, "load")
    assert message in assert_plain(pytest.raises(CheckpointError, load_bytes, data).value, CheckpointError)
    assert not loaded


def test_a_file_that_is_not_a_zip_never_reaches_torch_and_is_read_only_up_to_the_budget(monkeypatch):
    """This app writes only zips. A 5 MB pickle of one-byte steps took torch 2.2 s and the check for
    code 0.9 s more (a 50 MB one: half a minute), to be told it was not a model."""
    loaded = calls(monkeypatch, checkpoint.torch, "load")
    real, steps = pickletools.genops, []
    monkeypatch.setattr(checkpoint.pickletools, "genops", lambda p: (steps.append(1) or op for op in real(p)))
    out = pytest.raises(CheckpointError, load_bytes, b"\x80\x02" + b"N" * 1_000_000 + b".").value
    assert assert_plain(out, CheckpointError) == checkpoint.NOT_A_MODEL
    assert not loaded and 0 < len(steps) <= checkpoint.MAX_STEPS + 1


def test_settings_with_more_values_than_the_budget_are_refused_before_they_are_parsed(monkeypatch):
    """JSON makes up to 20 bytes of objects per byte ("[]," is a list): a 48 MB file would take 1 GB."""
    parsed, meta = calls(monkeypatch, checkpoint.json, "loads"), "[" + "[]," * checkpoint.MAX_META_ITEMS + "[]]"
    message = assert_plain(pytest.raises(CheckpointError, load_bytes, _edit(GOOD, meta=meta)).value, CheckpointError)
    assert "more than 1,000,000 values, the limit" in message and (meta,) not in parsed  # the spec's was parsed


def test_the_budgets_leave_room_for_the_largest_real_files():
    """241 layers (60 hidden ones with batch norm and dropout: 428 entries, ~12,600 steps) saved with the
    most a lab keeps in its settings: a 100,000-number series and 2 MB of text that JSON writes as 6 MB."""
    spec = mlp_spec(2, [4] * 60, "relu", 2, batchnorm=True, dropout=0.1, input_names=("x", "y"))
    meta = {"series": np.linspace(0, 1, 100_000).tolist(), "text": "é" * 10**6}
    loaded = load_bytes(checkpoint.save_bytes(spec, build(spec), meta))
    assert loaded[0] == spec and loaded[2] == meta


# ---- zips of class folders, and pictures ----
def picture(fmt: str, mode: str = "RGB", size=(10, 12), seed: int = 0) -> bytes:
    pixels = (np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buf, fmt)
    return buf.getvalue()


def header_png(width: int, height: int) -> bytes:
    """A PNG that is only a header claiming width × height pixels."""
    body = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body))


def broken_png() -> bytes:
    """A PNG whose image data ends early, followed by a zeroed chunk: Pillow raised SyntaxError decoding it."""
    png = picture("PNG", size=(16, 16))
    at = png.index(b"IDAT")
    n = struct.unpack(">I", png[at - 4:at])[0]
    return png[:at - 4] + struct.pack(">I", n - 8) + png[at:at + 4 + n - 8] + bytes(8) + png[at + 4 + n + 4:]


PICTURES = {f"{fmt}-{mode}": picture(fmt, mode) for fmt, mode in [("PNG", "RGB"), ("PNG", "P"), ("PNG", "RGBA"),
            ("PNG", "I;16"), ("JPEG", "RGB"), ("JPEG", "L"), ("BMP", "RGB"), ("GIF", "P"), ("WEBP", "RGB")]}
PICTURE_BYTES = st.one_of(st.sampled_from(sorted(PICTURES.values())), st.binary(max_size=48),
                          st.builds(header_png, st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1)))


def check_zip(data: bytes):
    try:
        ds = images.zip_folders(data, size=8)
    except Exception as exc:  # noqa: BLE001 - assert_plain fails on any type but DataError
        return assert_plain(exc, DataError)
    assert len(ds.classes) == len(set(ds.classes)) >= 2 and ds.x.shape[1:] == (3, 8, 8)
    assert all(c and "/" not in c and c not in (".", "..") for c in ds.classes), ds.classes
    assert ds.x.min() >= 0 and ds.x.max() <= 1 and set(ds.y) == set(range(len(ds.classes)))


@FUZZ
@given(st.lists(st.tuples(st.one_of(st.sampled_from(HOSTILE_NAMES), st.text(max_size=12).map(lambda s: s + ".png")),
                          PICTURE_BYTES, METHODS), max_size=10))
def test_a_hostile_zip_of_pictures_is_read_or_refused_in_one_sentence(members):
    check_zip(zip_of(members))


GOOD_ZIPS = [zip_of([(f"pets/{c}/{k}.{fmt.lower()}", picture(fmt, seed=k), method) for c in ("cat", "dog")
                     for k, fmt in enumerate(["PNG", "JPEG", "GIF"])]) for method in (0, 8, 12, 14)]


@FUZZ
@given(st.sampled_from(range(len(GOOD_ZIPS))), edits(min(map(len, GOOD_ZIPS))))
def test_a_damaged_zip_of_pictures_is_read_or_refused_in_one_sentence(which, changes):
    check_zip(mutated(GOOD_ZIPS[which], changes))


@FUZZ
@given(st.one_of(PICTURE_BYTES, st.builds(mutated, st.sampled_from(sorted(PICTURES.values())), edits(200))))
def test_a_picture_is_decoded_or_refused_in_one_sentence(data):
    try:
        with images.open_picture(data) as pic:
            assert pic.format in images.PICTURE_FORMATS and pic.width * pic.height <= images.MAX_PIXELS
            pic.convert("RGB").resize((4, 4))  # decoded already: nothing left to fail
    except Exception as exc:  # noqa: BLE001 - assert_plain fails on any type but DataError
        assert_plain(exc, DataError)


def test_a_zip_with_too_many_entries_is_refused_before_it_is_parsed(monkeypatch):
    many = zip_of([(f"a/{k}", b"", 0) for k in range(images.MAX_ZIP_ENTRIES + 1)])
    parsed = calls(monkeypatch, images.zipfile, "ZipFile")
    message = assert_plain(pytest.raises(DataError, images.zip_folders, many).value, DataError)
    assert "more than 20,000 files and folders; the limit is 20,000" in message and not parsed


def test_a_picture_that_unzips_to_64_mb_is_read_as_a_stream_not_held_in_memory():
    """archive.read() held a whole entry: 0.4 MB of zip named a/1.png took 820 MB to be found unreadable."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("a/huge.png", "w") as entry:
            for _ in range(64):
                entry.write(bytes(2**20))
        for c in ("a", "b"):
            for k in range(2):
                zf.writestr(f"{c}/{k}.png", picture("PNG", seed=k))
    ds, peak = peak_mib(images.zip_folders, buf.getvalue())
    assert ds.classes == ("a", "b") and ds.note.startswith("1 file skipped") and peak < 16, f"{peak:.0f} MiB"


@pytest.mark.parametrize("data", [
    central(zip_of([("cat/é.png", b"x", 0)]), 46, "2s", b"\xff\xfe"),  # flagged UTF-8, is not: UnicodeDecodeError
    central(zip_of([("cat/1.png", b"x", 0)]), 6, "<H", 234),  # "zip file version 23.4": NotImplementedError
], ids=["not utf-8", "zip version"])
def test_zips_that_escaped_as_other_errors_are_refused_in_one_sentence(data):
    assert "not a zip archive" in assert_plain(pytest.raises(DataError, images.zip_folders, data).value, DataError)


def test_pictures_that_escaped_as_other_errors_are_skipped_or_refused_in_one_sentence():
    """A broken PNG raised SyntaxError (past the pages' OSError and ValueError); an entry named "\\0.png"
    (an empty name) IndexError; a TIFF or an icon named .png reached Pillow's other decoders."""
    tiff, icon = picture("TIFF"), picture("ICO", size=(16, 16))
    for data in (broken_png(), tiff, icon):
        assert assert_plain(pytest.raises(DataError, images.open_picture, data).value, DataError) == images.UNREADABLE
    good = [(f"{c}/{k}.png", picture("PNG", seed=k), 0) for c in ("a", "b") for k in range(2)]
    bad = [("a/broken.png", broken_png(), 0), ("\x00.png", b"", 0), ("b/tiff.png", tiff, 0), ("b/ico.png", icon, 0)]
    ds = images.zip_folders(zip_of(good + bad), size=8)
    assert len(ds.x) == 4 and ds.note.startswith("3 files skipped")  # "\0.png" is in no class folder


def test_class_names_are_folder_names_whatever_the_path_says():
    """'/dog/1.png' and '../cat/1.png' made the classes '/' and '..'; a Windows zip's backslashes one name."""
    names = ["../cat/1.png", "../cat/2.png", "/dog/1.png", "/dog/2.png", "bird\\1.png", "bird\\2.png"]
    ds = images.zip_folders(zip_of([(n, picture("PNG", seed=k), 0) for k, n in enumerate(names)]), size=8)
    assert ds.classes == ("bird", "cat", "dog")
