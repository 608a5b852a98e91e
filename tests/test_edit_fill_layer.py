"""The fill layer meets the photo seamlessly: a membrane carries the ring's colour difference inside."""

from __future__ import annotations

import numpy as np

from faceeditor.edit import skin_tone
from faceeditor.edit.fill_layer import (
    LUMA_CAP,
    RING_FACING,
    RING_MIN_WEIGHT,
    RING_NEED,
    SILHOUETTE_SIGMA,
    anchor_weight,
    cap_luma,
    match_chroma,
    membrane,
    ring_weight,
    soft_silhouette,
    with_ring,
)
from faceeditor.edit.skin_tone import LUMA


def test_ring_marks_the_pixels_around_the_need() -> None:
    need = np.zeros((20, 20), np.float32)
    need[8:12, 8:12] = 1.0
    ask = with_ring(need, 2)
    assert np.array_equal(ask[8:12, 8:12], need[8:12, 8:12])
    assert np.isclose(ask[7, 9], RING_NEED) and np.isclose(ask[6, 9], RING_NEED) and ask[5, 9] == 0.0
    assert ask[0, 0] == 0.0


def test_membrane_removes_a_constant_colour_offset_and_keeps_the_fill_detail() -> None:
    rng = np.random.default_rng(0)
    photo = np.full((40, 40, 3), 0.5, np.float32) + rng.normal(0, 0.01, (40, 40, 3)).astype(np.float32)
    detail = np.zeros((40, 40, 3), np.float32)
    detail[18:22, 18:22] = 0.1  # something the fill draws that the photo does not show
    fill = photo + np.float32(-0.2) + detail  # the fill is darker than the photo everywhere
    need = np.zeros((40, 40), np.float32)
    need[12:28, 12:28] = 1.0
    conf = np.ones((40, 40), np.float32)
    out = membrane(fill, need, photo, anchor_weight(conf, need))
    inside = need > 0
    assert abs(float((out - photo - detail)[inside].mean())) < 0.02  # the offset is gone
    assert np.allclose(out[~inside], fill[~inside])  # nothing changes outside the needed pixels
    d = out[18:22, 18:22] - out[14:16, 14:16].mean((0, 1))
    assert np.allclose(d.mean(), 0.1, atol=0.02)  # the fill's own detail stays


def test_without_a_ring_the_fill_is_unchanged() -> None:
    fill = np.full((10, 10, 3), 0.3, np.float32)
    need = np.ones((10, 10), np.float32)
    reference = np.full((10, 10, 3), 0.9, np.float32)
    out = membrane(fill, need, reference, anchor_weight(np.ones((10, 10), np.float32), need))
    assert np.array_equal(out, fill)


def _sepia(y: np.ndarray) -> np.ndarray:
    """A toned skin whose chromaticity depends on its luminance (redder in the shadows)."""
    sat = 0.35 - 0.25 * y  # chroma grows as the skin darkens
    c = np.stack([1 + sat, 1 - 0.2 * sat, 1 - 1.4 * sat], -1)
    c = c / (c @ LUMA)[..., None]  # unit luma
    return (y[..., None] * c).astype(np.float32)


def test_fill_takes_the_photos_skin_colour_at_its_own_luminance() -> None:
    rng = np.random.default_rng(1)
    reference = _sepia(rng.uniform(0.15, 0.9, (30, 30)))
    ref_mask = np.ones((30, 30), bool)
    ref_mask[10:20, 10:20] = False
    fill_y = np.linspace(0.2, 0.8, 100).reshape(10, 10).astype(np.float32)
    rgb = np.zeros((30, 30, 3), np.float32)
    rgb[10:20, 10:20] = fill_y[..., None]  # a grey fill: right brightness, no hue
    out = match_chroma(rgb, ~ref_mask, skin_tone.measure(reference[ref_mask]))
    want = _sepia(fill_y)
    assert np.abs(out[10:20, 10:20] - want).max() < 0.02
    assert np.allclose(out[10:20, 10:20] @ LUMA, fill_y, atol=0.01)  # the fill keeps its luminance
    assert np.array_equal(out[ref_mask], rgb[ref_mask])


def test_too_little_seen_skin_leaves_the_fill_colour_alone() -> None:
    reference = _sepia(np.full((8, 8), 0.5, np.float32))
    rgb = np.full((8, 8, 3), 0.4, np.float32)
    mask = np.zeros((8, 8), bool)
    mask[:2] = True
    assert np.array_equal(match_chroma(rgb, ~mask, skin_tone.measure(reference[mask])), rgb)


