"""``bench gui``'s host-speed reference: the window's preview render timed outside the window."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from faceeditor.bench.gui import _standalone_preview_ms


class _Renderer:
    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def render(self, edit, scale: float = 1.0) -> np.ndarray:
        self.calls.append((edit.yaw, scale))
        time.sleep(0.002)
        return np.zeros((4, 4, 3), np.uint8)


def test_the_preview_is_timed_over_a_yaw_sweep_at_the_windows_preview_scale() -> None:
    renderer = _Renderer()
    made = []
    engine = SimpleNamespace(make_renderer=lambda photo, state, name, preview: made.append((name, preview)) or renderer)
    win = SimpleNamespace(doc=SimpleNamespace(photo=np.zeros((8, 8, 3), np.uint8), state=object()), engine=engine,
                          preview_scale=lambda: 0.25)
    ms = _standalone_preview_ms(win, renders=5)
    assert made == [("mesh", True)]  # the mesh compositor's preview renderer, as the window makes it
    assert [y for y, _ in renderer.calls] == [-10.0, -10.0, -5.0, 0.0, 5.0, 10.0]  # set-up, then the sweep
    assert {s for _, s in renderer.calls} == {0.25}
    assert 2.0 <= ms < 50.0  # the median of the timed renders (each sleeps 2 ms), not the set-up
