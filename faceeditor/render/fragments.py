"""Rasterizer output: packed fragments (nearest surface per pixel), the soft silhouette layer
(004 eq. 9-11) and the scatter that turns packed per-pixel values into dense maps."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Fragments:
    """Covered pixels of a batch of rasterized meshes (packed, nearest surface only)."""

    height: int
    width: int
    batch: int
    pix: torch.Tensor  # (N,) long: flat pixel index b*H*W + y*W + x
    face: torch.Tensor  # (N,) long: triangle index into ``faces``
    bary: torch.Tensor  # (N,3) perspective-correct barycentrics (differentiable)
    depth: torch.Tensor  # (N,) view depth -Z (differentiable)
    soft: "SoftLayer | None" = None  # silhouette extension, when requested

    @property
    def batch_index(self) -> torch.Tensor:
        return torch.div(self.pix, self.height * self.width, rounding_mode="floor")

    def face_id_map(self) -> torch.Tensor:
        """(B,H,W) long: triangle under each pixel, -1 for background."""
        out = torch.full((self.batch * self.height * self.width,), -1, dtype=torch.long, device=self.pix.device)
        out[self.pix] = self.face
        return out.view(self.batch, self.height, self.width)

    def mask(self) -> torch.Tensor:
        """(B,1,H,W) float coverage (1 inside the mesh, 0 outside; no soft edge)."""
        out = torch.zeros(self.batch * self.height * self.width, device=self.pix.device)
        out[self.pix] = 1.0
        return out.view(self.batch, 1, self.height, self.width)

    def depth_map(self, background: float = 0.0) -> torch.Tensor:
        """(B,1,H,W) view depth, ``background`` where uncovered (differentiable)."""
        return scatter_dense(self.depth[:, None], self, background).squeeze(-1)


@dataclass
class SoftLayer:
    """Pixels near a silhouette covered by the B-pixel extension of nearby triangles (eq. 9-11).

    Each (pixel, triangle) *pair* holds the barycentrics of the triangle point nearest to the
    pixel centre (``p*`` in eq. 9) and a weight ``1 - d/B``; ``alpha`` per soft pixel is the
    max weight (eq. 11). Every tensor with a gradient is differentiable w.r.t. the vertices.
    """

    radius: float  # B, the extension width in pixels
    pix: torch.Tensor  # (S,) flat pixel index of each soft pixel
    alpha: torch.Tensor  # (S,) soft coverage in [0,1]
    pair_slot: torch.Tensor  # (Q,) index into ``pix`` for each pair
    pair_face: torch.Tensor  # (Q,) triangle of each pair
    pair_bary: torch.Tensor  # (Q,3) perspective-correct barycentrics at the nearest point
    pair_weight: torch.Tensor  # (Q,) 1 - d/B, >0


def scatter_dense(values: torch.Tensor, frags: Fragments, background: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Packed per-pixel values (N,C) -> dense (B,C,H,W), ``background`` elsewhere (differentiable)."""
    B, H, W = frags.batch, frags.height, frags.width
    C = values.shape[1]
    if isinstance(background, torch.Tensor) and background.ndim == 4:
        base = background.permute(0, 2, 3, 1).reshape(B * H * W, C)
    else:
        base = torch.full((B * H * W, C), float(background), dtype=values.dtype, device=values.device)
    out = base.index_put((frags.pix,), values)
    return out.view(B, H, W, C).permute(0, 3, 1, 2)
