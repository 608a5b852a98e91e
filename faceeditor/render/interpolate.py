"""Attribute interpolation, texture sampling and crisp/soft compositing on rasterized fragments.

Shading runs on *packed* pixels: a ``shader(face, bary, batch) -> (N, C)`` callable sees only
covered pixels (and, with a soft layer, the (pixel, triangle) pairs of the silhouette
extension). :func:`render` then blends crisp, soft and background as in Szabo et al. eq. 12.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from faceeditor.render.fragments import Fragments, scatter_dense

Shader = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def interpolate_packed(attrs: torch.Tensor, faces: torch.Tensor, face: torch.Tensor, bary: torch.Tensor,
                       batch: torch.Tensor) -> torch.Tensor:
    """Barycentric interpolation of per-vertex ``attrs`` ((B,V,C) or shared (V,C)) -> (N,C).

    ``faces`` indexes ``attrs`` (pass ``faces_uv`` for UVs stored per UV vertex).
    """
    corners = faces.index_select(0, face)  # (N,3)
    if attrs.ndim == 3:
        B, V = attrs.shape[:2]
        corners = corners + (batch * V)[:, None]
        attrs = attrs.reshape(B * V, -1)
    vals = attrs.index_select(0, corners.reshape(-1)).view(-1, 3, attrs.shape[-1])  # (N,3,C)
    return vals[:, 0] * bary[:, 0:1] + vals[:, 1] * bary[:, 1:2] + vals[:, 2] * bary[:, 2:3]


def interpolate(attrs: torch.Tensor, frags: Fragments, faces: torch.Tensor,
                background: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Dense (B,C,H,W) map of per-vertex attributes (crisp layer only), ``background`` outside."""
    vals = interpolate_packed(attrs, faces, frags.face, frags.bary, frags.batch_index)
    return scatter_dense(vals, frags, background)


def sample_texture(texture: torch.Tensor, uv: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
    """Bilinear lookup of texture (B,C,Ht,Wt) at UVs (N,2) -> (N,C).

    UV convention (OBJ): u to the right, v upward, (0,0) the bottom-left corner of the texture.
    ``batch`` (N,) picks the texture of each sample (defaults to texture 0).
    """
    grid = torch.stack([uv[:, 0] * 2.0 - 1.0, 1.0 - uv[:, 1] * 2.0], -1)
    B, C = texture.shape[:2]
    if B == 1 or batch is None:
        out = F.grid_sample(texture[:1], grid[None, None], mode="bilinear", padding_mode="border", align_corners=False)
        return out[0, :, 0].t()
    out = uv.new_zeros(uv.shape[0], C)
    for b in range(B):
        sel = (batch == b).nonzero().squeeze(1)
        if sel.numel():
            s = F.grid_sample(texture[b:b + 1], grid[sel][None, None], mode="bilinear", padding_mode="border",
                              align_corners=False)
            out = out.index_put((sel,), s[0, :, 0].t())
    return out


def render(frags: Fragments, shader: Shader, background: float | torch.Tensor = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Shade covered pixels and composite: returns image (B,C,H,W) and alpha (B,1,H,W).

    Without a soft layer this is the crisp image over ``background``. With one,
    ``a = alpha_s a_s + (1 - alpha_s)(alpha_c a_c + (1 - alpha_c) bcg)`` (004 eq. 12), where the
    soft colour ``a_s`` is the weight-averaged shading of the extended triangles at their
    nearest points (eq. 10, weighted by 1 - d/B so it varies continuously).
    """
    crisp = shader(frags.face, frags.bary, frags.batch_index)
    image = scatter_dense(crisp, frags, background)
    alpha = frags.mask()
    soft = frags.soft
    if soft is None or soft.pix.numel() == 0:
        return image, alpha
    B, C, H, W = image.shape
    hw = H * W
    pair_batch = torch.div(soft.pix[soft.pair_slot], hw, rounding_mode="floor")
    vals = shader(soft.pair_face, soft.pair_bary, pair_batch)  # (Q,C)
    S = soft.pix.numel()
    num = vals.new_zeros(S, C).index_add(0, soft.pair_slot, vals * soft.pair_weight[:, None])
    den = vals.new_zeros(S).index_add(0, soft.pair_slot, soft.pair_weight)
    a_s = num / den.clamp(min=1e-8)[:, None]
    flat = image.permute(0, 2, 3, 1).reshape(B * hw, C)
    under = flat[soft.pix]
    a = soft.alpha[:, None]
    flat = flat.index_put((soft.pix,), a * a_s + (1.0 - a) * under)
    image = flat.view(B, H, W, C).permute(0, 3, 1, 2)
    aflat = alpha.reshape(-1)
    aflat = aflat.index_put((soft.pix,), aflat[soft.pix] + (1.0 - aflat[soft.pix]) * soft.alpha)
    return image, aflat.view(B, 1, H, W)
