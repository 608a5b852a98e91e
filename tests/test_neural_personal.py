"""The Personal renderer (paper 001): Blinn-Phong against an analytic sphere, RAdam recovering a known
light, save/load, the ``"personal"`` photo renderer, cancel. Tiny sizes and few steps throughout."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faceeditor.core.errors import Cancelled
from faceeditor.edit.light import LightParams
from faceeditor.edit.params import EditParams
from faceeditor.neural.personal import PersonalConfig, PersonalLight, PersonalModel, Surface, photo_key
from faceeditor.neural.personal_fit import Target, change_roughness, psnr_db, run_stages
from faceeditor.render.blinn_phong import blinn_phong, shadow_visibility
from faceeditor.render.interpolate import interpolate_packed
from faceeditor.render.primitives import uv_sphere
from faceeditor.render.raster import rasterize

TINY = PersonalConfig(texture_px=16, normal_px=8, fourier=2, hidden=16, crop=48, steps=(4, 4, 4, 4),
                      shadow_px=32, blur_px=2.0, photo_detail_px=16)


def test_blinn_phong_sphere_lit_head_on_matches_the_analytic_profile() -> None:
    """Light and view along +z on a unit sphere: n.l = n.h = cos(theta), so
    I = c (rho_d (ka + kd cos) + rho_s ks cos^alpha)."""
    theta = torch.linspace(0.0, 1.4, 15)
    n = torch.stack([torch.sin(theta), torch.zeros_like(theta), torch.cos(theta)], -1)
    e = torch.tensor([0.0, 0.0, 1.0]).expand(15, 3)
    l = torch.tensor([0.0, 0.0, 1.0])
    rho_d, rho_s = torch.full((15, 3), 0.5), torch.full((15, 1), 0.8)
    colour = torch.tensor([1.0, 0.9, 0.8])
    got = blinn_phong(n, e, l, rho_d, rho_s, colour, torch.tensor(0.2), torch.tensor(0.7), torch.tensor(0.3),
                      torch.tensor(20.0))
    c = torch.cos(theta)
    facing = (c * 10.0).clamp(0, 1)
    want = colour * (0.5 * (0.2 + 0.7 * c) + 0.8 * 0.3 * c.pow(20.0) * facing)[:, None]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert got[0, 0] > got[7, 0] > got[-1, 0]  # brightest where the sphere faces the light


def test_shadow_map_sees_the_far_side_of_a_sphere_in_shadow() -> None:
    v, f = uv_sphere(16, 32, 5.0)
    pts = torch.tensor([[0.0, 0.0, 5.0], [0.0, 0.0, -5.0], [5.0, 0.0, 0.0]])
    vis = shadow_visibility(v, f, pts, F.normalize(pts, dim=-1), torch.tensor([0.0, 0.0, 1.0]), size=64)
    assert vis[0] > 0.9 and vis[1] < 0.1  # the lit pole and the one behind the sphere


def _sphere_target(size: int = 40) -> Target:
    """A unit-ish sphere (radius 8 cm, 40 cm in front of the camera) as a fit target (image filled later)."""
    v, f = uv_sphere(24, 48, 8.0)
    vc = v + torch.tensor([0.0, 0.0, -40.0])
    focal = size * 2.0
    x = size / 2 + focal * vc[:, 0] / 40.0
    y = size / 2 - focal * vc[:, 1] / 40.0
    frags = rasterize(torch.stack([x, y, -vc[:, 2]], -1)[None], f, size, size)
    zero = torch.zeros_like(frags.face)
    p = interpolate_packed(vc, f, frags.face, frags.bary, zero)
    pm = p - torch.tensor([0.0, 0.0, -40.0])
    n = F.normalize(pm, dim=-1)
    uv = torch.stack([0.5 + 0.5 * n[:, 0], 0.5 + 0.5 * n[:, 1]], -1)
    mask = torch.zeros(size * size)
    mask[frags.pix] = 1.0
    s = Surface(uv, pm, n, torch.eye(3), p)
    return Target(torch.zeros(3, size, size), mask.view(size, size), frags.pix, s, vc, f)


def test_radam_recovers_a_known_light_direction_and_colour() -> None:
    torch.manual_seed(0)
    t = _sphere_target()
    truth = PersonalLight(tuple(F.normalize(torch.tensor([0.5, 0.3, 0.8]), dim=0).tolist()), (1.2, 1.0, 0.8),
                          0.25, 0.8, 0.2, 24.0)
    ref = PersonalModel(TINY, 1)
    ref.use_net = False
    with torch.no_grad():
        ref.tex_d.fill_(0.6)
        light = PersonalModel.as_tensors(truth)
        t.surface.vis_geo = shadow_visibility(t.verts_cam, t.faces, t.surface.x_cam, t.surface.n_model,
                                              light["direction"], TINY.shadow_px)
        t.image.view(3, -1)[:, t.pix] = ref.shade(t.surface, PersonalModel.as_tensors(truth)).t()
    fit = PersonalModel(TINY, 1)
    fit.use_net = False
    with torch.no_grad():
        fit.tex_d.fill_(0.6)
        fit.tex_s.copy_(ref.tex_s)
    fit.set_light(0, PersonalLight((0.0, 0.0, 1.0), (1.0, 1.0, 1.0), 0.3, 0.6, 0.2, 24.0))
    cfg = PersonalConfig(**{**TINY.to_dict(), "steps": (0, 0, 0, 0), "lr": 0.03, "blur_px": 0.0})
    fit.config = cfg
    run_stages(fit, [t], [0], [("light", 200)])
    got = fit.light(0)
    angle = math.degrees(math.acos(min(1.0, float(np.dot(got.direction, truth.direction)))))
    assert angle < 3.0, got
    col = np.asarray(got.colour) * got.kd
    want = np.asarray(truth.colour) * truth.kd
    np.testing.assert_allclose(col / col.mean(), want / want.mean(), atol=0.03)
    assert psnr_db(fit, t, 0) > 35.0


def test_change_roughness_known_answers() -> None:
    """0 for the start and for a constant change; a checkerboard change of +-a: every neighbour
    difference is 2a, so the mean squared gradient is 4a^2 along each axis."""
    net = PersonalModel(TINY, 1)
    assert float(change_roughness(net).detach()) == 0.0
    with torch.no_grad():
        net.tex_d.add_(0.3)
    assert float(change_roughness(net).detach()) == pytest.approx(0.0, abs=1e-10)
    T = TINY.texture_px
    ii, jj = torch.meshgrid(torch.arange(T), torch.arange(T), indexing="ij")
    with torch.no_grad():
        net.tex_d.copy_(net.tex_d_start + 0.05 * (1.0 - 2.0 * ((ii + jj) % 2)).float())
    assert float(change_roughness(net).detach()) == pytest.approx(8 * 0.05**2, rel=1e-4)


def _three_views_one_occluded(detail_px: int) -> tuple[PersonalModel, list[Target], torch.Tensor]:
    """A grey sphere photographed three times under one light; in the third photo a dark disc (a
    hand) covers its centre. Returns the model fitted on all three, the targets and the disc's pixels."""
    torch.manual_seed(0)
    targets = [_sphere_target() for _ in range(3)]
    light = PersonalLight((0.0, 0.0, 1.0), (1.0, 1.0, 1.0), 0.3, 0.7, 0.0, 16.0)
    ref = PersonalModel(TINY, 1)
    ref.use_net = False
    t3 = targets[2]
    ys, xs = t3.pix // 40, t3.pix % 40
    disc = (ys - 20) ** 2 + (xs - 20) ** 2 < 36
    with torch.no_grad():
        ref.tex_d.fill_(0.6)
        truth = ref.shade(t3.surface, PersonalModel.as_tensors(light)).t()
        for t in targets:
            t.image.view(3, -1)[:, t.pix] = truth
        t3.image.view(3, -1)[:, t3.pix[disc]] = 0.1
    cfg = PersonalConfig(**{**TINY.to_dict(), "steps": (0, 0, 0, 0), "lr": 0.02, "blur_px": 0.0,
                            "photo_detail_px": detail_px, "detail_weight": 0.2})
    net = PersonalModel(cfg, 3, torch.full((3, 16, 16), 0.6))
    for i in range(3):
        net.set_light(i, light)
    run_stages(net, targets, [0, 1, 2], [("texture", 150)])
    net.use_net = False
    return net, targets, disc


