"""Differentiable triangle and vertex normals for batched meshes (pure torch, index_add based).

Triangles are counter-clockwise seen from outside (the ICT meshes are), so normals point out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def face_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unnormalised triangle normals (B,F,3) of verts (B,V,3); length = 2 x triangle area."""
    v0 = verts[:, faces[:, 0]]
    v1 = verts[:, faces[:, 1]]
    v2 = verts[:, faces[:, 2]]
    return torch.cross(v1 - v0, v2 - v0, dim=-1)


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Area-weighted unit vertex normals (B,V,3) of verts (B,V,3) (or (V,3) -> (V,3)), faces (F,3).

    Vertices used by no triangle get a zero normal. Differentiable in ``verts``.
    """
    squeeze = verts.ndim == 2
    if squeeze:
        verts = verts[None]
    faces = faces.to(device=verts.device, dtype=torch.long)
    # vertex-major layout (V,B,3): gathers and index_add move whole rows (3x faster at B=1)
    vt = verts.transpose(0, 1).contiguous()
    v0, v1, v2 = vt[faces[:, 0]], vt[faces[:, 1]], vt[faces[:, 2]]
    fn = torch.cross(v1 - v0, v2 - v0, dim=-1)  # (F,B,3), length = 2 x area
    # every triangle adds its area-weighted normal to its three corners, in one index_add
    out = torch.zeros_like(vt).index_add(0, faces.t().reshape(-1), fn.repeat(3, 1, 1))
    out = F.normalize(out, dim=-1, eps=eps).transpose(0, 1).contiguous()
    return out[0] if squeeze else out
