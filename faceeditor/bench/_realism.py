"""Shared machinery of the realism benchmarks (``bench reenact``, ``bench quality``).

A :class:`Judges` object owns the independent judges (mediapipe detector and selfie segmentation,
dlib identity) and the face model; :meth:`Judges.fit` fits and measures one photo into a
:class:`FittedPhoto`. Renderers are made per photo by its :class:`~faceeditor.jobs.renderers.RendererFactory`.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from faceeditor.bench._util import DEFAULT_RENDERER, PHOTO_EXTS, list_photos
from faceeditor.core.errors import FaceEditorError
from faceeditor.core.paths import shared_data_dir
from faceeditor.core.pose import matrix_to_euler
from faceeditor.core.state import FaceState
from faceeditor.edit.fill import FillRequest, MeshFill
from faceeditor.edit.geometry import model_vertices, posed
from faceeditor.edit.grid import Window
from faceeditor.edit.params import RENDERERS, EditParams
from faceeditor.face import identity
from faceeditor.face.detect import Face, FaceDetector
from faceeditor.face.segment import PersonSegmenter
from faceeditor.fit.pipeline import fit_photo
from faceeditor.io import load_rgb
from faceeditor.jobs.renderers import RendererFactory
from faceeditor.morphable import load_face_model
from faceeditor.morphable.normals import vertex_normals
from faceeditor.render.atlas import render_face_ids
from faceeditor.neural.data import split_of


def parse_renderers(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in RENDERERS]
    if not names or unknown:
        raise FaceEditorError(f"--renderers: unknown {unknown or text!r}; choose from {', '.join(RENDERERS)}")
    return names


def default_renderer(names: list[str]) -> str:
    """The product's default renderer when it was run, else the first one asked for."""
    return DEFAULT_RENDERER if DEFAULT_RENDERER in names else names[0]


def out_dir(args: argparse.Namespace, name: str) -> Path:
    if args.out_dir is not None:
        return args.out_dir
    if args.json is not None:
        return args.json.parent / f"{name}_sheets"
    return Path("out") / "bench" / f"{name}_sheets"


def validation_persons(folder: Path | None) -> tuple[Path, dict[str, list[Path]]]:
    """``{person: photos}`` of an LFW-layout folder; for the default folder (``../shared/data/lfw``)
    only the validation persons (never used in training: :func:`faceeditor.neural.data.split_of`)."""
    if folder is None:
        data = shared_data_dir()
        if data is None or not (data / "lfw").is_dir():
            raise FaceEditorError("no --data given and ../shared/data/lfw is missing")
        folder, only_val = data / "lfw", True
    else:
        only_val = False
    if not folder.is_dir():
        raise FaceEditorError(f"{folder}: not a folder")
    persons = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        if only_val and split_of(d.name, "lfw") != "val":
            continue
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in PHOTO_EXTS)
        if files:
            persons[d.name] = files
    return folder, persons


def photos_under(folder: Path | None) -> list[Path]:
    """Photos searched recursively (default: the validation persons' photos)."""
    if folder is None:
        _, persons = validation_persons(None)
        return [p for files in persons.values() for p in files]
    if folder.is_file():
        return [folder]
    return list_photos(folder)


@dataclass
class FittedPhoto:
    """One photo, its largest face, the fitted state and what the judges read on it."""

    path: Path
    rgb: np.ndarray
    face: Face
    state: FaceState
    person_mask: np.ndarray  # (H,W) float32
    descriptor: np.ndarray  # dlib 128-D

    @property
    def yaw(self) -> float:
        return self.state.pose_degrees["yaw"]

    @property
    def lm68(self) -> np.ndarray:
        return self.face.landmarks68


class Judges:
    """The judges and the model, created once per benchmark run."""

    def __init__(self) -> None:
        self.model = load_face_model()
        self.detector = FaceDetector()
        self.segmenter = PersonSegmenter()
        self.dlib = identity.DlibIdentity()
        self.renderers = RendererFactory(self.model)

    def close(self) -> None:
        self.segmenter.close()

    def descriptor(self, rgb: np.ndarray, lm68: np.ndarray) -> np.ndarray:
        return self.dlib.descriptor(rgb, identity.box_from_landmarks(lm68))

    def fit(self, path: Path) -> FittedPhoto | None:
        """Fit the largest face of a photo (None when it cannot be read or has no usable face)."""
        try:
            rgb = load_rgb(path)
            faces = [f for f in self.detector.detect(rgb) if f.landmarks is not None]
            if not faces:
                return None
            state = fit_photo(rgb, face_index=0, faces=faces[:1], model=self.model, detector=self.detector)[0]
        except FaceEditorError:
            return None
        face = faces[0]
        return FittedPhoto(path, rgb, face, state, self.segmenter.mask(rgb), self.descriptor(rgb, face.landmarks68))

    def refit_rotation(self, rgb: np.ndarray, face: Face) -> np.ndarray | None:
        """The rotation a landmark fit finds on an edited photo (None when it fails)."""
        try:
            return fit_photo(rgb, face_index=0, faces=[face], photometric=False, model=self.model,
                             detector=self.detector)[0].rotation
        except FaceEditorError:
            return None


def exact_head(photo: FittedPhoto, model, edit: EditParams) -> np.ndarray:
    """The fitted head itself (textured ICT mesh under the photo's SH light) rendered at the edited
    pose over a darkened photo: an image whose head pose is exactly the edit's. Re-fitting it
    measures the pose judge's own error (its floor), since no warp is involved."""
    state = photo.state
    h, w = photo.rgb.shape[:2]
    with torch.no_grad():
        verts = posed(model, state, model_vertices(model, state), edit)
        normals = vertex_normals(verts, model.faces)
    req = FillRequest(Window(0, 0, w, h, w, h), state.camera(1.0), verts, normals, np.ones((h, w), np.float32),
                      np.asarray(state.sh, np.float32).reshape(9, 3), state, edit)
    layer = MeshFill(model, state, render_face_ids(model)).fill(req)
    a = layer.confidence[..., None]
    return np.clip(layer.rgb * 255.0 * a + photo.rgb * 0.3 * (1.0 - a) + 0.5, 0, 255).astype(np.uint8)


def pose_offset(R_from: np.ndarray, R_to: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) of the offset ``R_to R_from^T`` (EditParams' pose convention)."""
    rel = torch.as_tensor(np.asarray(R_to, np.float64) @ np.asarray(R_from, np.float64).T)
    y, p, r = matrix_to_euler(rel)
    return float(y[0]), float(p[0]), float(r[0])


def median(values: list[float]) -> float:
    v = [x for x in values if x is not None and np.isfinite(x)]
    return round(float(statistics.median(v)), 4) if v else float("nan")


def mean(values: list[float]) -> float:
    v = [x for x in values if x is not None and np.isfinite(x)]
    return round(float(np.mean(v)), 4) if v else float("nan")


def prefixed(per_renderer: dict[str, dict[str, object]], names: list[str]) -> dict[str, object]:
    """Top-level keys for the default renderer, then every renderer's keys prefixed ``name_``."""
    out = dict(per_renderer[default_renderer(names)])
    for name in names:
        out.update({f"{name}_{k}": v for k, v in per_renderer[name].items()})
    return out


def write_rows(path: Path, items: list[dict[str, str]], rows: dict[str, list[dict]]) -> None:
    """Per-item figures of every renderer as JSON (for labelling and re-analysis)."""
    out = [dict(item, **{name: rows[name][i] for name in rows}) for i, item in enumerate(items)]
    path.write_text(json.dumps(out, indent=1, default=float) + "\n")
