"""Build the aligned-face dataset for the auxiliary networks (N, FR, R) and the GAR renderer.

    python -m trainers.prepare_dataset [--data ../shared/data] [--out cache/dataset] [--workers 2]
                                       [--limit N] [--shard-size 512] [--seed 0] [--val-fraction 0.1]

For every photo of ``lfw/`` and ``utkface/`` (seeded order, so a ``--limit`` run is a random sample):

1. detect faces (mediapipe, :func:`faceeditor.face.detect.detect_faces`) and keep the face nearest
   the photo centre among the large ones (LFW's labelled person is the central face);
2. landmark-fit the ICT head (:class:`faceeditor.fit.landmarks.LandmarkFitter`, GAR eq. 12);
3. align to the fixed template by a similarity transform (:mod:`faceeditor.neural.align`, GAR §4.2)
   and crop at 256 px (bilinear) and 128 px (2x2 area of the 256 crop), with the crop camera;
4. render the normal and region maps with the crop camera at both sizes
   (:func:`faceeditor.neural.labels.render_labels`) and estimate SH light on the skin
   (:func:`faceeditor.fit.sh_light.estimate_sh`, robust linear least squares);
5. dlib's 128-D descriptor on the original photo (dlib's 5-point alignment and network, the network
   run in torch: :class:`trainers.dataset_sample.DlibDescriptor`) in dlib's own HOG box when it
   finds the face, else a box derived from the landmarks.

One photo: :mod:`trainers.dataset_sample`. Photos without a usable face or with a failed fit are
skipped and logged (``shard_*.failed.json``).
Output: shards of ``--shard-size`` samples (format: :mod:`faceeditor.neural.data`) and ``index.json``.
Resumable: finished shards (same photo range) are kept. Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from faceeditor.core.paths import resources_dir, shared_data_dir  # noqa: E402
from faceeditor.fit.landmarks import LandmarkFitConfig  # noqa: E402
from faceeditor.neural.align import TEMPLATE  # noqa: E402
from faceeditor.neural.data import FORMAT_VERSION, SIZES, default_root, split_of, write_shard  # noqa: E402
from trainers.common import ProgressBar, command_line, fmt_time, sha256_file  # noqa: E402
from trainers.dataset_sample import init_worker, process  # noqa: E402

Shard = tuple[int, int, int]  # (number, first photo, end photo) of the seeded photo order


@dataclasses.dataclass
class RunStats:
    """This run's work: photos processed and worker seconds spent on them."""

    processed: int = 0
    busy: float = 0.0
    ok: int = 0
    failed: int = 0


@dataclasses.dataclass
class DatasetSummary:
    """The finished shards of the plan: sample counts, failures by reason, split and source counts."""

    shards: list[dict]
    reasons: dict[str, int]
    counts: dict[str, int]
    persons: set[str]
    n_ok: int = 0
    n_fail: int = 0


def list_photos(data: Path) -> list[tuple[str, str, str]]:
    items = []
    for source, pattern in (("lfw", "lfw/*/*.jpg"), ("utkface", "utkface/*.jpg")):
        for p in sorted(data.glob(pattern)):
            items.append((str(p), str(p.relative_to(data)), source))
    return items


def _provenance() -> dict:
    """What the labels depend on: the git commit, the fitter's settings, the model and landmark map."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    res = resources_dir()
    return {"git_commit": commit, "fit_config": dataclasses.asdict(LandmarkFitConfig()),
            "face_model_sha256": sha256_file(res / "face_model.npz"),
            "landmark_map_sha256": sha256_file(res / "landmark_map.npz") if (res / "landmark_map.npz").is_file()
            else None, "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", type=Path, default=shared_data_dir(), help="research data folder (lfw/, utkface/)")
    ap.add_argument("--out", type=Path, default=default_root(), help="dataset folder (outside git)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (1 torch thread each)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos of the seeded order")
    ap.add_argument("--shard-size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0, help="photo order and train/val split")
    ap.add_argument("--val-fraction", type=float, default=0.1, help="fraction of LFW persons in val")
    return ap.parse_args(argv)


# ----------------------------------------------------------------------------- shards
def shard_name(k: int) -> str:
    return f"shard_{k:05d}.npz"


def failed_name(k: int) -> str:
    return f"shard_{k:05d}.failed.json"


def seeded_photos(data: Path, seed: int, limit: int | None) -> list[tuple[str, str, str]]:
    """Every photo in a seeded random order (the first ``limit`` of it)."""
    items = list_photos(data)
    order = np.random.default_rng(seed).permutation(len(items))
    items = [items[i] for i in order]
    return items[:limit] if limit else items


def plan_shards(n_items: int, shard_size: int) -> list[Shard]:
    return [(k, k * shard_size, min(n_items, (k + 1) * shard_size))
            for k in range((n_items + shard_size - 1) // shard_size)]


def finished_shard(out: Path, shard: Shard, seed: int) -> dict | None:
    """The failure log of a shard written for the same photo range and seed, None when not done."""
    k, a, b = shard
    p = out / shard_name(k)
    fp = out / failed_name(k)
    if not p.is_file() or not fp.is_file():
        return None
    info = json.loads(fp.read_text())
    if info.get("range") != [a, b] or info.get("seed") != seed:
        return None
    return info


def write_shard_files(out: Path, shard: Shard, seed: int, samples: list[dict], failed: list[dict]) -> None:
    """The shard's samples and its failure log (which marks the range as done)."""
    k, a, b = shard
    if samples:
        write_shard(out / shard_name(k), samples)
    else:  # an empty shard still marks its range as done
        np.savez(out / shard_name(k), key=np.array([], str))
    (out / failed_name(k)).write_text(json.dumps(
        {"range": [a, b], "seed": seed, "n": len(samples), "failed": failed}, indent=1) + "\n")


