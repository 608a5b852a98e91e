"""``faceeditor bench light``: relighting judged on real photos.

On ``--n`` photos (``--data``: any folder of photos, searched recursively; default the validation
persons' photos of ``../shared/data/lfw``) the largest face is fitted and the photo relit by the
mesh compositor from the left, the right, the top and at half intensity (direction and strength
relative to the photo's own fitted light, its colour left at the default: the photo's). Keys:

* ``chroma_shift_median``: mean ``|(da*, db*)|`` in CIELAB over the face skin, original vs relit,
  the relit pixel first scaled (in linear RGB) to the original's luminance, so that a pure change
  of brightness reads 0 and a change of hue or saturation does not (``chroma_shift_raw_median``:
  the same without that scaling; CIELAB chroma grows with lightness, so any relight moves it);
* ``skin_tone_ratio_median``: relit/original mean L* on the face skin over the same on the neck
  (1: face and neck agree);
* ``roundtrip_psnr_db``: median PSNR, over the pixels the relight changed, of relighting the relit
  photo back to the photo's own light vs the photo;
* ``light_dir_err_deg_median``: angle between the light re-fitted on the relit photo (photometric
  fit, :func:`faceeditor.edit.light.fit_light`) and the one asked for (left, right, top);
* ``relight_seam_ratio_median``: gradient energy in a band along the fitted face's outline,
  relit over original (1: the relight adds no edge there);
* ``personal_psnr_db``, ``personal_fit_s_median``, ``personal_heldout_gain_db``: the Personal
  renderer's (issue 12, part 3) on ``--personal-n`` persons with >= 4 photos (:mod:`._personal`;
  null when ``--data`` has no person folders); per-person rows in ``personal.json`` beside the sheets;
* extra: ``relight_ms_median`` (one relight render at the photo's size).

A contact sheet per photo (original, left, right, top, half intensity) goes to ``--out-dir``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from faceeditor.bench._util import add_common_arguments

NAME = "light"
HELP = "relighting: hue kept, face vs neck, round trip, re-fitted direction, seams at the face outline"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder of photos, searched recursively (default: validation persons of ../shared/data/lfw)",
    )
    parser.add_argument("--n", type=int, default=20, help="photos (default 20)")
    parser.add_argument("--personal-n", type=int, default=3,
                        help="persons (>= 4 photos, LFW layout) for the personal_* keys (default 3; 0: null)")
    parser.add_argument("--no-refit", action="store_true", help="skip the re-fits (light_dir_err_deg_median: nan)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> dict:
    # the fitter, mediapipe and the compositor load here, not when the command line builds its parser
    from faceeditor.bench import _light

    return _light.measure(args)
