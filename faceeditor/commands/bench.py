"""``faceeditor bench NAME ...``: benchmarks that print figures and write JSON.

Each benchmark is a module in :mod:`faceeditor.bench` exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> dict``; the dict is printed as a table and
written to ``--json OUT``. Keys named in issues are a contract: keep them exactly.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path

import faceeditor.bench
from faceeditor.core.atomic import atomic_write_text

NAME = "bench"
HELP = "run a benchmark and print/write its figures"


def _bench_modules():
    for info in sorted(pkgutil.iter_modules(faceeditor.bench.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"faceeditor.bench.{info.name}")
        if hasattr(mod, "NAME"):
            yield mod


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for mod in _bench_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        p.add_argument("--json", type=Path, default=None, help="write the figures to this JSON file")
        mod.add_arguments(p)
        p.set_defaults(_bench_module=mod)


def print_table(results: dict, file=None) -> None:
    file = sys.stdout if file is None else file  # (looked up per call: a default bound at import outlives a capture)
    width = max((len(k) for k in results), default=0)
    for key, value in results.items():
        if isinstance(value, float):
            text = f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
        else:
            text = json.dumps(value) if not isinstance(value, str) else value
        if len(text) > 100:
            text = text[:97] + "..."
        print(f"  {key:<{width}}  {text}", file=file)


def run(args: argparse.Namespace) -> int:
    results = args._bench_module.run(args)
    print(f"faceeditor bench {args.bench}:")
    print_table(results)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
