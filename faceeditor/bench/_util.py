"""Timing and photo-listing helpers shared by the benchmarks."""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path
from typing import Callable

import torch


def time_ms(fn: Callable[[], object], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds (CUDA synchronised when in use)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


PHOTO_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def list_photos(folder: Path) -> list[Path]:
    """Photo files under ``folder``, searched recursively, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_EXTS and p.is_file())


DEFAULT_RENDERER = "mesh"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the realism benchmarks (``reenact``, ``quality``)."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--renderers", default=DEFAULT_RENDERER,
                        help="comma-separated renderers to run in the same pass (mesh, neural)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--out-dir", type=Path, default=None, help="contact sheets (default beside --json)")
