"""Losses of the GAR renderer (GAR eq. 6-11) and of its inversion (eq. 10).

* Adversarial: non-saturating logistic loss (:func:`g_nonsaturating`, :func:`d_logistic`) with
  lazy R1 on reals (:func:`r1_penalty`).
* Eq. 6, normal consistency: ``|| P . (n - N(I_out)) ||_1`` through the normal network N
  (:mod:`faceeditor.neural.normals`); P is the face mask (skin, eyes, mouth) of the *input*
  geometry, the mask the image is supposed to show (GAR uses a face parser on I_out).
* Eq. 7, landmark consistency between two renders of the same normal map with different z, through
  FR's differentiable 68 landmarks (:mod:`faceeditor.neural.regressor`); an absolute variant
  compares them with the landmarks of the conditioning geometry.
* Eq. 8, identity consistency between two renders with the same identity and z under different
  pose/expression, through the identity network R (:mod:`faceeditor.neural.identity`).
* Eq. 10, inversion: pixel loss, a perceptual *feature* loss and the noise regulariser. The paper
  uses ImageNet VGG features; VGG is not available here, so the features are those of the
  identity network R's encoder and of the discriminator D (LPIPS-style: unit-normalised channels,
  squared differences, spatial mean, summed over layers).
* Eq. 11, the inverter's loss: ``||z_hat - z||^2`` plus the match of V's per-layer features to G's.

Images are (B,3,H,W) in [0,1]; landmark distances are in units of the crop's eye distance (0.3 of
the crop side, :data:`faceeditor.neural.align.TEMPLATE_EYE_DISTANCE`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from faceeditor.neural.normals import angular_error_deg
from faceeditor.neural.regressor import project_points

EYE_FRACTION = 0.3  # template eye distance / crop side
AUX_SIZE = 128  # N, FR and R were trained on 128 px crops: larger renders are area-downsampled first


def aux_input(x: torch.Tensor) -> torch.Tensor:
    """An image (or map) at the auxiliary networks' resolution, channels-last."""
    if x.shape[-1] != AUX_SIZE:
        x = F.interpolate(x.float(), size=(AUX_SIZE, AUX_SIZE), mode="area" if x.shape[-1] > AUX_SIZE else "bilinear")
    return x.contiguous(memory_format=torch.channels_last)


def embed(R, image: torch.Tensor) -> torch.Tensor:
    """R's identity embedding (B,128) of images at any resolution."""
    return R(aux_input(image)).float()


# ----------------------------------------------------------------------------- adversarial
def g_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits.float()).mean()


def d_logistic(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(fake_logits.float()).mean() + F.softplus(-real_logits.float()).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """``E ||grad_x D(x)||^2`` on reals (``real_images`` must require grad)."""
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real_images, create_graph=True)
    return grad.float().square().sum((1, 2, 3)).mean()


