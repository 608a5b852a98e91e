"""Output side of `faceeditor fit`: OBJ/MTL/PNG, params.json, the fit overlay, the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import faceeditor.commands.fit as fit_command
from faceeditor.cli import main
from faceeditor.core.pose import euler_to_matrix
from faceeditor.core.state import FaceState
from faceeditor.fit.export import write_face_mesh
from faceeditor.fit.overlay import cluster_mesh, draw_fit_overlay
from faceeditor.fit.params_json import ParamsFileError, params_dict, read_params_json, write_params_json
from faceeditor.fit.synthetic import random_face_state, render_state, state_vertices
from faceeditor.io import load_image, save_image
from faceeditor.io.mesh import read_mtl, read_obj, write_textured_obj
from faceeditor.morphable.model import load_face_model
from faceeditor.render.atlas import base_atlas

TILE = 32  # small texture atlases keep the tests fast

REQUIRED = {"image_size", "face_box", "pose", "translation", "focal_px", "identity", "expression", "lighting_sh",
            "landmarks68", "detector_landmarks68"}


@pytest.fixture(scope="module")
def model():
    return load_face_model("cpu")


def _state(model, seed: int = 0, size=(320, 240), angles=None, **kw) -> FaceState:
    st = random_face_state(model, seed, image_size=size, **kw)
    if angles is not None:
        st.rotation = euler_to_matrix(*angles)[0].numpy()
    return st


def _texture(model, tile: int = TILE) -> np.ndarray:
    return (base_atlas(tile, model=model) * 255 + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------- OBJ / MTL / PNG
def test_textured_obj_round_trip(tmp_path, model):
    st = _state(model)
    files = write_face_mesh(tmp_path, "head", st, model, texture=_texture(model))
    mesh = read_obj(files.obj)
    assert mesh.vertices.shape == (model.n_vertices, 3)
    assert len(mesh.faces) > 40000 and mesh.faces.shape == mesh.faces_uv.shape == mesh.faces_normal.shape
    assert mesh.faces.min() == 0 and mesh.faces.max() < model.n_vertices
    assert mesh.uvs.min() >= 0.0 and mesh.uvs.max() <= 1.0 and mesh.faces_uv.max() < len(mesh.uvs)
    assert len(mesh.uvs) < 3 * len(mesh.faces) // 2  # deduplicated
    np.testing.assert_allclose(mesh.vertices, state_vertices(model, st)[0].numpy(), atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(mesh.normals[np.unique(mesh.faces_normal)], axis=1), 1.0, atol=1e-3)
    assert mesh.mtllib == "head.mtl" and mesh.materials == ["face"]
    mtl = read_mtl(tmp_path / mesh.mtllib)["face"]
    assert {"Ka", "Kd", "Ks", "d", "illum"} <= set(mtl) and mtl["map_Kd"] == "head.png"
    tex = load_image(tmp_path / mtl["map_Kd"]).pixels
    assert tex.shape == (2 * TILE, 4 * TILE, 3)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_obj_front_faces_counter_clockwise(tmp_path, model):
    """Skin triangles face the camera (their normal points toward the origin) for a frontal head."""
    st = _state(model, angles=(0.0, 0.0, 0.0))
    files = write_face_mesh(tmp_path, "m", st, model, texture=_texture(model))
    mesh = read_obj(files.obj)
    skin = model.skin_faces.numpy()
    p = mesh.vertices[skin]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    assert ((n * -p.mean(1)).sum(1) > 0).mean() > 0.8


def test_model_frame_and_uv_v_up(tmp_path, model):
    st = _state(model, angles=(25.0, 5.0, 0.0))
    files = write_face_mesh(tmp_path, "m", st, model, texture=_texture(model), frame="model")
    mesh = read_obj(files.obj)
    ref = model.vertices(torch.as_tensor(st.identity)[None], torch.as_tensor(st.expression)[None])[0].numpy()
    np.testing.assert_allclose(mesh.vertices, ref, atol=2e-6)
    # face tile is the atlas' top-left tile: with v up its UVs lie in u < 1/4, v > 1/2
    skin_uv = mesh.uvs[mesh.faces_uv[: len(mesh.faces)][np.isin(mesh.faces, model.skin_faces.numpy()).all(1)]]
    assert skin_uv[..., 0].max() <= 0.25 + 1e-6 and skin_uv[..., 1].min() >= 0.5 - 1e-6


def test_write_textured_obj_minimal_and_errors(tmp_path):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    f = np.array([[0, 1, 2]])
    tex = np.zeros((4, 4, 3), np.uint8)
    uv = np.array([[0, 0], [1, 0], [0, 1]], float)
    files = write_textured_obj(tmp_path, "tri", v, f, uv, f, tex)
    assert "vn" not in files.obj.read_text()
    mesh = read_obj(files.obj)
    np.testing.assert_array_equal(mesh.faces, f)
    np.testing.assert_array_equal(mesh.uvs[mesh.faces_uv[0]], uv)
    with pytest.raises(ValueError):
        write_textured_obj(tmp_path, "bad name", v, f, np.zeros((3, 2)), f, tex)
    with pytest.raises(ValueError):
        write_textured_obj(tmp_path, "tri", v, f, np.full((3, 2), 1.5), f, tex)


# ----------------------------------------------------------------------------- params.json
def test_params_json_keys_types_and_round_trip(tmp_path, model):
    st = _state(model, seed=4)
    st.detector_landmarks68 = np.random.default_rng(0).uniform(0, 200, (68, 2)).astype(np.float32)
    st.detector_score = 0.93
    st.timings_ms = {"detect": 9.5, "landmarks": 30.0}
    st.fit_info = {"iterations": 120, "nme": np.float32(0.04)}
    path = write_params_json(tmp_path / "params.json", st, model)
    d = json.loads(path.read_text())
    assert REQUIRED <= set(d)
    assert d["image_size"] == [320, 240] and len(d["face_box"]) == 4
    assert set(d["pose"]) == {"yaw", "pitch", "roll"} and all(isinstance(v, float) for v in d["pose"].values())
    assert len(d["translation"]) == 3 and isinstance(d["focal_px"], float)
    assert len(d["identity"]) == 100 and all(isinstance(v, float) for v in d["identity"])
    assert list(d["expression"]) == model.expression_names and len(d["expression"]) == 53
    assert np.array(d["lighting_sh"]).shape == (9, 3)
    assert np.array(d["landmarks68"]).shape == (68, 2) and np.array(d["detector_landmarks68"]).shape == (68, 2)
    assert np.array(d["rotation_matrix"]).shape == (3, 3) and len(d["principal_point"]) == 2
    assert "yaw" in d["conventions"]["pose"] and d["version"] == 1
    back = read_params_json(path, model)
    for name in ("rotation", "translation", "identity", "expression", "sh"):
        np.testing.assert_allclose(getattr(back, name), getattr(st, name), atol=1e-6, err_msg=name)
    assert back.focal_px == pytest.approx(st.focal_px) and back.image_size == st.image_size
    np.testing.assert_allclose(back.detector_landmarks68, st.detector_landmarks68, atol=1e-3)
    assert back.pose_degrees == pytest.approx(st.pose_degrees, abs=1e-4)
    assert params_dict(back, model)["landmarks68"] == d["landmarks68"]


def test_params_json_null_detector_and_bad_file(tmp_path, model):
    d = params_dict(_state(model), model)
    assert d["detector_landmarks68"] is None and d["landmarks68_source"] == "mesh_vertices"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ParamsFileError):
        read_params_json(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text('{"image_size": [1, 2]}')
    with pytest.raises(ParamsFileError):
        read_params_json(tmp_path / "partial.json")


@pytest.mark.parametrize("yaw", [20.0, -20.0])
def test_yaw_sign(model, yaw):
    """yaw > 0: the person turns to their left, so the nose moves to the image's right."""
    st = _state(model, angles=(yaw, 0.0, 0.0))
    d = params_dict(st, model)
    assert d["pose"]["yaw"] == pytest.approx(yaw, abs=1e-3)
    lm = np.array(d["landmarks68"])
    eyes_mid = (lm[36, 0] + lm[45, 0]) / 2
    assert np.sign(lm[30, 0] - eyes_mid) == np.sign(yaw)  # nose tip (30) vs the eye-corner midpoint


