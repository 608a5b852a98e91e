"""What an edit may ask for: one table of ranges shared by the command line, preset and session
files, and the window's sliders.

The pose ranges are what the renderers do well (beyond them the photo shows too little of the head
for a believable result); expression weights and macro strengths are blendshape weights in [0, 1];
the light ranges are the Lighting tab's. :func:`check_edit` refuses NaN, infinity and values out
of range with :class:`~faceeditor.core.errors.EditValueError` naming the field (the command line);
:func:`clamp_edit` brings values into range and says what it changed (the window, loaded sessions).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from faceeditor.core.errors import EditValueError
from faceeditor.edit.light import LightParams
from faceeditor.edit.params import EditParams, check_number

POSE_LIMITS = {"yaw": 30.0, "pitch": 20.0, "roll": 30.0}  # degrees, relative to the photo (symmetric)
WEIGHT_RANGE = (0.0, 1.0)  # expression weights and macro strengths
LIGHT_RANGES = {"azimuth": (-90.0, 90.0), "elevation": (-90.0, 90.0), "intensity": (0.0, 3.0),
                "ambient": (0.0, 2.0), "temperature": (2000.0, 12000.0)}


def check_light(light: LightParams, prefix: str = "light.") -> None:
    """Every light field finite and in range (stored as a float: a preset may hold "5"); ``sh`` None
    or 9 x 3 finite numbers."""
    for name, (lo, hi) in LIGHT_RANGES.items():
        setattr(light, name, check_number(prefix + name, getattr(light, name), lo, hi))
    if light.sh is not None:
        try:
            flat = np.asarray(light.sh, dtype=np.float64).ravel()
        except (TypeError, ValueError, OverflowError):
            flat = np.zeros(0)
        if flat.size != 27 or not np.isfinite(flat).all():
            raise EditValueError(f"{prefix}sh: expected 9 x 3 finite numbers")


def check_edit(edit: EditParams) -> EditParams:
    """``edit`` unchanged when every value is finite and in range; else :class:`EditValueError`."""
    for axis, lim in POSE_LIMITS.items():
        check_number(axis, getattr(edit, axis), -lim, lim)
    for name, w in edit.expression.items():
        check_number(f"expression {name}", w, *WEIGHT_RANGE)
    if edit.light is not None:
        check_light(edit.light)
    return edit


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if math.isnan(x) else min(hi, max(lo, x))


def clamp_edit(edit: EditParams) -> tuple[EditParams, list[str]]:
    """A copy of ``edit`` with every value brought into range (NaN -> 0 for pose and weights, the
    default light's value for light fields),
    and a note per value it changed ("yaw 45 -> 30")."""
    out = dataclasses.replace(edit, expression=dict(edit.expression),
                              light=None if edit.light is None else dataclasses.replace(edit.light))
    notes: list[str] = []

    def fix(field: str, x: float, lo: float, hi: float, nan_to: float) -> float:
        y = nan_to if math.isnan(x) else _clamp(x, lo, hi)
        if y != x:
            notes.append(f"{field} {x:g} -> {y:g}")
        return y

    for axis, lim in POSE_LIMITS.items():
        setattr(out, axis, fix(axis, float(getattr(out, axis)), -lim, lim, 0.0))
    out.expression = {k: fix(k, float(v), *WEIGHT_RANGE, 0.0) for k, v in out.expression.items()}
    if out.light is not None:
        default = LightParams()
        values = {k: fix(k, float(getattr(out.light, k)), lo, hi, getattr(default, k))
                  for k, (lo, hi) in LIGHT_RANGES.items()}
        out.light = dataclasses.replace(out.light, **values)
    return out, notes
