"""The editor as a process (``faceeditor bench gui``): start, quit, and a 24-megapixel photo.

* :func:`start_and_quit`: ``python -m faceeditor.launch gui PHOTO`` (what ``run.sh`` runs) with
  the start-up probe (:mod:`faceeditor.app.probe`): process start -> window on screen
  (``first_window_ms``), -> editor built, -> models loaded, -> first fit shown; the window then
  closes itself while the refinement and the renderers' warm-up still run, and ``quit_ms`` is
  close -> the process has ended.
* :func:`big_photo`: a child process opens a 6000 x 4000 JPEG (the sample upscaled) in the
  window, waits for the complete fit (``big_photo_fit_s``), edits pose and expression and
  exports a full-resolution JPEG (``big_photo_edit_s``: edit -> file written); the child's peak
  resident memory is ``big_photo_peak_mb``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIG_SIZE = (6000, 4000)


def _events(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            d = json.loads(line)
            out.setdefault(d["event"], d["t"])
    return out


def _wait_rusage(p: subprocess.Popen, timeout: float) -> tuple[int, float, float]:
    """Wait for ``p`` (killed after ``timeout`` s): (exit code, time.time() at its end, peak RSS MiB)."""
    end = time.time() + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            t = time.time()
            p.returncode = os.waitstatus_to_exitcode(status)
            return p.returncode, t, ru.ru_maxrss / 1024.0
        if time.time() > end:
            p.kill()
            end = float("inf")
        time.sleep(0.002)


def start_and_quit(photo: Path, threads: int, timeout: float = 180.0) -> dict:
    """Start the app on ``photo`` in a fresh user folder; times from the process start (ms)."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.jsonl"
        env = dict(
            os.environ,
            FACEEDITOR_HOME=str(Path(tmp) / "home"),
            FACEEDITOR_PROBE=str(probe),
            FACEEDITOR_PROBE_QUIT="fitted",
            FACEEDITOR_THREADS=str(threads),
        )
        env.setdefault("QT_QPA_PLATFORM", "xcb")
        t0 = time.time()
        p = subprocess.Popen(
            [sys.executable, "-m", "faceeditor.launch", "gui", "--no-restore", str(photo)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        code, t_end, _ = _wait_rusage(p, timeout)
        ev = _events(probe)

    def ms(name: str) -> float | None:
        return round((ev[name] - t0) * 1e3, 1) if name in ev else None

    return {
        "first_window_ms": ms("shown"),
        "start_editor_ms": ms("editor"),
        "start_models_ms": ms("ready"),
        "start_first_fit_ms": ms("fitted"),
        "quit_ms": round((t_end - ev["close"]) * 1e3, 1) if "close" in ev else None,
        "start_exit_code": code,
    }


def make_big_photo(folder: Path, source: Path) -> Path:
    """``source`` upscaled to 6000 x 4000 (cropped to 3:2 first), as a quality-92 JPEG."""
    import cv2

    from faceeditor.io import load_image, save_image

    rgb = load_image(source).pixels
    h, w = rgb.shape[:2]
    W, H = BIG_SIZE
    if w / h > W / H:
        cw = round(h * W / H)
        rgb = rgb[:, (w - cw) // 2 : (w - cw) // 2 + cw]
    else:
        ch = round(w * H / W)
        rgb = rgb[(h - ch) // 2 : (h - ch) // 2 + ch]
    big = cv2.resize(rgb, BIG_SIZE, interpolation=cv2.INTER_CUBIC)
    out = folder / "big_6000x4000.jpg"
    save_image(out, big, quality=92)
    return out


CHILD = """
import json, sys, time
from faceeditor.bench._gui_proc import big_photo_child
print("RESULT " + json.dumps(big_photo_child(sys.argv[1], sys.argv[2], int(sys.argv[3]))), flush=True)
"""


def big_photo(source: Path, threads: int, timeout: float = 600.0) -> dict:
    """Fit and edit a 6000 x 4000 JPEG in the window of a child process (seconds, MiB)."""
    with tempfile.TemporaryDirectory() as tmp:
        photo = make_big_photo(Path(tmp), source)
        out = Path(tmp) / "edited.jpg"
        env = dict(os.environ, FACEEDITOR_HOME=str(Path(tmp) / "home"))
        p = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(photo), str(out), str(threads)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        code, _, peak_mb = _wait_rusage(p, timeout)
        lines = [ln for ln in p.stdout.read().splitlines() if ln.startswith("RESULT ")]
    r = json.loads(lines[-1][len("RESULT ") :]) if lines else {}
    return {
        "big_photo_fit_s": r.get("fit_s"),
        "big_photo_edit_s": r.get("edit_s"),
        "big_photo_peak_mb": round(peak_mb, 1),
        "big_photo_px": list(BIG_SIZE),
        "big_photo_exit_code": code,
    }


def big_photo_child(photo: str, out: str, threads: int) -> dict:
    """In the child: open ``photo`` in the window, fit, edit, export ``out`` (a JPEG)."""
    from faceeditor.app.driver import Driver
    from faceeditor.app.engine import Engine
    from faceeditor.app.main import create_application
    from faceeditor.app.window import MainWindow

    create_application()
    win = MainWindow(Engine(threads=threads))
    win.show()
    d = Driver(win)
    d.pump(120, lambda: win.lbl_device.text() != "device …")
    t0 = time.perf_counter()
    d.drop(photo)
    if not d.wait_fitted(400):
        return {"error": win.banner.text.text()}
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    win.doc.set_pose(yaw=15.0)
    win.doc.close_gesture()
    win.doc.set_macro("smile", 0.6)
    win.doc.close_gesture()
    done: list[str] = []
    win.files.export_image(out, quality=90, callback=done.append)
    ok = d.pump(400, lambda: bool(done))
    edit_s = time.perf_counter() - t1
    win.shutdown()
    return {"fit_s": round(fit_s, 2), "edit_s": round(edit_s, 2) if ok else None, "written": Path(out).is_file()}
