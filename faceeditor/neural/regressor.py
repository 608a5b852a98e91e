"""FR: the face parameter regressor (Tax-free eq. 5's FR; the fast initialiser of the fit).

aligned crop -> pose, identity, expression and SH light of the ICT head, in the crop's canonical
camera: focal ``F0`` (the median crop focal of the training set, in the arch) and the principal
point at the crop centre. Pose is regressed as

* the rotation in the 6D representation (two columns, Gram-Schmidt; Zhou et al. 2019),
* the crop pixel ``(u, v)`` of the head's anchor point (the mean of the 68 landmark vertices on
  the neutral face, near the nose: a point that projects inside the face), and
* ``log(F0 / depth)`` of that anchor (pixels per centimetre there),

so the translation follows as ``t = unproject(u, v, depth) - R @ anchor``. Identity (the first
``n_identity`` modes, ~N(0,1)), expression (sigmoid, in [0,1]) and SH (9x3) are regressed directly.
:meth:`FaceRegressor.decode` turns the raw output into those parameters and
:func:`project_points` projects model points with them, so 68/478 landmarks of FR are
differentiable (the training loss and GAR-style consistency losses use them).

Input: (B,3,S,S) RGB in [0,1], aligned by :mod:`faceeditor.neural.align`. Trained by
``trainers/train_regressor.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from faceeditor.core.pose import transform
from faceeditor.fit.landmarks import FitInit
from faceeditor.neural.align import aligned_crop, matrix_parts, photo_pose, roll_matrix
from faceeditor.neural.layers import Encoder
from faceeditor.render.sh import sh_basis

NAME = "face_regressor"
LOG_SCALE0 = 1.8  # log pixels per cm at the anchor in a 128 px crop (eye distance 0.3 x 128 px)
SH0 = 2.5  # typical ambient SH coefficient (skin albedo normalised to 0.6)


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """(B,6) -> (B,3,3): the 6 numbers are the first two columns before Gram-Schmidt."""
    a1, a2 = d6[:, 0:3], d6[:, 3:6]
    b1 = F.normalize(a1, dim=1)
    b2 = F.normalize(a2 - (b1 * a2).sum(1, keepdim=True) * b1, dim=1)
    b3 = torch.cross(b1, b2, dim=1)
    return torch.stack([b1, b2, b3], dim=2)


def matrix_to_rotation_6d(R: torch.Tensor) -> torch.Tensor:
    return torch.cat([R[:, :, 0], R[:, :, 1]], 1)


@dataclass
class FRParams:
    """Decoded FR output for a batch, in the canonical camera of a ``size`` crop."""

    rotation: torch.Tensor  # (B,3,3)
    translation: torch.Tensor  # (B,3) cm
    identity: torch.Tensor  # (B,n_identity)
    expression: torch.Tensor  # (B,53) in [0,1]
    sh: torch.Tensor  # (B,9,3)
    anchor_uv: torch.Tensor  # (B,2) crop pixels
    log_scale: torch.Tensor  # (B,) log(focal / anchor depth)
    focal: float
    principal: tuple[float, float]


class FaceRegressor(nn.Module):
    """FR(image) -> raw parameter vector; :meth:`decode` gives :class:`FRParams`."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), blocks: int = 1, n_identity: int = 100,
                 n_expression: int = 53, size: int = 128, focal: float = 512.0,
                 anchor: tuple[float, float, float] = (0.0, 0.0, 0.0), hidden: int = 256) -> None:
        super().__init__()
        self.arch = {"widths": list(widths), "blocks": blocks, "n_identity": n_identity,
                     "n_expression": n_expression, "size": size, "focal": float(focal),
                     "anchor": [float(a) for a in anchor], "hidden": hidden}
        self.encoder = Encoder(tuple(widths), blocks)
        self.n_identity, self.n_expression, self.size = n_identity, n_expression, size
        self.focal = float(focal)
        self.register_buffer("anchor", torch.tensor(anchor, dtype=torch.float32), persistent=False)
        self.n_out = 6 + 2 + 1 + n_identity + n_expression + 27
        c = widths[-1]
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * 2, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, self.n_out))
        with torch.no_grad():  # start at a frontal head in the template position
            self.head[-1].weight.mul_(0.1)
            b = self.head[-1].bias
            b.zero_()
            b[0], b[4] = 1.0, 1.0

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        f = self.encoder(image)[-1]
        pooled = torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)
        return self.head(pooled).float()

    def decode(self, raw: torch.Tensor, size: int | None = None) -> FRParams:
        """Raw output (B,n_out) -> parameters in the canonical camera of a ``size`` crop (default: the
        training size; pixel quantities scale with it)."""
        size = size or self.size
        k = size / self.size
        i = 0

        def take(n: int) -> torch.Tensor:
            nonlocal i
            out = raw[:, i:i + n]
            i += n
            return out

        R = rotation_6d_to_matrix(take(6))
        uv = (take(2) + 0.5) * size  # normalised crop coordinates, 0 = centre
        log_s = take(1)[:, 0] + LOG_SCALE0  # pixels per cm at the anchor, at the training size
        ident = take(self.n_identity)
        expr = torch.sigmoid(take(self.n_expression) - 2.0)
        sh = take(27).view(-1, 9, 3)
        sh = torch.cat([sh[:, :1] + SH0, sh[:, 1:]], 1)
        depth = self.focal / torch.exp(log_s)  # metric: the same at any crop size
        focal = self.focal * k
        c = size / 2.0
        X = (uv[:, 0] - c) * depth / focal
        Y = -(uv[:, 1] - c) * depth / focal
        anchor_cam = torch.stack([X, Y, -depth], 1)
        t = anchor_cam - (R @ self.anchor.to(R)[None, :, None])[:, :, 0]
        return FRParams(R, t, ident, expr, sh, uv, log_s, focal, (c, c))


