"""The short fuzz run, part of the default suite: 1,000 seeded cases by default (FACEEDITOR_FUZZ_SHORT_CASES,
FACEEDITOR_FUZZ_SEED), every one with a checked outcome. The long run: ``test_fuzz_long.py``."""

from __future__ import annotations

import pytest
from fuzz_files import fuzz_images, fuzz_sessions
from fuzz_values import fuzz_presets, fuzz_values
from tally import Tally, counts, seed

COUNTS = counts(long=False)


def _report(tally: Tally, capsys: pytest.CaptureFixture) -> None:
    with capsys.disabled():
        print(f"\n{tally.line()}")
    assert tally.cases == COUNTS[tally.kind]
    tally.assert_clean()


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
def test_fuzz_images_short(tmp_path, capsys) -> None:
    _report(fuzz_images(COUNTS["images"], seed(), tmp_path), capsys)


def test_fuzz_sessions_short(tmp_path, capsys) -> None:
    _report(fuzz_sessions(COUNTS["sessions"], seed(), tmp_path), capsys)


def test_fuzz_presets_short(tmp_path, capsys) -> None:
    _report(fuzz_presets(COUNTS["presets"], seed(), tmp_path), capsys)


def test_fuzz_values_short(capsys) -> None:
    _report(fuzz_values(COUNTS["values"], seed()), capsys)
