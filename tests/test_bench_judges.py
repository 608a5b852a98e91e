"""The independent judges of the realism benchmarks, on inputs whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from faceeditor.bench import _judges as J
from faceeditor.edit import layers
from faceeditor.edit.grid import Window


def _eye_points(open_px: float) -> np.ndarray:
    lm = np.zeros((478, 3), np.float32)
    for idx, x0 in ((J.EYE_RIGHT, 100.0), (J.EYE_LEFT, 200.0)):
        p1, p2, p3, p4, p5, p6 = idx
        lm[p1, :2], lm[p4, :2] = (x0, 100), (x0 + 40, 100)
        lm[p2, :2], lm[p3, :2] = (x0 + 13, 100 - open_px / 2), (x0 + 27, 100 - open_px / 2)
        lm[p6, :2], lm[p5, :2] = (x0 + 13, 100 + open_px / 2), (x0 + 27, 100 + open_px / 2)
    return lm


def test_eye_aspect_ratio_known_answers():
    assert J.eye_aspect_ratio(_eye_points(12.0)) == pytest.approx(12.0 / 40.0)
    assert J.eye_aspect_ratio(_eye_points(0.0)) == pytest.approx(0.0)


def test_mouth_aspect_ratio_known_answer():
    lm = np.zeros((478, 3), np.float32)
    lm[J.MOUTH_CORNERS[0], :2], lm[J.MOUTH_CORNERS[1], :2] = (0, 0), (50, 0)
    for a, b in J.MOUTH_GAPS:
        lm[a, :2], lm[b, :2] = (25, -10), (25, 10)
    assert J.mouth_aspect_ratio(lm) == pytest.approx(20.0 / 50.0)


def test_roc_auc_known_answers():
    assert J.roc_auc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert J.roc_auc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert J.roc_auc([0.5, 0.5, 0.5, 0.5], [False, True, False, True]) == 0.5
    assert np.isnan(J.roc_auc([1.0, 2.0], [True, True]))


def test_masked_psnr_and_ssim():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64))
    mask[16:48, 16:48] = 1
    assert J.masked_psnr(a, a, mask) == 100.0
    assert J.masked_ssim(a, a, mask) == pytest.approx(1.0, abs=1e-6)
    b = a.copy()
    b[0:8] = 0  # outside the mask: ignored
    assert J.masked_psnr(a, b, mask) == 100.0
    c = np.clip(a.astype(int) + 10, 0, 255).astype(np.uint8)
    assert 25.0 < J.masked_psnr(a, c, mask) < 29.0  # 10 grey levels ~ 28 dB


def test_seam_ratio_sees_a_pasted_patch():
    y, x = np.mgrid[0:200, 0:200]
    src = np.dstack([(100 + 40 * np.sin(x / 15.0) * np.sin(y / 17.0)).astype(np.uint8)] * 3)
    smooth = src.copy()
    smooth[60:140, 60:140] = np.clip(src[60:140, 60:140].astype(int) + 3, 0, 255)  # below the change threshold
    assert np.isnan(J.seam_ratio(src, smooth, 100.0))
    pasted = src.copy()
    pasted[60:140, 60:140] = 200  # a flat patch with hard edges
    assert J.seam_ratio(src, pasted, 100.0) > 3.0


def test_layers_composite_and_inpaint():
    photo = np.full((120, 160, 3), 90, np.uint8)
    photo[40:100, 60:100] = 200  # the "person"
    alpha = np.zeros((120, 160), np.uint8)
    alpha[40:100, 60:100] = 255
    win = Window(20, 10, 120, 100, 60, 50)
    bg = layers.inpaint_background(photo, alpha, win)
    assert np.abs(bg[60:80, 70:90].astype(int) - 90).max() <= 6  # the person is gone, background continued
    assert np.array_equal(bg[:5], photo[:5])  # outside the window: the photo itself
    out = layers.composite(photo, alpha, bg)
    assert np.array_equal(out[alpha == 255], photo[alpha == 255]) and np.array_equal(out[alpha == 0], bg[alpha == 0])


def test_incoherence_tells_a_moved_photo_from_a_painted_one():
    rng = np.random.default_rng(1)
    base = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
    import cv2

    src = cv2.resize(base, (320, 240), interpolation=cv2.INTER_CUBIC)  # a smooth random "photo"
    assert np.isnan(J.incoherence(src, src.copy(), 100.0))  # nothing changed
    moved = src.copy()
    moved[60:180, 80:240] = src[60:180, 84:244]  # a region shifted by 4 px: the photo's own patches
    painted = src.copy()
    painted[60:180, 80:240] = (rng.random((120, 160, 3)) * 255).astype(np.uint8)  # patches it never had
    flat = src.copy()
    flat[60:180, 80:240] = (20, 200, 240)  # a flat band of a colour the photo lacks, hard edges
    low = J.incoherence(src, moved, 100.0)
    assert low < 0.25 * J.incoherence(src, painted, 100.0) and low < 0.5 * J.incoherence(src, flat, 100.0)


def test_bench_artifacts_names_a_set_it_has_no_labels_for(tmp_path, capsys):
    """``--sets`` keeps only the labelled sets asked for; none left is a clear error, not an empty run."""
    import json

    from faceeditor.cli import main

    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"renderer": "mesh", "labels": [
        {"photo": "lfw/X/X_0001.jpg", "edit": {"yaw": 10.0}, "label": "clean", "set": "A"}]}))
    code = main(["bench", "artifacts", "--labels", str(labels), "--sets", "E", "--json", str(tmp_path / "a.json")])
    assert code == 2 and "no labelled edits in sets ['E']" in capsys.readouterr().err
    assert not (tmp_path / "a.json").exists()
