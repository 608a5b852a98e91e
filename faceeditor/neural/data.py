"""The aligned-face dataset (built by ``trainers/prepare_dataset.py``): format, split and reader.

Layout (outside git; default ``<repo>/cache/dataset``, or ``$FACEEDITOR_DATASET``)::

    index.json              format version, template, sizes, split seed, shard list, counts
    shard_00000.npz ...     up to ``shard_size`` samples each (uncompressed npz of arrays)
    shard_00000.failed.json the photos of that shard that could not be used, with reasons

Per sample (``n`` samples in a shard; ``S`` = 256 or 128; pixel values in that crop):

* blobs, stored as one uint8 array ``NAME`` plus offsets ``NAME_off`` (n+1,):
  ``image{S}`` JPEG (q 92) of the aligned crop (:mod:`faceeditor.neural.align`),
  ``normal{S}`` PNG of the camera-frame normal map (uint8, [-1,1] -> [0,255]),
  ``region{S}`` PNG of the region map (:mod:`faceeditor.neural.labels`: 1 skin, 2 eyes, 3 mouth ...).
* ``key`` (photo path relative to the data folder), ``source`` (``lfw``/``utkface``), ``person``
  (LFW name; ``utk:<file>`` for UTKFace, every photo its own person).
* geometry in the 256 crop camera: ``rotation`` (n,3,3), ``translation`` (n,3) cm, ``focal`` (n,)
  px, ``principal`` (n,2) px (halve focal and principal for 128), ``identity`` (n,100),
  ``expression`` (n,53), ``euler`` (n,3) yaw/pitch/roll in degrees of the crop camera;
* lighting: ``sh`` (n,9,3) SH irradiance (camera frame, :mod:`faceeditor.render.sh`) and
  ``albedo`` (n,3), a robust linear estimate on the skin (:func:`faceeditor.fit.photometric.estimate_sh`);
* landmarks in 256-crop pixels: ``lm68`` (n,68,2) detector (calibrated iBUG-68), ``lm478``
  (n,478,3) mediapipe (x, y, depth in px), ``fit68`` (n,68,2) the fitted model's 68 points;
* ``descriptor`` (n,128) dlib's face descriptor on the original photo (the teacher of R) and
  ``dlib_box`` (n,) 1 = dlib's HOG box, 2 = HOG with upsampling, 3 = a box derived from landmarks;
* bookkeeping: ``align`` (n,2,3) photo -> 256 crop matrix, ``image_size`` (n,2), ``valid`` (n,)
  fraction of the crop inside the photo, ``fit_rms`` (n,) landmark residual / eye distance,
  ``det_score`` (n,), ``meta`` (n,3) UTKFace age, gender, race (-1 for LFW).

Split: by person, seeded (:func:`split_of`); UTKFace is all train. The reader serves the
networks here and the GAR renderer: image, normal map, mask, SH shading, params, landmarks,
identity label.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from faceeditor.core.paths import REPO_DIR
from faceeditor.neural.align import invert_matrix, transform_points
from faceeditor.neural.labels import decode_normals, face_mask
from faceeditor.render.sh import sh_shading

FORMAT_VERSION = 1
SIZES = (256, 128)
BLOBS = ("image", "normal", "region")
ARRAYS = ("rotation", "translation", "focal", "principal", "identity", "expression", "euler", "sh", "albedo",
          "lm68", "lm478", "fit68", "descriptor", "dlib_box", "align", "image_size", "valid", "fit_rms",
          "det_score", "meta")
STRINGS = ("key", "source", "person")
SCALED = ("focal", "principal", "lm68", "lm478", "fit68")  # pixel quantities: x (S / 256)


def default_root() -> Path:
    env = os.environ.get("FACEEDITOR_DATASET")
    if env:
        return Path(env)

    return REPO_DIR / "cache" / "dataset"


def split_of(person: str, source: str, seed: int = 0, val_fraction: float = 0.1) -> str:
    """``train`` or ``val`` for a person: a seeded hash, so the split does not depend on which
    photos were processed, or in what order. UTKFace (no identities) is always train."""
    if source != "lfw":
        return "train"
    h = int.from_bytes(hashlib.sha1(f"{seed}:{person}".encode()).digest()[:8], "big") / 2.0 ** 64
    return "val" if h < val_fraction else "train"


# ----------------------------------------------------------------------------- encoding
def pack_blobs(items: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    off = np.zeros(len(items) + 1, np.int64)
    off[1:] = np.cumsum([len(b) for b in items])
    return np.frombuffer(b"".join(items), np.uint8).copy(), off


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def encode_png(a: np.ndarray) -> bytes:
    img = a[:, :, ::-1] if a.ndim == 3 else a
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    assert ok
    return buf.tobytes()


def decode(blob: np.ndarray | bytes, color: bool) -> np.ndarray:
    """JPEG/PNG bytes -> uint8 (H,W,3) RGB (``color``) or (H,W)."""
    buf = np.frombuffer(blob, np.uint8) if isinstance(blob, (bytes, bytearray)) else blob
    if color:
        return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def write_shard(path: Path, samples: list[dict]) -> None:
    """Write samples (dicts with every STRINGS/ARRAYS key and ``{blob}{S}`` bytes) atomically."""
    out: dict[str, np.ndarray] = {}
    for k in STRINGS:
        out[k] = np.array([s[k] for s in samples], dtype=str)
    for k in ARRAYS:
        out[k] = np.stack([np.asarray(s[k]) for s in samples])
    for b in BLOBS:
        for S in SIZES:
            out[f"{b}{S}"], out[f"{b}{S}_off"] = pack_blobs([s[f"{b}{S}"] for s in samples])
    tmp = Path(path).with_name(Path(path).name + ".tmp.npz")
    np.savez(tmp, **out)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- reader
def read_index(root: Path | None = None) -> dict:
    root = Path(root) if root else default_root()
    p = root / "index.json"
    if not p.is_file():
        raise FileNotFoundError(f"no dataset at {root} (build it: python -m trainers.prepare_dataset)")
    return json.loads(p.read_text())


@dataclass
class Table:
    """All samples of a split: per-sample arrays stacked, blobs of one crop size kept encoded."""

    arrays: dict[str, np.ndarray]
    blobs: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (bytes, offsets)
    size: int

    def __len__(self) -> int:
        return len(self.arrays["key"])

    def blob(self, name: str, i: int) -> np.ndarray:
        data, off = self.blobs[name]
        return data[off[i]:off[i + 1]]


def load_table(root: Path | None = None, split: str = "train", size: int = 128, blobs: tuple[str, ...] = BLOBS,
               limit: int | None = None) -> Table:
    """Read every shard of the dataset and keep the samples of ``split`` (``train``, ``val`` or ``all``).

    Pixel quantities (focal, principal, landmarks) are rescaled to the ``size`` crop. Adds
    ``split`` and ``person_id`` (int per distinct person over the whole dataset) to the arrays.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}")
    root = Path(root) if root else default_root()
    index = read_index(root)
    seed, frac = index["split_seed"], index["val_fraction"]
    parts: dict[str, list] = {}
    bparts: dict[str, list] = {b: [] for b in blobs}
    n = 0
    for sh in index["shards"]:
        with np.load(root / sh["file"]) as z:
            keep = np.array([split == "all" or split_of(p, s, seed, frac) == split
                             for p, s in zip(z["person"], z["source"])], bool)
            if not keep.any():
                continue
            for k in STRINGS + ARRAYS:
                parts.setdefault(k, []).append(z[k][keep])
            for b in blobs:
                data, off = z[f"{b}{size}"], z[f"{b}{size}_off"]
                idx = np.nonzero(keep)[0]
                bparts[b].append([data[off[i]:off[i + 1]].tobytes() for i in idx])
            n += int(keep.sum())
        if limit and n >= limit:
            break
    if not parts:
        raise ValueError(f"no samples in split {split!r} at {root}")
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    packed = {b: pack_blobs([x for chunk in bparts[b] for x in chunk]) for b in blobs}
    if limit:
        arrays = {k: v[:limit] for k, v in arrays.items()}
    f = size / 256.0
    for k in SCALED:
        arrays[k] = (arrays[k] * f).astype(np.float32)
    arrays["split"] = np.array([split_of(p, s, seed, frac) for p, s in zip(arrays["person"], arrays["source"])])
    persons = sorted(set(index.get("persons", [])) | set(arrays["person"].tolist()))
    pid = {p: i for i, p in enumerate(persons)}
    arrays["person_id"] = np.array([pid[p] for p in arrays["person"]], np.int64)
    return Table(arrays, packed, size)


