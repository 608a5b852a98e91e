"""faceeditor.io saving (quality, ICC/EXIF kept upright, alpha, errors, atomic writes) and tensors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from io_fixtures import H, W, exif_with, mad, reference, sRGB_icc, stored
from PIL import Image

from faceeditor.io import ImageSaveError, load_image, load_rgb, save_image, to_tensor, to_uint8

# ---------------------------------------------------------------- saving


def test_jpeg_quality_and_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    img = np.clip(reference(96, 64).astype(int) + rng.integers(-20, 20, (64, 96, 3)), 0, 255).astype(np.uint8)
    sizes = {}
    for q in (30, 75, 95):
        path = save_image(tmp_path / f"q{q}.jpg", img, quality=q)
        sizes[q] = path.stat().st_size
        back = load_image(path)
        assert back.pixels.shape == img.shape and back.jpeg_quality == q
    assert sizes[30] < sizes[75] < sizes[95]
    with pytest.raises(ValueError):
        save_image(tmp_path / "bad.jpg", img, quality=0)


def test_save_keeps_icc_and_exif_upright(tmp_path: Path) -> None:
    icc = sRGB_icc()
    ref = reference()
    src = tmp_path / "src.jpg"
    stored(ref, 6).save(src, quality=95, icc_profile=icc, exif=exif_with(6, "Acme"))
    loaded = load_image(src)
    assert loaded.icc_profile == icc and loaded.exif_orientation == 6
    for ext in (".jpg", ".png", ".webp"):
        out = save_image(tmp_path / f"out{ext}", loaded.pixels, like=loaded)
        back = load_image(out)
        assert back.icc_profile == icc, ext
        assert back.exif_orientation == 1 and back.pixels.shape == ref.shape, ext
        exif = Image.Exif()
        exif.load(back.exif)
        assert exif[0x010F] == "Acme", ext
        assert mad(back.pixels, ref) < 3.0, ext
    plain = load_image(save_image(tmp_path / "plain.png", ref))
    assert plain.icc_profile is None and plain.exif is None


def test_save_alpha_round_trip(tmp_path: Path) -> None:
    ref = reference()
    a = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))
    back = load_image(save_image(tmp_path / "a.png", ref, alpha=a), background=None)
    np.testing.assert_array_equal(back.alpha, a)
    np.testing.assert_array_equal(back.pixels, ref)
    with pytest.raises(ImageSaveError, match="transparency"):
        save_image(tmp_path / "a.jpg", ref, alpha=a)


def test_save_errors(tmp_path: Path) -> None:
    ref = reference()
    with pytest.raises(ImageSaveError, match="unknown image extension") as info:
        save_image(tmp_path / "out.xyz", ref)
    assert "out.xyz" in str(info.value)
    with pytest.raises(ImageSaveError, match="does not exist"):
        save_image(tmp_path / "missing" / "out.png", ref)
    with pytest.raises(ValueError):
        save_image(tmp_path / "f.png", ref.astype(np.float32))
    with pytest.raises(ValueError):
        save_image(tmp_path / "g.png", ref[:, :, 0])


def test_atomic_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_image(tmp_path / "photo.jpg", reference())
    assert sorted(os.listdir(tmp_path)) == ["photo.jpg"]
    before = path.read_bytes()

    def crash(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"\xff\xd8 half a jpeg")  # type: ignore[attr-defined]
        raise OSError("disk on fire")

    monkeypatch.setattr(Image.Image, "save", crash)
    with pytest.raises(ImageSaveError, match="disk on fire"):
        save_image(path, np.zeros((H, W, 3), np.uint8))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["photo.jpg"]


def test_overwrite_keeps_permissions(tmp_path: Path) -> None:
    path = save_image(tmp_path / "p.png", reference())
    os.chmod(path, 0o640)
    save_image(path, np.zeros((H, W, 3), np.uint8))
    assert (path.stat().st_mode & 0o777) == 0o640
    np.testing.assert_array_equal(load_rgb(path), 0)


# ---------------------------------------------------------------- tensors


def test_to_tensor_and_back() -> None:
    ref = reference()
    t = to_tensor(ref)
    assert t.shape == (1, 3, H, W) and t.dtype == torch.float32 and t.is_contiguous()
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    assert torch.allclose(t[0, 1, 5, 7], torch.tensor(ref[5, 7, 1] / 255.0, dtype=torch.float32))
    np.testing.assert_array_equal(to_uint8(t), ref)
    np.testing.assert_array_equal(to_uint8(t[0]), ref)
    every = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, 2)
    np.testing.assert_array_equal(to_uint8(to_tensor(every)), every)


def test_to_uint8_rounds_and_clamps() -> None:
    t = torch.tensor([-0.5, 0.0, 0.31, 0.69, 1.0, 1.7, float("nan"), 100.4 / 255]).view(1, 1, 8).repeat(3, 1, 1)
    out = to_uint8(t.requires_grad_())
    assert out.dtype == np.uint8 and out.shape == (1, 8, 3)
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 79, 176, 255, 255, 0, 100])
    with pytest.raises(ValueError):
        to_uint8(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError):
        to_tensor(np.zeros((4, 4), np.uint8))
