"""Property-based fuzzing (Hypothesis) of the text a learner uploads: the Playground's CSV, the
Sequence Lab's text and series, and a model's description (spec). Whatever the bytes, a parser
returns a usable result or refuses them with one plain sentence (the error type the page shows),
never a traceback, a hang or a memory blow-up; a file over a limit is refused before it is read.

`FUZZ`, `assert_plain` and the strategies serve test_fuzz_files.py and test_fuzz_urls.py too. The examples are
derandomised and no database is kept, so every run (and CI) tries the same inputs.
"""
import json
import math
import re
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from dl_core.data import data2d, seqsources
from dl_core.data.data2d import MAX_CSV_BYTES, MAX_POINTS, DataError, parse_csv, to_csv
from dl_core.data.seqdata import SeqDataError
from dl_core.layers import LAYERS
from dl_core.spec import ModelSpec, SpecError, build, mlp_spec

pytestmark = pytest.mark.filterwarnings("ignore:loadtxt")  # numpy's note on a CSV of comment lines only
FUZZ = settings(max_examples=120, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SERVER_PLACES = (str(ROOT), sys.prefix, "site-packages", 'File "', "Traceback")


def assert_plain(exc: BaseException, allowed: type | tuple) -> str:
    """`exc` is one of the `allowed` types (those the page shows) and reads as one line of prose:
    no traceback, no server path, not an error's name."""
    assert isinstance(exc, allowed), f"{type(exc).__name__} escaped: {exc}"
    message = str(exc)
    assert message[:1].isupper() and "\n" not in message and len(message) <= 400, message
    assert not any(place in message for place in SERVER_PLACES), message
    assert not re.search(r"\b[A-Z]\w*(Error|Exception)\b", message), message
    return message


def peak_mib(fn, *args):
    """(fn(*args) or the exception it raised, the peak of Python's allocations meanwhile in MiB)."""
    tracemalloc.start()
    try:
        out = fn(*args)
    except Exception as exc:  # noqa: BLE001 - the caller judges what came back
        out = exc
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, peak


# what JSON can hold (a model file's description and settings are JSON)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.integers(), st.floats(),
                    st.text(max_size=6), st.sampled_from(["relu", "tanh", "LSTM", "GRU", "max", "linear", "conv2d"]))
JSONISH = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) |
                       st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=8)


# ---- the Playground's CSV ----
NUMBERS = st.one_of(st.floats().map(repr), st.integers(-10**30, 10**30).map(str), st.sampled_from(
    ["nan", "NaN", "inf", "-inf", "1e999", "1e-400", "1.5e308", "", " ", "1_0", "0x1F", "+1", "١", "'1'", '"2"',
     "#3", "4;5", "\t6"]), st.text(max_size=4))
ROWS = st.lists(st.lists(NUMBERS, max_size=4).map(",".join), max_size=12)
CSV_TEXT = st.builds(lambda head, rows, nl: head + nl.join(rows), st.sampled_from(
    ["", "x,y,label\n", "x,y,target\n", "X, Y, Label\r\n", "\ufeffx,y,label\n", "a,b\n", "x,y,label,extra\n"]),
    ROWS, st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\x0b", "\u2028"]))
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"])


def encoded(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


def check_points(raw: bytes):
    """parse_csv's contract: points a network can use, or DataError; small files stay small."""
    out, peak = peak_mib(parse_csv, raw)
    assert peak < 8, f"{peak:.1f} MiB for {len(raw)} bytes"
    if isinstance(out, Exception):
        return assert_plain(out, DataError)
    assert 4 <= len(out.points) <= MAX_POINTS and out.points.shape[1] == 2
    assert np.isfinite(out.points).all() and np.abs(out.points).max() <= 1e4
    assert out.is_train.any() and not out.is_train.all()
    if out.task == "classification":
        assert 2 <= out.n_classes <= 8 and set(np.unique(out.targets)) == set(range(out.n_classes))
    else:
        assert np.isfinite(out.targets).all()


@FUZZ
@given(CSV_TEXT, ENCODINGS)
def test_a_playground_csv_is_read_or_refused_in_one_sentence(text, encoding):
    check_points(encoded(text, encoding))


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_as_a_playground_csv_are_read_or_refused_in_one_sentence(raw):
    check_points(raw)


def edits(size: int):
    """Up to five edits of a file of `size` bytes, for `mutated`."""
    return st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 255), st.sampled_from("fid")), min_size=1,
                    max_size=5)


