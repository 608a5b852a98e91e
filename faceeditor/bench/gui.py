"""``faceeditor bench gui``: how the editor window feels, measured on the real window.

Runs the real window (fitter, compositor, OpenGL viewport) under the current display, or
re-runs itself under ``xvfb-run`` when there is none. On a 1024 px photo (the sample
portrait upscaled, or ``--photo``):

* ``first_fit_ms``: file dropped on the window -> the fitted head is drawn in the 3D viewport;
* ``slider_latency_ms_median`` / ``_p95``: a slider step (one event, then a pause, as with
  arrow keys or a nudge) -> the canvas paints a render of that edit (preview scale);
* ``slider_drag_latency_ms_median`` / ``_p95``: the same during a continuous drag (an event
  every 33 ms), where a render may have to finish before the newest one starts;
* ``ui_stall_ms_max``: the longest the UI thread went without running a 5 ms timer, from the
  drop to the end of the slider runs (fitting and renders in the background);
* ``viewport_fps``: frames drawn per second while the 3D view orbits continuously;
* ``drag_fps`` / ``drag_frames_max_gap_ms``: new renders shown per second while the yaw slider's
  handle is dragged by synthetic mouse events at 60 Hz for 3 s, and the longest wait for one;
  ``drag_fps_loaded`` the same with one busy process per core (:mod:`._gui_drag`);
* ``preview_render_ms_standalone``: the same preview render (the window's photo, fit, preview size
  and thread count; a yaw sweep) timed outside the window at the end of the run: the host's speed
  when the latencies were measured (on one machine it moved from 27 to 38 ms within an hour);
* ``first_window_ms`` / ``quit_ms``: process start -> window on screen, close -> process ended,
  on the application as ``run.sh`` starts it; ``big_photo_fit_s`` / ``_edit_s`` / ``_peak_mb``: a
  6000 x 4000 JPEG fitted, edited and exported in a child process (:mod:`._gui_proc`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from faceeditor.bench._gui_drag import busy_processes, drag_figures, drag_slider
from faceeditor.bench._gui_proc import big_photo, start_and_quit
from faceeditor.core.paths import sample_image_path
from faceeditor.edit.params import EditParams
from faceeditor.io import load_image, save_image

NAME = "gui"
HELP = "time the editor window: first fit, slider-to-pixels latency, UI stalls, viewport fps"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--photo", type=Path, default=None, help="photo to drop (default: sample at 1024 px)")
    parser.add_argument("--size", type=int, default=1024, help="long side the photo is resized to (default 1024)")
    parser.add_argument("--steps", type=int, default=30, help="slider steps per run (default 30)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as the editor)")
    parser.add_argument("--screenshot", type=Path, default=None, help="save a PNG of the window at the end")
    parser.add_argument("--skip-big", action="store_true", help="skip the 6000 x 4000 photo (minutes on a CPU)")


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _heavy() -> SimpleNamespace:
    """Qt, the window and OpenCV: imported when the benchmark runs, not when the command line
    builds its parser (which imports every benchmark module)."""
    import cv2
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from faceeditor.app.driver import Driver
    from faceeditor.app.engine import Engine
    from faceeditor.app.main import create_application
    from faceeditor.app.window import MainWindow

    return SimpleNamespace(cv2=cv2, QTimer=QTimer, QApplication=QApplication, Driver=Driver, Engine=Engine,
                           create_application=create_application, MainWindow=MainWindow)


def _prepare_photo(args, folder: Path) -> Path:
    cv2 = _heavy().cv2
    rgb = load_image(args.photo or sample_image_path()).pixels
    h, w = rgb.shape[:2]
    s = args.size / max(h, w)
    if abs(s - 1.0) > 1e-6:
        rgb = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
    out = folder / "bench_photo.png"
    save_image(out, rgb)
    return out


def _rerun_under_xvfb(args) -> dict:
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        raise RuntimeError("no display and no xvfb-run: run under a display or install xvfb")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gui.json"
        cmd = [xvfb, "-a", "-s", "-screen 0 1600x1000x24", sys.executable, "-m", "faceeditor", "bench", "gui",
               "--json", str(out), "--size", str(args.size), "--steps", str(args.steps), "--threads", str(args.threads)]
        if args.photo:
            cmd += ["--photo", str(args.photo)]
        if args.screenshot:
            cmd += ["--screenshot", str(args.screenshot)]
        if args.skip_big:
            cmd += ["--skip-big"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def run(args: argparse.Namespace) -> dict:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return _rerun_under_xvfb(args)
    if os.environ.get("QT_QPA_PLATFORM", "offscreen") == "offscreen" and os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "xcb"  # a real OpenGL viewport under the X server
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FACEEDITOR_HOME"] = str(Path(tmp) / "home")
        photo = _prepare_photo(args, Path(tmp))
        result = _measure(args, photo)
        result.update(start_and_quit(photo, args.threads))
        if not args.skip_big:
            result.update(big_photo(args.photo or sample_image_path(), args.threads))
        result["load_average_1min_end"] = round(os.getloadavg()[0], 2)
        return result


class _StallMonitor:
    """A 5 ms timer on the UI thread: how late each tick comes is how long the thread was busy."""

    def __init__(self, QTimer) -> None:
        self.gaps: list[float] = []  # ms late, per tick
        self._last = time.perf_counter()
        self._timer = QTimer(interval=5)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self._last) * 1e3 - 5.0)
        self._last = now

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()


@dataclass
class _FitTimes:
    first_fit_ms: float  # drop -> the fitted head drawn in the viewport
    fit_done_ms: float  # drop -> every fit stage done and the full-resolution render shown
    warm_up_ms: float  # the renderers' idle warm-up after the fit
    n_fit_gaps: int  # stall-monitor ticks up to the end of the fit


@dataclass
class _SliderRuns:
    step_ms: list[float] = field(default_factory=list)  # one event, then a pause
    drag_ms: list[float] = field(default_factory=list)  # an event every 33 ms


def _drop_and_fit(d, win, photo: Path, stalls: _StallMonitor) -> _FitTimes:
    """Drop ``photo`` on the window and wait for the fit, its renders and the renderers' warm-up."""
    t_drop = d.drop(photo)
    vp = win.viewport
    d.pump(120, lambda: vp.stamp >= 0 and vp.frame_times and vp.frame_times[-1] > t_drop and vp.frames > 0
           and win.timings.first_fit_ms is not None)
    d.pump(5, lambda: vp.frame_times and vp.frame_times[-1] >= t_drop + (win.timings.first_fit_ms or 0) / 1e3)
    first_fit_ms = (vp.frame_times[-1] - t_drop) * 1e3 if vp.frame_times else float("nan")
    d.wait_fitted(180)
    d.wait_idle(60)
    fit_done_ms = (time.perf_counter() - t_drop) * 1e3
    n_fit_gaps = len(stalls.gaps)
    warm = time.perf_counter()
    d.pump(60, lambda: win.worker._idle_prepare is None)  # the renderers' warm-up after the fit
    return _FitTimes(first_fit_ms, fit_done_ms, (time.perf_counter() - warm) * 1e3, n_fit_gaps)


