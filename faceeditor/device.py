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
    return f"CPU ({torch.get_num_threads()} threads)"
