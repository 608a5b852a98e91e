"""``faceeditor bench aux --json OUT``: the auxiliary networks N, FR and R on the dataset's val split.

Keys (the issue's contract):

* ``normal_angle_err_deg_mean``: N's normals vs the fitted head's, mean angle inside the fitted
  face mask (per image, then over images);
* ``fr_yaw_err_deg_median``: |yaw(FR) - yaw(fit)| in the crop camera;
* ``fr_nme68_median``: FR's projected 68 landmark vertices vs the fit's (same vertices, the fit's
  crop camera), over the fit's outer-eye distance;
* ``id_verification_acc``: R on balanced same/different-person pairs of val persons (LFW), the
  threshold chosen on training-person pairs (stored in R's manifest when it was trained;
  ``--recompute-threshold`` recomputes it); ``id_verification_acc_teacher``: dlib's descriptors on
  the same pairs, threshold chosen on the same training pairs;
* ``n_ms``, ``fr_ms``, ``r_ms``: median CPU time of one 128 px image (fp32, channels-last, no
  grad) with ``--threads`` torch threads (default 1: the machine is shared).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from faceeditor.bench._util import time_ms
from faceeditor.core.errors import FaceEditorError
from faceeditor.morphable import load_face_model
from faceeditor.neural import checkpoints
from faceeditor.neural.data import decoded, load_table, read_index
from faceeditor.neural.evaluate import evaluate_identity, evaluate_normals, evaluate_regressor

NAME = "aux"
HELP = "auxiliary networks N (normals), FR (parameters), R (identity) on the dataset's val split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, help="dataset folder (default cache/dataset)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N val images for N and FR")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the networks and timings")
    parser.add_argument("--recompute-threshold", action="store_true",
                        help="choose R's threshold on training pairs now instead of reading the manifest")
    parser.add_argument("--seed", type=int, default=0, help="pair sampling")


def _time_one(net: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return round(time_ms(lambda: net(x), repeats=30, warmup=5), 2)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    try:
        index = read_index(args.data)
    except FileNotFoundError as e:
        raise FaceEditorError(str(e)) from None
    missing = [n for n in ("normal_net", "face_regressor", "identity_net") if not checkpoints.available(n)]
    if missing:
        raise FaceEditorError(f"network weights missing: {', '.join(missing)} (see trainers/train_*.py)")
    N = checkpoints.load_network("normal_net", "cpu")
    FR = checkpoints.load_network("face_regressor", "cpu")
    R = checkpoints.load_network("identity_net", "cpu")
    val = load_table(args.data, "val", 128, limit=args.limit)
    imgs = decoded(val, "image", "val", args.data)
    out: dict = {"val_images": len(val), "dataset_samples": index["samples"]}
    out.update(evaluate_normals(N, imgs, decoded(val, "normal", "val", args.data),
                                decoded(val, "region", "val", args.data)))
    model = load_face_model("cpu")
    out.update(evaluate_regressor(FR, model, imgs, val.arrays))
    train = load_table(args.data, "train", 128, blobs=("image",))
    thr = None if args.recompute_threshold else checkpoints.manifest("identity_net").get("threshold")
    timgs = decoded(train, "image", "train", args.data) if thr is None else None
    out.update(evaluate_identity(R, imgs, val.arrays, train.arrays, timgs, thr, args.seed))
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0)).contiguous(
        memory_format=torch.channels_last)
    out.update({"n_ms": _time_one(N, x), "fr_ms": _time_one(FR, x), "r_ms": _time_one(R, x), "threads": args.threads})
    for name, key in (("normal_net", "n"), ("face_regressor", "fr"), ("identity_net", "r")):
        out[f"{key}_weights_mb"] = round(checkpoints.weights_path(name).stat().st_size / 1e6, 2)
    return out
