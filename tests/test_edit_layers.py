"""The layered portrait inside the compositor: the person moves over a still background."""

from __future__ import annotations

import numpy as np
import pytest

from faceeditor.edit.compose import MeshCompositor
from faceeditor.edit.params import EditParams
from faceeditor.edit.scene import synthetic_photo
from faceeditor.morphable import default_model_path, load_face_model


@pytest.fixture(scope="module")
def model():
    if not default_model_path().is_file():
        pytest.skip("resources/face_model.npz missing: python -m trainers.build_face_model")
    return load_face_model("cpu")


def test_layered_turn_keeps_still_pixels_and_the_background(model):
    scene = synthetic_photo(model, seed=5, size=(384, 384))
    h, w = scene.photo.shape[:2]
    person = np.zeros((h, w), np.float32)  # the "segmentation": the middle of the frame
    person[60:, 90:300] = 1.0
    plain = MeshCompositor(scene.photo, scene.state, model).render(EditParams(yaw=20.0))
    comp = MeshCompositor(scene.photo, scene.state, model, layered=True, person_mask=person)
    out = comp.render(EditParams(yaw=20.0))
    assert out.shape == scene.photo.shape and out.dtype == np.uint8
    flow = comp.grid_maps(EditParams(yaw=20.0)).flow
    assert flow is not None
    changed = np.any(out != scene.photo, axis=2)
    # pixels far from the head (outside the work window's moving area) are the photo's, bit-exact
    assert not changed[:, :20].any() and not changed[:, -20:].any()
    # the background beside the person stays where it was: the layered render changes less of it
    # than the single warp does
    bg = person == 0
    moved_plain = np.any(plain != scene.photo, axis=2) & bg
    moved_layered = changed & bg
    assert moved_layered.sum() < moved_plain.sum()
    assert comp.render(EditParams()).tobytes() == scene.photo.tobytes()  # a zero edit is the photo


def test_person_segmentation_on_the_sample_portrait():
    from faceeditor.core.paths import sample_image_path
    from faceeditor.face.detect import detect_faces
    from faceeditor.face.segment import PersonSegmenter
    from faceeditor.io import load_rgb

    rgb = load_rgb(sample_image_path())
    with PersonSegmenter() as seg:
        mask = seg.mask(rgb)
    assert mask.shape == rgb.shape[:2] and mask.dtype == np.float32 and 0.0 <= mask.min() <= mask.max() <= 1.0
    x0, y0, x1, y1 = (int(v) for v in detect_faces(rgb)[0].box)
    assert mask[y0:y1, x0:x1].mean() > 0.9  # the face is the person
    assert mask.mean() < 0.8  # and not everything is
    with pytest.raises(ValueError):
        PersonSegmenter().mask(rgb.astype(np.float32))


def test_bicubic_warp_keeps_pixels_with_zero_flow_exact(model):
    from faceeditor.edit.grid import upsample

    scene = synthetic_photo(model, seed=3, size=(320, 320))
    comp = MeshCompositor(scene.photo, scene.state, model)
    edit = EditParams(yaw=12.0)
    out = comp.render(edit)
    maps = comp.grid_maps(edit)
    win = maps.window
    flow = upsample(win, maps.flow, win.x0, win.y0, win.w, win.h)
    zero = (flow[..., 0] == 0) & (flow[..., 1] == 0)
    rows, cols = win.slices
    moved_tile = ~zero
    assert zero.sum() > 1000 and moved_tile.sum() > 1000  # both kinds of pixel inside the window
    assert np.array_equal(out[rows, cols][zero], scene.photo[rows, cols][zero])


def test_a_flow_past_the_photo_edge_samples_the_photo_mirrored() -> None:
    """A flow that reaches 8 px past the left edge samples the photo mirrored there (hair and
    background continue), not the edge column repeated (horizontal streaks)."""
    from faceeditor.edit import tiles
    from faceeditor.edit.grid import Window

    g = np.random.default_rng(0)
    photo = g.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    win = Window(0, 0, 48, 32, 48, 32)  # grid = output pixels
    flow = np.zeros((32, 48, 2), np.float32)
    flow[..., 0] = -8.0  # every output pixel samples 8 px to its left
    tile = tiles.moved_tile(photo, win, flow, None, (0, 0, 48, 32))
    np.testing.assert_array_equal(tile[:, 8:], photo[:, :40])
    np.testing.assert_array_equal(tile[:, :8], photo[:, 8:0:-1])  # x = -k samples x = k


