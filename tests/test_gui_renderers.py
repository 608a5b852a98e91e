"""Choosing a renderer in the window: the neural renderer G_p draws edits at once (feed-forward); the
ones that must be built first (the GAR renderer's inversion, the Personal model's fit) build in the
background under the progress panel, then edits render through them."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("PySide6")

import test_gui_window as window_tests

win = window_tests.win  # the window fixture
_sample = window_tests._sample


def _fitted_and_chosen(win, tmp_path, renderer: str) -> int:
    """Drop the sample photo, wait for its fit, choose ``renderer`` in the menu; its menu index."""
    d = win.driver
    photo, _ = _sample(tmp_path, size=384)
    d.drop(photo)
    assert d.wait_fitted(120), win.banner.text.text()
    assert d.wait_idle(60)
    i = win.renderer_combo.findData(renderer)
    assert i >= 0 and "not available" not in win.renderer_combo.itemText(i)
    win.renderer_combo.setCurrentIndex(i)
    win.renderer_combo.activated.emit(i)
    assert win.doc.edit.params.renderer == renderer
    return i


def test_neural_renderer_choice_draws_edits_without_a_set_up(win, tmp_path):
    """Choosing "Neural renderer" (the shipped G_p) needs no inversion: no progress panel opens, a
    slider edit renders through it, and the result differs from the mesh compositor's near the head."""
    from faceeditor.jobs.renderers import available_renderers

    if not available_renderers()["neural"][0]:
        pytest.skip("G_p weights not shipped (python -m trainers.train_photo_g --export)")
    d = win.driver
    _fitted_and_chosen(win, tmp_path, "mesh")
    stamp = d.set_slider(win.pose_panel.sliders["yaw"], 20.0)
    win.doc.close_gesture()
    assert d.pump(60, lambda: win.canvas.stamp >= stamp and d.idle()), win.banner.text.text()
    mesh = d.canvas_pixels()
    i = win.renderer_combo.findData("neural")
    win.renderer_combo.setCurrentIndex(i)
    win.renderer_combo.activated.emit(i)
    assert win.doc.edit.params.renderer == "neural"
    stamp = win.canvas.stamp + 1
    assert d.pump(60, lambda: win.canvas.stamp >= stamp and d.idle()), win.banner.text.text()
    assert not win.progress.isVisible()
    neural = d.canvas_pixels()
    diff = np.abs(neural.astype(int) - mesh.astype(int)).sum(-1)
    assert 0.0005 < (diff > 6).mean() < 0.5, (diff > 6).mean()  # redrawn near the head, not everywhere


def test_gar_renderer_choice_renders_edits(win, tmp_path):
    """Choosing "GAR fill" inverts G on the face in the background (the window keeps
    answering and the status bar follows the inversion), then slider edits render through it;
    undo goes back to the mesh compositor."""
    from faceeditor.jobs.renderers import available_renderers

    if not available_renderers()["gar"][0]:
        pytest.skip("GAR weights not trained yet (python -m trainers.train_gar)")
    d = win.driver
    messages: list[str] = []
    win.statusBar().messageChanged.connect(messages.append)
    _fitted_and_chosen(win, tmp_path, "gar")
    before = d.canvas_pixels()
    stamp = d.set_slider(win.pose_panel.sliders["yaw"], 20.0)
    win.doc.close_gesture()
    t0 = time.perf_counter()
    ticks = []
    assert d.pump(180, lambda: (ticks.append(time.perf_counter()) or True) and win.canvas.stamp >= stamp
                  and d.idle()), win.banner.text.text()
    gaps = np.diff(ticks) if len(ticks) > 1 else np.array([0.0])
    assert float(gaps.max()) < 2.0, "the window must keep answering while G is inverted"
    after = d.canvas_pixels()
    assert (np.abs(after.astype(int) - before.astype(int)).sum(-1) > 30).mean() > 0.005
    assert any(m.startswith("GAR renderer: ") and m.endswith("%") for m in messages), messages
    print(f"GAR renderer: inversion + first edit {time.perf_counter() - t0:.1f} s")
    win.act_undo.trigger()
    win.act_undo.trigger()
    assert win.doc.edit.params.renderer == "mesh" and win.doc.edit.params.yaw == 0.0


