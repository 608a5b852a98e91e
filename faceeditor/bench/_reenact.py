"""The measurements of ``faceeditor bench reenact`` (:mod:`faceeditor.bench.reenact`), imported when it runs."""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceeditor.bench import _judges as J
from faceeditor.bench import _realism as R
from faceeditor.core.device import configure_threads
from faceeditor.edit.light import fit_light
from faceeditor.edit.params import EditParams
from faceeditor.face import identity
from faceeditor.io import save_image

YAW_BINS = ((0.0, 10.0), (10.0, 20.0), (20.0, 180.0))
PHOTOS_PER_PERSON = 6
PAIRS_PER_PERSON_PER_BIN = 2


@dataclass
class Pair:
    a: R.FittedPhoto
    b: R.FittedPhoto

    @property
    def dyaw(self) -> float:
        return abs(self.b.yaw - self.a.yaw)

    @property
    def bin(self) -> int:
        return next(i for i, (lo, hi) in enumerate(YAW_BINS) if lo <= self.dyaw < hi)


def person_pairs(files: list[Path], judges: R.Judges, rng: np.random.Generator, photos: int) -> list[Pair]:
    """Every pair (in a random direction) of up to ``photos`` seeded photos of one person that fit."""
    chosen = [files[i] for i in sorted(rng.choice(len(files), min(len(files), photos), replace=False))]
    fitted = [f for f in map(judges.fit, chosen) if f is not None]
    return [Pair(a, b) if rng.random() < 0.5 else Pair(b, a) for a, b in itertools.combinations(fitted, 2)]


