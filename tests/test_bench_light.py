"""``faceeditor bench light``: its measures on inputs with known answers, and a run on two LFW photos."""

from __future__ import annotations

import json

import numpy as np
import pytest

from faceeditor.bench import _light as L
from faceeditor.bench._light import Regions

KEYS = {
    "chroma_shift_median",
    "skin_tone_ratio_median",
    "roundtrip_psnr_db",
    "light_dir_err_deg_median",
    "relight_seam_ratio_median",
    "personal_psnr_db",
    "personal_fit_s_median",
    "personal_heldout_gain_db",
}


def _skin_photo(seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    base = np.array([190.0, 140.0, 115.0])
    shade = 0.6 + 0.4 * g.random((64, 64, 1))
    return np.clip(base * shade, 0, 255).astype(np.uint8)


def test_chroma_shift_reads_zero_for_a_pure_brightness_change() -> None:
    photo = _skin_photo()
    mask = np.ones(photo.shape[:2], bool)
    for k in (0.5, 0.8, 1.2):
        lin = L._linear(photo) * k  # the same colour, another brightness (in linear light)
        srgb = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * np.power(lin, 1 / 2.4) - 0.055)
        relit = np.clip(srgb * 255 + 0.5, 0, 255).astype(np.uint8)
        same, raw = L.chroma_shift(photo, relit, mask)
        assert same < 0.6 and raw > 1.0, (k, same, raw)
    orange = np.clip(photo.astype(float) * np.array([1.15, 1.0, 0.8]), 0, 255).astype(np.uint8)
    assert L.chroma_shift(photo, orange, mask)[0] > 5.0


def test_skin_tone_ratio_and_seam_known_answers() -> None:
    photo = _skin_photo()
    face = np.zeros(photo.shape[:2], bool)
    face[:30] = True
    neck = np.zeros_like(face)
    neck[40:] = True
    reg = Regions(face, neck, np.ones_like(face))
    darker = (photo * 0.7).astype(np.uint8)
    assert L.skin_tone_ratio(photo, darker, reg) == pytest.approx(1.0, abs=0.02)  # face and neck agree
    face_only = photo.copy()
    face_only[:30] = darker[:30]
    assert L.skin_tone_ratio(photo, face_only, reg) < 0.85  # the face darkened, the neck did not
    assert L.outline_seam(photo, photo, reg.outline) == pytest.approx(1.0)


def test_bench_light_runs_on_two_photos(data_dir, tmp_path) -> None:
    from faceeditor.cli import main

    folder = data_dir / "lfw" / "Dominique_de_Villepin"
    if not folder.is_dir():
        pytest.skip(f"{folder} missing")
    out = tmp_path / "light.json"
    sheets = tmp_path / "sheets"
    assert (
        main(
            [
                "bench",
                "light",
                "--data",
                str(folder),
                "--n",
                "2",
                "--no-refit",
                "--json",
                str(out),
                "--out-dir",
                str(sheets),
            ]
        )
        == 0
    )
    got = json.loads(out.read_text())
    assert KEYS <= set(got) and got["photos"] == 2
    assert got["chroma_shift_median"] < 3.0
    assert got["roundtrip_psnr_db"] > 30.0
    assert 0.0 < got["relight_seam_ratio_median"] < 2.0
    assert np.isnan(got["light_dir_err_deg_median"])  # --no-refit: the re-fits are the slow part
    assert len(list(sheets.glob("*.png"))) == 2 and (sheets / "photos.json").is_file()