def valid_mask(align256: np.ndarray, image_size: np.ndarray, size: int) -> np.ndarray:
    """(S,S) bool: pixels of a ``size`` crop whose centre maps inside the photo (``align256`` is the
    photo -> 256-crop matrix of the sample, ``image_size`` (w, h))."""
    g = (np.arange(size) + 0.5) * (256.0 / size)
    xs, ys = np.meshgrid(g, g)
    src = transform_points(np.stack([xs.ravel(), ys.ravel()], 1), invert_matrix(align256))
    w, h = float(image_size[0]), float(image_size[1])
    ok = (src[:, 0] >= 0) & (src[:, 0] <= w) & (src[:, 1] >= 0) & (src[:, 1] <= h)
    return ok.reshape(size, size)


def decode_all(table: Table, name: str, threads: int = 1) -> np.ndarray:
    """Decode one blob field for every sample: (N,S,S,3) or (N,S,S) uint8."""
    color = name in ("image", "normal")
    n = len(table)
    S = table.size
    out = np.empty((n, S, S, 3) if color else (n, S, S), np.uint8)
    for i in range(n):
        out[i] = decode(table.blob(name, i), color)
    return out


class FaceDataset(torch.utils.data.Dataset):
    """Per-sample access for training loops (decodes on the fly).

    Items: ``image`` (3,S,S) float [0,1]; ``normal`` (3,S,S) unit camera-frame normals (0
    outside the head); ``region`` (S,S) long; ``mask`` (1,S,S) float face mask (skin, eyes,
    mouth); ``shading`` (3,S,S) SH irradiance of the normal map (0 outside the head);
    ``sh`` (9,3); geometry (``rotation``, ``translation``, ``focal``, ``principal`` in this crop's
    pixels, ``identity``, ``expression``, ``euler``); ``lm68``, ``lm478``, ``fit68``;
    ``descriptor`` (128,); ``person_id``; ``index``; ``valid`` (1,S,S) 1 where the crop shows the
    photo, 0 on the reflected border (UTKFace's tight photos leave ~40 % of the crop outside).
    """

    def __init__(self, root: Path | None = None, split: str = "train", size: int = 128,
                 table: Table | None = None) -> None:
        self.table = table or load_table(root, split, size)
        self.size = self.table.size

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict:
        t = self.table
        a = t.arrays
        img = torch.from_numpy(decode(t.blob("image", i), True)).permute(2, 0, 1).float() / 255.0
        nrm = decode_normals(torch.from_numpy(decode(t.blob("normal", i), True)).permute(2, 0, 1))
        region = torch.from_numpy(decode(t.blob("region", i), False).astype(np.int64))
        head = region > 0
        nrm = torch.nn.functional.normalize(nrm, dim=0) * head
        sh = torch.from_numpy(a["sh"][i]).float()
        shading = sh_shading(nrm[None], sh[None])[0] * head
        item = {"image": img, "normal": nrm, "region": region, "mask": face_mask(region)[None].float(),
                "shading": shading, "sh": sh, "person_id": int(a["person_id"][i]), "index": i,
                "valid": torch.from_numpy(valid_mask(a["align"][i], a["image_size"][i], self.size))[None].float()}
        for k in ("rotation", "translation", "focal", "principal", "identity", "expression", "euler", "lm68",
                  "lm478", "fit68", "descriptor", "albedo"):
            item[k] = torch.from_numpy(np.asarray(a[k][i], np.float32))
        return item


def decoded(table: Table, name: str, split: str, root: Path | None = None) -> np.ndarray:
    """:func:`decode_all` cached as ``<root>/decoded/<split><S>_<name>.npy`` (memory-mapped), keyed
    on the samples' keys so a rebuilt or grown dataset is decoded again."""
    root = Path(root) if root else default_root()
    d = root / "decoded"
    d.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha1("\n".join(table.arrays["key"].tolist()).encode()).hexdigest()[:16]
    path = d / f"{split}{table.size}_{name}_{tag}.npy"
    if not path.is_file():
        for old in d.glob(f"{split}{table.size}_{name}_*.npy"):
            old.unlink()
        arr = decode_all(table, name)
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, path)
    return np.load(path, mmap_mode="r")
