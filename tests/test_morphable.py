"""Face model (resources/face_model.npz), pose conventions and normals."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from faceeditor.core.camera import project
from faceeditor.morphable import (
    FaceModel,
    default_model_path,
    euler_to_matrix,
    load_face_model,
    matrix_to_euler,
    transform,
    vertex_normals,
)


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


@pytest.fixture(scope="module")
def model() -> FaceModel:
    if not default_model_path().is_file():
        pytest.skip("resources/face_model.npz missing: python -m trainers.build_face_model")
    return load_face_model("cpu")


def test_loads_with_expected_sizes(model: FaceModel) -> None:
    assert (model.n_vertices, model.n_identity, model.n_expression) == (24591, 100, 53)
    assert model.basis.dtype == torch.float32 and model.basis.shape == (153, 24591 * 3)
    assert model.faces.shape == (48836, 3) and int(model.faces.max()) == model.n_vertices - 1
    assert model.faces_uv.shape == model.faces.shape and int(model.faces_uv.max()) < len(model.uvs)
    assert len(model.region_names) == 8 and "M_EyeLashes" not in model.region_names
    assert model.landmarks68.shape == (68,)
    assert model.mp478_face is None or model.mp478_face.shape == (478,)  # with resources/landmark_map.npz
    assert set(model.vertex_sets) == {"fitting", "rigid", "lap_rigid", "landmark"}


def test_zero_coefficients_give_neutral(model: FaceModel) -> None:
    v = model.vertices(torch.zeros(2, 100), torch.zeros(2, 53))
    assert v.shape == (2, model.n_vertices, 3)
    close(v, model.neutral.expand(2, -1, -1), atol=0, rtol=0)
    close(model.vertices(), model.neutral[None], atol=0, rtol=0)


def test_linearity_and_batching(model: FaceModel, rng: torch.Generator) -> None:
    a_id, b_id = torch.randn(2, 3, 100, generator=rng)
    a_ex, b_ex = torch.rand(2, 3, 53, generator=rng)
    v0 = model.vertices(torch.zeros(3, 100), torch.zeros(3, 53))
    va, vb = model.vertices(a_id, a_ex) - v0, model.vertices(b_id, b_ex) - v0
    close(model.vertices(a_id + b_id, a_ex + b_ex) - v0, va + vb, atol=2e-4, rtol=1e-4)
    close(model.vertices(a_id[1:2], a_ex[1:2]), model.vertices(a_id, a_ex)[1:2], atol=1e-5, rtol=0)
    # fewer identity modes = trailing modes zero; expression alone keeps the neutral identity
    few = model.vertices(a_id[:, :40])
    close(few, model.vertices(torch.cat([a_id[:, :40], torch.zeros(3, 60)], 1)), atol=1e-6, rtol=0)
    assert model.vertices(expression=a_ex).shape == (3, model.n_vertices, 3)
    with pytest.raises(ValueError):
        model.vertices(torch.zeros(2, 101))


def test_landmarks_eye_corners(model: FaceModel) -> None:
    lm = model.neutral[model.landmarks68]
    assert abs(float((lm[36] - lm[45]).norm()) - 8.92) < 0.01
    assert abs(float(lm[36, 0]) + 4.46) < 0.01 and abs(float(lm[45, 0]) - 4.46) < 0.01
    assert float(lm[30, 2]) > 12.5  # nose tip toward +Z


def test_mirror_map(model: FaceModel) -> None:
    m, x = model.mirror, model.neutral
    assert float((m[m] == torch.arange(model.n_vertices)).float().mean()) > 0.999
    close(x[m], x * torch.tensor([-1.0, 1.0, 1.0]), atol=0.03, rtol=0)
    assert bool((model.vertex_region[m] == model.vertex_region).all())
    # face UV tile is symmetric about u = 0.5
    face_uv = model.faces_uv[model.face_mask("face")].unique()
    uv, uvm = model.uvs[face_uv], model.uvs[model.mirror_uv[face_uv]]
    close(uvm[:, 0], 1.0 - uv[:, 0], atol=1e-4, rtol=0)
    close(uvm[:, 1], uv[:, 1], atol=1e-4, rtol=0)


def _sphere(n: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    from scipy.spatial import ConvexHull

    i = np.arange(n) + 0.5
    phi, theta = np.arccos(1 - 2 * i / n), np.pi * (1 + 5 ** 0.5) * i
    pts = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)
    tri = ConvexHull(pts).simplices.copy()
    a, b, c = pts[tri[:, 0]], pts[tri[:, 1]], pts[tri[:, 2]]
    flip = (np.cross(b - a, c - a) * (a + b + c)).sum(1) < 0  # make every triangle CCW from outside
    tri[flip] = tri[flip][:, ::-1]
    return torch.tensor(pts, dtype=torch.float32), torch.tensor(tri, dtype=torch.long)


def test_normals_sphere_and_face(model: FaceModel) -> None:
    pts, tri = _sphere()
    verts = (3.0 * pts + torch.tensor([1.0, -2.0, 0.5]))[None].repeat(2, 1, 1)
    n = vertex_normals(verts, tri)
    assert n.shape == verts.shape
    close(n.norm(dim=-1), torch.ones(2, len(pts)), atol=1e-5, rtol=0)
    assert float((n[0] * pts).sum(-1).min()) > 0.99
    nf = vertex_normals(model.neutral, model.faces)
    nose = nf[model.landmarks68[30]]
    assert float(nose[2]) > 0.9
    assert float(nf[model.landmarks68[0], 0]) < -0.5 and float(nf[model.landmarks68[16], 0]) > 0.5  # cheeks out


def test_normals_are_differentiable() -> None:
    pts, tri = _sphere(100)
    v = (pts * torch.linspace(0.5, 1.5, 100)[:, None])[None].requires_grad_(True)
    vertex_normals(v, tri)[..., 0].sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad).all() and float(v.grad.abs().sum()) > 0


def test_euler_round_trip(rng: torch.Generator) -> None:
    n = 256
    yaw = (torch.rand(n, generator=rng) * 2 - 1) * 179.0
    pitch = (torch.rand(n, generator=rng) * 2 - 1) * 85.0
    roll = (torch.rand(n, generator=rng) * 2 - 1) * 179.0
    R = euler_to_matrix(yaw, pitch, roll, dtype=torch.float64)
    close(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(n, 3, 3), atol=1e-12, rtol=0)
    close(torch.linalg.det(R), torch.ones(n, dtype=torch.float64), atol=1e-12, rtol=0)
    y2, p2, r2 = matrix_to_euler(R)
    close(torch.stack([y2, p2, r2]).float(), torch.stack([yaw, pitch, roll]), atol=1e-3, rtol=0)
    # gimbal lock: angles differ but the matrix is reproduced
    Rg = euler_to_matrix(30.0, 90.0, 20.0, dtype=torch.float64)
    close(euler_to_matrix(*matrix_to_euler(Rg)), Rg, atol=1e-6, rtol=0)
    assert euler_to_matrix(0.0, 0.0, 0.0).shape == (1, 3, 3)


def test_pose_sign_conventions(model: FaceModel) -> None:
    """yaw>0: nose to +X (image right); pitch>0: nose up; roll>0: head top to the subject's left."""
    nose = model.neutral[model.landmarks68[30]][None, None]  # (1,1,3), z ~ 13
    top = model.neutral[model.neutral[:, 1].argmax()][None, None]
    t = torch.tensor([[0.0, 0.0, -60.0]])  # head 60 cm in front of an OpenGL camera

    def posed(p: torch.Tensor, yaw: float, pitch: float, roll: float) -> torch.Tensor:
        return transform(p, euler_to_matrix(yaw, pitch, roll), t)[0, 0]

    base = posed(nose, 0, 0, 0)
    assert float(posed(nose, 20, 0, 0)[0]) > float(base[0]) + 3
    assert float(posed(nose, 0, 20, 0)[1]) > float(base[1]) + 3
    assert float(posed(top, 0, 0, 20)[0]) > float(posed(top, 0, 0, 0)[0]) + 3
    pix = project(torch.stack([base, posed(nose, 20, 0, 0), posed(nose, 0, 20, 0)])[None], 500.0, 256, 256)[0]
    assert float(pix[1, 0]) > float(pix[0, 0]) + 10  # yaw>0: nose moves right in the image
    assert float(pix[2, 1]) < float(pix[0, 1]) - 10  # pitch>0: nose moves up in the image (y down)
    # transform with scale and a batch
    R = euler_to_matrix(torch.tensor([0.0, 90.0]), 0.0, 0.0)
    out = transform(torch.tensor([[[0.0, 0.0, 1.0]]]).repeat(2, 1, 1), R, scale=torch.tensor([1.0, 2.0]))
    close(out[:, 0], torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 0.0]]), atol=1e-6, rtol=0)


