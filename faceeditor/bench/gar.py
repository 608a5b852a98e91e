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
  face mask, for random z (3 per photo) on the photos' fitted geometry and light
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
import statistics
import time
from pathlib import Path

import numpy as np

NAME = "gar"
HELP = "neural renderer: inversion quality/speed, normal consistency, relighting, identity under pose edits"

RELIGHT_AZIMUTHS = (-60.0, 60.0)


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
    from faceeditor.neural.data import default_root, read_index, split_of

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


def descriptor_of_crop(img, lm: np.ndarray) -> np.ndarray | None:
    """dlib descriptor of a (1,3,S,S) crop in [0,1], upscaled 2x, in the box of its landmarks ``lm`` (68,2)."""
    import cv2

    from faceeditor.face import identity

    u8 = (img[0].permute(1, 2, 0).float().cpu().numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
    big = cv2.resize(u8, (u8.shape[1] * 2, u8.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    try:
        return identity.descriptor(big, tuple(v * 2 for v in identity.box_from_landmarks(lm)))
    except Exception:
        return None


def crop_landmarks(model, state, view, edit=None) -> np.ndarray:
    """The head's 68 landmark vertices projected into the crop (after an optional edit)."""
    import torch

    from faceeditor.edit.geometry import edited_vertices
    from faceeditor.edit.params import EditParams

    with torch.no_grad():
        v = edited_vertices(model, state, edit or EditParams())[:, model.landmarks68]
        return view.camera.project(view.to_crop(v))[0, :, :2].cpu().numpy()


def luminance(x):
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


def run(args: argparse.Namespace) -> dict:
    import dataclasses

    import torch

    from faceeditor.bench._util import time_ms
    from faceeditor.cli import UserError
    from faceeditor.edit.geometry import photo_light, target_sh
    from faceeditor.edit.light import LightParams
    from faceeditor.edit.params import EditParams
    from faceeditor.face import identity
    from faceeditor.fit.pipeline import fit_photo
    from faceeditor.io import load_rgb, save_image
    from faceeditor.morphable import load_face_model
    from faceeditor.neural import checkpoints
    from faceeditor.neural import losses as L
    from faceeditor.neural.gar import face_mask, shading_map
    from faceeditor.neural.invert import InvertConfig, invert
    from faceeditor.neural.render import available, crop_photo, load_gar, render_edit

    torch.set_num_threads(max(1, args.threads))
    if not available():
        raise UserError("no trained neural renderer in resources/ (python -m trainers.train_gar)")
    if args.data is not None:
        from faceeditor.bench.edit import sample_photos

        photos = sample_photos(args.data, args.n, args.seed)
    else:
        try:
            photos = val_photos(args.n, args.seed)
        except FileNotFoundError as e:
            raise UserError(f"{e}; pass --data DIR") from None
    model = load_face_model()
    nets = load_gar("cpu")
    N = checkpoints.load_network("normal_net", "cpu") if checkpoints.available("normal_net") else None
    cfg = InvertConfig()
    if args.time_budget is not None:
        cfg.time_budget_s = args.time_budget
    if args.pti_steps is not None:
        cfg.pti_steps = args.pti_steps
    if args.steps is not None:
        cfg.steps = args.steps
    abl_n = args.n if args.ablation_n is None else args.ablation_n
    out_dir = args.out_dir or ((args.json.parent / "gar_bench_images") if getattr(args, "json", None) else
                               Path("out") / "bench_gar")
    g = torch.Generator().manual_seed(args.seed)
    rec = {k: [] for k in ("psnr", "psnr_abl", "psnr_same", "id", "inv_s", "fit_s", "total_s", "normal", "normal_rec",
                           "relight", "yaw_id", "psnr_init", "psnr_init_abl")}
    failures = []
    for i, path in enumerate(photos):
        try:
            rgb = load_rgb(path)
            t0 = time.perf_counter()
            state = fit_photo(rgb, model=model)[0]
            t1 = time.perf_counter()
            st, res = invert(rgb, state, model, cfg, nets, return_result=True)
            t2 = time.perf_counter()
        except Exception as e:  # no face, failed fit: counted, not fatal
            failures.append(f"{path.name}: {type(e).__name__}: {e}")
            continue
        rec["fit_s"].append(t1 - t0)
        rec["inv_s"].append(t2 - t1)
        rec["total_s"].append(t2 - t0)
        rec["psnr"].append(res.psnr_db)
        rec["psnr_init"].append(res.psnr_db_init)
        crop, view = crop_photo(rgb, st, nets.size)
        recon, cond, _ = render_edit(model, st, EditParams(), nets)
        d_photo = descriptor_of_crop(crop, _crop_points(view, st.detector_landmarks68))
        lm_rec = crop_landmarks(model, st, view)
        d_rec = descriptor_of_crop(recon, lm_rec)
        if d_photo is not None and d_rec is not None:
            rec["id"].append(identity.distance(d_photo, d_rec))
        # pose edit: yaw +20
        turned, _, _ = render_edit(model, st, EditParams(yaw=20.0), nets)
        d_turn = descriptor_of_crop(turned, crop_landmarks(model, st, view, EditParams(yaw=20.0)))
        if d_rec is not None and d_turn is not None:
            rec["yaw_id"].append(identity.distance(d_rec, d_turn))
        # relighting: luminance change vs shading change in the face mask
        mask = face_mask(cond)[0, 0] > 0.5
        base_light = photo_light(st)
        sh0 = np.asarray(st.sh, np.float32).reshape(9, 3)
        s0 = shading_map(cond, view.sh(sh0)[None])
        relit = []
        for az in RELIGHT_AZIMUTHS:
            light = LightParams.from_dict({**base_light.to_dict(), "azimuth": az, "elevation": 10.0, "sh": None})
            edit = EditParams(light=light)
            img1, _, _ = render_edit(model, st, edit, nets)
            s1 = shading_map(cond, view.sh(target_sh(st, edit))[None])
            dl = (luminance(img1) - luminance(recon))[0][mask]
            ds = (luminance(s1) - luminance(s0))[0][mask]
            if dl.numel() > 10 and float(dl.std()) > 0 and float(ds.std()) > 0:
                rec["relight"].append(float(torch.corrcoef(torch.stack([dl.float(), ds.float()]))[0, 1]))
            relit.append(img1)
        # normal consistency (N on G's output vs the input normals)
        if N is not None:
            fm = face_mask(cond)
            with torch.no_grad():
                shading = shading_map(cond, view.sh(sh0)[None])
                zs = torch.randn(3, nets.G.z_dim, generator=g)
                imgs = nets.G(cond.expand(3, -1, -1, -1), shading.expand(3, -1, -1, -1), zs, noise="random").clamp(0, 1)
                rec["normal"].append(float(L.normal_angle_deg(N, imgs, cond[:, :3].expand(3, -1, -1, -1),
                                                              fm.expand(3, -1, -1, -1)).mean()))
                rec["normal_rec"].append(float(L.normal_angle_deg(N, recon, cond[:, :3], fm).mean()))
        if i < abl_n:
            _, res0 = invert(rgb, state, model, dataclasses.replace(cfg, v_init=False), nets, return_result=True)
            rec["psnr_abl"].append(res0.psnr_db)
            rec["psnr_init_abl"].append(res0.psnr_db_init)
            rec["psnr_same"].append(res.psnr_db)
        if i < args.examples:
            row = torch.cat([crop, recon, turned, *relit], 3)[0].permute(1, 2, 0).clamp(0, 1).numpy()
            out_dir.mkdir(parents=True, exist_ok=True)
            save_image(out_dir / f"{i:02d}_{path.stem}.png", (row * 255 + 0.5).astype(np.uint8))
        print(f"  [{i + 1}/{len(photos)}] {path.name}: psnr {res.psnr_db:.2f} (init {res.psnr_db_init:.2f}) "
              f"id {rec['id'][-1] if rec['id'] else float('nan'):.3f} invert {t2 - t1:.1f} s", flush=True)
    if not rec["psnr"]:
        raise UserError("no photo could be fitted and inverted: " + "; ".join(failures[:5]))

    def mean(v):
        return round(float(np.mean(v)), 4) if v else None

    def median(v):
        return round(float(statistics.median(v)), 3) if v else None

    # G speed: one 128 px render (the render path: bf16 autocast), fixed z and geometry
    G = nets.G
    S = nets.size
    cond = torch.zeros(1, 8, S, S).contiguous(memory_format=torch.channels_last)
    cond[:, 2] = 1.0
    cond[:, 3] = 1.0
    sh = torch.full((1, 3, S, S), 0.9)
    z = torch.randn(1, G.z_dim, generator=g)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            g_ms = time_ms(lambda: G(cond, sh, z, noise="zero"), repeats=30, warmup=5)
        g_ms32 = time_ms(lambda: G(cond, sh, z, noise="zero"), repeats=30, warmup=5)
    import os

    return {
        "photos": len(photos), "inverted": len(rec["psnr"]), "failures": len(failures),
        "inversion_psnr_db": mean(rec["psnr"]),
        "inversion_id_dist_mean": mean(rec["id"]),
        "inversion_s_median": median(rec["inv_s"]),
        "inversion_psnr_db_no_v_init": mean(rec["psnr_abl"]),
        "inversion_psnr_db_v_init_same": mean(rec["psnr_same"]),
        "normal_consistency_deg": mean(rec["normal"]),
        "relight_shading_corr": mean(rec["relight"]),
        "edit_id_dist_yaw20_mean": mean(rec["yaw_id"]),
        "g_ms_batch1": round(g_ms, 2),
        "g_ms_batch1_fp32": round(g_ms32, 2),
        "inversion_psnr_db_init_v": mean(rec["psnr_init"]),
        "inversion_psnr_db_init_no_v": mean(rec["psnr_init_abl"]),
        "normal_consistency_deg_recon": mean(rec["normal_rec"]),
        "id_pairs": len(rec["id"]), "yaw20_pairs": len(rec["yaw_id"]),
        "fit_s_median": median(rec["fit_s"]), "total_s_median": median(rec["total_s"]),
        "invert_config": {"steps": cfg.steps, "pti_steps": cfg.pti_steps, "time_budget_s": cfg.time_budget_s},
        "renderer_id": nets.renderer_id, "threads": torch.get_num_threads(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "failure_examples": failures[:5],
    }


def _crop_points(view, lm) -> np.ndarray:
    from faceeditor.neural.align import transform_points

    return transform_points(np.asarray(lm, np.float64)[:, :2], view.matrix)
