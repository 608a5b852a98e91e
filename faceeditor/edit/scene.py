"""Synthetic photos with known answers for the compositor's tests and demos.

:func:`synthetic_photo` renders a random :func:`~faceeditor.fit.synthetic.random_face_state`
with a *textured* albedo (smooth noise on the skin tiles, so a wrong warp shows) over a
textured background (so a moving background shows), and returns the state with that albedo
as its texture atlas, i.e. exactly what a perfect fitter would return. Edits of it can be
compared with :func:`~faceeditor.fit.synthetic.render_state` of the edited state
(:func:`faceeditor.edit.geometry.edited_state`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceeditor.core.state import FaceState
from faceeditor.fit.synthetic import random_face_state, render_state
from faceeditor.morphable.model import FaceModel
from faceeditor.render.atlas import base_atlas


@dataclass
class SyntheticPhoto:
    photo: np.ndarray  # uint8 HxWx3
    state: FaceState  # ground truth, ``texture`` = the albedo used
    atlas: np.ndarray  # float32 albedo atlas
    background: np.ndarray  # uint8 HxWx3

    def render(self, model: FaceModel, state: FaceState, soft_radius: float = 0.0) -> np.ndarray:
        """Ground-truth photo of another state of the same scene (same albedo and background);
        crisp silhouettes unless ``soft_radius`` (the photo itself has 1-pixel soft edges)."""
        return render_state(model, state, self.atlas, self.background, soft_radius=soft_radius)


def synthetic_photo(model: FaceModel, seed: int = 0, size: tuple[int, int] = (512, 512), tile: int = 256,
                    **state_kw) -> SyntheticPhoto:
    g = np.random.default_rng(seed)
    w, h = size
    state = random_face_state(model, seed, image_size=size, **state_kw)
    atlas = base_atlas(tile, model=model)
    noise = cv2.GaussianBlur(g.random((tile, 2 * tile)).astype(np.float32), (0, 0), max(1.0, tile / 85))
    noise = (noise - noise.mean()) / max(float(noise.std()), 1e-6)
    atlas[:tile, :2 * tile] *= 1.0 + 0.25 * noise[..., None]  # face and head tiles
    atlas = np.clip(atlas, 0.0, 1.0).astype(np.float32)
    cells = g.random((max(2, h // 16), max(2, w // 16), 3)).astype(np.float32)
    bg = (np.clip(cv2.resize(cells, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1) * 255.0 + 0.5).astype(np.uint8)
    photo = render_state(model, state, atlas, bg)
    state.texture = (atlas * 255.0 + 0.5).astype(np.uint8)
    return SyntheticPhoto(photo, state, atlas, bg)
