"""Tables derived from one face model, kept with the model that they describe.

Layers above the model build tables from it once and reuse them: the fitter's contour candidates
and the shared landmark fitter (:mod:`faceeditor.fit`), texel maps of the atlas, the refinement's
triangle set and mean albedo. They live in ``model.derived`` (a :class:`DerivedTables`), so
whoever owns the model owns them too and a model moved to another device (:meth:`FaceModel.to`)
starts empty; nothing is kept in module globals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class DerivedTables:
    """Values built on first request, one per key; thread-safe (a build runs once, under the lock)."""

    def __init__(self) -> None:
        self._values: dict[Hashable, object] = {}
        self._lock = threading.RLock()  # re-entrant: a build may ask for another table

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The value stored under ``key``, built by ``build()`` the first time it is asked for."""
        with self._lock:
            if key not in self._values:
                self._values[key] = build()
            return self._values[key]  # type: ignore[return-value]

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._values
