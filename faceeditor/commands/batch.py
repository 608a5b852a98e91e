"""``faceeditor batch IN_DIR OUT_DIR --preset-file P.json [--jobs N] [--force]``.

Applies one edit to every photo under IN_DIR (recursively) and writes the results under
OUT_DIR with the same relative paths (inputs in a format FaceEditor cannot write, e.g. GIF,
become PNG). Behaviour:

* **never overwrites**: an output that exists is skipped unless ``--force``;
* **resumable**: outputs are written atomically (complete or absent), so re-running the same
  command after an interruption or a crash continues where it stopped;
* **bad files are skipped**: unreadable images, photos without a usable face and fitting errors
  are listed in the summary and in ``OUT_DIR/batch_report.json``; the run goes on. The exit status
  is 0 when every photo was edited (or already done), 1 when some failed;
* a progress bar on stderr (one line per photo when stderr is not a terminal);
* ``--jobs N`` runs N worker processes (torch threads split between them);
* ``--scheduler ADDRESS`` runs the photos on a Dask distributed cluster instead
  (:mod:`faceeditor.commands._batch_dask`): same outputs, same report, same resume;
* the report is cumulative: it is rewritten after every photo, and a resumed run keeps listing
  the earlier runs' successes (outputs already there count as done) as ok.

The light flags are relative to each photo's fitted light (see :mod:`faceeditor.edit.args`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch

from faceeditor.commands._batch_worker import init_worker
from faceeditor.core.atomic import atomic_write_text
from faceeditor.core.errors import FaceEditorError
from faceeditor.edit.args import add_edit_arguments, base_edit, check_expression_names, light_requested
from faceeditor.edit.params import EditParams
from faceeditor.io import EXTENSIONS
from faceeditor.morphable import load_face_model

NAME = "batch"
HELP = "apply one edit to every photo in a folder (recursive); skips bad files, never overwrites, resumable"

REPORT_NAME = "batch_report.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("in_dir", type=Path, metavar="IN_DIR", help="folder of photos (searched recursively)")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="where the edited photos go (created)")
    parser.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="worker processes (default 1)")
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on a Dask distributed cluster (e.g. tcp://host:8786) instead of local processes",
    )
    parser.add_argument("--force", action="store_true", help="overwrite outputs that already exist")
    parser.add_argument("--face", default=None, metavar="N", help="which face: 1 = largest (default), or 'all'")
    parser.add_argument(
        "--quality", type=int, default=None, metavar="Q", help="JPEG/WebP quality (default: each input JPEG's, else 95)"
    )
    add_edit_arguments(parser)


# ---------------------------------------------------------------------------- planning
def discover(in_dir: Path, out_dir: Path) -> list[Path]:
    """Image files under ``in_dir`` (by extension, case-insensitive), sorted, excluding ``out_dir``."""
    exts = set(EXTENSIONS) | {".gif"}
    out_real = Path(os.path.realpath(out_dir))
    found = []
    for root, dirs, files in os.walk(in_dir):
        root_p = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and Path(os.path.realpath(root_p / d)) != out_real)
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in exts:
                found.append(root_p / name)
    return sorted(found)


def output_path(src: Path, in_dir: Path, out_dir: Path) -> Path:
    """The output of one input: the same relative path; formats we cannot write become ``.png``."""
    rel = src.relative_to(in_dir)
    if rel.suffix.lower() not in EXTENSIONS:
        rel = rel.with_suffix(".png")
    return out_dir / rel


def output_plan(files: list[Path], in_dir: Path, out_dir: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs with one distinct output per input, decided before any work: when two
    inputs would land on the same file (``x.gif`` and ``x.png`` -> ``x.png``; names differing only
    in case), the input that keeps its own extension keeps the name, the others get their original
    extension in the name (``x.gif.png``), then a counter if that is taken too."""
    plain = [output_path(f, in_dir, out_dir) for f in files]
    order = sorted(range(len(files)), key=lambda i: (plain[i].suffix != files[i].suffix, str(files[i])))
    taken: set[str] = set()
    out: dict[int, Path] = {}
    for i in order:
        dst = plain[i]
        if str(dst).lower() in taken:
            dst = dst.with_name(f"{files[i].name}{dst.suffix}")
        k = 2
        while str(dst).lower() in taken:
            dst = plain[i].with_name(f"{plain[i].stem}_{k}{plain[i].suffix}")
            k += 1
        taken.add(str(dst).lower())
        out[i] = dst
    return [(files[i], out[i]) for i in range(len(files))]


