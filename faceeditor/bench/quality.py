"""``faceeditor bench quality``: single-photo edits read by independent judges.

On ``--n`` photos (``--data``: any folder of photos, searched recursively; default the validation
persons' photos of ``../shared/data/lfw``), each renderer in ``--renderers`` makes five edits of the
largest face; the judges are not our fitter's own outputs:

* blink (``blink`` macro at 1) → ``blink_ear_median``: the six-point eye aspect ratio
  (Soukupova & Cech) on mediapipe's eye contour of the edited photo (open eyes read >= 0.2,
  closed <= 0.15; ``source_ear_median`` is the photos' own);
* mouth open (``mouth_open`` macro at 1) → ``mouth_open_mar_median``: inner-lip mouth aspect ratio;
* yaw +30 and -30 → ``yaw30_seam_ratio_median`` (:func:`faceeditor.bench._judges.seam_ratio`),
  ``yaw30_id_dist_mean`` (dlib, edit vs photo), ``yaw30_pose_err_deg_median`` (angle between the
  rotation re-fitted on the edit and the one asked for); ``yaw30_pose_err_floor_deg_median``: the
  same judge on the fitted head itself rendered at the asked pose (no warp): the judge's own error
  at these poses, below which no renderer can read;
* a zero edit → ``noop_psnr_db``: the lowest PSNR against the photo (100 = bit-exact);
* extra: ``yaw30_incoherence_median`` (:func:`faceeditor.bench._judges.incoherence`, the artifact
  metric that agrees with labels made by eye; ``bench artifacts``).

Top-level keys are the default renderer's; each renderer's keys follow prefixed ``mesh_`` ...
A contact sheet per photo (the photo, then each edit; one row per renderer) goes to ``--out-dir``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from faceeditor.bench._util import add_common_arguments

NAME = "quality"
HELP = "blink, mouth open, yaw +-30 and no-op edits judged by mediapipe and dlib"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of photos, searched recursively (default: validation persons of ../shared/data/lfw)")
    parser.add_argument("--n", type=int, default=40, help="photos (default 40)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> dict:
    # the judges (mediapipe, dlib), the fitter and the renderers load here, not when the command
    # line builds its parser
    from faceeditor.bench import _quality

    return _quality.measure(args)
