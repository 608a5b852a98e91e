"""Relighting with known answers: the fitted colour never changes hue, a chosen colour is the only
tint, the same light is the identity, there and back is the identity, the whole person is relit
without a seam, the inflated silhouette normals point outward, and a re-fit reads the relit light."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from faceeditor.edit import person_light, relight
from faceeditor.edit.compose import MeshCompositor
from faceeditor.edit.geometry import direction_from_angles, photo_light, target_sh
from faceeditor.edit.light import LightParams, fit_light, light_tint, sh_colour
from faceeditor.edit.params import EditParams
from faceeditor.edit.scene import SyntheticPhoto, synthetic_photo
from faceeditor.fit.sh_light import estimate_sh
from faceeditor.fit.synthetic import state_vertices
from faceeditor.morphable import default_model_path, load_face_model
from faceeditor.morphable.normals import vertex_normals
from faceeditor.render.atlas import render_face_ids
from faceeditor.render.interpolate import interpolate
from faceeditor.render.raster import rasterize
from faceeditor.render.sh import sh_basis

SIZE = (320, 320)


@pytest.fixture(scope="module")
def model():
    if not default_model_path().is_file():
        pytest.skip("resources/face_model.npz missing: python -m trainers.build_face_model")
    return load_face_model("cpu")


def coloured_sh() -> np.ndarray:
    """A warm fitted light whose channels also differ in direction (not luminance x colour)."""
    sh = LightParams(-30.0, 20.0, 0.6, 0.35, 4200.0).to_sh().astype(np.float64)
    sh[3] *= np.array([1.25, 1.0, 0.7])  # the red channel's light comes more from the side
    sh[1] *= np.array([0.9, 1.0, 1.2])
    return sh.astype(np.float32)


@pytest.fixture(scope="module")
def scene(model) -> SyntheticPhoto:
    s = synthetic_photo(model, seed=3, size=SIZE)
    s.state.sh = coloured_sh()
    return s


def head_mask(model, state) -> np.ndarray:
    """(H,W) bool: the fitted head (with the neck) at the photo's size."""
    ids = render_face_ids(model)
    w, h = state.image_size
    frags = rasterize(state.camera().project(state_vertices(model, state)), model.faces[ids], h, w)
    m = np.zeros(h * w, bool)
    m[frags.pix.numpy()] = True
    return m.reshape(h, w)


def person_mask(model, state) -> np.ndarray:
    """A person alpha larger than the mesh: the head grown by 12 px (hair) and a band of shoulders."""
    head = head_mask(model, state).astype(np.uint8)
    person = cv2.dilate(head, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (25, 25)))
    ys = np.flatnonzero(head.any(1))
    person[ys[-1] - 10 :, 30:-30] = 1
    return cv2.GaussianBlur(person.astype(np.float32), (0, 0), 1.0)


@pytest.fixture(scope="module")
def grey(model, scene) -> tuple[np.ndarray, MeshCompositor, np.ndarray]:
    """A grey photo of the scene, its compositor (coloured fitted light) and its person mask."""
    g = cv2.cvtColor(scene.photo, cv2.COLOR_RGB2GRAY)
    photo = np.ascontiguousarray(np.repeat(g[..., None], 3, axis=2))
    person = person_mask(model, scene.state)
    return photo, MeshCompositor(photo, scene.state, model, person_mask=person), person


def relit(comp: MeshCompositor, az: float, el: float, factor: float = 1.0, kelvin: float | None = None) -> np.ndarray:
    base = comp.photo_light
    t = base.temperature if kelvin is None else kelvin
    return comp.render(EditParams(light=LightParams(az, el, base.intensity * factor, base.ambient, t)))


# --------------------------------------------------------------------------- the light's colour
def test_target_keeps_the_fitted_colour(scene) -> None:
    """Moving the light or changing its strength keeps the fitted light's channel balance exactly;
    another temperature tints it by the black-body ratio."""
    sh = np.asarray(scene.state.sh)
    ref = photo_light(scene.state)
    col = sh_colour(sh)
    assert np.abs(col - 1.0).max() > 0.05  # the fitted light is coloured
    for az, el, k in ((-70.0, 10.0, 1.0), (60.0, 40.0, 0.5), (0.0, -20.0, 2.0)):
        edit = EditParams(light=LightParams(az, el, ref.intensity * k, ref.ambient, ref.temperature))
        np.testing.assert_allclose(sh_colour(target_sh(scene.state, edit, ref)), col, atol=1e-6)
    warm = EditParams(light=LightParams(60.0, 10.0, ref.intensity, ref.ambient, 3000.0))
    got = sh_colour(target_sh(scene.state, warm, ref)) / col
    want = light_tint(3000.0, ref.temperature, col)
    np.testing.assert_allclose(got / got.mean(), want / want.mean(), atol=1e-6)
    change = relight.light_change(sh, target_sh(scene.state, warm, ref))
    np.testing.assert_allclose(change.tint, want, atol=1e-6)


