"""Soft silhouette layer: triangle extensions of width B pixels (Szabo et al., 004 §5).

The crisp rasterizer has no gradient w.r.t. where a silhouette lies. Here every triangle is
extended by B pixels; a pixel outside the crisp surface (or behind it by a depth jump) that
lies within distance d < B of a visible triangle T takes T's attribute at the nearest point
``p*(T)`` with weight ``1 - d/B`` (eq. 9-11; the paper writes alpha with d/B, we use the
decreasing form so coverage fades away from the triangle). ``d`` and ``p*`` are functions of
the vertex positions, so the composite of eq. 12 has gradients that move silhouettes.

Candidates are local: only triangles visible at pixels within ``ceil(B) + 1`` of the pixel,
found from the crisp triangle-id map, are tested (the nearest surface behind a silhouette
pixel is always among them for B of a few pixels).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from faceeditor.render.fragments import Fragments, SoftLayer


def _neighbour_pairs(face_map: torch.Tensor, depth_map: torch.Tensor, reach: int,
                     rel_margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate (pixel, triangle) pairs near silhouettes. Maps are (B,H,W); returns flat pix, face."""
    B, H, W = face_map.shape
    covered = face_map >= 0
    k = 2 * reach + 1
    near_cov = F.max_pool2d(covered[:, None].float(), k, stride=1, padding=reach)[:, 0] > 0
    depth_inf = torch.where(covered, depth_map, torch.full_like(depth_map, float("inf")))
    nearest = -F.max_pool2d(-depth_inf[:, None], k, stride=1, padding=reach)[:, 0]
    behind = depth_inf > nearest * (1.0 + rel_margin)  # background, or a depth jump
    eligible = (near_cov & behind).reshape(-1).nonzero().squeeze(1)
    if eligible.numel() == 0:
        e = torch.empty(0, dtype=torch.long, device=face_map.device)
        return e, e
    hw = H * W
    b = torch.div(eligible, hw, rounding_mode="floor")
    y = torch.div(eligible - b * hw, W, rounding_mode="floor")
    x = eligible - b * hw - y * W
    flat_face = face_map.reshape(-1)
    flat_depth = depth_inf.reshape(-1)
    own_depth = flat_depth[eligible]
    pixs, faces = [], []
    for oy in range(-reach, reach + 1):
        for ox in range(-reach, reach + 1):
            if oy == 0 and ox == 0:
                continue
            yy, xx = y + oy, x + ox
            inb = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
            q = b * hw + yy.clamp(0, H - 1) * W + xx.clamp(0, W - 1)
            nf = flat_face[q]
            ok = inb & (nf >= 0) & (flat_depth[q] * (1.0 + rel_margin) < own_depth)
            pixs.append(eligible[ok])
            faces.append(nf[ok])
    pix = torch.cat(pixs)
    face = torch.cat(faces)
    n_faces = int(face.max().item()) + 1 if face.numel() else 1
    key = torch.unique(pix * n_faces + face)
    return torch.div(key, n_faces, rounding_mode="floor"), key % n_faces


def _nearest_point(tri: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance from points p (Q,2) to triangles tri (Q,3,2) and screen barycentrics (Q,3) of the nearest point."""
    best_d2, best_bary = None, None
    for i in range(3):
        j = (i + 1) % 3
        a, b = tri[:, i], tri[:, j]
        ab = b - a
        t = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-12)).clamp(0.0, 1.0)
        q = a + t[:, None] * ab
        d2 = ((p - q) ** 2).sum(-1)
        eye = torch.eye(3, dtype=tri.dtype, device=tri.device)
        bary = (1.0 - t)[:, None] * eye[i] + t[:, None] * eye[j]
        if best_d2 is None:
            best_d2, best_bary = d2, bary
        else:
            closer = d2 < best_d2
            best_d2 = torch.where(closer, d2, best_d2)
            best_bary = torch.where(closer[:, None], bary, best_bary)
    # inside the triangle (an occluded pixel of an extended triangle): distance 0, own barycentrics
    x, y = tri[..., 0], tri[..., 1]
    dx, dy = x - p[:, :1], y - p[:, 1:]
    w = torch.stack([dx[:, 1] * dy[:, 2] - dx[:, 2] * dy[:, 1],
                     dx[:, 2] * dy[:, 0] - dx[:, 0] * dy[:, 2],
                     dx[:, 0] * dy[:, 1] - dx[:, 1] * dy[:, 0]], -1)
    area = w.sum(-1, keepdim=True)
    inside = ((w * area.sign()) >= 0).all(-1) & (area.abs()[:, 0] > 1e-12)
    own = w / torch.where(area.abs() < 1e-12, torch.ones_like(area), area)
    dist = torch.where(inside, torch.zeros_like(best_d2), (best_d2 + 1e-12).sqrt())
    return dist, torch.where(inside[:, None], own, best_bary)


def soft_layer(screen: torch.Tensor, faces: torch.Tensor, frags: Fragments, radius: float,
               rel_margin: float = 0.03) -> SoftLayer:
    """Build the soft layer of width ``radius`` px for ``frags`` (differentiable w.r.t. ``screen``)."""
    with torch.no_grad():
        face_map = frags.face_id_map()
        depth = torch.zeros(frags.batch * frags.height * frags.width, device=screen.device)
        depth[frags.pix] = frags.depth.detach()
        pix, face = _neighbour_pairs(face_map, depth.view_as(face_map), math.ceil(radius) + 1, rel_margin)
    hw = frags.height * frags.width
    b = torch.div(pix, hw, rounding_mode="floor")
    y = torch.div(pix - b * hw, frags.width, rounding_mode="floor")
    x = pix - b * hw - y * frags.width
    centre = torch.stack([x.to(screen.dtype) + 0.5, y.to(screen.dtype) + 0.5], -1)
    tri = screen[b[:, None], faces[face]]  # (Q,3,3)
    dist, bary_s = _nearest_point(tri[..., :2], centre)
    weight = 1.0 - dist / radius
    keep = weight > 0
    pix, face, tri, bary_s, weight = pix[keep], face[keep], tri[keep], bary_s[keep], weight[keep]
    persp = bary_s / tri[..., 2]
    bary = persp / persp.sum(-1, keepdim=True)
    uniq, slot = torch.unique(pix, return_inverse=True)
    alpha = weight.new_zeros(uniq.numel()).scatter_reduce(0, slot, weight, reduce="amax", include_self=False)
    return SoftLayer(radius, uniq, alpha, slot, face, bary, weight)
