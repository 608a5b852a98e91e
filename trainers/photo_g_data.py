"""Training data of G_p: the prepared shards, and rotate-and-render round trips (Zhou et al., CVPR 2020).

:class:`Shards` reads every finished ``shard_*.npz`` of the dataset (read-only; the index may not
exist yet while the dataset is still being extended) and keeps the crops decoded in memory.
:func:`round_trip` makes G_p's input for a batch: the fitted head (view A, the crop's own
parameters) is textured with the crop, rendered at a random pose / expression (view B), and that
render is unprojected and rendered back at A. The result carries exactly the holes and resampling
of a real edit, and the untouched crop is the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.core.pose import euler_to_matrix
from faceeditor.morphable.model import FaceModel
from faceeditor.neural.data import decode, split_of, valid_mask
from faceeditor.neural.labels import RegionTable
from faceeditor.neural.photo_rep import (
    NORMAL,
    HeadView,
    correspondence,
    push_pull_fill,
    rasterize_view,
    representation,
    warp,
)
from faceeditor.render.fragments import Fragments

FIELDS = ("rotation", "translation", "focal", "principal", "identity", "expression", "sh", "align", "image_size")
EXPRESSION_MOVES = {  # blendshape groups a random edit may set (name -> weight range)
    "blink": ({"eyeBlink_L": 1.0, "eyeBlink_R": 1.0}, (0.6, 1.0)),
    "jaw": ({"jawOpen": 1.0}, (0.2, 0.8)),
    "smile": ({"mouthSmile_L": 1.0, "mouthSmile_R": 1.0}, (0.3, 1.0)),
    "surprise": (
        {"browInnerUp_L": 1.0, "browInnerUp_R": 1.0, "eyeWide_L": 0.6, "eyeWide_R": 0.6, "jawOpen": 0.5},
        (0.5, 1.0),
    ),
}


@dataclass
class Shards:
    """The finished shards' samples of one split, crops decoded at ``size`` px."""

    images: np.ndarray  # (N,S,S,3) uint8
    valid: np.ndarray  # (N,S,S) bool: pixels inside the photo
    arrays: dict[str, np.ndarray]  # FIELDS, pixel quantities scaled to ``size``
    size: int

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def load(cls, root: Path, split: str = "train", size: int = 128, limit: int = 0) -> Shards:
        files = sorted(p for p in Path(root).glob("shard_*.npz") if ".tmp" not in p.name)
        if not files:
            raise FileNotFoundError(f"no shards under {root} (python -m trainers.prepare_dataset)")
        imgs, parts = [], {k: [] for k in FIELDS}
        for f in files:
            with np.load(f) as z:
                keep = [
                    i
                    for i, (p, s) in enumerate(zip(z["person"], z["source"]))
                    if split == "all" or split_of(str(p), str(s)) == split
                ]
                data, off = z[f"image{size}"], z[f"image{size}_off"]
                imgs += [decode(data[off[i] : off[i + 1]], True) for i in keep]
                for k in FIELDS:
                    parts[k].append(z[k][keep])
            if limit and len(imgs) >= limit:
                break
        n = limit or len(imgs)
        arrays = {k: np.concatenate(v)[:n] for k, v in parts.items()}
        k = size / 256.0
        arrays["focal"] = (arrays["focal"] * k).astype(np.float32)
        arrays["principal"] = (arrays["principal"] * k).astype(np.float32)
        valid = np.stack([valid_mask(a, s, size) for a, s in zip(arrays["align"], arrays["image_size"])])
        return cls(np.stack(imgs[:n]), valid, arrays, size)

    def batch(self, idx: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Tensors of samples ``idx``: image (B,3,S,S) in [0,1], valid (B,1,S,S) and the geometry."""
        out = {
            "image": torch.from_numpy(self.images[idx]).permute(0, 3, 1, 2).float().div(255.0),
            "valid": torch.from_numpy(self.valid[idx])[:, None].float(),
        }
        for k in ("rotation", "translation", "focal", "principal", "identity", "expression", "sh"):
            out[k] = torch.from_numpy(np.asarray(self.arrays[k][idx], np.float32))
        return {k: v.to(device) for k, v in out.items()}


def random_edit(
    batch: int, names: list[str], gen: torch.Generator, max_yaw: float = 40.0, max_pitch: float = 15.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random edit per sample: rotation offset (B,3,3), expression targets (B,53) and a mask (B,53)
    of the blendshapes it sets. Poses: yaw in +-max_yaw (a fifth of the edits keep the pose)."""
    u = torch.rand(batch, 4, generator=gen)
    yaw = (u[:, 0] * 2 - 1) * max_yaw * (u[:, 3] > 0.2)
    pitch = (u[:, 1] * 2 - 1) * max_pitch * (u[:, 3] > 0.2)
    roll = (u[:, 2] * 2 - 1) * 5.0 * (u[:, 3] > 0.2)
    R = torch.stack([euler_to_matrix(float(a), float(b), float(c))[0] for a, b, c in zip(yaw, pitch, roll)])
    target = torch.zeros(batch, len(names))
    mask = torch.zeros(batch, len(names))
    moves = list(EXPRESSION_MOVES.values())
    for b in range(batch):
        for weights, (lo, hi) in moves:
            if torch.rand((), generator=gen) < 0.25:
                s = lo + (hi - lo) * float(torch.rand((), generator=gen))
                for name, w in weights.items():
                    j = names.index(name)
                    target[b, j], mask[b, j] = w * s, 1.0
    return R.float(), target, mask


@torch.no_grad()
def round_trip(
    model: FaceModel, table: RegionTable, batch: dict[str, torch.Tensor], gen: torch.Generator, max_yaw: float = 40.0
) -> dict[str, torch.Tensor]:
    """Rotate-and-render: rep(p) (B,18,S,S) of the crop's own head textured through a random view B,
    with ``target`` (the crop), ``valid`` and ``hole`` (1 - confidence on the head) maps."""
    img = batch["image"]
    B, _, S, _ = img.shape
    f, c = batch["focal"], batch["principal"]
    Ra, t = batch["rotation"], batch["translation"]
    expr_a = batch["expression"]
    Roff, tgt, msk = random_edit(B, list(model.expression_names), gen, max_yaw)
    expr_b = expr_a * (1 - msk) + tgt * msk
    va = model.vertices(batch["identity"], expr_a) @ Ra.transpose(1, 2) + t[:, None]
    vb = model.vertices(batch["identity"], expr_b) @ (Roff @ Ra).transpose(1, 2) + t[:, None]
    both = rasterize_view(model, table, torch.cat([va, vb]), torch.cat([f, f]), torch.cat([c, c]), S)
    view_a, view_b = _split(both, B)
    grid_ba, conf_ba = correspondence(view_b, view_a, table)  # B's pixels in the photo
    tex_b = warp(img, grid_ba) * conf_ba
    grid_ab, conf_ab = correspondence(view_a, view_b, table)  # A's pixels in B's render
    back = warp(torch.cat([tex_b, conf_ba], 1), grid_ab)
    conf = (back[:, 3:4] * conf_ab).clamp(0, 1)
    textured = back[:, :3] / back[:, 3:4].clamp(min=1e-3)
    head = (view_a.region > 0)[:, None].float()
    warped = head * push_pull_fill(textured, conf) + (1 - head) * img
    rep = representation(textured, conf, view_a, batch["sh"], warped)
    return {"rep": rep, "target": img, "valid": batch["valid"], "hole": head * (1 - conf)}


def _split(view: HeadView, n: int) -> list[HeadView]:
    """A batch-2n :class:`HeadView` as two batch-n views (fragments re-indexed)."""
    fr = view.frags
    hw = fr.height * fr.width
    out = []
    for k in range(2):
        sel = (fr.pix >= k * n * hw) & (fr.pix < (k + 1) * n * hw)
        frags = Fragments(fr.height, fr.width, n, fr.pix[sel] - k * n * hw, fr.face[sel], fr.bary[sel], fr.depth[sel])
        s = slice(k * n, (k + 1) * n)
        out.append(HeadView(frags, view.screen[s], view.normals[s], view.depth[s], view.normal_map[s], view.region[s]))
    return out


def flip(sample: dict[str, torch.Tensor], which: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mirror the samples where ``which`` (B,) is true (normals' x negated): LiftedGAN's symmetry
    as augmentation (a mirrored face is a face; the flip consistency term is not computed)."""
    out = {}
    w = which.view(-1, 1, 1, 1)
    for k, v in sample.items():
        fl = v.flip(-1)
        if k == "rep":
            fl = fl.clone()
            fl[:, NORMAL.start] = -fl[:, NORMAL.start]
        out[k] = torch.where(w, fl, v)
    return out


def ssim_loss(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(1 - SSIM) / 2 with a 7x7 box window, weighted mean."""
    mu_a, mu_b = F.avg_pool2d(a, 7, 1, 3), F.avg_pool2d(b, 7, 1, 3)
    va = F.avg_pool2d(a * a, 7, 1, 3) - mu_a**2
    vb = F.avg_pool2d(b * b, 7, 1, 3) - mu_b**2
    cov = F.avg_pool2d(a * b, 7, 1, 3) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return ((1 - s) / 2 * weight).sum() / (weight.sum() * 3).clamp(min=1)


def gradient_loss(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Multi-scale L1 of image gradients (a VGG-free perceptual stand-in: edges and texture)."""
    total = a.new_zeros(())
    for s in range(scales):
        if s:
            a, b, weight = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2), F.avg_pool2d(weight, 2)
        for dim in (-1, -2):
            da, db = a.diff(dim=dim), b.diff(dim=dim)
            w = weight.narrow(dim, 0, weight.shape[dim] - 1)
            total = total + ((da - db).abs() * w).sum() / (w.sum() * 3).clamp(min=1)
    return total / scales
