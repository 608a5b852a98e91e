"""Defects the fuzz suite (``tests/fuzz``) found, pinned as plain regression tests."""

from __future__ import annotations

import argparse

import pytest

from faceeditor.cli import _attach_negative_words
from faceeditor.core.errors import EditValueError
from faceeditor.edit.args import add_edit_arguments, base_edit
from faceeditor.edit.limits import check_edit
from faceeditor.edit.params import EditParams


def _load(tmp_path, text: str) -> EditParams:
    path = tmp_path / "p.json"
    path.write_text(text)
    return check_edit(EditParams.load(path))


def test_a_huge_integer_is_a_value_error_not_an_overflow(tmp_path) -> None:
    with pytest.raises(EditValueError, match="roll"):  # was OverflowError: a traceback on the command line
        _load(tmp_path, '{"roll": 1' + "0" * 400 + "}")
    with pytest.raises(EditValueError, match="light.azimuth"):
        _load(tmp_path, '{"light": {"azimuth": 1' + "0" * 400 + "}}")


@pytest.mark.parametrize("sh", ["true", "1.5", "[1.5]", "[[1, 2, 3]]", '"abc"', "[[1, 2, null]]"])
def test_a_light_sh_of_the_wrong_shape_is_a_value_error(tmp_path, sh) -> None:
    with pytest.raises(EditValueError, match="light.sh"):  # was TypeError: 'bool' object is not iterable
        _load(tmp_path, '{"light": {"sh": ' + sh + "}}")


def test_light_values_written_as_text_are_stored_as_numbers(tmp_path) -> None:
    edit = _load(tmp_path, '{"light": {"azimuth": "5", "intensity": " 1.5 "}}')
    assert edit.light.azimuth == 5.0 and isinstance(edit.light.azimuth, float) and edit.light.intensity == 1.5


def test_negative_numbers_in_exponent_form_stay_values() -> None:
    parser = argparse.ArgumentParser()
    add_edit_arguments(parser)
    argv = _attach_negative_words(["--pitch", "-1e-07", "--yaw", "-2.5E+1", "--roll", "-5", "--expr", "jawOpen=1"])
    args = parser.parse_args(argv)  # was: "argument --pitch: expected one argument"
    edit = base_edit(args)
    assert (edit.pitch, edit.yaw, edit.roll) == (-1e-07, -25.0, -5.0)
