"""R: the identity network (GAR eq. 8's face-recognition network R), a differentiable stand-in
for dlib's 128-D face descriptor (:mod:`faceeditor.face.identity`).

Input: the aligned 128 px crop (:mod:`faceeditor.neural.align`); output: a 128-D embedding in
dlib's descriptor space, so Euclidean distances compare with dlib's (same person below ~0.6);
the shipped manifest records the verification threshold chosen on training pairs (``threshold``).
Two backbones (``arch["backbone"]``):

* ``resnet29`` (default): dlib's own face-recognition architecture (a ResNet-34 with layers
  removed and half the filters; 29 convolutions, 5.6 M parameters) behind a fixed, differentiable
  resampling of our crop to dlib's 150 px face chip (:data:`CHIP_MATRIX`). The trainer starts it
  from dlib's published weights (converted from ``dlib_face_recognition_resnet_model_v1.dat``,
  public domain) and distils it on our aligned crops to dlib's descriptor of the original photo,
  so R inherits the teacher's generalisation to unseen identities.
* ``small``: a light residual CNN (:class:`faceeditor.neural.layers.Encoder`) distilled from scratch.

:func:`identity_loss` is GAR eq. 8's ``||R(I1) - R(I2)||_2`` for images in [0,1], differentiable
in the images. Trained by ``trainers/train_identity.py``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from faceeditor.face.identity import SAME_PERSON_THRESHOLD
from faceeditor.neural.layers import Encoder

NAME = "identity_net"

# 128 px aligned crop -> dlib's 150 px face chip (size 150, padding 0.25, its 5-point alignment):
# the mean similarity over 60 LFW/UTKFace photos (per-photo spread: 6 % in scale, ~6 px in
# position, which fine-tuning absorbs), measured by sending coordinate ramps through
# dlib.get_face_chip.
CHIP_MATRIX = ((1.4175, 0.0052, -15.1212), (-0.0052, 1.4175, -27.6449))
CHIP_SIZE = 150
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)  # dlib's input layer: (pixel - mean) / 256


class Affine(nn.Module):
    """Per-channel scale and shift (dlib's ``affine_`` layer: batch norm folded at test time)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class DlibBlock(nn.Module):
    """dlib's ``ares``/``ares_down``: conv3x3(stride) - affine - relu - conv3x3 - affine, plus the
    input (2x2 average-pooled when striding; missing channels and pixels count as zero), relu."""

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        s = 2 if down else 1
        self.conv1 = nn.Conv2d(cin, cout, 3, s, 0 if down else 1)
        self.aff1 = Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.aff2 = Affine(cout)
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff2(self.conv2(F.relu(self.aff1(self.conv1(x)))))
        s = F.avg_pool2d(x, 2, 2) if self.down else x
        H, W = max(y.shape[2], s.shape[2]), max(y.shape[3], s.shape[3])
        C = max(y.shape[1], s.shape[1])
        y = F.pad(y, (0, W - y.shape[3], 0, H - y.shape[2], 0, C - y.shape[1])) if y.shape[1:] != (C, H, W) else y
        s = F.pad(s, (0, W - s.shape[3], 0, H - s.shape[2], 0, C - s.shape[1])) if s.shape[1:] != (C, H, W) else s
        return F.relu(y + s)


# (width, down) of dlib's levels 4..0 (dnn_face_recognition_ex.cpp: alevel4 ... alevel0)
RESNET29 = [(32, False)] * 3 + [(64, True)] + [(64, False)] * 3 + [(128, True)] + [(128, False)] * 2 + \
    [(256, True)] + [(256, False)] * 2 + [(256, True)]


LEVEL_ENDS = (3, 7, 10, 13, 14)  # block counts at the end of each level


class DlibResNet(nn.Module):
    """dlib_face_recognition_resnet_model_v1's network on a 150 px chip in [0,1] -> (B,128)."""

    def __init__(self, dim: int = 128) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 7, 2, 0)
        self.stem_aff = Affine(32)
        blocks, cin = [], 32
        for w, down in RESNET29:
            blocks.append(DlibBlock(cin, w, down))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(256, dim, bias=False)
        self.register_buffer("mean", torch.tensor(DLIB_MEAN_RGB).view(1, 3, 1, 1) / 255.0, persistent=False)

    def forward(self, chip: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(chip)[-1].mean((2, 3)))

    def features(self, chip: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of dlib's levels 4..1 (32 ch at 35 px, 64 at 17, 128 at 8, 256 at 4) and level 0."""
        x = (chip - self.mean) * (255.0 / 256.0)
        x = F.max_pool2d(F.relu(self.stem_aff(self.stem(x))), 3, 2)
        out = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i + 1 in LEVEL_ENDS:
                out.append(x)
        return out


class IdentityNet(nn.Module):
    """R(image) -> (B, dim) embedding in dlib's descriptor space (see the module docstring)."""

    def __init__(self, backbone: str = "resnet29", widths: tuple[int, ...] = (32, 64, 128, 256), blocks: int = 1,
                 dim: int = 128, hidden: int = 512, dropout: float = 0.0, size: int = 128) -> None:
        super().__init__()
        self.arch = {"backbone": backbone, "widths": list(widths), "blocks": blocks, "dim": dim, "hidden": hidden,
                     "dropout": dropout, "size": size}
        self.dim, self.backbone, self.size = dim, backbone, size
        if backbone == "resnet29":
            self.net = DlibResNet(dim)
            self.register_buffer("grid", chip_grid(size), persistent=False)
        elif backbone == "small":
            self.cnn = Encoder(tuple(widths), blocks)
            c = widths[-1]
            # the last stage keeps its 8x8 layout: a depthwise 8x8 "global" conv keeps where features are
            self.gdc = nn.Sequential(nn.Conv2d(c, c, 8, groups=c, bias=False), nn.BatchNorm2d(c))
            self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, hidden), nn.BatchNorm1d(hidden),
                                      nn.ReLU(inplace=True), nn.Linear(hidden, dim))
        else:
            raise ValueError(f"unknown backbone {backbone!r}")

    def chip(self, image: torch.Tensor) -> torch.Tensor:
        """The 150 px dlib-style chip of aligned crops (B,3,size,size) (bilinear, differentiable)."""
        g = self.grid.to(image.dtype).expand(image.shape[0], -1, -1, -1)
        return F.grid_sample(image, g, mode="bilinear", padding_mode="border", align_corners=False)

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Intermediate feature maps, coarsest last (perceptual / feature losses): for ``resnet29`` the
        outputs of dlib's first four levels (35, 17, 8, 4 px), for ``small`` the encoder stages."""
        if self.backbone == "resnet29":
            return self.net.features(self.chip(image).contiguous(memory_format=torch.channels_last))[:4]
        return self.cnn(image)

    @property
    def encoder(self):
        """``R.encoder(image)``: the same as :meth:`features` (kept for callers of the first version)."""
        return self.features

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.backbone == "resnet29":
            return self.net(self.chip(image).contiguous(memory_format=torch.channels_last)).float()
        f = self.cnn(image)[-1]
        if f.shape[-1] != 8 or f.shape[-2] != 8:
            f = F.adaptive_avg_pool2d(f, 8)
        return self.head(self.gdc(f)).float()