def process_shards(args: argparse.Namespace, out: Path, items: list, todo: list[Shard]) -> RunStats:
    """Label the photos of the shards to do (a pool of ``--workers`` processes, or in this one)."""
    stats = RunStats(processed=sum(b - a for _, a, b in todo))
    bar = ProgressBar(stats.processed, "prepare")
    ctx = mp.get_context("spawn")
    pool = ctx.Pool(args.workers, initializer=init_worker, initargs=(1,)) if args.workers > 1 else None
    if pool is None:
        init_worker(1)
    try:
        for shard in todo:
            chunk = items[shard[1]:shard[2]]
            results = pool.imap(process, chunk, chunksize=2) if pool else map(process, chunk)
            samples, failed = [], []
            for status, payload, dt in results:
                stats.busy += dt
                (samples if status == "ok" else failed).append(payload)
                bar.update(1, extra=f"ok {stats.ok + len(samples)} failed {stats.failed + len(failed)} "
                                    f"{1000 * stats.busy / max(1, bar.done):.0f} ms/photo/worker")
            write_shard_files(out, shard, args.seed, samples, failed)
            stats.ok += len(samples)
            stats.failed += len(failed)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return stats


def summarize_shards(out: Path, plan: list[Shard], seed: int, val_fraction: float) -> DatasetSummary:
    """Index entries, counts and failure reasons over every finished shard of the plan."""
    summary = DatasetSummary(shards=[], reasons={}, counts={"lfw": 0, "utkface": 0, "train": 0, "val": 0},
                             persons=set())
    for shard in plan:
        info = finished_shard(out, shard, seed)
        if info is None:
            continue
        summary.n_fail += len(info["failed"])
        for f in info["failed"]:
            r = f["reason"].split(":")[0]
            summary.reasons[r] = summary.reasons.get(r, 0) + 1
        if info["n"] == 0:
            continue
        k, a, b = shard
        with np.load(out / shard_name(k)) as z:
            for p, s in zip(z["person"], z["source"]):
                summary.counts[str(s)] += 1
                summary.counts[split_of(str(p), str(s), seed, val_fraction)] += 1
                summary.persons.add(str(p))
        summary.n_ok += info["n"]
        summary.shards.append({"file": shard_name(k), "n": info["n"], "range": [a, b]})
    return summary


def write_index(args: argparse.Namespace, out: Path, n_photos: int, plan: list[Shard], summary: DatasetSummary,
                provenance: dict, stats: RunStats, elapsed: float) -> None:
    """``index.json``: format, template, split, counts, shards, provenance and the runs so far."""
    lm_map = resources_dir() / "landmark_map.npz"
    prev = {}
    if (out / "index.json").is_file():
        prev = json.loads((out / "index.json").read_text())
    n_todo = stats.processed
    index = {
        "format": FORMAT_VERSION, "sizes": list(SIZES), "template": TEMPLATE.tolist(),
        "data": str(args.data), "photos": n_photos, "planned_shards": len(plan),
        "complete": len(summary.shards) == len(plan), "split_seed": args.seed, "val_fraction": args.val_fraction,
        "samples": summary.n_ok, "failed": summary.n_fail, "failed_by_reason": summary.reasons,
        "counts": summary.counts, "persons": sorted(summary.persons), "shards": summary.shards,
        "command": command_line(),
        "landmark_map_sha256": sha256_file(lm_map) if lm_map.is_file() else None, "provenance": provenance,
        "runs": prev.get("runs", []) + [{"seconds": round(elapsed, 1), "processed": n_todo, "workers": args.workers,
                                         "ms_per_photo_per_worker": round(1000 * stats.busy / max(1, n_todo), 1)}],
    }
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.data is None or not (Path(args.data) / "lfw").is_dir():
        print(f"no research data at {args.data}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    items = seeded_photos(Path(args.data), args.seed, args.limit)
    plan = plan_shards(len(items), args.shard_size)
    todo = [shard for shard in plan if finished_shard(out, shard, args.seed) is None]
    provenance = _provenance()
    print(f"{len(items)} photos in {len(plan)} shards; {len(plan) - len(todo)} done, {len(todo)} to do; "
          f"{args.workers} worker(s) x 1 torch thread -> {out}", flush=True)
    t_start = time.time()
    stats = process_shards(args, out, items, todo)
    elapsed = time.time() - t_start
    summary = summarize_shards(out, plan, args.seed, args.val_fraction)
    write_index(args, out, len(items), plan, summary, provenance, stats, elapsed)
    size = sum(p.stat().st_size for p in out.glob("shard_*.npz"))
    print(f"usable {summary.n_ok} of {summary.n_ok + summary.n_fail} photos ({summary.counts}); failed by reason "
          f"{summary.reasons}; this run {fmt_time(elapsed)} for {stats.processed} photos; dataset "
          f"{size / 1e6:.1f} MB in {len(summary.shards)} shards", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