def test_a_hand_in_one_photo_stays_in_that_photos_detail_map() -> None:
    """With (L1-sparse) detail maps the occluder goes into the third photo's own map: the shared
    texture still renders the clean sphere under the disc, and the third photo keeps its hand;
    without them the shared texture takes the hand in."""
    with_maps, targets, disc = _three_views_one_occluded(16)
    without, _, _ = _three_views_one_occluded(0)
    t1, t3 = targets[0], targets[2]
    want = t1.image.view(3, -1)[:, t1.pix[disc]].t().mean(0)
    with torch.no_grad():
        shared = with_maps.shade(t3.surface, with_maps.light_tensors(0))[disc].mean(0)
        blended = without.shade(t3.surface, without.light_tensors(0))[disc].mean(0)
        own = with_maps.shade(t3.surface, with_maps.light_tensors(2), photo=2)[disc].mean(0)
    err, err_without = float((shared - want).abs().max()), float((blended - want).abs().max())
    assert err < 0.5 * err_without and err < 0.05, (err, err_without)
    assert float(own.mean()) < 0.3  # the third photo keeps its hand (0.1 in it, 0.58 around)
    assert psnr_db(with_maps, t3, 2) > psnr_db(without, t3, 2)


def test_save_load_round_trip(tmp_path) -> None:
    net = PersonalModel(TINY, 2)
    net.keys = ["a" * 40, "b" * 40]
    net.set_light(1, PersonalLight((0.6, 0.0, 0.8), (1.1, 1.0, 0.9), 0.3, 0.5, 0.1, 12.0))
    with torch.no_grad():
        net.tex_d.uniform_(0, 1)
        net.net.mlp[-1].bias.fill_(1.5)
    net.save(tmp_path / "p", {"files": ["x.jpg", "y.jpg"]})
    got = PersonalModel.load(tmp_path / "p")
    assert got.keys == net.keys and got.config == net.config
    for k, v in net.state_dict().items():
        torch.testing.assert_close(got.state_dict()[k], v)
    assert got.light(1) == net.light(1) and got.tex_p.shape == (2, 3, 16, 16)
    # a model saved before the detail maps (no photo_detail_px in its config) still loads
    old = PersonalModel(PersonalConfig(**{**TINY.to_dict(), "photo_detail_px": 0}), 2)
    old.save(tmp_path / "old")
    doc = json.loads((tmp_path / "old" / "personal.json").read_text())
    del doc["config"]["photo_detail_px"]
    (tmp_path / "old" / "personal.json").write_text(json.dumps(doc))
    assert PersonalModel.load(tmp_path / "old").tex_p is None