def chip_grid(size: int = 128) -> torch.Tensor:
    """grid_sample grid (1,150,150,2) reading the chip's pixels from a ``size`` crop (:data:`CHIP_MATRIX`
    is for 128 px; pixel centres at +0.5 on both sides)."""
    A = np.concatenate([np.asarray(CHIP_MATRIX, np.float64), [[0, 0, 1]]])
    A[:2, :2] *= 128.0 / size  # crop(size) -> crop(128) -> chip
    inv = np.linalg.inv(A)
    c = np.arange(CHIP_SIZE) + 0.5
    u, v = np.meshgrid(c, c)
    src = np.stack([u, v, np.ones_like(u)], -1) @ inv.T  # crop pixels (size units)
    g = src[..., :2] / size * 2.0 - 1.0
    return torch.from_numpy(g).float()[None]


def identity_loss(R: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GAR eq. 8: mean ``||R(a) - R(b)||_2`` over the batch (images (B,3,128,128) in [0,1])."""
    return (R(a) - R(b)).norm(dim=1).mean()


# ----------------------------------------------------------------------------- verification
def make_pairs(person_ids: np.ndarray, eligible: np.ndarray | None = None, max_per_person: int = 10,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Balanced verification pairs: up to ``max_per_person`` same-person pairs of every person with
    two or more images (among ``eligible`` samples, default all), and as many different-person pairs
    drawn at random (none of either when the samples hold fewer than two persons). Returns (pairs
    (P,2) sample indices, same (P,) bool)."""
    rng = np.random.default_rng(seed)
    idx = np.arange(len(person_ids)) if eligible is None else np.nonzero(eligible)[0]
    by: dict[int, list[int]] = {}
    for i in idx:
        by.setdefault(int(person_ids[i]), []).append(int(i))
    pos = []
    for _, members in sorted(by.items()):
        if len(members) < 2:
            continue
        allp = [(a, b) for k, a in enumerate(members) for b in members[k + 1:]]
        take = rng.choice(len(allp), size=min(max_per_person, len(allp)), replace=False)
        pos += [allp[t] for t in sorted(take)]
    neg = []
    if len(by) < 2:  # one person only: no different-person pair exists
        pos = []
    while len(neg) < len(pos):
        a, b = rng.choice(idx, 2, replace=False)
        if person_ids[a] != person_ids[b]:
            neg.append((int(a), int(b)))
    pairs = np.array(pos + neg, np.int64).reshape(-1, 2)
    same = np.array([True] * len(pos) + [False] * len(neg))
    return pairs, same


def pair_distances(emb: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    e = np.asarray(emb, np.float64)
    return np.linalg.norm(e[pairs[:, 0]] - e[pairs[:, 1]], axis=1)


def best_threshold(dist: np.ndarray, same: np.ndarray) -> float:
    """The distance threshold (same person when below) of highest accuracy on these pairs (dlib's
    0.6 when there are no pairs to choose on)."""
    if len(dist) == 0:
        return SAME_PERSON_THRESHOLD
    order = np.sort(dist)
    cands = np.concatenate([[order[0] - 1e-6], (order[1:] + order[:-1]) / 2, [order[-1] + 1e-6]])
    best, thr = -1.0, float(cands[0])
    for c in cands[:: max(1, len(cands) // 4000)]:
        acc = verification_accuracy(dist, same, float(c))
        if acc > best:
            best, thr = acc, float(c)
    return thr


def verification_accuracy(dist: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Fraction of pairs classified right (NaN without pairs)."""
    if len(dist) == 0:
        return float("nan")
    return float(((dist < threshold) == same).mean())