def test_the_membrane_is_pulled_only_by_skin_on_its_ring() -> None:
    """A fill of the right skin colour between skin (left) and pale blonde hair (right): weighted by
    skin likeness, the hair on the ring does not pull the fill pale; unweighted it does."""
    rng = np.random.default_rng(2)
    tone = skin_tone.measure(_sepia(rng.uniform(0.2, 0.9, 2000)))
    assert tone is not None
    reference = np.empty((20, 30, 3), np.float32)
    reference[:, :15] = _sepia(np.full((20, 15), 0.5, np.float32))
    reference[:, 15:] = (0.95, 0.93, 0.85)  # hair
    fill = reference.copy()
    fill[6:14, 10:20] = _sepia(np.full((8, 10), 0.5, np.float32))
    need = np.zeros((20, 30), np.float32)
    need[6:14, 10:20] = 1.0
    conf = np.ones((20, 30), np.float32)
    fill[:, 15:] = fill[6:14, 10:20].mean((0, 1))  # the provider draws skin on the ring over the hair too
    weighted = membrane(fill, need, reference, anchor_weight(conf, need, 2, skin_tone.likeness(reference, tone)))
    plain = membrane(fill, need, reference, anchor_weight(conf, need, 2))
    skin = _sepia(np.array([0.5], np.float32))[0]
    assert np.abs(weighted[10, 17] - skin).max() < 0.03  # stays skin
    assert np.abs(plain[10, 17] - skin).max() > 0.1  # pulled toward the hair
    assert skin_tone.likeness(reference[:1, :1], tone)[0, 0] > 0.9
    assert skin_tone.likeness(reference[:1, -1:], tone)[0, 0] < 0.1


def test_the_photos_contour_on_the_ring_does_not_pull_the_membrane() -> None:
    """A skin fill between head-on skin (left) and the photo's own contour (right: a pale rim, skin
    mixed with a light background, seen at a grazing angle): weighted by how squarely the photo saw
    the ring, the fill stays skin; by skin likeness alone the rim (skin-coloured, only paler) pulls it."""
    rng = np.random.default_rng(3)
    tone = skin_tone.measure(_sepia(rng.uniform(0.2, 0.9, 2000)))
    assert tone is not None
    reference = np.empty((20, 30, 3), np.float32)
    reference[:, :15] = _sepia(np.full((20, 15), 0.5, np.float32))
    reference[:, 15:] = _sepia(np.full((20, 15), 0.8, np.float32))  # the rim: the same skin, paler
    facing = np.full((20, 30), 0.9, np.float32)
    facing[:, 15:] = 0.1  # ... where the photo saw the surface edge-on
    need = np.zeros((20, 30), np.float32)
    need[6:14, 10:20] = 1.0
    fill = reference.copy()
    fill[6:14, 10:20] = _sepia(np.full((8, 10), 0.5, np.float32))
    fill[:, 15:] = fill[6:14, 10:20].mean((0, 1))
    conf = np.ones((20, 30), np.float32)
    w = ring_weight(reference, tone, facing)
    assert w[0, 0] > 0.9 and w[0, -1] == 0.0
    assert ring_weight(reference, None, np.full((1, 1), RING_FACING[1]))[0, 0] == 1.0
    skin = _sepia(np.array([0.5], np.float32))[0]
    seen = membrane(fill, need, reference, anchor_weight(conf, need, 2, w))
    likeness_only = membrane(fill, need, reference, anchor_weight(conf, need, 2, skin_tone.likeness(reference, tone)))
    assert np.abs(seen[10, 17] - skin).max() < 0.03
    assert np.abs(likeness_only[10, 17] - skin).max() > 0.1


