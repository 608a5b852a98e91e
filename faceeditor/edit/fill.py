"""The fill layer: pixels of the edited face that the photo cannot supply.

The warp (:mod:`faceeditor.edit.flow`) has no source for the mouth interior when the jaw
opens, skin turned toward the camera from behind the silhouette or the nose, or an eyelid
closing over the eye. A :class:`FillProvider` renders those pixels for the edited geometry;
the compositor blends its layer over the warped photo with a soft mask
(``need * confidence``). The neural renderer will implement the same protocol (it gets the
state, hence ``state.latent``/``state.noise``, and the edited geometry). Until then
:class:`MeshFill` renders the ICT head itself: the state's texture atlas (face and head tiles
from the photo; teeth, gums, sclera and iris as plain materials) under the target SH light,
with a dark, occlusion-shaded mouth socket, colour-matched to the photo by per-surface gains
(skin, sclera, iris, teeth, ...: :meth:`MeshFill.set_gain`).

Contract: a request covers ``window`` (a rectangle of the output image) sampled on its own grid
(``window.grid_w x grid_h``; the output resolution capped at ``MAX_FILL_PX``, or the compositor's
work grid for preview-sized outputs); the layer must be on that grid. ``need`` says which
pixels will be used (a provider may leave the others black with confidence 0). Providers are
called from the render thread, at most once per render, and must not keep the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.core.camera import Camera
from faceeditor.core.state import FaceState
from faceeditor.edit.flow import surface_ids
from faceeditor.edit.grid import Window
from faceeditor.edit.params import EditParams
from faceeditor.morphable.model import FaceModel
from faceeditor.render.atlas import atlas_uvs, base_atlas
from faceeditor.render.interpolate import interpolate_packed, sample_texture
from faceeditor.render.raster import rasterize
from faceeditor.render.sh import sh_shading

MOUTH_SOCKET_RGB = (0.32, 0.12, 0.11)
MOUTH_FRONT_Z = 10.8  # cm, model frame: the front of the teeth / lips
MOUTH_AO_CM = 2.5  # occlusion e-folding depth into the mouth
MOUTH_AO_MIN = 0.12


@dataclass
class FillRequest:
    """What a fill provider gets: the edited head and the pixels that need it."""

    window: Window  # output pixels covered by the layer and the grid they are sampled on
    camera: Camera  # the output image's camera (``window.screen`` maps camera space to the grid)
    verts: torch.Tensor  # (1,V,3) edited head, camera space
    normals: torch.Tensor  # (1,V,3) unit vertex normals of ``verts``
    need: np.ndarray  # (grid_h, grid_w) float32 in [0,1]; 0 = will not be used
    sh: np.ndarray  # (9,3) SH irradiance of the edited photo
    state: FaceState  # the fitted face (texture atlas, latent code, ...)
    edit: EditParams
    faces: torch.Tensor | None = None  # hint: the triangles (indices into model.faces) seen where
    #                                     fill is needed; a mesh provider may draw only these
    fragments: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # hint: ``verts`` already
    #   rasterized on this window's grid: flat pixel index (N,), triangle (N,) into model.faces,
    #   barycentrics (N,3); a provider may shade these instead of rasterizing again


@dataclass
class FillLayer:
    rgb: np.ndarray  # (grid_h, grid_w, 3) float32 sRGB in [0,1]
    confidence: np.ndarray  # (grid_h, grid_w) float32 in [0,1]; 0 where the provider has nothing


class FillProvider(Protocol):
    name: str

    def fill(self, request: FillRequest) -> FillLayer:
        """The layer on ``request.window``'s grid (see the module docstring)."""
        ...


