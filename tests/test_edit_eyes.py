"""Closing the eyes in image space from the surrounding skin (blink)."""

from __future__ import annotations

import numpy as np
import pytest

from faceeditor.core.state import FaceState
from faceeditor.edit import eyes
from faceeditor.edit.grid import Window
from faceeditor.edit.params import EditParams


def _eye_scene() -> tuple[np.ndarray, np.ndarray]:
    """A skin-coloured image with one almond-shaped dark eye and its mediapipe contour points."""
    img = np.zeros((120, 160, 3), np.uint8)
    img[:] = (190, 150, 130)
    lm = np.zeros((478, 2), np.float64)
    e = eyes.RIGHT_EYE
    xs = np.linspace(50, 110, 9)
    up_y = 60 - 12 * np.sin(np.linspace(0, np.pi, 9))
    lo_y = 60 + 8 * np.sin(np.linspace(0, np.pi, 9))
    lm[e["corners"][0]], lm[e["corners"][1]] = (xs[0], 60), (xs[-1], 60)
    for i, j in enumerate(e["upper"]):
        lm[j] = (xs[i + 1], up_y[i + 1])
    for i, j in enumerate(e["lower"]):
        lm[j] = (xs[i + 1], lo_y[i + 1])
    import cv2

    poly = np.round(np.vstack([np.stack([xs, up_y], 1), np.stack([xs, lo_y], 1)[::-1]])).astype(np.int32)
    cv2.fillPoly(img, [poly], (40, 30, 30))
    return img, lm


def test_a_closed_eye_is_skin_with_a_lash_line():
    img, lm = _eye_scene()
    shut = eyes.close_eyes(img, lm, {"eyeBlink_R": 1.0})
    opening = img[..., 0] == 40
    assert np.median(shut[opening][:, 0]) > 150  # the dark opening became skin ...
    assert shut[opening].min() < 120  # ... but for the lash line
    assert np.array_equal(shut[:10], img[:10]) and np.array_equal(shut[:, :20], img[:, :20])  # far pixels untouched


def test_blink_amounts_are_gradual():
    img, lm = _eye_scene()
    opening = img[..., 0] == 40
    dark = [(eyes.close_eyes(img, lm, {"eyeBlink_R": a})[opening] < 100).mean() for a in (0.0, 0.3, 0.6, 1.0)]
    assert dark[0] == 1.0 and dark[0] > dark[1] > dark[2] > dark[3]
    assert np.array_equal(eyes.close_eyes(img, lm, {"eyeBlink_L": 0.0}), img)


def test_split_blink_keeps_the_geometry_and_measures_from_the_photo():
    names = ["eyeBlink_L", "eyeBlink_R", "jawOpen"]
    st = FaceState((10, 10), (0, 0, 1, 1), np.eye(3), np.zeros(3), 100.0, np.zeros(100),
                   np.array([0.5, 0.0, 0.2], np.float32), np.zeros((9, 3)), detector_landmarks=np.zeros((478, 3)))
    edit = EditParams(expression={"eyeBlink_L": 1.0, "eyeBlink_R": 0.5, "jawOpen": 0.7})
    geo, amounts = eyes.split_blink(edit, st, names)
    assert geo.expression == {"eyeBlink_L": 0.5, "eyeBlink_R": 0.0, "jawOpen": 0.7}
    assert amounts == pytest.approx({"eyeBlink_L": 1.0, "eyeBlink_R": 0.5})
    assert eyes.split_blink(EditParams(expression={"eyeBlink_L": 0.2}), st, names)[1] == {}
    st.detector_landmarks = None  # no eye points: the mesh closes the lids
    assert eyes.split_blink(edit, st, names) == (edit, {})


