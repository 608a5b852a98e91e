"""Face detection: boxes, 478/68 landmarks in full-res pixels, sizes, errors, determinism, afw68 NME."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from faceeditor.cli import main
from faceeditor.core.errors import FaceEditorError
from faceeditor.core.paths import sample_image_path
from faceeditor.face import (
    MIRROR_68,
    MIRROR_PAIRS_68,
    Face,
    FaceDetector,
    FaceTooSmallError,
    NoFaceError,
    detect_faces,
    get_detector,
    to_68,
)
from faceeditor.face.evaluate import default_predict, evaluate_folder, load_pts, nme68
from faceeditor.face.landmarks68 import MEDIAPIPE_TO_68

R_IRIS, L_IRIS, NOSE_TIP, CHIN = 468, 473, 4, 152  # mediapipe: subject's right iris is on the image left


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    with Image.open(sample_image_path()) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def detector():
    """One detector for the module, as a caller keeps it (building the graphs takes a while)."""
    with FaceDetector() as det:
        yield det


@pytest.fixture(scope="module")
def astro_face(astronaut) -> Face:
    faces = detect_faces(astronaut)  # the default path: a detector built for this call
    assert len(faces) == 1
    return faces[0]


def _interocular(face: Face) -> float:
    p = face.landmarks68
    return float(np.linalg.norm(p[45] - p[36]))


def test_astronaut_one_face(astro_face: Face) -> None:
    f = astro_face
    x0, y0, x1, y1 = f.box
    assert 200 < (x0 + x1) / 2 < 250 and 100 < (y0 + y1) / 2 < 150  # the face in the 512x512 sample
    assert 80 < f.size < 140 and f.score > 0.7 and not f.too_small and f.source == "detector"
    lm = f.landmarks
    assert lm.shape == (478, 3) and lm.dtype == np.float32 and np.isfinite(lm).all()
    for i in (R_IRIS, L_IRIS, NOSE_TIP):
        assert x0 <= lm[i, 0] <= x1 and y0 <= lm[i, 1] <= y1
    assert lm[R_IRIS, 0] < lm[NOSE_TIP, 0] < lm[L_IRIS, 0]  # image left = subject's right
    assert max(lm[R_IRIS, 1], lm[L_IRIS, 1]) < lm[NOSE_TIP, 1] < lm[CHIN, 1]
    assert lm[NOSE_TIP, 2] < lm[:, 2].mean()  # nose tip nearer the camera than the average point
    p68 = f.landmarks68
    assert p68.shape == (68, 2) and p68[36, 0] < p68[45, 0] and 30 < _interocular(f) < 70


def test_upscaled_photo_maps_to_full_resolution(astronaut, astro_face, detector) -> None:
    big = cv2.resize(astronaut, (4000, 4000), interpolation=cv2.INTER_CUBIC)  # corner-aligned scaling
    faces = detect_faces(big, detector=detector)
    assert len(faces) == 1
    s = 4000 / 512
    err = np.linalg.norm(faces[0].landmarks[:, :2] / s - astro_face.landmarks[:, :2], axis=1)
    assert np.median(err) / _interocular(astro_face) < 0.02
    np.testing.assert_allclose(np.array(faces[0].box) / s, astro_face.box, atol=0.03 * astro_face.size)
    z_ratio = np.std(faces[0].landmarks[:, 2]) / np.std(astro_face.landmarks[:, 2])
    assert 0.9 * s < z_ratio < 1.1 * s  # depth is in x's pixel scale


def test_two_faces_and_mirror_convention(astronaut, astro_face, detector) -> None:
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    pair = np.concatenate([astronaut, flipped], axis=1)  # 1024x512
    faces = detector.detect(pair)
    assert len(faces) == 2
    left, right = sorted(faces, key=lambda f: f.box[0])
    assert left.box[2] < 512 < right.box[0]
    assert faces[0].area >= faces[1].area  # largest first
    # Mirroring: x -> W - x in continuous coordinates (pixel edges), semantic left/right swapped.
    # (Uncalibrated points: the afw68 calibration holds a ~1 px annotation bias that is not mirror-symmetric.)
    mirrored = to_68(right.landmarks, calibrated=False)[MIRROR_68]
    mirrored[:, 0] = 1024 - mirrored[:, 0]  # x_pair = 512 + (512 - x_original)
    raw = to_68(left.landmarks, calibrated=False)
    assert np.abs((mirrored - raw).mean(axis=0)).max() < 0.5  # no systematic half-pixel slip
    assert np.linalg.norm(mirrored - raw, axis=1).mean() / _interocular(astro_face) < 0.03
    # The left face is the sample's face; its crop differs slightly (detector box), so a tolerance.
    err = np.linalg.norm(left.landmarks[:, :2] - astro_face.landmarks[:, :2], axis=1)
    assert np.median(err) / _interocular(astro_face) < 0.02


def test_blank_image_has_no_face(detector) -> None:
    with pytest.raises(NoFaceError, match="no face") as info:
        detector.detect(np.full((300, 400, 3), 127, np.uint8))
    assert isinstance(info.value, FaceEditorError) and not isinstance(info.value, FaceTooSmallError)


def test_tiny_face_is_reported_too_small(astronaut, detector) -> None:
    small = cv2.resize(astronaut, (144, 144), interpolation=cv2.INTER_AREA)  # face ~28 px
    canvas = np.full((1000, 1280, 3), 90, np.uint8)
    canvas[400:544, 700:844] = small
    with pytest.raises(FaceTooSmallError, match=r"too small.*need 40 px") as info:
        detector.detect(canvas)
    assert len(info.value.faces) == 1
    f = info.value.faces[0]
    assert f.too_small and 15 < f.size < 40 and 700 < f.box[0] < f.box[2] < 844
    # A lower threshold accepts it.
    assert len(detector.detect(canvas, min_face_px=10)) == 1


def test_deterministic_and_thread_safe(astronaut, astro_face, detector) -> None:
    again = detect_faces(astronaut.copy(), detector=detector)
    assert again[0].box == astro_face.box and again[0].score == astro_face.score
    assert np.array_equal(again[0].landmarks, astro_face.landmarks)
    results: list[np.ndarray] = []

    def work() -> None:  # one detector shared by threads
        results.append(detector.detect(astronaut)[0].landmarks)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(np.array_equal(r, astro_face.landmarks) for r in results)
    fresh = get_detector()  # a new set of graphs (no process-wide detector) gives the same answer
    with fresh:
        assert fresh is not detector and np.array_equal(fresh.detect(astronaut)[0].landmarks, astro_face.landmarks)


def test_input_formats(astronaut, astro_face, detector) -> None:
    rgba = np.concatenate([astronaut, np.full(astronaut.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert np.array_equal(detector.detect(rgba)[0].landmarks, astro_face.landmarks)
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    assert len(detector.detect(gray)) == 1
    with pytest.raises(TypeError):
        detector.detect(astronaut.astype(np.float32))


def test_landmarks68_table_and_mirror() -> None:
    assert len(MEDIAPIPE_TO_68) == 68
    assert sorted(a for pair in MIRROR_PAIRS_68 for a in pair) == sorted(set(a for p in MIRROR_PAIRS_68 for a in p))
    assert np.array_equal(MIRROR_68[MIRROR_68], np.arange(68))
    assert MIRROR_68[36] == 45 and MIRROR_68[8] == 8 and MIRROR_68[48] == 54
    pts = np.random.default_rng(0).uniform(0, 100, (478, 3))
    raw = to_68(pts, calibrated=False)
    np.testing.assert_allclose(raw[3], (pts[132, :2] + pts[58, :2]) / 2, rtol=1e-6)
    np.testing.assert_allclose(raw[36], pts[33, :2], rtol=1e-6)
    with pytest.raises(ValueError):
        to_68(pts[:68])


def test_pts_and_nme(tmp_path: Path) -> None:
    gt = np.stack([np.arange(68.0), np.arange(68.0) * 0.5], axis=1) + 1.0
    (tmp_path / "a.pts").write_text("version: 1\nn_points: 68\n{\n" + "".join(f"{x} {y}\n" for x, y in gt) + "}\n")
    loaded = load_pts(tmp_path / "a.pts")
    np.testing.assert_allclose(loaded, gt - 0.5)  # iBUG 1-based centres -> continuous coordinates
    assert nme68(loaded, loaded) == 0.0
    assert nme68(loaded + (3.0, 4.0), loaded) == pytest.approx(5.0 / np.linalg.norm(loaded[45] - loaded[36]))


def test_afw68_sample_accuracy(data_dir: Path, detector) -> None:
    folder = data_dir / "afw68"
    names = sorted(p.stem for p in folder.glob("*.pts"))[::34]  # 10 faces spread over the set
    result = evaluate_folder(folder, default_predict(detector=detector), names=names)
    assert result["images"] == 10 and result["detection_rate"] == 1.0
    assert result["nme_median"] < 0.06
    assert max(r["nme"] for r in result["per_file"]) < 0.15


def test_cli_detect(astronaut, tmp_path: Path, capsys) -> None:
    photo = tmp_path / "astro.png"
    Image.fromarray(astronaut).save(photo)
    overlay, out_json = tmp_path / "overlay.png", tmp_path / "faces.json"
    assert main(["detect", str(photo), "-o", str(overlay), "--json", str(out_json)]) == 0
    assert "1 face(s)" in capsys.readouterr().out
    doc = json.loads(out_json.read_text())
    assert doc["width"] == 512 and len(doc["faces"]) == 1
    assert np.array(doc["faces"][0]["landmarks"]).shape == (478, 3)
    with Image.open(overlay) as im:
        assert im.size == (512, 512)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(blank)
    assert main(["detect", str(blank)]) == 2
    assert "no face" in capsys.readouterr().err


def test_mediapipe_loads_without_building_a_matplotlib_font_cache(tmp_path) -> None:
    """``import mediapipe`` pulls in matplotlib.pyplot, whose first import builds a font cache
    (seconds, in the user's cache folder); the detector defers it until something plots."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from faceeditor.face.detect import FaceDetector\n"
        "FaceDetector()\n"
        "assert 'matplotlib.font_manager' not in sys.modules, 'pyplot was imported'\n"
        "import mediapipe as mp\n"
        "plt = mp.solutions.drawing_utils.plt\n"
        "assert callable(plt.figure)\n"  # the deferred module still works when used
        "assert 'matplotlib.font_manager' in sys.modules\n"
    )
    env = dict(__import__("os").environ, MPLCONFIGDIR=str(tmp_path / "mpl"))
    env.pop("MPLBACKEND", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
