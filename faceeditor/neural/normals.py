"""N: the face normal estimator (GAR eq. 6's N): aligned face crop -> camera-frame normal map + face mask.

A small U-Net: a residual encoder at 64/32/16/8 px (stride-2 stem on the 128 px crop), a decoder
with skip connections back to 64 px (a residual block per level except the last), and a head
predicting 3 normal channels (unit-normalised) and a face-mask logit, upsampled bilinearly to the
input size (normal maps are smooth; the stem's stride keeps it within ~10 ms per 128 px image on
one CPU thread).

Input: (B,3,S,S) RGB in [0,1], aligned by :mod:`faceeditor.neural.align` (S = 128 by default; any
multiple of 16 works). Output: normals (B,3,S,S), unit, camera frame (+z toward the camera,
:mod:`faceeditor.render.sh`); mask logits (B,1,S,S) for skin + eyes + mouth
(:data:`faceeditor.neural.labels.FACE_LABELS`). Trained by ``trainers/train_normals.py``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from faceeditor.neural.layers import ConvBN, Encoder, ResBlock

NAME = "normal_net"


class Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int, block: bool = True) -> None:
        super().__init__()
        self.fuse = ConvBN(cin + cskip, cout, 3)
        self.block = ResBlock(cout, cout) if block else nn.Identity()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(self.fuse(torch.cat([x, skip], 1)))


class NormalNet(nn.Module):
    """N(image) -> (normals, mask logits)."""

    def __init__(self, widths: tuple[int, ...] = (24, 48, 96, 160), blocks: int = 1) -> None:
        super().__init__()
        widths = tuple(widths)
        self.arch = {"widths": list(widths), "blocks": blocks}
        self.encoder = Encoder(widths, blocks)
        ups = []
        for i in range(len(widths) - 1, 0, -1):
            ups.append(Up(widths[i], widths[i - 1], widths[i - 1], block=i > 1))  # no block at 64 px: speed
        self.ups = nn.ModuleList(ups)
        self.head = nn.Conv2d(widths[0], 4, 3, padding=1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.encoder(image)
        x = feats[-1]
        for up, skip in zip(self.ups, reversed(feats[:-1])):
            x = up(x, skip)
        out = F.interpolate(self.head(x), size=image.shape[-2:], mode="bilinear", align_corners=False).float()
        normals = F.normalize(out[:, :3], dim=1, eps=1e-6)
        return normals, out[:, 3:4]


def angular_error_deg(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean angle (degrees) between unit normal maps (B,3,H,W) inside ``mask`` (B,1,H,W), per image (B,)."""
    cos = (pred * target).sum(1, keepdim=True).clamp(-1.0, 1.0)
    ang = torch.rad2deg(torch.acos(cos))
    m = mask.float()
    return (ang * m).sum((1, 2, 3)) / m.sum((1, 2, 3)).clamp(min=1.0)
