"""Start-up of a ``faceeditor batch --jobs N`` worker process, kept light on purpose.

A spawned worker imports the module of its initializer before anything else. Here that is this
small module, so the worker is tied to its parent (``prctl(PR_SET_PDEATHSIG)``) within a fraction
of a second of starting, not after the seconds torch and the fitter take to import: killing the
batch (even with kill -9) while its workers are still starting leaves none behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys


def die_with_parent(parent_pid: int) -> None:
    """Linux: the kernel sends this worker SIGKILL when its parent dies, so killing ``faceeditor
    batch`` never leaves workers writing outputs."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except OSError:  # pragma: no cover - no libc by that name
            pass
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def init_worker(threads: int, parent_pid: int) -> None:
    """Tie the worker to its parent first, then split the torch/OpenCV threads."""
    die_with_parent(parent_pid)
    import torch  # imported after the parent link on purpose (see the module docstring)

    torch.set_num_threads(max(1, threads))
    try:
        import cv2

        cv2.setNumThreads(max(1, threads))
    except ImportError:  # pragma: no cover
        pass
