"""The photo's skin colour by brightness: measured from samples, given to fills, kept by relights."""

from __future__ import annotations

import numpy as np

from faceeditor.edit import skin_tone
from faceeditor.edit.skin_tone import LUMA


def _skin(y: np.ndarray) -> np.ndarray:
    """A skin whose chromaticity depends on its luma: redder and more saturated in the shadows."""
    sat = 0.35 - 0.25 * y
    c = np.stack([1 + sat, 1 - 0.2 * sat, 1 - 1.4 * sat], -1)
    c = c / (c @ LUMA)[..., None]
    return (y[..., None] * c).astype(np.float32)


def _tone(seed: int = 0) -> skin_tone.SkinTone:
    rng = np.random.default_rng(seed)
    samples = _skin(rng.uniform(0.1, 0.95, 4000)) + rng.normal(0, 0.005, (4000, 3)).astype(np.float32)
    tone = skin_tone.measure(samples)
    assert tone is not None
    return tone


def test_the_tone_curve_is_the_skins_chromaticity_at_each_brightness() -> None:
    tone = _tone()
    for y in (0.2, 0.5, 0.8):
        want = _skin(np.array([y], np.float32))[0] / y
        assert np.abs(tone.lut[int(y * 256)] - want).max() < 0.03
    assert np.allclose(tone.lut @ LUMA, 1.0, atol=1e-4)
    assert skin_tone.measure(np.full((50, 3), 0.5, np.float32)) is None  # too few samples


def test_darkening_a_lit_cheek_makes_it_the_skins_shadow_colour_not_grey() -> None:
    tone = _tone()
    before = (_skin(np.full((4, 4), 0.8, np.float32)) * 255 + 0.5).astype(np.uint8)
    after = (before.astype(np.float32) * 0.4 + 0.5).astype(np.uint8)  # a brightness-only relight
    out = skin_tone.retone_u8(before, after, tone).astype(np.float32) / 255
    want = _skin(np.full((4, 4), 0.32, np.float32))
    assert np.abs(out - want).max() < 0.03
    assert np.allclose(out @ LUMA, after.astype(np.float32) @ LUMA / 255, atol=0.02)  # brightness kept


def test_what_is_not_skin_or_not_relit_keeps_its_colour() -> None:
    tone = _tone()
    blue = np.full((3, 3, 3), (60, 90, 160), np.uint8)  # a shirt
    darker = (blue * 0.5).astype(np.uint8)
    assert np.abs(skin_tone.retone_u8(blue, darker, tone).astype(int) - darker).max() <= 1
    cheek = (_skin(np.full((3, 3), 0.6, np.float32)) * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(skin_tone.retone_u8(cheek, cheek, tone), cheek)  # no brightness change
    dark = (cheek * 0.5).astype(np.uint8)
    out = skin_tone.retone_u8(cheek, dark, tone, where=np.zeros((3, 3), np.float32))
    assert np.array_equal(out, dark)  # outside ``where``


def test_recolour_gives_a_grey_fill_the_skin_colour_of_its_brightness() -> None:
    tone = _tone()
    grey = np.full((2, 2, 3), 0.3, np.float32)
    out = skin_tone.recolour(grey, tone)
    assert np.allclose(out @ LUMA, 0.3, atol=0.01)
    assert np.abs(out - _skin(np.full((2, 2), 0.3, np.float32))).max() < 0.03


def test_a_skin_whose_colour_saturates_toward_the_highlights_is_not_extrapolated_to_cyan() -> None:
    """Barbara Esbin (LFW): red/luma 2.4 in the shadows, 1.2 at mid grey, ~1.03 in the highlights.
    A straight line through that curve gave a fill brighter than the skin red/luma 0.72 (cyan)."""
    rng = np.random.default_rng(3)
    y = rng.uniform(0.05, 0.85, 4000).astype(np.float32)
    red = 1.0 + 0.06 / y  # saturating: steep in the shadows, flat in the highlights
    c = np.stack([red, np.ones_like(y), 2.0 - red], -1)
    c = c / (c @ LUMA)[:, None]
    tone = skin_tone.measure(y[:, None] * c)
    assert tone is not None
    top = c[np.argmax(y)]
    for level in (200, 230, 255):  # brighter than the samples: the brightest skin's colour, held
        assert np.abs(tone.lut[level] - top).max() < 0.03
    mid = 0.3
    want = np.array([1.0 + 0.06 / mid, 1.0, 1.0 - 0.06 / mid]) / (np.array([1.0 + 0.06 / mid, 1.0, 1.0 - 0.06 / mid]) @ LUMA)
    assert np.abs(tone.lut[int(mid * 256)] - want).max() < 0.05  # a robust line through a curve: close


def test_skin_lit_brighter_than_its_diffuse_range_keeps_its_colour_not_the_speculars() -> None:
    """Above the skin's diffuse range (the top quarter of the samples is paler: speculars) the curve
    holds the colour at its edge: a fill or relit pixel brighter than the photo's skin keeps that
    colour, it does not turn into a highlight (a turned cheek came out grey-lilac, Helen 1021890651_1)."""
    rng = np.random.default_rng(4)
    y = np.sort(rng.uniform(0.1, 0.95, 4000)).astype(np.float32)
    tone = skin_tone.measure(_skin(y))
    assert tone is not None
    edge = float(np.median(y[int(0.75 * 4000):int(0.75 * 4000) + 4000 // 12]))  # the 3/4 quantile bin
    np.testing.assert_allclose(tone.lut[255], tone.lut[int(edge * 256)], atol=0.01)
    np.testing.assert_allclose(tone.lut[255], _skin(np.array([edge], np.float32))[0] / edge, atol=0.03)
