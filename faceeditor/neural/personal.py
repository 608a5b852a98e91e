"""The Personal renderer's model: one person's differentiable rendering pipeline (paper 001).

``../shared/papers/001_...txt`` ("Neural Rendering Pipeline"): projection and rasterization of the
fitted head (our torch rasterizer, :mod:`faceeditor.render.raster`), **texturing** (diffuse and
specular albedo looked up by UV), **lighting** (a network approximating ambient occlusion and
self-shadowing) and **shading** (Blinn-Phong with one directional light per image, position,
colour, diffuse and specular coefficients: :func:`faceeditor.render.blinn_phong.blinn_phong`).

Per pixel of the face (UV ``u``, model-frame point ``x`` and normal ``n_0``, camera rotation ``R``):

* normals: ``n = R normalize(n_0 + N(u))``, ``N`` a learned UV map of normal offsets (the
  curriculum's first stage; the mesh itself is not refined);
* texture: ``rho_d = T_d(u) + D_i(u)`` (3 channels), ``rho_s = sigmoid(T_s(u))`` (1 channel): neural
  textures, i.e. explicit learned UV maps over the ICT face tile (:data:`FACE_TILE`), the shared
  diffuse one started from the photos' albedo atlases and changed only smoothly, plus ``D_i``, fitted
  photo ``i``'s own detail (hair over the brow, glasses, a hand: what the other photos do not
  share; zero for a photo the fit did not see);
* lighting: ``(a, v_r) = sigmoid(L(gamma(x), n_0, R^T l) + 3)``, a small MLP on Fourier features
  of the point and the light direction in the model frame; the light's visibility is
  ``v = v_geo * v_r`` with ``v_geo`` the shadow map's (:func:`~faceeditor.render.blinn_phong.shadow_visibility`);
* shading: Blinn-Phong with the image's :class:`PersonalLight`.

Everything is saved by :meth:`PersonalModel.save` (weights, per-photo lights, a manifest JSON) and
restored by :meth:`PersonalModel.load`; fitting is :mod:`faceeditor.neural.personal_fit`.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceeditor.core.atomic import atomic_write_bytes, atomic_write_text
from faceeditor.core.errors import FaceEditorError
from faceeditor.render.blinn_phong import blinn_phong
from faceeditor.render.sh import angles_from_direction, direction_from_angles

FACE_TILE = (0.0, 0.5, 0.25, 1.0)  # atlas (u0, v0, u1, v1) of the ICT face material's tile
MANIFEST = "personal.json"
WEIGHTS = "personal.pt"
SHININESS = (2.0, 128.0)


@dataclass
class PersonalConfig:
    """The model's shape and its fit (:func:`faceeditor.neural.personal_fit.fit_personal`)."""

    texture_px: int = 256  # side of the diffuse / specular UV maps over the face tile
    normal_px: int = 64  # side of the normal-offset UV map
    fourier: int = 6  # octaves of the lighting network's positional encoding
    hidden: int = 64  # width of the lighting network
    crop: int = 128  # fit resolution: the face crop's side (px)
    steps: tuple[int, int, int, int] = (120, 160, 120, 160)  # curriculum: normals, texture, lighting, all
    #   (half as many: 28.3 dB on the fitted photos of 3 validation persons instead of 34.6, in 16 s vs 29 s)
    lr: float = 0.02  # RAdam step of lights, textures and normal offsets
    lr_net: float = 0.003  # ... of the lighting network
    blur_px: float = 4.0  # coarse-to-fine: target blur sigma (crop px) at the start ...
    sharp_at: float = 0.7  # ... falling linearly to none at this fraction of all steps
    shadow_px: int = 128  # shadow-map side
    shadow_every: int = 10  # steps between shadow-map updates (the light moves slowly)
    normal_weight: float = 0.05  # L2 on the normal offsets
    net_weight: float = 0.01  # L2 on (1 - ao, 1 - v_r): the network darkens only where it must
    # generalisation to photos the fit did not see (bench light's personal_heldout_gain_db, 3 persons:
    # -0.76 dB without both, +0.61 with the detail maps alone, +1.0 with both; the held-out PSNR of the
    # 3-photo model +1.4 to +2.6 dB; a detail weight of 0.3 loses it all: the maps must be nearly free)
    smooth_weight: float = 1.0  # squared gradient of the shared diffuse texture's change from its start
    photo_detail_px: int = 128  # side of each fitted photo's own diffuse detail map (0: none)
    detail_weight: float = 0.01  # L1 on the detail maps
    seed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["steps"] = list(self.steps)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PersonalConfig:
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        kw.setdefault("photo_detail_px", 0)  # models saved before the detail maps have none
        if "steps" in kw:
            kw["steps"] = tuple(int(s) for s in kw["steps"])
        return cls(**kw)


