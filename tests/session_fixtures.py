"""Small sessions for the session tests and the session fuzz: a photo, a fitted state, a saved
``.fesession``, and a way to rewrite one part of a saved file."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from faceeditor.core.state import FaceState
from faceeditor.io.session import Session, save_session


def tiny_state(w: int = 40, h: int = 30) -> FaceState:
    return FaceState(
        image_size=(w, h),
        face_box=(5.0, 5.0, 30.0, 25.0),
        rotation=np.eye(3, dtype=np.float32),
        translation=np.array([0, 0, -60], np.float32),
        focal_px=50.0,
        identity=np.zeros(100, np.float32),
        expression=np.zeros(53, np.float32),
        sh=np.zeros((9, 3), np.float32),
        texture=np.full((4, 8, 3), 128, np.uint8),
    )


def edit_dict(yaw: float = 0.0, smile: float | None = None) -> dict:
    expr = {} if smile is None else {"mouthSmile_L": smile}
    params = {"yaw": yaw, "pitch": 0.0, "roll": 0.0, "expression": expr, "light": None, "renderer": "mesh"}
    return {"params": params, "macros": {}}


def write_photo(path: Path, seed: int = 0, size: tuple[int, int] = (40, 30)) -> Path:
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def saved_session(folder: Path, photo: Path | None = None) -> Path:
    """A session with three history entries (cursor on the second) on ``photo`` (made if None)."""
    photo = photo or write_photo(folder / "photo.png")
    history = [("Open", edit_dict()), ("Yaw", edit_dict(yaw=12.0)), ("Smile", edit_dict(12.0, 0.4))]
    session = Session(
        photo_path=str(photo),
        face_index=0,
        state=tiny_state(),
        history=history,
        position=1,
        photo_light={
            "azimuth": 10.0,
            "elevation": 5.0,
            "intensity": 0.6,
            "ambient": 0.3,
            "temperature": 6000.0,
            "sh": None,
        },
    )
    return save_session(folder / "s.fesession", session)


def parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def write_parts(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def rewrite_json(path: Path, part: str, change: Callable[[object], object], out: Path | None = None) -> Path:
    """A copy of session ``path`` (or ``path`` itself) with ``part`` (a JSON member) replaced by
    ``change(old)``; ``change`` may edit in place and return None."""
    files = parts(path)
    doc = json.loads(files[part])
    new = change(doc)
    files[part] = json.dumps(doc if new is None else new).encode()
    return write_parts(out or path, files)


def rewrite_arrays(path: Path, change: Callable[[dict[str, np.ndarray]], None]) -> Path:
    files = parts(path)
    with np.load(io.BytesIO(files["state.npz"])) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    files["state.npz"] = buf.getvalue()
    return write_parts(path, files)