class MeshFill:
    """Fill by rendering the textured ICT head with SH shading (the fallback provider)."""

    name = "mesh"

    def __init__(self, model: FaceModel, state: FaceState, faces: torch.Tensor,
                 colour_gain: np.ndarray | None = None, tile: int = 256) -> None:
        dev = model.device
        self.faces = faces  # (F',) indices of the rendered triangles into model.faces
        self.tri = model.faces[faces]
        uv, uv_faces = atlas_uvs(model)
        self.uv, self.tri_uv = uv, uv_faces[faces]
        self._slot = torch.full((model.faces.shape[0],), -1, dtype=torch.long, device=dev)
        self._slot[faces] = torch.arange(faces.numel(), device=dev)  # model face -> row of self.tri
        if state.texture is not None:
            tex = torch.as_tensor(np.asarray(state.texture), device=dev).float() / 255.0
        else:
            tex = torch.as_tensor(base_atlas(tile, model=model), device=dev)
        self.atlas = tex.permute(2, 0, 1)[None].contiguous()

        self.surface = surface_ids(model, faces)  # (F',) surface of each triangle (flow.surface_ids)
        self.n_surfaces = len(model.region_names) + 2
        self.gain = torch.ones(self.n_surfaces, 3, device=dev)  # per-surface RGB gain (set_gain)
        if colour_gain is not None:
            self.set_gain(colour_gain)
        # mouth interior: dark socket, occlusion growing with depth behind the lips
        mouth_regions = [i for i, n in enumerate(model.vertex_region_names)
                         if n in ("mouth_socket", "gums_tongue", "teeth")]
        in_mouth = torch.isin(model.vertex_region, torch.tensor(mouth_regions, device=dev))
        z = model.neutral[:, 2]
        ao = torch.exp(-(MOUTH_FRONT_Z - z).clamp(min=0.0) / MOUTH_AO_CM).clamp(MOUTH_AO_MIN, 1.0)
        self.ao = torch.where(in_mouth, ao, torch.ones_like(ao))[:, None]  # (V,1)
        socket = model.vertex_region_names.index("mouth_socket")
        self.is_socket = (model.vertex_region[self.tri] == socket).all(1)  # (F',)
        self.socket_rgb = torch.tensor(MOUTH_SOCKET_RGB, device=dev)

    def set_gain(self, gain: np.ndarray) -> None:
        """Colour gain: (3,) for every surface, or (n_surfaces, 3) per surface id."""
        g = torch.as_tensor(np.asarray(gain, np.float32), device=self.gain.device)
        self.gain = g.expand(self.n_surfaces, 3).clone() if g.ndim == 1 else g.clone()

    @torch.no_grad()
    def fill(self, request: FillRequest) -> FillLayer:
        win = request.window
        H, W = win.grid_h, win.grid_w
        need = torch.as_tensor(request.need).reshape(-1)
        if request.fragments is not None:
            pix, mface, bary = request.fragments
            keep = (need[pix] > 0) & (self._slot[mface] >= 0)
            pix, face, bary = pix[keep], self._slot[mface[keep]], bary[keep]
        else:
            rows = torch.arange(self.tri.shape[0])
            if request.faces is not None:
                rows = self._slot[request.faces]
                rows = rows[rows >= 0]
            frags = rasterize(win.screen(request.verts, request.camera), self.tri[rows], H, W)
            keep = (need[frags.pix] > 0).nonzero().squeeze(1)
            face, bary, pix = rows[frags.face[keep]], frags.bary[keep], frags.pix[keep]
        b = torch.zeros_like(face)
        uvp = interpolate_packed(self.uv, self.tri_uv, face, bary, b)
        albedo = sample_texture(self.atlas, uvp)
        albedo = torch.where(self.is_socket[face][:, None], self.socket_rgb[None], albedo)
        n = F.normalize(interpolate_packed(request.normals, self.tri, face, bary, b), dim=-1)
        sh = torch.as_tensor(np.asarray(request.sh, np.float32).reshape(9, 3))
        shade = sh_shading(n, sh[None].expand(n.shape[0], 9, 3)).clamp(min=0.0)
        ao = interpolate_packed(self.ao, self.tri, face, bary, b)
        lin = albedo * shade * ao * self.gain[self.surface[face]]
        rgb = lin.clamp(0.0, 1.0)
        out = torch.zeros(H * W, 3)
        out[pix] = rgb
        conf = torch.zeros(H * W)
        conf[pix] = 1.0
        return FillLayer(out.view(H, W, 3).numpy(), conf.view(H, W).numpy())
