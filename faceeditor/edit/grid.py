"""Pixel windows: a rectangle of the output image sampled on a (usually coarser) grid.

The compositor never works on the whole photo. It works in a *region of interest* around the
head (the flow is zero far from it) sampled at a capped internal resolution: the flow field,
the transformation map and the shading ratio are smooth, so they are computed on a grid of at
most a few hundred pixels and upsampled with ``cv2.resize`` before the full-resolution
``cv2.remap``. A :class:`Window` fixes that mapping once:

    grid x = (output x - x0) * kx,   kx = grid_w / w      (same for y)

in continuous pixel coordinates (:mod:`faceeditor.core.camera`: pixel centres at +0.5). This
is exactly the sampling of ``cv2.resize(grid_map, (w, h))`` (half-pixel centres), so maps
computed on the grid line up with the output pixels they are resized to. ``kx`` and ``ky`` may
differ by a hair (both sides are integers), which is why screen coordinates are made here
rather than with a scaled :class:`~faceeditor.core.camera.Camera`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from faceeditor.core.camera import Camera


@dataclass(frozen=True)
class Window:
    """``w x h`` output pixels from (x0, y0), sampled on a ``grid_w x grid_h`` grid."""

    x0: int
    y0: int
    w: int
    h: int
    grid_w: int
    grid_h: int

    @property
    def kx(self) -> float:
        return self.grid_w / self.w

    @property
    def ky(self) -> float:
        return self.grid_h / self.h

    @property
    def slices(self) -> tuple[slice, slice]:
        """Row and column slices of the window in the output image."""
        return slice(self.y0, self.y0 + self.h), slice(self.x0, self.x0 + self.w)

    def screen(self, points: torch.Tensor, camera: Camera) -> torch.Tensor:
        """Camera-space points (B,N,3) -> grid screen coordinates (B,N,3) [x, y, depth]."""
        return self.from_output(camera.project(points))

    def from_output(self, scr: torch.Tensor) -> torch.Tensor:
        """Output screen coordinates (...,3 or 2) -> grid screen coordinates."""
        out = scr.clone()
        out[..., 0] = (scr[..., 0] - self.x0) * self.kx
        out[..., 1] = (scr[..., 1] - self.y0) * self.ky
        return out

    def to_output(self, xy: torch.Tensor) -> torch.Tensor:
        """Grid coordinates (...,2) -> output coordinates (...,2)."""
        out = xy.clone()
        out[..., 0] = xy[..., 0] / self.kx + self.x0
        out[..., 1] = xy[..., 1] / self.ky + self.y0
        return out

    def grid_centres(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Output coordinates of the grid's pixel centres: x (grid_w,), y (grid_h,)."""
        gx = (torch.arange(self.grid_w, device=device, dtype=torch.float32) + 0.5) / self.kx + self.x0
        gy = (torch.arange(self.grid_h, device=device, dtype=torch.float32) + 0.5) / self.ky + self.y0
        return gx, gy

    def sub(self, gx0: int, gy0: int, gx1: int, gy1: int) -> "Window":
        """The part of this window under grid pixels [gx0, gx1) x [gy0, gy1), snapped outward to
        whole output pixels, at the same sampling density (a new, slightly re-sampled grid)."""
        ox0 = max(self.x0, int(math.floor(gx0 / self.kx)) + self.x0)
        oy0 = max(self.y0, int(math.floor(gy0 / self.ky)) + self.y0)
        ox1 = min(self.x0 + self.w, int(math.ceil(gx1 / self.kx)) + self.x0)
        oy1 = min(self.y0 + self.h, int(math.ceil(gy1 / self.ky)) + self.y0)
        w, h = max(1, ox1 - ox0), max(1, oy1 - oy0)
        return Window(ox0, oy0, w, h, max(1, round(w * self.kx)), max(1, round(h * self.ky)))


def make_window(x0: float, y0: float, x1: float, y1: float, image_w: int, image_h: int, max_grid: int,
                min_grid: int = 1) -> Window:
    """The output rectangle [x0,x1) x [y0,y1) clipped to the image and snapped to whole pixels, on a
    grid whose longer side is at most ``max_grid`` (never finer than the output itself)."""
    ix0 = max(0, int(math.floor(x0)))
    iy0 = max(0, int(math.floor(y0)))
    ix1 = min(image_w, int(math.ceil(x1)))
    iy1 = min(image_h, int(math.ceil(y1)))
    w, h = max(1, ix1 - ix0), max(1, iy1 - iy0)
    k = min(1.0, max(min_grid, max_grid) / max(w, h))
    return Window(ix0, iy0, w, h, max(1, round(w * k)), max(1, round(h * k)))


def upsample(window: Window, grid_map: np.ndarray, ox0: int, oy0: int, w: int, h: int, pad: int = 0) -> np.ndarray:
    """Bilinear samples of a grid map (grid_h, grid_w[, C<=4]) at the output pixels
    [ox0, ox0+w) x [oy0, oy0+h) (any part of the window): one ``cv2.warpAffine``, the same
    half-pixel convention as ``cv2.resize`` (edges replicated). ``pad``: the map carries that
    many extra grid pixels on every side (see :func:`pad_linear`)."""
    kx, ky = window.kx, window.ky
    M = np.array([[kx, 0.0, (ox0 - window.x0 + 0.5) * kx - 0.5 + pad],
                  [0.0, ky, (oy0 - window.y0 + 0.5) * ky - 0.5 + pad]], np.float64)
    out = cv2.warpAffine(np.ascontiguousarray(grid_map, dtype=np.float32), M, (w, h),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    if grid_map.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


def sample_at(window: Window, grid_map: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear samples (h,w) of a (grid_h, grid_w) float32 map at output coordinates ``xy`` (h,w,2),
    in :func:`upsample`'s convention; 0 outside the grid."""
    gx = (xy[..., 0] - window.x0 + 0.5) * window.kx - 0.5
    gy = (xy[..., 1] - window.y0 + 0.5) * window.ky - 0.5
    return cv2.remap(grid_map, gx.astype(np.float32), gy.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT)


def pad_linear(grid_map: np.ndarray, pad: int = 1) -> np.ndarray:
    """Pad a (H,W[,C]) map by linear extrapolation (exact for maps that are linear near the
    edges, such as pixel coordinates), so upsampling never clamps them at the border."""
    widths = ((pad, pad), (pad, pad)) + (((0, 0),) if grid_map.ndim == 3 else ())
    return np.pad(grid_map, widths, mode="reflect", reflect_type="odd")
