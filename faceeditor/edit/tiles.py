"""Full-resolution helpers of the compositor: tiles, grid boxes and the fill-layer blend.

The compositor does its per-pixel work tile by tile (:data:`faceeditor.edit.compose.TILE_PX`):
a tile is touched only when the work-grid masks say something changes under it, and every map
it needs is upsampled just for it (:func:`faceeditor.edit.grid.upsample`).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from faceeditor.edit import grain, layers
from faceeditor.edit.grid import Window, upsample
from faceeditor.edit.layers import BehindFace, PortraitLayers
from faceeditor.edit.maps import FaceLayer
from faceeditor.render.fragments import Fragments
from faceeditor.render.raster import rasterize


def resample(win: Window, grid_map: np.ndarray, target: Window) -> np.ndarray:
    """A map on ``win``'s grid resampled onto ``target``'s grid (bilinear, area-averaged when coarser)."""
    full = upsample(win, grid_map, target.x0, target.y0, target.w, target.h)
    if (target.grid_w, target.grid_h) != (target.w, target.h):
        full = cv2.resize(full, (target.grid_w, target.grid_h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(full, np.float32)


def sub_rect(mask: np.ndarray, gbox: tuple[int, int, int, int], win: Window, ox0: int, oy0: int, w: int,
             h: int) -> tuple[int, int, int, int]:
    """The part (x, y, w, h) of output tile (ox0, oy0, w, h) under the True pixels of grid ``mask``
    inside grid box ``gbox`` (grown by one grid pixel for the bilinear footprint)."""
    gx0, gy0, gx1, gy1 = gbox
    b = bbox(mask[gy0:gy1, gx0:gx1], pad=1)
    if b is None:
        return ox0, oy0, 0, 0
    bx0, by0, bx1, by1 = b
    x0 = max(ox0, int(np.floor((gx0 + bx0) / win.kx)) + win.x0)
    y0 = max(oy0, int(np.floor((gy0 + by0) / win.ky)) + win.y0)
    x1 = min(ox0 + w, int(np.ceil((gx0 + bx1) / win.kx)) + win.x0)
    y1 = min(oy0 + h, int(np.ceil((gy0 + by1) / win.ky)) + win.y0)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def blend_layer(tile: np.ndarray, layer: tuple[Window, np.ndarray, grain.Grain | None], ox0: int, oy0: int,
                w: int, h: int, rect: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """uint8 ``tile`` (h,w,3) of output rectangle (ox0, oy0) with the fill layer (RGB + blend
    weight on its own grid, and the photo's grain over its skin, :mod:`.grain`) blended in, within
    ``rect`` (x, y, w, h; default the whole tile)."""
    lw, rgba, skin_grain = layer
    rx0, ry0, rx1, ry1 = ox0, oy0, ox0 + w, oy0 + h
    if rect is not None:
        rx0, ry0, rx1, ry1 = max(rx0, rect[0]), max(ry0, rect[1]), min(rx1, rect[0] + rect[2]), min(ry1, rect[1] + rect[3])
    ix0, iy0 = max(rx0, lw.x0), max(ry0, lw.y0)
    ix1, iy1 = min(rx1, lw.x0 + lw.w), min(ry1, lw.y0 + lw.h)
    if ix1 <= ix0 or iy1 <= iy0:
        return tile
    c = upsample(lw, rgba, ix0, iy0, ix1 - ix0, iy1 - iy0)
    a = np.ascontiguousarray(c[..., 3])
    ys, xs = slice(iy0 - oy0, iy1 - oy0), slice(ix0 - ox0, ix1 - ox0)
    sub = np.ascontiguousarray(tile[ys, xs])
    fill = cv2.convertScaleAbs(np.ascontiguousarray(c[..., :3]), alpha=255.0)
    if skin_grain is not None:
        on_skin = upsample(lw, skin_grain.skin, ix0, iy0, ix1 - ix0, iy1 - iy0)
        fill = grain.apply(fill, grain.tiled(skin_grain.patch, ix0, iy0, ix1 - ix0, iy1 - iy0), on_skin)
    tile[ys, xs] = cv2.blendLinear(sub, fill, 1.0 - a, a)
    return tile


def tiles(win: Window, tile: int):
    for y in range(win.y0, win.y0 + win.h, tile):
        for x in range(win.x0, win.x0 + win.w, tile):
            yield x, y, min(tile, win.x0 + win.w - x), min(tile, win.y0 + win.h - y)


def grid_box(win: Window, ox0: int, oy0: int, w: int, h: int) -> tuple[int, int, int, int]:
    """Grid pixels whose bilinear footprint touches output rectangle (ox0, oy0, w, h)."""
    gx0 = max(0, int(np.floor((ox0 - win.x0) * win.kx - 1)))
    gy0 = max(0, int(np.floor((oy0 - win.y0) * win.ky - 1)))
    gx1 = min(win.grid_w, int(np.ceil((ox0 + w - win.x0) * win.kx + 1)))
    gy1 = min(win.grid_h, int(np.ceil((oy0 + h - win.y0) * win.ky + 1)))
    return gx0, gy0, gx1, gy1


def box_sum(integral: np.ndarray, box: tuple[int, int, int, int]) -> int:
    x0, y0, x1, y1 = box
    return int(integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0])


def raster_front(screen: torch.Tensor, tri: torch.Tensor, area: torch.Tensor, win: Window) -> Fragments:
    """Rasterize the camera-facing triangles of ``tri`` on ``win``'s grid (``face`` indexes ``tri``)."""
    keep = (area > 0).nonzero().squeeze(1)
    frags = rasterize(screen, tri[keep], win.grid_h, win.grid_w)
    frags.face = keep[frags.face]
    return frags


def bbox(mask: np.ndarray, pad: int = 0) -> tuple[int, int, int, int] | None:
    """[x0, y0, x1, y1) of the True pixels of a (H,W) mask grown by ``pad``, or None."""
    rows = np.flatnonzero(mask.any(1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(0))
    H, W = mask.shape
    return (max(0, cols[0] - pad), max(0, rows[0] - pad), min(W, cols[-1] + 1 + pad), min(H, rows[-1] + 1 + pad))


FACE_CUT_BAND = 2.0  # grid pixels either side of the face's outline drawn from the two flows
BORDER = cv2.BORDER_REFLECT_101  # what a flow reaching past the photo's edge samples: the photo mirrored
#                                  there (hair, shoulders, background continue), not its last row smeared


def moved_tile(photo: np.ndarray, win: Window, flow: np.ndarray, portrait: PortraitLayers | None,
               rect: tuple[int, int, int, int], face: FaceLayer | None = None,
               behind: BehindFace | None = None, face_px: np.ndarray | None = None) -> np.ndarray:
    """One output tile of the warp: one resampling per pixel with a sharp (bicubic) filter on the
    final flow; with layers the moved person is drawn over the still background. Pixels the flow
    does not move keep the photo's exact values (bicubic at integer positions weighs one pixel:
    exact). ``face``: where its outline crosses the tile, the face's own flow is applied on its
    side of the outline and cut from the rest with one output pixel of anti-aliasing
    (:class:`~faceeditor.edit.maps.FaceLayer`; only the band's bounding box is resampled again).
    ``face_px`` (grid, float): the edited face; pixels off it whose source lies on the fitted face take
    ``behind`` (:class:`~faceeditor.edit.layers.BehindFace`: no copy of the face beside the turned head)."""
    ox0, oy0, w, h = rect
    cmap = _coords(win, flow, ox0, oy0, w, h)
    tile = cv2.remap(photo, cmap, None, cv2.INTER_CUBIC, borderMode=BORDER)
    if face is not None:
        _cut_face(photo, win, face, tile, rect)
    if behind is not None and face_px is not None:
        _behind_face(behind, win, face_px, cmap, tile, rect)
    if portrait is not None:
        moved_alpha = cv2.remap(portrait.alpha, cmap, None, cv2.INTER_LINEAR, borderMode=BORDER)
        tile = layers.composite(tile, moved_alpha, portrait.background[oy0:oy0 + h, ox0:ox0 + w])
        still = (cmap[..., 0] == np.arange(ox0, ox0 + w, dtype=np.float32)[None, :]) & \
            (cmap[..., 1] == np.arange(oy0, oy0 + h, dtype=np.float32)[:, None])
        tile[still] = photo[oy0:oy0 + h, ox0:ox0 + w][still]
    return tile


def _behind_face(behind: BehindFace, win: Window, face_px: np.ndarray, cmap: np.ndarray, tile: np.ndarray,
                 rect: tuple[int, int, int, int]) -> None:
    """Blend, in place, the pixels of ``tile`` off the edited face (``face_px``) whose sources
    (``cmap``) lie on the fitted face toward the photo with that face inpainted away, by how much
    the source is on the fitted face (its soft hole) times how much the pixel is off the edited face."""
    w = behind.weight_at(cmap)
    if not w.any():
        return
    ox0, oy0, w_px, h_px = rect
    w *= 1.0 - upsample(win, face_px, ox0, oy0, w_px, h_px)
    sel = w > 1.0 / 255.0
    if sel.any():
        a = w[sel][:, None]
        src = cmap[sel] - np.asarray(behind.origin, np.float32)
        tile[sel] = (tile[sel] * (1.0 - a) + _remap_points(behind.image, src) * a + 0.5).astype(np.uint8)


def _remap_points(image: np.ndarray, points: np.ndarray, row: int = 1024) -> np.ndarray:
    """``image`` sampled (bicubic) at ``points`` (N,2) float32 source coordinates -> (N, C); remap's
    maps are cut into rows of ``row`` points (it takes at most 32767 rows)."""
    n = len(points)
    padded = np.zeros((-(-n // row) * row, 2), np.float32)
    padded[:n] = points
    out = cv2.remap(image, padded.reshape(-1, row, 2), None, cv2.INTER_CUBIC, borderMode=BORDER)
    return out.reshape(-1, *image.shape[2:])[:n]


def _coords(win: Window, grid_flow: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """Absolute source coordinates (h,w,2) of output pixels [x0,x0+w) x [y0,y0+h) under a grid flow
    (the flow is upsampled, not absolute coordinates: where it is 0 it stays exactly 0)."""
    cmap = upsample(win, grid_flow, x0, y0, w, h)
    cmap[..., 0] += np.arange(x0, x0 + w, dtype=np.float32)[None, :]
    cmap[..., 1] += np.arange(y0, y0 + h, dtype=np.float32)[:, None]
    return cmap


def _cut_face(photo: np.ndarray, win: Window, face: FaceLayer, tile: np.ndarray,
              rect: tuple[int, int, int, int]) -> None:
    """Redraw, in place, the band of ``tile`` along the face's outline from the face's and the back
    layer's own flows, mixed over one output pixel across the outline."""
    ox0, oy0, w, h = rect
    sd = upsample(win, face.sd, ox0, oy0, w, h)  # grid pixels
    box = bbox(np.abs(sd) < FACE_CUT_BAND)  # where the single flow's bilinear ramp mixes the two
    if box is None:
        return
    bx0, by0, bx1, by1 = box
    x, y, bw, bh = ox0 + bx0, oy0 + by0, bx1 - bx0, by1 - by0
    s = sd[by0:by1, bx0:bx1]
    band = np.abs(s) < FACE_CUT_BAND

    def warped(grid_flow: np.ndarray) -> np.ndarray:  # the band's pixels only
        return _remap_points(photo, _coords(win, grid_flow, x, y, bw, bh)[band]).astype(np.float32)

    a = np.clip(0.5 + s[band] / (0.5 * (win.kx + win.ky)), 0.0, 1.0)[:, None]  # 1 output px ramp
    mixed = np.clip(a * warped(face.flow) + (1.0 - a) * warped(face.back) + 0.5, 0, 255).astype(np.uint8)
    tile[by0:by1, bx0:bx1][band] = mixed
