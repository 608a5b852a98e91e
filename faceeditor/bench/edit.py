"""``faceeditor bench edit``: quality, control accuracy and speed of the mesh compositor.

On a fixed, seeded sample of ``--n`` photos found recursively under ``--data`` (default
``../shared/data/lfw``), each photo is fitted (:func:`faceeditor.fit.pipeline.fit_photo`) and
edited with :class:`~faceeditor.edit.compose.MeshCompositor`; edited photos are re-fitted to
measure what the edit really did. Keys (the issue's contract):

* ``identity_dist_yaw15_mean``, ``identity_dist_smile_mean``: dlib 128-D descriptor distance
  (:mod:`faceeditor.face.identity`; 0.6 = dlib's same-person threshold) between the photo and
  its edit, for yaw +15 and -15 (both) and for the ``smile`` macro at 0.7;
* ``yaw_control_err_deg_median``: | yaw of (R_refit R_fit^T) - requested | over the +-15 edits;
* ``smile_control_corr``: Pearson correlation between the requested ``smile`` strength
  (0, 0.25, ..., 1; on the first ``--sweep-n`` photos) and the re-fitted mean of
  ``mouthSmile_L/R``, pooled over photos;
* ``light_dir_err_deg_median``: angle between the requested light direction (azimuth U(-60,60),
  elevation U(-10,40), seeded per photo; intensity/ambient as fitted) and the dominant light
  direction re-estimated from the edited photo: the direction of the directional light that best
  gives the re-fitted SH's shading on the face (:func:`faceeditor.edit.light.fit_light`). The
  first-order band alone (:func:`faceeditor.render.sh.dominant_direction`) is reported too
  (``light_dir_err_first_order_deg_median``): an SH fitted on one face's front hemisphere puts
  much of the light in the second-order terms, and its first-order band wanders even for the
  unedited photo;
* ``noop_psnr_db``: the lowest PSNR of a zero edit over the photos (100 = bit-exact);
* ``preview_ms_median``: a 1024x768 photo (a sample photo upscaled and letterboxed), render
  of a combined edit (yaw 15, smile 0.6, relight) at scale 1;
* ``full_res_ms_median``: the same at 4000x3000.

Wall-clock timings need a quiet machine: when other processes hold the cores, OpenMP threads
spin-wait on each other and ``--threads 2`` can be many times slower than ``--threads 1``
(DESIGN.md). The CPU-time medians and the 1-minute load average are reported beside them.

Before/after PNGs of the three edits (pose, smile, relight) of the first photo are written to
``--out-dir`` (default: ``edit_bench_images`` beside ``--json``, else ``out/bench_edit``).
Threads: ``--threads`` (default 2) for torch and OpenCV.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from faceeditor.bench._util import list_photos
from faceeditor.core.paths import shared_data_dir
from faceeditor.core.pose import matrix_to_euler
from faceeditor.core.state import FaceState
from faceeditor.edit.geometry import photo_light
from faceeditor.edit.light import LightParams, fit_light
from faceeditor.edit.params import EditParams
from faceeditor.io import load_rgb, save_image
from faceeditor.morphable import load_face_model
from faceeditor.morphable.model import FaceModel
from faceeditor.render.sh import direction_from_angles, dominant_direction

NAME = "edit"
HELP = "identity, control accuracy and speed of photo edits with the mesh compositor"

SMILE_SWEEP = (0.0, 0.25, 0.5, 0.75, 1.0)
SMILE_STRENGTH = 0.7
YAW_DEG = 15.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, help="folder of photos, searched recursively "
                        "(default ../shared/data/lfw)")
    parser.add_argument("--n", type=int, default=100, help="photos in the sample (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep-n", type=int, default=20, help="photos used for the smile sweep (default 20)")
    parser.add_argument("--threads", type=int, default=2, help="torch/OpenCV threads (default 2)")
    parser.add_argument("--repeats", type=int, default=10, help="timed renders per photo size (default 10)")
    parser.add_argument("--timing-photos", type=int, default=3, help="photos used for timings (default 3)")
    parser.add_argument("--out-dir", type=Path, default=None, help="before/after images (see module doc)")


def sample_photos(folder: Path, n: int, seed: int) -> list[Path]:
    """A fixed sample: ``n`` photos drawn without replacement by ``numpy.random.default_rng(seed)``."""
    files = list_photos(folder)
    if not files:
        raise FileNotFoundError(f"no photos under {folder}")
    idx = np.random.default_rng(seed).choice(len(files), size=min(n, len(files)), replace=False)
    return [files[i] for i in idx]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else min(100.0, 10.0 * np.log10(255.0 ** 2 / mse))


def _heavy() -> SimpleNamespace:
    """OpenCV, the compositor, the fitter and dlib: imported when the benchmark runs, not when the
    command line builds its parser (which imports every benchmark module)."""
    import cv2

    from faceeditor.edit.compose import MeshCompositor
    from faceeditor.face import identity
    from faceeditor.face.detect import FaceDetector
    from faceeditor.jobs.photo_edit import fitter

    return SimpleNamespace(cv2=cv2, MeshCompositor=MeshCompositor, identity=identity, fitter=fitter,
                           FaceDetector=FaceDetector)


def letterboxed(rgb: np.ndarray, state, width: int, height: int):
    """The photo scaled to fit ``height`` and padded (reflected) to ``width`` x ``height``, and the
    state moved to match (focal and principal point scale; the padding shifts cx)."""
    cv2 = _heavy().cv2
    h, w = rgb.shape[:2]
    k = height / h
    sw = int(round(w * k))
    big = cv2.resize(rgb, (sw, height), interpolation=cv2.INTER_CUBIC)
    left = max(0, (width - sw) // 2)
    right = max(0, width - sw - left)
    big = cv2.copyMakeBorder(big, 0, 0, left, right, cv2.BORDER_REFLECT)[:, :width]
    s = state.copy()
    cx, cy = state.centre
    s.image_size = (width, height)
    s.focal_px = float(state.focal_px * k)
    s.principal = (cx * k + left, cy * k)
    x0, y0, x1, y1 = state.face_box
    s.face_box = (x0 * k + left, y0 * k, x1 * k + left, y1 * k)
    return np.ascontiguousarray(big), s


def _descriptor(rgb: np.ndarray, dlib, fallback_box=None):
    """dlib's descriptor of the largest face dlib finds (else of ``fallback_box``); ``dlib`` is a
    :class:`faceeditor.face.identity.DlibIdentity`."""
    boxes = dlib.detect(rgb)
    if boxes:
        return dlib.descriptor(rgb, boxes[0]), boxes[0]
    if fallback_box is None:
        return None, None
    return dlib.descriptor(rgb, fallback_box), fallback_box


def _relative_yaw(R_new: np.ndarray, R_old: np.ndarray) -> float:
    rel = torch.as_tensor(np.asarray(R_new, np.float64) @ np.asarray(R_old, np.float64).T)
    return float(matrix_to_euler(rel)[0][0])


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    a = a / max(np.linalg.norm(a), 1e-12)
    b = b / max(np.linalg.norm(b), 1e-12)
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0))))


def _save_pair(folder: Path, name: str, before: np.ndarray, after: np.ndarray) -> None:
    save_image(folder / f"{name}_before.png", before)
    save_image(folder / f"{name}_after.png", after)
    save_image(folder / f"{name}_before_after.png", np.hstack([before, after]))


@dataclass
class _Measures:
    """What the photos of the sample give, appended photo by photo."""

    id_yaw: list[float] = field(default_factory=list)  # descriptor distance, yaw +-15 edits
    id_smile: list[float] = field(default_factory=list)  # descriptor distance, smile edit
    yaw_err: list[float] = field(default_factory=list)  # |re-fitted relative yaw - requested|, degrees
    light_err: list[float] = field(default_factory=list)  # requested vs re-fitted light direction (fit_light)
    light_err_fo: list[float] = field(default_factory=list)  # ... (first-order band)
    noop: list[float] = field(default_factory=list)  # PSNR of the zero edit
    sweep_x: list[float] = field(default_factory=list)  # requested smile strength
    sweep_y: list[float] = field(default_factory=list)  # re-fitted mean mouthSmile_L/R
    fitted: int = 0  # photos fitted
    saved: bool = False  # before/after images written
    timing_cases: list[tuple[np.ndarray, FaceState]] = field(default_factory=list)


@dataclass
class _Timings:
    preview_ms: list[float] = field(default_factory=list)
    full_ms: list[float] = field(default_factory=list)
    preview_cpu: list[float] = field(default_factory=list)
    full_cpu: list[float] = field(default_factory=list)


class _Photo:
    """One fitted photo of the sample and its compositor; each method measures one kind of edit."""

    def __init__(self, rgb: np.ndarray, state: FaceState, model: FaceModel, fit, dlib) -> None:
        self.rgb, self.state, self.fit, self.dlib = rgb, state, fit, dlib
        self.comp = _heavy().MeshCompositor(rgb, state, model)
        self.d0, self.box0 = _descriptor(rgb, dlib, tuple(state.face_box))

    def refit(self, rgb: np.ndarray, photometric: bool):
        try:
            return self.fit(rgb, photometric=photometric)[0]
        except Exception:  # no face found in an edit counts as a missing measurement
            return None

    def identity_dist(self, edited: np.ndarray, sink: list[float]) -> None:
        if self.d0 is not None:
            d1, _ = _descriptor(edited, self.dlib, self.box0)
            sink.append(float(np.linalg.norm(d1 - self.d0)))

    def pose(self, m: _Measures) -> None:
        for sign in (1.0, -1.0):
            out = self.comp.render(EditParams(yaw=sign * YAW_DEG))
            self.identity_dist(out, m.id_yaw)
            st = self.refit(out, photometric=False)
            if st is not None:
                m.yaw_err.append(abs(_relative_yaw(st.rotation, self.state.rotation) - sign * YAW_DEG))

    def smile(self, m: _Measures) -> np.ndarray:
        out = self.comp.render(EditParams().with_preset("smile", SMILE_STRENGTH))
        self.identity_dist(out, m.id_smile)
        return out

    def relight(self, m: _Measures, light_dir: tuple[float, float]) -> np.ndarray:
        base = photo_light(self.state)
        light = LightParams(light_dir[0], light_dir[1], base.intensity, base.ambient, base.temperature)
        lit = self.comp.render(EditParams(light=light))
        st = self.refit(lit, photometric=True)
        if st is not None:
            want = direction_from_angles(*light_dir).numpy()
            fl = fit_light(np.asarray(st.sh))
            m.light_err.append(_angle_deg(want, direction_from_angles(fl.azimuth, fl.elevation).numpy()))
            got = dominant_direction(torch.as_tensor(np.asarray(st.sh, np.float32))).numpy()
            m.light_err_fo.append(_angle_deg(want, got))
        return lit

    def smile_sweep(self, m: _Measures, i_smile: list[int]) -> None:
        for s in SMILE_SWEEP:
            st = self.refit(self.comp.render(EditParams().with_preset("smile", s)), photometric=False)
            if st is not None:
                m.sweep_x.append(s)
                m.sweep_y.append(float(np.mean(np.asarray(st.expression)[i_smile])))


def _data_folder(args: argparse.Namespace) -> Path:
    if args.data is not None:
        return args.data
    root = shared_data_dir()
    if root is None:
        raise FileNotFoundError("no --data given and ../shared/data not found")
    return root / "lfw"


def _measure_photos(args: argparse.Namespace, photos: list[Path], model: FaceModel, out_dir: Path) -> _Measures:
    heavy = _heavy()
    fit = functools.partial(heavy.fitter(), detector=heavy.FaceDetector())  # one detector and one dlib per run
    dlib = heavy.identity.DlibIdentity()
    rng = np.random.default_rng(args.seed)
    i_smile = [model.expression_index(n) for n in sorted({"mouthSmile_L", "mouthSmile_R"})]
    m = _Measures()
    t_start = time.perf_counter()
    for k, path in enumerate(photos):
        light_dir = (float(rng.uniform(-60, 60)), float(rng.uniform(-10, 40)))  # drawn for every photo: fixed
        try:
            rgb = load_rgb(path)
            state = fit(rgb)[0]
        except Exception as exc:
            print(f"  skip {path.name}: {exc}")
            continue
        m.fitted += 1
        photo = _Photo(rgb, state, model, fit, dlib)
        m.noop.append(psnr(photo.comp.render(EditParams()), rgb))
        photo.pose(m)
        smile_out = photo.smile(m)
        lit = photo.relight(m, light_dir)
        if m.fitted <= args.sweep_n:
            photo.smile_sweep(m, i_smile)
        if not m.saved:
            _save_pair(out_dir, "pose_yaw15", rgb, photo.comp.render(EditParams(yaw=YAW_DEG)))
            _save_pair(out_dir, "smile", rgb, smile_out)
            _save_pair(out_dir, "relight", rgb, lit)
            m.saved = True
        if len(m.timing_cases) < args.timing_photos:
            m.timing_cases.append((rgb, state))
        print(f"  [{k + 1}/{len(photos)}] {path.name}: fitted {m.fitted}, "
              f"{time.perf_counter() - t_start:.0f} s", flush=True)
    return m


def _time_renders(cases: list[tuple[np.ndarray, FaceState]], model: FaceModel, repeats: int) -> _Timings:
    """A combined edit (yaw, smile, relight) rendered at 1024x768 and 4000x3000: wall and CPU ms."""
    t = _Timings()
    for rgb, state in cases:
        base = photo_light(state)
        edit = EditParams(yaw=YAW_DEG, light=LightParams(40.0, 20.0, base.intensity, base.ambient,
                                                         base.temperature)).with_preset("smile", 0.6)
        for (w, h), sink, cpu in (((1024, 768), t.preview_ms, t.preview_cpu), ((4000, 3000), t.full_ms, t.full_cpu)):
            big, st = letterboxed(rgb, state, w, h)
            comp = _heavy().MeshCompositor(big, st, model)
            for _ in range(2):  # warm-up: per-size caches, allocator
                comp.render(edit)
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                comp.render(edit)
                sink.append((time.perf_counter() - t0) * 1000.0)
                cpu.append((time.process_time() - c0) * 1000.0)
    return t


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    _heavy().cv2.setNumThreads(args.threads)
    data = _data_folder(args)
    out_dir = args.out_dir or (args.json.parent / "edit_bench_images" if args.json else Path("out/bench_edit"))
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_face_model("cpu")
    photos = sample_photos(data, args.n, args.seed)
    m = _measure_photos(args, photos, model, out_dir)
    t = _time_renders(m.timing_cases, model, args.repeats)
    return _figures(args, m, t, len(photos), data, out_dir)


def _figures(args: argparse.Namespace, m: _Measures, t: _Timings, n_photos: int, data: Path, out_dir: Path) -> dict:
    """The benchmark's JSON (keys are a contract: see the module docstring); NaN becomes None."""
    def mean(v):
        return float(np.mean(v)) if v else float("nan")

    def median(v):
        return float(statistics.median(v)) if v else float("nan")

    x, y = m.sweep_x, m.sweep_y
    corr = float(np.corrcoef(x, y)[0, 1]) if len(set(x)) > 1 and np.std(y) > 0 else float("nan")
    out = {
        "identity_dist_yaw15_mean": round(mean(m.id_yaw), 4),
        "identity_dist_smile_mean": round(mean(m.id_smile), 4),
        "yaw_control_err_deg_median": round(median(m.yaw_err), 3),
        "smile_control_corr": round(corr, 4),
        "light_dir_err_deg_median": round(median(m.light_err), 2),
        "noop_psnr_db": round(min(m.noop), 2) if m.noop else float("nan"),
        "preview_ms_median": round(median(t.preview_ms), 1),
        "full_res_ms_median": round(median(t.full_ms), 1),
        "light_dir_err_first_order_deg_median": round(median(m.light_err_fo), 2),
        "preview_cpu_ms_median": round(median(t.preview_cpu), 1),  # process CPU time: load-independent
        "full_res_cpu_ms_median": round(median(t.full_cpu), 1),  # (with 1 thread) cross-check of the above
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "photos_sampled": n_photos,
        "photos_fitted": m.fitted,
        "threads": args.threads,
        "seed": args.seed,
        "data": str(data),
        "images": str(out_dir),
    }
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in out.items()}
