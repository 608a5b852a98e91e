"""Editor sessions: photo path + fitted ``FaceState`` + edits + undo history, in one file.

A session file (``.fesession``) is a zip holding ``session.json`` (version, photo path, face
index, the history as labelled :class:`~faceeditor.edit.document.EditState` dicts and its
cursor, the photo's lighting as fitted), ``state.json`` and ``state.npz`` (the
:class:`~faceeditor.core.state.FaceState`), and, when one was fitted, the photo's Personal
renderer model (``personal/<file>``: its folder's files as bytes, read back unparsed; the
renderer menu reuses it instead of fitting again). The photo itself is referenced, not copied. Files
are written atomically (temporary file, fsync, rename) so a crash never leaves half a session.
Every field is checked on load (:mod:`faceeditor.io.session_schema`): a malformed file gives a
:class:`SessionError` naming what is wrong. The photo's resolved path, pixel size and content hash
are stored; a session whose photo was since replaced by another image is refused.

The editor autosaves unsaved work to :func:`autosave_path` and offers it back on the next
start; a clean exit removes it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from faceeditor.core.atomic import atomic_write
from faceeditor.core.errors import SessionError
from faceeditor.core.paths import user_dir
from faceeditor.core.state import FaceState
from faceeditor.io._meta import orientation, read_exif
from faceeditor.io.session_schema import SESSION_FORMAT, SESSION_VERSION, PhotoRef, SessionMeta, check_state

__all__ = [
    "SESSION_VERSION",
    "SUFFIX",
    "PhotoRef",
    "Session",
    "SessionError",
    "autosave_path",
    "clear_autosave",
    "file_key",
    "load_session",
    "pending_autosave",
    "photo_ref",
    "save_session",
]

SUFFIX = ".fesession"
MAX_JSON_BYTES = 64 << 20  # session.json / state.json larger than this are not a session
MAX_NPZ_BYTES = 1 << 30
MAX_PERSONAL_BYTES = 256 << 20  # one file of the Personal model
PERSONAL_DIR = "personal/"
# what reading a damaged zip, JSON or npz can raise besides OSError and ValueError
_READ_ERRORS = (
    OSError,
    KeyError,
    ValueError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    RecursionError,
    zlib.error,
    zipfile.BadZipFile,
)


@dataclass
class Session:
    photo_path: str
    face_index: int
    state: FaceState
    history: list[tuple[str, dict]]  # (label, EditState dict), oldest first
    position: int  # index of the current entry
    photo_light: dict | None = None
    saved_at: float = field(default_factory=time.time)
    photo: PhotoRef | None = None  # the photo as it was when saved (None: an old session, or no photo file)
    personal: dict[str, bytes] | None = None  # the Personal model's files by name (None: none fitted)

    @property
    def current_edit(self) -> dict:
        return self.history[self.position][1]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _pixel_size(path: Path) -> tuple[int, int]:
    """(width, height) of the upright image, from the header alone (EXIF orientation 5..8 swaps them)."""
    with Image.open(path) as im:
        w, h = im.size
        return (h, w) if orientation(read_exif(im)) >= 5 else (w, h)


def photo_ref(photo_path: str | os.PathLike[str]) -> PhotoRef | None:
    """The photo's absolute resolved path, upright pixel size and sha256; None when it cannot be read."""
    p = Path(photo_path).resolve()
    try:
        w, h = _pixel_size(p)
        return PhotoRef(str(p), int(w), int(h), _sha256(p))
    except Exception:  # noqa: BLE001 - no file or not an image: the session just cannot check it later
        return None


def file_key(photo_path: str | os.PathLike[str]) -> tuple[str, int, int] | None:
    """(resolved path, size, modification time in ns) of a file, None when it cannot be read: while
    it is unchanged, so is the file's :func:`photo_ref` (which reads and hashes the whole file)."""
    try:
        p = Path(photo_path).resolve()
        st = p.stat()
    except (OSError, RuntimeError):
        return None
    return str(p), int(st.st_size), int(st.st_mtime_ns)


def save_session(path: str | os.PathLike[str], session: Session) -> Path:
    """Write ``session`` to ``path`` atomically (temp file, fsync, rename; the temp file is removed
    on any failure). The photo is referenced by its resolved path, pixel size and content hash:
    ``session.photo`` when the caller has it (autosaves, every few seconds while editing), else
    read from the file."""
    path = Path(path)
    ref = session.photo if session.photo is not None else photo_ref(session.photo_path)
    meta = {
        "format": SESSION_FORMAT,
        "version": SESSION_VERSION,
        "photo_path": ref.path if ref is not None else str(Path(session.photo_path).absolute()),
        "face_index": int(session.face_index),
        "position": int(session.position),
        "history": [{"label": label, "edit": edit} for label, edit in session.history],
        "photo_light": session.photo_light,
        "saved_at": session.saved_at,
        "photo": None if ref is None else ref.to_dict(),
    }
    state_json, arrays = session.state.to_bytes()
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # uncompressed: autosave must be quick

    def write(f) -> None:
        with zipfile.ZipFile(f, "w") as z:
            z.writestr("session.json", json.dumps(meta, indent=1, allow_nan=False), zipfile.ZIP_DEFLATED)
            z.writestr("state.json", json.dumps(state_json, indent=1), zipfile.ZIP_DEFLATED)
            z.writestr("state.npz", buf.getvalue(), zipfile.ZIP_STORED)
            for name, data in (session.personal or {}).items():
                z.writestr(PERSONAL_DIR + name, data, zipfile.ZIP_STORED)

    try:
        atomic_write(path, write)
    except OSError as exc:
        raise SessionError(f"{path}: cannot write session ({exc.strerror or exc})") from exc
    except ValueError as exc:  # NaN/inf in an edit: the file would not be JSON
        raise SessionError(f"{path}: cannot write session ({exc})") from exc
    return path


