"""Build ``resources/face_model.npz`` (the app's packed face model) from ICT-FaceKit "Face Model Light".

    python -m trainers.build_face_model [--src ../shared/data/ict_facekit/ict_face_model_light.npz]
                                        [--out resources/face_model.npz]

Keeps the rendering regions (face with mouth and eye sockets, head and neck, gums and tongue,
teeth, sclera and iris of both eyes), drops the game-engine helper meshes (lacrimal fluid, eye
blend, eye occlusion, eyelashes), and adds derived tables: per-vertex region, left/right mirror
maps (vertices and UVs) and mirrored expression pairs. Writes ``face_model.manifest.json``
beside the output (command, source sha256, license, array summary, checks).

Output arrays (V = 24591 vertices, F = 48836 triangles):
  neutral f32 (V,3); identity f16 (100,V,3); expression f16 (53,V,3); expression_names (53,)
  faces i32 (F,3); faces_uv i32 (F,3) into uvs f32 (U,2) (UDIM tiles: face u in [0,1],
  head [1,2], gums/tongue [2,3], teeth [3,4]; each eye part has its own [0,1] map);
  uv_vertex i32 (U,); face_region i16 (F,) into region_names (8,); vertex_region i8 (V,) into
  vertex_region_names (7,); narrow_face_vertices (); landmarks68 i32 (68,); mirror i32 (V,);
  mirror_uv i32 (U,); expression_mirror i32 (53,); expression_pairs i32 (K,2) (L, R);
  vertex_indices_json (ICT's fitting/rigid vertex lists, restricted to kept vertices).
  Later stages may add ``mp478_face`` i32 (478,) and ``mp478_bary`` f32 (478,3): see
  :func:`landmark_correspondences`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from faceeditor.core.paths import resources_dir, shared_data_dir  # noqa: E402
from trainers.common import sha256_file  # noqa: E402

BUILDER_VERSION = "1.0"
KEEP_REGIONS = ["M_Face", "M_BackHead", "M_GumsTongue", "M_Teeth",
                "M_ScleraLeft", "M_IrisLeft", "M_ScleraRight", "M_IrisRight"]
# ICT-FaceKit documented vertex ranges (inclusive start, exclusive end) of the kept mesh.
VERTEX_REGIONS = [("face", 0, 9409), ("head_neck", 9409, 11248), ("mouth_socket", 11248, 13294),
                  ("eye_socket", 13294, 14062), ("gums_tongue", 14062, 17039),
                  ("teeth", 17039, 21451), ("eyeball", 21451, 24591)]
NARROW_FACE_VERTICES = 6706  # ICT "narrow face area": vertices 0-6705 (front of the face, no ears/neck)
SIDE_PAIRS = [("jawLeft", "jawRight"), ("mouthLeft", "mouthRight")]  # Left = toward the subject's left
LICENSE_NOTICE = ("ICT-FaceKit (https://github.com/ICT-VGL/ICT-FaceKit), Copyright (c) 2020 USC Institute "
                  "for Creative Technologies, MIT License (resources/LICENSE-ICT-FaceKit.txt).")
CREDITS = ("ICT-FaceKit core contributors: Kalle Bladin, Owen Ingraham, Yajie Zhao, Pratusha Prasad, "
           "Xinglei Ren, Bipin Kishore, Marcel Ramos; interns: Yuka Murata, Tal Rastopchin, Xiang Li.")


def default_src() -> Path:
    data = shared_data_dir()
    base = data if data is not None else REPO_DIR.parent / "shared" / "data"
    return base / "ict_facekit" / "ict_face_model_light.npz"


def vertex_regions(n_vertices: int) -> np.ndarray:
    """Per-vertex region code (index into :data:`VERTEX_REGIONS`)."""
    out = np.full(n_vertices, -1, dtype=np.int8)
    for code, (_, a, b) in enumerate(VERTEX_REGIONS):
        out[a:b] = code
    assert (out >= 0).all(), "vertex ranges do not cover the kept mesh"
    return out


def mirror_vertices(neutral: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, dict]:
    """Index of each vertex's mirror: nearest neighbour of (-x, y, z) within the same region."""
    mirror = np.empty(len(neutral), dtype=np.int32)
    stats: dict = {}
    for code, (name, _, _) in enumerate(VERTEX_REGIONS):
        ids = np.nonzero(region == code)[0]
        pts = neutral[ids].astype(np.float64)
        dist, nn = cKDTree(pts).query(pts * [-1.0, 1.0, 1.0])
        mirror[ids] = ids[nn]
        stats[name] = {"max_cm": round(float(dist.max()), 6),
                       "involution": round(float((nn[nn] == np.arange(len(ids))).mean()), 6)}
    return mirror, stats


