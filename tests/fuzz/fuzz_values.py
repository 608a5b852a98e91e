"""Fuzzers for edit values: preset files (an :class:`EditValueError` naming the field, an error naming
the file, or a preset whose every value is in range) and absurd values through the three ways in
(preset/session dicts, the command line's options, the window's clamping)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import random
from pathlib import Path

from mutate import ABSURD_NUMBERS, ABSURD_OTHER, mutate_json
from tally import Tally, run_case

from faceeditor.cli import _attach_negative_words, build_parser
from faceeditor.core.errors import EditValueError, FaceEditorError
from faceeditor.edit.args import base_edit
from faceeditor.edit.light import LightParams
from faceeditor.edit.limits import LIGHT_RANGES, POSE_LIMITS, WEIGHT_RANGE, check_edit, clamp_edit
from faceeditor.edit.params import RENDERERS, EditParams

# field -> (words the error names, range, where it sits in a preset dict)
FIELDS = {
    **{axis: (axis, (-lim, lim), (axis,)) for axis, lim in POSE_LIMITS.items()},
    "jawOpen": ("expression jawOpen", WEIGHT_RANGE, ("expression", "jawOpen")),
    **{f"light.{k}": (f"light.{k}", r, ("light", k)) for k, r in LIGHT_RANGES.items()},
}


def as_number(value: object) -> float | None:
    """What a value means as a number (as ``float()`` reads it), None when it is not one."""
    if value is None or isinstance(value, (list, dict)):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


def acceptable(value: object, lo: float, hi: float) -> bool:
    x = as_number(value)
    return x is not None and math.isfinite(x) and lo <= x <= hi


def _in(field: str, x: object, lo: float, hi: float) -> None:
    assert isinstance(x, float) or (isinstance(x, int) and not isinstance(x, bool)), f"{field} kept as {x!r}"
    assert lo <= x <= hi, f"{field} {x} accepted"


def check_in_range(edit: EditParams) -> None:
    """Every value of an accepted edit is a finite number in its range."""
    for axis, lim in POSE_LIMITS.items():
        _in(axis, getattr(edit, axis), -lim, lim)
    for k, w in edit.expression.items():
        _in(f"expression {k}", w, *WEIGHT_RANGE)
    if edit.light is not None:
        for k, (lo, hi) in LIGHT_RANGES.items():
            _in(f"light.{k}", getattr(edit.light, k), lo, hi)
        assert edit.light.sh is None or len(edit.light.to_sh().ravel()) == 27
    assert edit.renderer in RENDERERS


# --------------------------------------------------------------------------- presets
BASE_PRESETS = [
    {},
    {"yaw": 5.0},
    EditParams(yaw=10.0, pitch=-5.0, expression={"jawOpen": 0.4, "mouthSmile_L": 0.7}).to_dict(),
    EditParams(roll=3.0, light=LightParams(40.0, 20.0, 1.2, 0.4, 5000.0)).to_dict(),
]


def _preset_case(path: Path, text: str, expect: tuple[str, bool] | None) -> str:
    """``expect``: (field, accepted) when a known field was given a known value."""
    path.write_text(text)
    try:
        edit = check_edit(EditParams.load(path))
    except EditValueError as err:
        msg = str(err)
        assert any(f in msg for f in ("yaw", "pitch", "roll", "expression", "light")), f"no field named: {msg}"
        assert expect is None or (expect[0] in msg and not expect[1]), f"{expect}: {msg}"
        return "EditValueError"
    except FaceEditorError as err:
        assert str(err).startswith(f"{path}: "), f"error does not name the file: {err}"
        assert expect is None or not expect[1], f"{expect}: {err}"
        return type(err).__name__
    check_in_range(edit)
    assert expect is None or expect[1], f"{expect} was accepted"
    return "accepted"


def _preset_text(rng: random.Random) -> tuple[str, tuple[str, bool] | None, str]:
    doc = json.loads(json.dumps(rng.choice(BASE_PRESETS)))
    if rng.random() < 0.5:  # a known field, a known value
        name = rng.choice(sorted(FIELDS))
        _, (lo, hi), where = FIELDS[name]
        value = rng.choice(ABSURD_NUMBERS + ABSURD_OTHER + [rng.uniform(lo, hi), lo, hi])
        if len(where) == 1:
            doc[where[0]] = value
        else:
            if not isinstance(doc.get(where[0]), dict):
                doc[where[0]] = {}
            doc[where[0]][where[1]] = value
        return json.dumps(doc), (FIELDS[name][0], acceptable(value, lo, hi)), f"{name} = {value!r}"[:120]
    n = rng.randint(1, 3)
    return json.dumps(mutate_json(rng, doc, n)), None, f"{n} mutation(s)"


def fuzz_presets(n: int, seed: int, folder: Path) -> Tally:
    """``n`` preset files: known fields given absurd or valid values, random structure mutations."""
    rng = random.Random(seed)
    tally = Tally("presets")
    path = folder / "preset.json"
    for i in range(n):
        text, expect, how = _preset_text(rng)
        run_case(tally, f"#{i} ({how})", _preset_case, path, text, expect)
    return tally


# --------------------------------------------------------------------------- values
def _by_dict(name: str, value: object) -> str:
    """The preset / session way: a dict read by :meth:`EditParams.from_dict`, then checked."""
    words, (lo, hi), where = FIELDS[name]
    d: dict = {}
    (d.setdefault(where[0], {}) if len(where) == 2 else d)[where[-1]] = value
    try:
        edit = check_edit(EditParams.from_dict(d))
    except EditValueError as err:
        assert words in str(err) and not acceptable(value, lo, hi), f"{name}={value!r}: {err}"
        return "EditValueError"
    assert acceptable(value, lo, hi), f"{name}={value!r} accepted"
    check_in_range(edit)
    return "accepted"


def _by_options(parser: argparse.ArgumentParser, name: str, value: object) -> str:
    """The command-line way: ``--yaw VALUE`` or ``--expr jawOpen=VALUE``, parsed, then checked."""
    words, (lo, hi), _ = FIELDS[name]
    text = str(value)
    opt = ["--expr", f"jawOpen={text}"] if name == "jawOpen" else [f"--{name}", text]
    argv = _attach_negative_words(["edit", "in.png", "-o", "out.png", *opt])
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err_text:
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: not a float
        assert exc.code == 2 and as_number(text) is None, f"{argv}: usage error {err_text.getvalue()!r}"
        return "usage error"
    try:
        edit = base_edit(args)
    except FaceEditorError as err:  # EditValueError, or --expr that is not NAME=W
        assert not acceptable(text, lo, hi), f"{argv}: {err}"
        assert words.split()[-1] in str(err) or "--expr" in str(err), f"{argv}: field not named: {err}"
        return type(err).__name__
    assert acceptable(text, lo, hi), f"{argv} accepted"
    check_in_range(edit)
    return "accepted"


def _by_window(name: str, value: float) -> str:
    """The window's way: any float is brought into range, and the note says so."""
    _, (lo, hi), where = FIELDS[name]
    edit = EditParams(light=LightParams() if where[0] == "light" else None)
    if where[0] == "expression":
        edit.expression["jawOpen"] = value
    else:
        setattr(edit.light if where[0] == "light" else edit, where[-1], value)
    fixed, notes = clamp_edit(edit)
    check_in_range(fixed)
    assert bool(notes) == (not acceptable(value, lo, hi)), f"{name}={value!r}: notes {notes}"
    return "clamped" if notes else "kept"


def fuzz_values(n: int, seed: int) -> Tally:
    """``n`` absurd or valid values for every field, each through one of the three ways in."""
    rng = random.Random(seed)
    parser, _ = build_parser("edit")
    tally = Tally("values")
    for i in range(n):
        name = rng.choice(sorted(FIELDS))
        lo, hi = FIELDS[name][1]
        value = rng.choice(ABSURD_NUMBERS + ABSURD_OTHER + [rng.uniform(lo, hi), rng.uniform(-1e6, 1e6), lo, hi])
        way = rng.randrange(3)
        if way == 1 and not name.startswith("light."):
            run_case(tally, f"#{i} options {name}={value!r}"[:140], _by_options, parser, name, value)
        elif way == 2 and isinstance(value, float):
            run_case(tally, f"#{i} window {name}={value!r}", _by_window, name, value)
        else:
            run_case(tally, f"#{i} dict {name}={value!r}"[:140], _by_dict, name, value)
    return tally
