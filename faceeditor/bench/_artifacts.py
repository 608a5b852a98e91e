"""``faceeditor bench artifacts``: do the artifact metrics see what the eye sees?

``--labels`` (default ``resources/realism_labels.json``) lists edits of photos under
``../shared/data`` that a person labelled ``broken`` or ``clean`` by eye at 1:1. Each edit is
rendered again with the labelled renderer and every artifact metric of
:mod:`faceeditor.bench._judges` is read on it; the ROC AUC of each metric for the label
``broken`` says how well it separates them (1 = perfectly, 0.5 = not at all). Keys:
``labels``, ``broken``, ``seam_ratio_auc``, ``seam_p95_ratio_auc``, ``changed_edge_ratio_auc``
(of ``abs(log)`` of the ratio), ``incoherence_auc`` (:func:`faceeditor.bench._judges.incoherence`:
patches of the edit the photo does not have), ``id_dist_auc`` (dlib, edit vs photo), and for honesty
``edit_size_auc`` (the AUC of the edit's size alone: a metric that only tracks how big the edit is
reaches it without seeing any artifact) and ``<metric>_auc_same_size`` (the AUC within groups of
edits of the same size, averaged with weights n_broken x n_clean), and per labelled set
``<metric>_auc_set_<name>`` (set B is held out: labelled after the metric was chosen on set A). The labels hold for the renderer
version they were made with: a renderer that changes the pictures needs new labels.
"""

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

NAME = "artifacts"
HELP = "ROC AUC of the artifact metrics on edits labelled broken/clean by eye"
METRICS = ("seam_ratio", "seam_p95_ratio", "changed_edge_ratio", "incoherence", "id_dist")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", type=Path, default=None, help="labels JSON (default resources/realism_labels.json)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=None, help="the labelled edits (default beside --json)")


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


def run(args: argparse.Namespace) -> dict:
    configure_threads(args.threads)
    path = args.labels or resources_dir() / "realism_labels.json"
    doc = json.loads(Path(path).read_text())
    data = shared_data_dir()
    if data is None:
        raise FaceEditorError("../shared/data is missing: the labelled photos live there")
    folder = R.out_dir(args, NAME)
    folder.mkdir(parents=True, exist_ok=True)
    judges, fitted, rows = R.Judges(), {}, []
    try:
        for i, item in enumerate(doc["labels"]):
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
