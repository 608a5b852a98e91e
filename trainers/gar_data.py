"""The GAR trainer's data: batches of aligned crops with their conditions, and re-rendered conditions.

A batch holds the photo crop x, G's condition map c = [n, regions] (:func:`faceeditor.neural.gar.condition_map`),
the shading s = SH irradiance on n (GAR eq. 5's lighting input) and the crop's valid mask. The eq. 8 pairs
re-render the condition of the same head (identity alpha) with another pose and expression.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from faceeditor.core.camera import Camera
from faceeditor.core.pose import euler_to_matrix
from faceeditor.morphable.model import FaceModel
from faceeditor.neural.data import decoded, load_table, valid_mask
from faceeditor.neural.gar import condition_map, shading_map
from faceeditor.neural.labels import render_labels

GEOMETRY_KEYS = ("rotation", "translation", "focal", "principal", "identity", "expression")
GeometryParams = dict[str, torch.Tensor]  # GEOMETRY_KEYS -> (B, ...) tensors, as project_points takes them


@dataclass
class GarBatch:
    """Crops of the dataset on the training device (4-D tensors channels-last)."""

    image: torch.Tensor  # (B,3,S,S) photo crop in [0,1]
    cond: torch.Tensor  # (B,8,S,S) condition map: normals, region one-hots
    shading: torch.Tensor  # (B,3,S,S) SH irradiance of the fitted light on the normals
    sh: torch.Tensor  # (B,9,3) the fitted SH light
    valid: torch.Tensor  # (B,1,S,S) 1 where the crop lies inside the photo
    index: torch.Tensor  # (B,) dataset rows

    def to(self, device: torch.device) -> GarBatch:
        def move(v: torch.Tensor) -> torch.Tensor:
            return v.to(device).contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v.to(device)

        return GarBatch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})


class GarData:
    """Decoded crops, normal and region maps (memory-mapped) and per-sample labels of one split."""

    def __init__(self, root: Path | None, split: str, size: int, limit: int | None = None) -> None:
        t = load_table(root, split, size, limit=limit)
        self.arrays = t.arrays  # per-sample labels (pose, camera, SH, alignment, ...)
        self.n = len(t)
        self.size = size
        self.image = decoded(t, "image", split, root)
        self.normal = decoded(t, "normal", split, root)
        self.region = decoded(t, "region", split, root)

    def batch(self, idx: np.ndarray, device: torch.device) -> GarBatch:
        idx = np.asarray(idx)
        img = torch.from_numpy(np.array(self.image[idx])).permute(0, 3, 1, 2).float().div_(255.0)
        n = torch.from_numpy(np.array(self.normal[idx])).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        region = torch.from_numpy(np.array(self.region[idx]).astype(np.int64))
        n = torch.nn.functional.normalize(n, dim=1)
        cond = condition_map(n, region)
        sh = torch.from_numpy(self.arrays["sh"][idx]).float()
        a = self.arrays
        valid = torch.from_numpy(np.stack([valid_mask(a["align"][i], a["image_size"][i], self.size)
                                           for i in idx]))[:, None].float()
        return GarBatch(image=img, cond=cond, shading=shading_map(cond, sh), sh=sh, valid=valid,
                        index=torch.from_numpy(idx)).to(device)

    def params(self, idx: np.ndarray, device: torch.device) -> GeometryParams:
        """Geometry of samples (crop camera at this size) as tensors, for landmarks and re-rendering."""
        return {k: torch.from_numpy(np.asarray(self.arrays[k][idx], np.float32)).to(device) for k in GEOMETRY_KEYS}


@torch.no_grad()
def render_conditions(model: FaceModel, p: GeometryParams, size: int, yaw: torch.Tensor, pitch: torch.Tensor,
                      expression: torch.Tensor) -> torch.Tensor:
    """Condition maps (B,8,S,S) of the samples' heads turned by (yaw, pitch) degrees about the head
    centre with another expression (eq. 8 pairs: same identity alpha, new beta and theta)."""
    out = []
    for i in range(p["rotation"].shape[0]):
        Ro = euler_to_matrix(yaw[i], pitch[i], 0.0)[0].to(p["rotation"])
        cam = Camera(float(p["focal"][i]), size, size, float(p["principal"][i, 0]), float(p["principal"][i, 1]))
        nm, rg = render_labels(model, p["identity"][i:i + 1], expression[i:i + 1], (Ro @ p["rotation"][i])[None],
                               p["translation"][i:i + 1], cam)
        out.append(condition_map(nm, rg))
    return torch.cat(out)