GOOD_CSV = to_csv(data2d.make_dataset("blobs4", 40, 0.1, seed=3)).encode()
EDITS = edits(len(GOOD_CSV))


def mutated(data: bytes, edits) -> bytes:
    """`data` with bytes flipped (f), inserted (i) or cut from there on (d)."""
    out = bytearray(data)
    for at, value, how in edits:
        at = min(at, len(out))
        if how == "f" and at < len(out):
            out[at] ^= value or 1
        elif how == "i":
            out[at:at] = bytes([value])
        elif how == "d" and at > 8:
            del out[at:]
    return bytes(out)


@FUZZ
@given(EDITS)
def test_a_damaged_playground_csv_is_read_or_refused_in_one_sentence(edits):
    check_points(mutated(GOOD_CSV, edits))


def test_a_csv_over_the_size_limit_is_refused_before_it_is_read():
    """A 50 MiB CSV took 600 MB and 2.4 s to be told it had too many rows: now its size is
    checked first, and the sentence says the limit."""
    big = b"1.0,2.0,1\n" * (MAX_CSV_BYTES // 10 + 1)
    out, peak = peak_mib(parse_csv, big)
    assert "the limit is 1 MiB (5,000 rows)" in assert_plain(out, DataError)
    assert peak < 0.5, f"{peak:.1f} MiB: the file was read"


def test_a_csv_with_too_many_rows_is_refused_before_its_numbers_are_parsed(monkeypatch):
    parsed = []
    monkeypatch.setattr(data2d.np, "loadtxt", lambda *a, **k: parsed.append(1))
    with pytest.raises(DataError, match="At most 5,000 rows, please; this file has 5,001"):
        parse_csv(b"x,y,label\n" + b"1,2,0\n" * (MAX_POINTS + 1))
    assert not parsed


# ---- the Sequence Lab's text and series ----
SERIES_TEXT = st.builds(lambda head, rows, nl: head + nl.join(rows),
                        st.sampled_from(["", "value\n", "date,value\n", "\ufeffv\r\n", '"a,b",c\n']),
                        st.lists(st.one_of(st.lists(NUMBERS, min_size=1, max_size=3).map(",".join),
                                           st.floats(-1e6, 1e6).map(repr)), max_size=60),
                        st.sampled_from(["\n", "\r\n", "\r", "\n\n"]))


def check_series(raw: bytes):
    out, peak = peak_mib(seqsources.parse_series, raw)
    assert peak < 8, f"{peak:.1f} MiB for {len(raw)} bytes"
    if isinstance(out, Exception):
        return assert_plain(out, SeqDataError)
    assert seqsources.MIN_SERIES_VALUES <= len(out) <= seqsources.MAX_SERIES_VALUES
    assert np.isfinite(out).all() and out.std() > 0 and np.abs(out).max() <= 1e12


def check_text(raw: bytes):
    out, peak = peak_mib(seqsources.parse_text, raw)
    assert peak < 8, f"{peak:.1f} MiB for {len(raw)} bytes"
    if isinstance(out, Exception):
        return assert_plain(out, SeqDataError)
    assert isinstance(out, str) and len(out.strip()) >= seqsources.MIN_TEXT_CHARS and "\r\n" not in out


@FUZZ
@given(SERIES_TEXT, ENCODINGS)
def test_a_series_upload_is_read_or_refused_in_one_sentence(text, encoding):
    check_series(encoded(text, encoding))


@FUZZ
@given(st.one_of(st.binary(max_size=400), st.builds(mutated, st.just(b"\n".join(b"%d" % (i * i % 97) for i in
                                                                              range(40))), EDITS)))
def test_random_or_damaged_bytes_as_a_series_or_text_are_read_or_refused_in_one_sentence(raw):
    check_series(raw)
    check_text(raw)


@FUZZ
@given(st.text(min_size=0, max_size=700), st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]),
       st.integers(0, 3))
def test_a_text_upload_is_read_or_refused_in_one_sentence(text, encoding, repeat):
    check_text(encoded(text * repeat, encoding))


def test_a_series_with_old_mac_line_ends_or_a_huge_field_is_read_or_refused_in_one_sentence():
    """A bare \\r ended csv's row with csv.Error ("new-line character seen in unquoted field"), and a
    row over 128 KB with another csv.Error: both reached the page as tracebacks."""
    values = seqsources.parse_series("\r".join(str(math.sin(i)) for i in range(40)).encode())
    assert len(values) == 40 and values[1] == pytest.approx(math.sin(1))
    assert "128 KB" in assert_plain(pytest.raises(SeqDataError, seqsources.parse_series, b"7" * 200_000).value,
                                    SeqDataError)


