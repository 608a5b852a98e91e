"""Compute device choice: CUDA when available, else CPU. The only global beyond loaded resources."""

from __future__ import annotations

import os

import torch

_DEVICE: torch.device | None = None


def get_device() -> torch.device:
    """The device the core computes on ($FACEEDITOR_DEVICE overrides: ``cpu`` or ``cuda``)."""
    global _DEVICE
    if _DEVICE is None:
        want = os.environ.get("FACEEDITOR_DEVICE", "").strip().lower()
        if want:
            _DEVICE = torch.device(want)
        else:
            _DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return _DEVICE


def set_device(device: str | torch.device) -> None:
    global _DEVICE
    _DEVICE = torch.device(device)


def describe_device() -> str:
    """Human-readable device line for status bars and benchmark output."""
    dev = get_device()
    if dev.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(dev)}"
    n = torch.get_num_threads()
    return f"CPU, {n} thread{'' if n == 1 else 's'}"


def configure_threads(requested: int | None = None) -> int:
    """Set torch's CPU threads for this process and return the count.

    ``requested`` (or $FACEEDITOR_THREADS) wins; otherwise all cores that other processes leave
    idle (cores minus the 1-minute load average, at least 1). On a busy machine one thread is
    far faster than two: OpenMP threads spin-wait for each other while a core is taken
    (measured here: a 12 ms render took 1.7 s with 2 threads beside other jobs, 24 ms with 1).
    """
    env = os.environ.get("FACEEDITOR_THREADS", "").strip()
    n = requested if requested is not None else (int(env) if env.isdigit() else None)
    if n is None:
        cores = os.cpu_count() or 1
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
        n = max(1, min(cores, int(cores - load + 0.5)))
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()
