"""Choose the compute device once, and say why, so every page and job agrees.

Preference order is CUDA > Apple MPS > CPU. The learner may force one; asking
for a device that is not there falls back to the CPU with a reason instead of
failing, because a classroom laptop without a GPU must still run every lab.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


@dataclass(frozen=True)
class DeviceInfo:
    """The picked device plus a human sentence about it."""

    kind: str  # "cuda" | "mps" | "cpu"
    name: str
    detail: str
    reason: str

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.kind)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def available_kinds() -> list[str]:
    """Device kinds usable on this machine, best first."""
    kinds = []
    if torch.cuda.is_available():
        kinds.append("cuda")
    if _mps_available():
        kinds.append("mps")
    kinds.append("cpu")
    return kinds


def describe(kind: str) -> DeviceInfo:
    """Name and capacity of one device kind (assumed available)."""
    if kind == "cuda":
        props = torch.cuda.get_device_properties(0)
        gib = props.total_memory / 2**30
        return DeviceInfo("cuda", props.name, f"{gib:.0f} GiB GPU memory", "")
    if kind == "mps":
        return DeviceInfo("mps", "Apple GPU (MPS)", "unified memory", "")
    threads = torch.get_num_threads()
    return DeviceInfo("cpu", "CPU", f"{os.cpu_count()} cores, torch uses {threads} thread(s)", "")


def pick_device(preference: str = "auto") -> DeviceInfo:
    """Resolve a preference ("auto", "cuda", "mps", "cpu") to a usable device."""
    if preference not in DEVICE_CHOICES:
        raise ValueError(f"Unknown device {preference!r}; choose one of {', '.join(DEVICE_CHOICES)}.")
    kinds = available_kinds()
    if preference == "auto":
        kind = kinds[0]
        reason = {
            "cuda": "picked the CUDA GPU: it is the fastest device here",
            "mps": "picked the Apple GPU (MPS): no CUDA GPU found",
            "cpu": "picked the CPU: no CUDA or Apple GPU found",
        }[kind]
    elif preference in kinds:
        kind, reason = preference, f"using {preference.upper()} as asked"
    else:
        kind = "cpu"
        reason = f"{preference.upper()} was asked for but is not available here, so the CPU is used"
    info = describe(kind)
    return DeviceInfo(info.kind, info.name, info.detail, reason)


def configure_threads(n: int) -> None:
    """Set torch's intra-op threads once. One thread is the measured sweet spot for
    many small concurrent jobs on a shared server: a second thread beside a busy core
    made small-model work many times slower."""
    n = max(1, int(n))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