def _small_personal_fits(monkeypatch) -> list[int]:
    """Personal fits made tiny (seconds); the list grows by one per fit."""
    from faceeditor.neural import personal_renderer
    from faceeditor.neural.personal import PersonalConfig

    small = PersonalConfig(texture_px=32, normal_px=16, fourier=2, hidden=16, crop=64, steps=(8, 8, 8, 8))
    fit = personal_renderer.fit_personal
    fits: list[int] = []

    def counted(photos, states, model, config=None, progress=None):
        fits.append(1)
        return fit(photos, states, model, small, progress)

    monkeypatch.setattr(personal_renderer, "fit_personal", counted)
    return fits


def test_personal_renderer_fits_in_the_background_with_a_loss_chart(win, tmp_path, monkeypatch):
    """Choosing "Personal (relight)" fits the Personal model (paper 001) on the photo in the
    background under the progress panel with its loss chart, then edits render through it."""
    _small_personal_fits(monkeypatch)
    begun, losses = [], []
    begin, update = win.tasks.begin, win.tasks.update

    def spy_begin(title, *a, **k):
        begun.append((title, k.get("chart", False)))
        return begin(title, *a, **k)

    def spy_update(task, stage, fraction, new=()):
        losses.extend(new)
        return update(task, stage, fraction, new)

    monkeypatch.setattr(win.tasks, "begin", spy_begin)
    monkeypatch.setattr(win.tasks, "update", spy_update)
    d = win.driver
    _fitted_and_chosen(win, tmp_path, "personal")
    before = d.canvas_pixels()
    stamp = d.set_slider(win.pose_panel.sliders["yaw"], 15.0)
    win.doc.close_gesture()
    assert d.pump(180, lambda: win.canvas.stamp >= stamp and d.idle()), win.banner.text.text()
    assert (np.abs(d.canvas_pixels().astype(int) - before.astype(int)).sum(-1) > 30).mean() > 0.005
    assert ("Preparing the Personal renderer", True) in begun, begun
    assert losses and np.isfinite(losses).all()
    assert not win.tasks.active()


def test_a_saved_session_brings_its_personal_model_along(win, tmp_path, monkeypatch):
    """The session file holds the Personal model: opened where none is kept (another machine, a
    cleared cache), choosing Personal renders at once, without a new fit."""
    fits = _small_personal_fits(monkeypatch)
    win.engine._renderer_factory = None  # no model kept in memory by an earlier test
    d = win.driver
    _fitted_and_chosen(win, tmp_path, "personal")
    assert d.pump(120, lambda: d.idle() and not win.tasks.active()), win.banner.text.text()
    assert len(fits) == 1
    path = tmp_path / "portrait.fesession"
    win.files.save_session_to(str(path), wait=True)

    monkeypatch.setenv("FACEEDITOR_HOME", str(tmp_path / "another-machine"))
    win.engine._renderer_factory = None  # nothing kept in memory either
    win.files.open_session(str(path))
    assert d.pump(60, lambda: win.doc.session_path == path and d.idle()), win.banner.text.text()
    i = win.renderer_combo.findData("personal")
    win.renderer_combo.setCurrentIndex(i)
    win.renderer_combo.activated.emit(i)
    stamp = d.set_slider(win.pose_panel.sliders["yaw"], 10.0)
    win.doc.close_gesture()
    assert d.pump(120, lambda: win.canvas.stamp >= stamp and d.idle()), win.banner.text.text()
    assert win.doc.edit.params.renderer == "personal"
    assert len(fits) == 1  # the session's model, not a new fit
