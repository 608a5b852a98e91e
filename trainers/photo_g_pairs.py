"""Same-person reenactment pairs for G_p (issue 15: "A's texture rendered at B's parameters -> B").

    python -m trainers.photo_g_pairs --minutes 35        # resumable: run again to add persons

For LFW *training* persons (never the validation persons of ``bench reenact``), photos A and B of
one person are fitted as the benchmark fits them (:class:`faceeditor.bench._realism.Judges`), the
product's mesh compositor edits A to B's pose, expression and light (exactly the edit ``bench
reenact`` makes, :func:`faceeditor.bench._reenact.transfer_edit`), and G_p's input rep(p) is built
from that edit as at inference (:meth:`PhotoNeuralRenderer.crop_rep`). The target is the real B,
similarity-aligned onto the edit by both images' 68 landmarks and resampled into the same crop;
the loss weight is B's person mask there, inside the photo and the paste-back region. The input
carries the artifacts of real edits (seams, fills, relighting) and the target what the person
really looked like at that pose and light: what the round trips cannot teach.

Each chunk ``<out>/pairs_NNNN.npz`` holds ``rep`` (N,18,S,S) fp16, ``target`` (N,S,S,3) uint8,
``weight`` (N,S,S) uint8, ``dyaw`` (N,) and the persons it covers.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from faceeditor.bench import _judges as J
from faceeditor.bench import _realism as R
from faceeditor.bench._reenact import Pair, person_pairs, transfer_edit
from faceeditor.core.paths import shared_data_dir
from faceeditor.neural.align import warp_image
from faceeditor.neural.data import split_of
from faceeditor.neural.photo_renderer import PhotoNeuralRenderer
from faceeditor.neural.photo_rep import CONF, REGIONS
from trainers.common import REPO_DIR, parse_config, setup_cpu


@dataclasses.dataclass
class Config:
    out: Path = REPO_DIR / "cache" / "photo_g_pairs"
    lfw: Path | None = None  # default ../shared/data/lfw
    photos: int = 5  # photos per person (all their pairs are used, one direction each)
    chunk: int = 200
    minutes: float = 35.0
    threads: int = 2
    seed: int = 0


@dataclasses.dataclass
class PairSet:
    """The pairs of every finished chunk under a folder, kept in memory (rep as fp16)."""

    rep: torch.Tensor  # (N,18,S,S) float16
    target: torch.Tensor  # (N,S,S,3) uint8
    weight: torch.Tensor  # (N,S,S) uint8

    def __len__(self) -> int:
        return len(self.rep)

    @classmethod
    def load(cls, folder: Path) -> PairSet:
        files = sorted(p for p in Path(folder).glob("pairs_*.npz") if ".tmp" not in p.name)
        if not files:
            raise FileNotFoundError(f"no pairs under {folder} (python -m trainers.photo_g_pairs)")
        parts: dict[str, list[np.ndarray]] = {"rep": [], "target": [], "weight": []}
        for f in files:
            with np.load(f) as z:
                for k, got in parts.items():
                    got.append(z[k])
        return cls(**{k: torch.from_numpy(np.concatenate(v)) for k, v in parts.items()})

    def draw(self, n: int, gen: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
        """A batch in the round trips' keys (``rep``, ``target``, ``valid``, ``hole``) with
        ``alpha_w`` = 0: the alpha is taught on round trips only (B differs from A's edit everywhere a
        little, by light and hair, which must not open the alpha over the whole head)."""
        idx = torch.randint(len(self), (n,), generator=gen)
        rep = self.rep[idx].float().to(device)
        head = (rep[:, REGIONS].sum(1, keepdim=True) > 0.5).float()
        return {
            "rep": rep,
            "target": self.target[idx].permute(0, 3, 1, 2).float().div(255.0).to(device),
            "valid": self.weight[idx][:, None].float().div(255.0).to(device),
            "hole": head * (1.0 - rep[:, CONF]),
            "alpha_w": torch.zeros(n, 1, 1, 1, device=device),
        }


def training_persons(lfw: Path) -> dict[str, list[Path]]:
    """``{person: photos}`` of LFW persons in the training split with two photos or more."""
    out = {}
    for d in sorted(p for p in lfw.iterdir() if p.is_dir()):
        files = sorted(d.glob("*.jpg"))
        if len(files) >= 2 and split_of(d.name, "lfw") == "train":
            out[d.name] = files
    return out


def affine3(M: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(M, np.float64), [0.0, 0.0, 1.0]])


def aligned_target(
    rgb: np.ndarray, lm68: np.ndarray, person: np.ndarray, to_lm68: np.ndarray, crop: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Photo B (``rgb``, its ``lm68`` and person mask) similarity-aligned onto landmarks ``to_lm68``
    of another image and resampled through that image's crop matrix ``crop`` (2,3): the target crop
    (size,size,3) uint8 and B's person mask there times "inside B" (size,size) in [0,1] (None when the
    landmarks cannot be aligned)."""
    S, _ = cv2.estimateAffinePartial2D(lm68.astype(np.float32), to_lm68.astype(np.float32))
    if S is None:
        return None
    M = (affine3(crop) @ affine3(S))[:2]
    ones = np.full((*rgb.shape[:2], 3), 255, np.uint8)
    inside = warp_image(ones, M, size, border="constant")[..., 0] / 255.0
    mask8 = (np.clip(person, 0, 1) * 255).astype(np.uint8)
    inperson = warp_image(np.dstack([mask8] * 3), M, size, border="constant")[..., 0] / 255.0
    return warp_image(rgb, M, size), inperson * inside