def test_cancel_raises_cancelled() -> None:
    t = _sphere_target(24)
    net = PersonalModel(TINY, 1)
    with pytest.raises(Cancelled):
        run_stages(net, [t], [0], [("normals", 5)], progress=lambda stage, frac, loss: frac < 0.3)


@pytest.fixture(scope="module")
def scene():
    from faceeditor.edit.scene import synthetic_photo
    from faceeditor.morphable import default_model_path, load_face_model

    if not default_model_path().is_file():
        pytest.skip("resources/face_model.npz missing")
    model = load_face_model("cpu")
    return model, synthetic_photo(model, seed=5, size=(160, 160))


def test_personal_renderer_relights_the_face_and_leaves_far_pixels_exact(scene) -> None:
    from faceeditor.jobs.renderers import RendererFactory

    model, sc = scene
    factory = RendererFactory(model)
    person = np.zeros(sc.photo.shape[:2], np.float32)  # no person beyond the face: only the face is relit
    r = factory.make("personal", sc.photo, sc.state, config=TINY, person_mask=person)
    assert r.name == "personal"
    base = r.comp.photo_light
    edit = EditParams(light=LightParams(-60.0, 10.0, base.intensity, base.ambient, base.temperature))
    out = r.render(edit)
    assert out.dtype == np.uint8 and out.shape == sc.photo.shape
    assert np.abs(out.astype(int) - sc.photo).max() > 5  # it relit something
    frags = rasterize(sc.state.camera().project(r.comp.v_src), r.comp.tri, *sc.photo.shape[:2])
    head = np.zeros(sc.photo.shape[0] * sc.photo.shape[1], np.uint8)
    head[frags.pix.numpy()] = 1
    near = cv2.dilate(head.reshape(sc.photo.shape[:2]), np.ones((15, 15), np.uint8)) > 0
    assert (~near).sum() > 1000
    assert np.array_equal(out[~near], sc.photo[~near])
    assert np.array_equal(r.render(EditParams()), sc.photo)  # a zero edit is the photo
    with pytest.raises(Cancelled):
        r.render(edit, cancel=lambda: True)
    again = factory.make("personal", sc.photo, sc.state, preview=True, person_mask=person)
    assert again.personal is r.personal  # fitted once per photo