def mirror_uvs(uvs: np.ndarray, uv_vertex: np.ndarray, mirror: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each UV index, the UV index of the mirror vertex whose UV is nearest the reflected UV.

    Reflection is within the UDIM tile: u -> floor(u) + 1 - frac(u). Exact for the face tile
    (symmetric about u = 0.5); other layouts are not mirror-symmetric, there it only picks one
    of the mirror vertex's UVs. Returns (mirror_uv, per-UV reflection error).
    """
    order = np.argsort(uv_vertex, kind="stable")  # uv ids grouped by vertex
    starts = np.searchsorted(uv_vertex[order], np.arange(len(mirror) + 1))
    tile = np.floor(uvs[:, 0])
    target = np.stack([2.0 * tile + 1.0 - uvs[:, 0], uvs[:, 1]], axis=1)
    out = np.empty(len(uvs), dtype=np.int32)
    err = np.empty(len(uvs))
    for k in range(len(uvs)):
        m = mirror[uv_vertex[k]]
        cands = order[starts[m]:starts[m + 1]]
        d = np.abs(uvs[cands] - target[k]).sum(1)
        j = int(np.argmin(d))
        out[k], err[k] = cands[j], d[j]
    return out, err


def expression_mirror(names: list[str], expr: np.ndarray, mirror: np.ndarray,
                      mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Mirror permutation of the expressions, (L, R) pairs, worst relative mirror error (all, masked)."""
    idx = {n: i for i, n in enumerate(names)}
    pairs = [(i, idx[n[:-2] + "_R"]) for i, n in enumerate(names) if n.endswith("_L")]
    pairs += [(idx[a], idx[b]) for a, b in SIDE_PAIRS]
    perm = np.arange(len(names), dtype=np.int32)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    worst = [0.0, 0.0]
    for i in range(len(names)):  # reflect blendshape i and compare with its partner
        refl = expr[i].astype(np.float32)[mirror] * np.float32([-1.0, 1.0, 1.0])
        other = expr[perm[i]].astype(np.float32)
        for j, m in enumerate((slice(None), mask)):
            rel = np.linalg.norm(refl[m] - other[m]) / max(float(np.linalg.norm(other[m])), 1e-8)
            worst[j] = max(worst[j], float(rel))
    return perm, np.asarray(pairs, dtype=np.int32), worst[0], worst[1]


def landmark_correspondences(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Hook for a later stage: mediapipe 478 points -> ICT triangle + barycentric coordinates.

    Should return ``{"mp478_face": int32 (478,) triangle ids into arrays["faces"],
    "mp478_bary": float32 (478, 3)}`` (each row sums to 1) derived from measured fits; the
    builder stores what it returns and records it under the manifest's
    ``landmark_correspondences``. Not built yet: returns an empty dict.
    """
    return {}


def build(src: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read the ICT file and return (arrays to store, check metrics)."""
    d = np.load(src)
    region_names = [str(r) for r in d["region_names"]]
    keep_codes = [region_names.index(r) for r in KEEP_REGIONS]
    face_region = d["face_region"]
    keep_faces = np.isin(face_region, keep_codes)
    faces_all = d["faces"]
    used = np.unique(faces_all[keep_faces])
    n_keep = int(used.max()) + 1
    assert np.array_equal(used, np.arange(n_keep)), "kept vertices are not a prefix: remap needed"
    assert faces_all[~keep_faces].min() >= n_keep, "dropped meshes share vertices with kept ones"
    remap_region = np.full(len(region_names), -1, dtype=np.int16)
    remap_region[keep_codes] = np.arange(len(keep_codes))
    faces_uv = d["faces_uv"][keep_faces]
    used_uv = np.unique(faces_uv)
    n_uv = int(used_uv.max()) + 1
    assert np.array_equal(used_uv, np.arange(n_uv)), "kept UVs are not a prefix"
    faces = faces_all[keep_faces].astype(np.int32)
    uvs = d["uvs"][:n_uv].astype(np.float32)
    uv_vertex = np.full(n_uv, -1, dtype=np.int32)
    uv_vertex[faces_uv.ravel()] = faces.ravel()
    assert (uv_vertex >= 0).all()

    neutral = d["neutral"][:n_keep].astype(np.float32)
    identity = d["identity"][:, :n_keep].astype(np.float16)
    expression = d["expression"][:, :n_keep].astype(np.float16)
    names = [str(n) for n in d["expression_names"]]
    landmarks68 = d["landmarks68"].astype(np.int32)
    assert landmarks68.max() < n_keep
    vreg = vertex_regions(n_keep)
    mirror, mstats = mirror_vertices(neutral, vreg)
    mirror_uv, uv_err = mirror_uvs(uvs, uv_vertex, mirror)
    expr_mirror, expr_pairs, expr_err, expr_err_face = expression_mirror(names, expression, mirror, vreg == 0)

    vij = json.loads(str(d["vertex_indices_json"]))
    for key, val in vij.items():
        if key.startswith("idx_to_") and key.endswith("_verts"):
            vij[key] = [int(v) for v in val if int(v) < n_keep]

    arrays: dict[str, np.ndarray] = {
        "neutral": neutral, "identity": identity, "expression": expression,
        "expression_names": np.array(names), "faces": faces, "faces_uv": faces_uv.astype(np.int32),
        "uvs": uvs, "uv_vertex": uv_vertex,
        "face_region": remap_region[face_region[keep_faces]].astype(np.int16),
        "region_names": np.array(KEEP_REGIONS),
        "vertex_region": vreg, "vertex_region_names": np.array([r[0] for r in VERTEX_REGIONS]),
        "narrow_face_vertices": np.array(NARROW_FACE_VERTICES, dtype=np.int32),
        "landmarks68": landmarks68, "mirror": mirror, "mirror_uv": mirror_uv,
        "expression_mirror": expr_mirror, "expression_pairs": expr_pairs,
        "vertex_indices_json": np.array(json.dumps(vij, sort_keys=True)),
    }
    extra = landmark_correspondences(arrays)
    arrays.update(extra)
    lm = neutral[landmarks68]
    face_uv_ids = np.unique(faces_uv[arrays["face_region"] == 0])
    checks = {
        "kept_vertices": n_keep, "dropped_vertices": int(len(d["neutral"]) - n_keep),
        "kept_faces": int(keep_faces.sum()), "dropped_faces": int((~keep_faces).sum()),
        "mirror_max_distance_cm": max(s["max_cm"] for s in mstats.values()),
        "mirror_by_region": mstats,
        "mirror_uv_max_error_face_tile": round(float(uv_err[face_uv_ids].max()), 6),
        "mirror_uv_max_error_all": round(float(uv_err.max()), 6),
        "expression_mirror_max_relative_error": round(expr_err, 6),
        "expression_mirror_max_relative_error_face": round(expr_err_face, 6),
        "eye_corner_distance_cm": round(float(np.linalg.norm(lm[36] - lm[45])), 4),
        "landmark_correspondences_added": sorted(extra),
    }
    return arrays, checks


def write_manifest(out: Path, src: Path, arrays: dict[str, np.ndarray], checks: dict, argv: list[str]) -> Path:
    manifest = {
        "artifact": out.name, "builder": "trainers/build_face_model.py", "builder_version": BUILDER_VERSION,
        "command": " ".join(["python -m trainers.build_face_model"] + [shlex.quote(a) for a in argv]),
        "source": {"file": "../shared/data/ict_facekit/" + src.name, "sha256": sha256_file(src),
                   "model": "ICT-FaceKit Face Model Light"},
        "license": LICENSE_NOTICE, "license_file": "LICENSE-ICT-FaceKit.txt", "credits": CREDITS,
        "output": {"bytes": out.stat().st_size, "sha256": sha256_file(out)},
        "conventions": "centimetres; +Y up, face looks toward +Z, +X is the subject's left; "
                       "expression _L = subject's left",
        "arrays": {k: f"{v.dtype} {tuple(v.shape)}" for k, v in arrays.items()},
        "checks": checks,
        "landmark_correspondences": {
            "status": "built" if "mp478_face" in arrays else "not built",
            "arrays": ["mp478_face", "mp478_bary"],
            "hook": "trainers.build_face_model.landmark_correspondences"},
    }
    path = out.with_name(out.name.replace(".npz", "") + ".manifest.json")
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def write_license(src: Path, out_dir: Path) -> Path:
    """Copy ICT-FaceKit's MIT license (and credits) beside the artifact as a license notice."""
    parts = ["resources/face_model.npz is derived from ICT-FaceKit \"Face Model Light\"\n"
             "(https://github.com/ICT-VGL/ICT-FaceKit) by trainers/build_face_model.py.\n"]
    for name in ("LICENSE", "CREDITS.md"):
        f = src.parent / name
        parts.append(f.read_text().strip() + "\n" if f.is_file() else "")
    if not (src.parent / "LICENSE").is_file():
        parts.append(LICENSE_NOTICE + "\n")
    path = out_dir / "LICENSE-ICT-FaceKit.txt"
    path.write_text("\n".join(p for p in parts if p))
    return path


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=default_src(), help="ICT-FaceKit light model (.npz)")
    ap.add_argument("--out", type=Path, default=resources_dir() / "face_model.npz", help="output .npz")
    args = ap.parse_args(argv)
    if not args.src.is_file():
        raise SystemExit(f"source model not found: {args.src}")
    arrays, checks = build(args.src)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    man = write_manifest(args.out, args.src, arrays, checks, argv)
    write_license(args.src, args.out.parent)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) and {man.name}")
    print(json.dumps(checks, indent=1))


if __name__ == "__main__":
    main()