def test_projected_landmarks_inside_and_ordered(model):
    for seed in range(3):
        st = _state(model, seed=seed, angles=(0.0, 0.0, 0.0))
        lm = np.array(params_dict(st, model)["landmarks68"])
        w, h = st.image_size
        assert (lm[:, 0] > 0).all() and (lm[:, 0] < w).all() and (lm[:, 1] > 0).all() and (lm[:, 1] < h).all()
        assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]  # subject's right eye is on the image's left
        assert lm[0, 0] < lm[8, 0] < lm[16, 0] and lm[48, 0] < lm[54, 0]
        assert lm[19, 1] < lm[37, 1] < lm[30, 1] < lm[51, 1] < lm[57, 1] < lm[8, 1]  # brow, eye, nose, lips, chin


# ----------------------------------------------------------------------------- overlay
def test_overlay_same_size_and_drawn(model):
    st = _state(model, seed=2)
    photo = render_state(model, st, base_atlas(TILE, model=model))
    st.detector_landmarks68 = np.array(params_dict(st, model)["landmarks68"]) + 2.0
    out = draw_fit_overlay(photo, st, model)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert (out != photo).any(axis=2).mean() > 0.02
    assert (photo == render_state(model, st, base_atlas(TILE, model=model))).all()  # input untouched
    small = draw_fit_overlay(photo, [st, _state(model, seed=5, face_height_frac=0.15)], model, legend=False)
    assert small.shape == photo.shape