def test_the_factory_keeps_a_fitted_personal_model_for_the_next_session(scene, tmp_path, monkeypatch) -> None:
    """The window's factory fits the Personal model of a photo once: a later factory (the next
    session) loads it from the user directory; an unreadable kept model is fitted again."""
    from faceeditor.jobs import renderers
    from faceeditor.neural import personal_renderer

    monkeypatch.setenv("FACEEDITOR_HOME", str(tmp_path / "home"))
    model, sc = scene
    fits = []
    fit = personal_renderer.fit_personal

    def counted(photos, states, face_model, config=None, progress=None):
        fits.append(1)
        return fit(photos, states, face_model, TINY, progress)

    monkeypatch.setattr(personal_renderer, "fit_personal", counted)
    first = renderers.RendererFactory(model).make("personal", sc.photo, sc.state)
    assert len(fits) == 1
    key = photo_key(sc.photo)
    assert (renderers.personal_cache_dir(key) / "personal.json").is_file()
    again = renderers.RendererFactory(model).make("personal", sc.photo, sc.state)
    assert len(fits) == 1 and again.personal.keys == first.personal.keys
    for k, v in first.personal.state_dict().items():
        assert torch.equal(v, again.personal.state_dict()[k])
    (renderers.personal_cache_dir(key) / "personal.pt").write_bytes(b"not weights")
    renderers.RendererFactory(model).make("personal", sc.photo, sc.state)
    assert len(fits) == 2


def test_a_session_carries_the_personal_model_to_another_machine(scene, tmp_path, monkeypatch) -> None:
    """The kept model's files go into a session (:func:`personal_files`); opening the session where no
    model is kept installs them (:func:`install_personal`) and the factory uses them without a fit;
    files that are not a model are not kept."""
    from faceeditor.jobs import renderers
    from faceeditor.neural import personal_renderer

    model, sc = scene
    monkeypatch.setenv("FACEEDITOR_HOME", str(tmp_path / "here"))
    assert renderers.personal_files(sc.photo) is None
    fit = personal_renderer.fit_personal
    fits = []

    def counted(photos, states, face_model, config=None, progress=None):
        fits.append(1)
        return fit(photos, states, face_model, TINY, progress)

    monkeypatch.setattr(personal_renderer, "fit_personal", counted)
    first = renderers.RendererFactory(model).make("personal", sc.photo, sc.state)
    files = renderers.personal_files(sc.photo)
    assert files is not None and set(files) == {"personal.json", "personal.pt"}

    monkeypatch.setenv("FACEEDITOR_HOME", str(tmp_path / "elsewhere"))  # another machine: nothing kept
    assert not renderers.install_personal(sc.photo, {"personal.json": b"{}", "personal.pt": b"junk"})
    assert renderers.personal_files(sc.photo) is None
    assert not renderers.install_personal(sc.photo, {"evil.sh": b"rm -rf"})
    assert renderers.install_personal(sc.photo, files)
    again = renderers.RendererFactory(model).make("personal", sc.photo, sc.state)
    assert len(fits) == 1  # used, not fitted again
    for k, v in first.personal.state_dict().items():
        assert torch.equal(v, again.personal.state_dict()[k])


def test_the_neural_renderer_relights_through_the_photos_personal_model(scene, tmp_path, monkeypatch) -> None:
    """One light model: once the photo has a Personal model, the compositor under G_p is the Personal
    renderer's (its relight is what G_p is given); before, the plain mesh compositor."""
    from faceeditor.fit.synthetic import state_vertices
    from faceeditor.jobs.renderers import RendererFactory
    from faceeditor.neural.photo_g import PhotoG

    monkeypatch.setenv("FACEEDITOR_HOME", str(tmp_path / "home"))
    model, sc = scene
    state = sc.state.copy()
    state.fitted_landmarks68 = state.camera().project(state_vertices(model, state))[0, model.landmarks68, :2].numpy()
    G = PhotoG(widths=(8, 8, 8), inject=(4, 4, 4), extra_layers=(0, 0, 1), w_dim=16, nim_hidden=4).eval()
    factory = RendererFactory(model, photo_g=G)
    person = np.zeros(sc.photo.shape[:2], np.float32)
    plain = factory.make("neural", sc.photo, state, person_mask=person)
    assert plain.mesh.shading_ratio is None
    personal = factory.make("personal", sc.photo, state, config=TINY, person_mask=person)
    neural = factory.make("neural", sc.photo, state, person_mask=person)
    assert neural.mesh.shading_ratio is not None
    base = personal.comp.photo_light
    edit = EditParams(light=LightParams(-60.0, 10.0, base.intensity, base.ambient, base.temperature))
    assert np.array_equal(neural.mesh.render(edit), personal.render(edit))
    out = neural.render(edit)
    assert out.shape == sc.photo.shape and np.abs(out.astype(int) - sc.photo).max() > 5
