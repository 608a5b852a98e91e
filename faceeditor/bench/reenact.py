"""``faceeditor bench reenact``: edits judged against real photos of the same person.

For ``--pairs`` pairs (A, B) of photos of one person (LFW layout ``Person/Person_NNNN.jpg``;
default: the validation persons of ``../shared/data/lfw``, never used in training), stratified by
``|yaw(B) - yaw(A)|`` into the bins 0-10, 10-20 and >= 20 degrees, photo A is edited to B's fitted
pose (the offset ``R_B R_A^T``), expression (all 53 weights) and light (the directional light that
best gives B's SH), and the edit is compared with the real B. Keys (the issue's contract):

* ``psnr_masked_db_median``, ``ssim_masked_median``: edit vs B in similarity-aligned 256 px crops
  (each image aligned by its own 68 landmarks, mediapipe's on the edit), inside B's person mask
  (mediapipe selfie segmentation); ``psnr_masked_db_dyaw20``: the median over the >= 20 degree bin;
* ``id_dist_to_target_mean`` (dlib, edit vs B), ``id_dist_source_target_mean`` (A vs B: the
  floor), ``id_dist_to_source_mean`` (edit vs A);
* ``pose_err_deg_median``: angle between the rotation re-fitted on the edit and B's;
* ``expr_landmark_err_median``: eye and mouth landmarks of the edit vs B after a similarity fit,
  in eye distances;
* ``seam_ratio_median``: gradient energy in a thin band along the outline of what the edit
  changed, over the same band in A (:func:`faceeditor.bench._judges.seam_ratio`);
* ``sharpness_ratio_median``: Laplacian variance in the face (per unit of the face's luma variance,
  so that relighting does not read as detail), edit / A, on pairs with |dyaw| < 10;
* ``render_ms_median``: one full-resolution render by a renderer already set up for the photo
  (``first_render_ms_median``: the first one, which also segments the photo, matches the fill's
  colours and prepares the relight maps);
* extra: ``incoherence_median`` (and ``_dyaw20_median``): :func:`faceeditor.bench._judges.incoherence`,
  the artifact metric that separates edits labelled broken/clean by eye (``bench artifacts``: ROC
  AUC 0.93; ``seam_ratio``'s is 0.60, 0.47 within edits of one size: do not trust it alone).

Every renderer in ``--renderers`` runs on the same pairs; the top-level keys are the default
renderer's, the same keys prefixed ``mesh_``, ``neural_`` ... follow for each. Contact sheets
(A, each renderer's edit, B) and every pair's figures (``pairs.json``) go to ``--out-dir``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from faceeditor.bench._util import add_common_arguments

NAME = "reenact"
HELP = "edit photo A of a person to photo B's pose, expression and light; compare with the real B"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of Person/Person_NNNN.jpg folders (default: validation persons of ../shared/data/lfw)")
    parser.add_argument("--pairs", type=int, default=60, help="pairs in all, a third per yaw bin (default 60)")
    parser.add_argument("--max-fits", type=int, default=None, help="photos fitted while looking for pairs "
                        "(default 10 x pairs)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> dict:
    # the judges (mediapipe, dlib), the fitter and the renderers load here, not when the command
    # line builds its parser
    from faceeditor.bench import _reenact

    return _reenact.measure(args)
