"""Real sequences, offline: series and text that installed wheels ship, and the learner's own.

- Sunspots (yearly, 1700–2008) and the Mauna Loa CO₂ record (weekly, 1958–2001) from
  statsmodels' datasets (public domain, per their modules): forecast the next value from
  the last `lag` ones.
- Python's own English documentation (`pydoc_data.topics`, in every Python, ~0.47 M
  characters): guess the next character from the last `lag` ones, a character-level
  language model that can then write text of its own (`generate`).
- An uploaded text file or CSV series, checked the way every upload is: size, encoding,
  length, numbers; whatever is wrong becomes one sentence (SeqDataError).
"""
from __future__ import annotations

import csv
import io

import numpy as np
import torch
from torch import nn

from ..inference import evaluating
from .seqdata import PAD, SeqData, SeqDataError, split

MAX_UPLOAD_BYTES = 2_000_000
MIN_TEXT_CHARS, MIN_SERIES_VALUES, MAX_SERIES_VALUES = 500, 30, 100_000
MAX_CHARS_IN_VOCAB = 80  # rarer characters are read as RARE: the output layer stays small
RARE = "¿"


def series_task(values: np.ndarray, name: str, lag: int, source: str, changes: bool = False) -> SeqData:
    """Windows of `lag` values → the next value, scaled by the training part's mean and spread;
    the latest quarter of the windows is the test set (forecasting the future, not the past).
    With `changes`, the network reads and forecasts the steps' changes: a series that climbs
    (CO₂) leaves the range it was trained on, its changes do not."""
    values = np.asarray(values, np.float64)
    if changes:
        values = np.diff(values)
    n_windows = len(values) - lag
    if n_windows < 8:
        raise SeqDataError(f"A series of {len(values)} values is too short for windows of {lag}: "
                           f"use a window below {max(1, len(values) - 8)}.")
    cut = len(values) - n_windows // 4  # values after this only ever appear in test windows
    mean, spread = float(values[:cut].mean()), float(values[:cut].std()) or 1.0
    z = ((values - mean) / spread).astype(np.float32)
    x = np.lib.stride_tricks.sliding_window_view(z[:-1], lag)[..., None]
    y = z[lag:]
    order = np.arange(n_windows)[::-1]  # latest first: split() holds out the first quarter
    return split(name, "regression", x[order].copy(), y[order].copy(), scale=(mean, spread), source=source,
                 changes=changes)


def persistence_loss(data: SeqData) -> float:
    """The test loss (mean squared error, in the scaled units the network's loss is in) of the
    naive forecast "the next value is the last one" (no change, for a series of changes):
    a forecaster that does not beat it has learned nothing useful."""
    y = data.y_test[:, 0].double()
    guess = torch.full_like(y, -data.scale[0] / data.scale[1]) if data.changes else data.x_test[:, -1, 0].double()
    return float(((guess - y) ** 2).mean())


def sunspots(n: int, lag: int, seed: int) -> SeqData:
    from statsmodels.datasets import sunspots as ds

    return series_task(ds.load_pandas().data["SUNACTIVITY"].to_numpy(), "sunspots", lag,
                       "Yearly sunspot numbers 1700–2008, from statsmodels' datasets (public domain).")


def co2(n: int, lag: int, seed: int) -> SeqData:
    from statsmodels.datasets import co2 as ds

    weekly = ds.load_pandas().data["co2"].interpolate().bfill()
    return series_task(weekly.to_numpy(), "co2", lag, "Weekly CO₂ at Mauna Loa 1958–2001 (ppm), from statsmodels' "
                       "datasets (public domain); the 59 missing weeks are filled in between their neighbours. The "
                       "network reads and forecasts each week's change.", changes=True)


def text_task(text: str, name: str, n: int, lag: int, seed: int, source: str) -> SeqData:
    """`n` windows of `lag` characters at random places → the character that follows. The
    vocabulary is the text's commonest characters; class k is token k + 1 (token 0 pads)."""
    if len(text) < max(MIN_TEXT_CHARS, lag + 2):
        raise SeqDataError(f"The text is too short: at least {max(MIN_TEXT_CHARS, lag + 2):,} characters, please "
                           f"(this one has {len(text):,}).")
    chars, counts = np.unique(np.frombuffer(text.encode("utf-32-le"), np.uint32), return_counts=True)
    kept = sorted(chr(c) for c in chars[np.argsort(-counts, kind="stable")][:MAX_CHARS_IN_VOCAB])
    vocab = (PAD, *kept, *([RARE] if len(chars) > len(kept) else []))
    index = {c: i for i, c in enumerate(vocab)}
    codes = np.array([index.get(c, len(vocab) - 1) for c in text], np.int64)
    starts = np.random.default_rng(seed).integers(0, len(codes) - lag, n)
    x = codes[starts[:, None] + np.arange(lag)]
    return split(name, "classification", x, codes[starts + lag] - 1, vocab, vocab[1:], source=source)


