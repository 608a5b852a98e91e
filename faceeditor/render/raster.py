"""Differentiable triangle rasterizer in pure torch (pytorch3d is not installable here).

Two passes, as in DESIGN.md "Rendering without pytorch3d":

1. *Visibility* (no gradients): every triangle enumerates the pixel centres of its screen
   bounding box; inside tests use edge functions; a z-buffer keeps the nearest triangle per
   pixel by a single ``scatter_reduce(amin)`` over packed int64 keys (depth bits << 32 | face).
2. *Barycentrics* (with gradients): for each covered pixel, the screen-space barycentrics of
   its triangle are recomputed from the vertex tensor, then made perspective-correct
   (``b_i / z_i`` renormalised), so gradients reach vertex positions and depths.

The result is *packed*: only covered pixels are stored (``pix``, ``face``, ``bary``, ``depth``),
which keeps interpolation and shading proportional to the face's area, not the image's.
Silhouette gradients come from the optional soft layer (:mod:`faceeditor.render.soft`,
Szabo et al. §5, ``../shared/papers/004_...txt`` eq. 6-12).

Screen-space input follows :mod:`faceeditor.core.camera`: x, y in pixels (pixel centres at
+0.5), depth = -Z > 0. Vertices with depth <= NEAR_DEPTH cull their triangles (no clipping).
"""

from __future__ import annotations

import torch

from faceeditor.core.camera import NEAR_DEPTH
from faceeditor.render.fragments import Fragments
from faceeditor.render.soft import soft_layer

_KEY_EMPTY = torch.iinfo(torch.int64).max
_INSIDE_EPS = 1e-5  # barycentric slack so shared edges leave no holes
_MIN_AREA = 1e-8  # px^2; thinner triangles cover no pixel centre reliably
_BOX_SLACK = 1e-3  # px: the columns' bounding-box test keeps centres this close outside (the spans' slack)
_BOX_SUBSET = 0.6  # below this share of triangles with a centre in their box, the rest is done on those only


