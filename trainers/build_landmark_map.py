"""Build ``resources/landmark_map.npz``: where the detector's landmarks sit on the ICT surface.

    python -m trainers.build_landmark_map [--data ../shared/data] [--n 1200] [--rounds 2] [--seed 0]

For each of ``n`` seeded-random photos from LFW and UTKFace (never afw68, which the fit
benchmark scores on):
  1. detect the largest face (mediapipe: 478 points; calibrated iBUG-68 points),
  2. fit the head to the landmarks (:class:`faceeditor.fit.landmarks.LandmarkFitter`),
  3. cast each detected point onto the fitted, posed mesh (:func:`faceeditor.fit.raycast.surface_hits`)
     and express the hit in the model's own parametrisation (triangle + barycentrics), which is
     valid for every identity and expression.
The per-point hits are then averaged on the neutral mesh (coordinate-wise median) and snapped
back to the nearest surface point of the region most hits fell on. Round 1 fits with ICT's
68 landmark vertices; each later round refits with the map of the previous one, so the map
converges to self-consistency. Each dense point also gets a weight from how well the final
round's fits explain it (1 / residual variance, normalised, clipped to [0.05, 1]).

Arrays: ``mp478_face`` i32 (478,), ``mp478_bary`` f32 (478,3), ``mp478_weight`` f32 (478,),
``lm68_face`` i32 (51,), ``lm68_bary`` f32 (51,3) for the inner 68-set points 17-67 (the jaw is a
silhouette, see faceeditor/fit/contour.py), and ``mp478_mirror`` i32 (478,) mediapipe's left/right
point pairs (measured on flipped photos; used to check the map's symmetry). A manifest records
the command, data and checks.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from faceeditor.face.detect import NoFaceError, detect_faces  # noqa: E402
from faceeditor.fit.landmarks import LandmarkFitConfig, LandmarkFitter  # noqa: E402
from faceeditor.fit.raycast import surface_hits  # noqa: E402
from faceeditor.io import ImageLoadError, load_rgb  # noqa: E402
from faceeditor.morphable.atlas import render_face_ids  # noqa: E402
from faceeditor.morphable.model import FaceModel  # noqa: E402
from faceeditor.morphable.pose import transform  # noqa: E402
from faceeditor.paths import resources_dir, shared_data_dir  # noqa: E402
from faceeditor.render.camera import Camera  # noqa: E402

MAP_VERSION = "1.0"


def sample_photos(data: Path, n: int, seed: int) -> list[Path]:
    files = sorted((data / "lfw").rglob("*.jpg")) + sorted((data / "utkface").glob("*.jpg"))
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(files), size=min(n, len(files)), replace=False)
    return [files[i] for i in sorted(pick)]


def snap_to_surface(model: FaceModel, points: np.ndarray, regions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest surface point (triangle, barycentrics) on the neutral mesh, within each point's material."""
    verts = model.neutral.cpu().numpy().astype(np.float64)
    faces = model.faces.cpu().numpy()
    region = model.face_region.cpu().numpy()
    tri_out = np.zeros(len(points), dtype=np.int64)
    bary_out = np.zeros((len(points), 3))
    trees: dict[int, tuple[np.ndarray, cKDTree]] = {}
    for i, (p, r) in enumerate(zip(points, regions)):
        if r not in trees:
            cand = np.nonzero(region == r)[0]
            trees[r] = (cand, cKDTree(verts[faces[cand]].mean(1)))
        cand, tree = trees[r]
        near = cand[tree.query(p, k=min(24, len(cand)))[1]]
        best = (np.inf, 0, None)
        for f in np.atleast_1d(near):
            q, b = _closest_on_triangle(p, verts[faces[f]])
            d = float(((q - p) ** 2).sum())
            if d < best[0]:
                best = (d, f, b)
        tri_out[i], bary_out[i] = best[1], best[2]
    return tri_out, bary_out


