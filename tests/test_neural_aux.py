"""Auxiliary networks N, FR, R and their dataset: alignment and crop camera, labels, the shard
format and reader, a tiny prepared dataset from real photos, network shapes/gradients/speed, and
the shipped weights on a real photo."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from faceeditor.core.camera import Camera
from faceeditor.core.pose import euler_to_matrix, matrix_to_euler, transform
from faceeditor.face.detect import detect_faces
from faceeditor.face.identity import descriptor, detect, models_dir
from faceeditor.fit.pipeline import get_fitter
from faceeditor.io import load_rgb
from faceeditor.morphable import load_face_model
from faceeditor.neural import align, checkpoints
from faceeditor.neural.data import FaceDataset, encode_jpeg, encode_png, load_table, split_of, write_shard
from faceeditor.neural.identity import DlibResNet, IdentityNet, identity_loss
from faceeditor.neural.labels import EYES, SKIN, RegionTable, encode_normals, face_mask, render_labels
from faceeditor.neural.layers import prepare_for_cpu
from faceeditor.neural.normals import NormalNet
from faceeditor.neural.regressor import FaceRegressor, project_points, regress_photo, relabel_sh
from faceeditor.render.sh import sh_shading


@pytest.fixture(scope="module")
def model():
    return load_face_model("cpu")


def _posed(model, yaw=20.0, pitch=-10.0, roll=15.0, t=(2.0, -1.0, -60.0), seed=0):
    g = torch.Generator().manual_seed(seed)
    ident = torch.randn(1, 100, generator=g) * 0.7
    expr = torch.zeros(1, 53)
    expr[0, model.expression_index("jawOpen")] = 0.3
    R = euler_to_matrix(yaw, pitch, roll)[0]
    tt = torch.tensor(t)
    return ident, expr, R, tt, transform(model.vertices(ident, expr), R[None], tt[None])


# ----------------------------------------------------------------------------- alignment
def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    a, s, b = 0.3, 1.7, np.array([10.0, -5.0])
    A = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    M = align.similarity(src, src @ A.T + b)
    np.testing.assert_allclose(M[:, :2], A, atol=1e-9)
    np.testing.assert_allclose(M[:, 2], b, atol=1e-7)
    assert align.matrix_parts(M) == pytest.approx((s, a))
    np.testing.assert_allclose(align.transform_points(align.transform_points(src, M), align.invert_matrix(M)), src,
                               atol=1e-9)


def test_crop_camera_reproduces_the_warped_projection(model):
    """Head projected in a photo, warped by the alignment == the head projected with the crop camera."""
    ident, expr, R, t, verts = _posed(model)
    photo = Camera(700.0, 640, 480)
    uv = photo.project(verts)[0].double().numpy()
    lm68 = uv[model.landmarks68.numpy(), :2]
    M = align.align_matrix(lm68, 256)
    R2, t2, f2, c2 = align.crop_pose(M, R.double().numpy(), t.double().numpy(), 700.0, photo.principal)
    local = model.vertices(ident, expr).double()
    crop = Camera(f2, 256, 256, *c2).project(transform(local, torch.from_numpy(R2)[None], torch.from_numpy(t2)[None]))
    expected = align.transform_points(uv[:, :2], M)
    assert np.abs(crop[0, :, :2].numpy() - expected).max() < 1e-3
    # the crop undoes the photo's in-plane rotation: roll is small in the crop camera
    _, _, roll = matrix_to_euler(torch.from_numpy(R2)[None])
    assert abs(float(roll[0])) < 5.0
    # the template points land near the template (the head is turned 20 degrees)
    np.testing.assert_allclose(align.transform_points(align.template_points(lm68), M), align.TEMPLATE * 256, atol=20)
    # photo_pose inverts crop_pose
    R1, t1, f1, c1 = align.photo_pose(M, R2, t2, f2, c2)
    np.testing.assert_allclose(R1, R.double().numpy(), atol=1e-9)
    np.testing.assert_allclose(t1, t.double().numpy(), atol=1e-9)
    assert f1 == pytest.approx(700.0) and c1 == pytest.approx(photo.principal)


def test_warp_image_follows_the_pixel_convention():
    """A bright pixel lands where transform_points sends its centre (half-pixel conventions agree)."""
    img = np.zeros((120, 160, 3), np.uint8)
    img[60:62, 50:52] = 255  # a 2x2 block centred at (51, 61) in continuous coordinates
    M = align.similarity(np.array([[0.0, 0.0], [100.0, 0.0]]), np.array([[20.0, 30.0], [20 + 96.0, 30 + 28.0]]))
    crop = align.warp_image(img, M, 128, border="constant").astype(np.float64)[:, :, 0]
    ys, xs = np.mgrid[0:128, 0:128]
    cx, cy = (crop * (xs + 0.5)).sum() / crop.sum(), (crop * (ys + 0.5)).sum() / crop.sum()
    ex = align.transform_points(np.array([[51.0, 61.0]]), M)[0]
    assert abs(cx - ex[0]) < 0.1 and abs(cy - ex[1]) < 0.1


def test_render_labels_line_up_with_the_crop(model):
    ident, expr, R, t, verts = _posed(model, 10.0, 5.0, 0.0, t=(0.0, 0.0, -130.0))
    cam = Camera(600.0, 128, 128, 64.0, 60.0)
    nmap, region = render_labels(model, ident, expr, R[None], t[None], cam)
    nose = cam.project(verts)[0, model.landmarks68[30], :2]
    x, y = int(nose[0]), int(nose[1])
    assert int(region[0, y, x]) == SKIN
    assert float(nmap[0, 2, y, x]) > 0.8  # the nose tip faces the camera
    assert (region == EYES).any()
    frac = float(face_mask(region).float().mean())
    assert 0.05 < frac < 0.9
    n = nmap[0][:, region[0] > 0]
    assert torch.allclose(n.norm(dim=0), torch.ones(n.shape[1]), atol=1e-4)


def test_render_labels_with_a_kept_region_table(model):
    """A caller-kept RegionTable gives the same maps as the one render_labels builds itself."""
    ident, expr, R, t, _ = _posed(model, 10.0, 5.0, 0.0, t=(0.0, 0.0, -130.0))
    cams = [Camera(600.0, 128, 128, 64.0, 60.0), Camera(300.0, 64, 64, 32.0, 30.0)]
    table = RegionTable.of(model)
    assert table.faces.shape[0] == table.labels.shape[0] and int(table.labels.max()) == 5
    for (n1, r1), (n2, r2) in zip(render_labels(model, ident, expr, R[None], t[None], cams),
                                  render_labels(model, ident, expr, R[None], t[None], cams, table=table)):
        assert torch.equal(n1, n2) and torch.equal(r1, r2)


def test_relabel_sh_rotates_the_light():
    g = torch.Generator().manual_seed(3)
    sh = torch.randn(9, 3, generator=g, dtype=torch.float64)
    Q = align.roll_matrix(0.4)
    c = torch.from_numpy(relabel_sh(sh.numpy(), Q))
    n = torch.nn.functional.normalize(torch.randn(50, 3, generator=g, dtype=torch.float64), dim=1)
    lhs = sh_shading(n, c[None].expand(50, 9, 3))
    rhs = sh_shading(n @ torch.from_numpy(Q).T, sh[None].expand(50, 9, 3))
    assert torch.allclose(lhs, rhs, atol=1e-9)


# ----------------------------------------------------------------------------- shard format
def _fake_sample(i: int, rng: np.random.Generator) -> dict:
    s = {"key": f"lfw/P{i % 2}/P{i % 2}_{i:04d}.jpg", "source": "lfw", "person": f"P{i % 2}",
         "rotation": np.eye(3, dtype=np.float32), "translation": np.array([0, 0, -50], np.float32),
         "focal": np.float32(600), "principal": np.array([128, 128], np.float32),
         "identity": rng.normal(size=100).astype(np.float32), "expression": np.zeros(53, np.float32),
         "euler": np.zeros(3, np.float32), "sh": rng.normal(size=(9, 3)).astype(np.float32),
         "albedo": np.ones(3, np.float32), "lm68": rng.uniform(0, 256, (68, 2)).astype(np.float32),
         "lm478": rng.uniform(0, 256, (478, 3)).astype(np.float32),
         "fit68": rng.uniform(0, 256, (68, 2)).astype(np.float32), "descriptor": rng.normal(size=128).astype(np.float32),
         "dlib_box": np.int8(1), "align": np.eye(2, 3, dtype=np.float32), "image_size": np.array([250, 250], np.int32),
         "valid": np.float32(1), "fit_rms": np.float32(0.02), "det_score": np.float32(0.9),
         "meta": np.array([-1, -1, -1], np.int16)}
    for S in (256, 128):
        s[f"image{S}"] = encode_jpeg(rng.integers(0, 255, (S, S, 3), dtype=np.uint8))
        n = np.zeros((S, S, 3), np.float32)
        n[..., 2] = 1.0
        s[f"normal{S}"] = encode_png(encode_normals(n))
        r = np.zeros((S, S), np.uint8)
        r[S // 4:3 * S // 4, S // 4:3 * S // 4] = 1
        s[f"region{S}"] = encode_png(r)
    return s


def test_shard_roundtrip_and_reader(tmp_path):
    rng = np.random.default_rng(0)
    samples = [_fake_sample(i, rng) for i in range(5)]
    write_shard(tmp_path / "shard_00000.npz", samples)
    (tmp_path / "index.json").write_text(json.dumps({"shards": [{"file": "shard_00000.npz", "n": 5}],
                                                    "split_seed": 0, "val_fraction": 0.0, "samples": 5}))
    t = load_table(tmp_path, "all", 128)
    assert len(t) == 5
    np.testing.assert_allclose(t.arrays["focal"], 300.0)  # pixel quantities scaled to the 128 crop
    np.testing.assert_allclose(t.arrays["lm68"][2], samples[2]["lm68"] / 2, atol=1e-4)
    ds = FaceDataset(table=t)
    item = ds[3]
    assert item["image"].shape == (3, 128, 128) and item["normal"].shape == (3, 128, 128)
    assert item["mask"].shape == (1, 128, 128) and float(item["mask"].mean()) == pytest.approx(0.25)
    assert torch.allclose(item["normal"][:, 64, 64], torch.tensor([0.0, 0.0, 1.0]), atol=0.01)
    assert item["shading"].shape == (3, 128, 128) and float(item["shading"][:, 0, 0].abs().sum()) == 0.0
    assert item["person_id"] == t.arrays["person_id"][3]
    assert item["valid"].shape == (1, 128, 128) and float(item["valid"][0, -1, -1]) == 0.0  # 250 px photo
    assert load_table(tmp_path, "all", 256).arrays["focal"][0] == pytest.approx(600.0)
    # the split is a seeded function of the person, UTKFace always train
    assert split_of("Some_Person", "lfw", 0) == split_of("Some_Person", "lfw", 0)
    assert split_of("utk:x.jpg", "utkface", 0, 1.0) == "train"
    assert {split_of(f"P{i}", "lfw", 0, 0.5) for i in range(50)} == {"train", "val"}


def test_prepare_tiny_dataset(data_dir, tmp_path, model):
    """Prepare 3 real photos; the stored crop camera, landmarks and label maps line up."""
    from trainers import prepare_dataset

    threads = torch.get_num_threads()
    try:
        rc = prepare_dataset.main(["--data", str(data_dir), "--out", str(tmp_path), "--limit", "3", "--workers", "1",
                                   "--shard-size", "2"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["complete"] and index["samples"] + index["failed"] == 3 and index["samples"] >= 2
    assert prepare_dataset.main(["--data", str(data_dir), "--out", str(tmp_path), "--limit", "3", "--workers", "1",
                                 "--shard-size", "2"]) == 0  # resumed: nothing to do
    t = load_table(tmp_path, "all", 256)
    a = t.arrays
    for i in range(len(t)):
        p = {k: torch.from_numpy(np.asarray(a[k][i:i + 1])).float() for k in
             ("rotation", "translation", "focal", "principal", "identity", "expression")}
        if model.lm68_face is not None:
            inner = project_points(model, p, face_ids=model.lm68_face, bary=model.lm68_bary)[0].numpy()
        else:
            inner = project_points(model, p, index=model.landmarks68[17:])[0].numpy()
        assert np.abs(inner - a["fit68"][i, 17:]).max() < 0.05  # the fit, re-projected in the crop camera
        eye = np.linalg.norm(a["lm68"][i, 45] - a["lm68"][i, 36])
        assert np.linalg.norm(inner - a["lm68"][i, 17:], axis=1).mean() / eye < 0.1  # and the detector agrees
        assert 0.25 * 256 < np.linalg.norm(a["lm68"][i, 36:42].mean(0) - a["lm68"][i, 42:48].mean(0)) * 1.2
        assert a["descriptor"][i].shape == (128,) and np.linalg.norm(a["descriptor"][i]) > 0.1
    for size in (256, 128):
        ds = FaceDataset(tmp_path, "all", size)
        item = ds[0]
        assert item["image"].shape == (3, size, size)
        nose = item["fit68"][30].long()
        assert int(item["region"][nose[1], nose[0]]) == SKIN
        assert float(item["normal"][2, nose[1], nose[0]]) > 0.5
        assert float(item["shading"][:, nose[1], nose[0]].mean()) > 0.2
    small = load_table(tmp_path, "all", 128)
    m256 = FaceDataset(table=t)[0]["mask"]
    m128 = FaceDataset(table=small)[0]["mask"]
    down = torch.nn.functional.avg_pool2d(m256[None], 2)[0] > 0.5
    iou = float((down & (m128 > 0)).sum() / (down | (m128 > 0)).sum())
    assert iou > 0.95


# ----------------------------------------------------------------------------- networks
def test_networks_shapes_gradients_and_speed(model):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 128, 128, requires_grad=True)
    N, FR, R = NormalNet(), FaceRegressor(), IdentityNet()
    for net in (N, FR, R):
        net.eval()
    n, m = N(x)
    assert n.shape == (2, 3, 128, 128) and m.shape == (2, 1, 128, 128)
    assert torch.allclose(n.norm(dim=1), torch.ones(2, 128, 128), atol=1e-4)
    p = FR.decode(FR(x))
    assert p.rotation.shape == (2, 3, 3) and p.identity.shape == (2, 100) and p.sh.shape == (2, 9, 3)
    assert torch.allclose(p.rotation @ p.rotation.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-5)
    assert float(p.expression.detach().min()) >= 0 and float(p.expression.detach().max()) <= 1
    lm = project_points(model, p, index=model.landmarks68)
    assert lm.shape == (2, 68, 2)
    lm.sum().backward()  # landmarks are differentiable in the image
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    x.grad = None
    e = R(x)
    assert e.shape == (2, 128)
    identity_loss(R, x, x.flip(0)).backward()
    assert float(x.grad.abs().sum()) > 0
    # the inference set-up (conv+BN/affine folded, channels-last) computes the same function; speed
    # is measured by `faceeditor bench aux` (n_ms, fr_ms, r_ms), not asserted on a shared machine
    one = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        for net in (N, FR, R):
            ref = net(one)
            got = prepare_for_cpu(net)(one.contiguous(memory_format=torch.channels_last))
            for a, b in zip(ref if isinstance(ref, tuple) else (ref,), got if isinstance(got, tuple) else (got,)):
                assert torch.allclose(a, b, atol=1e-3, rtol=1e-3)


def test_shipped_weights_on_a_photo(data_dir, model):
    """N, FR and R from resources/ on an LFW photo: normals face the camera at the nose, FR agrees
    with the landmark fit, R keeps a person closer to themself than to someone else."""
    from faceeditor.neural.evaluate import anchor_point  # noqa: F401  (import check)

    if not all(checkpoints.available(n) for n in ("normal_net", "face_regressor", "identity_net")):
        pytest.skip("network weights not trained yet (trainers/train_*.py)")
    N = checkpoints.load_network("normal_net", "cpu")
    FR = checkpoints.load_network("face_regressor", "cpu")
    R = checkpoints.load_network("identity_net", "cpu")
    people = sorted(p for p in (data_dir / "lfw").iterdir() if len(list(p.glob("*.jpg"))) >= 2)
    a1, a2 = sorted(people[0].glob("*.jpg"))[:2]
    b1 = sorted(people[1].glob("*.jpg"))[0]
    crops, fits = [], []
    for path in (a1, a2, b1):
        rgb = load_rgb(path)
        face = detect_faces(rgb)[0]
        crop, M = align.aligned_crop(rgb, face.landmarks68, 128)
        crops.append(torch.from_numpy(crop).permute(2, 0, 1).float() / 255.0)
        fits.append((rgb, face, M))
    x = torch.stack(crops).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        normals, mask = N(x)
        emb = R(x)
    rgb, face, M = fits[0]
    nose = align.transform_points(face.landmarks68[30:31], M)[0].astype(int)
    assert float(normals[0, 2, nose[1], nose[0]]) > 0.7
    assert float(mask[0, 0, nose[1], nose[0]]) > 0
    assert 0.15 < float((mask[0] > 0).float().mean()) < 0.8
    # FR vs the landmark fit of the same photo
    fit = get_fitter(model).fit(face.landmarks68, (rgb.shape[1], rgb.shape[0]), dense478=face.landmarks)
    pr = regress_photo(FR, rgb, face.landmarks68)
    yf = float(matrix_to_euler(torch.from_numpy(fit.rotation)[None])[0][0])
    yr = float(matrix_to_euler(torch.from_numpy(pr["rotation"])[None])[0][0])
    assert abs(yf - yr) < 10.0
    p = {"rotation": torch.from_numpy(pr["rotation"])[None].float(),
         "translation": torch.from_numpy(pr["translation"])[None].float(), "focal": torch.tensor([pr["focal"]]),
         "principal": torch.tensor([pr["principal"]]), "identity": torch.from_numpy(pr["identity"])[None].float(),
         "expression": torch.from_numpy(pr["expression"])[None].float()}
    lm = project_points(model, p, index=model.landmarks68[17:])[0].numpy()
    eye = np.linalg.norm(face.landmarks68[45] - face.landmarks68[36])
    assert np.linalg.norm(lm - face.landmarks68[17:], axis=1).mean() / eye < 0.12
    # R: same person closer than a different person
    d_same = float((emb[0] - emb[1]).norm())
    d_diff = min(float((emb[0] - emb[2]).norm()), float((emb[1] - emb[2]).norm()))
    assert d_same < d_diff


def test_dlib_network_port_matches_dlib(data_dir):
    """dlib's face-recognition network converted to torch gives dlib's descriptor (R's initialisation
    and the dataset's teacher)."""
    import dlib

    from trainers.train_identity import convert_dlib_resnet

    net = DlibResNet().eval()
    net.load_state_dict(convert_dlib_resnet(models_dir() / "dlib_face_recognition_resnet_model_v1.dat"))
    rgb = load_rgb(sorted((data_dir / "lfw").rglob("*.jpg"))[0])
    box = detect(rgb)[0]
    sp = dlib.shape_predictor(str(models_dir() / "shape_predictor_5_face_landmarks.dat"))
    shape = sp(rgb, dlib.rectangle(*(int(round(v)) for v in box)))
    chip = np.asarray(dlib.get_face_chip(rgb, shape, size=150, padding=0.25))
    with torch.no_grad():
        ours = net(torch.from_numpy(chip).permute(2, 0, 1)[None].float() / 255.0)[0].numpy()
    assert np.abs(ours - descriptor(rgb, box)).max() < 1e-4


def test_aux_trainers_quick_run(data_dir, tmp_path):
    """``--preset quick`` of the N, FR and R trainers on a tiny prepared dataset (every LFW person in
    val): each runs, logs, checkpoints, and a second call resumes from the checkpoint (~15 s)."""
    from trainers import prepare_dataset, train_identity, train_normals, train_regressor

    threads = torch.get_num_threads()
    data = tmp_path / "data"
    try:
        assert prepare_dataset.main(["--data", str(data_dir), "--out", str(data), "--limit", "8", "--workers", "1",
                                     "--shard-size", "8", "--val-fraction", "1.0"]) == 0
        counts = json.loads((data / "index.json").read_text())["counts"]
        if not counts.get("train") or not counts.get("val"):
            pytest.skip(f"the seeded sample has no train or no val photo: {counts}")
        for trainer in (train_normals, train_regressor, train_identity):
            out = tmp_path / trainer.__name__.rsplit(".", 1)[-1]
            args = ["--preset", "quick", "--data", str(data), "--out", str(out), "--threads", "1", "--steps", "6",
                    "--batch", "4"]
            if trainer is train_identity:
                args += ["--pairs-per-batch", "0"]
            assert trainer.main(args) == 0
            assert (out / "last.pt").is_file() and (out / "log.jsonl").is_file()
            assert trainer.main(args[:-4] + ["--steps", "8", "--batch", "4"]) == 0
            log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
            assert max(r.get("step", 0) for r in log) >= 7
    finally:
        torch.set_num_threads(threads)


def test_make_pairs_with_one_person_returns_no_pairs():
    from faceeditor.neural.identity import make_pairs

    pairs, same = make_pairs(np.zeros(5, np.int64))
    assert pairs.shape == (0, 2) and same.shape == (0,)
    pairs, same = make_pairs(np.array([0, 0, 1, 1]))
    assert same.sum() == 2 and (~same).sum() == 2