@dataclass
class PersonalLight:
    """One image's directional light (paper 001: position, colour, diffuse and specular coefficient)."""

    direction: tuple[float, float, float]  # unit, camera frame, toward the light
    colour: tuple[float, float, float]  # RGB, mean 1 at fit time
    ka: float  # ambient
    kd: float  # diffuse
    ks: float  # specular
    shininess: float  # Blinn-Phong exponent

    @property
    def angles(self) -> tuple[float, float]:
        """(azimuth, elevation) in degrees (:func:`faceeditor.render.sh.angles_from_direction`)."""
        az, el = angles_from_direction(torch.tensor(self.direction, dtype=torch.float32))
        return float(az), float(el)

    def moved(self, azimuth: float, elevation: float, gain: float = 1.0, ambient_gain: float = 1.0) -> PersonalLight:
        """This light from (azimuth, elevation), its direct part times ``gain``, ambient times ``ambient_gain``."""
        d = direction_from_angles(azimuth, elevation).tolist()
        return PersonalLight(tuple(d), self.colour, self.ka * ambient_gain, self.kd * gain, self.ks * gain,
                             self.shininess)


@dataclass
class Surface:
    """Packed surface points to shade (one photo's face pixels, or an edited head's)."""

    uv: torch.Tensor  # (N,2) face-tile UV in [0,1] (OBJ convention, v up)
    x_model: torch.Tensor  # (N,3) model-frame points (cm)
    n_model: torch.Tensor  # (N,3) unit model-frame normals of the mesh
    rotation: torch.Tensor  # (3,3) model -> camera
    x_cam: torch.Tensor  # (N,3) camera-frame points (view direction)
    vis_geo: torch.Tensor | None = None  # (N,) shadow-map visibility of the light (None: 1)


def photo_key(photo: np.ndarray) -> str:
    """A photo's identity in the model: the SHA-1 of its uint8 pixels and shape."""
    h = hashlib.sha1(str(photo.shape).encode())
    h.update(np.ascontiguousarray(photo).tobytes())
    return h.hexdigest()


def face_tile_uv(atlas_uv: torch.Tensor) -> torch.Tensor:
    """Atlas UVs (N,2) -> UVs in the face tile (:data:`FACE_TILE`)."""
    u0, v0, u1, v1 = FACE_TILE
    return torch.stack([(atlas_uv[:, 0] - u0) / (u1 - u0), (atlas_uv[:, 1] - v0) / (v1 - v0)], -1)


