"""The long fuzz run (marker ``fuzz``: ``./test.sh -m fuzz``): >= 10,000 seeded cases over images,
sessions, presets and edit values (FACEEDITOR_FUZZ_CASES sets the total), and absurd input through
the real command line in subprocesses: exit status 2, one line naming the file or field, no
traceback, no file written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fuzz_files import fuzz_images, fuzz_sessions
from fuzz_values import fuzz_presets, fuzz_values
from PIL import Image
from tally import Tally, counts, seed

from faceeditor.core.paths import sample_image_path

pytestmark = pytest.mark.fuzz
COUNTS = counts(long=True)


def _report(tally: Tally, capsys: pytest.CaptureFixture) -> None:
    with capsys.disabled():
        print(f"\n{tally.line()}")
    assert tally.cases == COUNTS[tally.kind]
    assert tally.crashes == 0
    tally.assert_clean()


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
def test_fuzz_images_long(tmp_path, capsys) -> None:
    _report(fuzz_images(COUNTS["images"], seed(), tmp_path), capsys)


def test_fuzz_sessions_long(tmp_path, capsys) -> None:
    _report(fuzz_sessions(COUNTS["sessions"], seed(), tmp_path), capsys)


def test_fuzz_presets_long(tmp_path, capsys) -> None:
    _report(fuzz_presets(COUNTS["presets"], seed(), tmp_path), capsys)


def test_fuzz_values_long(capsys) -> None:
    _report(fuzz_values(COUNTS["values"], seed()), capsys)


# --------------------------------------------------------------------------- the command line
PRESETS = {
    "nan.json": ('{"yaw": NaN}', "yaw"),
    "list.json": ("[1, 2, 3]", "list.json"),
    "expr_list.json": ('{"expression": [1, 2]}', "expr_list.json"),
    "sh_bool.json": ('{"light": {"sh": true}}', "light.sh"),
    "huge.json": ('{"roll": 1' + "0" * 400 + "}", "roll"),
    "cut.json": ('{"yaw": 5, "expre', "cut.json"),
}
# mediapipe's native (absl) start-up chatter, e.g. "W0000 00:00:1796.. 123 inference_feedback_manager.cc:114] ..."
# still leaks now and then from its graph threads (issue 14, item 7): tolerated here, nothing else is
NATIVE_LOG = re.compile(r"^[IWE]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ")
# (arguments after PHOTO -o OUT, words the error must hold); "{sample}" runs on the sample portrait
CLI_CASES = [
    (["--yaw", "nan"], "yaw"),
    (["--yaw", "-inf"], "yaw"),
    (["--roll", "400"], "roll"),
    (["--pitch", "-1e-07", "--yaw", "1e999"], "yaw"),
    (["--expr", "jawOpen=inf"], "jawOpen"),
    (["--expr", "jawOpen=abc,mouthSmile_L=2"], "jawOpen"),
    (["--preset", "smile:-3"], "smile"),
    *[(["--preset-file", name], words) for name, (_, words) in PRESETS.items()],
    (["--yaw", "5", "{damaged}"], "damaged.jpg"),
    (["--yaw", "5", "{missing}"], "missing.png"),
    (["--light-intensity=-inf", "{sample}"], "light-intensity"),
]


def _cli(cwd: Path, argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-m", "faceeditor", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _inputs(folder: Path) -> Path:
    rng = np.random.default_rng(seed())
    photo = folder / "photo.png"
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(photo)
    buf = folder / "damaged.jpg"
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(buf, quality=90)
    buf.write_bytes(buf.read_bytes()[: buf.stat().st_size // 3])
    for name, (text, _) in PRESETS.items():
        (folder / name).write_text(text)
    return photo


@pytest.mark.parametrize("case", range(len(CLI_CASES)))
def test_fuzz_command_line(tmp_path, case) -> None:
    extra, words = CLI_CASES[case]
    photo = _inputs(tmp_path)
    if "{damaged}" in extra or "{missing}" in extra or "{sample}" in extra:
        marker = next(a for a in extra if a.startswith("{"))
        extra = [a for a in extra if a != marker]
        photo = {
            "{damaged}": tmp_path / "damaged.jpg",
            "{missing}": tmp_path / "missing.png",
            "{sample}": sample_image_path(),
        }[marker]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = _cli(tmp_path, ["edit", str(photo), "-o", "out.png", *extra])
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not NATIVE_LOG.match(ln)]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("faceeditor edit: error: "), proc.stderr
    assert words in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, not even a temp file


def test_fuzz_batch_of_damaged_files(tmp_path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(seed())
    for i in range(12):
        path = src / f"d{i}.{('jpg', 'png')[i % 2]}"
        Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size * (i + 1) // 30])  # less than half
    proc = _cli(tmp_path, ["batch", str(src), str(out), "--yaw", "5"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    report = json.loads((out / "batch_report.json").read_text())
    assert report["ok"] == [] and sorted(report["failed"]) == sorted(str(p) for p in src.iterdir())
    assert all(msg for msg in report["failed"].values()) and report["finished"] is True
    assert sorted(p.name for p in out.iterdir()) == ["batch_report.json"]
