"""Fuzzers for files: damaged images (decode or :class:`ImageLoadError` naming the file) and malformed
sessions (:class:`SessionError` naming the file, or a session that is fully usable)."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
from mutate import mutate_bytes, mutate_json
from PIL import Image
from session_fixtures import parts, saved_session, write_parts, write_photo
from tally import Tally, run_case

from faceeditor.core.errors import ImageLoadError, SessionError
from faceeditor.edit.document import EditState
from faceeditor.edit.limits import clamp_edit
from faceeditor.io import load_image
from faceeditor.io.session import load_session


# --------------------------------------------------------------------------- images
def _picture(rng: random.Random) -> np.ndarray:
    """A small smooth picture with some noise (so that JPEG has work to do)."""
    w, h = rng.randint(1, 40), rng.randint(1, 30)
    x, y = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))
    base = np.dstack([x * 200 + 20, y * 180 + 30, (1 - x) * 150 + 50])
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 12, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _encode(rng: random.Random, rgb: np.ndarray) -> tuple[str, bytes, bool]:
    """(extension, file bytes, whether it decodes to exactly ``rgb``) in a random JPEG or PNG flavour."""
    im = Image.fromarray(rgb)
    buf = io.BytesIO()
    kind = rng.randrange(6)
    if kind == 0:
        im.save(buf, "JPEG", quality=rng.choice([40, 75, 95]))
    elif kind == 1:
        exif = Image.Exif()
        exif[0x0112] = rng.randint(1, 8)
        im.save(buf, "JPEG", quality=85, progressive=True, exif=exif.tobytes())
    elif kind == 2:
        im.save(buf, "PNG")
    elif kind == 3:
        im.putalpha(128)
        im.save(buf, "PNG")
    elif kind == 4:
        im.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(buf, "PNG")
    else:
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(buf, "PNG")  # 16-bit grey
    return (".jpg" if kind < 2 else ".png"), buf.getvalue(), kind == 2


def _check_decoded(path: Path, img) -> None:
    px = img.pixels
    assert px.dtype == np.uint8 and px.ndim == 3 and px.shape[2] == 3, f"{path}: pixels {px.dtype} {px.shape}"
    assert px.flags.c_contiguous and px.shape[0] > 0 and px.shape[1] > 0, f"{path}: pixels not usable"


def _image_case(path: Path, data: bytes, damaged: bytes, original: np.ndarray | None) -> str:
    """``original``: the pixels the intact file holds exactly (plain RGB PNG), else None. A file cut
    to less than half is missing image data: it must be refused, not decoded in part."""
    path.write_bytes(damaged)
    try:
        img = load_image(path)
    except ImageLoadError as err:
        assert err.path == str(path) and str(err).startswith(f"{path}: "), f"error does not name the file: {err}"
        assert damaged or "empty" in str(err), f"an empty file gave {err}"
        assert damaged != data, f"the intact file was refused: {err}"
        return "ImageLoadError"
    _check_decoded(path, img)
    assert damaged, "an empty file decoded"
    assert not (data.startswith(damaged) and len(damaged) < len(data) // 2), "a file cut in half decoded"
    if damaged == data and original is not None:  # the control: exactly the picture
        assert np.array_equal(img.pixels, original), "the intact PNG decoded to other pixels"
    return "decoded"


def fuzz_images(n: int, seed: int, folder: Path) -> Tally:
    """``n`` damaged JPEG/PNG files made here from numpy arrays, decoded by :func:`load_image`."""
    rng = random.Random(seed)
    bases = []
    for _ in range(24):
        rgb = _picture(rng)
        bases.append((rgb, *_encode(rng, rgb)))
    tally = Tally("images")
    for i in range(n):
        rgb, ext, data, exact = rng.choice(bases)
        damaged, how = (data, "intact") if rng.random() < 0.03 else mutate_bytes(rng, data)
        path = folder / f"case{i % 50}{ext}"
        run_case(
            tally,
            f"#{i} ({how} {ext}, {len(damaged)}/{len(data)} bytes)",
            _image_case,
            path,
            data,
            damaged,
            rgb if exact else None,
        )
    return tally


# --------------------------------------------------------------------------- sessions
NAN = float("nan")
NOT_INT = [None, "1", 1.5, [], {}, True, NAN]
NOT_STR = [None, 1, 2.5, [], {}, False]
NOT_LIST = [None, "x", 3, {}, True]
NOT_OBJECT = [None, "x", 3, [], [1]]
NOT_NUMBER = [None, "x", [], {}, True, NAN, float("inf"), -float("inf"), 10**400]

# (part, path into the JSON, values that must be refused, words the SessionError must hold)
TARGETS = [
    ("session.json", ("face_index",), NOT_INT + [-1, -7], "'face_index'"),
    ("session.json", ("version",), NOT_INT + [0, -1], "'version'"),
    ("session.json", ("position",), NOT_INT, "'position'"),
    ("session.json", ("photo_path",), NOT_STR + [""], "'photo_path'"),
    ("session.json", ("history",), NOT_LIST + [[]], "'history'"),
    ("session.json", ("history", 1), NOT_OBJECT, "history[1]"),
    ("session.json", ("history", 0, "label"), NOT_STR, "history[0].label"),
    ("session.json", ("history", 2, "edit"), NOT_OBJECT, "history[2].edit"),
    ("session.json", ("history", 1, "edit", "params", "yaw"), NOT_NUMBER, "history[1].edit.params.yaw"),
    (
        "session.json",
        ("history", 2, "edit", "params", "expression", "mouthSmile_L"),
        NOT_NUMBER,
        "history[2].edit.params.expression.mouthSmile_L",
    ),
    ("session.json", ("photo_light", "azimuth"), NOT_NUMBER, "'photo_light'.azimuth"),
    ("session.json", ("saved_at",), NOT_NUMBER, "'saved_at'"),
    ("state.json", ("image_size",), NOT_LIST + [[1], [0, 5], [1.5, 2]], "'image_size'"),
    ("state.json", ("face_box",), NOT_LIST + [[1, 2, 3]], "'face_box'"),
    ("state.json", ("focal_px",), NOT_NUMBER + [0, -3.0], "'focal_px'"),
]


def _set(doc: object, path: tuple, value: object) -> None:
    for k in path[:-1]:
        doc = doc[k]  # type: ignore[index]
    doc[path[-1]] = value  # type: ignore[index]


def _check_loaded(s) -> None:
    """A session that loads must be usable as it is: the window restores it without another check."""
    assert isinstance(s.face_index, int) and s.face_index >= 0 and isinstance(s.photo_path, str)
    assert s.history and 0 <= s.position < len(s.history)
    assert s.state.rotation.shape == (3, 3) and s.state.sh.shape == (9, 3)
    for label, edit in s.history:
        assert isinstance(label, str)
        clamp_edit(EditState.from_dict(edit).params)  # must not raise


def _session_case(path: Path, files: dict[str, bytes] | bytes, expect: str | None) -> str:
    if isinstance(files, bytes):
        path.write_bytes(files)
    else:
        write_parts(path, files)
    try:
        s = load_session(path)
    except SessionError as err:
        assert str(err).startswith(f"{path}: "), f"error does not name the file: {err}"
        assert expect is None or expect in str(err), f"expected {expect!r} in: {err}"
        return "SessionError"
    assert expect is None, f"loaded, but {expect} was malformed"
    _check_loaded(s)
    return "loaded"


def _session_files(
    rng: random.Random, good: dict[str, bytes], docs: dict, good_zip: bytes
) -> tuple[dict[str, bytes] | bytes, str | None, str]:
    """(the parts of a malformed session or its damaged bytes, words its error must hold or None when
    unknown, what was done)."""
    files = dict(good)
    mode = rng.random()
    if mode < 0.3:  # a known field given a value it may not take
        part, where, bad, words = rng.choice(TARGETS)
        doc = json.loads(good[part])
        value = rng.choice(bad)
        _set(doc, where, value)
        files[part] = json.dumps(doc).encode()
        return files, words, f"{part} {where} = {value!r}"
    if mode < 0.9:  # random structure mutations
        part = "session.json" if mode < 0.65 else "state.json"
        n = rng.randint(1, 3)
        files[part] = json.dumps(mutate_json(rng, docs[part], n)).encode()
        return files, None, f"{part}: {n} mutation(s)"
    damaged, how = mutate_bytes(rng, good_zip)
    return damaged, None, f"zip {how}"


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    write_parts(buf, files)  # type: ignore[arg-type]
    return buf.getvalue()


def fuzz_sessions(n: int, seed: int, folder: Path) -> Tally:
    """``n`` malformed ``.fesession`` files: known fields spoiled, random JSON mutations, damaged zips."""
    rng = random.Random(seed)
    photo = write_photo(folder / "photo.png")
    good = parts(saved_session(folder, photo))
    docs = {k: json.loads(good[k]) for k in ("session.json", "state.json")}
    good_zip = _zip_bytes(good)
    tally = Tally("sessions")
    path = folder / "case.fesession"
    for i in range(n):
        files, expect, how = _session_files(rng, good, docs, good_zip)
        run_case(tally, f"#{i} ({how})", _session_case, path, files, expect)
    return tally