# ---------------------------------------------------------------------------- work
_LIGHT_KEYS = ("light_azimuth", "light_elevation", "light_intensity", "light_ambient")


def _photo_edit() -> ModuleType:
    """:mod:`faceeditor.jobs.photo_edit`: the fitter and the renderers (OpenCV, mediapipe, the neural
    renderer) are imported when photos are edited, not when the command line builds its parser."""
    from faceeditor.jobs import photo_edit

    return photo_edit


def remove_orphan_temps(folder: Path) -> int:
    """Delete the temp files an interrupted run left in ``folder`` (the atomic writer's
    ``.NAME.<12 hex>.tmp``); returns how many. Finished outputs are never touched."""
    n = 0
    for p in folder.rglob(".*.tmp"):
        parts = p.name.split(".")
        if len(parts) >= 4 and len(parts[-2]) == 12 and all(c in "0123456789abcdef" for c in parts[-2]):
            p.unlink(missing_ok=True)
            n += 1
    return n


def process_one(task: tuple) -> tuple[str, str, str, float]:
    """Edit one photo: returns (src, "ok" | "failed", message, ms). Never raises for bad input."""
    src, dst, base_dict, light, face, quality = task
    t0 = time.perf_counter()
    try:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        args = argparse.Namespace(**light)
        _photo_edit().edit_file(Path(src), Path(dst), EditParams.from_dict(base_dict), args, face, quality)
        return src, "ok", "", (time.perf_counter() - t0) * 1000.0
    except FaceEditorError as exc:
        msg = str(exc)
        if msg.startswith(f"{src}: "):  # load errors name the file; the summary already does
            msg = msg[len(src) + 2 :]
        return src, "failed", msg, (time.perf_counter() - t0) * 1000.0
    except MemoryError:
        return src, "failed", "out of memory", (time.perf_counter() - t0) * 1000.0
    except Exception as exc:  # noqa: BLE001 - a bug or a fitter failure on one photo must not stop the batch
        return src, "failed", f"internal error: {type(exc).__name__}: {exc}", (time.perf_counter() - t0) * 1000.0


