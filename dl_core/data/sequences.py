"""The Sequence Lab's tasks, all offline: memory tasks generated in code, surnames by language
from the lists Faker's wheel ships, and (seqsources) series and text from installed wheels
or the learner's own file; one registry, SEQ_TASKS, feeds the page and the tests.

A memory task has a *lag* (how far back the answer lies), so "how far back can it
remember?" becomes a number the learner moves and measures. Every set is tokens (one
integer per step, 0 the padding) or values (a few numbers per step), with one answer per
sequence: a class or a number, which is what SupervisedTrainer trains.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .seqdata import PAD, SeqData, split
from .seqsources import co2, docs, series_task, sunspots, text_task


@dataclass(frozen=True)
class SeqTask:
    label: str
    blurb: str  # what the network must do, and where the data come from
    make: Callable[[int, int, int], SeqData] | None  # (examples, lag, seed) -> the data (None: an upload)
    lag_label: str = "Lag (steps back)"
    lags: tuple[int, int, int] = (1, 150, 100)  # min, max, default
    kind: str = "memory"  # "memory", "forecast" (the next value), "language" (the next character) or
    # "labelling" (an answer at every step)
    upload: str | None = None  # "text" or "series": made from the learner's file (from_upload), not `make`
    examples: int = 2000  # windows or sequences made (a language model needs more to read)


def recall(n: int, lag: int, seed: int) -> SeqData:
    """A symbol (A–D), then `lag` more symbols of the same four: which came first? The answer
    lies `lag` steps back and every later step looks like it, so the memory must be kept and
    closed to what follows: an LSTM's or GRU's gates can do that, a plain RNN must learn it
    through a gradient that fades over the lag."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 5, (n, lag + 1))
    return split("recall", "classification", x, x[:, 0] - 1, (PAD, "A", "B", "C", "D"), ("A", "B", "C", "D"))