def pair_sample(pair: Pair, judges: R.Judges, renderer: PhotoNeuralRenderer) -> dict[str, np.ndarray] | None:
    """rep(p) of A edited to B, B aligned into the same crop and the loss weight (None when no face
    is found on the edit or the landmarks cannot be aligned)."""
    edit = transfer_edit(pair, "mesh", judges.model.expression_names)
    edited = renderer.mesh.render(edit, scale=1.0)
    face = J.nearest_face(judges.detector, edited, pair.a.face.box)
    if face is None:
        return None
    got = renderer.crop_rep(edit, edited, 1.0)
    size = got["rep"].shape[-1]
    aligned = aligned_target(pair.b.rgb, pair.b.lm68, pair.b.person_mask, face.landmarks68,
                             renderer.crop_matrix(1.0), size)
    if aligned is None:
        return None
    weight = aligned[1] * got["region"][0, 0].numpy()
    return {
        "rep": got["rep"][0].numpy().astype(np.float16),
        "target": aligned[0],
        "weight": np.clip(weight * 255 + 0.5, 0, 255).astype(np.uint8),
        "dyaw": np.float32(pair.dyaw),
    }


def done_persons(out: Path) -> set[str]:
    done = set()
    for f in sorted(p for p in out.glob("pairs_*.npz") if ".tmp" not in p.name):
        with np.load(f) as z:
            done.update(str(p) for p in z["persons"])
    return done


def write_chunk(out: Path, samples: list[dict[str, np.ndarray]], persons: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    k = len(list(out.glob("pairs_*.npz")))
    arrays = {key: np.stack([s[key] for s in samples]) for key in samples[0]}
    tmp = out / f"pairs_{k:04d}.tmp.npz"
    np.savez(tmp, persons=np.array(persons), **arrays)
    tmp.rename(out / f"pairs_{k:04d}.npz")


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(Config, argv)
    setup_cpu(cfg.threads)
    lfw = cfg.lfw or (shared_data_dir() or Path("../shared/data")) / "lfw"
    cfg.out.mkdir(parents=True, exist_ok=True)
    persons = training_persons(lfw)
    done = done_persons(cfg.out)
    rng = np.random.default_rng(cfg.seed)
    names = [sorted(persons)[i] for i in rng.permutation(len(persons))]
    # persons with more photos first: fits are the cost, and k photos give k(k-1)/2 pairs
    order = sorted(names, key=lambda n: -min(len(persons[n]), cfg.photos))
    judges = R.Judges()
    G = judges.renderers.photo_g()
    t_end = time.monotonic() + cfg.minutes * 60.0
    samples: list[dict[str, np.ndarray]] = []
    covered: list[str] = []
    total = 0
    try:
        for person in order:
            if time.monotonic() > t_end:
                break
            if person in done:
                continue
            prng = np.random.default_rng([cfg.seed, len(person), sum(map(ord, person))])
            for pair in person_pairs(persons[person], judges, prng, cfg.photos):
                r = PhotoNeuralRenderer(pair.a.rgb, pair.a.state, judges.model, G=G)
                s = pair_sample(pair, judges, r)
                if s is not None:
                    samples.append(s)
            covered.append(person)
            if len(samples) >= cfg.chunk:
                write_chunk(cfg.out, samples, covered)
                total += len(samples)
                print(f"{total} pairs, {len(covered)} persons in the last chunk", flush=True)
                samples, covered = [], []
        if samples:
            write_chunk(cfg.out, samples, covered)
            total += len(samples)
    finally:
        judges.close()
    print(f"wrote {total} pairs under {cfg.out}")


if __name__ == "__main__":
    main()
