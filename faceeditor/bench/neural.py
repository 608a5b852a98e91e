"""``faceeditor bench neural``: the photo-conditioned renderer G_p read by FR, and its speed.

* ``ds_id``, ``ds_exp``, ``ds_illum``, ``ds_angle``: the 'Tax-free' Disentanglement Score
  (``../shared/papers/003_...txt`` eq. 11) through FR (:mod:`faceeditor.neural.regressor`): on
  ``--n`` photos, for each attribute u_i, ``--sets`` random settings of the other three, each with
  ``--values`` random u_i; G_p renders every one from the photo (crop level, as in training) and FR
  re-estimates all four; ``sigma_k`` is the mean L2 spread of attribute k within a setting,
  normalised by the norm of its mean over all renders, and ``DS(u_i) = prod_{j != i} sigma_i / sigma_j``
  (high: changing u_i changes only u_i in FR's reading);
* ``render_ms_256``: median wall time of G_p's forward pass on a 256 px representation
  (``--threads``, bf16, channels-last); ``render_cpu_ms_256_1thread`` its CPU time on one thread
  (the cost on free cores: wall times on a loaded machine measure the other processes);
  ``rep_ms_256`` the representation (rasterization, correspondence) and ``load_avg_1min`` the
  machine's load while measuring.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "neural"
HELP = "photo-conditioned renderer: Tax-free disentanglement scores through FR and render time"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, default=None, help="folder of photos (default: validation persons of ../shared/data/lfw)"
    )
    parser.add_argument("--n", type=int, default=6, help="photos (default 6)")
    parser.add_argument("--sets", type=int, default=3, help="settings of the other attributes per photo")
    parser.add_argument("--values", type=int, default=3, help="values of the changed attribute per setting")
    parser.add_argument("--weights", type=Path, default=None, help="G_p weights (default: the shipped ones)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")


def run(args: argparse.Namespace) -> dict:
    from faceeditor.bench import _neural

    return _neural.measure(args)
