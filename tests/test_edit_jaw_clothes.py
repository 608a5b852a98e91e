"""The still clothes layer under the jaw (faceeditor.edit.jaw_clothes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceeditor.edit import jaw_clothes
from faceeditor.edit.compose import MeshCompositor
from faceeditor.edit.grid import upsample
from faceeditor.edit.params import EditParams


def test_below_jaw_ramps_across_the_lowest_line() -> None:
    """A level jaw line at y = 20 (chin below it): 0 above the ramp, 1/2 on the line, 1 below; a
    second head whose line is lower decides (below *both* lines)."""
    a, b, chin = np.array([10.0, 20.0]), np.array([30.0, 20.0]), np.array([20.0, 30.0])
    w = jaw_clothes.below_jaw([np.stack([a, b, chin])], (40, 40), head_px=100.0)  # ramp 5 px
    assert w[10, 20] == 0.0 and w[30, 20] == 1.0
    assert w[20, 5] == pytest.approx(0.5, abs=1e-6)
    assert np.all(np.diff(w[:, 20]) >= 0)  # rising downwards
    lower = np.stack([a + [0, 6], b + [0, 6], chin + [0, 6]])
    both = jaw_clothes.below_jaw([np.stack([a, b, chin]), lower], (40, 40), head_px=100.0)
    assert both[26, 20] == pytest.approx(0.5, abs=1e-6) and both[20, 20] == 0.0
    flipped = jaw_clothes.below_jaw([np.stack([b, a, chin])], (40, 40), head_px=100.0)  # the chin orients it
    np.testing.assert_array_equal(flipped, w)


@pytest.fixture(scope="module")
def scene():
    from faceeditor.edit.scene import synthetic_photo
    from faceeditor.morphable import default_model_path, load_face_model

    if not default_model_path().is_file():
        pytest.skip("resources/face_model.npz missing")
    model = load_face_model("cpu")
    return model, synthetic_photo(model, seed=3, size=(256, 256))


def test_the_collar_under_the_jaw_stays_while_the_head_turns(scene) -> None:
    """Turned 20 degrees: off the edited head and under the jaw line, where the clothes layer is the
    photo (not the inpainted chin), the render is the photo bit for bit; without the layer the
    transformation map drags those pixels with the chin."""
    model, sc = scene
    person = np.zeros(sc.photo.shape[:2], np.float32)  # nothing beyond the face is relit
    comp = MeshCompositor(sc.photo, sc.state, model, person_mask=person)
    edit = EditParams(yaw=20.0)
    out = comp.render(edit)
    view = comp._view(1.0)
    grid = comp.grid_maps(edit)
    drawn = comp.jaw_clothes.prepare(view.photo, view.window, view.camera, view.head_px,
                                     comp._fragments(view.orig_sources), (comp.v_src, grid.head.verts),
                                     grid.head.fragments, grid.moving)
    H, W = sc.photo.shape[:2]
    weight = upsample(view.window, drawn.weight, 0, 0, W, H)
    meshes = np.zeros(view.window.grid_h * view.window.grid_w, np.float32)  # any triangle, either head
    meshes[grid.head.fragments[0].numpy()] = 1.0
    meshes[view.orig_sources.pix.numpy()] = 1.0
    near_mesh = upsample(view.window, meshes.reshape(view.window.grid_h, view.window.grid_w), 0, 0, W, H) > 0
    still = (weight > 0.999) & (drawn.layer == sc.photo).all(2) & ~near_mesh
    assert still.sum() > 200
    np.testing.assert_array_equal(out[still], sc.photo[still])
    comp.jaw_clothes = None
    dragged = comp.render(edit)
    assert (np.abs(dragged[still].astype(int) - sc.photo[still]).max(1) > 2).sum() > 20


def test_head_coverage_is_the_interpolated_head_weight_ramped() -> None:
    """Per pixel, not per triangle: the corners' head-rotation weights interpolated by the
    barycentrics, 0 up to HEAD_RAMP[0], 1 from HEAD_RAMP[1], a smoothstep between (a triangle that
    straddles the neck line is split along a smooth line instead of counting whole)."""
    from faceeditor.edit.grid import Window

    lo, hi = jaw_clothes.HEAD_RAMP
    heads = torch.tensor([[1.0, 1.0, 1.0], [lo - 0.1, 1.0, (lo + hi) / 2]])
    pix = torch.tensor([0, 1, 2, 3])
    faces = torch.tensor([0, 1, 1, 1])
    bary = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    win = Window(0, 0, 4, 1, 4, 1)
    cov = jaw_clothes.coverage((pix, faces, bary), heads, win)
    np.testing.assert_allclose(cov[0], [1.0, 0.0, 1.0, 0.5], atol=1e-6)


def test_beside_the_jaw_a_collar_colour_stays_and_a_hair_colour_moves() -> None:
    """clothes_probability: a pixel with the colour of the clothes samples reads ~1, with the hair
    samples' ~0, an unseen colour 0.5."""
    from faceeditor.edit.jaw_clothes import clothes_probability

    small = np.zeros((10, 30, 3), np.uint8)
    small[:, :10] = (240, 240, 235)  # white collar
    small[:, 10:20] = (70, 45, 30)  # brown hair
    small[:, 20:] = (20, 200, 20)  # a colour neither shows
    clothes = np.zeros((10, 30), bool)
    clothes[5:, :10] = True
    hair = np.zeros((10, 30), bool)
    hair[5:, 10:20] = True
    p = clothes_probability(small, hair, clothes)
    assert p is not None
    assert p[0, 0] > 0.95 and p[0, 15] < 0.05 and abs(p[0, 25] - 0.5) < 1e-6
    assert clothes_probability(small, hair & False, clothes) is None  # too few hair samples


def test_the_preview_and_the_full_size_keep_their_clothes_layers(scene, monkeypatch) -> None:
    """The editor alternates preview and full-resolution renders: each size's clothes layer (an
    inpainting) is made once, not again every time the other size was drawn in between."""
    model, sc = scene
    comp = MeshCompositor(sc.photo, sc.state, model, person_mask=np.zeros(sc.photo.shape[:2], np.float32))
    made = []
    layer = jaw_clothes.clothes_layer
    monkeypatch.setattr(jaw_clothes, "clothes_layer", lambda *a: made.append(a[0].shape) or layer(*a))
    first = {s: comp.render(EditParams(yaw=15.0), scale=s) for s in (0.5, 1.0)}
    for yaw in (12.0, 15.0):
        for s in (0.5, 1.0):
            out = comp.render(EditParams(yaw=yaw), scale=s)
    assert len(made) == 2 and made[0] != made[1]
    np.testing.assert_array_equal(out, first[1.0])