def test_expressions(model: FaceModel) -> None:
    names = model.expression_names
    for name in ("mouthSmile_L", "mouthSmile_R", "eyeBlink_L", "jawOpen", "browInnerUp_R"):
        assert name in names
    i, j = model.expression_index("mouthSmile_L"), model.expression_index("mouthSmile_R")
    assert int(model.expression_mirror[i]) == j and int(model.expression_mirror[j]) == i
    assert [i, j] in model.expression_pairs.tolist()
    jl, jr = model.expression_index("jawLeft"), model.expression_index("jawRight")
    assert int(model.expression_mirror[jl]) == jr
    with pytest.raises(KeyError):
        model.expression_index("smile")
    # _L acts on the subject's left (+X)
    delta = model.expression_basis[i].norm(dim=-1)
    moved = delta > 0.3 * delta.max()
    assert float(model.neutral[moved, 0].mean()) > 1.0
    e = model.expression_vector({"mouthSmile_L": 0.7}, batch=2)
    assert e.shape == (2, 53) and float(e[1, i]) == pytest.approx(0.7)
    assert float(model.mirror_expression(e)[0, j]) == pytest.approx(0.7)


def test_vertex_subset_matches_full(model: FaceModel, rng: torch.Generator) -> None:
    a, e = torch.randn(4, 100, generator=rng), torch.rand(4, 53, generator=rng)
    full = model.vertices(a, e)
    for idx in (model.landmarks68, torch.randint(0, model.n_vertices, (478,), generator=rng)):
        close(model.vertices(a, e, index=idx), full[:, idx], atol=2e-5, rtol=0)
    first = model._subset(model.landmarks68)
    assert model._subset(model.landmarks68.clone())[1] is first[1]  # cached by content