def _closest_on_triangle(p: np.ndarray, tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest point to ``p`` on triangle ``tri`` (3,3) and its barycentrics (Ericson, RTCD 5.1.5)."""
    a, b, c = tri
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = ab @ ap, ac @ ap
    if d1 <= 0 and d2 <= 0:
        return a, np.array([1.0, 0, 0])
    bp = p - b
    d3, d4 = ab @ bp, ac @ bp
    if d3 >= 0 and d4 <= d3:
        return b, np.array([0, 1.0, 0])
    vc = d1 * d4 - d3 * d2
    if vc <= 0 and d1 >= 0 and d3 <= 0:
        v = d1 / (d1 - d3)
        return a + v * ab, np.array([1 - v, v, 0])
    cp = p - c
    d5, d6 = ab @ cp, ac @ cp
    if d6 >= 0 and d5 <= d6:
        return c, np.array([0, 0, 1.0])
    vb = d5 * d2 - d1 * d6
    if vb <= 0 and d2 >= 0 and d6 <= 0:
        w = d2 / (d2 - d6)
        return a + w * ac, np.array([1 - w, 0, w])
    va = d3 * d6 - d5 * d4
    if va <= 0 and (d4 - d3) >= 0 and (d5 - d6) >= 0:
        w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        return b + w * (c - b), np.array([0, 1 - w, w])
    denom = 1.0 / (va + vb + vc)
    v, w = vb * denom, vc * denom
    return a + ab * v + ac * w, np.array([1 - v - w, v, w])


def detect_all(photos: list[Path], log_every: int = 200) -> list[tuple[tuple[int, int], np.ndarray, np.ndarray]]:
    """(image size, calibrated 68 points, 478 mediapipe points) of the largest face per usable photo."""
    out, t0 = [], time.perf_counter()
    for i, path in enumerate(photos):
        try:
            rgb = load_rgb(path)
            face = detect_faces(rgb, max_faces=1)[0]
        except (ImageLoadError, NoFaceError):
            continue
        out.append(((rgb.shape[1], rgb.shape[0]), face.landmarks68, face.landmarks[:, :2].copy()))
        if (i + 1) % log_every == 0:
            print(f"  detected {i + 1}/{len(photos)}, {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def mirror_table(photos: list[Path], n: int = 150) -> np.ndarray:
    """mediapipe index of each point's left/right partner (478,), by detecting mirrored photos:
    in a horizontally flipped photo, point j lands where the original's partner of j was."""
    votes = np.zeros((478, 478), dtype=np.int32)
    for path in photos[:n]:
        try:
            rgb = load_rgb(path)
            a = detect_faces(rgb, max_faces=1)[0].landmarks[:, :2]
            b = detect_faces(np.ascontiguousarray(rgb[:, ::-1]), max_faces=1)[0].landmarks[:, :2]
        except (ImageLoadError, NoFaceError):
            continue
        b = b.copy()
        b[:, 0] = rgb.shape[1] - b[:, 0]
        nearest = cKDTree(a).query(b)[1]  # flipped point j sits on original point nearest[j]
        votes[np.arange(478), nearest] += 1
    mirror = votes.argmax(1)
    return mirror.astype(np.int32)


def run_round(model: FaceModel, detections: list, cfg: LandmarkFitConfig, log_every: int = 200) -> dict:
    """Fit every detection and collect neutral-frame hits and fit residuals for 478 + 51 points."""
    fitter = LandmarkFitter(model, cfg)
    draw = render_face_ids(model)
    faces = model.faces[draw]
    neutral = model.neutral.cpu().numpy().astype(np.float64)
    faces_np = model.faces.cpu().numpy()
    region_np = model.face_region.cpu().numpy()
    hits = {k: [[] for _ in range(n)] for k, n in (("mp", 478), ("lm", 51))}
    regs = {k: [[] for _ in range(n)] for k, n in (("mp", 478), ("lm", 51))}
    resid = {k: [[] for _ in range(n)] for k, n in (("mp", 478),)}
    used, t0 = 0, time.perf_counter()
    for i, ((w, h), l68, lm478) in enumerate(detections):
        fit = fitter.fit(l68, (w, h), dense478=lm478)
        verts = transform(model.vertices(torch.tensor(fit.identity[None], dtype=torch.float32),
                                         torch.tensor(fit.expression[None], dtype=torch.float32)),
                          torch.tensor(fit.rotation[None], dtype=torch.float32),
                          torch.tensor(fit.translation[None], dtype=torch.float32))[0]
        cam = Camera(fit.focal, w, h)
        eye = float(np.linalg.norm(l68[45] - l68[36]))
        for key, pts in (("mp", lm478), ("lm", l68[17:])):
            tri, bary, hit = surface_hits(verts, faces, cam, pts)
            gtri = draw.cpu().numpy()[tri]
            P = (bary[:, :, None] * neutral[faces_np[gtri]]).sum(1)
            for j in np.nonzero(hit)[0]:
                hits[key][j].append(P[j])
                regs[key][j].append(region_np[gtri[j]])
        if model.mp478_face is not None:
            tri = model.mp478_face.cpu().numpy()
            b = model.mp478_bary.cpu().numpy()
            Pm = (b[:, :, None] * verts.cpu().numpy()[faces_np[tri]]).sum(1)
            uv = np.stack([cam.principal[0] + fit.focal * Pm[:, 0] / -Pm[:, 2],
                           cam.principal[1] - fit.focal * Pm[:, 1] / -Pm[:, 2]], 1)
            err = np.linalg.norm(uv - lm478, axis=1) / max(eye, 1.0)
            for j in range(478):
                resid["mp"][j].append(err[j])
        used += 1
        if (i + 1) % log_every == 0:
            print(f"  {i + 1}/{len(detections)} fitted, {time.perf_counter() - t0:.0f} s", flush=True)
    return {"hits": hits, "regions": regs, "resid": resid, "used": used}


def summarise(model: FaceModel, acc: dict) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, n in (("mp", 478), ("lm", 51)):
        pts = np.zeros((n, 3))
        reg = np.zeros(n, dtype=np.int64)
        for j in range(n):
            h = np.array(acc["hits"][key][j])
            if len(h) == 0:
                raise RuntimeError(f"{key} point {j} never hit the mesh")
            pts[j] = np.median(h, axis=0)
            reg[j] = np.bincount(np.array(acc["regions"][key][j])).argmax()
        tri, bary = snap_to_surface(model, pts, reg)
        name = "mp478" if key == "mp" else "lm68"
        out[f"{name}_face"] = tri.astype(np.int32)
        out[f"{name}_bary"] = bary.astype(np.float32)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=shared_data_dir())
    ap.add_argument("--n", type=int, default=1200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=resources_dir() / "landmark_map.npz")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest beside other work)")
    args = ap.parse_args(argv)
    if args.data is None:
        ap.error("research data not found: pass --data")
    torch.set_num_threads(args.threads)
    photos = sample_photos(args.data, args.n, args.seed)
    t0 = time.perf_counter()
    detections = detect_all(photos)
    print(f"{len(detections)}/{len(photos)} photos with a face", flush=True)
    model = FaceModel.load(resources_dir() / "face_model.npz", with_landmark_map=False)
    arrays: dict[str, np.ndarray] = {}
    history = []
    for rnd in range(args.rounds):
        cfg = LandmarkFitConfig(use_dense=rnd > 0)
        print(f"round {rnd + 1}/{args.rounds}: fitting {len(detections)} faces (dense={cfg.use_dense})", flush=True)
        acc = run_round(model, detections, cfg)
        arrays = summarise(model, acc)
        if acc["resid"]["mp"][0]:
            med = np.array([np.median(r) for r in acc["resid"]["mp"]])
            history.append({"round": rnd + 1, "used": acc["used"], "dense_resid_median": float(np.median(med))})
        else:
            history.append({"round": rnd + 1, "used": acc["used"]})
        model.set_landmark_map(arrays)
    # weights from the last round's residuals with the final map
    acc = run_round(model, detections[: max(200, len(detections) // 4)], LandmarkFitConfig(use_dense=True))
    med = np.array([np.median(r) for r in acc["resid"]["mp"]])
    weight = np.clip((np.median(med) / np.maximum(med, 1e-6)) ** 2, 0.05, 1.0)
    arrays["mp478_weight"] = weight.astype(np.float32)
    arrays["mp478_mirror"] = mirror_table(photos)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    manifest = {
        "artifact": args.out.name, "builder": "trainers/build_landmark_map.py", "version": MAP_VERSION,
        "command": "python -m trainers.build_landmark_map " + shlex.join(argv or sys.argv[1:]),
        "data": {"photos": len(photos), "faces": len(detections), "sources": ["lfw", "utkface"], "seed": args.seed,
                 "license": "derived from research data (LFW: research use; UTKFace: non-commercial research)"},
        "rounds": history, "dense_residual_median_eye_units": float(np.median(med)),
        "weights": {"min": float(weight.min()), "median": float(np.median(weight))},
        "seconds": round(time.perf_counter() - t0, 1),
        "arrays": {k: f"{v.dtype} {tuple(v.shape)}" for k, v in arrays.items()},
    }
    args.out.with_suffix(".manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
