"""Frames while a slider is dragged by the mouse (``faceeditor bench gui``: ``drag_fps`` and kin).

A real drag of the yaw slider's handle with synthetic mouse events (``QTest.mousePress`` /
``mouseMove`` / ``mouseRelease``): a move every 1/60 s for 3 s, the handle swinging between
two values. Between moves the event loop runs as it would for a person's mouse (moves that come
while the UI thread is busy are merged, like X11 motion compression). A *frame* is a paint of
the canvas that shows a newer render than the paint before it; the 3D head counts its new
meshes. ``busy_processes`` starts one spinning process per core for the loaded run and stops
them afterwards.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

DRAG_SECONDS = 3.0
DRAG_HZ = 60.0


@dataclass
class DragRun:
    """One drag: when frames were shown (perf_counter seconds) and how the UI thread kept up."""

    t_start: float
    t_end: float
    frames: list[float] = field(default_factory=list)  # canvas paints of a newer render
    frame_px: list[int] = field(default_factory=list)  # long side of each of those renders
    meshes: list[float] = field(default_factory=list)  # new meshes in the 3D view
    moves: int = 0  # mouse moves sent
    values: list[float] = field(default_factory=list)  # the slider's value after each move
    release_to_full_ms: float = float("nan")  # release -> full-resolution render shown

    @property
    def seconds(self) -> float:
        return self.t_end - self.t_start

    def fps(self) -> float:
        return len(self.frames) / self.seconds if self.seconds > 0 else 0.0

    def mesh_fps(self) -> float:
        return len(self.meshes) / self.seconds if self.seconds > 0 else 0.0

    def max_gap_ms(self) -> float:
        """The longest the canvas went without a new frame during the drag (its ends included)."""
        times = [self.t_start, *self.frames, self.t_end]
        return max(b - a for a, b in itertools.pairwise(times)) * 1e3


def _handle_point(slider, value: float):
    """Widget position of a ValueSlider's handle centre at ``value``."""
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QStyle, QStyleOptionSlider

    s = slider.slider
    opt = QStyleOptionSlider()
    s.initStyleOption(opt)
    style = s.style()
    groove = style.subControlRect(QStyle.CC_Slider, opt, QStyle.SC_SliderGroove, s)
    handle = style.subControlRect(QStyle.CC_Slider, opt, QStyle.SC_SliderHandle, s)
    span = groove.width() - handle.width()
    i = round((value - slider.lo) / slider.step)
    x = groove.x() + handle.width() // 2 + QStyle.sliderPositionFromValue(s.minimum(), s.maximum(), i, span)
    return QPoint(x, handle.center().y())


def drag_slider(
    d,
    win,
    slider,
    lo: float = -25.0,
    hi: float = 25.0,
    seconds: float = DRAG_SECONDS,
    hz: float = DRAG_HZ,
    on_tick: Callable[[float], None] | None = None,
) -> DragRun:
    """Drag ``slider``'s handle from the middle of [lo, hi] back and forth for ``seconds``;
    ``on_tick(t)`` runs after each move (``t``: seconds into the drag), e.g. to grab a screenshot."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    s = slider.slider
    frames: list[tuple[float, int]] = []
    meshes: list[float] = []
    last = [win.canvas.stamp]

    def on_paint(stamp: int, t: float) -> None:
        if stamp > last[0]:
            last[0] = stamp
            frames.append(
                (t, max(win.canvas._after.width(), win.canvas._after.height()) if win.canvas._after is not None else 0)
            )

    mesh_stamp = [win.viewport.stamp]

    def on_frame_check() -> bool:
        """Note a new mesh in the 3D view (polled while the event loop runs); never stops the wait."""
        if win.viewport.stamp > mesh_stamp[0]:
            mesh_stamp[0] = win.viewport.stamp
            meshes.append(time.perf_counter())
        return False

    win.canvas.painted.connect(on_paint)
    mid, amp = (lo + hi) / 2, (hi - lo) / 2
    slider.set_value(mid)
    QTest.mousePress(s, Qt.LeftButton, Qt.NoModifier, _handle_point(slider, mid))
    run = DragRun(time.perf_counter(), 0.0)
    period, n = 1.0 / hz, 0
    try:
        while True:
            t = time.perf_counter() - run.t_start
            if t >= seconds:
                break
            value = mid + amp * math.sin(2 * math.pi * t / 2.0)
            QTest.mouseMove(s, _handle_point(slider, value))
            run.values.append(slider.value())
            n += 1
            if on_tick is not None:
                on_tick(t)
            next_t = run.t_start + (math.floor(t / period) + 1) * period
            d.pump(max(0.0, next_t - time.perf_counter()), until=on_frame_check, step=0.001)
        run.t_end = time.perf_counter()
        t_release = run.t_end
        QTest.mouseRelease(s, Qt.LeftButton, Qt.NoModifier, _handle_point(slider, slider.value()))
        if d.pump(15, lambda: win.canvas.stamp >= win.doc.version and win.canvas.shown_scale >= 1.0):
            run.release_to_full_ms = (time.perf_counter() - t_release) * 1e3
    finally:
        win.canvas.painted.disconnect(on_paint)
    run.moves = n
    run.frames = [t for t, _ in frames if t <= run.t_end]
    run.frame_px = [px for t, px in frames if t <= run.t_end]
    run.meshes = [t for t in meshes if t <= run.t_end]
    return run


@contextmanager
def busy_processes(n: int | None = None) -> Iterator[list[subprocess.Popen]]:
    """``n`` (default: one per core) processes spinning on the CPU at normal priority, stopped on exit."""
    n = n or os.cpu_count() or 1
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.3)  # let the scheduler see them
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def drag_figures(run: DragRun, loaded: DragRun | None) -> dict:
    """The drag keys of the benchmark's JSON."""
    px = sorted(run.frame_px)
    out = {
        "drag_fps": round(run.fps(), 1),
        "drag_frames_max_gap_ms": round(run.max_gap_ms(), 1),
        "drag_mesh_fps": round(run.mesh_fps(), 1),
        "drag_preview_px_median": px[len(px) // 2] if px else None,
        "drag_release_to_full_ms": round(run.release_to_full_ms, 1),
        "drag_moves": run.moves,
    }
    if loaded is not None:
        lpx = sorted(loaded.frame_px)
        out.update(
            {
                "drag_fps_loaded": round(loaded.fps(), 1),
                "drag_frames_max_gap_ms_loaded": round(loaded.max_gap_ms(), 1),
                "drag_mesh_fps_loaded": round(loaded.mesh_fps(), 1),
                "drag_preview_px_median_loaded": lpx[len(lpx) // 2] if lpx else None,
            }
        )
    return out
