"""faceeditor.io loading: formats, EXIF orientation, modes, 16-bit, CMYK and bad files.

All fixture images are generated in tmp_path (:mod:`io_fixtures`); they are tiny, so the file runs in ~1 s.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from io_fixtures import H, W, exif_with, mad, reference, stored, write_png16, write_tiff16_rgb
from PIL import Image, ImageFile, ImageOps

from faceeditor.core.errors import FaceEditorError
from faceeditor.io import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    ImageSaveError,
    LoadedImage,
    load_image,
    load_rgb,
    save_image,
)

# ---------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("ext", "fmt", "tol"),
    [(".png", "PNG", 0), (".bmp", "BMP", 0), (".tif", "TIFF", 0), (".jpg", "JPEG", 2.0), (".webp", "WEBP", 3.0)],
)
def test_round_trip_each_format(tmp_path: Path, ext: str, fmt: str, tol: float) -> None:
    ref = reference()
    path = save_image(tmp_path / f"img{ext}", ref)
    img = load_image(path)
    assert isinstance(img, LoadedImage)
    assert img.format == fmt and img.path == path
    assert img.pixels.shape == (H, W, 3) and img.pixels.dtype == np.uint8
    assert img.pixels.flags.c_contiguous and img.pixels.flags.writeable
    assert img.alpha is None and img.exif_orientation == 1 and img.bit_depth == 8
    assert mad(img.pixels, ref) <= tol
    if tol == 0:
        np.testing.assert_array_equal(img.pixels, ref)
    assert (img.jpeg_quality is not None) == (fmt == "JPEG")
    np.testing.assert_array_equal(load_rgb(path), img.pixels)


def test_multi_picture_jpeg_loads_first_frame_as_jpeg(tmp_path: Path) -> None:
    """Phones write MPO (JPEG + extra frames); it is a JPEG to the user."""
    first, second = (Image.fromarray(np.full((H, W, 3), v, np.uint8)) for v in (100, 200))
    path = tmp_path / "phone.jpg"
    first.save(path, format="MPO", save_all=True, append_images=[second], quality=90)
    img = load_image(path)
    assert img.format == "JPEG" and img.jpeg_quality == 90
    assert np.abs(img.pixels.astype(int) - 100).max() <= 1


# ---------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_png_exact(tmp_path: Path, orientation: int) -> None:
    ref = reference()
    path = tmp_path / f"o{orientation}.png"
    stored(ref, orientation).save(path, exif=exif_with(orientation, "Acme"))
    img = load_image(path)
    assert img.exif_orientation == orientation
    np.testing.assert_array_equal(img.pixels, ref)
    # Same answer as Pillow's own transpose; and the returned EXIF now says "upright".
    np.testing.assert_array_equal(img.pixels, np.asarray(ImageOps.exif_transpose(Image.open(path))))
    out = Image.Exif()
    out.load(img.exif)
    assert out[0x0112] == 1 and out[0x010F] == "Acme"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg(tmp_path: Path, orientation: int) -> None:
    ref = reference()
    path = tmp_path / f"o{orientation}.jpg"
    stored(ref, orientation).save(path, quality=95, exif=exif_with(orientation))
    img = load_image(path)
    assert img.exif_orientation == orientation and img.pixels.shape == ref.shape
    assert mad(img.pixels, ref) < 2.0


@pytest.mark.parametrize("orientation", [2, 6, 7])
def test_exif_orientation_tiff(tmp_path: Path, orientation: int) -> None:
    """Pillow orients TIFFs itself on load: it must not be applied twice."""
    ref = reference()
    path = tmp_path / "o.tif"
    stored(ref, orientation).save(path, exif=exif_with(orientation))
    img = load_image(path)
    assert img.exif_orientation == orientation
    np.testing.assert_array_equal(img.pixels, ref)


# ---------------------------------------------------------------- modes


def test_grayscale_and_bilevel(tmp_path: Path) -> None:
    g = reference()[:, :, 0]
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.original_mode == "L" and img.alpha is None
    np.testing.assert_array_equal(img.pixels, np.dstack([g, g, g]))
    Image.fromarray(g > 100).save(tmp_path / "b.png")
    img = load_image(tmp_path / "b.png")
    assert img.original_mode == "1" and img.bit_depth == 1
    np.testing.assert_array_equal(img.pixels[:, :, 1], np.where(g > 100, 255, 0))


def test_gray_alpha_composited_on_white(tmp_path: Path) -> None:
    g = np.full((H, W), 100, np.uint8)
    a = np.zeros((H, W), np.uint8)
    a[:, 8:16], a[:, 16:] = 128, 255
    Image.fromarray(np.dstack([g, a]), "LA").save(tmp_path / "la.png")
    img = load_image(tmp_path / "la.png")
    assert img.original_mode == "LA"
    np.testing.assert_array_equal(img.alpha, a)
    assert tuple(img.pixels[0, 0]) == (255, 255, 255)  # transparent -> white
    assert tuple(img.pixels[0, 10]) == (177, 177, 177)  # (100*128 + 255*127)/255 = 177.2
    assert tuple(img.pixels[0, 20]) == (100, 100, 100)


def test_rgba_alpha_policy(tmp_path: Path) -> None:
    ref = reference()
    a = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))
    Image.fromarray(np.dstack([ref, a]), "RGBA").save(tmp_path / "rgba.png")
    img = load_image(tmp_path / "rgba.png")
    np.testing.assert_array_equal(img.alpha, a)
    np.testing.assert_array_equal(img.pixels[:, -1], ref[:, -1])  # opaque column untouched
    np.testing.assert_array_equal(img.pixels[:, 0], 255)  # transparent column is white
    expect = (ref.astype(int) * a[..., None] + 255 * (255 - a[..., None].astype(int)) + 127) // 255
    np.testing.assert_array_equal(img.pixels, expect)
    raw = load_image(tmp_path / "rgba.png", background=None)
    np.testing.assert_array_equal(raw.pixels, ref)
    black = load_image(tmp_path / "rgba.png", background=(0, 0, 0))
    np.testing.assert_array_equal(black.pixels[:, 0], 0)


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    p = Image.new("P", (W, H), 0)
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.paste(1, (0, 0, W // 2, H))
    p.save(tmp_path / "p.png")
    img = load_image(tmp_path / "p.png")
    assert img.original_mode == "P" and img.alpha is None
    assert tuple(img.pixels[0, 0]) == (0, 0, 255) and tuple(img.pixels[0, -1]) == (255, 0, 0)
    p.save(tmp_path / "pt.png", transparency=1)
    img = load_image(tmp_path / "pt.png")
    assert img.alpha is not None and img.alpha[0, 0] == 0 and img.alpha[0, -1] == 255
    assert tuple(img.pixels[0, 0]) == (255, 255, 255)


# ---------------------------------------------------------------- 16-bit

VALUES16 = np.array([0, 128, 129, 200, 257, 1000, 32768, 65535], dtype=np.uint16)
EXPECT8 = np.array([0, 0, 1, 1, 1, 4, 128, 255], dtype=np.uint8)  # round(v / 257)


def test_16bit_gray_png_scaled_not_clipped(tmp_path: Path) -> None:
    a = np.tile(VALUES16, (3, 1))
    Image.fromarray(a).save(tmp_path / "g16.png")  # Pillow writes I;16 as 16-bit gray
    img = load_image(tmp_path / "g16.png")
    assert img.bit_depth == 16 and img.original_mode.startswith("I;16")
    np.testing.assert_array_equal(img.pixels[0, :, 0], EXPECT8)
    np.testing.assert_array_equal(img.pixels[..., 0], img.pixels[..., 2])


@pytest.mark.parametrize("orientation", [1, 6])
def test_16bit_rgb_png_with_orientation(tmp_path: Path, orientation: int) -> None:
    a = np.zeros((3, len(VALUES16), 3), np.uint16)
    a[:, :, 0], a[:, :, 1], a[:, :, 2] = VALUES16, VALUES16[::-1], 32768
    data = np.ascontiguousarray(np.rot90(a, k=1)) if orientation == 6 else a  # 6 turns it back
    path = write_png16(tmp_path / "rgb16.png", data, exif_with(orientation).tobytes())
    img = load_image(path)
    assert img.bit_depth == 16 and img.exif_orientation == orientation and img.format == "PNG"
    assert img.pixels.shape == (3, len(VALUES16), 3)
    np.testing.assert_array_equal(img.pixels[1, :, 0], EXPECT8)  # 200 -> 1: rounded, not high byte
    np.testing.assert_array_equal(img.pixels[1, :, 1], EXPECT8[::-1])
    np.testing.assert_array_equal(img.pixels[:, :, 2], 128)


@pytest.mark.parametrize("channels", [2, 4])
def test_16bit_png_with_alpha(tmp_path: Path, channels: int) -> None:
    a = np.zeros((2, len(VALUES16), channels), np.uint16)
    a[..., 0], a[..., -1] = VALUES16, VALUES16[::-1]
    img = load_image(write_png16(tmp_path / "alpha16.png", a), background=None)
    assert img.bit_depth == 16
    np.testing.assert_array_equal(img.pixels[0, :, 0], EXPECT8)
    np.testing.assert_array_equal(img.alpha[1], EXPECT8[::-1])


@pytest.mark.parametrize("orientation", [1, 6])
def test_16bit_rgb_tiff(tmp_path: Path, orientation: int) -> None:
    a = np.zeros((3, len(VALUES16), 3), np.uint16)
    a[:, :, 0], a[:, :, 2] = VALUES16, 65535
    data = np.ascontiguousarray(np.rot90(a, k=1)) if orientation == 6 else a
    img = load_image(write_tiff16_rgb(tmp_path / "rgb16.tif", data, orientation))
    assert img.format == "TIFF" and img.bit_depth == 16 and img.exif_orientation == orientation
    assert img.pixels.shape == (3, len(VALUES16), 3)
    np.testing.assert_array_equal(img.pixels[1, :, 0], EXPECT8)
    np.testing.assert_array_equal(img.pixels[:, :, 2], 255)


def test_16bit_gray_tiff(tmp_path: Path) -> None:
    Image.fromarray(np.tile(VALUES16, (2, 1))).save(tmp_path / "g16.tif")
    img = load_image(tmp_path / "g16.tif")
    assert img.bit_depth == 16
    np.testing.assert_array_equal(img.pixels[0, :, 1], EXPECT8)


# ---------------------------------------------------------------- CMYK


@pytest.mark.parametrize(("ext", "tol"), [(".jpg", 3.0), (".tif", 1.0)])
def test_cmyk_converted_to_rgb(tmp_path: Path, ext: str, tol: float) -> None:
    ref = reference()
    Image.fromarray(ref).convert("CMYK").save(tmp_path / f"c{ext}", quality=95)
    img = load_image(tmp_path / f"c{ext}")
    assert img.original_mode == "CMYK" and img.icc_profile is None
    assert mad(img.pixels, ref) < tol
    assert np.abs(img.pixels[H // 2, W // 2].astype(int) - ref[H // 2, W // 2]).max() <= 8


# ---------------------------------------------------------------- bad files


def _assert_load_error(path: Path, *words: str) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    msg = str(info.value)
    assert str(path) in msg and info.value.path == str(path)
    for w in words:
        assert w in msg.lower()
    return info.value


def test_load_error_is_user_error() -> None:
    assert issubclass(ImageLoadError, FaceEditorError) and issubclass(ImageSaveError, FaceEditorError)


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_files_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str) -> None:
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # incompressible: data spans the file
    full = tmp_path / f"full{ext}"
    Image.fromarray(noisy).save(full)
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    _assert_load_error(cut, "truncated")
    # Even if someone switched Pillow to lenient mode globally, truncation is still an error,
    # and their setting is restored afterwards.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    _assert_load_error(cut, "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo\n" * 20)
    _assert_load_error(path, "not a recognised image")


def test_empty_missing_and_folder(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    _assert_load_error(tmp_path / "empty.png", "empty")
    _assert_load_error(tmp_path / "nope.jpg", "no such file")
    (tmp_path / "dir.png").mkdir()
    _assert_load_error(tmp_path / "dir.png", "folder")


def _png_claiming(path: Path, w: int, h: int) -> Path:
    """A tiny PNG whose IHDR claims w x h (CRC fixed), so only a header check can be fast."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_decompression_bomb_refused_fast(tmp_path: Path) -> None:
    path = _png_claiming(tmp_path / "bomb.png", 30000, 30000)
    t0 = time.perf_counter()
    _assert_load_error(path, "too large")
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pixel_limit_is_ours_and_configurable(tmp_path: Path) -> None:
    assert DEFAULT_MAX_PIXELS == 100_000_000
    path = _png_claiming(tmp_path / "big.png", 12000, 12000)  # 144 MP: under Pillow's hard limit
    t0 = time.perf_counter()
    err = _assert_load_error(path, "12000x12000", "megapixels", "limit")
    assert "100 megapixels" in str(err) and time.perf_counter() - t0 < 0.5
    small = save_image(tmp_path / "small.png", reference())
    with pytest.raises(ImageLoadError, match="limit"):
        load_image(small, max_pixels=W * H - 1)
    assert load_image(small, max_pixels=W * H).pixels.shape == (H, W, 3)
    assert load_image(small, max_pixels=None).pixels.shape == (H, W, 3)
