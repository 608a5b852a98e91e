"""Edit values: one table of ranges, NaN/inf refused with the field's name, clamping with notes."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from faceeditor.cli import _attach_negative_words
from faceeditor.core.errors import EditValueError, FaceEditorError
from faceeditor.edit.args import add_edit_arguments, base_edit
from faceeditor.edit.light import LightParams
from faceeditor.edit.limits import LIGHT_RANGES, POSE_LIMITS, check_edit, clamp_edit
from faceeditor.edit.params import EditParams


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_edit_arguments(p)
    return p.parse_args(_attach_negative_words(list(argv)))


def test_pose_ranges_are_what_the_issue_asks_at_least():
    assert POSE_LIMITS["yaw"] >= 30 and POSE_LIMITS["pitch"] >= 20 and POSE_LIMITS["roll"] >= 30


@pytest.mark.parametrize("argv, field", [
    (("--yaw", "400"), "yaw"), (("--yaw", "nan"), "yaw"), (("--roll", "inf"), "roll"),
    (("--yaw", "-inf"), "yaw"), (("--pitch", "-21"), "pitch"), (("--expr", "jawOpen=nan"), "jawOpen"),
    (("--expr", "jawOpen=50"), "jawOpen"), (("--preset", "smile:50"), "smile"), (("--preset", "smile:-1"), "smile"),
])
def test_cli_values_out_of_range_name_the_field(argv, field):
    with pytest.raises(EditValueError, match=field):
        base_edit(_args(*argv))


def test_cli_values_in_range_pass():
    e = base_edit(_args("--yaw", "-30", "--pitch", "20", "--expr", "jawOpen=1", "--preset", "smile:0.5"))
    assert (e.yaw, e.pitch, e.expression["jawOpen"]) == (-30.0, 20.0, 1.0)


def test_negative_non_finite_words_stay_values():
    assert _attach_negative_words(["edit", "x.jpg", "--yaw", "-inf", "--roll", "-5"]) == \
        ["edit", "x.jpg", "--yaw=-inf", "--roll", "-5"]


@pytest.mark.parametrize("text", ['{"yaw": NaN}', '{"expression": {"jawOpen": Infinity}}'])
def test_preset_files_with_non_finite_values_are_refused(tmp_path, text):
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(EditValueError):
        EditParams.load(path)


@pytest.mark.parametrize("text", ['{"expression": [1, 2]}', "[1, 2, 3]", '{"yaw": "abc"}'])
def test_preset_files_of_the_wrong_shape_are_a_clear_error(tmp_path, text):
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(FaceEditorError, match="p.json"):
        EditParams.load(path)


def test_light_is_checked_field_by_field():
    check_edit(EditParams(light=LightParams()))
    for name, (lo, hi) in LIGHT_RANGES.items():
        for bad in (lo - 1.0, hi + 1.0, math.nan, math.inf):
            with pytest.raises(EditValueError, match=name):
                check_edit(EditParams(light=LightParams(**{name: bad})))


def test_clamp_brings_values_into_range_and_says_what_changed():
    e = EditParams(yaw=45.0, pitch=math.nan, expression={"jawOpen": 3.0}, light=LightParams(intensity=-1.0))
    out, notes = clamp_edit(e)
    assert (out.yaw, out.pitch, out.expression["jawOpen"], out.light.intensity) == (30.0, 0.0, 1.0, 0.0)
    assert len(notes) == 4 and any(n.startswith("yaw 45") for n in notes)
    check_edit(out)
    assert clamp_edit(EditParams(yaw=10.0))[1] == []
    assert json.dumps(out.to_dict())  # finite, serializable
