"""The inversion of the GAR renderer (eq. 10 + pivotal tuning, seeded), the loaded renderer and its
caches (no module-level caches), and the neural renderer in the compositor and the renderer factory.

Small random networks at 64 px (``small_nets`` of ``test_neural_gar``) on a synthetic photo.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_neural_gar import small_nets  # the small random G, V, D (tests/ is on the path)

from faceeditor.core.errors import Cancelled, RendererUnavailableError
from faceeditor.core.state import FaceState, NeuralCode
from faceeditor.edit.compose import MeshCompositor
from faceeditor.edit.geometry import model_vertices, posed
from faceeditor.edit.params import EditParams
from faceeditor.edit.scene import synthetic_photo
from faceeditor.jobs import renderers
from faceeditor.jobs.renderers import RendererFactory, available_renderers, make_renderer
from faceeditor.morphable import load_face_model
from faceeditor.neural import gar_renderer
from faceeditor.neural.crop_render import render_edit
from faceeditor.neural.fill import NeuralFill
from faceeditor.neural.gar import face_mask
from faceeditor.neural.gar_nets import GarNets
from faceeditor.neural.invert import InvertConfig, invert
from faceeditor.neural.gar_renderer import GarRenderer


@pytest.fixture(scope="module")
def model():
    return load_face_model("cpu")


@pytest.fixture(scope="module")
def scene(model):
    """A synthetic photo (rendered textured head over a textured background) and its exact state,
    with the detector landmarks the crop is aligned by (the model's projected 68 points)."""
    sp = synthetic_photo(model, seed=3, size=(320, 320))
    st = sp.state
    with torch.no_grad():
        v = posed(model, st, model_vertices(model, st))[:, model.landmarks68]
        lm = st.camera().project(v)[0, :, :2].numpy()
    st.detector_landmarks68 = lm.astype(np.float32)
    st.fitted_landmarks68 = lm.astype(np.float32)
    return sp.photo, st


def small_garnets(size: int = 64) -> GarNets:
    G, V, D = small_nets(size)
    return GarNets(G, V, D, "gar_generator:test", torch.device("cpu"))


def test_inversion_improves_the_loss_and_stores_the_result(model, scene):
    photo, state = scene
    nets = small_garnets()
    cfg = InvertConfig(steps=8, geometry_steps=3, pti_steps=4, time_budget_s=None, lr_pti=3e-3)
    out, res = invert(photo, state, model, cfg, nets, return_result=True)
    assert res.steps == 8 and res.pti_steps == 4
    assert min(res.loss_curve[4:8]) < res.loss_curve[0]  # eq. 10 steps lower the loss
    assert res.psnr_db > res.psnr_db_init
    assert out.neural.latent.shape == (32,) and len(out.neural.noise) == nets.G.n_noise
    assert out.neural.renderer_id == "gar_generator:test" and out.neural.tuning
    assert all(v.dtype == np.float16 for v in out.neural.tuning.values())
    assert "inversion" in out.fit_info and state.neural is None  # the input state is not modified
    # the tuned G reproduces the final reconstruction; the state round-trips through files
    img, cond, view = render_edit(model, out, None, nets)
    assert img.shape == (1, 3, 64, 64) and float(face_mask(cond).sum()) > 100


def test_inversion_honours_cancel_and_time_budget(model, scene):
    photo, state = scene
    nets = small_garnets()
    calls = []

    def progress(stage, fraction, loss=None):
        calls.append(stage)
        return stage != "invert" or len(calls) < 3

    with pytest.raises(Cancelled):
        invert(photo, state, model, InvertConfig(steps=50, pti_steps=50, time_budget_s=None), nets, progress=progress)
    assert calls.count("invert") == 2
    with pytest.raises(Cancelled):
        invert(photo, state, model, InvertConfig(steps=5, pti_steps=0), nets, cancel=lambda: True)
    t0 = time.perf_counter()
    _, res = invert(photo, state, model, InvertConfig(steps=10_000, pti_steps=10_000, time_budget_s=2.0), nets,
                    return_result=True)
    assert time.perf_counter() - t0 < 8.0 and res.steps < 10_000


def test_inversion_is_seeded(model, scene):
    """Every random draw comes from InvertConfig.seed: same seed, same result; another seed, another z."""
    photo, state = scene
    nets = small_garnets()
    cfg = InvertConfig(steps=2, geometry_steps=0, pti_steps=0, time_budget_s=None, v_init=False, z_init_std=1.0,
                       noise_init_std=0.5)
    a = invert(photo, state, model, cfg, nets)
    b = invert(photo, state, model, cfg, nets)
    c = invert(photo, state, model, dataclasses.replace(cfg, seed=1), nets)
    np.testing.assert_array_equal(a.neural.latent, b.neural.latent)
    for na, nb in zip(a.neural.noise, b.neural.noise):
        np.testing.assert_array_equal(na, nb)
    assert np.abs(a.neural.latent - c.neural.latent).max() > 0.1
    assert any(np.abs(na.astype(np.float32) - nc.astype(np.float32)).max() > 0.1
               for na, nc in zip(a.neural.noise, c.neural.noise))
    # the defaults draw nothing: V's z and zero noise, whatever the seed
    d0 = invert(photo, state, model, InvertConfig(steps=1, geometry_steps=0, pti_steps=0, time_budget_s=None), nets)
    d1 = invert(photo, state, model, InvertConfig(steps=1, geometry_steps=0, pti_steps=0, time_budget_s=None,
                                                  seed=5), nets)
    np.testing.assert_array_equal(d0.neural.latent, d1.neural.latent)


def test_inversion_moves_the_head(model, scene):
    """Eq. 10 moves the pose, identity and expression (the rotation offset starts at 0: its Rodrigues
    map must have a gradient there) and keeps them near the landmark fit."""
    photo, state = scene
    nets = small_garnets()
    out = invert(photo, state, model, InvertConfig(steps=4, geometry_steps=4, pti_steps=0, time_budget_s=None), nets)
    turn = np.asarray(out.rotation, np.float64) @ np.asarray(state.rotation, np.float64).T
    angle = float(np.degrees(np.arccos(np.clip((np.trace(turn) - 1) / 2, -1, 1))))
    assert 1e-3 < angle < 5.0, angle
    assert 0 < float(np.abs(out.translation - state.translation).max()) < 2.0
    assert float(np.abs(out.identity - state.identity).max()) > 0
    fixed = invert(photo, state, model, InvertConfig(steps=2, optimize_geometry=False, pti_steps=0,
                                                     time_budget_s=None), nets)
    np.testing.assert_array_equal(fixed.rotation, state.rotation)


def test_loaded_renderer_keeps_its_caches(model, scene, monkeypatch):
    """GarNets owns the tuned copies of G and the recent inversions (no module-level caches)."""
    photo, state = scene
    nets = small_garnets()
    inv = invert(photo, state, model, InvertConfig(steps=1, geometry_steps=0, pti_steps=1, time_budget_s=None), nets)
    G1 = nets.tuned_generator(inv)
    assert G1 is not nets.G and nets.tuned_generator(inv) is G1
    assert small_garnets().tuned_generator(inv) is not G1  # another loaded renderer, another cache
    assert nets.tuned_generator(state) is nets.G  # no tuning: G itself
    calls = []

    def fake_invert(photo_, state_, model_, config=None, nets=None, progress=None):
        calls.append(state_)
        return inv

    monkeypatch.setattr(gar_renderer, "invert", fake_invert)
    factory = RendererFactory(model, nets=nets)  # what the window keeps
    a = factory.make("gar", photo, state, preview=True)
    b = factory.make("gar", photo, state)  # the full-resolution renderer of the face reuses the inversion
    assert a.state is inv and b.state is inv and a.nets is nets and b.nets is nets and len(calls) == 1
    GarRenderer(photo, state, model, nets=small_garnets())  # another loaded renderer inverts again
    assert len(calls) == 2


def test_face_state_keeps_the_tuning(tmp_path):
    s = FaceState((10, 10), (0, 0, 1, 1), np.eye(3), np.zeros(3), 100.0, np.zeros(100), np.zeros(53), np.zeros((9, 3)))
    s.neural = NeuralCode(np.arange(4, dtype=np.float32), [np.ones((4, 4), np.float16)], "g:t",
                          {"blocks.2.conv0.conv.weight": np.full((2, 3), 0.5, np.float16)})
    s.save(tmp_path)
    t = FaceState.load(tmp_path)
    assert list(t.neural.tuning) == ["blocks.2.conv0.conv.weight"]
    np.testing.assert_array_equal(t.neural.tuning["blocks.2.conv0.conv.weight"], 0.5)
    assert t.copy().neural.tuning.keys() == t.neural.tuning.keys() and t.neural.renderer_id == "g:t"


# ----------------------------------------------------------------------------- the compositor's neural layer
def test_neural_fill_plugs_into_the_compositor(model, scene):
    photo, state = scene
    nets = small_garnets()
    inv = invert(photo, state, model, InvertConfig(steps=2, geometry_steps=0, pti_steps=1, time_budget_s=None), nets)
    fill = NeuralFill(model, inv, nets)
    calls = []
    orig = fill.fill

    def spy(req):
        layer = orig(req)
        calls.append((req, layer))
        return layer

    fill.fill = spy
    comp = MeshCompositor(photo, inv, model, fill=fill)
    edit = EditParams(expression={"jawOpen": 0.8})
    out = comp.render(edit, scale=1.0)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert calls, "the compositor did not ask the neural layer for the mouth interior"
    req, layer = calls[0]
    assert layer.rgb.shape == (req.window.grid_h, req.window.grid_w, 3)
    assert layer.confidence.shape == (req.window.grid_h, req.window.grid_w)
    need = req.need > 0.5
    assert float(layer.confidence[need].mean()) > 0.5  # G covers the pixels the warp cannot supply
    mesh = MeshCompositor(photo, inv, model).render(edit, scale=1.0)
    assert np.abs(out.astype(int) - mesh.astype(int)).max() > 0  # the fill differs from the mesh fill
    # the PhotoRenderer: zero edit returns the photo; the state is used as given when inverted
    r = GarRenderer(photo, inv, model, nets=nets, invert_if_needed=False)
    assert r.name == "gar"
    np.testing.assert_array_equal(r.render(EditParams()), photo)
    with pytest.raises(ValueError):
        GarRenderer(photo, state, model, nets=nets, invert_if_needed=False)


def test_renderer_factory_knows_the_window_renderers(scene, model, monkeypatch):
    photo, state = scene
    avail = available_renderers()
    assert set(avail) == {"mesh", "neural", "gar", "personal"} and avail["mesh"][0] and avail["personal"][0]
    assert make_renderer("mesh", photo, state, model).name == "mesh"
    with pytest.raises(ValueError):
        make_renderer("nope", photo, state, model)
    monkeypatch.setattr(renderers, "gar_available", lambda: False)
    assert not available_renderers()["gar"][0]
    with pytest.raises(RendererUnavailableError):
        make_renderer("gar", photo, state, model)
    monkeypatch.setenv("FACEEDITOR_PHOTO_G", str(Path("/nonexistent/photo_g.pt")))
    assert not available_renderers()["neural"][0]
    with pytest.raises(RendererUnavailableError):
        make_renderer("photo-neural", photo, state, model)  # the old name of "neural"
