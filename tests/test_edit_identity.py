"""dlib identity descriptors (faceeditor.face.identity) on LFW photos."""

from __future__ import annotations

import numpy as np
import pytest

from faceeditor.face import identity
from faceeditor.face.detect import NoFaceError
from faceeditor.io import load_rgb


@pytest.fixture(scope="module")
def lfw(data_dir):
    d = data_dir / "lfw"
    if not (d / "Aaron_Peirsol").is_dir():
        pytest.skip("LFW not found under ../shared/data/lfw")
    return d


def test_models_are_found() -> None:
    d = identity.models_dir()
    assert (d / "shape_predictor_5_face_landmarks.dat").is_file()


def test_same_and_different_people(lfw) -> None:
    a1 = load_rgb(lfw / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")
    a2 = load_rgb(lfw / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg")
    b = load_rgb(lfw / "Abba_Eban" / "Abba_Eban_0001.jpg")
    d1, d2, db = identity.descriptor(a1), identity.descriptor(a2), identity.descriptor(b)
    assert d1.shape == (identity.DESCRIPTOR_SIZE,) and d1.dtype == np.float32
    assert identity.distance(d1, d2) < identity.SAME_PERSON_THRESHOLD
    assert identity.distance(d1, db) > identity.SAME_PERSON_THRESHOLD
    assert identity.same_person(d1, d2) and not identity.same_person(d1, db)
    # a mirror image is the same person; a given box gives the detector's answer
    assert identity.distance(d1, identity.descriptor(np.ascontiguousarray(a1[:, ::-1]))) < 0.35
    box = identity.detect(a1)[0]
    np.testing.assert_allclose(identity.descriptor(a1, box), d1, atol=1e-5)


def test_no_face() -> None:
    with pytest.raises(NoFaceError):
        identity.descriptor(np.zeros((120, 120, 3), np.uint8))
    assert identity.detect(np.zeros((120, 120, 3), np.uint8)) == []
    with pytest.raises(ValueError):
        identity.descriptor(np.zeros((120, 120), np.uint8))