def test_cluster_mesh_coarsens_and_keeps_orientation(model):
    faces = model.skin_faces.numpy()
    used, cid, coarse = cluster_mesh(model.neutral.numpy(), faces, 1.0)
    assert 100 < len(coarse) < len(faces) // 5 and coarse.max() == cid.max()
    pts = np.stack([np.bincount(cid, model.neutral.numpy()[used, j]) / np.bincount(cid) for j in range(3)], 1)
    p = pts[coarse]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    assert (n[:, 2] > 0).mean() > 0.6  # still mostly facing +Z, like the face


# ----------------------------------------------------------------------------- the command
@pytest.fixture
def fake_pipeline(monkeypatch, model):
    """Stands in for faceeditor.fit.pipeline.fit_photo (as the fit command imported it): two
    synthetic faces, the smaller first."""
    calls: list[dict] = []

    def fit_photo(rgb, face_index=None, all_faces=False, photometric=True, texture_size=512, progress=None, **kw):
        calls.append(dict(face_index=face_index, all_faces=all_faces, photometric=photometric,
                          texture_size=texture_size))
        h, w = rgb.shape[:2]
        states = []
        for seed, box in ((7, (10.0, 10.0, 60.0, 70.0)), (8, (100.0, 20.0, 220.0, 180.0))):
            st = _state(model, seed=seed, size=(w, h), face_height_frac=0.3)
            st.face_box, st.texture = box, _texture(model, texture_size)
            st.timings_ms = {"landmarks": 12.0, "photometric": 80.0 if photometric else 0.0}
            states.append(st)
        if progress is not None:
            progress("landmark fit", 0.5)
            progress("photometric fit", 1.0)
        return states if all_faces else [states[1 if face_index is None else face_index]]

    monkeypatch.setattr(fit_command, "fit_photo", fit_photo)
    return calls


@pytest.fixture
def photo(tmp_path, model):
    st = _state(model, seed=1, size=(240, 200))
    path = tmp_path / "photo.png"
    save_image(path, render_state(model, st, base_atlas(TILE, model=model)))
    return path


def test_fit_command_single_face(tmp_path, photo, fake_pipeline, capsys):
    out = tmp_path / "out"
    assert main(["fit", str(photo), "-o", str(out), "--texture-size", "16", "--no-photometric"]) == 0
    assert fake_pipeline == [dict(face_index=None, all_faces=False, photometric=False, texture_size=16)]
    for name in ("params.json", "mesh.obj", "mesh.mtl", "mesh.png", "overlay.png", "state/state.json",
                 "state/state.npz"):
        assert (out / name).is_file(), name
    assert load_image(out / "overlay.png").pixels.shape == (200, 240, 3)
    assert load_image(out / "mesh.png").pixels.shape == (32, 64, 3)
    assert REQUIRED <= set(json.loads((out / "params.json").read_text()))
    FaceState.load(out / "state")
    text = capsys.readouterr().out
    assert "yaw" in text and "mesh.obj" in text


def test_fit_command_all_faces_and_face_n(tmp_path, photo, fake_pipeline, model):
    out = tmp_path / "all"
    assert main(["fit", str(photo), "-o", str(out), "--all-faces", "--texture-size", "16"]) == 0
    assert (out / "overlay.png").is_file()
    boxes = [json.loads((out / f"face_{i}" / "params.json").read_text())["face_box"] for i in (1, 2)]
    assert boxes[0] == [100.0, 20.0, 220.0, 180.0]  # largest first
    assert (out / "face_2" / "mesh.obj").is_file() and not (out / "face_3").exists()
    assert main(["fit", str(photo), "-o", str(tmp_path / "one"), "--face", "1", "--texture-size", "16"]) == 0
    assert fake_pipeline[-1]["face_index"] == 0  # --face counts from 1, fit_photo from 0


def test_fit_command_user_errors(tmp_path, photo, fake_pipeline, capsys):
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("this is not a photo")
    assert main(["fit", str(not_image), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert main(["fit", str(photo), "-o", str(a_file)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "o")]) == 2
    assert main(["fit", str(photo), "-o", str(tmp_path / "o"), "--face", "0"]) == 2
    assert fake_pipeline == []  # every mistake was caught before fitting
