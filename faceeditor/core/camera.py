"""Camera and pixel conventions, written once.

* Camera space: right-handed, +x right, +y up, the camera looks down -z (OpenGL).
  Units are centimetres (the ICT face model's units).
* Image space: pixel (0, 0) is the top-left pixel; continuous coordinates put the
  top-left *corner* of that pixel at (0, 0), so pixel (i, j) has its centre at
  (j + 0.5, i + 0.5) as (x, y). Image y grows downwards.
* Pinhole projection with focal length ``f`` (pixels) and principal point (cx, cy):
      x = cx + f * X / (-Z),    y = cy - f * Y / (-Z),    depth = -Z  (> 0 in front).
  :func:`project` and :func:`unproject` are the only functions that cross between frames.
* :func:`gl_projection` gives the matching OpenGL clip matrix, so moderngl renders line
  up pixel for pixel with the torch rasterizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

NEAR_DEPTH = 1e-3  # points closer than this (in cm) are treated as behind the camera


@dataclass
class Camera:
    """A pinhole camera for one image (or a batch sharing the image size)."""

    focal_px: float | torch.Tensor  # scalar or (B,)
    width: int
    height: int
    cx: float | None = None  # defaults to width / 2
    cy: float | None = None  # defaults to height / 2

    @property
    def principal(self) -> tuple[float, float]:
        cx = self.width / 2.0 if self.cx is None else float(self.cx)
        cy = self.height / 2.0 if self.cy is None else float(self.cy)
        return cx, cy

    def project(self, points: torch.Tensor) -> torch.Tensor:
        cx, cy = self.principal
        return project(points, self.focal_px, cx, cy)

    def unproject(self, pix: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        cx, cy = self.principal
        return unproject(pix, depth, self.focal_px, cx, cy)

    def gl_projection(self, near: float = 1.0, far: float = 1000.0) -> np.ndarray:
        cx, cy = self.principal
        return gl_projection(float(self.focal_px), self.width, self.height, cx, cy, near, far)

    def scaled(self, factor: float) -> "Camera":
        """The same view at ``factor`` times the resolution (pixel grid scaled about its corner)."""
        cx, cy = self.principal
        return Camera(self.focal_px * factor, round(self.width * factor), round(self.height * factor),
                      cx * factor, cy * factor)


def _per_batch(value: float | torch.Tensor, ref: torch.Tensor) -> torch.Tensor | float:
    if isinstance(value, torch.Tensor) and value.ndim > 0:
        return value.reshape(-1, *([1] * (ref.ndim - 2)))
    return value


def project(points: torch.Tensor, focal: float | torch.Tensor, cx: float, cy: float) -> torch.Tensor:
    """Camera-space points (B,N,3) -> (B,N,3) holding pixel x, pixel y and depth = -Z.

    ``focal`` may be a float or a (B,) tensor. Depth is clamped at :data:`NEAR_DEPTH` for the
    division only; callers decide what to do with points behind the camera (depth <= 0).
    """
    f = _per_batch(focal, points)
    depth = -points[..., 2]
    inv = 1.0 / depth.clamp(min=NEAR_DEPTH)
    x = cx + f * points[..., 0] * inv
    y = cy - f * points[..., 1] * inv
    return torch.stack([x, y, depth], dim=-1)


def unproject(pix: torch.Tensor, depth: torch.Tensor, focal: float | torch.Tensor, cx: float, cy: float) -> torch.Tensor:
    """Inverse of :func:`project`: pixel coords (...,2) and depth (...) -> camera-space points (...,3)."""
    f = _per_batch(focal, pix)
    X = (pix[..., 0] - cx) * depth / f
    Y = -(pix[..., 1] - cy) * depth / f
    return torch.stack([X, Y, -depth], dim=-1)


def gl_projection(focal: float, width: int, height: int, cx: float, cy: float,
                  near: float = 1.0, far: float = 1000.0) -> np.ndarray:
    """OpenGL clip matrix (row-major 4x4, float32) equal to :func:`project` in pixel space.

    NDC x = (2 x_pix / W - 1), NDC y = (1 - 2 y_pix / H): OpenGL's window origin is the
    bottom-left corner, so a framebuffer read back with rows flipped matches image rows.
    """
    P = np.zeros((4, 4), dtype=np.float64)
    P[0, 0] = 2.0 * focal / width
    P[0, 2] = 1.0 - 2.0 * cx / width  # multiplies Z; x_ndc = (2f X/(-Z) + 2cx)/W - 1
    P[1, 1] = 2.0 * focal / height
    P[1, 2] = 2.0 * cy / height - 1.0
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = -1.0
    return P.astype(np.float32)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 1.0, 0.0])) -> np.ndarray:
    """World-to-camera 4x4 matrix (float32) for a camera at ``eye`` looking at ``target`` (-z forward)."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, fwd)
    M = np.eye(4)
    M[0, :3], M[1, :3], M[2, :3] = right, true_up, -fwd
    M[:3, 3] = -M[:3, :3] @ eye
    return M.astype(np.float32)