# ----------------------------------------------------------------------------- eq. 6-8
def normal_consistency(N, image: torch.Tensor, normal: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 6: mean over masked pixels of ``sum_c |n - N(I)|`` (normals unit, camera frame)."""
    pred = N(aux_input(image))[0].float()
    if normal.shape[-1] != AUX_SIZE:
        normal, mask = F.normalize(aux_input(normal), dim=1), aux_input(mask) > 0.5
    m = mask.float()
    return ((normal.float() - pred).abs().sum(1, keepdim=True) * m).sum() / m.sum().clamp(min=1.0)


def normal_angle_deg(N, image: torch.Tensor, normal: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean angle (degrees) between N(image) and ``normal`` in ``mask``, per image (B,)."""
    pred = N(aux_input(image))[0].float()
    if normal.shape[-1] != AUX_SIZE:
        normal, mask = aux_input(normal), aux_input(mask) > 0.5
    return angular_error_deg(pred, torch.nn.functional.normalize(normal.float(), dim=1), mask)


def landmarks68(FR, model, image: torch.Tensor) -> torch.Tensor:
    """FR's 68 landmark vertices projected with its parameters -> (B,68,2) crop pixels (differentiable)."""
    raw = FR(aux_input(image)).float()
    p = FR.decode(raw, size=AUX_SIZE)
    return project_points(model, p, index=model.landmarks68) * (image.shape[-1] / AUX_SIZE)


def landmark_distance(a: torch.Tensor, b: torch.Tensor, size: int) -> torch.Tensor:
    """Eq. 7's ``||L_a - L_b||_2`` per landmark, averaged, in eye distances."""
    return (a.float() - b.float()).norm(dim=-1).mean() / (EYE_FRACTION * size)


def identity_distance(R, a: torch.Tensor, b: torch.Tensor | None = None,
                      emb_b: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 8: mean ``||R(a) - R(b)||_2`` (or against given embeddings ``emb_b``)."""
    ea = embed(R, a)
    eb = emb_b if emb_b is not None else embed(R, b)
    return (ea - eb).norm(dim=1).mean()


# ----------------------------------------------------------------------------- eq. 10 / perceptual
def _unit(f: torch.Tensor) -> torch.Tensor:
    f = f.float()
    return f * torch.rsqrt(f.square().sum(1, keepdim=True) + 1e-10)


def feature_distance(fa: list[torch.Tensor], fb: list[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
    """LPIPS-style distance of two feature lists (per layer: unit channel vectors, squared difference
    summed over channels, spatial mean (weighted by ``mask`` resized), summed over layers). Mean over batch."""
    total = 0.0
    for a, b in zip(fa, fb):
        d = (_unit(a) - _unit(b)).square().sum(1, keepdim=True)
        if mask is not None:
            m = F.adaptive_avg_pool2d(mask.float(), d.shape[-2:])
            total = total + ((d * m).sum((1, 2, 3)) / m.sum((1, 2, 3)).clamp(min=1e-6)).mean()
        else:
            total = total + d.mean()
    return total


def r_features(R, image: torch.Tensor) -> list[torch.Tensor]:
    """The identity network's encoder features (4 stages: 64..8 px for a 128 px crop)."""
    return R.encoder(aux_input(image))


def _weighted_mean(d: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of a per-pixel map (B,1,H,W), weighted by ``weight`` (B,1,H,W) when given."""
    if weight is None:
        return d.mean()
    w = weight.float()
    return (d * w).sum() / w.sum().clamp(min=1.0)


def masked_l1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    return _weighted_mean((a.float() - b.float()).abs().mean(1, keepdim=True), weight)


def masked_mse(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    return _weighted_mean((a.float() - b.float()).square().mean(1, keepdim=True), weight)


def psnr_db(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """PSNR (dB, peak 1) per image (B,) of images clamped to [0,1], inside ``mask`` (B,1,H,W) if given."""
    d = (a.float().clamp(0, 1) - b.float().clamp(0, 1)).square().mean(1, keepdim=True)
    if mask is None:
        mse = d.mean((1, 2, 3))
    else:
        m = mask.float()
        mse = (d * m).sum((1, 2, 3)) / m.sum((1, 2, 3)).clamp(min=1.0)
    return -10.0 * torch.log10(mse.clamp(min=1e-10))


def noise_regularizer(noise: list[torch.Tensor]) -> torch.Tensor:
    """Eq. 10's ``||eps||^2`` as the mean square of every noise map (summed over maps)."""
    return sum(n.float().square().mean() for n in noise)


# ----------------------------------------------------------------------------- eq. 11
def inverter_loss(z_hat: torch.Tensor, z: torch.Tensor, v_feats: list[torch.Tensor],
                  g_feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(latent term ``mean ||z_hat - z||^2``, feature term ``sum_i mean (V_i - G_i)^2 / var(G_i)``)."""
    lz = (z_hat.float() - z.float()).square().mean()
    lf = 0.0
    for v, g in zip(v_feats, g_feats):
        g = g.detach().float()
        lf = lf + (v.float() - g).square().mean() / g.var().clamp(min=1e-4)
    return lz, lf


def latent_prior(z_hat: torch.Tensor) -> torch.Tensor:
    """Keeps V's codes N(0, I)-like: batch mean to 0 and per-dimension variance to 1 (squared errors)."""
    z = z_hat.float()
    return z.mean(0).square().mean() + (z.var(0, unbiased=False) - 1.0).square().mean() if z.shape[0] > 1 \
        else (z.square().mean() - 1.0).square()
