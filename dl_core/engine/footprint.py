"""How much memory a learner's runs hold: the bytes of every distinct tensor and array they reach.

A session's budget (runs.py) is counted here. Tensors that share storage (a view, a split of a
dataset, the same weights held twice) count once; only plain containers, dataclasses and the
engine's own objects are walked, so a count never wanders into an executor or another session.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn


def nbytes(*roots, depth: int = 8) -> int:
    """The bytes of the distinct tensors and arrays reachable from `roots`."""
    seen: set[int] = set()
    return sum(_walk(r, seen, depth) for r in roots)


def _walk(obj, seen: set[int], depth: int) -> int:
    if depth < 0 or obj is None or isinstance(obj, (str, bytes, int, float, bool)):
        return 0
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        key = storage.data_ptr() or id(storage)
        if key in seen:
            return 0
        seen.add(key)
        return storage.nbytes()
    if isinstance(obj, np.ndarray):
        base = obj if obj.base is None else obj.base
        if id(base) in seen or not isinstance(base, np.ndarray):
            return 0 if id(base) in seen else obj.nbytes
        seen.add(id(base))
        return base.nbytes
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, nn.Module):
        children = list(obj.state_dict(keep_vars=True).values())
    elif isinstance(obj, torch.optim.Optimizer):
        children = list(obj.state.values())
    elif isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        children = [getattr(obj, f.name, None) for f in dataclasses.fields(obj)]
    elif hasattr(obj, "held"):  # an engine object that says what it keeps (a job, a trainer)
        children = list(obj.held())
    else:
        return 0
    return sum(_walk(c, seen, depth - 1) for c in children)
