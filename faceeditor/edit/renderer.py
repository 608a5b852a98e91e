"""The photo-renderer interface shared by the CLI, the batch runner, the benchmarks and the GUI.

A ``PhotoRenderer`` is bound to one photo and one fitted face; ``render(edit, scale)`` returns
the edited photo as uint8 HxWx3 at ``scale`` times the photo's resolution (``scale < 1`` is the
GUI's fast preview path, ``1.0`` the full-resolution export path). Implementations: the mesh
compositor (``"mesh"``, :mod:`faceeditor.edit.compose`) and the network renderers built on it
(``"neural"``, ``"gar"``, ``"personal"``: :mod:`faceeditor.jobs.renderers`). A zero edit returns the
photo unchanged.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from faceeditor.core.progress import CancelCheck
from faceeditor.edit.params import EditParams


class PhotoRenderer(Protocol):
    name: str

    def render(self, edit: EditParams, scale: float = 1.0,
               cancel: CancelCheck | None = None) -> np.ndarray:
        """Edited photo, uint8 (round(H*scale), round(W*scale), 3); ``cancel()`` returning True raises
        :class:`~faceeditor.core.errors.Cancelled`."""
        ...
