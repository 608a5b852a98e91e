"""The editor's engine: the one place the app reaches the fitter, the renderers, torch and mediapipe.

Only the worker threads (:mod:`faceeditor.app.workers`) call it; widgets never do. Everything
it returns is plain data (numpy arrays, dataclasses of them), so results cross threads without
sharing live tensors. Tests substitute stand-ins by subclassing :class:`Engine`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from faceeditor.app.materials import corner_materials, mouth_open
from faceeditor.core.device import describe_device
from faceeditor.core.progress import Progress, check_progress
from faceeditor.core.state import FaceState
from faceeditor.edit.geometry import edited_state, edited_vertices, photo_light, target_sh
from faceeditor.edit.light import LightParams
from faceeditor.edit.params import EditParams
from faceeditor.io import LoadedImage, load_image
from faceeditor.morphable.model import FaceModel, load_face_model
from faceeditor.morphable.normals import vertex_normals
from faceeditor.render.atlas import atlas_uvs, base_atlas, render_face_ids
from faceeditor.render.gl import MeshBuffers

TEXTURE_SIZE = 512  # atlas tile side of the photometric fit
VIEWPORT_TEXTURE_PX = 1024  # widest texture atlas sent to the 3D viewport
RENDERER_LABELS = {"mesh": "Mesh compositor", "neural": "Neural renderer", "gar": "GAR fill (inverts first)",
                   "personal": "Personal (relight)"}
REFINE_MAX_PX = 2048  # big photos: the photometric stage runs on a copy this size (long side)...
REFINE_FACE_PX = 1024  # ... or larger, so the face keeps this many pixels across (texture detail)


def scaled_state(state: FaceState, s: float) -> FaceState:
    """``state`` for the photo resized by ``s``: same head and pose, the camera and every pixel
    coordinate scaled."""
    out = state.copy()
    w, h = state.image_size
    out.image_size = (max(1, round(w * s)), max(1, round(h * s)))
    out.focal_px = state.focal_px * s
    if state.principal is not None:
        out.principal = (state.principal[0] * s, state.principal[1] * s)
    out.face_box = tuple(float(v) * s for v in state.face_box)
    for name in ("detector_landmarks", "detector_landmarks68", "fitted_landmarks68"):
        pts = getattr(state, name, None)
        if pts is not None:
            pts = np.array(pts, dtype=np.float64)
            pts[..., :2] *= s
            setattr(out, name, pts)
    return out


def _heavy() -> SimpleNamespace:
    """The modules that are slow to import (OpenCV, the detector, the fitter, the renderer factory
    with the neural renderer): imported on first use, on a worker thread, so the window shows first."""
    import cv2

    from faceeditor.face import detect as face_detect
    from faceeditor.fit import export, params_json, photometric, pipeline
    from faceeditor.jobs import renderers

    return SimpleNamespace(cv2=cv2, face_detect=face_detect, export=export, params_json=params_json,
                           photometric=photometric, pipeline=pipeline, renderers=renderers)


@dataclass
class HeadMesh:
    """The edited head for the 3D viewport: per-corner buffers in the photo's camera frame."""

    buffers: MeshBuffers
    centre: np.ndarray  # (3,) head centre (cm, camera frame)
    radius: float  # cm, bounding radius about the centre
    sh: np.ndarray  # (9,3) lighting of the edit
    mouth_open: float = 1.0  # 0 (lips closed: the teeth between them in shadow) to 1