def test_carry_points_inverts_a_constant_flow():
    win = Window(0, 0, 100, 80, 50, 40)
    flow = np.zeros((40, 50, 2), np.float32)
    flow[..., 0] = 3.0  # every output pixel takes the photo pixel 3 px to its right
    got = eyes.carry_points(np.array([[40.0, 30.0]]), flow, win)
    assert got == pytest.approx(np.array([[37.0, 30.0]]), abs=1e-4)


def test_blink_on_the_sample_portrait_closes_only_the_eyes():
    from faceeditor.bench import _judges as J
    from faceeditor.core.paths import sample_image_path
    from faceeditor.edit.compose import MeshCompositor
    from faceeditor.edit.presets import macro_weights
    from faceeditor.face.detect import FaceDetector
    from faceeditor.fit.pipeline import fit_photo
    from faceeditor.io import load_rgb
    from faceeditor.morphable import default_model_path, load_face_model

    if not default_model_path().is_file():
        pytest.skip("resources/face_model.npz missing")
    rgb = load_rgb(sample_image_path())
    det = FaceDetector()
    state = fit_photo(rgb, detector=det)[0]
    out = MeshCompositor(rgb, state, load_face_model()).render(EditParams(expression=macro_weights("blink", 1.0)))
    changed = np.any(out != rgb, axis=2)
    lm = state.detector_landmarks[:, :2]
    eye_pts = lm[[*eyes.RIGHT_EYE["upper"], *eyes.LEFT_EYE["upper"], 33, 263, 133, 362]]
    x0, y0 = eye_pts.min(0) - 40
    x1, y1 = eye_pts.max(0) + 40
    ys, xs = np.nonzero(changed)
    assert len(ys) > 50 and xs.min() >= x0 and xs.max() <= x1 and ys.min() >= y0 and ys.max() <= y1
    before = J.eye_aspect_ratio(J.nearest_face(det, rgb, state.face_box).landmarks)
    after = J.eye_aspect_ratio(J.nearest_face(det, out, state.face_box).landmarks)
    assert after < 0.75 * before


def test_sclera_below_the_lower_lid_line_is_closed_too() -> None:
    """Looking up, mediapipe's lower lid line hugs the iris: the white of the eye below it joins the
    hole (touching it, grey and bright), the skin and a white patch not touching it do not."""
    import cv2

    from faceeditor.edit import eyes

    crop = np.zeros((60, 100, 3), np.uint8)
    crop[:] = (200, 140, 110)  # skin
    crop[30:38, 30:70] = (230, 228, 225)  # sclera under the lower line (y = 30)
    crop[50:55, 5:15] = (235, 235, 235)  # a white patch far from the eye (a collar, a glint)
    lower = np.array([[25.0, 30.0], [50.0, 30.0], [75.0, 30.0]])
    hole = np.zeros((60, 100), np.uint8)
    cv2.rectangle(hole, (25, 18), (75, 30), 1, -1)
    extra = eyes._sclera_below(crop, hole, lower, width=50.0)
    assert extra[31:37, 32:68].all()  # the sclera band
    assert not extra[45:, :].any()  # neither the skin below nor the far white patch


def test_an_eye_the_photo_shows_shut_is_left_as_it_is() -> None:
    """Lid lines 2 % of the eye's width apart: the eye is already closed; blinking it draws nothing
    (it used to add a second, darker lash line over the closed lids)."""
    from faceeditor.edit import eyes

    xs = np.linspace(20.0, 70.0, 9)
    upper = np.stack([xs, 40.0 - 0.5 * np.sin(np.linspace(0, np.pi, 9))], 1)
    lower = np.stack([xs, 40.0 + 0.5 * np.sin(np.linspace(0, np.pi, 9))], 1)
    eye = eyes.EyeOutline(upper, lower)
    assert eye.opening < eyes.ALREADY_CLOSED
    image = np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8)
    np.testing.assert_array_equal(eyes.close_eye(image, eye, 1.0), image)
    wide = eyes.EyeOutline(upper - [0, 8], lower + [0, 8])
    assert not np.array_equal(eyes.close_eye(image, wide, 1.0), image)
