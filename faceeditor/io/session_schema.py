"""The shape of a session file, checked field by field: any malformed ``.fesession`` gives one
:class:`~faceeditor.core.errors.SessionError` naming the file, the part and the field.

``session.json`` becomes a :class:`SessionMeta`, ``state.json`` + ``state.npz`` are checked by
:func:`check_state` before :meth:`FaceState.from_dict` sees them. Only types and shapes are
checked here; edit values are brought into range where edits are applied
(:mod:`faceeditor.edit.limits`). Unknown keys are ignored (a later version may add some).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceeditor.core.errors import SessionError

SESSION_FORMAT = "faceeditor-session"
SESSION_VERSION = 1
RENDERERS = ("mesh", "neural", "gar", "personal", "photo-neural")  # faceeditor.edit.params.RENDERERS + its aliases
LIGHT_NUMBERS = ("azimuth", "elevation", "intensity", "ambient", "temperature")
_MISSING = object()
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Where:
    """Which file and which part of it a check is about (for the error message)."""

    file: str
    part: str

    def error(self, field: str, problem: str) -> SessionError:
        return SessionError(
            f"{self.file}: {self.part}: {field} {problem}" if field else f"{self.file}: {self.part}: {problem}"
        )


def _kind(value: object) -> str:
    """The JSON name of a value's type (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _typed(value: object, kind: str, at: Where, name: str) -> Any:
    """``value`` when it is of ``kind`` (int, number, str, list, object), else a SessionError."""
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "list": isinstance(value, list),
        "object": isinstance(value, dict),
    }[kind]
    if not ok:
        words = {"int": "an integer", "number": "a number", "str": "a string", "list": "a list", "object": "an object"}
        raise at.error(name, f"must be {words[kind]}, not {_kind(value)}")
    if kind == "number":
        try:
            finite = math.isfinite(value)  # type: ignore[arg-type]
        except OverflowError:  # an integer too large for a float
            finite = False
        if not finite:
            raise at.error(name, f"must be a finite number, not {value if isinstance(value, float) else 'huge'}")
    return value


def need(
    d: dict, key: str, kind: str, at: Where, prefix: str = "", default: object = _MISSING, nullable: bool = False
) -> Any:
    """``d[key]`` checked to be of ``kind`` (``default`` when absent; required without one)."""
    name = f"{prefix}{key!r}" if not prefix else f"{prefix}.{key}"
    if key not in d:
        if default is _MISSING:
            raise at.error(name, "is missing")
        return default
    value = d[key]
    if value is None and nullable:
        return None
    return _typed(value, kind, at, name)


def numbers(value: object, count: int, at: Where, name: str) -> list[float]:
    """A list of exactly ``count`` finite numbers."""
    items = _typed(value, "list", at, name)
    if len(items) != count:
        raise at.error(name, f"must hold {count} numbers, not {len(items)}")
    return [_typed(v, "number", at, f"{name}[{i}]") for i, v in enumerate(items)]


def number_map(value: object, at: Where, name: str) -> dict[str, float]:
    """An object of name -> finite number (None counts as empty)."""
    if value is None:
        return {}
    items = _typed(value, "object", at, name)
    return {k: _typed(v, "number", at, f"{name}.{k}") for k, v in items.items()}


def check_light(value: object, at: Where, name: str) -> dict | None:
    """None or a light object: numbers for the controls, ``sh`` None or 9 x 3 numbers."""
    if value is None:
        return None
    d = _typed(value, "object", at, name)
    for key in LIGHT_NUMBERS:
        need(d, key, "number", at, name, default=0.0)
    sh = d.get("sh")
    if sh is not None:
        rows = _typed(sh, "list", at, f"{name}.sh")
        if len(rows) != 9:
            raise at.error(f"{name}.sh", f"must hold 9 rows, not {len(rows)}")
        for i, row in enumerate(rows):
            numbers(row, 3, at, f"{name}.sh[{i}]")
    return d


def check_edit(value: object, at: Where, name: str) -> dict:
    """One history entry's edit: ``{"params": EditParams dict, "macros": {name: strength}}``."""
    d = _typed(value, "object", at, name)
    params = d.get("params")
    if params is not None:
        p = _typed(params, "object", at, f"{name}.params")
        for axis in ("yaw", "pitch", "roll"):
            need(p, axis, "number", at, f"{name}.params", default=0.0)
        number_map(p.get("expression"), at, f"{name}.params.expression")
        check_light(p.get("light"), at, f"{name}.params.light")
        renderer = need(p, "renderer", "str", at, f"{name}.params", default="mesh")
        if renderer not in RENDERERS:
            raise at.error(f"{name}.params.renderer", f"{renderer!r} is not one of {', '.join(RENDERERS)}")
    number_map(d.get("macros"), at, f"{name}.macros")
    return d


@dataclass(frozen=True)
class PhotoRef:
    """The photo a session was saved with: absolute resolved path, upright pixel size, sha256 of the bytes."""

    path: str
    width: int
    height: int
    sha256: str

    def to_dict(self) -> dict:
        return {"path": self.path, "width": self.width, "height": self.height, "sha256": self.sha256}

    @classmethod
    def parse(cls, value: object, at: Where) -> PhotoRef | None:
        if value is None:
            return None
        d = _typed(value, "object", at, "'photo'")
        ref = cls(
            need(d, "path", "str", at, "photo"),
            need(d, "width", "int", at, "photo"),
            need(d, "height", "int", at, "photo"),
            need(d, "sha256", "str", at, "photo"),
        )
        if ref.width <= 0 or ref.height <= 0:
            raise at.error("photo", f"has no pixels ({ref.width}x{ref.height})")
        if not _SHA256.match(ref.sha256):
            raise at.error("photo.sha256", "is not a sha256 hex digest")
        return ref


