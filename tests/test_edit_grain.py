"""The photo's skin grain over the fill (faceeditor.edit.grain): known statistics, not copies."""

from __future__ import annotations

import cv2
import numpy as np

from faceeditor.edit import grain


def _skin(size: int, amplitude: float, seed: int) -> np.ndarray:
    """A flat skin-coloured square with fine multiplicative grain of the given relative amplitude."""
    g = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(g.standard_normal((size, size)).astype(np.float32), (0, 0), 1.5)
    noise *= amplitude / noise.std()
    base = np.array([200.0, 150.0, 130.0], np.float32)
    return np.clip(base[None, None] * (1.0 + noise[..., None]), 0, 255).astype(np.uint8)


def test_spot_noise_keeps_the_patch_statistics_without_copying_it() -> None:
    patch = _skin(64, 0.05, 0)[..., 1].astype(np.float32) / 150.0 - 1.0
    tile = grain.spot_noise(patch, 256)
    assert tile.shape == (256, 256)
    assert abs(float(tile.mean())) < 0.005
    assert 0.6 < tile.std() / patch.std() < 1.4  # the same amount of grain
    # a texture, not the patch repeated: no 64x64 block of the tile correlates with the patch
    corr = cv2.matchTemplate(tile, (patch - patch.mean()).astype(np.float32), cv2.TM_CCOEFF_NORMED)
    assert corr.max() < 0.5
    # periodic: tiling it has no seam
    big = grain.tiled(tile, 200, 200, 120, 120)
    np.testing.assert_array_equal(big[56, :], tile[0, np.arange(200, 320) % 256])


def test_measure_takes_the_cheek_without_edges_and_only_for_upsampled_fills() -> None:
    photo = _skin(400, 0.04, 1)
    photo[:, :200] = _skin(400, 0.04, 2)[:, :200]
    photo[40:160, 20:140] = 0  # a dark hair lock across the left cheek: edges
    photo[40:160, 20:80] = 255
    cheeks = np.array([[80.0, 100.0], [300.0, 100.0]])
    assert grain.measure(photo, cheeks, head_px=1000.0, upsample=1.0) is None  # the fill keeps its own detail
    tile = grain.measure(photo, cheeks, head_px=1000.0, upsample=3.0)
    assert tile is not None and 0.01 < tile.std() < 0.08  # the smooth cheek's grain, not the lock's edges
    assert grain.measure(photo, np.array([[-50.0, 0.0]]), head_px=1000.0, upsample=3.0) is None  # off the photo
    assert grain.measure(photo, cheeks, head_px=250.0, upsample=3.0) is None  # a small face: no grain


def test_apply_multiplies_with_the_weight() -> None:
    fill = np.full((4, 4, 3), 100, np.uint8)
    detail = np.full((4, 4), 0.2, np.float32)
    weight = np.zeros((4, 4), np.float32)
    weight[:2] = 1.0
    out = grain.apply(fill, detail, weight)
    assert (out[:2] == 120).all() and (out[2:] == 100).all()


def test_the_fill_takes_one_grain_tile_per_photo_size_and_upsampling() -> None:
    """skin_grain measures the tile once per (output size, upsampling) and reuses it from the
    caller's cache across renders; a small face gets none."""
    from types import SimpleNamespace

    from faceeditor.edit.fill_layer import skin_grain
    from faceeditor.edit.grid import Window

    photo = _skin(600, 0.04, 3)
    marks = np.zeros((478, 3))
    marks[list(grain.CHEEKS), :2] = [[200.0, 300.0], [400.0, 300.0]]
    state = SimpleNamespace(detector_landmarks=marks, image_size=(600, 600), face_box=(0.0, 0.0, 500.0, 500.0),
                            texture=None)
    camera = SimpleNamespace(width=600)
    lw = Window(0, 0, 300, 300, 100, 100)  # upsampled 3x
    on_skin = np.ones((100, 100), bool)
    cache: dict = {}
    first = skin_grain(photo, camera, state, lw, on_skin, cache)
    second = skin_grain(photo, camera, state, lw, on_skin, cache)
    assert first is not None and len(cache) == 1 and second.patch is first.patch
    small = SimpleNamespace(**{**vars(state), "face_box": (0.0, 0.0, 100.0, 100.0)})
    assert skin_grain(photo, camera, small, lw, on_skin, cache) is None
