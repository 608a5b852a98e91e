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
version they were made with: a renderer that changes the pictures needs new labels; ``--sets E``
re-runs only the set labelled on today's renderer (see the labels file's ``about``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "artifacts"
HELP = "ROC AUC of the artifact metrics on edits labelled broken/clean by eye"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", type=Path, default=None, help="labels JSON (default resources/realism_labels.json)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=None, help="the labelled edits (default beside --json)")
    parser.add_argument("--sets", default=None,
                        help="only these labelled sets, comma-separated (e.g. E: the set labelled on today's renderer)")


def run(args: argparse.Namespace) -> dict:
    # the judges (mediapipe, dlib), the fitter and the renderers load here, not when the command
    # line builds its parser
    from faceeditor.bench import _artifacts

    return _artifacts.measure(args)