def _turned_cheek() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A dark skin (luma 0.3) around a fill that the extrapolated light draws brighter towards its
    outer side (0.3 at the inner edge to 0.6), and the anchors of the ring around it."""
    reference = np.full((40, 40, 3), 0.3, np.float32)
    need = np.zeros((40, 40), np.float32)
    need[10:30, 10:30] = 1.0
    rgb = np.repeat(np.linspace(0.3, 0.6, 40, dtype=np.float32)[None, :, None], 40, 0).repeat(3, 2)
    anchors = anchor_weight(np.ones((40, 40), np.float32), need, 3)
    return reference, need, rgb, anchors


def test_fill_luma_is_held_near_the_skin_beside_it() -> None:
    reference, need, rgb, anchors = _turned_cheek()
    out = cap_luma(rgb, need > 0, reference, anchors)
    y, y0 = out @ LUMA, rgb @ LUMA
    inside = need > 0
    assert y[inside].max() <= LUMA_CAP[1] * 0.3 + 1e-3  # never brighter than the cap
    dim = inside & (y0 <= LUMA_CAP[0] * 0.3 - 0.01)
    assert np.allclose(out[dim], rgb[dim])  # below the knee the fill keeps its own shading
    assert np.all(np.diff(y[20, 10:30]) >= -1e-6)  # compressed, not flattened: still brighter outwards
    assert np.array_equal(out[~inside], rgb[~inside])
    chroma = out[inside] / y[inside][:, None]
    assert np.allclose(chroma, 1.0, atol=1e-4)  # the colour is scaled, not shifted


def test_without_enough_anchors_the_fill_luma_is_not_capped() -> None:
    reference, need, rgb, _ = _turned_cheek()
    few = np.zeros((40, 40), np.float32)
    few[9, 10:15] = 1.0
    assert np.array_equal(cap_luma(rgb, need > 0, reference, few), rgb)


def test_barely_skin_like_ring_pixels_do_not_anchor_the_membrane() -> None:
    """A green background beside a dark cheek read 0.29 skin-like and painted the fill pale green."""
    need = np.zeros((20, 20), np.float32)
    need[5:15, 5:15] = 1.0
    weight = np.full((20, 20), 0.9, np.float32)
    weight[:, :10] = RING_MIN_WEIGHT - 0.11  # the left half of the ring is background
    a = anchor_weight(np.ones((20, 20), np.float32), need, 2, weight)
    assert a[:, :10].max() == 0.0 and a[:, 10:].max() == np.float32(0.9)
    assert a[need > 0].max() == 0.0
    fill = np.full((20, 20, 3), 0.3, np.float32)
    reference = np.full((20, 20, 3), 0.3, np.float32)
    reference[:, :10] = (0.5, 0.8, 0.6)
    out = membrane(fill, need, reference, a)
    assert np.allclose(out[need > 0], 0.3, atol=1e-3)


def test_the_fill_silhouette_is_anti_aliased_and_its_colour_continued() -> None:
    """A fill drawn up to a diagonal silhouette (a staircase of grid cells): the weight ramps across it
    instead of stepping, is unchanged away from it, and the pixels just outside that now take some
    fill get its colour, not black."""
    n = 40
    ys, xs = np.mgrid[0:n, 0:n]
    confidence = (xs + 0.5 * ys < 25).astype(np.float32)  # drawn left of a slanted line
    need = np.ones((n, n), np.float32)
    rgb = np.where(confidence[..., None] > 0, np.float32(0.6), np.float32(0.0)) * np.ones(3, np.float32)
    out, weight = soft_silhouette(rgb, confidence, need)
    far_in = confidence * (xs + 0.5 * ys < 25 - 4 * SILHOUETTE_SIGMA)
    assert np.array_equal(weight[far_in > 0], np.ones(int(far_in.sum()), np.float32))  # unchanged inside
    assert weight[(xs + 0.5 * ys > 25 + 4 * SILHOUETTE_SIGMA)].max() == 0.0  # and outside
    row = weight[20, :]
    assert 0.2 < row[14] < 0.8 or 0.2 < row[15] < 0.8  # a ramp across the edge (x + 10 = 25)
    assert np.all(np.diff(row) <= 1e-6)  # monotone: no ring, no notch
    took = (confidence == 0) & (weight > 0)
    assert took.any() and np.allclose(out[took], 0.6, atol=1e-3)  # the fill's colour, not black
    assert np.array_equal(out[far_in > 0], rgb[far_in > 0])


def test_the_fill_rim_takes_the_colour_of_its_interior() -> None:
    """The grid pixels on the drawn silhouette (shaded on grazing normals: saturated dots along the
    outline) take the colour of the fill inside them."""
    confidence = np.zeros((20, 20), np.float32)
    confidence[:, :10] = 1.0
    rgb = np.zeros((20, 20, 3), np.float32)
    rgb[:, :10] = 0.5
    rgb[:, 9] = (1.0, 0.6, 0.1)  # a bright rim on the last drawn column
    out, weight = soft_silhouette(rgb, confidence, np.ones((20, 20), np.float32))
    assert weight[:, 9].min() > 0.5 and np.allclose(out[:, 9], 0.5, atol=1e-3)
    assert np.array_equal(out[:, :8], rgb[:, :8])


def test_the_fill_edge_inside_the_head_keeps_its_weight() -> None:
    """Where the provider drew everything (no silhouette on the grid) the weight is confidence x need."""
    need = np.zeros((10, 10), np.float32)
    need[3:7, 3:7] = 0.5
    rgb = np.full((10, 10, 3), 0.4, np.float32)
    out, weight = soft_silhouette(rgb, np.ones((10, 10), np.float32), need)
    assert np.array_equal(weight, need) and np.array_equal(out, rgb)
