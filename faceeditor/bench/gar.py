"""``faceeditor bench gar``: the neural renderer G on real photos, through the full path
photo -> detect -> fit -> invert (GAR §3.2) -> re-render.

Photos: ``--n`` drawn (seeded) from ``--data``, any folder searched recursively; by default the
val persons of the prepared dataset (``cache/dataset``, LFW persons never seen in training). Keys
(the issue's contract):

* ``inversion_psnr_db``: PSNR (dB) of G's reconstruction vs the aligned photo crop, inside the
  fitted face mask (skin, eyes, mouth), at G's resolution; mean over photos;
* ``inversion_id_dist_mean``: dlib descriptor distance (:mod:`faceeditor.face.identity`, 0.6 =
  same person) between the photo crop and the reconstruction (both upscaled 2x for dlib, in the
  box derived from the landmarks as the dataset does);
* ``inversion_s_median``: wall time of :func:`faceeditor.neural.invert.invert` (CPU, after the fit;
  ``fit_s_median`` and ``total_s_median`` for detect + fit + invert beside it);
* ``inversion_psnr_db_no_v_init``: the same inversion with z starting at 0 instead of V(photo)
  (GAR Table 2's "w/o initial"), on the first ``--ablation-n`` photos (``inversion_psnr_db_v_init_same``
  is the with-V number on those photos, for a like-for-like comparison);
* ``normal_consistency_deg``: mean angle between N(G(n, s, z)) and the input normal map n in the
  face mask, for random z and noise (3 per photo, drawn with ``--seed``) on the photos' fitted
  geometry and light
  (``normal_consistency_deg_recon``: on the reconstructions);
* ``relight_shading_corr``: Pearson correlation, over face-mask pixels, between the change of the
  output's luminance and the change of the requested shading when the light moves to azimuth -60
  and +60 degrees (elevation 10, the photo's intensity and ambient); mean over photos and lights;
* ``edit_id_dist_yaw20_mean``: dlib distance between the reconstruction and G's re-render of the
  head turned by yaw +20 degrees (same z, noise and tuning);
* ``g_ms_batch1``: median time of one 128 px render of G (batch 1, the render path's bf16 autocast,
  ``--threads`` threads; ``g_ms_batch1_fp32`` without autocast).

Images of the first photos (crop | reconstruction | yaw +20 | relit left | relit right) are written
to ``--out-dir`` (default beside ``--json``). Threads: ``--threads`` (default 1: the machine is shared).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from faceeditor.bench._util import time_ms
from faceeditor.bench.edit import sample_photos
from faceeditor.core.errors import FaceEditorError, RendererUnavailableError
from faceeditor.core.state import FaceState
from faceeditor.edit.geometry import edited_vertices, photo_light, target_sh
from faceeditor.edit.light import LightParams
from faceeditor.edit.params import EditParams
from faceeditor.face import identity
from faceeditor.face.detect import FaceDetector
from faceeditor.fit.pipeline import fit_photo
from faceeditor.io import load_rgb, save_image
from faceeditor.morphable import load_face_model
from faceeditor.morphable.model import FaceModel
from faceeditor.neural import checkpoints
from faceeditor.neural import losses as L
from faceeditor.neural.align import transform_points
from faceeditor.neural.crop import CropView, crop_photo
from faceeditor.neural.crop_render import render_edit
from faceeditor.neural.data import default_root, read_index, split_of
from faceeditor.neural.gar import condition_map, face_mask, normals_of, shading_map
from faceeditor.neural.gar_nets import GarNets, available, load_gar
from faceeditor.neural.invert import InvertConfig, invert
from faceeditor.neural.labels import SKIN
from faceeditor.neural.layers import autocast

NAME = "gar"
HELP = "neural renderer: inversion quality/speed, normal consistency, relighting, identity under pose edits"

RELIGHT_AZIMUTHS = (-60.0, 60.0)
RANDOM_Z_PER_PHOTO = 3  # random codes per photo for the normal consistency


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of photos, searched recursively (default: the dataset's val persons)")
    parser.add_argument("--n", type=int, default=50, help="photos (default 50)")
    parser.add_argument("--ablation-n", type=int, default=None, help="photos for the no-V-init ablation (default n)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--time-budget", type=float, default=None, help="inversion time budget in s (default: config)")
    parser.add_argument("--pti-steps", type=int, default=None, help="pivotal-tuning steps (default: config)")
    parser.add_argument("--steps", type=int, default=None, help="eq. 10 steps (default: config)")
    parser.add_argument("--out-dir", type=Path, default=None, help="example images (default beside --json)")
    parser.add_argument("--examples", type=int, default=6, help="photos whose images are written (default 6)")


def val_photos(n: int, seed: int) -> list[Path]:
    """Photos of the dataset's val persons (paths under the research data folder)."""
    index = read_index(default_root())
    data = Path(index["data"])
    keys = []
    for sh in index["shards"]:
        with np.load(default_root() / sh["file"]) as z:
            for k, p, s in zip(z["key"], z["person"], z["source"]):
                if split_of(str(p), str(s), index["split_seed"], index["val_fraction"]) == "val":
                    keys.append(str(k))
    keys = sorted(keys)
    idx = np.random.default_rng(seed).choice(len(keys), size=min(n, len(keys)), replace=False)
    return [data / keys[i] for i in idx]


