"""The measurements of ``faceeditor bench quality`` (:mod:`faceeditor.bench.quality`), imported when it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from faceeditor.bench import _judges as J
from faceeditor.bench import _realism as R
from faceeditor.core.device import configure_threads
from faceeditor.core.errors import FaceEditorError
from faceeditor.core.pose import euler_to_matrix
from faceeditor.edit.params import EditParams
from faceeditor.edit.presets import macro_weights
from faceeditor.face import identity
from faceeditor.io import save_image

YAW_DEG = 30.0
EDITS = ("noop", "blink", "mouth_open", "yaw+30", "yaw-30")


def edit_for(name: str, renderer: str) -> EditParams:
    if name in ("blink", "mouth_open"):
        return EditParams(expression=macro_weights(name, 1.0), renderer=renderer)
    if name.startswith("yaw"):
        return EditParams(yaw=float(name[3:]), renderer=renderer)
    return EditParams(renderer=renderer)


def judge_photo(photo: R.FittedPhoto, renderer: str, judges: R.Judges) -> tuple[dict[str, list[float]], list[np.ndarray]]:
    """Every edit of one photo with one renderer, and what the judges read on them."""
    r = judges.renderers.make(renderer, photo.rgb, photo.state)
    out: dict[str, list[float]] = {k: [] for k in ("ear", "mar", "seam", "incoh", "id", "pose", "noop", "src_ear",
                                                   "pose_floor")}
    images = []
    src = J.nearest_face(judges.detector, photo.rgb, photo.face.box)
    if src is not None:
        out["src_ear"].append(J.eye_aspect_ratio(src.landmarks))
    for name in EDITS:
        edit = edit_for(name, renderer)
        img = r.render(edit, scale=1.0)
        images.append(J.label(img, f"{renderer} {name}"))
        if name == "noop":
            out["noop"].append(J.masked_psnr(img, photo.rgb, np.ones(img.shape[:2])))
            continue
        face = J.nearest_face(judges.detector, img, photo.face.box)
        if name == "blink":
            out["ear"].append(J.eye_aspect_ratio(face.landmarks) if face is not None else float("nan"))
        elif name == "mouth_open":
            out["mar"].append(J.mouth_aspect_ratio(face.landmarks) if face is not None else float("nan"))
        else:
            out["seam"].append(J.seam_ratio(photo.rgb, img, photo.face.size))
            out["incoh"].append(J.incoherence(photo.rgb, img, photo.face.size))
            if face is None:
                out["id"].append(float("nan"))
                out["pose"].append(float("nan"))
                continue
            out["id"].append(identity.distance(judges.descriptor(img, face.landmarks68), photo.descriptor))
            want = euler_to_matrix(edit.yaw, 0.0, 0.0)[0].double().numpy() @ np.asarray(photo.state.rotation, np.float64)
            got = judges.refit_rotation(img, face)
            out["pose"].append(float("nan") if got is None else J.rotation_angle_deg(got, want))
            out["pose_floor"].append(pose_floor(photo, edit, want, judges))
    return out, images


def pose_floor(photo: R.FittedPhoto, edit: EditParams, want: np.ndarray, judges: R.Judges) -> float:
    """The pose judge's error on the exact head at the edited pose (:func:`R.exact_head`), nan if it
    finds no face: what ``yaw30_pose_err_deg_median`` would read for a perfect edit."""
    img = R.exact_head(photo, judges.model, edit)
    face = J.nearest_face(judges.detector, img, photo.face.box)
    got = None if face is None else judges.refit_rotation(img, face)
    return float("nan") if got is None else J.rotation_angle_deg(got, want)


def summarize(rows: list[dict[str, list[float]]]) -> dict[str, object]:
    pool = lambda k: [v for r in rows for v in r[k]]  # noqa: E731
    noop = [v for v in pool("noop") if np.isfinite(v)]
    return {
        "photos": len(rows),
        "blink_ear_median": R.median(pool("ear")),
        "source_ear_median": R.median(pool("src_ear")),
        "mouth_open_mar_median": R.median(pool("mar")),
        "yaw30_seam_ratio_median": R.median(pool("seam")),
        "yaw30_incoherence_median": R.median(pool("incoh")),
        "yaw30_id_dist_mean": R.mean(pool("id")),
        "yaw30_pose_err_deg_median": R.median(pool("pose")),
        "yaw30_pose_err_floor_deg_median": R.median(pool("pose_floor")),
        "yaw30_detected_rate": round(float(np.mean([np.isfinite(v) for v in pool("id")])), 4) if pool("id") else 0.0,
        "noop_psnr_db": round(min(noop), 3) if noop else float("nan"),
    }


def measure(args: argparse.Namespace) -> dict:
    configure_threads(args.threads)
    names = R.parse_renderers(args.renderers)
    files = R.photos_under(args.data)
    if not files:
        raise FaceEditorError(f"no photos under {args.data}")
    order = np.random.default_rng(args.seed).permutation(len(files))
    folder = R.out_dir(args, "quality")
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, list[float]]]] = {n: [] for n in names}
    judges = R.Judges()
    done: list[Path] = []
    try:
        for i in order:
            if len(rows[names[0]]) >= args.n:
                break
            photo = judges.fit(files[i])
            if photo is None:
                continue
            done.append(photo.path)
            sheet = []
            for name in names:
                row, images = judge_photo(photo, name, judges)
                rows[name].append(row)
                sheet.append(J.contact_sheet([J.label(photo.rgb, photo.path.name), *images]))
            save_image(folder / f"{len(rows[names[0]]):03d}_{photo.path.stem}.png", np.vstack(sheet))
    finally:
        judges.close()
    R.write_rows(folder / "photos.json", [{"photo": str(p)} for p in done], rows)
    out = R.prefixed({n: summarize(rows[n]) for n in names}, names)
    out["renderers"] = names
    out["sheets"] = str(folder)
    return out
