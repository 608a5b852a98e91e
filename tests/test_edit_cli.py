"""``faceeditor edit`` and ``faceeditor batch`` end to end, with the fitter replaced by the known
answer of synthetic photos (and, marked slow, with the real fitter)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from faceeditor.cli import main
from faceeditor.core.errors import NoFaceError
from faceeditor.edit.scene import synthetic_photo
from faceeditor.io import load_image, save_image
from faceeditor.jobs import photo_edit
from faceeditor.morphable import default_model_path, load_face_model


@pytest.fixture(scope="module")
def model():
    if not default_model_path().is_file():
        pytest.skip("resources/face_model.npz missing")
    return load_face_model("cpu")


@pytest.fixture(scope="module")
def scenes(model):
    return [synthetic_photo(model, seed=s, size=(320, 256)) for s in (11, 12, 13)]


def _key(rgb: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(rgb).tobytes()).hexdigest()


@pytest.fixture
def fake_fitter(monkeypatch, scenes):
    """``faceeditor.fit.pipeline.fit_photo`` answering with the synthetic ground truth."""

    table = {_key(s.photo): s.state for s in scenes}
    calls = []

    def fit_photo(rgb, face_index=None, all_faces=False, photometric=True, texture_size=512, progress=None):
        calls.append((rgb.shape, face_index, all_faces))
        state = table.get(_key(rgb))
        if state is None:
            if len(table) == 1 or rgb.std() > 1:  # a re-encoded (JPEG) copy of the single scene
                state = next(iter(table.values())) if len(table) == 1 else None
            if state is None:
                raise NoFaceError("no face in this photo")
        return [state.copy()]

    monkeypatch.setattr(photo_edit, "fit_photo", fit_photo)  # what photo_edit.fitter() returns
    fit_photo.table = table
    fit_photo.calls = calls
    return fit_photo


# --------------------------------------------------------------------------- edit
def test_edit_writes_full_resolution_like_the_input(tmp_path, scenes, fake_fitter, capsys) -> None:
    scene = scenes[0]
    src = tmp_path / "in.png"
    save_image(src, scene.photo)
    out = tmp_path / "out.png"
    rc = main(["edit", str(src), "-o", str(out), "--yaw", "10", "--expr", "mouthSmile_L=0.7,mouthSmile_R=0.7",
               "--save-params", str(tmp_path / "p.json")])
    assert rc == 0, capsys.readouterr().err
    img = load_image(out)
    assert img.pixels.shape == scene.photo.shape
    diff = np.abs(img.pixels.astype(int) - scene.photo.astype(int)).max(-1)
    assert (diff > 20).mean() > 0.02  # the face moved
    assert diff[:8, :8].max() == 0  # the corner did not
    params = json.loads((tmp_path / "p.json").read_text())
    assert params["yaw"] == 10 and params["expression"]["mouthSmile_R"] == 0.7
    assert fake_fitter.calls[-1][1:] == (0, False)
    assert "wrote" in capsys.readouterr().out


def test_edit_keeps_jpeg_quality_and_exif(tmp_path, scenes, fake_fitter) -> None:
    from PIL import Image

    scene = scenes[0]
    src = tmp_path / "in.jpg"
    exif = Image.Exif()
    exif[0x010F] = "FaceEditorTestCam"  # Make
    Image.fromarray(scene.photo).save(src, quality=88, exif=exif.tobytes())
    fake_fitter.table.clear()
    fake_fitter.table["jpeg"] = scene.state  # the single scene answers any photo
    out = tmp_path / "out.jpg"
    assert main(["edit", str(src), "-o", str(out), "--preset", "smile:0.6", "--light-azimuth", "40",
                 "--light-elevation", "20", "--light-intensity", "1.2"]) == 0
    a, b = load_image(src), load_image(out)
    assert b.format == "JPEG" and b.size == a.size
    assert b.jpeg_quality is not None and abs(b.jpeg_quality - a.jpeg_quality) <= 3
    assert b"FaceEditorTestCam" in (b.exif or b"")


def test_edit_errors(tmp_path, scenes, fake_fitter, capsys) -> None:
    src = tmp_path / "in.png"
    save_image(src, scenes[0].photo)
    assert main(["edit", str(src), "-o", str(src), "--yaw", "5"]) == 2  # would overwrite the input
    assert "--force" in capsys.readouterr().err
    assert main(["edit", str(src), "-o", str(tmp_path / "o.png"), "--expr", "mouthSmirk=1"]) == 2
    assert "unknown expression" in capsys.readouterr().err
    assert main(["edit", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png"), "--yaw", "5"]) == 2
    assert main(["edit", str(src), "-o", str(tmp_path / "nodir" / "o.png"), "--yaw", "5"]) == 2
    capsys.readouterr()
    blank = tmp_path / "blank.png"
    save_image(blank, np.zeros((64, 64, 3), np.uint8))
    assert main(["edit", str(blank), "-o", str(tmp_path / "o.png"), "--yaw", "5"]) == 2
    err = capsys.readouterr().err
    assert "blank.png" in err and "no face" in err and "Traceback" not in err  # the message names the photo
    assert not (tmp_path / "o.png").exists()


# --------------------------------------------------------------------------- batch
def _batch_input(tmp_path, scenes):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    save_image(src / "a.png", scenes[0].photo)
    save_image(src / "sub" / "b.png", scenes[1].photo)
    save_image(src / "c.png", scenes[2].photo)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    save_image(src / "blank.png", np.zeros((64, 64, 3), np.uint8))  # no face
    (src / "notes.txt").write_text("not an image")
    preset = tmp_path / "smile.json"
    from faceeditor.edit.params import EditParams

    EditParams(yaw=8.0).with_preset("smile", 0.6).save(preset)
    return src, tmp_path / "out", preset


def test_batch_skips_bad_files_never_overwrites_and_resumes(tmp_path, scenes, fake_fitter, capsys) -> None:
    src, out, preset = _batch_input(tmp_path, scenes)
    rc = main(["batch", str(src), str(out), "--preset-file", str(preset)])
    cap = capsys.readouterr()
    assert rc == 1  # some photos failed
    for rel in ("a.png", "sub/b.png", "c.png"):
        assert (out / rel).is_file()
    assert not (out / "broken.jpg").exists() and not (out / "blank.png").exists()
    assert "3 edited" in cap.out and "2 failed" in cap.out
    assert "broken.jpg" in cap.out and "blank.png" in cap.out  # listed in the summary
    assert "[" in cap.err and "5/5" in cap.err  # progress
    report = json.loads((out / "batch_report.json").read_text())
    assert len(report["ok"]) == 3 and len(report["failed"]) == 2

    # never overwrite without --force
    marker = np.full_like(scenes[0].photo, 7)
    save_image(out / "a.png", marker)
    (out / "sub" / "b.png").unlink()  # an interrupted run: resume redoes only what is missing
    n_calls = len(fake_fitter.calls)
    rc = main(["batch", str(src), str(out), "--preset-file", str(preset)])
    cap = capsys.readouterr()
    assert "3 to do, 2 already" in cap.out  # b.png + the two bad files
    assert np.array_equal(load_image(out / "a.png").pixels, marker)
    assert (out / "sub" / "b.png").is_file()
    assert len(fake_fitter.calls) - n_calls == 2  # b.png and blank.png reached the fitter

    rc = main(["batch", str(src), str(out), "--preset-file", str(preset), "--force"])
    assert not np.array_equal(load_image(out / "a.png").pixels, marker)


def test_batch_needs_an_edit(tmp_path, scenes, fake_fitter, capsys) -> None:
    src, out, _ = _batch_input(tmp_path, scenes)
    assert main(["batch", str(src), str(out)]) == 2
    assert "changes nothing" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "nope"), str(out), "--yaw", "5"]) == 2


# --------------------------------------------------------------------------- real fitter
def test_edit_with_the_real_fitter(tmp_path) -> None:
    pytest.importorskip("faceeditor.fit.pipeline")
    from faceeditor.core.paths import sample_image_path

    out = tmp_path / "astronaut_yaw.png"
    assert main(["edit", str(sample_image_path()), "-o", str(out), "--yaw", "15", "--preset", "smile:0.5",
                 "--light-azimuth", "40", "--light-elevation", "20"]) == 0
    a, b = load_image(sample_image_path()).pixels, load_image(out).pixels
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_batch_outputs_are_unique_per_input(tmp_path) -> None:
    from faceeditor.commands.batch import output_plan

    src, out = tmp_path / "in", tmp_path / "out"
    files = [src / "x.gif", src / "x.png", src / "X.PNG", src / "y.bmp", src / "sub" / "x.gif"]
    plan = output_plan(files, src, out)
    dsts = [d for _, d in plan]
    assert len({str(d).lower() for d in dsts}) == len(files)  # one output per input
    two = dict(output_plan([src / "x.gif", src / "x.png"], src, out))
    assert two[src / "x.png"] == out / "x.png"  # the input that keeps its format keeps its name
    assert two[src / "x.gif"] == out / "x.gif.png"
    assert dict(plan)[src / "sub" / "x.gif"] == out / "sub" / "x.png"  # no collision there
    assert output_plan(files, src, out) == plan  # deterministic (resumes find the same names)


def test_batch_with_colliding_names_writes_both(tmp_path, scenes, fake_fitter, capsys) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    save_image(src / "x.png", scenes[0].photo)
    from PIL import Image

    Image.fromarray(scenes[1].photo).save(src / "x.gif")  # GIF is read, not written: -> .png
    fake_fitter.table[_key(load_image(src / "x.gif").pixels)] = scenes[1].state  # its palette copy
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({"yaw": 10.0}))
    rc = main(["batch", str(src), str(out), "--preset-file", str(preset)])
    cap = capsys.readouterr()
    assert rc == 0, cap.out + cap.err
    assert (out / "x.png").is_file() and (out / "x.gif.png").is_file()
    assert "2 edited" in cap.out


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc needed")
def test_batch_workers_die_with_their_parent(tmp_path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from faceeditor.core.paths import sample_image_path

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(8):
        (src / f"p{i}.png").write_bytes(sample_image_path().read_bytes())
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({"yaw": 10.0}))
    proc = subprocess.Popen([sys.executable, "-m", "faceeditor", "batch", str(src), str(out), "--preset-file",
                             str(preset), "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        workers: list[int] = []
        while time.time() < deadline and len(workers) < 2:
            workers = [c for c in _children(proc.pid) if "spawn_main" in (Path("/proc") / str(c) / "cmdline").read_bytes().decode(errors="replace")]
            time.sleep(0.2)
        assert len(workers) >= 2, "the batch did not start its workers"
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        t0 = time.time()
        while time.time() - t0 < 2.0 and any(_alive(w) for w in workers):
            time.sleep(0.05)
        assert not any(_alive(w) for w in workers), "workers outlived their killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_batch_resume_removes_orphan_temp_files(tmp_path) -> None:
    from faceeditor.commands.batch import remove_orphan_temps

    (tmp_path / "sub").mkdir()
    orphan = tmp_path / "sub" / ".a.png.0123456789ab.tmp"
    orphan.write_bytes(b"half a png")
    keep = [tmp_path / "a.png", tmp_path / ".hidden.tmp", tmp_path / "notes.tmp"]
    for k in keep:
        k.write_bytes(b"x")
    assert remove_orphan_temps(tmp_path) == 1
    assert not orphan.exists() and all(k.exists() for k in keep)


def test_a_command_loads_only_its_own_module() -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom faceeditor.cli import main\ntry:\n    main(['detect', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('faceeditor.commands.', 'faceeditor.bench'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "faceeditor.commands.detect" in out
    assert "faceeditor.commands.fit" not in out and "faceeditor.bench" not in out
