"""Transformation map pieces (faceeditor.edit.blendmap, grid, relight) on small arrays."""

from __future__ import annotations

import numpy as np
import torch

from faceeditor.edit import blendmap
from faceeditor.edit.grid import Window, make_window, pad_linear, upsample
from faceeditor.edit.relight import CEILING, apply_gain, apply_gain_u8


def _disc(n: int = 64, r: float = 18.0) -> np.ndarray:
    y, x = np.mgrid[:n, :n] + 0.5
    return (x - n / 2) ** 2 + (y - n / 2) ** 2 < r * r


def test_push_pull_is_exact_where_known_and_smooth_elsewhere() -> None:
    inside = _disc()
    y, x = np.mgrid[:64, :64].astype(np.float32)
    values = np.stack([0.3 * x, -0.2 * y + 5], -1).astype(np.float32)
    out = blendmap.push_pull(values, inside.astype(np.float32))
    np.testing.assert_allclose(out[inside], values[inside], atol=1e-5)
    grad = np.abs(np.diff(out, axis=1)).max()
    assert grad < 1.0  # no jumps anywhere


def test_extension_continues_the_rim() -> None:
    inside = _disc()
    y, x = np.mgrid[:64, :64].astype(np.float32)
    r = np.hypot(x + 0.5 - 32, y + 0.5 - 32)
    values = np.where(inside, 10.0 - 0.5 * r, 0.0).astype(np.float32)  # small at the rim, big inside
    ext = blendmap.extend_outside(values, inside)
    rim_value = 10.0 - 0.5 * 18.0
    ring = (r > 18.5) & (r < 20.0)
    assert np.abs(ext[ring] - rim_value).max() < 1.0  # continues the rim, not the interior's mean
    np.testing.assert_array_equal(ext[inside], values[inside])


def test_transformation_map_profile() -> None:
    head = _disc()
    T = blendmap.transformation_map(head, radius_px=10.0)
    assert (T[head] == 1).all()
    y, x = np.mgrid[:64, :64] + 0.5
    d = np.hypot(x - 32, y - 32) - 18
    assert (T[d > 10.5] == 0).all()
    mid = (d > 4.5) & (d < 5.5)
    assert np.abs(T[mid] - 0.5).max() < 0.15
    tapered = blendmap.transformation_map(np.ones((16, 16), bool), 5.0, (True, False, False, False), 4.0)
    assert tapered[:, 0].max() < 0.2 and tapered[:, -1].min() == 1.0


def test_falloff_radius_follows_the_motion() -> None:
    head = _disc()
    still = np.zeros((64, 64, 2), np.float32)
    moving = np.ones((64, 64, 2), np.float32) * 3.0
    r0 = blendmap.falloff_radius(still, head, head_px=36)
    r1 = blendmap.falloff_radius(moving, head, head_px=36)
    assert r0 == blendmap.MIN_FALLOFF_FRACTION * 36 and r1 == blendmap.FALLOFF_HEAD_FRACTION * 36


def test_window_upsampling_matches_resize() -> None:
    import cv2

    win = make_window(10.3, 5.0, 210.0, 130.0, 300, 200, max_grid=50)
    assert (win.x0, win.y0, win.w, win.h) == (10, 5, 200, 125) and max(win.grid_w, win.grid_h) == 50
    g = np.random.default_rng(0).random((win.grid_h, win.grid_w)).astype(np.float32)
    full = upsample(win, g, win.x0, win.y0, win.w, win.h)
    # warpAffine interpolates with 1/32-pixel fixed-point weights
    np.testing.assert_allclose(full, cv2.resize(g, (win.w, win.h), interpolation=cv2.INTER_LINEAR), atol=0.03)
    part = upsample(win, g, win.x0 + 37, win.y0 + 11, 20, 30)
    np.testing.assert_allclose(part, full[11:41, 37:57], atol=1e-5)
    # linear maps (pixel coordinates) survive padding + upsampling exactly, edges included
    gx = (np.arange(win.grid_w) + 0.5) / win.kx + win.x0 - 0.5
    coords = np.repeat(gx[None, :], win.grid_h, 0).astype(np.float32)
    up = upsample(win, pad_linear(coords, 1), win.x0, win.y0, win.w, win.h, pad=1)
    np.testing.assert_allclose(up[0], np.arange(win.x0, win.x0 + win.w), atol=0.1)
    zero = np.zeros_like(g)
    zero[3:6, 3:6] = 1.0
    assert (upsample(win, zero, win.x0, win.y0, win.w, win.h)[:, 120:] == 0).all()  # zeros stay exact
    assert isinstance(win, Window)


def test_gain_rolls_off_highlights_and_keeps_unit_gain_exact() -> None:
    x = torch.linspace(0, 1, 101)[:, None].repeat(1, 3)
    np.testing.assert_array_equal(apply_gain(x.clone(), torch.ones_like(x)).numpy(), x.numpy())
    y = apply_gain(x.clone(), torch.full_like(x, 3.0))
    assert (y[x < CEILING] <= CEILING + 1e-6).all()  # brightening never passes the ceiling
    assert (torch.diff(y[:, 0]) >= -1e-6).all()  # monotonic: gradations survive
    dark = apply_gain(x.clone(), torch.full_like(x, 0.5))
    np.testing.assert_allclose(dark.numpy(), (x * 0.5).numpy(), atol=1e-6)
    tile = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    gain = np.random.default_rng(2).uniform(0.5, 1.8, (40, 50, 3)).astype(np.float32)
    got = apply_gain_u8(tile, gain)
    ref = apply_gain(torch.from_numpy(tile).float() / 255, torch.from_numpy(gain)).numpy() * 255
    assert np.abs(got.astype(float) - ref).max() <= 1.0
    np.testing.assert_array_equal(apply_gain_u8(tile, np.ones_like(gain)), tile)
