"""``FaceState``: everything known about one face in one photo, serializable.

Produced by the fitters (:mod:`faceeditor.fit`), extended by the neural inversion, consumed by
the compositor, the GUI and the exporters. Geometry follows :mod:`faceeditor.core.pose`
(posed point = R p + t, camera frame of :mod:`faceeditor.core.camera`); lighting follows
:mod:`faceeditor.render.sh`. Arrays stay numpy here so the state can cross threads and files
without torch; :meth:`FaceState.save` writes ``params.json`` (human-readable) + ``state.npz``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from faceeditor.core.atomic import atomic_write, atomic_write_text
from faceeditor.core.camera import Camera
from faceeditor.core.pose import matrix_to_euler

STATE_VERSION = 1


@dataclass
class NeuralCode:
    """What an inversion of the neural renderer learned about one face (GAR eq. 10 + pivotal tuning)."""

    latent: np.ndarray  # renderer code z
    noise: list[np.ndarray] = field(default_factory=list)  # per-layer noise maps
    renderer_id: str = ""  # checkpoint the code belongs to
    tuning: dict[str, np.ndarray] = field(default_factory=dict)  # pivotal-tuning deltas of the renderer's
    #   parameters (name -> float16 array; faceeditor.neural.invert)

    def arrays(self) -> dict[str, np.ndarray]:
        """Arrays under the keys ``state.npz`` has always used."""
        out = {"latent": np.asarray(self.latent)}
        for i, n in enumerate(self.noise):
            out[f"noise_{i}"] = np.asarray(n)
        for k, v in self.tuning.items():
            out[f"tuning:{k}"] = np.asarray(v)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], renderer_id: str | None) -> "NeuralCode | None":
        """The code stored by :meth:`arrays`, or None when the state holds no latent."""
        if "latent" not in arrays:
            return None
        noise_keys = sorted((k for k in arrays if k.startswith("noise_")), key=lambda s: int(s.split("_")[1]))
        tuning = {k[len("tuning:"):]: np.array(v) for k, v in arrays.items() if k.startswith("tuning:")}
        return cls(np.array(arrays["latent"]), [np.array(arrays[k]) for k in noise_keys], renderer_id or "", tuning)

    def copy(self) -> "NeuralCode":
        return NeuralCode(np.array(self.latent), [np.array(n) for n in self.noise], self.renderer_id,
                          {k: np.array(v) for k, v in self.tuning.items()})


@dataclass
class FaceState:
    """One fitted face. Angles in degrees, lengths in centimetres, image coordinates in pixels."""

    image_size: tuple[int, int]  # (w, h) of the photo, upright
    face_box: tuple[float, float, float, float]  # (x0, y0, x1, y1) detector box
    rotation: np.ndarray  # (3,3) model -> camera rotation
    translation: np.ndarray  # (3,) cm
    focal_px: float
    identity: np.ndarray  # (100,)
    expression: np.ndarray  # (53,) in [0,1]
    sh: np.ndarray  # (9,3) SH irradiance (camera frame)
    principal: tuple[float, float] | None = None  # (cx, cy); None = image centre
    detector_landmarks: np.ndarray | None = None  # (478,3) mediapipe points (x, y px, rel. depth)
    detector_score: float = 0.0
    detector_landmarks68: np.ndarray | None = None  # (68,2) detector points mapped to the iBUG-68 set
    fitted_landmarks68: np.ndarray | None = None  # (68,2) the fitted model's 68 points projected (jaw on
    #                                                the silhouette, as iBUG annotates it)
    texture: np.ndarray | None = None  # (2T,4T,3) uint8 albedo atlas (faceeditor.render.atlas layout)
    texture_confidence: np.ndarray | None = None  # (2T,4T) uint8: 255 seen in the photo, lower = filled
    neural: NeuralCode | None = None  # the neural renderer's code for this face (after inversion)
    timings_ms: dict[str, float] = field(default_factory=dict)
    fit_info: dict[str, object] = field(default_factory=dict)  # residuals, iterations, albedo, ...

    # ----------------------------------------------------------------- derived views
    @property
    def pose_degrees(self) -> dict[str, float]:
        """``{"yaw", "pitch", "roll"}`` in degrees (yaw > 0: the person turns to their left)."""
        y, p, r = matrix_to_euler(torch.as_tensor(self.rotation, dtype=torch.float64)[None])
        return {"yaw": float(y[0]), "pitch": float(p[0]), "roll": float(r[0])}

    def neural_code(self, renderer_id: str) -> NeuralCode | None:
        """The neural code when it belongs to the renderer ``renderer_id``, else None."""
        return self.neural if self.neural is not None and self.neural.renderer_id == renderer_id else None

    @property
    def centre(self) -> tuple[float, float]:
        w, h = self.image_size
        return self.principal if self.principal is not None else (w / 2.0, h / 2.0)

    def camera(self, scale: float = 1.0) -> Camera:
        """The photo's :class:`~faceeditor.core.camera.Camera`, optionally scaled."""
        cx, cy = self.centre
        cam = Camera(self.focal_px, int(self.image_size[0]), int(self.image_size[1]), cx, cy)
        return cam if scale == 1.0 else cam.scaled(scale)

    def copy(self) -> "FaceState":
        return FaceState.from_dict(self.to_dict(), self._arrays())

    # ----------------------------------------------------------------- serialization
    _ARRAY_FIELDS = ("rotation", "translation", "identity", "expression", "sh", "detector_landmarks",
                     "detector_landmarks68", "fitted_landmarks68", "texture", "texture_confidence")

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {k: np.asarray(getattr(self, k)) for k in self._ARRAY_FIELDS if getattr(self, k) is not None}
        if self.neural is not None:
            out.update(self.neural.arrays())
        return out

    def to_dict(self) -> dict:
        """JSON-ready scalars (arrays go to :meth:`_arrays`)."""
        d = asdict(self)
        for k in (*self._ARRAY_FIELDS, "neural"):
            d.pop(k, None)
        d["renderer_id"] = None if self.neural is None else self.neural.renderer_id
        d["version"] = STATE_VERSION
        d["image_size"] = list(map(int, self.image_size))
        d["face_box"] = [float(v) for v in self.face_box]
        d["principal"] = None if self.principal is None else [float(v) for v in self.principal]
        return d

    @classmethod
    def from_dict(cls, d: dict, arrays: dict[str, np.ndarray]) -> "FaceState":
        d = dict(d)
        d.pop("version", None)
        kw = {k: d[k] for k in ("focal_px", "detector_score", "timings_ms", "fit_info") if k in d}
        opt = {k: (np.array(arrays[k]) if k in arrays else None) for k in cls._ARRAY_FIELDS}
        return cls(image_size=tuple(d["image_size"]), face_box=tuple(d["face_box"]),
                   principal=None if d.get("principal") is None else tuple(d["principal"]),
                   neural=NeuralCode.from_arrays(arrays, d.get("renderer_id")), **opt, **kw)

    def save(self, folder: Path) -> None:
        """Write ``state.json`` + ``state.npz`` into ``folder`` (created)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "state.npz", lambda f: np.savez_compressed(f, **self._arrays()))
        atomic_write_text(folder / "state.json", json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "FaceState":
        folder = Path(folder)
        d = json.loads((folder / "state.json").read_text())
        with np.load(folder / "state.npz") as z:
            arrays = {k: z[k] for k in z.files}
        return cls.from_dict(d, arrays)

    def to_bytes(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(json dict, arrays) for embedding in a session file."""
        return self.to_dict(), self._arrays()
