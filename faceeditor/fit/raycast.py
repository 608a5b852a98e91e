"""Which surface point of a posed mesh lies under given image points (a ray cast via the rasterizer)."""

from __future__ import annotations

import numpy as np
import torch

from faceeditor.core.camera import Camera
from faceeditor.render.raster import rasterize


def surface_hits(verts: torch.Tensor, faces: torch.Tensor, camera: Camera,
                 points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangle (index into ``faces``) and barycentrics of the visible surface under each point.

    ``verts`` (V,3) camera frame; ``points`` (N,2) pixels. The visible triangle is the one the
    rasterizer keeps at the point's pixel; barycentrics are then computed at the exact point
    (perspective-correct) and clamped onto the triangle. Returns ``tri`` (N,), ``bary`` (N,3),
    ``hit`` (N,) bool (False where the pixel shows no surface).
    """
    W, H = camera.width, camera.height
    screen = camera.project(verts[None].float())
    frags = rasterize(screen, faces, H, W)
    ids = frags.face_id_map()[0].cpu().numpy()
    pts = np.asarray(points, dtype=np.float64)
    px = np.clip(np.floor(pts[:, 0]).astype(int), 0, W - 1)
    py = np.clip(np.floor(pts[:, 1]).astype(int), 0, H - 1)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < W) & (pts[:, 1] >= 0) & (pts[:, 1] < H)
    tri = ids[py, px]
    hit = inside & (tri >= 0)
    tri = np.where(hit, tri, 0)
    corners = screen[0].detach().cpu().numpy()[faces.cpu().numpy()[tri]]  # (N,3,3): x, y, depth
    x, y, z = corners[..., 0], corners[..., 1], corners[..., 2]
    dx, dy = x - pts[:, :1], y - pts[:, 1:2]
    w = np.stack([dx[:, 1] * dy[:, 2] - dx[:, 2] * dy[:, 1], dx[:, 2] * dy[:, 0] - dx[:, 0] * dy[:, 2],
                  dx[:, 0] * dy[:, 1] - dx[:, 1] * dy[:, 0]], 1)
    area = w.sum(1, keepdims=True)
    b = np.clip(w / np.where(np.abs(area) < 1e-12, 1.0, area), 0.0, None)
    b = b / np.maximum(b.sum(1, keepdims=True), 1e-12)
    persp = b / z
    bary = persp / persp.sum(1, keepdims=True)
    return tri, bary, hit
