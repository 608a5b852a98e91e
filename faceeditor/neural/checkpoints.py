"""Shipped network weights: ``resources/<name>.pt`` (architecture + state dict, fp16) beside
``resources/<name>.manifest.json`` (how it was made, metrics, data, license).

``load_network(name)`` builds the network class registered for ``name`` from the stored
architecture, loads the weights in float32, and returns it for inference (eval mode, conv+BN
folded, channels-last). Each call reads the file: the caller keeps the network it loaded (no
module-level cache). Names: ``normal_net`` (N), ``face_regressor`` (FR), ``identity_net`` (R), ``photo_g`` (G_p).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from faceeditor.core.device import get_device
from faceeditor.core.paths import resources_dir
from faceeditor.neural.identity import IdentityNet
from faceeditor.neural.layers import prepare_for_cpu
from faceeditor.neural.normals import NormalNet
from faceeditor.neural.photo_g import PhotoG
from faceeditor.neural.regressor import FaceRegressor

FORMAT = "faceeditor-weights-1"
TRAINERS = {"normal_net": "normals", "face_regressor": "regressor", "identity_net": "identity",
            "photo_g": "photo_g"}  # trainers/train_*.py


def network_class(name: str) -> type[torch.nn.Module]:
    if name == "normal_net":
        return NormalNet
    if name == "face_regressor":
        return FaceRegressor
    if name == "identity_net":
        return IdentityNet
    if name == "photo_g":
        return PhotoG
    raise KeyError(f"unknown network {name!r}")


def weights_path(name: str) -> Path:
    return resources_dir() / f"{name}.pt"


def manifest(name: str) -> dict:
    """The manifest beside the weights ({} when missing)."""
    p = resources_dir() / f"{name}.manifest.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def available(name: str) -> bool:
    return weights_path(name).is_file()


def save_weights(path: Path, model: torch.nn.Module, arch: dict, half: bool = True) -> None:
    """Write ``{"format", "arch", "state_dict"}`` (floating tensors as fp16 when ``half``)."""
    sd = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
          for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"format": FORMAT, "arch": arch, "state_dict": sd}, tmp)
    tmp.replace(path)


def load_weights(path: Path, cls: type[torch.nn.Module], device: str | torch.device = "cpu") -> torch.nn.Module:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("format") != FORMAT:
        raise ValueError(f"{path}: not a FaceEditor weight file")
    model = cls(**blob["arch"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    return prepare_for_cpu(model.to(device))


def load_network(name: str, device: str | torch.device | None = None) -> torch.nn.Module:
    """The shipped network ``name`` (eval mode), loaded from disk. Raises FileNotFoundError when not trained yet."""
    path = weights_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing (train it: python -m trainers.train_{TRAINERS.get(name, name)})")
    return load_weights(path, network_class(name), torch.device(device) if device is not None else get_device())
