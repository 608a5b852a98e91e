"""Load mediapipe without its side effects: native stderr chatter and matplotlib.

mediapipe logs through absl to file descriptor 2 at graph creation and first inference
("Created TensorFlow Lite XNNPACK delegate", "Feedback manager requires ..."); these are not
errors. Set FACEEDITOR_DEBUG=1 to see them. ``import mediapipe`` also imports
``matplotlib.pyplot`` (for its plotting helpers, which we never call): on a first run that builds
a font cache in the user's cache folder, costing seconds; :func:`load_mediapipe` makes that import
lazy (:class:`DeferredModule`), so pyplot loads only if something really plots.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from types import ModuleType


def load_mediapipe() -> ModuleType:
    """``import mediapipe``, with ``matplotlib.pyplot`` deferred until first used."""
    if "mediapipe" not in sys.modules and "matplotlib.pyplot" not in sys.modules:
        sys.modules["matplotlib.pyplot"] = DeferredModule("matplotlib.pyplot")
    return importlib.import_module("mediapipe")


class DeferredModule(ModuleType):
    """A stand-in registered in ``sys.modules`` that imports the real module on the first
    attribute it does not have, then takes its contents. (``importlib.util.LazyLoader`` does
    not help here: in Python 3.11 the import system itself reads the module's ``__spec__``, which
    makes a lazy module load at once.)"""

    def __getattr__(self, attr: str):
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        self.__dict__.update(real.__dict__)
        return getattr(real, attr)


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
