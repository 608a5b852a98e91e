"""The editor's ``Document``: photo, detected faces, chosen face, ``FaceState``, edits, history.

Qt-free (the GUI observes it through :meth:`Document.subscribe`; tests drive it directly).
Widgets never compute: they call the ``set_*`` methods here, and the window sends
:meth:`Document.resolved_edit` with :attr:`Document.version` as the stamp to the one
background renderer.

What the history stores is an :class:`EditState`: the :class:`EditParams` whose
``expression`` holds the user's *base* per-blendshape values (missing = the fitted value),
plus the strengths of the macro sliders (Smile, Surprise, ...). A macro adds
``strength x weight`` on top of the base, so macro sliders and individual sliders combine and
a macro moved back to 0 gives back exactly what was there. :meth:`Document.resolved_edit`
turns that into the absolute weights every renderer and exporter takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable

import numpy as np

from faceeditor.edit.history import History
from faceeditor.edit.light import LightParams
from faceeditor.edit.limits import POSE_LIMITS, clamp_edit
from faceeditor.edit.params import EditParams
from faceeditor.edit.presets import MACROS, macro_weights
from faceeditor.io.session import Session
from faceeditor.morphable.model import default_model_path

# slider groups of the expression panel: (title, name prefix)
EXPRESSION_GROUPS = (("Brows", "brow"), ("Eyes", "eye"), ("Cheeks", "cheek"), ("Nose", "nose"),
                     ("Mouth", "mouth"), ("Jaw", "jaw"))


def expression_names() -> list[str]:
    """The 53 ARKit names of the shipped face model (read with numpy only, no torch)."""
    with np.load(default_model_path()) as z:
        return [str(n) for n in z["expression_names"]]


def group_expressions(names: list[str]) -> dict[str, list[str]]:
    """``{"Brows": [...], "Eyes": [...], ...}`` in model order; unknown prefixes go to "Other"."""
    out: dict[str, list[str]] = {title: [] for title, _ in EXPRESSION_GROUPS}
    for n in names:
        title = next((t for t, prefix in EXPRESSION_GROUPS if n.startswith(prefix)), "Other")
        out.setdefault(title, []).append(n)
    return {k: v for k, v in out.items() if v}


def mirror_name(name: str) -> str | None:
    """``mouthSmile_L`` <-> ``mouthSmile_R``; None for unpaired names (``jawOpen``)."""
    if name.endswith("_L"):
        return name[:-2] + "_R"
    if name.endswith("_R"):
        return name[:-2] + "_L"
    return None


@dataclass
class EditState:
    """One undo step: edit parameters (base expression values) + macro slider strengths."""

    params: EditParams = field(default_factory=EditParams)
    macros: dict[str, float] = field(default_factory=dict)

    def copy(self) -> "EditState":
        return EditState(self.params.copy(), dict(self.macros))

    def to_dict(self) -> dict:
        return {"params": self.params.to_dict(), "macros": {k: float(v) for k, v in sorted(self.macros.items())}}

    @classmethod
    def from_dict(cls, d: dict) -> "EditState":
        return cls(EditParams.from_dict(d.get("params") or {}), {str(k): float(v) for k, v in
                                                                  (d.get("macros") or {}).items()})


class Document:
    """Everything the editor window shows and edits, with undo/redo and a dirty flag."""

    def __init__(self, names: list[str] | None = None) -> None:
        self.expression_names: list[str] = list(names) if names is not None else expression_names()
        self.groups = group_expressions(self.expression_names)
        self.photo_path: Path | None = None
        self.photo: np.ndarray | None = None  # uint8 HxWx3
        self.loaded: Any = None  # faceeditor.io.LoadedImage (for EXIF/ICC on export)
        self.faces: list[Any] = []  # faceeditor.face.detect.Face
        self.face_index: int | None = None
        self.state: Any = None  # faceeditor.core.state.FaceState
        self.fitted: dict[str, float] = {}
        self.photo_light: LightParams | None = None
        self.history: History[EditState] = History(EditState())
        self.version = 0  # bumped on every change the picture depends on: the render stamp
        self.dirty = False
        self.session_path: Path | None = None
        self._listeners: list[Callable[[str], None]] = []

    # ----------------------------------------------------------------- observers
    def subscribe(self, fn: Callable[[str], None]) -> None:
        """``fn(event)`` after each change; events: photo, faces, state, edit, saved."""
        self._listeners.append(fn)

    def _emit(self, event: str) -> None:
        for fn in list(self._listeners):
            fn(event)

    # ----------------------------------------------------------------- photo, faces, fit
    @property
    def edit(self) -> EditState:
        return self.history.current

    @property
    def has_face(self) -> bool:
        return self.state is not None

    def set_photo(self, path: Path | None, rgb: np.ndarray, loaded: Any = None) -> None:
        self.photo_path = None if path is None else Path(path)
        self.photo, self.loaded = rgb, loaded
        self.faces, self.face_index, self.state, self.fitted, self.photo_light = [], None, None, {}, None
        self.history.reset(EditState())
        self.version += 1
        self.dirty = False
        self.session_path = None
        self._emit("photo")

    def set_faces(self, faces: list[Any]) -> None:
        self.faces = list(faces)
        self._emit("faces")

    def set_state(self, state: Any, face_index: int | None = None, photo_light: LightParams | None = None,
                  keep_edits: bool = False) -> None:
        """A fitted face. ``keep_edits`` (a refined fit of the same face) keeps edits and history."""
        self.state = state
        self.face_index = face_index
        self.fitted = {n: float(v) for n, v in zip(self.expression_names, np.asarray(state.expression).tolist())}
        self.photo_light = photo_light
        if not keep_edits:
            self.history.reset(EditState())
            self.dirty = False
        self.version += 1
        self._emit("state")

    # ----------------------------------------------------------------- edits
    def apply(self, edit: EditState, label: str, merge_key: Hashable | None = None) -> None:
        """Make ``edit`` current (one undo step, or merged into the open gesture)."""
        self.history.push(edit, label, merge_key)
        self.version += 1
        self.dirty = True
        self._emit("edit")

    def close_gesture(self) -> None:
        self.history.close_gesture()

    def undo(self) -> bool:
        if self.history.undo() is None:
            return False
        self.version += 1
        self.dirty = True
        self._emit("edit")
        return True

    def redo(self) -> bool:
        if self.history.redo() is None:
            return False
        self.version += 1
        self.dirty = True
        self._emit("edit")
        return True

    def goto(self, position: int) -> bool:
        """Jump to history entry ``position`` (the History panel)."""
        if position == self.history.position:
            return False
        self.history.goto(position)
        self.version += 1
        self.dirty = True
        self._emit("edit")
        return True

    def _next(self) -> EditState:
        return self.edit.copy()

    def set_pose(self, label: str = "Pose", **angles: float) -> None:
        """``set_pose(yaw=10)``: pose offsets in degrees (clamped to :data:`POSE_LIMITS`)."""
        e = self._next()
        for k, v in angles.items():
            lim = POSE_LIMITS[k]
            setattr(e.params, k, float(max(-lim, min(lim, v))))
        key = ("pose", tuple(sorted(angles)))
        self.apply(e, f"{label}: " + ", ".join(f"{k} {v:+.0f}°" for k, v in angles.items()), key)

    def macro_contribution(self, macros: dict[str, float] | None = None) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, s in (self.edit.macros if macros is None else macros).items():
            for k, w in macro_weights(name, s).items():
                out[k] = out.get(k, 0.0) + w
        return out

    def base_value(self, name: str, edit: EditState | None = None) -> float:
        e = self.edit if edit is None else edit
        return float(e.params.expression.get(name, self.fitted.get(name, 0.0)))

    def expression_value(self, name: str) -> float:
        """The weight a blendshape has in the edited face (what its slider shows)."""
        v = self.base_value(name) + self.macro_contribution().get(name, 0.0)
        return float(min(1.0, max(0.0, v)))

    def set_expression(self, name: str, value: float, link: bool = False) -> None:
        """Set one blendshape (and its mirror twin when ``link``) to ``value`` in [0, 1]."""
        if name not in self.fitted and name not in self.expression_names:
            raise KeyError(f"unknown expression {name!r}")
        value = float(min(1.0, max(0.0, value)))
        e = self._next()
        contrib = self.macro_contribution(e.macros)
        targets = [name] + ([mirror_name(name)] if link and mirror_name(name) in self.expression_names else [])
        for n in targets:
            e.params.expression[n] = value - contrib.get(n, 0.0)
        short = name[:-2] if link and len(targets) == 2 else name
        self.apply(e, f"{short} {value:.2f}", ("expr", tuple(sorted(targets))))

    def set_macro(self, name: str, strength: float) -> None:
        if name not in MACROS:
            raise KeyError(f"unknown macro {name!r}")
        e = self._next()
        s = float(min(1.0, max(0.0, strength)))
        if s == 0.0:
            e.macros.pop(name, None)
        else:
            e.macros[name] = s
        self.apply(e, f"{name.replace('_', ' ').capitalize()} {s:.2f}", ("macro", name))

    def current_light(self) -> LightParams:
        """The light the lighting panel shows: the edit's, else the photo's as fitted."""
        light = self.edit.params.light
        if light is not None:
            return LightParams.from_dict(light.to_dict())
        return LightParams.from_dict(self.photo_light.to_dict()) if self.photo_light else LightParams()

    def set_light(self, light: LightParams | None, label: str = "Light", merge_key: Hashable | None = None) -> None:
        e = self._next()
        e.params.light = None if light is None else LightParams.from_dict(light.to_dict())
        self.apply(e, label, merge_key)

    def set_light_fields(self, **fields: float) -> None:
        """Change directional-light controls (azimuth, elevation, intensity, ambient, temperature)."""
        light = self.current_light()
        for k, v in fields.items():
            if k not in ("azimuth", "elevation", "intensity", "ambient", "temperature"):
                raise KeyError(k)
            setattr(light, k, float(v))
        light.sh = None  # directional controls replace an explicit SH
        units = {"azimuth": "°", "elevation": "°", "temperature": " K"}
        text = ", ".join(f"{k} {v:.0f}{units[k]}" if k in units else f"{k} {v:.2f}" for k, v in sorted(fields.items()))
        self.set_light(light, f"Light {text}", ("light", tuple(sorted(fields))))

    def set_light_sh(self, sh: np.ndarray) -> None:
        light = self.current_light()
        light.sh = np.asarray(sh, dtype=float).reshape(9, 3).tolist()
        self.set_light(light, "Light SH", ("light", "sh"))

    def set_renderer(self, name: str) -> None:
        e = self._next()
        if e.params.renderer == name:
            return
        e.params.renderer = name
        self.apply(e, f"Renderer {name}")

    def reset(self, group: str) -> None:
        """Reset ``pose``, ``light``, ``macros``, ``expression``, an expression group title
        (``Brows``, ``Mouth``, ...) or ``all`` to the photo's own values."""
        e = self._next()
        if group in ("pose", "all"):
            e.params.yaw = e.params.pitch = e.params.roll = 0.0
        if group in ("light", "all"):
            e.params.light = None
        if group in ("macros", "expression", "all"):
            e.macros = {}
        if group in ("expression", "all"):
            e.params.expression = {}
        if group in self.groups:
            for n in self.groups[group]:
                e.params.expression.pop(n, None)
        if e.to_dict() == self.edit.to_dict():
            return
        label = "Reset " + ("everything" if group == "all" else group.lower())
        self.apply(e, label)

    def load_preset(self, params: EditParams, label: str = "Preset") -> list[str]:
        """Apply a saved preset (absolute expression weights, pose, light); macros cleared. Values out
        of the sliders' ranges are clamped: the notes say which (for the window to show)."""
        params, notes = clamp_edit(params)
        e = EditState(params, {})
        e.params.expression = {k: v for k, v in e.params.expression.items() if k in self.expression_names}
        self.apply(e, label)
        return notes

    def resolved_edit(self) -> EditParams:
        """What renderers and exporters take: absolute weights with the macros applied."""
        p = self.edit.params
        contrib = self.macro_contribution()
        expr = {}
        for k in set(p.expression) | set(contrib):
            expr[k] = float(min(1.0, max(0.0, self.base_value(k) + contrib.get(k, 0.0))))
        light = None if p.light is None else LightParams.from_dict(p.light.to_dict())
        return EditParams(p.yaw, p.pitch, p.roll, expr, light, p.renderer)

    def is_unedited(self) -> bool:
        return self.resolved_edit().is_zero(self.fitted)

    def mark_saved(self, path: Path | None = None) -> None:
        if path is not None:
            self.session_path = Path(path)
        self.dirty = False
        self._emit("saved")

    # ----------------------------------------------------------------- sessions
    def to_session(self):
        if self.state is None or self.photo_path is None:
            raise ValueError("nothing to save: no fitted face")
        return Session(photo_path=str(self.photo_path), face_index=self.face_index or 0, state=self.state,
                       history=[(label, e.to_dict()) for label, e in self.history.entries()],
                       position=self.history.position,
                       photo_light=None if self.photo_light is None else self.photo_light.to_dict())

    def restore(self, session, rgb: np.ndarray, loaded: Any = None, path: Path | None = None) -> None:
        """Load a session whose photo was read into ``rgb``."""
        self.set_photo(Path(session.photo_path), rgb, loaded)
        light = None if session.photo_light is None else LightParams.from_dict(session.photo_light)
        self.set_state(session.state, session.face_index, light)
        entries = [(label, EditState.from_dict(d)) for label, d in session.history]
        self.history = History.from_entries(entries, session.position)
        self.version += 1
        self.session_path = None if path is None else Path(path)
        self.dirty = False
        self._emit("edit")