def _member(z: zipfile.ZipFile, name: str, limit: int) -> bytes:
    info = z.getinfo(name)
    if info.file_size > limit:
        raise ValueError(f"{name} is {info.file_size} bytes, more than a session holds")
    return z.read(info)


def _read(path: Path) -> tuple[object, object, dict[str, np.ndarray], dict[str, bytes] | None]:
    """(session.json, state.json, state.npz arrays, Personal model files or None) as stored, or
    SessionError for an unreadable file."""
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.startswith(PERSONAL_DIR) and "/" not in n[len(PERSONAL_DIR):]]
            personal = {n[len(PERSONAL_DIR):]: _member(z, n, MAX_PERSONAL_BYTES) for n in names} or None
            meta = json.loads(_member(z, "session.json", MAX_JSON_BYTES))
            state_json = json.loads(_member(z, "state.json", MAX_JSON_BYTES))
            npz = np.load(io.BytesIO(_member(z, "state.npz", MAX_NPZ_BYTES)))
            if not isinstance(npz, np.lib.npyio.NpzFile):  # a bare .npy instead of an .npz
                raise SessionError(f"{path}: state.npz is not an archive of arrays")
            with npz:
                arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError as exc:
        raise SessionError(f"{path}: no such session file") from exc
    except IsADirectoryError as exc:
        raise SessionError(f"{path}: is a folder, not a session file") from exc
    except KeyError as exc:
        raise SessionError(f"{path}: not a FaceEditor session ({exc.args[0] if exc.args else exc})") from exc
    except _READ_ERRORS as exc:
        raise SessionError(f"{path}: not a FaceEditor session ({type(exc).__name__}: {exc})") from exc
    return meta, state_json, arrays, personal


def check_photo(path: Path, meta: SessionMeta) -> None:
    """SessionError when the photo the session was saved with is gone or was replaced by another
    image (sessions from before the check carry no :class:`PhotoRef` and are not checked)."""
    ref = meta.photo
    if ref is None:
        return
    photo = Path(meta.photo_path)
    try:
        if photo.exists() and not photo.is_file():  # a folder, a device, a pipe: nothing to hash (or no end)
            raise SessionError(f"{path}: the session's photo {photo} is not a file")
        digest = _sha256(photo)
    except FileNotFoundError:
        raise SessionError(f"{path}: the session's photo {photo} is missing (moved or deleted)") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise SessionError(
            f"{path}: cannot read the session's photo {photo} ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    if digest == ref.sha256:
        return
    try:
        w, h = _pixel_size(photo)
        now = f"now {w}x{h}"
    except Exception:  # noqa: BLE001 - not an image any more
        now = "now not a readable image"
    raise SessionError(
        f"{path}: the session's photo {photo} was replaced by a different image "
        f"({now}, content hash differs; the session was made on a {ref.width}x{ref.height} image)"
    )


def load_session(path: str | os.PathLike[str], check: bool = True) -> Session:
    """Read and check a session; any malformed file or (``check``) a replaced photo -> SessionError."""
    path = Path(path)
    raw_meta, raw_state, arrays, personal = _read(path)
    meta = SessionMeta.parse(raw_meta, str(path))
    state_json = check_state(raw_state, arrays, str(path))
    try:
        state = FaceState.from_dict(state_json, arrays)
    except (KeyError, TypeError, ValueError) as exc:  # what the checks above did not foresee
        raise SessionError(f"{path}: state.json: not a fitted face ({type(exc).__name__}: {exc})") from exc
    if check:
        check_photo(path, meta)
    return Session(
        photo_path=meta.photo_path,
        face_index=meta.face_index,
        state=state,
        history=meta.history,
        position=meta.position,
        photo_light=meta.photo_light,
        saved_at=meta.saved_at,
        photo=meta.photo,
        personal=personal,
    )


def autosave_path() -> Path:
    """Where unsaved work is kept between crashes: ``<user_dir>/autosave.fesession``."""
    return user_dir() / f"autosave{SUFFIX}"


def pending_autosave() -> Path | None:
    """The autosave file left by a session that did not exit cleanly, if any."""
    p = autosave_path()
    return p if p.is_file() else None


def clear_autosave() -> None:
    autosave_path().unlink(missing_ok=True)
