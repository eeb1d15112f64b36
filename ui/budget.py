"""Each learner's share of the server's memory: uploads checked against it, undo copies let go.

The registry counts what a session's runs hold (dl_core/engine/footprint.py); a room of 30 on
one server must not be filled by a few tabs of big zips. An upload's data lives twice, as the
data the page keeps and as the training job's tensors, so it is counted twice.
"""
from __future__ import annotations

import streamlit as st

from dl_core.engine import RUNS
from dl_core.engine.footprint import nbytes

from . import widgets


def refusal(parsed) -> str | None:
    """Why this upload's data does not fit the session's budget (one sentence), or None."""
    need, held, budget = 2 * nbytes(parsed), RUNS.footprint(widgets.session_id()), RUNS.budget_bytes
    if need + held <= budget:
        return None
    return (f"its data would take {mb(need)} on the server, and each learner may keep {mb(budget)} (your networks "
            f"hold {mb(held)}): use fewer or smaller pictures, or a shorter file.")


def keep_within(undo_keys: list[str]) -> None:
    """Over the budget, the undo copies (the session-state keys `undo_keys`) go first."""
    if RUNS.footprint(widgets.session_id()) <= RUNS.budget_bytes:
        return
    for key in undo_keys:
        dropped = st.session_state.pop(key, None)
        if dropped is not None:
            RUNS.discard(dropped)


def mb(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MB"
