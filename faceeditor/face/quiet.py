"""Silence native (C++) stderr chatter from mediapipe/TFLite while its graphs start up.

mediapipe logs through absl to file descriptor 2 at graph creation and first inference
("Created TensorFlow Lite XNNPACK delegate", "Feedback manager requires ..."); these are not
errors. Set FACEEDITOR_DEBUG=1 to see them.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_native_stderr():
    if os.environ.get("FACEEDITOR_DEBUG"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters, some test runners)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
