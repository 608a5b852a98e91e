"""Session files: every malformed ``.fesession`` is a :class:`SessionError` naming what is wrong; the
photo is stored by resolved path, pixel size and content hash and checked on load; saving is atomic."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from session_fixtures import (
    parts,
    rewrite_arrays,
    rewrite_json,
    saved_session,
    tiny_state,
    write_parts,
    write_photo,
)

from faceeditor.core.errors import SessionError
from faceeditor.io import session as session_mod
from faceeditor.io.session import load_session, save_session
from faceeditor.io.session_schema import RENDERERS


def _delete(*keys: str):
    def change(d: dict) -> None:
        target = d
        for k in keys[:-1]:
            target = target[k] if isinstance(target, dict) else target[int(k)]
        del target[keys[-1]]

    return change


def _set(value: object, *keys: str):
    def change(d: dict) -> None:
        target = d
        for k in keys[:-1]:
            target = target[k] if isinstance(target, dict) else target[int(k)]
        target[keys[-1] if isinstance(target, dict) else int(keys[-1])] = value

    return change


# (part, change, words the message must hold)
MALFORMED = {
    "session.json is a list": ("session.json", lambda d: [d], "session.json: must hold an object, not a list"),
    "history missing": ("session.json", _delete("history"), "'history' is missing"),
    "label missing": ("session.json", _delete("history", "0", "label"), "history[0].label is missing"),
    "photo_path missing": ("session.json", _delete("photo_path"), "'photo_path' is missing"),
    "version abc": ("session.json", _set("abc", "version"), "'version' must be an integer, not a string"),
    "version true": ("session.json", _set(True, "version"), "'version' must be an integer, not a boolean"),
    "version newer": ("session.json", _set(99, "version"), "newer FaceEditor (session version 99)"),
    "face_index null": ("session.json", _set(None, "face_index"), "'face_index' must be an integer, not null"),
    "face_index negative": ("session.json", _set(-1, "face_index"), "'face_index' must be 0 or more"),
    "history a dict": ("session.json", _set({}, "history"), "'history' must be a list, not an object"),
    "history empty": ("session.json", _set([], "history"), "'history' is empty"),
    "entry a string": ("session.json", _set("x", "history", "1"), "history[1] must be an object, not a string"),
    "edit missing": ("session.json", _delete("history", "2", "edit"), "history[2].edit is missing"),
    "edit a list": ("session.json", _set([1], "history", "0", "edit"), "history[0].edit must be an object"),
    "yaw a string": (
        "session.json",
        lambda d: d["history"][1]["edit"]["params"].update(yaw="12"),
        "history[1].edit.params.yaw must be a number, not a string",
    ),
    "weight null": (
        "session.json",
        lambda d: d["history"][2]["edit"]["params"]["expression"].update(mouthSmile_L=None),
        "history[2].edit.params.expression.mouthSmile_L must be a number, not null",
    ),
    "yaw NaN": (
        "session.json",
        lambda d: d["history"][1]["edit"]["params"].update(yaw=float("nan")),
        "history[1].edit.params.yaw must be a finite number",
    ),
    "renderer unknown": (
        "session.json",
        lambda d: d["history"][0]["edit"]["params"].update(renderer="crayon"),
        "history[0].edit.params.renderer 'crayon' is not one of",
    ),
    "macros a list": (
        "session.json",
        lambda d: d["history"][0]["edit"].update(macros=[1]),
        "history[0].edit.macros must be an object",
    ),
    "photo_light a list": ("session.json", _set([1, 2], "photo_light"), "'photo_light' must be an object"),
    "light sh short": (
        "session.json",
        lambda d: d["photo_light"].update(sh=[[0, 0, 0]]),
        "'photo_light'.sh must hold 9 rows",
    ),
    "position a string": ("session.json", _set("1", "position"), "'position' must be an integer"),
    "saved_at a string": ("session.json", _set("yesterday", "saved_at"), "'saved_at' must be a number"),
    "format missing": ("session.json", _delete("format"), "not a FaceEditor session"),
    "photo hash bad": ("session.json", lambda d: d["photo"].update(sha256="xyz"), "photo.sha256 is not a sha256"),
    "photo width zero": ("session.json", lambda d: d["photo"].update(width=0), "photo has no pixels (0x30)"),
    "state.json a list": ("state.json", lambda d: [d], "state.json: must hold an object, not a list"),
    "image_size missing": ("state.json", _delete("image_size"), "state.json: 'image_size' is missing"),
    "image_size short": ("state.json", _set([40], "image_size"), "'image_size' must hold 2 numbers, not 1"),
    "image_size text": ("state.json", _set(["a", 30], "image_size"), "'image_size'[0] must be a number"),
    "image_size fraction": ("state.json", _set([40.5, 30], "image_size"), "must be two positive integers"),
    "focal_px null": ("state.json", _set(None, "focal_px"), "'focal_px' must be a number, not null"),
    "focal_px negative": ("state.json", _set(-5, "focal_px"), "'focal_px' must be positive"),
    "face_box text": ("state.json", _set("box", "face_box"), "'face_box' must be a list, not a string"),
    "fit_info a list": ("state.json", _set([], "fit_info"), "'fit_info' must be an object"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_session_names_what_is_wrong(tmp_path, case) -> None:
    part, change, words = MALFORMED[case]
    path = rewrite_json(saved_session(tmp_path), part, change)
    with pytest.raises(SessionError) as err:
        load_session(path)
    assert str(err.value).startswith(f"{path}: ")
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda a: a.pop("rotation"), "state.npz: rotation is missing"),
        (lambda a: a.update(rotation=np.eye(4)), "rotation has shape (4, 4), expected 3 x 3"),
        (lambda a: a.update(sh=np.full((9, 3), np.inf)), "sh holds NaN or infinity"),
        (lambda a: a.update(identity=np.array(["a", "b"])), "identity must be numeric"),
        (lambda a: a.update(texture=np.zeros((4, 8))), "texture has shape (4, 8), expected N x N x 3"),
        (lambda a: a.update(noise_x=np.zeros(3)), "noise_x is not a noise map name"),
    ],
)
def test_malformed_state_arrays_are_named(tmp_path, change, words) -> None:
    path = rewrite_arrays(saved_session(tmp_path), change)
    with pytest.raises(SessionError, match="state.npz") as err:
        load_session(path)
    assert words in str(err.value)


def test_a_damaged_archive_is_a_session_error(tmp_path) -> None:
    good = saved_session(tmp_path)
    files = parts(good)
    cases = {
        "no session.json": {k: v for k, v in files.items() if k != "session.json"},
        "json cut short": {**files, "session.json": files["session.json"][:40]},
        "json nested deep": {**files, "session.json": b"[" * 100_000 + b"]" * 100_000},
        "not utf-8": {**files, "state.json": b"\xff\xfe{}"},
        "npz garbage": {**files, "state.npz": b"PK\x03\x04 nonsense"},
        "npy not npz": {
            **files,
            "state.npz": b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, "
            b"'shape': (1,), }" + b" " * 69 + b"\n" + bytes(8),
        },
    }
    for name, content in cases.items():
        path = write_parts(tmp_path / f"{name}.fesession", content)
        with pytest.raises(SessionError) as err:
            load_session(path)
        assert str(err.value).startswith(str(path)), name
    folder = tmp_path / "folder.fesession"
    folder.mkdir()
    with pytest.raises(SessionError, match="folder"):
        load_session(folder)


# --------------------------------------------------------------------------- the photo
def _meta(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("session.json"))


def test_the_photo_is_stored_resolved_with_its_size_and_hash(tmp_path, monkeypatch) -> None:
    (tmp_path / "pics").mkdir()
    photo = write_photo(tmp_path / "pics" / "me.png", size=(40, 30))
    os.symlink(tmp_path / "pics", tmp_path / "link")
    monkeypatch.chdir(tmp_path)
    path = saved_session(tmp_path, Path("link") / "me.png")  # relative, through a symlink
    meta = _meta(path)
    assert meta["photo_path"] == str(photo.resolve())
    assert meta["photo"] == {
        "path": str(photo.resolve()),
        "width": 40,
        "height": 30,
        "sha256": hashlib.sha256(photo.read_bytes()).hexdigest(),
    }
    s = load_session(path)
    assert s.photo_path == str(photo.resolve()) and s.photo is not None and s.photo.width == 40
    assert s.position == 1 and [label for label, _ in s.history] == ["Open", "Yaw", "Smile"]


def test_the_stored_size_is_upright(tmp_path) -> None:
    photo = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers turn it by 90 degrees
    Image.new("RGB", (40, 30), (90, 120, 150)).save(photo, exif=exif.tobytes())
    meta = _meta(saved_session(tmp_path, photo))
    assert (meta["photo"]["width"], meta["photo"]["height"]) == (30, 40)


def test_a_replaced_photo_is_refused(tmp_path) -> None:
    photo = write_photo(tmp_path / "photo.png", seed=1, size=(40, 30))
    path = saved_session(tmp_path, photo)
    write_photo(photo, seed=2, size=(64, 48))  # another picture under the same name
    with pytest.raises(SessionError) as err:
        load_session(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and str(photo) in msg and "replaced by a different image" in msg
    assert "now 64x48" in msg and "40x30" in msg
    write_photo(photo, seed=3, size=(40, 30))  # same size, other pixels
    with pytest.raises(SessionError, match="replaced by a different image"):
        load_session(path)
    assert load_session(path, check=False).photo_path == str(photo)  # the caller may choose to look anyway
    photo.unlink()
    with pytest.raises(SessionError, match="photo .* is missing"):
        load_session(path)


def test_an_unchanged_photo_loads(tmp_path) -> None:
    photo = write_photo(tmp_path / "photo.png")
    path = saved_session(tmp_path, photo)
    os.utime(photo, (0, 0))  # touching it is not changing it
    assert load_session(path).photo.sha256 == hashlib.sha256(photo.read_bytes()).hexdigest()


def test_old_sessions_without_a_photo_hash_still_load(tmp_path) -> None:
    photo = write_photo(tmp_path / "photo.png")
    path = saved_session(tmp_path, photo)

    def old(d: dict) -> None:  # as version 1 wrote it before the photo check: no "photo", path as given
        del d["photo"]
        d["photo_path"] = "photo.png"

    rewrite_json(path, "session.json", old)
    write_photo(photo, seed=5)  # even a changed photo: there is nothing to check it against
    s = load_session(path)
    assert s.photo is None and s.photo_path == "photo.png" and len(s.history) == 3


def test_a_session_without_a_readable_photo_still_saves(tmp_path) -> None:
    path = saved_session(tmp_path, tmp_path / "gone.png")
    meta = _meta(path)
    assert meta["photo"] is None and meta["photo_path"] == str(tmp_path / "gone.png")
    assert load_session(path).photo is None


@pytest.mark.parametrize("photo", ["/dev/zero", "bad\x00name.png", "."])
def test_a_photo_path_that_is_not_a_file_is_refused_without_hanging(tmp_path, photo) -> None:
    path = rewrite_json(saved_session(tmp_path), "session.json", _set(photo, "photo_path"))
    with pytest.raises(SessionError, match="photo"):  # /dev/zero was hashed forever; a NUL raised ValueError
        load_session(path)


# --------------------------------------------------------------------------- saving
def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_save_is_atomic_and_fsynced(tmp_path, monkeypatch) -> None:
    path = saved_session(tmp_path)
    before = path.read_bytes()
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    s = load_session(path)
    save_session(path, s)
    assert synced and not _temps(tmp_path)

    def boom(*a, **k):
        raise RuntimeError("simulated crash while writing")

    monkeypatch.setattr(session_mod.zipfile.ZipFile, "writestr", boom)
    with pytest.raises(RuntimeError):  # not an OSError: the temp file must still go
        save_session(path, s)
    assert not _temps(tmp_path) and path.read_bytes() != b"" and load_session(path).position == 1
    monkeypatch.undo()
    assert path.read_bytes()[:4] == before[:4]


def test_save_errors_are_session_errors(tmp_path) -> None:
    s = load_session(saved_session(tmp_path))
    with pytest.raises(SessionError, match="cannot write session"):
        save_session(tmp_path / "no" / "such" / "x.fesession", s)
    s.history[0] = ("Bad", {"params": {"yaw": float("nan")}, "macros": {}})
    with pytest.raises(SessionError, match="cannot write session"):
        save_session(tmp_path / "nan.fesession", s)
    assert not _temps(tmp_path) and not (tmp_path / "nan.fesession").exists()


def test_the_schema_knows_the_renderers() -> None:
    from faceeditor.edit.params import RENDERER_ALIASES, RENDERERS as EDIT_RENDERERS

    assert RENDERERS == EDIT_RENDERERS + tuple(RENDERER_ALIASES)
    assert tiny_state().image_size == (40, 30)


def test_the_personal_model_travels_in_the_session_unparsed(tmp_path) -> None:
    path = saved_session(tmp_path)
    session = load_session(path)
    assert session.personal is None  # none fitted
    files = {"personal.json": b'{"kind": "faceeditor-personal"}', "personal.pt": bytes(range(256)) * 10}
    session.personal = files
    save_session(path, session)
    again = load_session(path)
    assert again.personal == files
    assert again.history == session.history and again.position == session.position
    with zipfile.ZipFile(path, "a") as z:  # only the model's own folder level is read
        z.writestr("personal/../escape.pt", b"x")
        z.writestr("personal/sub/deep.pt", b"x")
    assert load_session(path).personal == files
