"""The photo renderers by name: one factory for the CLI, the batch runner, the benchmarks and the GUI.

* ``"mesh"``: :class:`~faceeditor.edit.compose.MeshCompositor` (warp + relight + mesh fill).
* ``"neural"``: :class:`~faceeditor.neural.render.NeuralRenderer`, the same compositor with the GAR
  renderer G as its fill layer; the face is inverted first when its state has no latent code for
  the shipped G (:func:`faceeditor.neural.invert.invert`, seconds on a CPU).

``make_renderer(kind, photo, state, model, **kw)`` returns a
:class:`~faceeditor.edit.renderer.PhotoRenderer`; ``available_renderers()`` says which can be made
now (the neural one needs ``resources/gar_generator.pt`` and ``gar_inverter.pt``).
"""

from __future__ import annotations

import numpy as np

from faceeditor.edit.params import RENDERERS


def available_renderers() -> dict[str, tuple[bool, str]]:
    """``{name: (available, reason or description)}`` for every name in :data:`RENDERERS`."""
    out = {"mesh": (True, "Warp and relight the photo through the fitted mesh")}
    try:
        from faceeditor.neural.render import available

        ok = available()
    except ImportError:
        ok = False
    out["neural"] = (ok, "Compositor with the neural renderer (GAR) filling unseen parts" if ok else
                     "No trained neural renderer in resources/ (python -m trainers.train_gar)")
    return out


def make_renderer(kind: str, photo: np.ndarray, state, model=None, preview: bool = False, progress=None, **kw):
    """A PhotoRenderer of ``kind`` bound to ``photo`` and the fitted face ``state``.

    ``preview`` lets the compositor's work grid go down to 128 px (the GUI's slider previews);
    ``progress`` is passed to the inversion of the neural renderer; other keywords go to the
    renderer (e.g. ``invert_config``, ``max_work_px``).
    """
    if kind not in RENDERERS:
        raise ValueError(f"unknown renderer {kind!r}; choose from {RENDERERS}")
    if model is None:
        from faceeditor.morphable import load_face_model

        model = load_face_model()
    if preview:
        kw.setdefault("min_work_px", 128)
    if kind == "mesh":
        from faceeditor.edit.compose import MeshCompositor

        return MeshCompositor(photo, state, model, **kw)
    ok, why = available_renderers()["neural"]
    if not ok:
        from faceeditor.cli import UserError

        raise UserError(f"the neural renderer is not available: {why}")
    from faceeditor.neural.render import NeuralRenderer

    return NeuralRenderer(photo, state, model, progress=progress, **kw)
