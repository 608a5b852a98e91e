"""faceeditor.io: loading (formats, orientation, modes, 16-bit, CMYK, bad files), saving, tensors.

All fixture images are generated here in tmp_path; they are tiny, so the whole file runs in ~1 s.
"""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageFile, ImageOps

from faceeditor.cli import UserError
from faceeditor.io import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    ImageSaveError,
    LoadedImage,
    load_image,
    load_rgb,
    save_image,
    to_tensor,
    to_uint8,
)

W, H = 32, 24


# ---------------------------------------------------------------- fixture builders


def reference(w: int = W, h: int = H) -> np.ndarray:
    """Smooth, asymmetric RGB image: R rises along x, G along y, so all 8 flips/turns differ."""
    x = np.arange(w)[None, :].repeat(h, 0)
    y = np.arange(h)[:, None].repeat(w, 1)
    return np.dstack([20 + x * 6, 30 + y * 8, 200 - (x + y) * 2]).astype(np.uint8)


def sRGB_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def write_png16(path: Path, a: np.ndarray, exif: bytes | None = None) -> Path:
    """Minimal 16-bit PNG writer (gray, gray+alpha, RGB, RGBA), optional eXIf chunk."""
    h, w = a.shape[:2]
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[1 if a.ndim == 2 else a.shape[2]]
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))
    chunks = [_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))]
    if exif:
        chunks.append(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    chunks += [_chunk(b"IDAT", zlib.compress(raw)), _chunk(b"IEND", b"")]
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(chunks))
    return path


def write_tiff16_rgb(path: Path, a: np.ndarray, orientation: int = 1) -> Path:
    """Minimal uncompressed little-endian 16-bit RGB TIFF writer with an Orientation tag."""
    h, w, _ = a.shape
    data = a.astype("<u2").tobytes()
    n = 11
    bps_off = 8 + 2 + 12 * n + 4
    data_off = bps_off + 6
    tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, bps_off), (259, 3, 1, 1), (262, 3, 1, 2),
            (273, 4, 1, data_off), (274, 3, 1, orientation), (277, 3, 1, 3), (278, 3, 1, h),
            (279, 4, 1, len(data)), (284, 3, 1, 1)]
    ifd = struct.pack("<H", n)
    for tag, typ, count, val in tags:
        packed = struct.pack("<HH", val, 0) if typ == 3 and count == 1 else struct.pack("<I", val)
        ifd += struct.pack("<HHI", tag, typ, count) + packed
    body = b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    path.write_bytes(body + struct.pack("<HHH", 16, 16, 16) + data)
    return path


def exif_with(orientation: int | None = None, make: str | None = None) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if make is not None:
        exif[0x010F] = make
    return exif


# Transpose that stores an upright image so that EXIF orientation o turns it back upright.
STORE_FOR = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def stored(ref: np.ndarray, orientation: int) -> Image.Image:
    im = Image.fromarray(ref)
    method = STORE_FOR[orientation]
    return im if method is None else im.transpose(method)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


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
    assert issubclass(ImageLoadError, UserError) and issubclass(ImageSaveError, UserError)


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
