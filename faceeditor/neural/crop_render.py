"""``G(n', s', z, eps)``: the GAR renderer's image of an (edited) face in its aligned crop.

:class:`CropRenderer` binds G to one inverted face: the crop (:mod:`faceeditor.neural.crop`), the
state's z, its noise maps (carried with the surface when the head moves:
:func:`faceeditor.neural.condition.surface_grid`) and its pivotal tuning; :meth:`CropRenderer.render`
draws the crop for any camera-frame head and SH light. :func:`render_edit` renders an
:class:`~faceeditor.edit.params.EditParams` of the face: the edited head
(:func:`faceeditor.edit.geometry.edited_vertices`) under the edit's light
(:func:`faceeditor.edit.geometry.target_sh`).
"""

from __future__ import annotations

import numpy as np
import torch

from faceeditor.core.state import FaceState
from faceeditor.edit.geometry import edited_vertices, model_vertices, posed, target_sh
from faceeditor.edit.params import EditParams
from faceeditor.morphable.model import FaceModel
from faceeditor.neural.condition import render_condition, state_noise, surface_grid, warp_noise
from faceeditor.neural.crop import CropView, crop_view
from faceeditor.neural.gar import shading_map
from faceeditor.neural.gar_nets import GarNets, load_gar
from faceeditor.neural.labels import RegionTable
from faceeditor.neural.layers import autocast


def fitted_vertices(model: FaceModel, state: FaceState) -> torch.Tensor:
    """The state's head (1,V,3) in the photo's camera frame, as the compositor poses it."""
    with torch.no_grad():
        return posed(model, state, model_vertices(model, state))


class CropRenderer:
    """G bound to one face: its crop, z, noise and pivotal tuning (``state.neural``, which must be set)."""

    def __init__(self, model: FaceModel, state: FaceState, nets: GarNets) -> None:
        dev = nets.device
        self.model, self.state, self.nets = model, state, nets
        self.table = RegionTable.of(model)
        self.view: CropView = crop_view(state, nets.size)
        self.G = nets.tuned_generator(state)
        self.z = torch.as_tensor(np.asarray(state.neural.latent, np.float32), device=dev).reshape(1, -1)
        self.noise = state_noise(state, self.G, dev)
        self.src = self.view.to_crop(fitted_vertices(model, state).to(dev))  # the fitted head, crop frame

    @torch.no_grad()
    def render(self, verts: torch.Tensor, sh: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """G's crop (1,3,S,S) clamped to [0,1] and its condition map (1,8,S,S) for camera-frame
        ``verts`` (1,V,3) under the photo-frame SH ``sh`` (9,3)."""
        dev = self.nets.device
        dst = self.view.to_crop(verts.to(dev).float())
        cond, _ = render_condition(self.model, dst, self.view.camera, self.table)
        cond = cond.contiguous(memory_format=torch.channels_last)
        shading = shading_map(cond, self.view.sh(sh).to(dev)[None])
        noise = self.noise
        if not torch.equal(self.src, dst):
            noise = warp_noise(noise, surface_grid(self.model, self.src, dst, self.view.camera, self.table))
        with autocast(dev):
            img = self.G(cond, shading, self.z, noise=noise)
        return img.float().clamp(0, 1), cond


@torch.no_grad()
def render_edit(model: FaceModel, state: FaceState, edit: EditParams | None = None, nets: GarNets | None = None,
                verts: torch.Tensor | None = None,
                sh: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor, CropView]:
    """``G(n', s', z, eps)`` of the (edited) face: image (1,3,S,S) clamped to [0,1], the condition map
    (1,8,S,S) and the crop. ``verts`` (1,V,3) camera frame and ``sh`` (9,3) override the edit's.
    ``nets``: the loaded renderer (loaded from ``resources/`` when not given)."""
    nets = nets or load_gar()
    if state.neural is None:
        raise ValueError("the face has not been inverted (faceeditor.neural.invert.invert)")
    edit = edit or EditParams()
    renderer = CropRenderer(model, state, nets)
    if verts is None:
        verts = edited_vertices(model, state, edit)
    if sh is None:
        sh = target_sh(state, edit)
    img, cond = renderer.render(verts, sh)
    return img, cond, renderer.view
