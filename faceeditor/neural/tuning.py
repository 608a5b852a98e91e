"""Pivotal tuning's result applied to G (Roich et al. 2021; made by :mod:`faceeditor.neural.invert`).

A :class:`~faceeditor.core.state.FaceState` stores, per tuned parameter of G, the float16 delta
``tuned - base`` (:func:`tuning_deltas`, ~1 MB); :func:`apply_tuning` adds them to a copy of G.
:class:`TunedGenerators` keeps the last few tuned copies, so that repeated renders of one face
(every slider frame) reuse one copy; a loaded renderer (:class:`faceeditor.neural.gar_nets.GarNets`)
owns one.
"""

from __future__ import annotations

import copy
import threading

import numpy as np
import torch

from faceeditor.core.state import FaceState


def apply_tuning(G: torch.nn.Module, tuning: dict[str, np.ndarray]) -> torch.nn.Module:
    """A copy of G with ``tuning`` (parameter name -> delta, any float dtype) added."""
    out = copy.deepcopy(G)
    params = dict(out.named_parameters())
    with torch.no_grad():
        for name, delta in tuning.items():
            if name in params:
                p = params[name]
                p.add_(torch.as_tensor(np.asarray(delta, np.float32), device=p.device).view_as(p))
    return out


def tuning_deltas(G_tuned: torch.nn.Module, G_base: torch.nn.Module, names: list[str]) -> dict[str, np.ndarray]:
    """float16 deltas ``tuned - base`` of the named parameters (what :class:`FaceState` stores)."""
    a, b = dict(G_tuned.named_parameters()), dict(G_base.named_parameters())
    return {n: (a[n].detach() - b[n].detach()).float().cpu().numpy().astype(np.float16) for n in names}


class TunedGenerators:
    """The last ``capacity`` tuned copies of G, one per (G, state, tuning); thread-safe."""

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self._entries: dict[tuple, tuple[dict, torch.nn.Module]] = {}  # key -> (tuning, tuned G), oldest first
        self._lock = threading.Lock()

    def get(self, G: torch.nn.Module, state: FaceState, renderer_id: str) -> torch.nn.Module:
        """G with the state's pivotal-tuning deltas for ``renderer_id`` added (G itself when it has none)."""
        code = state.neural_code(renderer_id)
        tuning = code.tuning if code is not None else {}
        if not tuning:
            return G
        key = (id(G), id(state), tuple(sorted(tuning)), sum(int(np.asarray(v).size) for v in tuning.values()))
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] is tuning:
                return hit[1]
            tuned = apply_tuning(G, tuning)
            if len(self._entries) >= self.capacity:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = (tuning, tuned)
            return tuned

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
