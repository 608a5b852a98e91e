"""Keep numpy's OpenBLAS single-threaded for the fitter's small dense solves.

The landmark fit solves ~160x160 systems dozens of times; OpenBLAS's threads cost more than
they save at that size and stall badly when another process holds a core (measured: 0.35 ms
single-threaded vs up to 9 ms with 2 threads under load). Torch keeps its own thread pool.
"""

from __future__ import annotations

import ctypes
import glob
import os

import numpy as np


def single_thread_blas() -> bool:
    """Set numpy's bundled OpenBLAS to one thread; returns False when it cannot be found.

    Idempotent and cheap (the library is already loaded): called by each new fitter."""
    libdir = os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs")
    for path in glob.glob(os.path.join(libdir, "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("openblas_set_num_threads64_", "openblas_set_num_threads", "openblas_set_num_threads64"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(1)
                return True
    return False