class Engine:
    """Loads, detects, fits and renders on behalf of the GUI's workers (thread-safe)."""

    def __init__(self, threads: int | None = None) -> None:
        """``threads``: torch CPU threads for fitting and rendering (process-wide). The editor uses
        1: on a machine whose cores are shared (with the UI thread, other programs) one thread
        renders a preview 3-10x faster than two that wait on each other."""
        if threads is not None:
            torch.set_num_threads(max(1, int(threads)))
        self._lock = threading.Lock()
        self._model: FaceModel | None = None
        self._renderer_factory = None  # faceeditor.jobs.renderers.RendererFactory, made on first use
        self._detector = None  # faceeditor.face.detect.FaceDetector, made on first use and kept
        self._static: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # see _corner_tables
        self._base_texture: np.ndarray | None = None
        self._photo_light: tuple[FaceState, LightParams] | None = None  # the last state's (fit_light: ~7 ms)

    # ----------------------------------------------------------------- resources
    @property
    def model(self) -> FaceModel:
        with self._lock:
            if self._model is None:
                self._model = load_face_model()
            return self._model

    @property
    def detector(self):
        """The mediapipe detector this engine owns (its graphs are built once)."""
        with self._lock:
            if self._detector is None:
                self._detector = _heavy().face_detect.FaceDetector()
            return self._detector

    def device_text(self) -> str:
        return describe_device()

    def warm_up(self) -> None:
        """Load the model and the detector graphs ahead of the first photo (background thread)."""
        for _, step in self.warm_up_steps():
            step()

    def warm_up_steps(self) -> list[tuple[str, Callable[[], object]]]:
        """The warm-up as (what the progress panel says, step) pairs, run in order on a worker thread."""

        def model() -> None:
            _ = self.model
            self._corner_tables()

        def detector() -> None:
            try:
                _ = self.detector
            except Exception:  # noqa: BLE001, S110 - detection errors surface on first real use
                pass

        return [("Loading the 3D face model", model), ("Loading the face detector", detector),
                ("Loading the renderers", self.renderers)]

    def set_threads(self, n: int) -> str:
        """Use ``n`` CPU threads from now on (call on the render thread); returns :meth:`device_text`."""
        torch.set_num_threads(max(1, int(n)))
        return self.device_text()

    # ----------------------------------------------------------------- photo and faces
    def load_photo(self, path: str | Path) -> LoadedImage:
        return load_image(path)

    def detect(self, rgb: np.ndarray) -> list:
        return _heavy().face_detect.detect_faces(rgb, detector=self.detector)

    def fit(self, rgb: np.ndarray, face_index: int, photometric: bool, progress: Progress | None = None,
            faces: list | None = None):
        """One fitted :class:`~faceeditor.core.state.FaceState` for face ``face_index`` (``faces``: the
        detections already made, so the fitter does not detect again)."""
        states = _heavy().pipeline.fit_photo(rgb, face_index=face_index, photometric=photometric, progress=progress,
                                             faces=faces, model=self.model, detector=self.detector)
        return states[0]

    def refine(self, rgb: np.ndarray, state, progress: Progress | None = None):
        """The photometric stage (SH light, albedo texture) on top of a landmark fit. A big photo is
        refined on a copy scaled so the face still spans :data:`REFINE_FACE_PX` (the texture's
        detail); the light and texture carry over as they are (the geometry is not changed)."""
        heavy = _heavy()
        photometric = heavy.photometric
        check_progress(progress, "photometric", 0.0, task="fit")
        x0, y0, x1, y1 = state.face_box
        s = min(1.0, max(REFINE_MAX_PX / max(rgb.shape[:2]), REFINE_FACE_PX / max(x1 - x0, y1 - y0, 1.0)))
        small_rgb, small = rgb, state
        if s < 0.8:
            h, w = rgb.shape[:2]
            size = (max(1, round(w * s)), max(1, round(h * s)))
            small_rgb = heavy.cv2.resize(rgb, size, interpolation=heavy.cv2.INTER_AREA)
            small = scaled_state(state, size[0] / w)
        out = photometric.fit_photometric(small_rgb, small, self.model,
                                          photometric.PhotometricConfig(texture_size=TEXTURE_SIZE), progress=progress)
        if small is not state:
            full = state.copy()
            full.sh, full.texture, full.texture_confidence = out.sh, out.texture, out.texture_confidence
            full.fit_info = dict(out.fit_info, photometric_scale=round(size[0] / rgb.shape[1], 4))
            full.timings_ms = dict(out.timings_ms)
            out = full
        check_progress(progress, "photometric", 1.0, task="fit")
        return out

    def fit_stages(self) -> tuple[str, ...]:
        """The fits a photo goes through: a quick landmark fit shows the head at once, the
        photometric refinement (texture, light) follows under the progress bar."""
        return ("landmarks", "photometric")

    def photo_light(self, state: FaceState) -> LightParams:
        """The fitted SH as light controls (kept for the last state: every head mesh needs it)."""
        known = self._photo_light
        if known is not None and known[0] is state:
            return known[1]
        light = photo_light(state)
        self._photo_light = (state, light)
        return light

    # ----------------------------------------------------------------- rendering
    def renderers(self) -> list[tuple[str, str, bool, str]]:
        """(id, label, available, tooltip) of every photo renderer."""
        available = _heavy().renderers.available_renderers()
        return [(name, RENDERER_LABELS[name], ok, tip) for name, (ok, tip) in available.items()]

    def make_renderer(self, rgb: np.ndarray, state, name: str, preview: bool = False, progress=None):
        """A PhotoRenderer bound to this photo and face; ``preview`` trades detail for speed
        (the compositor's work grid may go down to 128 px while a slider moves); ``progress``
        (stage, fraction, loss) -> bool follows the neural renderer's inversion."""
        return self.renderer_factory.make(name, rgb, state, preview=preview, progress=progress)

    @property
    def renderer_factory(self):
        """The :class:`faceeditor.jobs.renderers.RendererFactory` this engine owns: the neural
        networks are loaded once and their caches (tuned G, inversions) shared by every renderer."""
        with self._lock:
            if self._renderer_factory is None:
                self._renderer_factory = _heavy().renderers.RendererFactory(self._model)
            return self._renderer_factory

    def edited_state(self, state, edit: EditParams):
        """``state`` with the edit applied (the compositor's own definition, for exports)."""
        return edited_state(state, edit, self.model)

    # ----------------------------------------------------------------- viewport mesh
    def _corner_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(corner vertex ids, corner atlas uvs, corner materials) of the viewport's triangles."""
        model = self.model
        with self._lock:
            if self._static is None:
                sel = render_face_ids(model)
                uv, uv_faces = atlas_uvs(model)
                corners = model.faces[sel].reshape(-1).cpu().numpy()
                uvs = uv[uv_faces[sel].reshape(-1)].cpu().numpy().astype(np.float32)
                self._static = (corners, uvs, corner_materials(model, sel.cpu().numpy()))
            return self._static

    def head_texture(self, state) -> np.ndarray:
        """uint8 albedo atlas: the fitted one, else plain skin and material colours."""
        tex = getattr(state, "texture", None)
        if tex is not None:
            tex = np.ascontiguousarray(tex, dtype=np.uint8)
            if tex.shape[1] > VIEWPORT_TEXTURE_PX:  # the viewport needs no more (software GL uploads it)
                cv2 = _heavy().cv2
                s = VIEWPORT_TEXTURE_PX / tex.shape[1]
                tex = cv2.resize(tex, (VIEWPORT_TEXTURE_PX, round(tex.shape[0] * s)), interpolation=cv2.INTER_AREA)
            return tex
        if self._base_texture is None:
            self._base_texture = (base_atlas(256, model=self.model) * 255 + 0.5).clip(0, 255).astype(np.uint8)
        return self._base_texture

    def head_mesh(self, state: FaceState, edit: EditParams) -> HeadMesh:
        model = self.model
        corners, uvs, materials = self._corner_tables()
        with torch.no_grad():
            verts = edited_vertices(model, state, edit)[0]
            normals = vertex_normals(verts, model.faces)
        v, n = verts.cpu().numpy(), normals.cpu().numpy()
        centre = np.asarray(state.translation, np.float32).copy()
        radius = float(np.linalg.norm(v - centre, axis=1).max())
        buffers = MeshBuffers(v[corners], n[corners], materials, uvs)  # colours: (material, occlusion, 0)
        sh = target_sh(state, edit, self.photo_light(state))
        return HeadMesh(buffers, centre, radius, np.asarray(sh, np.float32),
                        mouth_open(v, model.landmarks68.cpu().numpy()))

    # ----------------------------------------------------------------- exports
    def export_mesh(self, path: Path, state, edit: EditParams, frame: str = "model") -> Path:
        path = Path(path)
        stem = path.stem.replace(" ", "_") or "face"
        files = _heavy().export.write_face_mesh(path.parent, stem, self.edited_state(state, edit), self.model,
                                                frame=frame)
        return files.obj

    def export_params(self, path: Path, state, edit: EditParams) -> Path:
        return _heavy().params_json.write_params_json(Path(path), self.edited_state(state, edit), self.model)


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t0) * 1000.0