def descriptor_of_crop(dlib: identity.DlibIdentity, img: torch.Tensor, lm: np.ndarray) -> np.ndarray | None:
    """dlib descriptor of a (1,3,S,S) crop in [0,1], upscaled 2x, in the box of its landmarks ``lm`` (68,2)."""
    u8 = (img[0].permute(1, 2, 0).float().cpu().numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
    big = cv2.resize(u8, (u8.shape[1] * 2, u8.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    try:
        return dlib.descriptor(big, tuple(v * 2 for v in identity.box_from_landmarks(lm)))
    except Exception:
        return None


def crop_landmarks(model: FaceModel, state: FaceState, view: CropView, edit: EditParams | None = None) -> np.ndarray:
    """The head's 68 landmark vertices projected into the crop (after an optional edit)."""
    with torch.no_grad():
        v = edited_vertices(model, state, edit or EditParams())[:, model.landmarks68]
        return view.camera.project(view.to_crop(v))[0, :, :2].cpu().numpy()


def luminance(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


@dataclass
class _Figures:
    """Per-photo measurements, one list per figure."""

    psnr: list[float] = field(default_factory=list)
    psnr_init: list[float] = field(default_factory=list)
    psnr_no_v: list[float] = field(default_factory=list)
    psnr_init_no_v: list[float] = field(default_factory=list)
    psnr_v_same: list[float] = field(default_factory=list)
    id_dist: list[float] = field(default_factory=list)
    yaw20_id_dist: list[float] = field(default_factory=list)
    relight_corr: list[float] = field(default_factory=list)
    normal_deg: list[float] = field(default_factory=list)
    normal_deg_recon: list[float] = field(default_factory=list)
    invert_s: list[float] = field(default_factory=list)
    fit_s: list[float] = field(default_factory=list)
    total_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


@dataclass
class _Bench:
    """What every photo's measurement uses."""

    model: FaceModel
    nets: GarNets
    N: torch.nn.Module | None  # the normal estimator, for the normal consistency
    cfg: InvertConfig
    gen: torch.Generator  # random z of the normal consistency and the G timing
    ablation_n: int
    examples: int
    out_dir: Path
    dlib: identity.DlibIdentity  # loaded once per run
    detector: FaceDetector


def _photos(args: argparse.Namespace) -> list[Path]:
    if args.data is not None:
        return sample_photos(args.data, args.n, args.seed)
    try:
        return val_photos(args.n, args.seed)
    except FileNotFoundError as e:
        raise FaceEditorError(f"{e}; pass --data DIR") from None


def _invert_config(args: argparse.Namespace) -> InvertConfig:
    cfg = InvertConfig()
    if args.time_budget is not None:
        cfg.time_budget_s = args.time_budget
    if args.pti_steps is not None:
        cfg.pti_steps = args.pti_steps
    if args.steps is not None:
        cfg.steps = args.steps
    return cfg


def _setup(args: argparse.Namespace) -> _Bench:
    model = load_face_model()
    nets = load_gar("cpu")
    N = checkpoints.load_network("normal_net", "cpu") if checkpoints.available("normal_net") else None
    out_dir = args.out_dir or ((args.json.parent / "gar_bench_images") if getattr(args, "json", None) else
                               Path("out") / "bench_gar")
    return _Bench(model, nets, N, _invert_config(args), torch.Generator().manual_seed(args.seed),
                  args.n if args.ablation_n is None else args.ablation_n, args.examples, out_dir,
                  identity.DlibIdentity(), FaceDetector())


def _identity_figures(b: _Bench, st: FaceState, crop: torch.Tensor, view: CropView, recon: torch.Tensor,
                      fig: _Figures) -> torch.Tensor:
    """dlib distances photo crop vs reconstruction and reconstruction vs yaw +20; returns the turned render."""
    d_photo = descriptor_of_crop(b.dlib, crop, transform_points(np.asarray(st.detector_landmarks68, np.float64)[:, :2],
                                                        view.matrix))
    d_rec = descriptor_of_crop(b.dlib, recon, crop_landmarks(b.model, st, view))
    if d_photo is not None and d_rec is not None:
        fig.id_dist.append(identity.distance(d_photo, d_rec))
    turn = EditParams(yaw=20.0)
    turned, _, _ = render_edit(b.model, st, turn, b.nets)
    d_turn = descriptor_of_crop(b.dlib, turned, crop_landmarks(b.model, st, view, turn))
    if d_rec is not None and d_turn is not None:
        fig.yaw20_id_dist.append(identity.distance(d_rec, d_turn))
    return turned


def _relight_figures(b: _Bench, st: FaceState, cond: torch.Tensor, view: CropView, recon: torch.Tensor,
                     fig: _Figures) -> list[torch.Tensor]:
    """Correlation of the luminance change with the shading change in the face mask, per light; the relit renders."""
    mask = face_mask(cond)[0, 0] > 0.5
    base_light = photo_light(st)
    s0 = shading_map(cond, view.sh(np.asarray(st.sh, np.float32).reshape(9, 3))[None])
    relit = []
    for az in RELIGHT_AZIMUTHS:
        light = LightParams.from_dict({**base_light.to_dict(), "azimuth": az, "elevation": 10.0, "sh": None})
        edit = EditParams(light=light)
        img1, _, _ = render_edit(b.model, st, edit, b.nets)
        s1 = shading_map(cond, view.sh(target_sh(st, edit))[None])
        dl = (luminance(img1) - luminance(recon))[0][mask]
        ds = (luminance(s1) - luminance(s0))[0][mask]
        if dl.numel() > 10 and float(dl.std()) > 0 and float(ds.std()) > 0:
            fig.relight_corr.append(float(torch.corrcoef(torch.stack([dl.float(), ds.float()]))[0, 1]))
        relit.append(img1)
    return relit


@torch.no_grad()
def _normal_figures(b: _Bench, st: FaceState, cond: torch.Tensor, view: CropView, recon: torch.Tensor,
                    fig: _Figures) -> None:
    """Mean angle between N(G(n, s, z)) and the input normals n in the face mask: random z, and the reconstruction."""
    k = RANDOM_Z_PER_PHOTO
    fm = face_mask(cond)
    shading = shading_map(cond, view.sh(np.asarray(st.sh, np.float32).reshape(9, 3))[None])
    zs = torch.randn(k, b.nets.G.z_dim, generator=b.gen)
    noise = b.nets.G.make_noise(k, "random", generator=b.gen)  # seeded (was torch's unseeded global generator)
    imgs = b.nets.G(cond.expand(k, -1, -1, -1), shading.expand(k, -1, -1, -1), zs, noise=noise).clamp(0, 1)
    fig.normal_deg.append(float(L.normal_angle_deg(b.N, imgs, normals_of(cond).expand(k, -1, -1, -1),
                                                   fm.expand(k, -1, -1, -1)).mean()))
    fig.normal_deg_recon.append(float(L.normal_angle_deg(b.N, recon, normals_of(cond), fm).mean()))


def _bench_photo(b: _Bench, i: int, path: Path, n_photos: int, fig: _Figures) -> None:
    """Fit, invert and measure one photo (a failed fit is counted, not fatal)."""
    try:
        rgb = load_rgb(path)
        t0 = time.perf_counter()
        state = fit_photo(rgb, model=b.model, detector=b.detector)[0]
        t1 = time.perf_counter()
        st, res = invert(rgb, state, b.model, b.cfg, b.nets, return_result=True)
        t2 = time.perf_counter()
    except Exception as e:  # no face, failed fit: counted, not fatal
        fig.failures.append(f"{path.name}: {type(e).__name__}: {e}")
        return
    fig.fit_s.append(t1 - t0)
    fig.invert_s.append(t2 - t1)
    fig.total_s.append(t2 - t0)
    fig.psnr.append(res.psnr_db)
    fig.psnr_init.append(res.psnr_db_init)
    crop, view = crop_photo(rgb, st, b.nets.size)
    recon, cond, _ = render_edit(b.model, st, EditParams(), b.nets)
    turned = _identity_figures(b, st, crop, view, recon, fig)
    relit = _relight_figures(b, st, cond, view, recon, fig)
    if b.N is not None:
        _normal_figures(b, st, cond, view, recon, fig)
    if i < b.ablation_n:
        _, res0 = invert(rgb, state, b.model, dataclasses.replace(b.cfg, v_init=False), b.nets, return_result=True)
        fig.psnr_no_v.append(res0.psnr_db)
        fig.psnr_init_no_v.append(res0.psnr_db_init)
        fig.psnr_v_same.append(res.psnr_db)
    if i < b.examples:
        row = torch.cat([crop, recon, turned, *relit], 3)[0].permute(1, 2, 0).clamp(0, 1).numpy()
        b.out_dir.mkdir(parents=True, exist_ok=True)
        save_image(b.out_dir / f"{i:02d}_{path.stem}.png", (row * 255 + 0.5).astype(np.uint8))
    print(f"  [{i + 1}/{n_photos}] {path.name}: psnr {res.psnr_db:.2f} (init {res.psnr_db_init:.2f}) "
          f"id {fig.id_dist[-1] if fig.id_dist else float('nan'):.3f} invert {t2 - t1:.1f} s", flush=True)


@torch.no_grad()
def _g_speed_ms(b: _Bench) -> tuple[float, float]:
    """Median ms of one render of G (batch 1, fixed z and a flat skin condition): bf16 autocast (the
    render path) and float32."""
    G, S = b.nets.G, b.nets.size
    facing = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, S, S)
    cond = condition_map(facing, torch.full((1, S, S), SKIN)).contiguous(memory_format=torch.channels_last)
    sh = torch.full((1, 3, S, S), 0.9)
    z = torch.randn(1, G.z_dim, generator=b.gen)
    with autocast("cpu"):
        bf16 = time_ms(lambda: G(cond, sh, z, noise="zero"), repeats=30, warmup=5)
    return bf16, time_ms(lambda: G(cond, sh, z, noise="zero"), repeats=30, warmup=5)


def _mean(v: list[float]) -> float | None:
    return round(float(np.mean(v)), 4) if v else None


def _median(v: list[float]) -> float | None:
    return round(float(statistics.median(v)), 3) if v else None


def _summary(b: _Bench, n_photos: int, fig: _Figures, g_ms: tuple[float, float]) -> dict:
    return {
        "photos": n_photos, "inverted": len(fig.psnr), "failures": len(fig.failures),
        "inversion_psnr_db": _mean(fig.psnr),
        "inversion_id_dist_mean": _mean(fig.id_dist),
        "inversion_s_median": _median(fig.invert_s),
        "inversion_psnr_db_no_v_init": _mean(fig.psnr_no_v),
        "inversion_psnr_db_v_init_same": _mean(fig.psnr_v_same),
        "normal_consistency_deg": _mean(fig.normal_deg),
        "relight_shading_corr": _mean(fig.relight_corr),
        "edit_id_dist_yaw20_mean": _mean(fig.yaw20_id_dist),
        "g_ms_batch1": round(g_ms[0], 2),
        "g_ms_batch1_fp32": round(g_ms[1], 2),
        "inversion_psnr_db_init_v": _mean(fig.psnr_init),
        "inversion_psnr_db_init_no_v": _mean(fig.psnr_init_no_v),
        "normal_consistency_deg_recon": _mean(fig.normal_deg_recon),
        "id_pairs": len(fig.id_dist), "yaw20_pairs": len(fig.yaw20_id_dist),
        "fit_s_median": _median(fig.fit_s), "total_s_median": _median(fig.total_s),
        "invert_config": {"steps": b.cfg.steps, "pti_steps": b.cfg.pti_steps, "time_budget_s": b.cfg.time_budget_s},
        "renderer_id": b.nets.renderer_id, "threads": torch.get_num_threads(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "failure_examples": fig.failures[:5],
    }


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(max(1, args.threads))
    if not available():
        raise RendererUnavailableError("no trained neural renderer in resources/ (python -m trainers.train_gar)")
    photos = _photos(args)
    b = _setup(args)
    fig = _Figures()
    for i, path in enumerate(photos):
        _bench_photo(b, i, path, len(photos), fig)
    if not fig.psnr:
        raise FaceEditorError("no photo could be fitted and inverted: " + "; ".join(fig.failures[:5]))
    return _summary(b, len(photos), fig, _g_speed_ms(b))
