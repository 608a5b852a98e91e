"""Evaluation of N, FR and R against the dataset's labels; shared by the trainers and ``bench aux``.

Inputs are the decoded 128 px arrays of :func:`faceeditor.neural.data.decoded` and a table's
per-sample arrays (:func:`faceeditor.neural.data.load_table`, pixel quantities at 128 px).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.core.pose import matrix_to_euler
from faceeditor.neural.identity import best_threshold, make_pairs, pair_distances, verification_accuracy
from faceeditor.neural.labels import MOUTH, SKIN
from faceeditor.neural.normals import angular_error_deg
from faceeditor.neural.regressor import project_points


def images_to_tensor(u8: np.ndarray) -> torch.Tensor:
    """(B,H,W,3) uint8 -> (B,3,H,W) float in [0,1], channels-last."""
    t = torch.from_numpy(np.array(u8)).permute(0, 3, 1, 2).float().div_(255.0)
    return t.contiguous(memory_format=torch.channels_last)


def _on(net, x: torch.Tensor) -> torch.Tensor:
    """``x`` moved to the device of ``net`` (evaluation runs wherever the network is)."""
    return x.to(next(net.parameters()).device)


def normal_targets(normal_u8: np.ndarray, region_u8: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 maps -> (unit normals (B,3,H,W), face mask (B,1,H,W), head mask (B,1,H,W))."""
    n = torch.from_numpy(np.array(normal_u8)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    n = F.normalize(n, dim=1)
    r = torch.from_numpy(np.array(region_u8))[:, None]
    face = ((r >= SKIN) & (r <= MOUTH)).float()
    head = (r > 0).float()
    return n * head, face, head


@torch.no_grad()
def evaluate_normals(net, images: np.ndarray, normals: np.ndarray, regions: np.ndarray, limit: int | None = None,
                     batch: int = 32) -> dict:
    """N: mean/median angular error (degrees) in the fitted face mask, and the predicted mask's IoU."""
    n = len(images) if limit is None else min(limit, len(images))
    errs, inter, union = [], 0.0, 0.0
    for a in range(0, n, batch):
        sl = slice(a, min(n, a + batch))
        tn, face, _ = normal_targets(normals[sl], regions[sl])
        pn, logit = (o.float().cpu() for o in net(_on(net, images_to_tensor(images[sl]))))
        errs.append(angular_error_deg(pn.float(), tn, face))
        pm = logit > 0
        inter += float((pm & (face > 0)).sum())
        union += float((pm | (face > 0)).sum())
    e = torch.cat(errs)
    return {"normal_angle_err_deg_mean": round(float(e.mean()), 3),
            "normal_angle_err_deg_median": round(float(e.median()), 3), "n_mask_iou": round(inter / max(union, 1), 4)}


# ----------------------------------------------------------------------------- FR
def anchor_point(model) -> np.ndarray:
    """Model-frame anchor of FR: the mean of the 68 landmark vertices of the neutral face."""
    return model.neutral[model.landmarks68].mean(0).cpu().numpy()


def landmark_sets(model) -> list[dict]:
    """Point sets of FR's landmark loss: the 68 landmark vertices and, when the landmark map is
    installed, the 478 mediapipe surface points."""
    sets = [{"index": model.landmarks68}]
    if model.mp478_face is not None:
        sets.append({"face_ids": model.mp478_face, "bary": model.mp478_bary})
    return sets


@torch.no_grad()
def fit_targets(model, a: dict, anchor: np.ndarray, sets: list[dict], chunk: int = 256) -> dict:
    """Per-sample FR targets from the fitted parameters (crop camera of the table's size): the
    anchor's pixel ``uv``, ``log_scale`` = log(focal / anchor depth), and ``points``, the
    projected landmark sets (B, 68 [+478], 2)."""
    R = torch.from_numpy(np.asarray(a["rotation"])).float()
    t = torch.from_numpy(np.asarray(a["translation"])).float()
    f = torch.from_numpy(np.asarray(a["focal"])).float()
    c = torch.from_numpy(np.asarray(a["principal"])).float()
    A = (R @ torch.from_numpy(anchor).float()[None, :, None])[:, :, 0] + t
    depth = -A[:, 2]
    uv = torch.stack([c[:, 0] + f * A[:, 0] / depth, c[:, 1] - f * A[:, 1] / depth], 1)
    pts = []
    for s in range(0, len(R), chunk):
        sl = slice(s, s + chunk)
        p = {"rotation": R[sl], "translation": t[sl], "focal": f[sl], "principal": c[sl],
             "identity": torch.from_numpy(np.asarray(a["identity"][sl])).float(),
             "expression": torch.from_numpy(np.asarray(a["expression"][sl])).float()}
        pts.append(torch.cat([project_points(model, p, **st) for st in sets], 1))
    return {"uv": uv, "log_scale": torch.log(f / depth), "points": torch.cat(pts)}


@torch.no_grad()
def evaluate_regressor(net, model, images: np.ndarray, a: dict, targets: dict | None = None,
                       limit: int | None = None, batch: int = 32) -> dict:
    """FR vs the fit: yaw/pitch/roll errors (degrees) and NME68 (FR's projected 68 landmark
    vertices vs the fit's, over the fit's outer-eye distance)."""
    n = len(images) if limit is None else min(limit, len(images))
    if targets is None:
        targets = fit_targets(model, {k: a[k][:n] for k in ("rotation", "translation", "focal", "principal",
                                                              "identity", "expression")},
                              anchor_point(model), [{"index": model.landmarks68}])
    yaw, pitch, roll, nme = [], [], [], []
    for s in range(0, n, batch):
        sl = slice(s, min(n, s + batch))
        p = net.decode(net(_on(net, images_to_tensor(images[sl]))).float().cpu())
        y, pt, r = matrix_to_euler(p.rotation.double())
        ty, tp, tr = (torch.from_numpy(np.asarray(v, np.float64)) for v in np.asarray(a["euler"][sl]).T)
        yaw.append((y - ty).abs())
        pitch.append((pt - tp).abs())
        roll.append((r - tr).abs())
        pred = project_points(model, p, index=model.landmarks68)
        ref = targets["points"][sl, :68]
        d = (ref[:, 45] - ref[:, 36]).norm(dim=1)
        nme.append((pred - ref).norm(dim=2).mean(1) / d)
    cat = torch.cat
    return {"fr_yaw_err_deg_median": round(float(cat(yaw).median()), 3),
            "fr_yaw_err_deg_mean": round(float(cat(yaw).mean()), 3),
            "fr_pitch_err_deg_median": round(float(cat(pitch).median()), 3),
            "fr_roll_err_deg_median": round(float(cat(roll).median()), 3),
            "fr_nme68_median": round(float(cat(nme).median()), 4), "fr_nme68_mean": round(float(cat(nme).mean()), 4)}


# ----------------------------------------------------------------------------- R
@torch.no_grad()
def embed(net, images: np.ndarray, idx: np.ndarray | None = None, batch: int = 64) -> np.ndarray:
    """R's embeddings of ``images[idx]`` (rows of the other samples stay 0)."""
    idx = np.arange(len(images)) if idx is None else np.unique(np.asarray(idx))
    out = np.zeros((len(images), net.dim), np.float32)
    for s in range(0, len(idx), batch):
        sl = idx[s:s + batch]
        out[sl] = net(_on(net, images_to_tensor(images[sl]))).float().cpu().numpy()
    return out


def lfw_pairs(a: dict, seed: int, max_per_person: int) -> tuple[np.ndarray, np.ndarray]:
    return make_pairs(a["person_id"], np.asarray(a["source"]) == "lfw", max_per_person, seed)


TRAIN_PAIRS_PER_PERSON = 4
VAL_PAIRS_PER_PERSON = 10


def evaluate_identity(net, val_images: np.ndarray, val: dict, train: dict, train_images: np.ndarray | None = None,
                      threshold: float | None = None, seed: int = 0) -> dict:
    """R and the dlib teacher on balanced val-person pairs. Thresholds are chosen on training-person
    pairs (R's from ``train_images`` unless ``threshold`` is given, e.g. from R's manifest)."""
    vp, vsame = lfw_pairs(val, seed, VAL_PAIRS_PER_PERSON)
    tp, tsame = lfw_pairs(train, seed + 1, TRAIN_PAIRS_PER_PERSON)
    ev = embed(net, val_images, vp.ravel())
    if threshold is None:
        threshold = best_threshold(pair_distances(embed(net, train_images, tp.ravel()), tp), tsame)
    t_thr = best_threshold(pair_distances(train["descriptor"], tp), tsame)
    u = np.unique(vp)
    return {
        "id_verification_acc": round(verification_accuracy(pair_distances(ev, vp), vsame, threshold), 4),
        "id_verification_acc_teacher": round(verification_accuracy(pair_distances(val["descriptor"], vp), vsame,
                                                                   t_thr), 4),
        "id_threshold": round(float(threshold), 4), "id_threshold_teacher": round(float(t_thr), 4),
        "id_teacher_acc_at_0.6": round(verification_accuracy(pair_distances(val["descriptor"], vp), vsame, 0.6), 4),
        "id_l2_to_teacher_mean": round(float(np.linalg.norm(ev[u] - val["descriptor"][u], axis=1).mean()), 4)
        if len(u) else float("nan"),
        "id_val_pairs": int(len(vp)),
    }