def _latency_run(d, win, values: list[float], spacing: float, paints: list[tuple[int, float]]) -> list[float]:
    """Move the yaw slider through ``values``, ``spacing`` seconds apart: event -> painted, ms."""
    out: list[float] = []
    pending: list[tuple[int, float]] = []
    paints.clear()
    for v in values:
        t0 = time.perf_counter()
        stamp = d.set_slider(win.pose_panel.sliders["yaw"], v)
        pending.append((stamp, t0))
        d.pump(spacing)
        _collect(pending, paints, out)
    d.pump(3.0, lambda: not pending or not _collect(pending, paints, out))
    d.wait_idle(30)
    return out


def _slider_runs(d, win, steps: int) -> _SliderRuns:
    paints: list[tuple[int, float]] = []
    win.canvas.painted.connect(lambda stamp, t: paints.append((stamp, t)))
    nudges = [(-1) ** i * (4 + (i % 5) * 2.5) for i in range(steps)]
    drag = [20 * (i / max(steps - 1, 1)) - 10 for i in range(steps)]
    step_ms = _latency_run(d, win, nudges, 0.25, paints)
    return _SliderRuns(step_ms, _latency_run(d, win, drag, 1 / 30, paints))


def _viewport_fps(d, vp, seconds: float = 2.5) -> float:
    """Frames per second while the 3D view orbits continuously."""
    vp.reset_view()
    d.pump(0.3)
    n0, t0 = vp.frames, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        vp.cam.yaw = 30 * math.sin((time.perf_counter() - t0) * 2)
        vp.update()
        d.app.processEvents()
    return (vp.frames - n0) / (time.perf_counter() - t0)


