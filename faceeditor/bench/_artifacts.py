"""The measurements of ``faceeditor bench artifacts`` (:mod:`faceeditor.bench.artifacts`), imported when it runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from faceeditor.bench import _judges as J
from faceeditor.bench import _realism as R
from faceeditor.core.device import configure_threads
from faceeditor.core.errors import FaceEditorError
from faceeditor.core.paths import resources_dir, shared_data_dir
from faceeditor.edit.params import EditParams
from faceeditor.face import identity
from faceeditor.io import save_image

METRICS = ("seam_ratio", "seam_p95_ratio", "changed_edge_ratio", "incoherence", "id_dist")


def _measure(judges: R.Judges, photo: R.FittedPhoto, edited: np.ndarray) -> dict[str, float]:
    row = {"seam_ratio": J.seam_ratio(photo.rgb, edited, photo.face.size),
           "seam_p95_ratio": J.seam_p95_ratio(photo.rgb, edited, photo.face.size),
           "changed_edge_ratio": abs(float(np.log(max(J.changed_edge_ratio(photo.rgb, edited), 1e-6)))),
           "incoherence": J.incoherence(photo.rgb, edited, photo.face.size),
           "id_dist": float("nan")}
    face = J.nearest_face(judges.detector, edited, photo.face.box)
    if face is not None:
        row["id_dist"] = identity.distance(judges.descriptor(edited, face.landmarks68), photo.descriptor)
    return row


def _stratified_auc(rows: list[dict], metric: str) -> float:
    """AUC within groups of equal edit size (groups holding both labels), weighted by n_pos x n_neg."""
    total, weight = 0.0, 0.0
    for size in sorted({r["size"] for r in rows}):
        group = [r for r in rows if r["size"] == size]
        pos = sum(r["broken"] for r in group)
        w = pos * (len(group) - pos)
        if w:
            total += w * J.roc_auc([r[metric] for r in group], [r["broken"] for r in group])
            weight += w
    return total / weight if weight else float("nan")


def measure(args: argparse.Namespace) -> dict:
    configure_threads(args.threads)
    path = args.labels or resources_dir() / "realism_labels.json"
    doc = json.loads(Path(path).read_text())
    wanted = None if not getattr(args, "sets", None) else {x.strip() for x in args.sets.split(",") if x.strip()}
    items = [it for it in doc["labels"] if wanted is None or it.get("set", "A") in wanted]
    if not items:
        raise FaceEditorError(f"no labelled edits in sets {sorted(wanted or [])} of {path}")
    data = shared_data_dir()
    if data is None:
        raise FaceEditorError("../shared/data is missing: the labelled photos live there")
    folder = R.out_dir(args, "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    judges, fitted, rows = R.Judges(), {}, []
    try:
        for i, item in enumerate(items):
            if item["photo"] not in fitted:
                fitted[item["photo"]] = judges.fit(data / item["photo"])
            photo = fitted[item["photo"]]
            if photo is None:
                continue
            edit = EditParams.from_dict(dict(item["edit"], renderer=doc.get("renderer", "mesh")))
            edited = judges.renderers.make(edit.renderer, photo.rgb, photo.state).render(edit)
            size = float(np.abs([edit.yaw, edit.pitch, edit.roll]).sum() + sum(edit.expression.values()))
            rows.append(dict(_measure(judges, photo, edited), broken=item["label"] == "broken", size=size,
                             set=item.get("set", "A")))
            save_image(folder / f"{i:03d}_{item['label']}_{Path(item['photo']).stem}.png",
                       J.contact_sheet([photo.rgb, edited]))
    finally:
        judges.close()
    broken = [r["broken"] for r in rows]
    out: dict[str, object] = {"labels": len(rows), "broken": int(sum(broken))}
    sizes = [r["size"] for r in rows]
    out["edit_size_auc"] = round(J.roc_auc(sizes, broken), 4)
    for m in METRICS:
        out[f"{m}_auc"] = round(J.roc_auc([r[m] for r in rows], broken), 4)
        out[f"{m}_auc_same_size"] = round(_stratified_auc(rows, m), 4)
    for name in sorted({r["set"] for r in rows}) if len({r["set"] for r in rows}) > 1 else []:
        part = [r for r in rows if r["set"] == name]  # e.g. a held-out set labelled after the metric was chosen
        for m in METRICS:
            out[f"{m}_auc_set_{name}"] = round(J.roc_auc([r[m] for r in part], [r["broken"] for r in part]), 4)
    (folder / "rows.json").write_text(json.dumps(rows, indent=1) + "\n")
    return out
