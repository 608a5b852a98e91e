"""Build ``resources/mean_texture.png``: the confidence-weighted mean albedo atlas of many fitted faces.

    python -m trainers.build_mean_texture [--data ../shared/data] [--n 300] [--tile 256] [--seed 0]

Fits ``n`` seeded-random LFW/UTKFace photos (landmark + photometric fit), and averages their
albedo atlases texel by texel, weighting each by its visibility confidence; texels no photo saw
keep the base material. The result is a smooth, identity-free face texture: the default albedo
for renders (synthetic known-answer scenes, regions a photo does not show) — never a person.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from faceeditor.core.paths import resources_dir, shared_data_dir  # noqa: E402
from faceeditor.face.detect import NoFaceError  # noqa: E402
from faceeditor.fit.pipeline import fit_photo  # noqa: E402
from faceeditor.io import ImageLoadError, load_rgb, save_image  # noqa: E402
from faceeditor.morphable import load_face_model  # noqa: E402
from faceeditor.render.atlas import base_atlas  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=shared_data_dir())
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=resources_dir() / "mean_texture.png")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    files = sorted((args.data / "lfw").rglob("*.jpg")) + sorted((args.data / "utkface").glob("*.jpg"))
    rng = np.random.default_rng(args.seed)
    pick = [files[i] for i in sorted(rng.choice(len(files), size=min(args.n, len(files)), replace=False))]
    model = load_face_model()
    acc = np.zeros((2 * args.tile, 4 * args.tile, 3))
    wsum = np.zeros((2 * args.tile, 4 * args.tile))
    used, t0 = 0, time.perf_counter()
    for i, path in enumerate(pick):
        try:
            st = fit_photo(load_rgb(path), texture_size=args.tile, model=model)[0]
        except (ImageLoadError, NoFaceError):
            continue
        w = st.texture_confidence.astype(np.float64) / 255.0
        acc += st.texture.astype(np.float64) / 255.0 * w[..., None]
        wsum += w
        used += 1
        if (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(pick)} photos, {time.perf_counter() - t0:.0f} s", flush=True)
    base = base_atlas(args.tile, model=model)
    mean = np.where(wsum[..., None] > 0.5, acc / np.maximum(wsum[..., None], 1e-9), base)
    blend = np.clip(wsum / 3.0, 0, 1)[..., None]  # fade to the base material where few photos saw a texel
    mean = blend * mean + (1 - blend) * base
    save_image(args.out, (np.clip(mean, 0, 1) * 255 + 0.5).astype(np.uint8))
    manifest = {"artifact": args.out.name, "builder": "trainers/build_mean_texture.py",
                "command": "python -m trainers.build_mean_texture " + shlex.join(argv or sys.argv[1:]),
                "data": {"photos": len(pick), "fitted": used, "sources": ["lfw", "utkface"], "seed": args.seed,
                         "license": "average of research photos (LFW research use, UTKFace non-commercial research); "
                                    "no individual is recognisable"},
                "tile": args.tile, "seconds": round(time.perf_counter() - t0, 1)}
    args.out.with_name("mean_texture.manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