def docs(n: int, lag: int, seed: int) -> SeqData:
    from pydoc_data.topics import topics

    text = "\n".join(topics[k] for k in sorted(topics))
    return text_task(text, "docs", n, lag, seed, "Python's own English documentation (pydoc_data, shipped with "
                     "every Python; about 0.47 M characters).")


# ---- the learner's own data ----
def _decoded(raw: bytes, what: str) -> str:
    if not raw:
        raise SeqDataError(f"The file is empty: upload {what}.")
    if len(raw) > MAX_UPLOAD_BYTES:
        raise SeqDataError(f"The file is {len(raw) / 1e6:.1f} MB; at most {MAX_UPLOAD_BYTES / 1e6:.0f} MB, please.")
    if b"\x00" in raw:
        raise SeqDataError(f"That file is not text (it holds binary data): upload {what}.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SeqDataError(f"That file is not UTF-8 text: save it as UTF-8 and upload {what}.") from None


def parse_text(raw: bytes) -> str:
    """An uploaded text file, checked: UTF-8, not binary, at most 2 MB, at least 500 characters."""
    text = _decoded(raw, "a plain text file (.txt)").replace("\r\n", "\n")
    if len(text.strip()) < MIN_TEXT_CHARS:
        raise SeqDataError(f"The text is too short: at least {MIN_TEXT_CHARS} characters, please "
                           f"(this one has {len(text.strip())}).")
    return text


def parse_series(raw: bytes) -> np.ndarray:
    """An uploaded series: one number per line, or a CSV whose last column holds the numbers
    (a header line is skipped); finite, not constant, 30 to 100,000 values. Rows are read one at a
    time and no further than the limit (a list of every row of 2 MB took 86 MB)."""
    text = _decoded(raw, "a CSV with one number per row")
    rows = (r for r in csv.reader(io.StringIO(text, newline=None)) if any(c.strip() for c in r))  # \r ends rows too
    values = []
    try:
        for i, row in enumerate(rows):
            try:
                values.append(float(row[-1].strip()))
            except ValueError:
                if i == 0:
                    continue  # a header
                raise SeqDataError(f"Row {i + 1} ends in {row[-1].strip()[:20]!r}, not a number: the last column "
                                   "must hold the series' numbers.") from None
            if len(values) > MAX_SERIES_VALUES:
                break  # series_values refuses it: reading on would only cost time and memory
    except csv.Error:  # a field past csv's 128 KB limit
        raise SeqDataError("That file is not a CSV of numbers: a row is over 128 KB long.") from None
    return series_values(values)


def series_values(values) -> np.ndarray:
    """Numbers already read (by parse_series, or kept in a Sequence Lab model file), checked as an
    upload is: one list of 30 to 100,000 finite numbers that vary and stay below 10¹²."""
    try:
        arr = np.asarray(values, np.float64)
    except (TypeError, ValueError, OverflowError):  # words, dictionaries, lists of other lengths, 10**400
        arr = None
    if arr is None or arr.ndim != 1:
        raise SeqDataError("The series must be one list of numbers.")
    if len(arr) > MAX_SERIES_VALUES:
        raise SeqDataError(f"The series has more than {MAX_SERIES_VALUES:,} numbers, the limit.")
    if len(arr) < MIN_SERIES_VALUES:
        raise SeqDataError(f"The series has {len(arr)} numbers; at least {MIN_SERIES_VALUES}, please.")
    if not np.isfinite(arr).all():
        raise SeqDataError("Some values are missing, NaN or infinite: fill them in first.")
    if np.abs(arr).max() > 1e12 or arr.std() == 0:
        raise SeqDataError("The numbers must vary and stay below 10¹²: there is nothing to forecast here.")
    return arr


# ---- writing with a trained language model ----
def next_char_probs(model: nn.Module, data: SeqData, context: str, temperature: float = 1.0) -> np.ndarray:
    """The model's probabilities for the next character after `context` (its last `lag`
    characters, padded in front), sharpened (T < 1) or flattened (T > 1): softmax(logits / T)."""
    index = {c: i for i, c in enumerate(data.vocab)}
    codes = [index.get(c, len(data.vocab) - 1) for c in context[-data.length:]]
    x = torch.tensor([[0] * (data.length - len(codes)) + codes], device=next(model.parameters()).device)
    with evaluating(model), torch.no_grad():
        logits = model(x)[0].double().cpu()
    return torch.softmax(logits / max(temperature, 1e-6), 0).numpy()


def generate(model: nn.Module, data: SeqData, prompt: str, length: int, temperature: float, seed: int) -> str:
    """`length` characters written one at a time, each drawn from next_char_probs (temperature
    near 0: always the likeliest one)."""
    rng, out = np.random.default_rng(seed), prompt
    for _ in range(length):
        p = next_char_probs(model, data, out, temperature)
        k = int(p.argmax()) if temperature < 1e-3 else int(rng.choice(len(p), p=p / p.sum()))
        out += data.classes[k]
    return out[len(prompt):]

