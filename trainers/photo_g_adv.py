"""D_p: the conditional patch discriminator that trains G_p (:mod:`trainers.train_photo_g`) adversarially.

GAR trains its G against a D (``../shared/papers/000_...txt``, the non-saturating loss of
StyleGAN2); the 'Tax-free' paper's D judges the image (``003_...txt`` §2). G_p's L1/SSIM losses
alone fill what a round trip revealed with the average of what could be there, a blur. D_p sees the
image *with* its representation rep(p) (the textured head, confidence, normals, shading, regions:
a conditional D, so a sharp image that ignores the head it was asked for is still fake) and answers
per patch (a PatchGAN: 3 stride-2 convolutions, each logit sees ~30 px of a 128 px crop).
Its losses are weighted by the round trip's holes (``hole * valid`` averaged to the logits' grid,
plus :data:`BACKGROUND_WEIGHT`): real and fake differ only where G_p had to invent pixels.

* D: hinge loss, ``E[relu(1 - D(x, rep))] + E[relu(1 + D(G(rep), rep))]``;
* G: non-saturating, ``E[softplus(-D(G(rep), rep))]``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

BACKGROUND_WEIGHT = 0.1  # weight of a logit whose patch has no hole, against 1 + this for a patch of holes


class PatchD(nn.Module):
    """D_p(x, rep): per-patch realism logits (B,1,H/8,W/8) of image ``x`` (B,3,H,W) given ``rep``."""

    def __init__(self, rep_channels: int, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3 + rep_channels
        for w in widths:
            layers += [spectral_norm(nn.Conv2d(cin, w, 4, 2, 1)), nn.LeakyReLU(0.2)]
            cin = w
        layers.append(spectral_norm(nn.Conv2d(cin, 1, 3, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, rep: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x * 2.0 - 1.0, rep], 1))


def patch_weights(hole: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(B,1,h,w) weights of the logits: the hole fraction of each patch plus :data:`BACKGROUND_WEIGHT`."""
    return F.adaptive_avg_pool2d(hole.float(), logits.shape[-2:]) + BACKGROUND_WEIGHT


def _mean(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (v * w).sum() / w.sum().clamp(min=1e-6)


def d_loss(D: PatchD, real: torch.Tensor, fake: torch.Tensor, rep: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Hinge loss of D_p on a batch of real crops and (detached) G_p images."""
    lr, lf = D(real, rep).float(), D(fake.detach(), rep).float()
    w = patch_weights(hole, lr)
    return _mean(F.relu(1.0 - lr), w) + _mean(F.relu(1.0 + lf), w)


def g_loss(D: PatchD, fake: torch.Tensor, rep: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Non-saturating adversarial loss of G_p's images (gradients reach G_p, D_p is not updated)."""
    lf = D(fake, rep).float()
    return _mean(F.softplus(-lf), patch_weights(hole, lf))