class Progress:
    """A one-line progress bar on a terminal; one line per item otherwise."""

    def __init__(self, total: int, stream=None, width: int = 30) -> None:
        self.total, self.done, self.ok, self.failed = total, 0, 0, 0
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.width = width
        self.t0 = time.perf_counter()

    def update(self, name: str, status: str, message: str = "") -> None:
        self.done += 1
        self.ok += status == "ok"
        self.failed += status != "ok"
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        fill = int(self.width * self.done / max(1, self.total))
        bar = "#" * fill + "." * (self.width - fill)
        line = (
            f"[{bar}] {self.done}/{self.total}  ok {self.ok}  failed {self.failed}  "
            f"elapsed {_hms(elapsed)}  eta {_hms(eta)}"
        )
        if self.tty:
            self.stream.write("\r" + line)
            if self.done == self.total:
                self.stream.write("\n")
        else:
            tail = f"  {name}" + (f"  FAILED: {message}" if status != "ok" else "")
            self.stream.write(line + tail + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.done < self.total:
            self.stream.write("\n")
            self.stream.flush()


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def run(args: argparse.Namespace) -> int:
    if not args.in_dir.is_dir():
        raise FaceEditorError(f"{args.in_dir}: not a folder")
    if args.jobs < 1:
        raise FaceEditorError("--jobs must be at least 1")
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise FaceEditorError("--quality must be in 1..100")
    face = _photo_edit().parse_face(args.face)
    base = base_edit(args)
    check_expression_names(base, load_face_model().expression_names)
    if base.is_zero() and not light_requested(args):
        raise FaceEditorError(
            "the edit changes nothing: give --preset-file, --preset, --expr, a pose or a light option"
        )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if orphans := remove_orphan_temps(args.out_dir):
        print(f"removed {orphans} temp file(s) left by an interrupted run")
    files = discover(args.in_dir, args.out_dir)
    if not files:
        raise FaceEditorError(f"{args.in_dir}: no image files found")
    plan = output_plan(files, args.in_dir, args.out_dir)
    done_before = [s for s, d in plan if d.exists()] if not args.force else []
    todo = [(s, d) for s, d in plan if args.force or not d.exists()]
    where = f"Dask scheduler {args.scheduler}" if getattr(args, "scheduler", None) else f"{args.jobs} job(s)"
    print(
        f"{len(files)} photo(s) in {args.in_dir}: {len(todo)} to do, {len(done_before)} already in {args.out_dir} "
        f"(skipped; --force redoes them); {where}"
    )
    light = {k: getattr(args, k, None) for k in _LIGHT_KEYS}
    tasks = [(str(s), str(d), base.to_dict(), light, face, args.quality) for s, d in todo]
    ledger = Ledger.open(args.out_dir / REPORT_NAME, [str(s) for s in done_before])
    results = _run_tasks(tasks, args, ledger)
    return _summary(args, ledger, results, len(tasks), len(done_before))


def _run_tasks(tasks: list[tuple], args: argparse.Namespace, ledger: Ledger) -> dict[str, tuple[str, str]]:
    """Run ``tasks`` locally or on the cluster, recording each result in the ledger as it comes."""
    results: dict[str, tuple[str, str]] = {}
    progress = Progress(len(tasks))
    if getattr(args, "scheduler", None):
        from faceeditor.commands._batch_dask import execute_on_cluster  # dask is imported only when asked for

        stream = execute_on_cluster(tasks, args.scheduler)
    else:
        stream = _execute(tasks, args.jobs)
    try:
        for src, status, message, _ms in stream:
            results[src] = (status, message)
            ledger.record(src, status, message)
            progress.update(os.path.relpath(src, args.in_dir), status, message)
        ledger.finished = True
    except KeyboardInterrupt:
        ledger.interrupted = True
    finally:
        progress.close()
        ledger.write()
    return results


def _summary(
    args: argparse.Namespace, ledger: Ledger, results: dict[str, tuple[str, str]], n_tasks: int, n_done_before: int
) -> int:
    """Print the summary; the exit status (0 all done, 1 some failed, 130 interrupted)."""
    failed = {s: m for s, (st, m) in results.items() if st != "ok"}
    ok = [s for s, (st, _) in results.items() if st == "ok"]
    print(
        f"summary: {len(ok)} edited, {n_done_before} skipped (already done), {len(failed)} failed"
        + (f", {n_tasks - len(results)} not started (interrupted)" if ledger.interrupted else "")
    )
    if failed:
        print("failed (skipped):")
        for src, msg in sorted(failed.items()):
            print(f"  {os.path.relpath(src, args.in_dir)}: {msg}")
    print(f"report: {ledger.path}")
    if ledger.interrupted:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    return 1 if failed else 0


def _execute(tasks: list[tuple], jobs: int) -> Iterator[tuple[str, str, str, float]]:
    """Yield results of :func:`process_one` as they complete (in order with one job)."""
    if jobs == 1 or len(tasks) <= 1:
        for t in tasks:
            yield process_one(t)
        return
    threads = max(1, torch.get_num_threads() // jobs)
    ctx = multiprocessing.get_context("spawn")  # torch/OpenMP state does not survive fork safely
    pool = ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=init_worker, initargs=(threads, os.getpid())
    )
    try:
        futures = [pool.submit(process_one, t) for t in tasks]
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Ledger:
    """``batch_report.json``, cumulative over runs: inputs edited (by any run; an output already
    there counts as done), inputs that failed last time they were tried, and whether this run
    finished. Rewritten atomically after every photo, so a killed run's work stays listed."""

    path: Path
    ok: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    interrupted: bool = False
    finished: bool = False

    @classmethod
    def open(cls, path: Path, done_before: list[str]) -> Ledger:
        """The report of earlier runs (an unreadable one is started afresh) with ``done_before`` as ok."""
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
        old = old if isinstance(old, dict) else {}
        old_ok = old["ok"] if isinstance(old.get("ok"), list) else []
        old_failed = old["failed"] if isinstance(old.get("failed"), dict) else {}
        ok = {s for s in old_ok if isinstance(s, str)} | set(done_before)
        failed = {k: str(v) for k, v in old_failed.items() if k not in ok}
        ledger = cls(path, ok, failed, sorted(done_before))
        ledger.write()
        return ledger

    def record(self, src: str, status: str, message: str) -> None:
        if status == "ok":
            self.ok.add(src)
            self.failed.pop(src, None)
        else:
            self.failed[src] = message
            self.ok.discard(src)
        self.write()

    def write(self) -> None:
        doc = {
            "ok": sorted(self.ok),
            "failed": dict(sorted(self.failed.items())),
            "skipped_existing_last_run": self.skipped,
            "interrupted": self.interrupted,
            "finished": self.finished,
            "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        atomic_write_text(self.path, json.dumps(doc, indent=2) + "\n")
