"""``faceeditor bench fit --data DIR --json OUT``: landmark accuracy, speed and known-answer recovery.

Over a folder of photos with iBUG 68-point ``.pts`` files (``../shared/data/afw68``): detect,
pick the face the annotation belongs to (nearest centre), landmark-fit (68-point term, jaw as a
silhouette, dense mediapipe term) and time the photometric fit at 256 px. NME = mean 68-point
error / distance of the outer eye corners (36, 45) of the annotation. The ``*_68only`` keys
repeat the fit without the dense term ("measure both"). Synthetic keys: random ICT faces
rendered with a photo texture, detected and fitted back (:func:`faceeditor.fit.synthetic.synthetic_recovery`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from faceeditor.bench._util import peak_rss_mb
from faceeditor.core.errors import FaceEditorError
from faceeditor.core.paths import sample_image_path, shared_data_dir
from faceeditor.face.detect import FaceDetector, NoFaceError
from faceeditor.face.evaluate import load_pts, nme68
from faceeditor.fit.landmarks import LandmarkFitConfig, LandmarkFitter
from faceeditor.fit.photometric import PhotometricConfig, fit_photometric
from faceeditor.fit.pipeline import fit_photo, get_fitter, state_from_landmark_fit
from faceeditor.fit.synthetic import synthetic_recovery
from faceeditor.io import load_rgb
from faceeditor.morphable import FaceModel, load_face_model
from faceeditor.neural import checkpoints
from faceeditor.neural.regressor import fit_init

NAME = "fit"
HELP = "landmark-fit accuracy (NME on afw68), fit timings and synthetic known-answer recovery"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = shared_data_dir()
    parser.add_argument("--data", type=Path, default=data / "afw68" if data else None,
                        help="folder of photos with iBUG .pts files (default ../shared/data/afw68)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos")
    parser.add_argument("--photometric-n", type=int, default=30, help="photos to time the photometric fit on")
    parser.add_argument("--synthetic-n", type=int, default=40, help="synthetic faces to fit back")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-fr-init", action="store_true",
                        help="skip the comparison with the fit started from FR (resources/face_regressor.pt)")


@dataclass
class _Figures:
    """Per-photo measurements over the annotated folder."""

    det_nme: list[float] = field(default_factory=list)
    fit_nme: list[float] = field(default_factory=list)
    nojaw: list[float] = field(default_factory=list)
    fit68_nme: list[float] = field(default_factory=list)
    fit68_nojaw: list[float] = field(default_factory=list)
    lm_ms: list[float] = field(default_factory=list)
    ph_ms: list[float] = field(default_factory=list)
    fr_ms: list[float] = field(default_factory=list)
    fr_nme: list[float] = field(default_factory=list)
    detected: int = 0


def run(args: argparse.Namespace) -> dict:
    if args.data is None or not Path(args.data).is_dir():
        raise FaceEditorError(f"no benchmark folder: {args.data} (pass --data DIR with .jpg + .pts files)")
    torch.set_num_threads(args.threads)
    model = load_face_model()
    photos = sorted(p for p in Path(args.data).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                    and p.with_suffix(".pts").is_file())
    if args.limit:
        photos = photos[: args.limit]
    with FaceDetector() as detector:
        detector.detect(load_rgb(photos[0]))  # warm the detector graphs (one-time start-up is not per-photo time)
        fig = _measure_photos(photos, model, detector, args)
        out = _summary(fig, len(photos))
        out.update(_synthetic(model, detector, args))
    out.update({"peak_rss_mb": round(peak_rss_mb(), 1), "threads": args.threads})
    return out


def _measure_photos(photos: list[Path], model: FaceModel, detector: FaceDetector, args: argparse.Namespace) -> _Figures:
    """Detect, landmark-fit (dense + 68, 68 only, from FR) and time the photometric fit on each photo."""
    fitter = get_fitter(model)
    fitter68 = LandmarkFitter(model, LandmarkFitConfig(use_dense=False))
    fr = None if args.no_fr_init else _regressor()
    fig = _Figures()
    for k, path in enumerate(photos):
        rgb = load_rgb(path)
        gt = load_pts(path.with_suffix(".pts"))
        size = (rgb.shape[1], rgb.shape[0])
        t0 = time.perf_counter()
        try:
            faces = detector.detect(rgb)
        except NoFaceError:
            continue
        face = min(faces, key=lambda f: float(np.linalg.norm(f.landmarks68.mean(0) - gt.mean(0))))
        fit = fitter.fit(face.landmarks68, size, dense478=face.landmarks)
        fig.lm_ms.append((time.perf_counter() - t0) * 1000.0)
        fig.detected += 1
        fig.det_nme.append(nme68(face.landmarks68, gt))
        fig.fit_nme.append(nme68(fit.fitted68, gt))
        fig.nojaw.append(nme68(fit.fitted68, gt, np.arange(17, 68)))
        if fr is not None:  # the same fit started from FR's regression (FR's time included)
            t1 = time.perf_counter()
            ffr = fitter.fit(face.landmarks68, size, dense478=face.landmarks, init=fit_init(fr, rgb, face.landmarks68))
            fig.fr_ms.append((time.perf_counter() - t1) * 1000.0)
            fig.fr_nme.append(nme68(ffr.fitted68, gt))
        f68 = fitter68.fit(face.landmarks68, size)
        fig.fit68_nme.append(nme68(f68.fitted68, gt))
        fig.fit68_nojaw.append(nme68(f68.fitted68, gt, np.arange(17, 68)))
        if k < args.photometric_n:
            state = state_from_landmark_fit(face, fit, size)
            t1 = time.perf_counter()
            fit_photometric(rgb, state, model, PhotometricConfig(crop=256))
            fig.ph_ms.append((time.perf_counter() - t1) * 1000.0)
    return fig


def _summary(fig: _Figures, n_photos: int) -> dict:
    med = statistics.median
    out = {
        "faces": n_photos, "detected_rate": round(fig.detected / max(n_photos, 1), 4),
        "nme_detector_median": round(med(fig.det_nme), 4),
        "nme_fit_median": round(med(fig.fit_nme), 4), "nme_fit_mean": round(float(np.mean(fig.fit_nme)), 4),
        "nme_fit_nojaw_median": round(med(fig.nojaw), 4),
        "nme_fit_median_68only": round(med(fig.fit68_nme), 4),
        "nme_fit_mean_68only": round(float(np.mean(fig.fit68_nme)), 4),
        "nme_fit_nojaw_median_68only": round(med(fig.fit68_nojaw), 4),
        "landmark_fit_ms_median": round(med(fig.lm_ms), 1), "photometric_fit_ms_median": round(med(fig.ph_ms), 1),
    }
    if fig.fr_nme:
        out.update({"nme_fit_median_fr_init": round(med(fig.fr_nme), 4),
                    "nme_fit_mean_fr_init": round(float(np.mean(fig.fr_nme)), 4),
                    "fit_ms_median_fr_init": round(med(fig.fr_ms), 1)})
    return out


def _synthetic(model: FaceModel, detector: FaceDetector, args: argparse.Namespace) -> dict:
    """Known answers: the texture of the sample portrait's fit on random faces."""
    med = statistics.median
    sample = fit_photo(load_rgb(sample_image_path()), model=model, detector=detector)[0]
    syn = synthetic_recovery(model, sample.texture.astype(np.float32) / 255.0, n=args.synthetic_n, seed=args.seed,
                             detector=detector)
    return {
        "synthetic_rotation_err_deg_median": round(med(syn["rotation_err_deg"]), 3),
        "synthetic_expression_mae": round(float(np.mean(syn["expression_mae"])), 4),
        "synthetic_yaw_err_deg_median": round(med(syn["yaw_err_deg"]), 3),
        "synthetic_expression_mae_active": round(float(np.mean(syn["expression_mae_active"])), 4),
        "synthetic_detected_rate": round(float(np.mean(syn["detected"])), 3),
    }


def _regressor():
    """FR from resources/ when trained (for the ``*_fr_init`` keys), else None."""
    if not checkpoints.available("face_regressor"):
        return None
    return checkpoints.load_network("face_regressor", "cpu")