def select_pairs(persons: dict[str, list[Path]], n: int, seed: int, judges: R.Judges, max_fits: int) -> list[Pair]:
    """Up to ``n`` pairs, about a third per yaw bin, drawn person by person in a seeded order."""
    rng = np.random.default_rng(seed)
    quota = [n - 2 * (n // 3), n // 3, n // 3]
    bins: list[list[Pair]] = [[], [], []]
    names = [p for p in sorted(persons) if len(persons[p]) >= 2]
    fits = 0
    for person in (names[i] for i in rng.permutation(len(names))):
        if all(len(b) >= q for b, q in zip(bins, quota)) or fits >= max_fits:
            break
        files = persons[person]
        combos = person_pairs(files, judges, rng, PHOTOS_PER_PERSON)
        fits += min(len(files), PHOTOS_PER_PERSON)
        taken = [0, 0, 0]
        for pair in sorted(combos, key=lambda p: -p.dyaw):
            k = pair.bin
            if len(bins[k]) < quota[k] and taken[k] < PAIRS_PER_PERSON_PER_BIN:
                bins[k].append(pair)
                taken[k] += 1
    return [p for b in bins for p in b]


def transfer_edit(pair: Pair, renderer: str, names: list[str]) -> EditParams:
    """A's edit that asks for B's pose, expression and light."""
    yaw, pitch, roll = R.pose_offset(pair.a.state.rotation, pair.b.state.rotation)
    expression = {n: float(w) for n, w in zip(names, pair.b.state.expression)}
    return EditParams(yaw, pitch, roll, expression, fit_light(np.asarray(pair.b.state.sh)), renderer)


def measure_pair(pair: Pair, renderer: str, judges: R.Judges) -> tuple[dict[str, float], np.ndarray]:
    """The figures of one pair for one renderer, and the edited photo."""
    r = judges.renderers.make(renderer, pair.a.rgb, pair.a.state)
    edit = transfer_edit(pair, renderer, judges.model.expression_names)
    t0 = time.perf_counter()
    edited = r.render(edit, scale=1.0)  # the first render also sets the renderer up for the photo
    t1 = time.perf_counter()
    r.render(edit, scale=1.0)
    row = {"render_ms": (time.perf_counter() - t1) * 1e3, "setup_ms": (t1 - t0) * 1e3, "dyaw": pair.dyaw,
           "seam_ratio": J.seam_ratio(pair.a.rgb, edited, pair.a.face.size),
           "incoherence": J.incoherence(pair.a.rgb, edited, pair.a.face.size),
           "id_dist_source_target": identity.distance(pair.a.descriptor, pair.b.descriptor)}
    face = J.nearest_face(judges.detector, edited, pair.a.face.box)
    if face is None:
        return row, edited
    lm68 = face.landmarks68
    crop_e, crop_b = J.aligned_crop(edited, lm68), J.aligned_crop(pair.b.rgb, pair.b.lm68)
    mask = J.warp_mask(pair.b.person_mask, pair.b.lm68) * crop_e.valid * crop_b.valid
    desc = judges.descriptor(edited, lm68)
    R_refit = judges.refit_rotation(edited, face)
    row.update(psnr_masked_db=J.masked_psnr(crop_e.rgb, crop_b.rgb, mask),
               ssim_masked=J.masked_ssim(crop_e.rgb, crop_b.rgb, mask),
               id_dist_to_target=identity.distance(desc, pair.b.descriptor),
               id_dist_to_source=identity.distance(desc, pair.a.descriptor),
               pose_err_deg=float("nan") if R_refit is None else J.rotation_angle_deg(R_refit, pair.b.state.rotation),
               expr_landmark_err=J.expression_landmark_error(lm68, pair.b.lm68))
    if pair.dyaw < 10.0:
        src = J.laplacian_variance(pair.a.rgb, J.face_hull_mask(pair.a.rgb.shape[:2], pair.a.lm68))
        row["sharpness_ratio"] = J.laplacian_variance(edited, J.face_hull_mask(edited.shape[:2], lm68)) / max(src, 1e-6)
    return row, edited


def summarize(rows: list[dict[str, float]], pairs: list[Pair]) -> dict[str, object]:
    col = lambda k, sel=None: [r.get(k, float("nan")) for r, p in zip(rows, pairs) if sel is None or sel(p)]
    return {
        "pairs": len(rows),
        "pairs_per_bin": [sum(p.bin == k for p in pairs) for k in range(len(YAW_BINS))],
        "edit_detected_rate": round(float(np.mean([np.isfinite(r.get("psnr_masked_db", np.nan)) for r in rows])), 4),
        "psnr_masked_db_median": R.median(col("psnr_masked_db")),
        "ssim_masked_median": R.median(col("ssim_masked")),
        "psnr_masked_db_dyaw20": R.median(col("psnr_masked_db", lambda p: p.bin == 2)),
        "psnr_masked_db_dyaw0_10": R.median(col("psnr_masked_db", lambda p: p.bin == 0)),
        "psnr_masked_db_dyaw10_20": R.median(col("psnr_masked_db", lambda p: p.bin == 1)),
        "id_dist_to_target_mean": R.mean(col("id_dist_to_target")),
        "id_dist_source_target_mean": R.mean(col("id_dist_source_target")),
        "id_dist_to_source_mean": R.mean(col("id_dist_to_source")),
        "pose_err_deg_median": R.median(col("pose_err_deg")),
        "expr_landmark_err_median": R.median(col("expr_landmark_err")),
        "seam_ratio_median": R.median(col("seam_ratio")),
        "incoherence_median": R.median(col("incoherence")),
        "incoherence_dyaw20_median": R.median(col("incoherence", lambda p: p.bin == 2)),
        "sharpness_ratio_median": R.median(col("sharpness_ratio")),
        "render_ms_median": R.median(col("render_ms")),
        "first_render_ms_median": R.median(col("setup_ms")),
    }


def _sheet(folder: Path, i: int, pair: Pair, edits: dict[str, np.ndarray]) -> None:
    tiles = [J.label(pair.a.rgb, "A (source)")]
    tiles += [J.label(e, f"{name} dyaw {pair.dyaw:.0f}") for name, e in edits.items()]
    tiles.append(J.label(pair.b.rgb, "B (target)"))
    h = max(t.shape[0] for t in tiles)
    save_image(folder / f"{i:03d}_{pair.a.path.stem}_to_{pair.b.path.stem}.png", J.contact_sheet(tiles, h))


def measure(args: argparse.Namespace) -> dict:
    configure_threads(args.threads)
    names = R.parse_renderers(args.renderers)
    _, persons = R.validation_persons(args.data)
    judges = R.Judges()
    try:
        pairs = select_pairs(persons, args.pairs, args.seed, judges, args.max_fits or 10 * args.pairs)
        rows: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        folder = R.out_dir(args, "reenact")
        folder.mkdir(parents=True, exist_ok=True)
        for i, pair in enumerate(pairs):
            edits = {}
            for name in names:
                row, edits[name] = measure_pair(pair, name, judges)
                rows[name].append(row)
            _sheet(folder, i, pair, edits)
    finally:
        judges.close()
    R.write_rows(folder / "pairs.json", [{"a": str(p.a.path), "b": str(p.b.path)} for p in pairs], rows)
    out = R.prefixed({n: summarize(rows[n], pairs) for n in names}, names)
    out["renderers"] = names
    out["sheets"] = str(folder)
    return out