def test_a_long_series_is_read_no_further_than_its_limit():
    """2 MB of one-digit rows (a million of them) took 86 MB as a list of every row, before the count
    was checked; now rows are read one at a time, and reading stops past the limit."""
    raw = b"1\n2\n" * 499_000
    out, peak = peak_mib(seqsources.parse_series, raw)
    assert "more than 100,000 numbers, the limit" in assert_plain(out, SeqDataError)
    assert peak < 20, f"{peak:.1f} MiB"


@FUZZ
@given(st.one_of(JSONISH, st.lists(st.floats(-1e6, 1e6), min_size=29, max_size=40),
                 st.lists(st.one_of(st.floats(), st.integers(-10**400, 10**400)), min_size=30, max_size=40)))
def test_a_series_kept_in_a_model_file_is_checked_as_an_upload_is(content):
    """series_values is what the Sequence Lab can check a model file's copy of an upload with: the page
    passed it on unchecked (NaN, 3,000,000 values), and only refused the few shapes numpy could not read."""
    try:
        values = seqsources.series_values(content)
    except Exception as exc:  # noqa: BLE001 - assert_plain fails on any type but SeqDataError
        assert_plain(exc, SeqDataError)
    else:
        assert values.ndim == 1 and np.isfinite(values).all() and values.std() > 0


@pytest.mark.parametrize("content, message", [
    ([float("nan")] * 100, "NaN"), (list(range(3_000_000)), "more than 100,000 numbers, the limit"),
    ([[1.0, 2.0]] * 50, "one list of numbers"), ([10**400] * 40, "one list of numbers")])
def test_a_series_kept_in_a_model_file_that_an_upload_could_not_hold_is_refused(content, message):
    assert message in assert_plain(pytest.raises(SeqDataError, seqsources.series_values, content).value,
                                   SeqDataError)


def test_uploads_over_the_size_limit_are_refused_in_one_sentence_before_decoding():
    raw = b"1\n" * (seqsources.MAX_UPLOAD_BYTES // 2 + 1)
    for parse in (seqsources.parse_series, seqsources.parse_text):
        out, peak = peak_mib(parse, raw)
        assert "at most 2 MB" in assert_plain(out, SeqDataError) and peak < 0.5


# ---- a model's description (the spec inside a model file) ----
PARAMS = ("out_features", "fn", "p", "out_channels", "kernel", "stride", "padding", "vocab", "dim", "cell", "hidden",
          "layers", "dropout", "neurons", "outputs")
LAYER = st.fixed_dictionaries({"kind": st.one_of(st.sampled_from(sorted(LAYERS)), JSONISH)},
                               optional={p: JSONISH for p in PARAMS})
SPEC = st.fixed_dictionaries({}, optional={
    "input_shape": st.one_of(st.lists(st.one_of(st.integers(-2, 40), SCALARS), max_size=4), JSONISH),
    "layers": st.one_of(st.lists(LAYER, max_size=5), JSONISH),
    "task": st.one_of(st.sampled_from(["classification", "regression"]), JSONISH), "input_names": JSONISH})


def check_spec(text: str):
    try:
        build(ModelSpec.from_json(text))
    except Exception as exc:  # noqa: BLE001 - assert_plain fails on any type but SpecError
        assert_plain(exc, SpecError)


@FUZZ
@given(st.one_of(SPEC, JSONISH))
def test_a_model_description_of_any_shape_builds_or_is_refused_as_a_spec_error(description):
    check_spec(json.dumps(description))


@FUZZ
@given(st.builds(mutated, st.just(mlp_spec(2, [4, 3], "tanh", 2, batchnorm=True).to_json().encode()), EDITS))
def test_a_damaged_model_description_builds_or_is_refused_as_a_spec_error(raw):
    check_spec(raw.decode("utf-8", "replace"))


@pytest.mark.parametrize("text", [
    '{"input_shape": [2], "layers": [{"kind": ["linear"], "out_features": 2}]}',  # TypeError: unhashable
    '{"input_shape": [Infinity], "layers": [{"kind": "linear", "out_features": 2}]}',  # OverflowError: int(inf)
    "[" * 100_000,  # RecursionError in json.loads
])
def test_descriptions_that_escaped_as_other_errors_are_spec_errors(text):
    check_spec(text)
