"""What G is fed for a head in the crop: its condition map, and its noise maps carried with the surface.

* :func:`render_condition`: G's condition (normals + regions, :func:`faceeditor.neural.gar.condition_map`)
  of posed vertices; the same surface and labels as the dataset
  (:func:`faceeditor.neural.labels.render_labels`), but differentiable in the vertices
  (barycentrics and vertex normals carry the gradient: the inversion optimises the geometry
  through it, GAR eq. 10).
* :func:`state_noise`, :func:`surface_grid`, :func:`warp_noise`: the state's inverted noise maps
  (eps), moved with the skin when the edited head turns.

Each takes an optional :class:`~faceeditor.neural.labels.RegionTable`; callers that render many
maps of one model build it once.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.core.camera import Camera
from faceeditor.core.state import FaceState
from faceeditor.morphable.model import FaceModel
from faceeditor.morphable.normals import vertex_normals
from faceeditor.neural.gar import Generator, condition_map
from faceeditor.neural.labels import RegionTable, region_map
from faceeditor.render.interpolate import interpolate
from faceeditor.render.raster import rasterize

Noise = list[torch.Tensor] | str  # per-layer maps (1,1,H,W), or "zero" / "random" (Generator.forward)


def render_condition(model: FaceModel, verts_crop: torch.Tensor, camera: Camera,
                     table: RegionTable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """G's condition (B,8,S,S) of crop-frame vertices (B,V,3), and the region map (B,S,S) (uint8 labels)."""
    if table is None:
        table = RegionTable.of(model)
    faces = table.faces.to(verts_crop.device)
    normals = vertex_normals(verts_crop, model.faces)
    frags = rasterize(camera.project(verts_crop), faces, camera.height, camera.width, cull_backfaces=True)
    nmap = F.normalize(interpolate(normals, frags, faces), dim=1, eps=1e-8)
    region = region_map(table, frags)
    return condition_map(nmap, region), region


def state_noise(state: FaceState, G: Generator, device: torch.device) -> Noise:
    """The state's inverted noise maps as tensors (or ``"zero"`` when it has none for this G)."""
    shapes = G.noise_shapes()
    noise = state.neural.noise if state.neural is not None else []
    if len(noise) != len(shapes):
        return "zero"
    return [torch.as_tensor(np.asarray(n, np.float32), device=device).reshape(1, 1, *hw)
            for n, hw in zip(noise, shapes)]


@torch.no_grad()
def surface_grid(model: FaceModel, src_crop: torch.Tensor, dst_crop: torch.Tensor, camera: Camera,
                 table: RegionTable | None = None) -> torch.Tensor:
    """Where each pixel of the edited head was in the fitted view: (1,S,S,2) ``grid_sample`` coordinates
    (align_corners=False) into the crop of ``src_crop`` for the crop of ``dst_crop`` (both (1,V,3)
    crop-frame vertices of the same mesh); pixels off the edited head map to themselves.

    Used to carry the inverted noise maps with the surface: noise is per-pixel detail of the
    photographed skin, so when the head turns it must move with it (left in place it prints the old
    view's details onto the new one)."""
    if table is None:
        table = RegionTable.of(model)
    S = camera.width
    faces = table.faces.to(dst_crop.device)
    frags = rasterize(camera.project(dst_crop), faces, camera.height, S, cull_backfaces=True)
    src = camera.project(src_crop)[0, :, :2]  # (V,2) pixel coordinates in the fitted view
    p = (src[faces[frags.face]] * frags.bary[:, :, None]).sum(1)  # (N,2)
    g = torch.arange(S, device=dst_crop.device, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    grid = torch.stack([xx, yy], -1).reshape(-1, 2)
    grid[frags.pix] = p.float()
    return (grid.view(1, camera.height, S, 2) / S) * 2.0 - 1.0


def warp_noise(noise: Noise, grid: torch.Tensor | None) -> Noise:
    """Noise maps resampled along :func:`surface_grid` (each at its own resolution)."""
    if grid is None or isinstance(noise, str):
        return noise
    out = []
    for n in noise:
        h, w = n.shape[-2:]
        g = grid if grid.shape[1] == h else F.adaptive_avg_pool2d(grid.permute(0, 3, 1, 2), (h, w)).permute(0, 2, 3, 1)
        out.append(F.grid_sample(n.float(), g.to(n.device), mode="bilinear", padding_mode="border",
                                 align_corners=False))
    return out
