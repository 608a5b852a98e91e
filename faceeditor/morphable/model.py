"""The ICT-FaceKit linear head model, loaded from ``resources/face_model.npz`` (built by
``trainers/build_face_model.py``), evaluated in torch.

    v(alpha, beta) = neutral + sum_i alpha_i * identity_i + sum_j beta_j * expression_j

Identity coefficients are ~N(0, 1) (the first ``k <= 100`` may be given); expression weights are
ARKit blendshapes in [0, 1] (``_L`` = subject's left = +X). Frame and units: see :mod:`faceeditor.core.pose`.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from faceeditor.core.device import get_device
from faceeditor.core.paths import resources_dir
from faceeditor.morphable.derived import DerivedTables

EYE_REGIONS = ("M_ScleraLeft", "M_IrisLeft", "M_ScleraRight", "M_IrisRight")
_ALIASES = {"eyes": EYE_REGIONS, "head": ("M_BackHead",), "sclera": ("M_ScleraLeft", "M_ScleraRight"),
            "iris": ("M_IrisLeft", "M_IrisRight")}


def _key(name: str) -> str:
    n = name.lower().replace("_", "")
    return n[1:] if n.startswith("m") and name[:2] in ("M_", "m_") else n


def default_model_path() -> Path:
    return resources_dir() / "face_model.npz"


class FaceModel:
    """Linear morphable head model on one device (float32 tensors; index tensors are long).

    Attributes: ``neutral`` (V,3); ``identity_basis`` (100,V,3) and ``expression_basis`` (53,V,3)
    (views of one (153, 3V) matrix); ``faces``/``faces_uv`` (F,3); ``uvs`` (U,2) (UDIM tiles,
    face in u in [0,1]); ``uv_vertex`` (U,); ``face_region`` (F,) into ``region_names`` (materials);
    ``vertex_region`` (V,) into ``vertex_region_names``; ``landmarks68`` (68,); ``mirror`` (V,)
    and ``mirror_uv`` (U,) left/right maps; ``expression_names``, ``expression_mirror`` (53,),
    ``expression_pairs`` (K,2) (L, R); ``vertex_sets`` (ICT's "fitting", "rigid", "lap_rigid"
    vertex lists); ``mp478_face``/``mp478_bary`` (mediapipe correspondences) or None;
    ``derived`` (:class:`~faceeditor.morphable.derived.DerivedTables`) the tables that higher
    layers build from this model once (fitter, contour candidates, texel maps).
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], device: str | torch.device = "cpu") -> None:
        dev = torch.device(device)
        self.device = dev

        def long(name: str) -> torch.Tensor:
            return torch.as_tensor(np.asarray(arrays[name], dtype=np.int64), device=dev)

        neutral = np.asarray(arrays["neutral"], dtype=np.float32)
        self.n_vertices = neutral.shape[0]
        self.n_identity = int(arrays["identity"].shape[0])
        self.n_expression = int(arrays["expression"].shape[0])
        self.neutral = torch.as_tensor(neutral, device=dev)
        basis = torch.empty(self.n_identity + self.n_expression, self.n_vertices * 3, dtype=torch.float32)
        basis[: self.n_identity] = torch.from_numpy(np.asarray(arrays["identity"]).reshape(self.n_identity, -1))
        basis[self.n_identity:] = torch.from_numpy(np.asarray(arrays["expression"]).reshape(self.n_expression, -1))
        self.basis = basis.to(dev)  # (K, 3V): identity rows then expression rows
        self.identity_basis = self.basis[: self.n_identity].view(self.n_identity, self.n_vertices, 3)
        self.expression_basis = self.basis[self.n_identity:].view(self.n_expression, self.n_vertices, 3)
        self.expression_names = [str(n) for n in arrays["expression_names"]]
        self._expr_index = {n: i for i, n in enumerate(self.expression_names)}
        self.faces, self.faces_uv = long("faces"), long("faces_uv")
        self.uvs = torch.as_tensor(np.asarray(arrays["uvs"], dtype=np.float32), device=dev)
        self.uv_vertex = long("uv_vertex")
        self.face_region, self.vertex_region = long("face_region"), long("vertex_region")
        self.region_names = [str(n) for n in arrays["region_names"]]
        self.vertex_region_names = [str(n) for n in arrays["vertex_region_names"]]
        self.narrow_face_vertices = int(arrays["narrow_face_vertices"])
        self.landmarks68 = long("landmarks68")
        self.mirror, self.mirror_uv = long("mirror"), long("mirror_uv")
        self.expression_mirror, self.expression_pairs = long("expression_mirror"), long("expression_pairs")
        sets = json.loads(str(arrays["vertex_indices_json"]))
        self.vertex_sets = {k[len("idx_to_"):-len("_verts")]: torch.as_tensor(v, dtype=torch.long, device=dev)
                            for k, v in sets.items() if k.startswith("idx_to_") and k.endswith("_verts")}
        self.mp478_face = self.mp478_bary = self.mp478_weight = None
        self.lm68_face = self.lm68_bary = None
        self.mp478_pose_corr = self.lm68_pose_corr = None
        self.set_landmark_map(arrays)
        self._subset_cache: OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()  # the loaded model is shared by GUI, fit and render threads
        self.derived = DerivedTables()

    def set_landmark_map(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Detector-landmark correspondences on the surface (``trainers/build_landmark_map.py``):
        ``mp478_face/bary/weight`` for mediapipe's 478 points, ``lm68_face/bary`` for 68-set 17-67."""
        dev = self.device
        for name in ("mp478_face", "lm68_face"):
            if name in arrays:
                setattr(self, name, torch.as_tensor(np.asarray(arrays[name], dtype=np.int64), device=dev))
        for name in ("mp478_bary", "mp478_weight", "lm68_bary", "mp478_pose_corr", "lm68_pose_corr"):
            if name in arrays:
                setattr(self, name, torch.as_tensor(np.asarray(arrays[name], dtype=np.float32), device=dev))

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | torch.device = "cpu",
             with_landmark_map: bool = True) -> "FaceModel":
        """Read the packed model (default ``resources/face_model.npz``) and, when present beside it,
        the landmark map ``landmark_map.npz``."""
        path = Path(path) if path is not None else default_model_path()
        if not path.is_file():
            raise FileNotFoundError(f"face model missing: {path} (build it: python -m trainers.build_face_model)")
        with np.load(path) as data:
            model = cls({k: data[k] for k in data.files}, device)
        lm_path = path.with_name("landmark_map.npz")
        if with_landmark_map and lm_path.is_file():
            with np.load(lm_path) as data:
                model.set_landmark_map({k: data[k] for k in data.files})
        return model

    # ----- evaluation -------------------------------------------------------------------------
    def coefficients(self, identity: torch.Tensor | None = None,
                     expression: torch.Tensor | None = None) -> torch.Tensor:
        """Concatenate (B,k<=100) identity and (B,m<=53) expression into (B,153), zero-padded."""
        given = [c for c in (identity, expression) if c is not None]
        B = given[0].shape[0] if given else 1
        ref = given[0] if given else self.neutral
        parts = []
        for c, n in ((identity, self.n_identity), (expression, self.n_expression)):
            if c is None:
                parts.append(ref.new_zeros(B, n))
                continue
            if c.ndim != 2 or c.shape[0] != B or c.shape[1] > n:
                raise ValueError(f"coefficients must be (B, <= {n}) with a common B; got {tuple(c.shape)}")
            c = c.to(dtype=self.neutral.dtype)
            parts.append(c if c.shape[1] == n else torch.cat([c, c.new_zeros(B, n - c.shape[1])], 1))
        return torch.cat(parts, 1)

    def vertices(self, identity: torch.Tensor | None = None, expression: torch.Tensor | None = None,
                 index: torch.Tensor | None = None) -> torch.Tensor:
        """Model-frame vertices (B,V,3), or (B,len(index),3) for a vertex subset ``index`` (long).

        One matmul over the flattened bases; the subset's bases are sliced once and cached.
        """
        coeffs = self.coefficients(identity, expression)
        if index is None:
            neutral, basis, n = self.neutral.reshape(-1), self.basis, self.n_vertices
        else:
            neutral, basis = self._subset(index)
            n = neutral.numel() // 3
        return torch.addmm(neutral, coeffs, basis).view(coeffs.shape[0], n, 3)

    def _subset(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = index.detach().to("cpu", torch.long).numpy().tobytes()
        with self._lock:
            hit = self._subset_cache.get(key)
            if hit is not None:
                self._subset_cache.move_to_end(key)
                return hit
        idx = index.to(self.device, torch.long).reshape(-1)
        cols = (idx[:, None] * 3 + torch.arange(3, device=self.device)).reshape(-1)
        hit = (self.neutral.reshape(-1)[cols].contiguous(), self.basis[:, cols].contiguous())
        with self._lock:
            self._subset_cache[key] = hit
            if len(self._subset_cache) > 16:
                self._subset_cache.popitem(last=False)
        return hit

    @staticmethod
    def surface_points(verts: torch.Tensor, faces: torch.Tensor, face_ids: torch.Tensor,
                       bary: torch.Tensor) -> torch.Tensor:
        """Points on the mesh (B,N,3) from triangle ids (N,) and barycentrics (N,3)."""
        corners = verts[:, faces[face_ids]]  # (B,N,3 corners,3)
        return (corners * bary[None, :, :, None]).sum(2)

    # ----- expressions ------------------------------------------------------------------------
    def expression_index(self, name: str) -> int:
        """Index of an ARKit blendshape name (e.g. ``mouthSmile_L``)."""
        try:
            return self._expr_index[name]
        except KeyError:
            raise KeyError(f"unknown expression {name!r}; known: {', '.join(self.expression_names)}") from None

    def expression_vector(self, weights: Mapping[str, float], batch: int = 1) -> torch.Tensor:
        """(batch, 53) expression coefficients from ``{name: weight}``."""
        out = torch.zeros(batch, self.n_expression, device=self.device)
        for name, w in weights.items():
            out[:, self.expression_index(name)] = float(w)
        return out

    def mirror_expression(self, expression: torch.Tensor) -> torch.Tensor:
        """Left/right-swapped expression coefficients (..., 53)."""
        return expression[..., self.expression_mirror]

    # ----- regions ----------------------------------------------------------------------------
    def region_mask(self, names: str | Iterable[str]) -> torch.Tensor:
        """Bool (V,) mask of vertices in the named vertex regions (``vertex_region_names``)."""
        names = [names] if isinstance(names, str) else list(names)
        codes = [self.vertex_region_names.index(n) for n in names]
        return torch.isin(self.vertex_region, torch.tensor(codes, device=self.device))

    def face_mask(self, regions: str | Iterable[str]) -> torch.Tensor:
        """Bool (F,) mask of triangles in the named material regions.

        Names match ``region_names`` with or without ``M_``, case and underscores ignored
        (``"face"``, ``"gums_tongue"``, ``"M_Teeth"``), plus ``eyes``, ``sclera``, ``iris``, ``head``.
        """
        regions = [regions] if isinstance(regions, str) else list(regions)
        lookup = {_key(n): i for i, n in enumerate(self.region_names)}
        codes: list[int] = []
        for r in regions:
            for name in _ALIASES.get(r.lower(), (r,)):
                if _key(name) not in lookup:
                    raise KeyError(f"unknown region {r!r}; known: {', '.join(self.region_names)}")
                codes.append(lookup[_key(name)])
        return torch.isin(self.face_region, torch.tensor(codes, device=self.device))

    def faces_for(self, regions: str | Iterable[str]) -> torch.Tensor:
        """Triangles (F',3) of the named material regions (see :meth:`face_mask`)."""
        return self.faces[self.face_mask(regions)]

    @functools.cached_property
    def skin_faces(self) -> torch.Tensor:
        """Triangles (F',3) of the front facial skin for photometric fitting: the face material
        restricted to ICT's "narrow face" (no ears, neck, back of head, mouth or eye interior)."""
        f = self.faces_for("face")
        return f[(f < self.narrow_face_vertices).all(1)]

    def to(self, device: str | torch.device) -> "FaceModel":
        """A copy of the model on ``device`` (returns self when already there)."""
        dev = torch.device(device)
        if dev == self.device:
            return self
        new = copy.copy(self)
        for name, val in vars(self).items():
            if isinstance(val, torch.Tensor):
                setattr(new, name, val.to(dev))
        new.vertex_sets = {k: v.to(dev) for k, v in self.vertex_sets.items()}
        new.identity_basis = new.basis[: self.n_identity].view(self.n_identity, self.n_vertices, 3)
        new.expression_basis = new.basis[self.n_identity:].view(self.n_expression, self.n_vertices, 3)
        new.device, new._subset_cache, new._lock = dev, OrderedDict(), threading.Lock()
        new.derived = DerivedTables()
        return new


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, device: str) -> FaceModel:
    return FaceModel.load(path, device)


def load_face_model(device: str | torch.device | None = None, path: str | Path | None = None) -> FaceModel:
    """The shared, loaded face model (one per path and device); default device from ``faceeditor.core.device``.

    The one module-level cache left in the package, on purpose: loading takes ~0.5 s and ~60 MB,
    and the app, jobs, neural inversion, commands, benches and trainers all call this expecting
    the same model back cheaply (e.g. ``jobs.photo_edit`` once per edit). Code that owns its
    model should load it with :meth:`FaceModel.load` and pass it on; the tables derived from a
    model live on the model (``model.derived``), not here.
    """
    if device is None:
        device = get_device()
    return _load_cached(str(Path(path) if path else default_model_path()), str(torch.device(device)))
