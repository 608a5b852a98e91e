"""``faceeditor batch``: the report is cumulative across a kill -9 and a resume, and ``--scheduler``
runs the same job on a Dask cluster (a ``LocalCluster`` started here) with byte-identical outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_edit_cli import _key, fake_fitter, model, scenes  # noqa: F401 - fixtures shared with the batch tests

from faceeditor.cli import main
from faceeditor.io import save_image
from faceeditor.jobs import photo_edit
from faceeditor.morphable import default_model_path

# A batch whose edit copies the photo (no fitter, no renderer) and whose 4th photo kills the process
# with SIGKILL, as `kill -9` would: no `finally`, no summary, no last report write.
KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from faceeditor.cli import main
    from faceeditor.io import load_image, save_image
    from faceeditor.jobs import photo_edit

    calls = []

    def edit_file(src, dst, *args, **kwargs):
        calls.append(src)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        save_image(dst, load_image(src).pixels)

    photo_edit.edit_file = edit_file
    sys.exit(main(["batch", sys.argv[1], sys.argv[2], "--yaw", "5"]))
""")


def _copying_edit(src, dst, *args, **kwargs):
    from faceeditor.io import load_image

    save_image(dst, load_image(src).pixels)


def _photos(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    out = []
    for i in range(n):
        rgb = np.random.default_rng(i).integers(0, 256, (24, 32, 3), dtype=np.uint8)
        out.append(save_image(folder / f"p{i}.png", rgb))
    (folder / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return out


@pytest.mark.skipif(not default_model_path().is_file(), reason="resources/face_model.npz missing")
def test_report_is_cumulative_across_a_kill_and_a_resume(tmp_path, monkeypatch, capsys) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    photos = _photos(src, 5)  # sorted: bad.jpg, p0 .. p4; the 4th edit (p2) is killed
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(src), str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    report = json.loads((out / "batch_report.json").read_text())
    assert report["ok"] == [str(photos[0]), str(photos[1])]  # written after every photo
    assert list(report["failed"]) == [str(src / "bad.jpg")] and report["finished"] is False

    monkeypatch.setattr(photo_edit, "edit_file", _copying_edit)
    assert main(["batch", str(src), str(out), "--yaw", "5"]) == 1  # bad.jpg still fails
    assert "4 to do, 2 already" in capsys.readouterr().out  # bad.jpg, p2 (killed), p3, p4
    report = json.loads((out / "batch_report.json").read_text())
    assert report["ok"] == sorted(str(p) for p in photos)  # the killed run's successes too
    assert (
        list(report["failed"]) == [str(src / "bad.jpg")]
        and "truncated or corrupt" in report["failed"][str(src / "bad.jpg")]
    )
    assert report["finished"] is True and report["interrupted"] is False
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]

    (out / "batch_report.json").unlink()  # a lost report: the outputs alone say what is done
    (src / "bad.jpg").unlink()
    assert main(["batch", str(src), str(out), "--yaw", "5"]) == 0
    report = json.loads((out / "batch_report.json").read_text())
    assert report["ok"] == sorted(str(p) for p in photos) and report["failed"] == {}


def test_batch_does_not_import_dask_without_a_scheduler() -> None:
    code = (
        "import sys\nfrom faceeditor.cli import main\ntry:\n    main(['batch', '--help'])\nexcept SystemExit:\n"
        "    pass\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert "--scheduler ADDRESS" in out.stdout and out.stdout.rstrip().endswith("[]")


@pytest.fixture
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        yield c


def test_batch_on_a_dask_cluster_matches_the_local_run(tmp_path, scenes, fake_fitter, cluster, capsys) -> None:  # noqa: F811
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i, rel in enumerate(("a.png", "sub/b.png", "c.png")):
        save_image(src / rel, scenes[i].photo)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({"yaw": 8.0, "expression": {"mouthSmile_L": 0.6, "mouthSmile_R": 0.6}}))
    local, dask_out = tmp_path / "local", tmp_path / "dask"
    assert main(["batch", str(src), str(local), "--preset-file", str(preset)]) == 1
    capsys.readouterr()
    rc = main(
        ["batch", str(src), str(dask_out), "--preset-file", str(preset), "--scheduler", cluster.scheduler_address]
    )
    cap = capsys.readouterr()
    assert rc == 1, cap.out + cap.err
    assert f"Dask scheduler {cluster.scheduler_address}" in cap.out and "3 edited" in cap.out
    for rel in ("a.png", "sub/b.png", "c.png"):
        assert (dask_out / rel).read_bytes() == (local / rel).read_bytes(), rel  # byte-identical
    a, b = (json.loads((d / "batch_report.json").read_text()) for d in (local, dask_out))
    assert a["ok"] == b["ok"] and len(b["ok"]) == 3 and a["failed"] == b["failed"] and b["finished"]

    rc = main(
        ["batch", str(src), str(dask_out), "--preset-file", str(preset), "--scheduler", cluster.scheduler_address]
    )
    assert "1 to do, 3 already" in capsys.readouterr().out  # resumable: only the broken one is retried
    assert json.loads((dask_out / "batch_report.json").read_text())["ok"] == a["ok"]


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, monkeypatch, capsys) -> None:
    pytest.importorskip("distributed")
    from faceeditor.commands import _batch_dask

    monkeypatch.setattr(_batch_dask, "CONNECT_TIMEOUT_S", 2)
    monkeypatch.setattr(photo_edit, "edit_file", _copying_edit)
    _photos(tmp_path / "in", 1)
    rc = main(["batch", str(tmp_path / "in"), str(tmp_path / "out"), "--yaw", "5", "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot reach the Dask scheduler" in err and "Traceback" not in err


@pytest.mark.slow
def test_dask_with_worker_processes_matches_local_on_20_lfw_photos(tmp_path, data_dir, capsys) -> None:
    """The issue's target with the real fitter: 20 LFW photos, two worker processes, byte-identical outputs."""
    distributed = pytest.importorskip("distributed")
    src = tmp_path / "in"
    src.mkdir()
    people = sorted(p for p in (data_dir / "lfw").iterdir() if p.is_dir())[:20]
    for person in people:
        first = min(person.glob("*.jpg"))
        (src / first.name).write_bytes(first.read_bytes())
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({"yaw": 8.0, "expression": {"mouthSmile_L": 0.5, "mouthSmile_R": 0.5}}))
    local, dask_out = tmp_path / "local", tmp_path / "dask"
    main(["batch", str(src), str(local), "--preset-file", str(preset)])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        main(["batch", str(src), str(dask_out), "--preset-file", str(preset), "--scheduler", c.scheduler_address])
    capsys.readouterr()
    a, b = (json.loads((d / "batch_report.json").read_text()) for d in (local, dask_out))
    assert a["ok"] == b["ok"] and a["failed"] == b["failed"] and len(a["ok"]) >= 15
    outputs = sorted(p.relative_to(local) for p in local.rglob("*.jpg"))
    assert len(outputs) == len(a["ok"])
    differ = [str(rel) for rel in outputs if (local / rel).read_bytes() != (dask_out / rel).read_bytes()]
    assert not differ, f"{len(differ)} of {len(outputs)} outputs differ: {differ[:5]}"
    with capsys.disabled():
        print(
            f"\ndask vs local: {len(outputs)} of {len(people)} photos edited, all byte-identical; "
            f"{len(a['failed'])} failed in both: {sorted(a['failed'].values())[:3]}"
        )