def test_fitted_colour_changes_no_hue(grey) -> None:
    """A grey photo stays grey whatever the direction and strength of the (coloured) fitted light."""
    photo, comp, _ = grey
    for az, el, k in ((-60.0, 10.0, 1.0), (60.0, 10.0, 1.0), (0.0, 55.0, 1.0), (-30.0, 20.0, 0.5)):
        out = relit(comp, az, el, k).astype(int)
        assert np.abs(out - photo).max() > 10  # it did relight
        spread = out.max(2) - out.min(2)
        assert spread.max() <= 1, (az, el, k, spread.max())
        gain = comp.grid_maps(EditParams(light=LightParams(az, el, 0.6 * k, 0.35, comp.photo_light.temperature))).gain
        np.testing.assert_array_equal(gain[..., 0], gain[..., 2])


def test_user_colour_is_the_only_tint(grey) -> None:
    photo, comp, _ = grey
    base = comp.photo_light
    out = relit(comp, 40.0, 10.0, kelvin=3000.0).astype(float)
    face = (np.abs(out.mean(2) - photo[..., 0]) > 0) & (photo[..., 0] > 40)
    r_over_b = out[..., 0][face] / np.maximum(out[..., 2][face], 1.0)
    tint = light_tint(3000.0, base.temperature, sh_colour(comp.state.sh))
    assert np.median(r_over_b) == pytest.approx(tint[0] / tint[2], rel=0.05)
    cool = relit(comp, 40.0, 10.0, kelvin=9000.0).astype(float)
    assert np.median(cool[..., 2][face] - cool[..., 0][face]) > 5


# --------------------------------------------------------------------------- identities
def test_same_light_is_the_identity(model, scene) -> None:
    comp = MeshCompositor(scene.photo, scene.state, model, person_mask=person_mask(model, scene.state))
    assert np.array_equal(comp.render(EditParams(light=photo_light(scene.state))), scene.photo)
    sh = np.asarray(scene.state.sh)
    change = relight.light_change(sh, sh)
    assert not change.tinted
    n = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1).numpy()
    np.testing.assert_allclose(relight.log_ratio(n, n, change), 0.0, atol=1e-6)
    # controls a hair away from the photo's: within one level of the photo
    base = comp.photo_light
    near = comp.render(
        EditParams(
            light=LightParams(base.azimuth + 1e-4, base.elevation, base.intensity, base.ambient, base.temperature)
        )
    )
    assert np.abs(near.astype(int) - scene.photo).max() <= 1


def test_there_and_back_is_the_identity(model, scene) -> None:
    """Relit, then relit back to the fitted light: the photo up to rounding (the guards are symmetric;
    a photo kept below the highlight knee, where the roll-off would lose information)."""
    person = person_mask(model, scene.state)
    photo = (scene.photo * 0.55).astype(np.uint8)
    comp = MeshCompositor(photo, scene.state, model, person_mask=person)
    base = comp.photo_light
    edit = EditParams(
        light=LightParams(base.azimuth + 30.0, 10.0, base.intensity * 0.8, base.ambient, base.temperature)
    )
    out = comp.render(edit)
    assert out.max() < relight.KNEE * 255
    back_state = scene.state.copy()
    back_state.sh = target_sh(scene.state, edit, base)
    back = MeshCompositor(out, back_state, model, person_mask=person)
    again = back.render(EditParams(light=LightParams(sh=np.asarray(scene.state.sh).tolist())))
    changed = np.abs(out.astype(int) - photo).max(2) > 0
    assert changed.sum() > 5000 and np.abs(out.astype(int) - photo).max() > 20
    err = again.astype(float)[changed] - photo[changed]
    assert 10 * np.log10(255.0**2 / np.mean(err**2)) > 40.0