def project_points(model, p: FRParams | dict, index: torch.Tensor | None = None,
                   face_ids: torch.Tensor | None = None, bary: torch.Tensor | None = None) -> torch.Tensor:
    """Project model points with parameters -> (B,N,2) crop pixels (differentiable).

    Points are vertices ``index`` (e.g. ``model.landmarks68``) or surface points (``face_ids``,
    ``bary``), e.g. the mediapipe-478 map ``model.mp478_face``/``mp478_bary``. ``p`` is
    :class:`FRParams` or a dict with rotation, translation, identity, expression, focal (B,) and
    principal (B,2) (e.g. the fitted targets of the dataset).
    """
    g = (lambda k: getattr(p, k)) if isinstance(p, FRParams) else p.__getitem__
    if index is None:
        index = model.faces[face_ids].reshape(-1)
    verts = model.vertices(g("identity"), g("expression"), index=index)
    if face_ids is not None:
        verts = (verts.view(verts.shape[0], -1, 3, 3) * bary.to(verts)[None, :, :, None]).sum(2)
    cam = transform(verts, g("rotation"), g("translation"))
    f = g("focal")
    pp = g("principal")
    if not torch.is_tensor(f):
        f = torch.full((cam.shape[0],), float(f), dtype=cam.dtype, device=cam.device)
    if not torch.is_tensor(pp):
        pp = cam.new_tensor(pp).expand(cam.shape[0], 2)
    z = (-cam[..., 2]).clamp(min=1e-3)
    x = pp[:, None, 0] + f[:, None] * cam[..., 0] / z
    y = pp[:, None, 1] - f[:, None] * cam[..., 1] / z
    return torch.stack([x, y], -1)


@torch.no_grad()
def regress_photo(net: FaceRegressor, rgb, lm68) -> dict:
    """FR on a photo's face (iBUG-68 landmarks ``lm68`` place the crop): the head in the *photo's*
    camera -- ``rotation``, ``translation``, ``focal``, ``principal`` (FR's canonical crop camera
    mapped back, so the principal point is generally not the photo centre), ``identity``,
    ``expression`` and ``sh`` (the light re-expressed in the photo's camera frame). A fast
    initialiser for the landmark fit."""
    crop, M = aligned_crop(rgb, lm68, net.size)
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float().div(255.0).contiguous(memory_format=torch.channels_last)
    p = net.decode(net(x.to(next(net.parameters()).device)))
    R, t, f, c = photo_pose(M, p.rotation[0].cpu().double().numpy(), p.translation[0].cpu().double().numpy(),
                            p.focal, p.principal)
    sh = relabel_sh(p.sh[0].cpu().double().numpy(), roll_matrix(matrix_parts(M)[1]))
    return {"rotation": R, "translation": t, "focal": f, "principal": c,
            "identity": p.identity[0].cpu().numpy().astype(np.float64),
            "expression": p.expression[0].cpu().numpy().astype(np.float64), "sh": sh}


def relabel_sh(sh, Q):
    """SH irradiance ``c`` (9,3) with ``c(n) = sh(Q n)`` for every unit n: the light of a frame
    rotated by ``Q`` (e.g. the crop camera, ``n_crop = Q n_photo``) expressed in the original
    frame. Fitted by least squares on sampled directions (exact: order 2 is closed under rotation)."""
    g = np.random.default_rng(0).normal(size=(200, 3))
    n = torch.from_numpy(g / np.linalg.norm(g, axis=1, keepdims=True))
    Y = sh_basis(n).numpy()
    Yq = sh_basis(n @ torch.from_numpy(np.asarray(Q, np.float64)).T).numpy()
    c, *_ = np.linalg.lstsq(Y, Yq @ np.asarray(sh, np.float64), rcond=None)
    return c


def fit_init(net: FaceRegressor, rgb, lm68):
    """FR's regression of a photo's face as a starting point of the landmark fit
    (:class:`faceeditor.fit.landmarks.FitInit`)."""
    p = regress_photo(net, rgb, lm68)
    return FitInit(rotation=p["rotation"], identity=p["identity"], expression=p["expression"])