def _standalone_preview_ms(win, renders: int = 20) -> float:
    """Median time of the window's preview render made outside the window (a fresh mesh renderer
    for the same photo, fit and preview scale; yaw -10..10), on the UI thread once it is idle."""
    doc = win.doc
    renderer = win.engine.make_renderer(doc.photo, doc.state, "mesh", preview=True)
    scale = win.preview_scale()
    edits = [EditParams(yaw=20.0 * i / (renders - 1) - 10.0) for i in range(renders)]
    renderer.render(edits[0], scale=scale)  # sets the renderer up for this size
    times = []
    for edit in edits:
        t0 = time.perf_counter()
        renderer.render(edit, scale=scale)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _measure(args, photo: Path) -> dict:
    """One scripted session on the real window: drop, fit, slider runs, viewport orbit."""
    qt = _heavy()
    qt.create_application()
    win = qt.MainWindow(qt.Engine(threads=args.threads))
    win.resize(1480, 920)
    win.show()
    d = qt.Driver(win)
    d.pump(60, lambda: win.lbl_device.text() != "device …")  # warm-up done (model, detector)
    d.pump(0.5)
    stalls = _StallMonitor(qt.QTimer)
    stalls.start()
    fit = _drop_and_fit(d, win, photo, stalls)
    sliders = _slider_runs(d, win, args.steps)
    drag = drag_slider(d, win, win.pose_panel.sliders["yaw"])
    d.wait_idle(30)
    stalls.stop()
    with busy_processes():
        drag_loaded = drag_slider(d, win, win.pose_panel.sliders["yaw"])
        d.wait_idle(60)
    fps = _viewport_fps(d, win.viewport)
    d.wait_idle(30)
    standalone_ms = _standalone_preview_ms(win)
    if args.screenshot:
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        win.grab().save(str(args.screenshot))
    result = _figures(args, win, fit, sliders, stalls.gaps, fps, qt.QApplication.platformName())
    result.update(drag_figures(drag, drag_loaded))
    result["preview_render_ms_standalone"] = round(standalone_ms, 1)
    win.shutdown()
    win.close()
    return result


def _figures(args, win, fit: _FitTimes, sliders: _SliderRuns, gaps: list[float], fps: float,
             platform: str) -> dict:
    """The benchmark's JSON (keys are a contract: see the module docstring)."""
    step_lat, drag_lat = sliders.step_ms, sliders.drag_ms
    return {
        "first_fit_ms": round(fit.first_fit_ms, 1),
        "slider_latency_ms_median": round(statistics.median(step_lat), 1) if step_lat else None,
        "slider_latency_ms_p95": round(_percentile(step_lat, 0.95), 1) if step_lat else None,
        "slider_drag_latency_ms_median": round(statistics.median(drag_lat), 1) if drag_lat else None,
        "slider_drag_latency_ms_p95": round(_percentile(drag_lat, 0.95), 1) if drag_lat else None,
        "ui_stall_ms_max": round(max(gaps) if gaps else float("nan"), 1),
        "ui_stall_ms_max_fitting": round(max(gaps[:fit.n_fit_gaps], default=0.0), 1),
        "ui_stall_ms_max_sliders": round(max(gaps[fit.n_fit_gaps:], default=0.0), 1),
        "ui_stall_ms_p99": round(_percentile(gaps, 0.99), 1),
        "viewport_fps": round(fps, 1),
        "fit_complete_ms": round(fit.fit_done_ms, 1),
        "fit_ms": round(win.timings.fit_ms or 0.0, 1),
        "renderer_warm_up_ms": round(fit.warm_up_ms, 1),
        "photo_px": list(win.doc.photo.shape[1::-1]),
        "preview_px": round(max(win.doc.photo.shape[:2]) * win.preview_scale()),
        "full_render_ms": round(win.timings.render_ms or 0.0, 1),
        "slider_samples": [len(step_lat), len(drag_lat)],
        "device": win.lbl_device.text(),
        "viewport": type(win.viewport).__name__,
        "platform": platform,
        "torch_threads": args.threads,
        "load_average_1min": round(os.getloadavg()[0], 2),  # other programs competing for the CPU
    }


def _collect(pending: list[tuple[int, float]], paints: list[tuple[int, float]], out: list[float]) -> bool:
    """Move events whose stamp has been painted from ``pending`` to ``out``; True if any remain."""
    for stamp, t_ev in list(pending):
        hit = next((t for s, t in paints if s >= stamp and t >= t_ev), None)
        if hit is not None:
            out.append((hit - t_ev) * 1e3)
            pending.remove((stamp, t_ev))
    return bool(pending)
