"""The shipped GAR renderer, loaded: one caller-owned object with its networks and caches.

:func:`load_gar` reads ``resources/gar_{generator,inverter,discriminator}.pt`` into a
:class:`GarNets`: G (EMA), V (eq. 11's renderer-inverting network) and D (for the inversion's
feature loss), on one device, with the renderer id :func:`renderer_id` (``gar_generator:`` + the
first 12 hex digits of the weights' sha256, what :attr:`FaceState.renderer_id` refers to). The
object also holds what lives as long as the networks: the identity network R (loaded on first
use, for the inversion's feature and identity terms), the pivotal-tuned copies of G
(:class:`~faceeditor.neural.tuning.TunedGenerators`) and the last few inversions
(:class:`InversionMemo`). Nothing is cached at module level: a caller that makes many renderers
(the window) loads once and passes its :class:`GarNets` along.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import torch

from faceeditor.core.device import get_device
from faceeditor.core.paths import resources_dir
from faceeditor.core.state import FaceState
from faceeditor.neural import checkpoints
from faceeditor.neural.discriminator import Discriminator
from faceeditor.neural.gar import Generator
from faceeditor.neural.inverter import Inverter
from faceeditor.neural.tuning import TunedGenerators

NETS = ("gar_generator", "gar_inverter", "gar_discriminator")
IDENTITY_NET = "identity_net"


class InversionMemo:
    """The last ``capacity`` inversions, keyed by the input state (held weakly) and the photo's shape:
    the window makes a preview and a full-resolution renderer of one face, one inversion serves both."""

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self._entries: list[tuple[weakref.ref, tuple, FaceState]] = []  # newest last
        self._lock = threading.Lock()

    def get(self, state: FaceState, photo_shape: tuple) -> FaceState | None:
        with self._lock:
            for ref, shape, out in self._entries:
                if ref() is state and shape == photo_shape:
                    return out
        return None

    def put(self, state: FaceState, photo_shape: tuple, inverted: FaceState) -> None:
        with self._lock:
            alive = [e for e in self._entries if e[0]() is not None]
            keep = alive[max(0, len(alive) - self.capacity + 1):]
            self._entries = keep + [(weakref.ref(state), photo_shape, inverted)]


@dataclass(eq=False)
class GarNets:
    """The loaded renderer: G (EMA), V and D on one device, and the caches that live with them."""

    G: torch.nn.Module
    V: torch.nn.Module
    D: torch.nn.Module | None
    renderer_id: str
    device: torch.device
    R: torch.nn.Module | None = None  # identity network; None: the shipped one, loaded on first use
    tuned: TunedGenerators = field(default_factory=TunedGenerators, repr=False)
    inversions: InversionMemo = field(default_factory=InversionMemo, repr=False)
    _r_loaded: bool = field(default=False, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def size(self) -> int:
        return int(self.G.size)

    def tuned_generator(self, state: FaceState) -> torch.nn.Module:
        """G with the state's pivotal-tuning deltas (G itself when it has none); cached per face."""
        return self.tuned.get(self.G, state, self.renderer_id)

    def identity_net(self) -> torch.nn.Module | None:
        """R (frozen) for the inversion's feature and identity terms: the one given, else the shipped
        ``identity_net`` loaded on first use; None when it is not trained."""
        with self._lock:
            if self.R is None and not self._r_loaded:
                self._r_loaded = True
                if checkpoints.available(IDENTITY_NET):
                    self.R = _frozen(checkpoints.load_network(IDENTITY_NET, self.device))
            return self.R


def available() -> bool:
    """Whether G and V are in ``resources/`` (D is optional)."""
    return checkpoints.available(NETS[0]) and checkpoints.available(NETS[1])


def renderer_id(root: Path | None = None) -> str:
    """``gar_generator:<sha256[:12]>`` of the shipped G (from its manifest, else hashed from the file)."""
    res = Path(root) if root else resources_dir()
    man = res / f"{NETS[0]}.manifest.json"
    sha = json.loads(man.read_text()).get("sha256", "") if man.is_file() else ""
    if not sha:
        sha = hashlib.sha256((res / f"{NETS[0]}.pt").read_bytes()).hexdigest()
    return f"{NETS[0]}:{sha[:12]}"


def load_gar(device: str | torch.device | None = None, root: Path | None = None) -> GarNets:
    """G, V and D read from ``resources/`` (or ``root``) now; keep the result. Raises FileNotFoundError
    when G or V is not trained (D may be missing: the inversion then skips its feature loss)."""
    dev = torch.device(device) if device is not None else get_device()
    res = Path(root) if root else resources_dir()
    nets: list[torch.nn.Module | None] = []
    for name, cls in zip(NETS, (Generator, Inverter, Discriminator)):
        path = res / f"{name}.pt"
        if not path.is_file():
            if name == NETS[2]:
                nets.append(None)
                continue
            raise FileNotFoundError(f"{path} missing (train it: python -m trainers.train_gar)")
        nets.append(_frozen(checkpoints.load_weights(path, cls, str(dev))))
    return GarNets(nets[0], nets[1], nets[2], renderer_id(res), dev)


def _frozen(net: torch.nn.Module) -> torch.nn.Module:
    for p in net.parameters():
        p.requires_grad_(False)
    return net
