"""The editor's engine: the one place the app reaches the fitter, the renderers, torch and mediapipe.

Only the worker threads (:mod:`faceeditor.app.workers`) call it; widgets never do. Everything
it returns is plain data (numpy arrays, dataclasses of them), so results cross threads without
sharing live tensors. Tests substitute stand-ins by subclassing :class:`Engine`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from faceeditor.edit.light import LightParams
from faceeditor.edit.params import EditParams

Progress = Callable[[str, float, "float | None"], bool]

TEXTURE_SIZE = 512  # atlas tile side of the photometric fit
VIEWPORT_TEXTURE_PX = 1024  # widest texture atlas sent to the 3D viewport
RENDERER_LABELS = {"mesh": "Mesh compositor", "neural": "Neural renderer"}


@dataclass
class HeadMesh:
    """The edited head for the 3D viewport: per-corner buffers in the photo's camera frame."""

    buffers: object  # faceeditor.render.gl.MeshBuffers
    centre: np.ndarray  # (3,) head centre (cm, camera frame)
    radius: float  # cm, bounding radius about the centre
    sh: np.ndarray  # (9,3) lighting of the edit


class Engine:
    """Loads, detects, fits and renders on behalf of the GUI's workers (thread-safe)."""

    def __init__(self, threads: int | None = None) -> None:
        """``threads``: torch CPU threads for fitting and rendering (process-wide). The editor uses
        1: on a machine whose cores are shared (with the UI thread, other programs) one thread
        renders a preview 3-10x faster than two that wait on each other."""
        if threads is not None:
            import torch

            torch.set_num_threads(max(1, int(threads)))
        self._lock = threading.Lock()
        self._model = None
        self._static: tuple[np.ndarray, np.ndarray] | None = None  # (corner vertex ids, corner atlas uvs)
        self._base_texture: np.ndarray | None = None

    # ----------------------------------------------------------------- resources
    @property
    def model(self):
        with self._lock:
            if self._model is None:
                from faceeditor.morphable.model import load_face_model

                self._model = load_face_model()
            return self._model

    def device_text(self) -> str:
        from faceeditor.device import describe_device

        return describe_device()

    def warm_up(self) -> None:
        """Load the model and the detector graphs ahead of the first photo (background thread)."""
        _ = self.model
        self._corner_tables()
        try:
            from faceeditor.face.detect import get_detector

            get_detector()
        except Exception:  # detection errors surface on first real use
            pass

    # ----------------------------------------------------------------- photo and faces
    def load_photo(self, path: str | Path):
        from faceeditor.io import load_image

        return load_image(path)

    def detect(self, rgb: np.ndarray) -> list:
        from faceeditor.face.detect import detect_faces

        return detect_faces(rgb)

    def fit(self, rgb: np.ndarray, face_index: int, photometric: bool, progress: Progress | None = None,
            faces: list | None = None):
        """One fitted :class:`~faceeditor.fit.state.FaceState` for face ``face_index`` (``faces``: the
        detections already made, so the fitter does not detect again)."""
        from faceeditor.fit.pipeline import fit_photo

        states = fit_photo(rgb, face_index=face_index, photometric=photometric, progress=progress, faces=faces,
                           model=self.model)
        return states[0]

    def refine(self, rgb: np.ndarray, state, progress: Progress | None = None):
        """The photometric stage (SH light, albedo texture) on top of a landmark fit."""
        from faceeditor.fit.photometric import PhotometricConfig, fit_photometric
        from faceeditor.fit.pipeline import FitCancelled

        if progress is not None and progress("photometric", 0.0, None) is False:
            raise FitCancelled("fit cancelled during photometric")
        out = fit_photometric(rgb, state, self.model, PhotometricConfig(texture_size=TEXTURE_SIZE))
        if progress is not None and progress("photometric", 1.0, None) is False:
            raise FitCancelled("fit cancelled during photometric")
        return out

    def fit_stages(self) -> tuple[str, ...]:
        """The fits a photo goes through: a quick landmark fit shows the head at once, the
        photometric refinement (texture, light) follows under the progress bar."""
        return ("landmarks", "photometric")

    def photo_light(self, state) -> LightParams:
        from faceeditor.edit.geometry import photo_light

        return photo_light(state)

    # ----------------------------------------------------------------- rendering
    def renderers(self) -> list[tuple[str, str, bool, str]]:
        """(id, label, available, tooltip) of every photo renderer."""
        from faceeditor.edit.renderers import available_renderers

        return [(name, RENDERER_LABELS[name], ok, tip) for name, (ok, tip) in available_renderers().items()]

    def make_renderer(self, rgb: np.ndarray, state, name: str, preview: bool = False, progress=None):
        """A PhotoRenderer bound to this photo and face; ``preview`` trades detail for speed
        (the compositor's work grid may go down to 128 px while a slider moves); ``progress``
        (stage, fraction, loss) -> bool follows the neural renderer's inversion."""
        from faceeditor.edit.renderers import make_renderer

        return make_renderer(name, rgb, state, self.model, preview=preview, progress=progress)

    def edited_state(self, state, edit: EditParams):
        """``state`` with the edit applied (the compositor's own definition, for exports)."""
        from faceeditor.edit.geometry import edited_state

        return edited_state(state, edit, self.model)

    # ----------------------------------------------------------------- viewport mesh
    def _corner_tables(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._static is None:
                from faceeditor.morphable.atlas import atlas_uvs, render_face_ids

                model = self._model
                sel = render_face_ids(model)
                uv, uv_faces = atlas_uvs(model)
                corners = model.faces[sel].reshape(-1).cpu().numpy()
                uvs = uv[uv_faces[sel].reshape(-1)].cpu().numpy().astype(np.float32)
                self._static = (corners, uvs)
            return self._static

    def head_texture(self, state) -> np.ndarray:
        """uint8 albedo atlas: the fitted one, else plain skin and material colours."""
        tex = getattr(state, "texture", None)
        if tex is not None:
            tex = np.ascontiguousarray(tex, dtype=np.uint8)
            if tex.shape[1] > VIEWPORT_TEXTURE_PX:  # the viewport needs no more (software GL uploads it)
                import cv2

                s = VIEWPORT_TEXTURE_PX / tex.shape[1]
                tex = cv2.resize(tex, (VIEWPORT_TEXTURE_PX, round(tex.shape[0] * s)), interpolation=cv2.INTER_AREA)
            return tex
        if self._base_texture is None:
            from faceeditor.morphable.atlas import base_atlas

            self._base_texture = (base_atlas(256, model=self.model) * 255 + 0.5).clip(0, 255).astype(np.uint8)
        return self._base_texture

    def head_mesh(self, state, edit: EditParams) -> HeadMesh:
        import torch

        from faceeditor.edit.geometry import edited_vertices, target_sh
        from faceeditor.morphable.normals import vertex_normals
        from faceeditor.render.gl import MeshBuffers

        model = self.model
        corners, uvs = self._corner_tables()
        with torch.no_grad():
            verts = edited_vertices(model, state, edit)[0]
            normals = vertex_normals(verts, model.faces)
        v, n = verts.cpu().numpy(), normals.cpu().numpy()
        centre = np.asarray(state.translation, np.float32).copy()
        radius = float(np.linalg.norm(v - centre, axis=1).max())
        buffers = MeshBuffers(v[corners], n[corners], np.ones((len(corners), 3), np.float32), uvs)
        return HeadMesh(buffers, centre, radius, np.asarray(target_sh(state, edit), np.float32))

    # ----------------------------------------------------------------- exports
    def export_mesh(self, path: Path, state, edit: EditParams) -> Path:
        from faceeditor.io.mesh import write_face_mesh

        path = Path(path)
        stem = path.stem.replace(" ", "_") or "face"
        files = write_face_mesh(path.parent, stem, self.edited_state(state, edit), self.model)
        return files.obj

    def export_params(self, path: Path, state, edit: EditParams) -> Path:
        from faceeditor.io.params_json import write_params_json

        return write_params_json(Path(path), self.edited_state(state, edit), self.model)


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t0) * 1000.0