def _expand(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For non-negative ``counts`` (K,): the owner index (N,) and rank within its owner (N,)."""
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    return owner, torch.arange(owner.numel(), device=counts.device) - starts


@torch.no_grad()
def visible_faces(screen: torch.Tensor, faces: torch.Tensor, height: int, width: int,
                  cull_backfaces: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Visibility pass: nearest triangle per pixel (scanline spans + one z-buffer scatter).

    ``screen`` (B,V,3) [x_px, y_px, depth]; ``faces`` (F,3) long. Returns ``pix`` (N,) flat
    pixel indices of covered pixels (sorted) and ``face`` (N,) their triangle indices.
    Each triangle is cut into pixel rows; on a row the three edge inequalities
    ``A_i x + (B_i y + C_i) >= 0`` bound x to one span, so covered pixels are enumerated
    exactly, without per-pixel inside tests. With ``cull_backfaces``, triangles facing away
    (counter-clockwise in 3D is clockwise on the y-down screen) are skipped.
    """
    B = screen.shape[0]
    F = faces.shape[0]
    dev = screen.device
    empty = torch.empty(0, dtype=torch.long, device=dev)
    tri = screen[:, faces].reshape(B * F, 3, 3).float()  # (B*F,3,3)
    xs, ys, zs = tri.unbind(-1)  # (B*F,3) each
    # pixel i has its centre at i + 0.5: rows and columns whose centres lie in the bounding box; a
    # triangle whose box holds no pixel centre covers none (most of a dense mesh on a coarse grid:
    # 29k head triangles, 3.7k with a centre on a 96-cell preview grid), so the rest is done on these
    row0 = torch.ceil(ys.amin(1) - 0.5).clamp(min=0)
    row1 = torch.floor(ys.amax(1) - 0.5).clamp(max=height - 1)
    col0 = torch.ceil(xs.amin(1) - 0.5 - _BOX_SLACK).clamp(min=0)
    col1 = torch.floor(xs.amax(1) - 0.5 + _BOX_SLACK).clamp(max=width - 1)
    in_box = (row1 >= row0) & (col1 >= col0)
    boxed = None  # the B*F triangles, or those with a centre in their box when that drops many
    if int(in_box.sum()) < _BOX_SUBSET * in_box.numel():
        boxed = in_box.nonzero().squeeze(1)
        xs, ys, zs, row0, row1 = xs[boxed], ys[boxed], zs[boxed], row0[boxed], row1[boxed]
    x1, y1 = xs.roll(-1, 1), ys.roll(-1, 1)
    x2, y2 = xs.roll(-2, 1), ys.roll(-2, 1)
    area = ((x1 - xs) * (y2 - ys) - (x2 - xs) * (y1 - ys))[:, 0]
    ok = (zs.amin(1) > NEAR_DEPTH) & (area.abs() > _MIN_AREA)
    if boxed is None:
        ok &= in_box
    if cull_backfaces:
        ok &= area < 0
    sel = ok.nonzero().squeeze(1)
    keep = sel if boxed is None else boxed[sel]  # into the B*F triangles
    if keep.numel() == 0:
        return empty, empty
    # barycentric planes b_i = A_i x + B_i y + C_i (edge opposite vertex i), and 1/z
    inv_area = (1.0 / area[sel])[:, None]
    x1, y1, x2, y2 = x1[sel], y1[sel], x2[sel], y2[sel]
    A = (y1 - y2) * inv_area
    Bc = (x2 - x1) * inv_area
    C = (y2 * x1 - x2 * y1) * inv_area
    iz = 1.0 / zs[sel]
    table = torch.cat([A, (A * iz).sum(1, keepdim=True), Bc, (Bc * iz).sum(1, keepdim=True),
                       C, (C * iz).sum(1, keepdim=True)], 1)  # (K,12)
    # one entry per (triangle, pixel row)
    tri_of_row, r = _expand((row1[sel] - row0[sel] + 1).long())
    y = row0[sel][tri_of_row] + r + 0.5
    t = table[tri_of_row]  # (P,12)
    a, rowval = t[:, 0:3], t[:, 4:7] * y[:, None] + t[:, 8:11]  # edge i: a_i x + rowval_i >= -eps
    bound = (-_INSIDE_EPS - rowval) / torch.where(a == 0, torch.ones_like(a), a)
    inf = torch.full_like(bound, float("inf"))
    lower = torch.where(a > 0, bound, -inf).amax(1)
    upper = torch.where(a < 0, bound, inf).amin(1)
    blocked = ((a == 0) & (rowval < -_INSIDE_EPS)).any(1)  # a horizontal edge excludes the row
    col0 = torch.ceil(lower - 0.5).clamp(min=0)
    col1 = torch.floor(upper - 0.5).clamp(max=width - 1)
    span = torch.where(blocked, torch.zeros_like(col0), (col1 - col0 + 1).clamp(min=0)).long()
    # one entry per covered (triangle, pixel): all per-pixel values come from per-row starts
    row_of_px, dx = _expand(span)
    gface = keep[tri_of_row]
    bidx = torch.div(gface, F, rounding_mode="floor")
    start_pix = bidx * (height * width) + y.long() * width + col0.long()
    start_iz = t[:, 3] * (col0 + 0.5) + t[:, 7] * y + t[:, 11]  # 1/z at the span's first centre
    pix = start_pix[row_of_px] + dx
    inv_depth = (start_iz[row_of_px] + t[:, 3][row_of_px] * dx).clamp_(min=1e-20)
    depth_bits = (1.0 / inv_depth).view(torch.int32).long()  # positive floats sort like their bits
    key = (depth_bits << 32) | (gface - bidx * F)[row_of_px]
    zbuf = torch.full((B * height * width,), _KEY_EMPTY, dtype=torch.long, device=dev)
    zbuf.scatter_reduce_(0, pix, key, reduce="amin", include_self=True)
    covered = (zbuf != _KEY_EMPTY).nonzero().squeeze(1)
    face = zbuf[covered] & 0xFFFFFFFF
    return covered, face


def barycentrics(screen: torch.Tensor, faces: torch.Tensor, pix: torch.Tensor, face: torch.Tensor,
                 height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable perspective-correct barycentrics and depth at pixel centres.

    For each covered pixel (flat index ``pix``, triangle ``face``), screen-space barycentrics
    are recomputed from ``screen`` (B,V,3) and corrected with ``b_i / z_i`` renormalised.
    Returns ``bary`` (N,3) and ``depth`` (N,).
    """
    hw = height * width
    B, V = screen.shape[:2]
    corners = faces.index_select(0, face)  # (N,3)
    if B == 1:
        rem = pix
    else:
        b = torch.div(pix, hw, rounding_mode="floor")
        rem = pix - b * hw
        corners = corners + (b * V)[:, None]
    py = torch.div(rem, width, rounding_mode="floor")
    px = rem - py * width
    tri = screen.reshape(B * V, 3).index_select(0, corners.reshape(-1)).view(-1, 3, 3)  # (N,3,3)
    x, y, z = tri.unbind(-1)
    cx = px.to(screen.dtype) + 0.5
    cy = py.to(screen.dtype) + 0.5
    # edge functions of the pixel centre: w_i = twice the area of the sub-triangle opposite vertex i
    dx = x - cx[:, None]
    dy = y - cy[:, None]
    w = torch.stack([dx[:, 1] * dy[:, 2] - dx[:, 2] * dy[:, 1],
                     dx[:, 2] * dy[:, 0] - dx[:, 0] * dy[:, 2],
                     dx[:, 0] * dy[:, 1] - dx[:, 1] * dy[:, 0]], -1)
    # perspective-correct: b_i ~ (w_i / area) / z_i, renormalised; the area cancels
    q = w / z
    s = q.sum(-1, keepdim=True)
    s = torch.where(s.abs() < 1e-20, torch.full_like(s, 1e-20), s)
    return q / s, w.sum(-1) / s.squeeze(-1)


def rasterize(screen: torch.Tensor, faces: torch.Tensor, height: int, width: int, *,
              soft_radius: float = 0.0, cull_backfaces: bool = False) -> Fragments:
    """Rasterize meshes given in screen space.

    ``screen`` (B,V,3): pixel x, pixel y, view depth (see :func:`faceeditor.core.camera.project`);
    ``faces`` (F,3) long, shared by the batch. ``soft_radius`` > 0 adds the soft silhouette layer
    of width B = ``soft_radius`` pixels for gradients at silhouettes (eq. 9-12 of 004).
    """
    if screen.ndim != 3 or screen.shape[-1] != 3:
        raise ValueError(f"screen vertices must be (B,V,3), got {tuple(screen.shape)}")
    faces = faces.to(device=screen.device, dtype=torch.long)
    pix, face = visible_faces(screen.detach(), faces, height, width, cull_backfaces)
    bary, depth = barycentrics(screen, faces, pix, face, height, width)
    frags = Fragments(height, width, screen.shape[0], pix, face, bary, depth)
    if soft_radius > 0:
        frags.soft = soft_layer(screen, faces, frags, soft_radius)
    return frags
