"""Command-line edit options shared by ``faceeditor edit``, ``faceeditor batch`` and benchmarks.

An edit is built per face, because light options are relative to the photo's fitted light:

* ``--preset-file P.json``: an :class:`EditParams` JSON (as the GUI saves it) as the base;
* ``--preset NAME[:S]`` (repeatable): expression macros (:mod:`faceeditor.edit.presets`) on top;
* ``--expr NAME=W,...``: absolute ARKit weights, last word on expressions;
* ``--yaw/--pitch/--roll``: pose offsets in degrees (replace the preset file's);
* ``--light-azimuth/--light-elevation`` (degrees, absolute direction in camera space) and
  ``--light-intensity/--light-ambient`` (multipliers, 1 = as in the photo or the preset file):
  the light starts from the preset file's light if it has one, else from the photo's fitted
  light (:func:`faceeditor.edit.geometry.photo_light`).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from faceeditor.core.errors import FaceEditorError
from faceeditor.edit.geometry import photo_light
from faceeditor.edit.limits import WEIGHT_RANGE, check_edit, check_light, check_number
from faceeditor.edit.params import EditParams
from faceeditor.edit.presets import MACROS

LIGHT_FLAGS = ("light_azimuth", "light_elevation", "light_intensity", "light_ambient")


def add_edit_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("edit")
    g.add_argument("--yaw", type=float, default=None, metavar="DEG", help="turn the head (+: toward the subject's left)")
    g.add_argument("--pitch", type=float, default=None, metavar="DEG", help="tilt up (+) or down (-)")
    g.add_argument("--roll", type=float, default=None, metavar="DEG", help="tilt toward a shoulder")
    g.add_argument("--expr", action="append", default=[], metavar="NAME=W,...",
                   help="ARKit blendshape weights in [0,1], e.g. mouthSmile_L=0.7,mouthSmile_R=0.7")
    g.add_argument("--preset", action="append", default=[], metavar="NAME[:S]",
                   help=f"expression macro at strength S (default 1): {', '.join(sorted(MACROS))}")
    g.add_argument("--preset-file", type=Path, default=None, metavar="P.json",
                   help="edit parameters saved by the editor (EditParams JSON)")
    g.add_argument("--light-azimuth", type=float, default=None, metavar="DEG",
                   help="light direction: + from image right")
    g.add_argument("--light-elevation", type=float, default=None, metavar="DEG", help="light direction: + from above")
    g.add_argument("--light-intensity", type=float, default=None, metavar="X",
                   help="directional light strength, times the photo's (1 = unchanged)")
    g.add_argument("--light-ambient", type=float, default=None, metavar="X",
                   help="ambient light, times the photo's (1 = unchanged)")
    g.add_argument("--renderer", choices=("mesh", "neural", "gar"), default=None,
                   help="mesh compositor (default), the photo-conditioned neural renderer G_p (feed-forward), or "
                        "the GAR renderer (inverts the face first; --state of `faceeditor invert` skips that)")


def parse_expr(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            name, sep, value = part.partition("=")
            if not sep:
                raise FaceEditorError(f"--expr {part!r}: expected NAME=WEIGHT")
            out[name.strip()] = check_number(f"--expr {name.strip()}", value.strip(), *WEIGHT_RANGE)
    return out


def parse_preset(item: str) -> tuple[str, float]:
    name, sep, value = item.partition(":")
    strength = check_number(f"--preset {item}", value, *WEIGHT_RANGE) if sep else 1.0
    return name.strip(), strength


def base_edit(args: argparse.Namespace) -> EditParams:
    """The face-independent part of the edit (checked early, before any fitting)."""
    edit = EditParams.load(args.preset_file) if args.preset_file is not None else EditParams()
    for item in args.preset:
        name, strength = parse_preset(item)
        try:
            edit = edit.with_preset(name, strength)
        except KeyError as exc:
            raise FaceEditorError(str(exc).strip("'\"")) from None
    edit.expression.update(parse_expr(args.expr))
    for axis in ("yaw", "pitch", "roll"):
        value = getattr(args, axis)
        if value is not None:
            setattr(edit, axis, float(value))
    if getattr(args, "renderer", None):
        edit.renderer = args.renderer
    return check_edit(edit)


def check_expression_names(edit: EditParams, names: list[str]) -> None:
    unknown = sorted(set(edit.expression) - set(names))
    if unknown:
        raise FaceEditorError(f"unknown expression name(s): {', '.join(unknown)}")


def light_requested(args: argparse.Namespace) -> bool:
    return any(getattr(args, k, None) is not None for k in LIGHT_FLAGS)


def edit_for_face(base: EditParams, args: argparse.Namespace, state) -> EditParams:
    """``base`` with the light flags applied relative to ``state``'s fitted light."""
    edit = base.copy()
    if not light_requested(args):
        return edit

    for flag in ("light_intensity", "light_ambient"):  # multipliers of the photo's (or preset's) light
        if getattr(args, flag) is not None:
            check_number("--" + flag.replace("_", "-"), getattr(args, flag), 0.0, 10.0)
    light = dataclasses.replace(edit.light) if edit.light is not None else photo_light(state)
    light.sh = None
    if args.light_azimuth is not None:
        light.azimuth = float(args.light_azimuth)
    if args.light_elevation is not None:
        light.elevation = float(args.light_elevation)
    if args.light_intensity is not None:
        light.intensity *= float(args.light_intensity)
    if args.light_ambient is not None:
        light.ambient *= float(args.light_ambient)
    edit.light = light
    check_light(light, prefix="light ")
    return edit
