""":class:`GarRenderer`: the ``"gar"`` :class:`~faceeditor.edit.renderer.PhotoRenderer` (GAR's G fills, after an inversion).

The mesh compositor (warp + relight, at the photo's resolution,
:class:`~faceeditor.edit.compose.MeshCompositor`) with G as its fill layer
(:class:`~faceeditor.neural.fill.NeuralFill`), inverting the photo first when the state has no
latent for the loaded G (:func:`inverted_state`).
"""

from __future__ import annotations

import numpy as np

from faceeditor.core.progress import CancelCheck, Progress
from faceeditor.core.state import FaceState
from faceeditor.edit.compose import MeshCompositor
from faceeditor.edit.params import EditParams
from faceeditor.morphable.model import FaceModel
from faceeditor.neural.fill import NeuralFill
from faceeditor.neural.gar_nets import GarNets, load_gar
from faceeditor.neural.invert import InvertConfig, invert


def inverted_state(photo: np.ndarray, state: FaceState, model: FaceModel, nets: GarNets,
                   config: InvertConfig | None = None, progress: Progress | None = None) -> FaceState:
    """:func:`faceeditor.neural.invert.invert`, remembered by ``nets`` for the last few input states
    (:class:`~faceeditor.neural.gar_nets.InversionMemo`: the window makes a preview and a
    full-resolution renderer of the same face, one inversion serves both)."""
    hit = nets.inversions.get(state, photo.shape)
    if hit is not None:
        return hit
    out = invert(photo, state, model, config=config, nets=nets, progress=progress)
    nets.inversions.put(state, photo.shape, out)
    return out


class GarRenderer:
    """The ``"gar"`` PhotoRenderer: the mesh compositor (warp, relight, full resolution) with G as
    its fill layer (:class:`NeuralFill`).

    When ``state`` has no latent for the loaded G it is inverted first
    (:func:`faceeditor.neural.invert.invert`, ``invert_config``/``progress``; a few seconds to
    ~20 s on a CPU), unless ``invert_if_needed`` is False (then ValueError). :attr:`state` is the
    (inverted) state in use. ``nets``: the loaded renderer, shared by the renderers a caller makes
    (loaded from ``resources/`` when not given).
    """

    name = "gar"

    def __init__(self, photo: np.ndarray, state: FaceState, model: FaceModel, nets: GarNets | None = None,
                 invert_if_needed: bool = True, invert_config: InvertConfig | None = None,
                 progress: Progress | None = None, **compositor_kw) -> None:
        self.nets = nets or load_gar()
        if state.neural_code(self.nets.renderer_id) is None:
            if not invert_if_needed:
                raise ValueError("the face has not been inverted for the shipped GAR renderer")
            state = inverted_state(photo, state, model, self.nets, invert_config, progress)
        self.state = state
        self.fill = NeuralFill(model, state, self.nets)
        self.compositor = MeshCompositor(photo, state, model, fill=self.fill, **compositor_kw)

    def prepare(self, scale: float = 1.0) -> None:
        self.compositor.prepare(scale)

    def render(self, edit: EditParams, scale: float = 1.0, cancel: CancelCheck | None = None) -> np.ndarray:
        return self.compositor.render(edit, scale=scale, cancel=cancel)