def test_the_mouth_interior_moves_with_the_face_around_it() -> None:
    """follow_face: pixels of inner triangles (teeth, sockets) take the face's flow around them;
    the face keeps its own exactly."""
    import torch

    from faceeditor.edit import maps
    from faceeditor.edit.flow import Sources
    from faceeditor.edit.grid import Window

    n = 12
    pix = torch.arange(n * n)
    inner_px = torch.zeros(n, n, dtype=torch.bool)
    inner_px[4:8, 4:8] = True
    face = inner_px.reshape(-1).long()  # triangle 1 = teeth, 0 = skin
    flow = torch.where(inner_px.reshape(-1, 1), torch.tensor([5.0, -3.0]), torch.tensor([1.0, 2.0]))
    z3 = torch.zeros(n * n, 3)
    src = Sources(pix, face, torch.zeros(n * n, 2), flow, torch.ones(n * n), z3, z3, z3)
    grid = flow.view(n, n, 2).numpy().copy()
    out = maps.follow_face(grid, src, torch.tensor([False, True]), Window(0, 0, n, n, n, n))
    np.testing.assert_allclose(out[inner_px.numpy()], np.tile([1.0, 2.0], (16, 1)), atol=1e-5)
    np.testing.assert_array_equal(out[~inner_px.numpy()], grid[~inner_px.numpy()])


def test_where_the_face_left_the_photo_behind_it_shows_not_a_copy_of_it() -> None:
    """BehindFace: a pixel off the edited face whose flow reaches into the fitted face (the
    continuation of a turned face's motion past its outline) samples the photo with that face
    inpainted away (the hair around it), never the face; a pixel on the edited face samples the
    face as before."""
    from faceeditor.edit import layers, tiles
    from faceeditor.edit.grid import Window

    h, w = 40, 80
    photo = np.zeros((h, w, 3), np.uint8)
    photo[:] = (90, 60, 30)  # brown hair everywhere ...
    photo[10:30, 40:60] = (230, 180, 150)  # ... around a face
    win = Window(0, 0, w, h, w, h)  # grid = output pixels
    face = np.zeros((h, w), bool)
    face[10:30, 40:60] = True
    behind = layers.behind_face(photo, face, win)
    assert behind is not None
    ox, oy = behind.origin
    assert np.abs(behind.image[20 - oy, 50 - ox].astype(int) - (90, 60, 30)).max() < 12  # inpainted: hair
    assert behind.hole[20, 50] > 0.99 and behind.hole[20, 5] == 0
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = 20.0  # every pixel samples 20 px to its right: x in [20, 40) sample the old face
    new_face = np.zeros((h, w), np.float32)
    new_face[10:30, 28:40] = 1.0  # the face's new place covers only part of that strip
    tile = tiles.moved_tile(photo, win, flow, None, (0, 0, w, h), None, behind, new_face)
    assert np.abs(tile[20, 24].astype(int) - (90, 60, 30)).max() < 12  # off the face: hair, no ghost
    np.testing.assert_array_equal(tile[20, 32], photo[20, 52])  # on the face: the face
    plain = tiles.moved_tile(photo, win, flow, None, (0, 0, w, h))
    np.testing.assert_array_equal(plain[20, 24], photo[20, 44])  # (without it: the copy)


def test_behind_face_leaves_the_forehead_above_the_brows() -> None:
    """With brow points, only the face below the line through them is inpainted away: a bald crown
    that samples the forehead after a turn stays skin (Fred Swan at yaw 30 got a cap of sky)."""
    from faceeditor.edit import layers
    from faceeditor.edit.grid import Window

    below = layers.below_line(np.array([[0.0, 10.0], [40.0, 20.0]]), (30, 40))
    assert below[20, 0] and not below[5, 0] and below[25, 39] and not below[15, 39]  # a sloped line
    photo = np.full((40, 60, 3), (90, 60, 30), np.uint8)
    photo[5:35, 20:40] = (230, 180, 150)
    face = np.zeros((40, 60), bool)
    face[5:35, 20:40] = True
    behind = layers.behind_face(photo, face, Window(0, 0, 60, 40, 60, 40), np.array([[20.0, 15.0], [40.0, 15.0]]))
    assert behind is not None
    assert behind.hole[8, 30] < 0.5 < behind.hole[28, 30]  # the forehead is not in the hole, the chin is
