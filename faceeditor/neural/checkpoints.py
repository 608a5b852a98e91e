"""Shipped network weights: ``resources/<name>.pt`` (architecture + state dict, fp16) beside
``resources/<name>.manifest.json`` (how it was made, metrics, data, license).

``load_network(name)`` builds the network class registered for ``name`` from the stored
architecture, loads the weights in float32, and returns it for inference (eval mode, conv+BN
folded, channels-last), cached per (name, device). Names: ``normal_net`` (N), ``face_regressor`` (FR), ``identity_net`` (R).
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path

import torch

from faceeditor.paths import resources_dir

FORMAT = "faceeditor-weights-1"


def network_class(name: str) -> type[torch.nn.Module]:
    if name == "normal_net":
        from faceeditor.neural.normals import NormalNet
        return NormalNet
    if name == "face_regressor":
        from faceeditor.neural.regressor import FaceRegressor
        return FaceRegressor
    if name == "identity_net":
        from faceeditor.neural.identity import IdentityNet
        return IdentityNet
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
    from faceeditor.neural.layers import prepare_for_cpu

    return prepare_for_cpu(model.to(device))


_lock = threading.Lock()


@functools.lru_cache(maxsize=8)
def _load(name: str, device: str, path: str) -> torch.nn.Module:
    return load_weights(Path(path), network_class(name), device)


def load_network(name: str, device: str | torch.device | None = None) -> torch.nn.Module:
    """The shipped network ``name`` (eval mode, cached). Raises FileNotFoundError when not trained yet."""
    path = weights_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing (train it: python -m trainers.train_"
                                f"{ {'normal_net': 'normals', 'face_regressor': 'regressor', 'identity_net': 'identity'}.get(name, name)})")
    if device is None:
        from faceeditor.device import get_device
        device = get_device()
    with _lock:
        return _load(name, str(torch.device(device)), str(path))