@dataclass(frozen=True)
class SessionMeta:
    """``session.json``, checked."""

    version: int
    photo_path: str
    face_index: int
    history: list[tuple[str, dict]]
    position: int
    photo_light: dict | None
    saved_at: float
    photo: PhotoRef | None

    @classmethod
    def parse(cls, meta: object, file: str) -> SessionMeta:
        at = Where(file, "session.json")
        if not isinstance(meta, dict):
            raise at.error("", f"must hold an object, not {_kind(meta)}")
        if meta.get("format") != SESSION_FORMAT:
            raise SessionError(f"{file}: not a FaceEditor session (session.json has no format {SESSION_FORMAT!r})")
        version = need(meta, "version", "int", at, default=SESSION_VERSION)
        if version > SESSION_VERSION:
            raise SessionError(f"{file}: made by a newer FaceEditor (session version {version})")
        if version < 1:
            raise at.error("'version'", f"must be at least 1, not {version}")
        photo_path = need(meta, "photo_path", "str", at)
        if not photo_path.strip():
            raise at.error("'photo_path'", "is empty")
        face_index = need(meta, "face_index", "int", at, default=0)
        if face_index < 0:
            raise at.error("'face_index'", f"must be 0 or more, not {face_index}")
        items = need(meta, "history", "list", at)
        if not items:
            raise at.error("'history'", "is empty")
        history = []
        for i, item in enumerate(items):
            entry = _typed(item, "object", at, f"history[{i}]")
            label = need(entry, "label", "str", at, f"history[{i}]")
            history.append(
                (label, check_edit(need(entry, "edit", "object", at, f"history[{i}]"), at, f"history[{i}].edit"))
            )
        position = need(meta, "position", "int", at, default=len(history) - 1)
        return cls(
            version=version,
            photo_path=photo_path,
            face_index=face_index,
            history=history,
            position=max(0, min(position, len(history) - 1)),
            photo_light=check_light(meta.get("photo_light"), at, "'photo_light'"),
            saved_at=float(need(meta, "saved_at", "number", at, default=0.0)),
            photo=PhotoRef.parse(meta.get("photo"), at),
        )


# ---------------------------------------------------------------------------- state
_REQUIRED_ARRAYS = {"rotation": (3, 3), "translation": (3,), "identity": (-1,), "expression": (-1,), "sh": (9, 3)}
_OPTIONAL_ARRAYS = {
    "detector_landmarks": (-1, 3),
    "detector_landmarks68": (68, 2),
    "fitted_landmarks68": (68, 2),
    "texture": (-1, -1, 3),
    "texture_confidence": (-1, -1),
}


def _shape_ok(shape: tuple[int, ...], want: tuple[int, ...]) -> bool:
    return len(shape) == len(want) and all(w in (-1, s) for s, w in zip(shape, want))


def _check_arrays(arrays: dict[str, np.ndarray], at: Where) -> None:
    for key, want in {**_REQUIRED_ARRAYS, **_OPTIONAL_ARRAYS}.items():
        if key not in arrays:
            if key in _REQUIRED_ARRAYS:
                raise at.error(key, "is missing")
            continue
        a = arrays[key]
        if a.dtype.kind not in "fiu":
            raise at.error(key, f"must be numeric, not {a.dtype}")
        if not _shape_ok(a.shape, want):
            shape = " x ".join("N" if w == -1 else str(w) for w in want)
            raise at.error(key, f"has shape {tuple(a.shape)}, expected {shape}")
        if key in _REQUIRED_ARRAYS and not np.isfinite(a).all():
            raise at.error(key, "holds NaN or infinity")
    for key, a in arrays.items():
        if key.startswith("noise_") and not key[len("noise_") :].isdigit():
            raise at.error(key, "is not a noise map name (noise_<number>)")
        if (key == "latent" or key.startswith(("noise_", "tuning:"))) and a.dtype.kind not in "fiu":
            raise at.error(key, f"must be numeric, not {a.dtype}")


def check_state(state: object, arrays: dict[str, np.ndarray], file: str) -> dict:
    """``state.json`` (returned) and the arrays of ``state.npz``, checked for :meth:`FaceState.from_dict`."""
    at = Where(file, "state.json")
    if not isinstance(state, dict):
        raise at.error("", f"must hold an object, not {_kind(state)}")
    size = numbers(need(state, "image_size", "list", at), 2, at, "'image_size'")
    if not all(float(v).is_integer() and v > 0 for v in size):
        raise at.error("'image_size'", f"must be two positive integers, not {size}")
    state = {**state, "image_size": [int(v) for v in size]}
    numbers(need(state, "face_box", "list", at), 4, at, "'face_box'")
    if state.get("principal") is not None:
        numbers(state["principal"], 2, at, "'principal'")
    if need(state, "focal_px", "number", at) <= 0:
        raise at.error("'focal_px'", "must be positive")
    need(state, "detector_score", "number", at, default=0.0)
    need(state, "timings_ms", "object", at, default={})
    need(state, "fit_info", "object", at, default={})
    need(state, "renderer_id", "str", at, default=None, nullable=True)
    _check_arrays(arrays, Where(file, "state.npz"))
    return state
