"""Editor sessions: photo path + fitted ``FaceState`` + edits + undo history, in one file.

A session file (``.fesession``) is a zip holding ``session.json`` (version, photo path, face
index, the history as labelled :class:`~faceeditor.edit.document.EditState` dicts and its
cursor, the photo's lighting as fitted), ``state.json`` and ``state.npz`` (the
:class:`~faceeditor.core.state.FaceState`). The photo itself is referenced, not copied. Files
are written atomically (temporary file + rename) so a crash never leaves half a session.

The editor autosaves unsaved work to :func:`autosave_path` and offers it back on the next
start; a clean exit removes it.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceeditor.core.errors import SessionError
from faceeditor.core.paths import user_dir
from faceeditor.core.state import FaceState

SESSION_VERSION = 1
SUFFIX = ".fesession"



@dataclass
class Session:
    photo_path: str
    face_index: int
    state: FaceState
    history: list[tuple[str, dict]]  # (label, EditState dict), oldest first
    position: int  # index of the current entry
    photo_light: dict | None = None
    saved_at: float = field(default_factory=time.time)

    @property
    def current_edit(self) -> dict:
        return self.history[self.position][1]


def save_session(path: str | os.PathLike[str], session: Session) -> Path:
    path = Path(path)
    meta = {"format": "faceeditor-session", "version": SESSION_VERSION, "photo_path": session.photo_path,
            "face_index": int(session.face_index), "position": int(session.position),
            "history": [{"label": label, "edit": edit} for label, edit in session.history],
            "photo_light": session.photo_light, "saved_at": session.saved_at}
    state_json, arrays = session.state.to_bytes()
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # uncompressed: autosave must be quick
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w") as z:
            z.writestr("session.json", json.dumps(meta, indent=1), zipfile.ZIP_DEFLATED)
            z.writestr("state.json", json.dumps(state_json, indent=1), zipfile.ZIP_DEFLATED)
            z.writestr("state.npz", buf.getvalue(), zipfile.ZIP_STORED)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SessionError(f"{path}: cannot write session ({exc.strerror or exc})") from exc
    return path


def load_session(path: str | os.PathLike[str]) -> Session:
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("session.json"))
            state_json = json.loads(z.read("state.json"))
            with np.load(io.BytesIO(z.read("state.npz"))) as npz:
                arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError as exc:
        raise SessionError(f"{path}: no such session file") from exc
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise SessionError(f"{path}: not a FaceEditor session ({exc})") from exc
    if meta.get("format") != "faceeditor-session":
        raise SessionError(f"{path}: not a FaceEditor session")
    if int(meta.get("version", 0)) > SESSION_VERSION:
        raise SessionError(f"{path}: made by a newer FaceEditor (session version {meta['version']})")
    history = [(str(h["label"]), dict(h["edit"])) for h in meta["history"]]
    if not history:
        raise SessionError(f"{path}: empty history")
    return Session(photo_path=str(meta["photo_path"]), face_index=int(meta.get("face_index", 0)),
                   state=FaceState.from_dict(state_json, arrays), history=history,
                   position=max(0, min(int(meta.get("position", len(history) - 1)), len(history) - 1)),
                   photo_light=meta.get("photo_light"), saved_at=float(meta.get("saved_at", 0.0)))


def autosave_path() -> Path:
    """Where unsaved work is kept between crashes: ``<user_dir>/autosave.fesession``."""
    return user_dir() / f"autosave{SUFFIX}"


def pending_autosave() -> Path | None:
    """The autosave file left by a session that did not exit cleanly, if any."""
    p = autosave_path()
    return p if p.is_file() else None


def clear_autosave() -> None:
    autosave_path().unlink(missing_ok=True)
