"""68-point landmark accuracy on a folder of ``*.jpg`` + iBUG ``*.pts`` (e.g. ``../shared/data/afw68``).

NME = mean point-to-point distance / distance between the outer eye corners (68-set 36 and
45) of the annotation. The iBUG files count pixels from 1 (the first pixel's centre is at
1.0); the project's continuous coordinates put it at 0.5, so :func:`load_pts` subtracts
:data:`PTS_OFFSET` by default. Reused by the fitting benchmark: pass any ``predict`` callable.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

from faceeditor.core.atomic import atomic_write_text
from faceeditor.core.paths import shared_data_dir
from faceeditor.face.detect import FaceDetector, NoFaceError
from faceeditor.face.landmarks68 import to_68

PTS_OFFSET = 0.5  # iBUG 1-based pixel centres -> project continuous coordinates


def load_pts(path: str | Path, offset: float = PTS_OFFSET) -> np.ndarray:
    """(N, 2) float64 points of a ``.pts`` file (plain ``x y`` lines or the iBUG ``{ }`` block),
    minus ``offset`` (0.5 turns iBUG's 1-based coordinates into the project convention)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        parts = line.replace(",", " ").split()
        if len(parts) != 2:
            continue
        try:
            rows.append((float(parts[0]), float(parts[1])))
        except ValueError:
            continue  # header lines ("n_points: 68")
    if not rows:
        raise ValueError(f"no points in {path}")
    return np.asarray(rows, dtype=np.float64) - offset


def interocular(gt: np.ndarray) -> float:
    """Outer-eye-corner distance of a 68-point set."""
    return float(np.linalg.norm(gt[45] - gt[36]))


def nme68(pred: np.ndarray, gt: np.ndarray, indices: np.ndarray | None = None) -> float:
    """Normalised mean error of (68, 2) ``pred`` against ``gt`` (optionally over ``indices`` only)."""
    p, g = np.asarray(pred, np.float64)[:, :2], np.asarray(gt, np.float64)[:, :2]
    err = np.linalg.norm(p - g, axis=1)
    if indices is not None:
        err = err[indices]
    return float(err.mean() / interocular(g))


def face_frame_residual(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(68, 2) residual pred - gt in the annotation's face frame (u: 36->45, v: down the face),
    in interocular units; averaging it over a data set gives systematic biases."""
    u = (gt[45] - gt[36]) / interocular(gt)
    v = np.array([-u[1], u[0]])
    r = (np.asarray(pred, np.float64) - gt) / interocular(gt)
    return np.stack([r @ u, r @ v], axis=1)


def default_predict(min_face_px: float = 0.0, calibrated: bool = True,
                    detector: FaceDetector | None = None) -> Callable[[np.ndarray], list[np.ndarray]]:
    """The detector as a predictor: image -> list of (68, 2) point sets, one per face found
    (``calibrated=False``: the plain mediapipe->68 table, as used to measure the calibration).
    The predictor keeps ``detector`` (or a new one) for all its calls."""
    detector = detector or FaceDetector()

    def predict(rgb: np.ndarray) -> list[np.ndarray]:
        try:
            faces = detector.detect(rgb, min_face_px=min_face_px, include_small=True)
        except NoFaceError:
            return []
        return [to_68(f.landmarks, calibrated) for f in faces if f.landmarks is not None]

    return predict


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def evaluate_folder(folder: str | Path, predict: Callable[[np.ndarray], list[np.ndarray]] | None = None,
                    limit: int | None = None, names: list[str] | None = None,
                    offset: float = PTS_OFFSET) -> dict:
    """Run ``predict`` on each ``*.jpg`` with a ``.pts`` beside it and score the face nearest the
    annotation (crops may hold several faces). Returns summary figures and per-file rows:
    ``detection_rate``, ``nme_median``, ``nme_mean``, ``nme_no_jaw_median``, ``fail_rate_010``
    (NME > 0.1, missed faces count as failures), ``ms_per_image``, ``per_file``."""
    folder = Path(folder)
    files = sorted(p for p in folder.glob("*.jpg") if p.with_suffix(".pts").is_file())
    if names is not None:
        wanted = set(names)
        files = [p for p in files if p.stem in wanted or p.name in wanted]
    if limit is not None:
        files = files[:limit]
    if not files:
        raise FileNotFoundError(f"no *.jpg + *.pts pairs in {folder}")
    predict = predict or default_predict()
    no_jaw = np.arange(17, 68)
    rows, times = [], []
    for path in files:
        rgb = _read_rgb(path)
        gt = load_pts(path.with_suffix(".pts"), offset)
        t0 = time.perf_counter()
        preds = predict(rgb)
        times.append((time.perf_counter() - t0) * 1000.0)
        row: dict = {"name": path.stem, "faces": len(preds), "nme": None}
        if preds:
            best = min(preds, key=lambda p: float(np.linalg.norm(np.asarray(p)[:, :2] - gt, axis=1).mean()))
            best = np.asarray(best, np.float64)[:, :2]
            row.update(nme=nme68(best, gt), nme_no_jaw=nme68(best, gt, no_jaw), pred=best.tolist(),
                       residual_uv=face_frame_residual(best, gt).tolist())
        rows.append(row)
    found = [r for r in rows if r["nme"] is not None]
    nmes = [r["nme"] for r in found]
    return {
        "images": len(rows),
        "detection_rate": len(found) / len(rows),
        "nme_median": statistics.median(nmes) if nmes else float("nan"),
        "nme_mean": statistics.fmean(nmes) if nmes else float("nan"),
        "nme_no_jaw_median": statistics.median(r["nme_no_jaw"] for r in found) if found else float("nan"),
        "fail_rate_010": sum(1 for r in rows if r["nme"] is None or r["nme"] > 0.1) / len(rows),
        "ms_per_image": statistics.fmean(times),
        "faces_found": sum(r["faces"] for r in rows),
        "per_file": rows,
    }


def fit_offsets(rows: list[dict]) -> np.ndarray:
    """(68, 2) mean face-frame residual of the rows of an uncalibrated run (for OFFSET_68_UV)."""
    res = np.array([r["residual_uv"] for r in rows if r.get("residual_uv") is not None])
    return res.mean(axis=0)


def apply_offsets(points68: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Subtract face-frame offsets (68, 2) in interocular units from (68, 2) points."""
    p = np.asarray(points68, np.float64)
    d = float(np.linalg.norm(p[45] - p[36]))
    u = (p[45] - p[36]) / d
    v = np.array([-u[1], u[0]])
    return p - d * (offsets[:, :1] * u + offsets[:, 1:] * v)


def cross_validated_nme(rows: list[dict], gts: dict[str, np.ndarray]) -> list[float]:
    """2-fold (alternate faces) NME of an uncalibrated run after the calibration fitted on the other half."""
    found = [r for r in rows if r["nme"] is not None]
    out = []
    for k in (0, 1):
        offsets = fit_offsets([r for i, r in enumerate(found) if i % 2 != k])
        out += [nme68(apply_offsets(np.array(r["pred"]), offsets), gts[r["name"]])
                for i, r in enumerate(found) if i % 2 == k]
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m faceeditor.face.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, help="default: <shared data>/afw68")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--raw", action="store_true", help="score the uncalibrated 68-point table")
    ap.add_argument("--fit-offsets", action="store_true", help="print OFFSET_68_UV from a raw run + 2-fold CV")
    ap.add_argument("--json", type=Path, default=None, help="write the summary and per-file rows here")
    args = ap.parse_args(argv)
    folder = args.folder or ((shared_data_dir() or Path(".")) / "afw68")
    raw = args.raw or args.fit_offsets
    result = evaluate_folder(folder, default_predict(calibrated=not raw), limit=args.limit)
    for key, value in result.items():
        if key != "per_file":
            print(f"  {key:<20} {value:.4f}" if isinstance(value, float) else f"  {key:<20} {value}")
    if args.fit_offsets:
        gts = {r["name"]: load_pts(folder / f"{r['name']}.pts") for r in result["per_file"]}
        cv = cross_validated_nme(result["per_file"], gts)
        print(f"  2-fold CV calibrated NME median {statistics.median(cv):.4f} mean {statistics.fmean(cv):.4f}")
        rows = [f"({a:+.4f}, {b:+.4f})" for a, b in fit_offsets(result["per_file"])]
        print("OFFSET_68_UV = np.array([\n" + "".join(
            "    " + ", ".join(rows[i:i + 6]) + ",\n" for i in range(0, 68, 6)) + "])")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