class LightingNet(nn.Module):
    """``L``: (ambient occlusion, light visibility residual) from Fourier features of the model-frame
    point, its normal and the model-frame light direction (paper 001, "4. Lighting")."""

    def __init__(self, octaves: int, hidden: int) -> None:
        super().__init__()
        self.octaves = octaves
        n_in = 3 + 6 * octaves + 3 + 3
        self.mlp = nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.constant_(self.mlp[-1].bias, 3.0)  # sigmoid(3) = 0.95: almost no occlusion at the start

    def forward(self, x: torch.Tensor, n: torch.Tensor, l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = x / 10.0  # cm -> head-sized units
        freq = (2.0 ** torch.arange(self.octaves, dtype=q.dtype)) * math.pi
        ang = q[:, :, None] * freq  # (N,3,K)
        feats = [q, torch.sin(ang).flatten(1), torch.cos(ang).flatten(1), n, l.expand(q.shape[0], 3)]
        out = torch.sigmoid(self.mlp(torch.cat(feats, 1)))
        return out[:, 0], out[:, 1]


class PersonalModel(nn.Module):
    """One person's textures, lighting network and per-photo lights."""

    def __init__(self, config: PersonalConfig, n_photos: int, albedo: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        T = config.texture_px
        init = torch.full((1, 3, T, T), 0.6) if albedo is None else F.interpolate(
            albedo.float().reshape(1, 3, *albedo.shape[-2:]), (T, T), mode="area")
        self.tex_d = nn.Parameter(init.clone())
        self.register_buffer("tex_d_start", init.clone(), persistent=False)  # the photos' albedo (smoothness prior)
        self.tex_s = nn.Parameter(torch.full((1, 1, T, T), -1.0))  # sigmoid(-1) = 0.27
        self.tex_n = nn.Parameter(torch.zeros(1, 3, config.normal_px, config.normal_px))
        D = config.photo_detail_px
        self.tex_p = nn.Parameter(torch.zeros(n_photos, 3, D, D)) if D > 0 else None
        self.net = LightingNet(config.fourier, config.hidden)
        P = n_photos
        self.light_dir = nn.Parameter(torch.tensor([[0.0, 0.0, 1.0]]).repeat(P, 1))
        self.light_logc = nn.Parameter(torch.zeros(P, 3))
        self.light_logk = nn.Parameter(torch.log(torch.tensor([[0.3, 0.7, 0.15]])).repeat(P, 1))  # ka kd ks
        self.light_logn = nn.Parameter(torch.full((P,), math.log(16.0)))
        self.keys: list[str] = [""] * P
        self.use_net = True
        self.info: dict = {}

    @property
    def n_photos(self) -> int:
        return int(self.light_dir.shape[0])

    def index_of(self, key: str) -> int | None:
        return self.keys.index(key) if key in self.keys else None

    # ----------------------------------------------------------------- lights
    def light_tensors(self, i: int) -> dict[str, torch.Tensor]:
        """Photo ``i``'s light as differentiable tensors (direction, colour, ka, kd, ks, shininess)."""
        k = torch.exp(self.light_logk[i])
        return {"direction": F.normalize(self.light_dir[i], dim=0), "colour": torch.exp(self.light_logc[i]),
                "ka": k[0], "kd": k[1], "ks": k[2],
                "shininess": torch.exp(self.light_logn[i]).clamp(*SHININESS)}

    def light(self, i: int) -> PersonalLight:
        t = {k: v.detach() for k, v in self.light_tensors(i).items()}
        return PersonalLight(tuple(t["direction"].tolist()), tuple(t["colour"].tolist()), float(t["ka"]),
                             float(t["kd"]), float(t["ks"]), float(t["shininess"]))

    def set_light(self, i: int, light: PersonalLight) -> None:
        with torch.no_grad():
            self.light_dir[i] = torch.tensor(light.direction)
            self.light_logc[i] = torch.log(torch.tensor(light.colour).clamp(min=1e-4))
            self.light_logk[i] = torch.log(torch.tensor([light.ka, light.kd, light.ks]).clamp(min=1e-4))
            self.light_logn[i] = math.log(min(max(light.shininess, SHININESS[0]), SHININESS[1]))

    @staticmethod
    def as_tensors(light: PersonalLight) -> dict[str, torch.Tensor]:
        return {"direction": F.normalize(torch.tensor(light.direction, dtype=torch.float32), dim=0),
                "colour": torch.tensor(light.colour, dtype=torch.float32), "ka": torch.tensor(light.ka),
                "kd": torch.tensor(light.kd), "ks": torch.tensor(light.ks), "shininess": torch.tensor(light.shininess)}

    # ----------------------------------------------------------------- shading
    def sample(self, uv: torch.Tensor, photo: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Diffuse (N,3), specular (N,1) albedo and normal offsets (N,3) at face-tile ``uv`` (N,2);
        ``photo``: a fitted photo whose own detail map is added to the diffuse albedo."""
        grid = torch.stack([uv[:, 0] * 2.0 - 1.0, 1.0 - uv[:, 1] * 2.0], -1)[None, None]

        def look(tex: torch.Tensor) -> torch.Tensor:
            return F.grid_sample(tex, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0].t()

        rho_d = look(self.tex_d)
        if photo is not None and self.tex_p is not None and photo < self.tex_p.shape[0]:
            rho_d = rho_d + look(self.tex_p[photo:photo + 1])
        return rho_d.clamp(0.0, 2.0), torch.sigmoid(look(self.tex_s)), look(self.tex_n)

    def shade(self, s: Surface, light: dict[str, torch.Tensor], use_net: bool | None = None,
              photo: int | None = None) -> torch.Tensor:
        """(N,3) pixel values of ``s`` under ``light`` (:meth:`light_tensors` or :meth:`as_tensors`): the
        module docstring's pipeline, ending in :func:`~faceeditor.render.blinn_phong.blinn_phong`;
        ``photo``: the fitted photo ``s`` belongs to (its own detail map is used)."""
        rho_d, rho_s, dn = self.sample(s.uv, photo)
        n_model = F.normalize(s.n_model + dn, dim=-1)
        n = n_model @ s.rotation.t()
        e = F.normalize(-s.x_cam, dim=-1)
        l_cam = light["direction"]
        ao, vis = None, s.vis_geo
        if self.use_net if use_net is None else use_net:
            ao, v_r = self.net(s.x_model, n_model, (s.rotation.t() @ l_cam)[None])
            vis = v_r if vis is None else vis * v_r
        return blinn_phong(n, e, l_cam, rho_d, rho_s, light["colour"], light["ka"], light["kd"], light["ks"],
                           light["shininess"], vis, ao)

    def net_terms(self, s: Surface, l_cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The lighting network's (ao, v_r) at ``s`` (for its regulariser)."""
        _, _, dn = self.sample(s.uv)
        return self.net(s.x_model, F.normalize(s.n_model + dn, dim=-1), (s.rotation.t() @ l_cam)[None])

    # ----------------------------------------------------------------- files
    def save(self, folder: Path, manifest: dict | None = None) -> None:
        """``personal.pt`` (weights) and ``personal.json`` (config, photo keys, lights, ``manifest``) in ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.state_dict().items()}, buf)
        atomic_write_bytes(folder / WEIGHTS, buf.getvalue())
        doc = {"kind": "faceeditor-personal", "version": 1, "config": self.config.to_dict(),
               "photos": [{"key": k, "light": asdict(self.light(i))} for i, k in enumerate(self.keys)],
               **(manifest or {}), "info": self.info}
        atomic_write_text(folder / MANIFEST, json.dumps(doc, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> PersonalModel:
        folder = Path(folder)
        try:
            doc = json.loads((folder / MANIFEST).read_text())
            weights = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
        except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise FaceEditorError(f"{folder}: not a personal model ({exc})") from exc
        except Exception as exc:
            raise FaceEditorError(f"{folder}: not a personal model ({type(exc).__name__}: {exc})") from exc
        model = cls(PersonalConfig.from_dict(doc["config"]), len(doc["photos"]))
        model.load_state_dict(weights)
        model.keys = [p["key"] for p in doc["photos"]]
        model.info = doc.get("info", {})
        return model


@dataclass
class FitLog:
    """What a fit did: per-step losses, stage names, seconds, per-photo PSNR (dB, face pixels)."""

    losses: list[float] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    seconds: float = 0.0
    psnr_db: list[float] = field(default_factory=list)