# --------------------------------------------------------------------------- the whole person
def test_the_whole_person_is_relit_without_a_seam(model, scene, grey) -> None:
    photo, comp, person = grey
    out = relit(comp, -60.0, 10.0).astype(int)
    changed = np.abs(out - photo).max(2) > 2
    head = head_mask(model, scene.state)
    hair = (person > 0.9) & ~cv2.dilate(head.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert changed[hair].mean() > 0.5  # the person beyond the mesh is relit
    background = cv2.dilate((person > 0.01).astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    assert background.sum() > 10000 and not changed[background].any()  # the background is not
    # no seam: the log gain changes as smoothly across the mesh's outline as inside the face (work grid)
    grid = comp.grid_maps(EditParams(light=LightParams(-60.0, 10.0, 0.6, 0.35, comp.photo_light.temperature)))
    win = grid.window
    lg = np.log(grid.gain[..., 1])
    step = np.maximum(np.abs(np.diff(lg, axis=1))[:-1, :], np.abs(np.diff(lg, axis=0))[:, :-1])
    cov = np.zeros(win.grid_h * win.grid_w, np.uint8)
    cov[grid.head.fragments[0].numpy()] = 1
    cov = cov.reshape(win.grid_h, win.grid_w)
    rim = cv2.morphologyEx(cov, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))[:-1, :-1] > 0
    solid = cv2.erode((person_light.person_on_grid(person, win, SIZE) > 0.98).astype(np.uint8), np.ones((5, 5)))
    on_rim = rim & (solid[:-1, :-1] > 0)
    inner = cv2.erode(cov, np.ones((9, 9), np.uint8))[:-1, :-1] > 0
    assert on_rim.sum() > 20 and inner.sum() > 500
    assert np.percentile(step[on_rim], 95) <= 1.5 * np.percentile(step[inner], 95)


def test_silhouette_normals_point_outward() -> None:
    h = w = 101
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xx - 50, yy - 50)
    n = person_light.silhouette_normals((r < 40).astype(np.float32), radius_px=15.0)
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-5)
    rim = (r > 37) & (r < 40)
    out_x, out_y = (xx - 50) / np.maximum(r, 1e-6), -(yy - 50) / np.maximum(r, 1e-6)  # camera y is up
    radial = n[..., 0] * out_x + n[..., 1] * out_y
    assert np.all(radial[rim] > 0.5) and np.all(n[..., 2][rim] < 0.85)
    assert np.all(n[r < 10][:, 2] > 0.99)  # the inside faces the camera


# --------------------------------------------------------------------------- guards
def test_soft_limit_and_rolloff() -> None:
    x = np.linspace(-5, 5, 1001).astype(np.float32)
    y = relight.soft_limit(x)
    np.testing.assert_allclose(y, -relight.soft_limit(-x), atol=1e-6)  # odd: there and back match
    assert np.all(np.diff(y) >= 0) and np.abs(y).max() <= relight.LOG_LIMIT + 1e-6
    small = np.abs(x) <= relight.LOG_KNEE
    np.testing.assert_allclose(y[small], x[small], atol=1e-6)
    # the highlight roll-off scales all channels alike and never passes the ceiling
    px = torch.tensor([[0.70, 0.45, 0.30], [0.95, 0.90, 0.85], [0.2, 0.1, 0.05]])
    out = relight.apply_gain(px.clone(), torch.full_like(px, 2.0))
    np.testing.assert_allclose((out[:, 1] / out[:, 0]).numpy(), (px[:, 1] / px[:, 0]).numpy(), rtol=1e-5)
    assert out.max() <= relight.CEILING + 1e-6 and out[2, 0] == pytest.approx(0.4)
    same = relight.apply_gain(px.clone(), torch.ones_like(px))
    assert torch.equal(same, px)


def test_a_moved_surface_under_the_same_light_brightens_at_most_the_moved_limit(scene) -> None:
    """Same light, normals turned from the shade towards the light: the brightening is compressed
    below MOVED_BRIGHTEN_LIMIT (about linear while small), darkening keeps soft_limit's range; a
    changed light may brighten further."""
    sh = np.asarray(scene.state.sh, np.float64)
    same = relight.light_change(sh, sh)
    n = torch.nn.functional.normalize(torch.randn(2000, 3), dim=-1).numpy()
    m = torch.nn.functional.normalize(torch.randn(2000, 3), dim=-1).numpy()
    L = relight.log_ratio(n, m, same)
    raw = relight.soft_limit(relight._soft_floor(relight.shading(m, same.lum_new), same.floor_new)
                             - relight._soft_floor(relight.shading(n, same.lum_old), same.floor_old))
    assert L.max() < relight.MOVED_BRIGHTEN_LIMIT and raw.max() > 1.5 * relight.MOVED_BRIGHTEN_LIMIT
    np.testing.assert_allclose(L[raw <= 0], raw[raw <= 0], atol=1e-6)  # darkening as before
    small = (raw > 0) & (raw < 0.1 * relight.MOVED_BRIGHTEN_LIMIT)
    np.testing.assert_allclose(L[small], raw[small], rtol=0.01)
    # a light change alone (same normals) is not limited by it; with turned normals it adds to it
    brighter = relight.light_change(sh, 2.0 * sh)  # twice the light
    assert relight.log_ratio(n, n, brighter).max() > relight.MOVED_BRIGHTEN_LIMIT
    bound = relight.soft_limit(np.float32(np.log(2.0) + relight.MOVED_BRIGHTEN_LIMIT))
    assert np.all(relight.log_ratio(n, m, brighter) <= bound + 1e-5)


