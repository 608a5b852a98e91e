"""MeshCompositor: zero edit, known-answer pose/expression/light edits on synthetic photos,
background stability, fill interface, preview path, cancel and threads."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
import torch

from faceeditor.core.errors import Cancelled
from faceeditor.edit.blendmap import FALLOFF_HEAD_FRACTION
from faceeditor.edit.compose import MeshCompositor
from faceeditor.edit.fill import FillLayer, FillRequest
from faceeditor.edit.geometry import edited_state, photo_light
from faceeditor.edit.light import LightParams
from faceeditor.edit.params import EditParams
from faceeditor.edit.scene import SyntheticPhoto, synthetic_photo
from faceeditor.fit.synthetic import state_vertices
from faceeditor.morphable import default_model_path, load_face_model
from faceeditor.render.atlas import render_face_ids
from faceeditor.render.raster import rasterize


@pytest.fixture(scope="module")
def model():
    if not default_model_path().is_file():
        pytest.skip("resources/face_model.npz missing: python -m trainers.build_face_model")
    return load_face_model("cpu")


@pytest.fixture(scope="module")
def scene(model) -> SyntheticPhoto:
    return synthetic_photo(model, seed=5, size=(512, 512))


@pytest.fixture(scope="module")
def comp(model, scene) -> MeshCompositor:
    return MeshCompositor(scene.photo, scene.state, model)


def region_mask(model, state, regions=("M_Face",), erode: int = 5, head_only: bool = False) -> np.ndarray:
    """Pixels where the named materials of ``state``'s head are visible (eroded). ``head_only``
    leaves out the neck (skinned by the compositor, rigid in :func:`edited_state`)."""
    from faceeditor.edit.geometry import NECK_TOP_Y

    ids = render_face_ids(model)
    w, h = state.image_size
    frags = rasterize(state.camera().project(state_vertices(model, state)), model.faces[ids], h, w)
    codes = torch.tensor([model.region_names.index(r) for r in regions])
    ok = torch.isin(model.face_region[ids], codes)
    if head_only:
        ok &= (model.neutral[model.faces[ids]][..., 1] > NECK_TOP_Y).all(1)
    keep = ok[frags.face]
    m = torch.zeros(h * w, dtype=torch.bool)
    m[frags.pix[keep]] = True
    m = m.view(h, w).numpy().astype(np.uint8)
    return cv2.erode(m, np.ones((erode, erode), np.uint8)) > 0 if erode > 1 else m > 0


def head_mask(model, state, grow: int) -> np.ndarray:
    m = region_mask(model, state, ("M_Face", "M_BackHead", "M_GumsTongue", "M_Teeth", "M_ScleraLeft",
                                   "M_IrisLeft", "M_ScleraRight", "M_IrisRight"), erode=1)
    return cv2.dilate(m.astype(np.uint8), np.ones((grow, grow), np.uint8)) > 0


def new_mouth_pixels(model, before, after, erode: int = 5) -> np.ndarray:
    """Teeth/gums pixels of ``after`` where ``before`` showed no teeth/gums (nothing to warp from),
    away from the edge of the opening (where the fill is feathered)."""
    was = region_mask(model, before, ("M_Teeth", "M_GumsTongue"), erode=1)
    was = cv2.dilate(was.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    return region_mask(model, after, ("M_Teeth", "M_GumsTongue"), erode=erode) & ~was


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    d = a.astype(np.float64)[mask] - b.astype(np.float64)[mask]
    return float(10.0 * np.log10(255.0 ** 2 / max(np.mean(d ** 2), 1e-12)))


# --------------------------------------------------------------------------- zero edit
def test_zero_edit_is_bit_exact(comp, scene) -> None:
    out = comp.render(EditParams())
    assert out.dtype == np.uint8 and np.array_equal(out, scene.photo)
    assert out is not scene.photo
    # expression weights equal to the fitted ones are no edit either
    names = comp.model.expression_names
    same = {n: float(w) for n, w in zip(names, scene.state.expression) if w > 0}
    assert np.array_equal(comp.render(EditParams(expression=same)), scene.photo)


def test_light_as_in_photo_is_near_exact(comp, scene) -> None:
    out = comp.render(EditParams(light=photo_light(scene.state)))
    assert psnr(out, scene.photo, np.ones(out.shape[:2], bool)) >= 45.0


# --------------------------------------------------------------------------- known answers
@pytest.mark.parametrize("edit", [EditParams(yaw=10), EditParams(yaw=-10), EditParams(pitch=8, roll=5)],
                         ids=["yaw+10", "yaw-10", "pitch+roll"])
def test_pose_edit_matches_ground_truth_render(model, scene, comp, edit) -> None:
    out = comp.render(edit)
    gt_state = edited_state(scene.state, edit, model)
    gt = scene.render(model, gt_state)
    face = region_mask(model, gt_state, head_only=True) & region_mask(model, scene.state, head_only=True)
    assert face.sum() > 20000
    got, before = psnr(out, gt, face), psnr(scene.photo, gt, face)
    assert got >= 28.0 and got > before + 10.0, (got, before)
    mae = np.abs(out.astype(float) - gt.astype(float))[face].mean()
    assert mae < 3.5
    # beyond the transformation map's falloff nothing moves (bit-exact)
    reach = int(2 * (FALLOFF_HEAD_FRACTION * comp.head_size_px() + 2)) + 1
    far = ~(head_mask(model, scene.state, reach) | head_mask(model, gt_state, reach))
    assert far.sum() > 20000
    assert np.array_equal(out[far], scene.photo[far])


@pytest.mark.parametrize("edit", [EditParams(yaw=15), EditParams(yaw=-25, pitch=10),
                                  EditParams(expression={"jawOpen": 0.8})], ids=["yaw15", "yaw-25pitch10", "jaw"])
def test_warp_is_continuous_at_the_silhouette(comp, edit) -> None:
    """No tear: across the head's outline the backward flow continues (small jump), and outside
    the head it is smooth and does not fold (|grad| < 1, in output pixels per pixel)."""
    maps = comp.grid_maps(edit)
    win, flow = maps.window, maps.flow
    k = 0.5 * (win.kx + win.ky)
    covered, orig = _coverages(comp, edit)
    assert flow is not None and flow.shape == covered.shape + (2,)
    outside = ~(covered | orig)
    peak = float(np.abs(flow).max())
    for axis in (0, 1):
        d = np.abs(np.diff(flow, axis=axis)).max(-1)
        inside_pair = np.take(covered, range(covered.shape[axis] - 1), axis=axis)
        inside_next = np.take(covered, range(1, covered.shape[axis]), axis=axis)
        out_pair = np.take(outside, range(outside.shape[axis] - 1), axis=axis)
        out_next = np.take(outside, range(1, outside.shape[axis]), axis=axis)
        crossing = (inside_pair & out_next) | (out_pair & inside_next)
        assert crossing.any()
        assert d[crossing].max() <= 0.15 * peak + 1.0, (d[crossing].max(), peak)
        # outside the heads the warp hardly folds (|grad| >= 1) except where the moving jaw
        # meets the skinned neck
        g = d[out_pair & out_next] * k
        assert np.percentile(g, 99) < 0.8 and (g >= 1.0).mean() < 0.005


def _coverages(comp, edit):
    """Grid coverage of the edited and of the original head."""
    view = comp._view(1.0)
    src = comp._sources(edit, view)[0]
    win = view.window
    covered = torch.zeros(win.grid_h * win.grid_w, dtype=torch.bool)
    covered[src.pix] = True
    return covered.view(win.grid_h, win.grid_w).numpy(), view.orig.covered.numpy()


def test_smile_moves_the_mouth_like_the_model(model, scene, comp) -> None:
    edit = EditParams(expression={"mouthSmile_L": 0.9, "mouthSmile_R": 0.9})
    out = comp.render(edit)
    gt_state = edited_state(scene.state, edit, model)
    gt = scene.render(model, gt_state)
    # the mouth region: around the lip corners of both states
    lm = model.landmarks68[48:68]
    pts = []
    for st in (scene.state, gt_state):
        p = st.camera().project(state_vertices(model, st)[:, lm])[0, :, :2].numpy()
        pts.append(p)
    pts = np.concatenate(pts)
    x0, y0 = pts.min(0) - 12
    x1, y1 = pts.max(0) + 12
    mouth = np.zeros(out.shape[:2], bool)
    mouth[int(y0):int(y1), int(x0):int(x1)] = True
    mouth &= region_mask(model, gt_state, head_only=True) & region_mask(model, scene.state, head_only=True)
    got, before = psnr(out, gt, mouth), psnr(scene.photo, gt, mouth)
    assert got > before + 5.0, (got, before)
    # the corners (68-point 48, 54) move outward and up, and the warp brings the photo's corners there:
    # the backward flow at each edited corner points back to the original corner
    corners = model.landmarks68[[48, 54]]
    before = scene.state.camera().project(state_vertices(model, scene.state)[:, corners])[0, :, :2].numpy()
    after = gt_state.camera().project(state_vertices(model, gt_state)[:, corners])[0, :, :2].numpy()
    assert abs(after[1, 0] - after[0, 0]) > abs(before[1, 0] - before[0, 0]) + 4  # wider
    assert (after[:, 1] < before[:, 1] - 1).all()  # higher (image y grows downward)
    maps = comp.grid_maps(edit)
    win, flow = maps.window, maps.flow
    for (bx, by), (ax, ay) in zip(before, after):
        gx = int((ax - win.x0) * win.kx)
        gy = int((ay - win.y0) * win.ky)
        fx, fy = flow[gy, gx]
        assert abs(ax + fx - bx) < 2.0 and abs(ay + fy - by) < 2.0, ((ax + fx, ay + fy), (bx, by))
    # an expression edit barely moves the head's outline: the background stays put a short way out
    reach = int(2 * 0.1 * comp.head_size_px()) + 1
    outside = ~head_mask(model, scene.state, reach)
    assert np.array_equal(out[outside], scene.photo[outside])


def test_relight_follows_shading_change(model, scene, comp) -> None:
    base = photo_light(scene.state)
    for az, el in ((60.0, 10.0), (-50.0, 35.0)):
        edit = EditParams(light=LightParams(az, el, base.intensity, base.ambient, base.temperature))
        out = comp.render(edit)
        gt = scene.render(model, edited_state(scene.state, edit, model))
        face = region_mask(model, scene.state, erode=7)
        d_out = out.astype(float).mean(-1)[face] - scene.photo.astype(float).mean(-1)[face]
        d_gt = gt.astype(float).mean(-1)[face] - scene.photo.astype(float).mean(-1)[face]
        assert np.corrcoef(d_out, d_gt)[0, 1] > 0.95
        assert psnr(out, gt, face) > 30.0
        # the light touches the person only (head, neck and what the segmentation calls person,
        # grown by the work grid's interpolation): the background stays the photo's
        person = cv2.dilate((comp.person_mask() >= 0.02).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        far = ~head_mask(model, scene.state, 41) & ~person
        assert far.sum() > 100000 and np.array_equal(out[far], scene.photo[far])


def test_relight_never_blows_out(model, scene, comp) -> None:
    edit = EditParams(light=LightParams(0.0, 0.0, 3.0, 1.0))
    out = comp.render(edit)
    face = region_mask(model, scene.state, erode=7)
    newly_white = (out.max(-1) > 250) & (scene.photo.max(-1) <= 250)
    assert not newly_white[face].any()
    assert out[face].astype(float).mean() > scene.photo[face].astype(float).mean() + 10  # it did brighten


def test_jaw_open_fills_the_mouth(model, scene, comp) -> None:
    edit = EditParams(expression={"jawOpen": 0.7})
    out = comp.render(edit)
    gt_state = edited_state(scene.state, edit, model)
    inside = new_mouth_pixels(model, scene.state, gt_state)
    assert inside.sum() > 50
    gt = scene.render(model, gt_state)
    # the new teeth/gums pixels come from the fill layer: close to the ground-truth render
    assert np.abs(out.astype(float) - gt.astype(float))[inside].mean() < 40.0


class _ConstantFill:
    name = "constant"

    def __init__(self) -> None:
        self.requests: list[FillRequest] = []

    def fill(self, request: FillRequest) -> FillLayer:
        self.requests.append(request)
        h, w = request.need.shape
        rgb = np.zeros((h, w, 3), np.float32)
        rgb[..., 1] = 1.0
        return FillLayer(rgb, np.ones((h, w), np.float32))


def test_fill_provider_interface(model, scene) -> None:
    provider = _ConstantFill()
    comp = MeshCompositor(scene.photo, scene.state, model, fill=provider)
    edit = EditParams(expression={"jawOpen": 0.7})
    out = comp.render(edit)
    assert len(provider.requests) == 1
    req = provider.requests[0]
    assert req.need.shape == (req.window.grid_h, req.window.grid_w) and req.need.max() > 0.5
    assert req.verts.shape == (1, model.n_vertices, 3) and req.sh.shape == (9, 3)
    gt_state = edited_state(scene.state, edit, model)
    inside = new_mouth_pixels(model, scene.state, gt_state)
    green = (out[..., 1].astype(int) - out[..., 0].astype(int) > 150) & (out[..., 2] < 60)
    assert green[inside].mean() > 0.8
    # a light edit needs no fill
    comp.render(EditParams(light=LightParams(30.0, 10.0)))
    assert len(provider.requests) == 1


# --------------------------------------------------------------------------- paths
def test_preview_scale_sizes(comp, scene) -> None:
    h, w = scene.photo.shape[:2]
    for scale in (0.5, 0.3):
        out = comp.render(EditParams(yaw=10), scale=scale)
        assert out.shape == (round(h * scale), round(w * scale), 3) and out.dtype == np.uint8
        z = comp.render(EditParams(), scale=scale)
        ref = cv2.resize(scene.photo, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        assert np.array_equal(z, ref)
    # a preview agrees with the full render downscaled
    full = comp.render(EditParams(yaw=10))
    half = comp.render(EditParams(yaw=10), scale=0.5)
    ref = cv2.resize(full, half.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert psnr(half, ref, np.ones(half.shape[:2], bool)) > 27.0


def test_cancel_raises(comp) -> None:
    with pytest.raises(Cancelled):
        comp.render(EditParams(yaw=5), cancel=lambda: True)
    calls = []

    def later() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        comp.render(EditParams(yaw=5), cancel=later)


def test_concurrent_renders_agree(comp) -> None:
    edits = [EditParams(yaw=8), EditParams(expression={"jawOpen": 0.4}), EditParams(light=LightParams(20.0, 5.0))]
    want = [comp.render(e) for e in edits]
    got: list = [None] * 3
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, comp.render(edits[i]))) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(want, got):
        assert np.array_equal(a, b)


def test_rejects_mismatched_photo(model, scene) -> None:
    with pytest.raises(ValueError):
        MeshCompositor(scene.photo[:100], scene.state, model)


def test_never_writes_into_the_photo(model) -> None:
    """Tiles as wide as the photo are views of it: edits must not leak into the source pixels."""
    small = synthetic_photo(model, seed=9, size=(200, 180))
    photo = small.photo.copy()
    comp = MeshCompositor(small.photo, small.state, model)
    for e in (EditParams(light=LightParams(50.0, 10.0, 0.9, 0.2)), EditParams(expression={"jawOpen": 0.6}),
              EditParams(yaw=-12, light=LightParams(-30.0, 30.0))):
        comp.render(e)
        comp.render(e, scale=0.5)
    assert np.array_equal(small.photo, photo)
    assert np.array_equal(comp.render(EditParams()), photo)
