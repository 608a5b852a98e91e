"""``EditParams``: what the user changed, relative to the fitted ``FaceState``.

* Pose: yaw/pitch/roll offsets in degrees, applied about the head's centre in camera space
  (``R_new = R_offset @ R_fit``, same sign conventions as :mod:`faceeditor.core.pose`).
* Expression: absolute ARKit weights in [0, 1] for the blendshapes the user set; names not
  listed keep their fitted value.
* Light: ``None`` keeps the photo's fitted lighting; otherwise a :class:`LightParams`.
* Identity is never edited.

A zero edit (:meth:`EditParams.is_zero`) must reproduce the input photo.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceeditor.core.atomic import atomic_write_text
from faceeditor.core.errors import EditValueError, ParamsFileError
from faceeditor.edit.light import LightParams
from faceeditor.edit.presets import macro_weights

RENDERERS = ("mesh", "neural", "gar", "personal")
# names that earlier versions wrote into params files and sessions: "photo-neural" was the
# photo-conditioned G_p before it took the name "neural" (whose GAR fill is now "gar")
RENDERER_ALIASES = {"photo-neural": "neural"}


def check_number(field: str, value: object, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``value`` as a finite float in [lo, hi], else :class:`EditValueError` naming ``field`` (the
    ranges edits may ask for: :mod:`faceeditor.edit.limits`)."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an integer too large for a float (JSON allows any number of digits)
        raise EditValueError(f"{field}: {str(value)[:20]}... is not a finite number") from None
    except (TypeError, ValueError):
        raise EditValueError(f"{field}: {value!r} is not a number") from None
    if not math.isfinite(x):
        raise EditValueError(f"{field}: {value!r} is not a finite number")
    if not lo <= x <= hi:
        raise EditValueError(f"{field}: {x:g} is out of range [{lo:g}, {hi:g}]")
    return x


@dataclass
class EditParams:
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    expression: dict[str, float] = field(default_factory=dict)
    light: LightParams | None = None
    renderer: str = "mesh"

    def is_zero(self, state_expression: dict[str, float] | None = None) -> bool:
        """True when nothing changes the photo (expression weights equal to the fitted ones count as unchanged)."""
        if abs(self.yaw) > 1e-6 or abs(self.pitch) > 1e-6 or abs(self.roll) > 1e-6 or self.light is not None:
            return False
        if not self.expression:
            return True
        if state_expression is None:
            return False
        return all(abs(v - state_expression.get(k, 0.0)) < 1e-6 for k, v in self.expression.items())

    def expression_vector(self, fitted: np.ndarray, names: list[str]) -> np.ndarray:
        """(53,) weights: the fitted ones with this edit's overrides, clamped to [0, 1]."""
        out = np.array(fitted, dtype=np.float32, copy=True)
        index = {n: i for i, n in enumerate(names)}
        for name, w in self.expression.items():
            if name not in index:
                raise KeyError(f"unknown expression {name!r}")
            out[index[name]] = w
        return np.clip(out, 0.0, 1.0)

    def with_preset(self, name: str, strength: float) -> "EditParams":
        """A copy with macro ``name`` at ``strength`` set on top of the current expression edits."""
        expr = dict(self.expression)
        expr.update(macro_weights(name, strength))
        return EditParams(self.yaw, self.pitch, self.roll, expr, self.light, self.renderer)

    def copy(self) -> "EditParams":
        return EditParams.from_dict(self.to_dict())

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        return {"yaw": float(self.yaw), "pitch": float(self.pitch), "roll": float(self.roll),
                "expression": {k: float(v) for k, v in sorted(self.expression.items())},
                "light": None if self.light is None else self.light.to_dict(), "renderer": self.renderer}

    @classmethod
    def from_dict(cls, d: dict) -> "EditParams":
        light = d.get("light")
        renderer = RENDERER_ALIASES.get(d.get("renderer", "mesh"), d.get("renderer", "mesh"))
        if renderer not in RENDERERS:
            raise ValueError(f"unknown renderer {renderer!r}; choose from {RENDERERS}")
        return cls(check_number("yaw", d.get("yaw", 0.0)), check_number("pitch", d.get("pitch", 0.0)),
                   check_number("roll", d.get("roll", 0.0)),
                   {str(k): check_number(f"expression {k}", v) for k, v in (d.get("expression") or {}).items()},
                   None if light is None else LightParams.from_dict(light), renderer)

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "EditParams":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except EditValueError as exc:
            raise EditValueError(f"{path}: {exc}") from None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ParamsFileError(f"{path}: not a FaceEditor preset/edit file ({exc})") from exc