def test_shading_quadratic_form_matches_the_sh_basis() -> None:
    from faceeditor.render.sh import sh_shading

    g = np.random.default_rng(0)
    lum = g.standard_normal(9)
    n = torch.nn.functional.normalize(torch.randn(200, 3), dim=-1)
    want = sh_shading(n, torch.as_tensor(np.repeat(lum[None, :, None], 200, 0), dtype=torch.float32))[:, 0]
    np.testing.assert_allclose(relight.shading(n.numpy(), lum), want.numpy(), atol=1e-4)


# --------------------------------------------------------------------------- the light a re-fit reads
def test_a_relit_face_reads_back_the_light_an_exact_ratio_gives(model) -> None:
    """Known answer: the synthetic photo times the exact shading ratio S_new(n)/S_old(n) on the
    true normals; the photometric fit's light estimator (:func:`estimate_sh` + :func:`fit_light`)
    must read the same direction off the compositor's relight (left, right, top at 55 degrees).
    Blending the face's normals into flat silhouette normals at the cheeks read 23 degrees off."""
    s = synthetic_photo(model, seed=5, size=SIZE)
    st, (w, h) = s.state, s.state.image_size
    verts = state_vertices(model, st)
    verts = verts[None] if verts.dim() == 2 else verts
    frags = rasterize(st.camera().project(verts), model.skin_faces, h, w)
    nmap = torch.nn.functional.normalize(interpolate(vertex_normals(verts, model.faces), frags, model.skin_faces), dim=1)[0]
    mask = frags.mask()[0, 0] > 0
    mask = -torch.nn.functional.max_pool2d(-mask[None, None].float(), 5, 1, 2)[0, 0] > 0
    comp = MeshCompositor(s.photo, st, model, person_mask=np.ones((h, w), np.float32))
    Y = sh_basis(nmap.permute(1, 2, 0).reshape(-1, 3).double()).reshape(h, w, 9)
    s_old = Y @ torch.as_tensor(np.asarray(st.sh), dtype=torch.float64).reshape(9, 3)

    def read(img: np.ndarray) -> torch.Tensor:
        sh, _ = estimate_sh(torch.from_numpy(img).permute(2, 0, 1).float() / 255.0, nmap, mask)
        got = fit_light(sh.numpy())
        return direction_from_angles(got.azimuth, got.elevation).double()

    errs = []
    for az, el in ((-55.0, 10.0), (55.0, 10.0), (0.0, 55.0)):
        b = comp.photo_light
        edit = EditParams(light=LightParams(az, el, b.intensity, b.ambient, b.temperature))
        s_new = Y @ torch.as_tensor(target_sh(st, edit, b), dtype=torch.float64).reshape(9, 3)
        exact = np.clip(s.photo * (s_new / s_old.clamp(min=1e-3)).numpy(), 0, 255).astype(np.uint8)
        cos = torch.dot(read(comp.render(edit)), read(exact)).clamp(-1.0, 1.0)
        errs.append(float(torch.rad2deg(torch.arccos(cos))))
    assert np.median(errs) <= 6.0 and max(errs) <= 10.0, errs


def test_face_pixels_keep_the_mesh_normals() -> None:
    """The share of the mesh's normal: 1 on the face material, 0 on the scalp at the mesh's outline,
    and no step anywhere (smooth over the band)."""
    h = w = 121
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xx - 60, yy - 60)
    mesh = r < 50
    cls = np.full((h, w), -1, np.int8)
    cls[mesh] = person_light.TRI_HEAD
    cls[r < 25] = person_light.TRI_SKIN
    cls[(r < 40) & (xx > 95)] = person_light.TRI_SKIN  # an ear at the outline
    share = person_light._mesh_normal_share(mesh, cls, band_px=10.0)
    assert np.all(share[cls == person_light.TRI_SKIN] == 1.0)
    rim = mesh & (r > 48.5) & (xx < 80)
    assert np.all(share[rim] < 0.15)
    inside = mesh[:, 1:] & mesh[:, :-1]
    assert np.abs(np.diff(share, axis=1))[inside].max() < 0.3