def test_gradient_flows_to_coefficients(model: FaceModel) -> None:
    a = torch.zeros(2, 40, requires_grad=True)
    e = torch.zeros(2, 53, requires_grad=True)
    v = model.vertices(a, e, index=model.landmarks68)
    (v ** 2).sum().backward()
    assert a.grad is not None and e.grad is not None
    assert float(a.grad.abs().sum()) > 0 and float(e.grad.abs().sum()) > 0
    # matches the basis: d/d a_k of sum v = sum of the landmark rows of mode k
    a.grad = None
    model.vertices(a, index=model.landmarks68).sum().backward()
    expect = model.identity_basis[:40, model.landmarks68].sum((1, 2))
    close(a.grad[0], expect, atol=1e-3, rtol=1e-4)


def test_regions(model: FaceModel) -> None:
    allf = model.faces_for(["face", "head", "gums_tongue", "teeth", "eyes"])
    assert len(allf) == len(model.faces)
    close(model.faces_for("M_Teeth"), model.faces_for("teeth"), atol=0, rtol=0)
    skin = model.skin_faces
    assert 10000 < len(skin) < len(model.faces_for("face"))
    assert bool(model.region_mask("face")[skin].all())
    assert int(model.region_mask(["teeth", "eyeball"]).sum()) == (21451 - 17039) + (24591 - 21451)
    with pytest.raises(KeyError):
        model.faces_for("lashes")


def test_manifest_matches_artifact(model: FaceModel) -> None:
    path = default_model_path()
    man = json.loads(path.with_name("face_model.manifest.json").read_text())
    assert man["output"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "MIT" in man["license"] and man["landmark_correspondences"]["status"] in ("built", "not built")
    assert (path.parent / man["license_file"]).is_file()


def test_builder_reproduces_artifact(data_dir, model: FaceModel) -> None:
    from trainers.build_face_model import build

    arrays, checks = build(data_dir / "ict_facekit" / "ict_face_model_light.npz")
    with np.load(default_model_path()) as saved:
        assert sorted(saved.files) == sorted(arrays)
        for k, v in arrays.items():
            assert np.array_equal(saved[k], v), k
    assert checks["mirror_max_distance_cm"] < 0.05