def adding(n: int, lag: int, seed: int) -> SeqData:
    """Hochreiter & Schmidhuber's adding problem: each step a random value and a marker; the
    answer is the sum of the two marked values, the first marked about `lag` steps before the end."""
    rng = np.random.default_rng(seed)
    length = lag + 2
    values = rng.random((n, length), dtype=np.float32)
    marks = np.zeros((n, length), np.float32)
    marks[np.arange(n), rng.integers(0, max(1, length // 4), n)] = 1  # early: far from the end
    marks[np.arange(n), rng.integers(length // 2, length, n)] = 1
    marks[np.arange(n), 0] += (marks.sum(1) < 2)  # both marks fell on one step: mark the first too
    x = np.stack([values, marks], -1)
    return split("adding", "regression", x, (values * marks).sum(1))


def _brackets(n: int, lag: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Brackets and letters, `lag` steps long, never closing more than was opened (at most 4
    deep): the tokens and the depth after each step."""
    rng = np.random.default_rng(seed)
    x, depths = np.zeros((n, lag), np.int64), np.zeros((n, lag), np.int64)
    depth = np.zeros(n, np.int64)
    for t in range(lag):
        move = rng.integers(0, 3, n)  # 0: a letter, 1: open, 2: close
        opening = (move == 1) & (depth < 4)
        closing = (move == 2) & (depth > 0)
        depth += opening.astype(np.int64) - closing
        x[:, t] = np.where(opening, 1, np.where(closing, 2, 3 + rng.integers(0, 2, n)))
        depths[:, t] = depth
    return x, depths


BRACKETS, DEPTHS = (PAD, "(", ")", "a", "b"), tuple(str(d) for d in range(5))


def parens(n: int, lag: int, seed: int) -> SeqData:
    """How deep is the last step (0–4)? The network must count, not just remember one symbol."""
    x, depths = _brackets(n, lag, seed)
    return split("parens", "classification", x, depths[:, -1], BRACKETS, DEPTHS)


def depth_steps(n: int, lag: int, seed: int) -> SeqData:
    """Sequence labelling: the depth after every step, one answer per step."""
    x, depths = _brackets(n, lag, seed)
    return split("depth_steps", "classification", x, depths, BRACKETS, DEPTHS)


REBER = {0: (("T", 1), ("P", 2)), 1: (("S", 1), ("X", 3)), 2: (("T", 2), ("V", 4)), 3: (("X", 2), ("S", 5)),
         4: (("P", 3), ("V", 5))}  # state: ((symbol, next state), …); state 5 ends the string with E
LOOPS = {1: "S", 2: "T"}  # the self-loops, taken while the string is still shorter than the lag


def reber(n: int, lag: int, seed: int) -> SeqData:
    """The embedded Reber grammar (Hochreiter & Schmidhuber, 1997): B, then T or P, then a
    Reber string (B … E) at least `lag` symbols long, then the same T or P again, then E. The
    input stops before the repeat: which comes next, T or P? The grammar inside is
    predictable step by step; the answer lies beyond all of it."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for _ in range(n):
        first = "TP"[rng.integers(2)]
        inner, state = ["B"], 0
        while state != 5:
            options = REBER[state]
            if state in LOOPS and len(inner) < lag:
                symbol, state = next(o for o in options if o[0] == LOOPS[state])
            else:
                symbol, state = options[rng.integers(len(options))]
            inner.append(symbol)
        rows.append(["B", first, *inner, "E"])
        labels.append("TP".index(first))
    vocab = (PAD, "B", "E", "P", "S", "T", "V", "X")
    index = {c: i for i, c in enumerate(vocab)}
    width = max(len(r) for r in rows)
    x = np.array([[0] * (width - len(r)) + [index[c] for c in r] for r in rows])
    return split("reber", "classification", x, np.array(labels), vocab, ("T", "P"))


NAME_LOCALES = {"en_US": "English", "de_DE": "German", "it_IT": "Italian", "es_ES": "Spanish", "fr_FR": "French",
                "nl_NL": "Dutch"}


def names(n: int, lag: int, seed: int) -> SeqData:
    """Surnames from Faker's lists (MIT licence, shipped in its wheel): which language is this
    name? Up to `lag` letters, padded in front; at most `n` names, the same number per language."""
    import importlib

    rng = np.random.default_rng(seed)
    lists = {}
    for locale, language in NAME_LOCALES.items():
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        found = provider.last_names
        lists[language] = sorted({s.lower() for s in (found.keys() if isinstance(found, dict) else found)})
    per = min(n // len(lists), min(len(v) for v in lists.values()))
    letters = sorted({c for v in lists.values() for s in v for c in s})
    vocab = (PAD, *letters)
    index = {c: i for i, c in enumerate(vocab)}
    rows, labels = [], []
    for k, words in enumerate(lists.values()):
        for w in rng.choice(words, per, replace=False):
            w = w[-lag:]
            rows.append([0] * (lag - len(w)) + [index[c] for c in w])
            labels.append(k)
    order = rng.permutation(len(rows))
    return split("names", "classification", np.array(rows)[order], np.array(labels)[order], vocab,
                  tuple(NAME_LOCALES.values()))


SEQ_TASKS: dict[str, SeqTask] = {
    "recall": SeqTask("Remember the first symbol", "A symbol (A–D), then more of the same four: which came "
                      "first? The lag is how many follow it. Generated in code.", recall),
    "adding": SeqTask("Adding problem", "Random values, two of them marked: output their sum (regression). The lag "
                      "is about how far back the first mark is. Generated in code (Hochreiter & Schmidhuber, 1997).",
                      adding),
    "parens": SeqTask("Bracket depth", "Brackets and letters: how many brackets are still open at the end (0–4)? "
                      "Generated in code.", parens, "Length (steps)", (4, 60, 16)),
    "depth_steps": SeqTask("Bracket depth at every step", "Brackets and letters: after each step, how many "
                           "brackets are open (0–4)? One answer per step: sequence labelling. Generated in code.",
                           depth_steps, "Length (steps)", (4, 60, 16), "labelling"),
    "reber": SeqTask("Embedded Reber grammar", "Strings of a small grammar, wrapped in T…T or P…P: read up to the "
                     "end of the inner string, then say which wrapper closes it. Generated in code (Hochreiter & "
                     "Schmidhuber, 1997).", reber, "Inner string at least (steps)", (5, 100, 40)),
    "names": SeqTask("Surnames by language", "Which of six languages is a surname from? About a thousand real "
                     "surnames each from the lists in Faker's wheel (MIT licence; nothing is downloaded).",
                     names, "Letters kept (from the end)", (4, 16, 12)),
    "docs": SeqTask("Next character (Python's docs)", "Read some characters, guess the next: a character-level "
                    "language model, which can then write. From Python's own English documentation "
                    "(pydoc_data, in every Python).", docs, "Characters read", (4, 100, 40), "language",
                    examples=20000),
    "sunspots": SeqTask("Forecast sunspots", "Read some years of sunspot numbers, forecast the next year's "
                        "(regression). Yearly 1700–2008, from statsmodels' datasets.", sunspots,
                        "Years read", (4, 60, 22), "forecast"),
    "co2": SeqTask("Forecast CO₂", "Read some weeks of CO₂ at Mauna Loa, forecast the next week's (regression). "
                   "Weekly 1958–2001, from statsmodels' datasets.", co2, "Weeks read", (4, 156, 52),
                   "forecast"),
    "my_text": SeqTask("Your text (next character)", "A plain-text file of your own (UTF-8, 500 characters to "
                       "2 MB): guess the next character, then let the network write.", None, "Characters read",
                       (4, 100, 40), "language", "text", 20000),
    "my_series": SeqTask("Your series (forecast)", "A CSV of your own, one number per row (or numbers in its last "
                         "column; 30 to 100,000 of them): forecast the next one.", None, "Values read",
                         (4, 150, 20), "forecast", "series"),
}


def _clamped(task: str, lag: int) -> int:
    lo, hi, _ = SEQ_TASKS[task].lags
    return int(min(max(lag, lo), hi))


def make(task: str, n: int, lag: int, seed: int) -> SeqData:
    """A task's data, with the lag clamped to what the task allows."""
    return SEQ_TASKS[task].make(n, _clamped(task, lag), seed)


def from_upload(task: str, content, n: int, lag: int, seed: int, name: str) -> SeqData:
    """An upload task's data from the checked content (parse_text's text, parse_series' values)."""
    where = f"Your file {name}."
    if SEQ_TASKS[task].upload == "text":
        return text_task(content, "upload", n, _clamped(task, lag), seed, where)
    return series_task(content, "upload", _clamped(task, lag), where)
