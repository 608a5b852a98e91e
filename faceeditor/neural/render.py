"""Rendering faces and edits through the GAR renderer G, and G as the compositor's neural layer.

Crop geometry (:func:`crop_view`): G works in the aligned crop of :mod:`faceeditor.neural.align`
(the dataset's template: a similarity of the photo placed by the detector's iBUG-68 landmarks,
``state.detector_landmarks68``). Its camera is the photo camera scaled, shifted and rolled
(:func:`faceeditor.neural.align.crop_pose`): a camera-frame point ``p`` of the photo is ``Q p`` in
the crop camera's frame, ``Q`` the roll. Normals rotate the same way and SH light is re-expressed
with :func:`faceeditor.neural.regressor.relabel_sh`.

* :func:`render_condition`: G's condition (normals + regions) of posed vertices, differentiable
  in the vertices (the inversion optimises the geometry through it, GAR eq. 10).
* :func:`render_edit`: ``G(n', s', z, eps)`` of an edited face: the edited head
  (:func:`faceeditor.edit.geometry.edited_vertices`), the edit's light
  (:func:`faceeditor.edit.geometry.target_sh`), the inverted z and noise, and the state's pivotal
  tuning (:attr:`FaceState.renderer_tuning`).
* :class:`NeuralFill`: the :class:`~faceeditor.edit.fill.FillProvider` (``name = "neural"``) that
  renders the edited geometry through G and resamples the face crop onto the compositor's
  request grid; :class:`NeuralRenderer` is the ``"neural"``
  :class:`~faceeditor.edit.renderer.PhotoRenderer`: the mesh compositor (warp + relight, at the
  photo's resolution) with G as its fill layer, inverting the photo first when the state has no
  latent for the shipped G.

Weights: ``resources/gar_{generator,inverter,discriminator}.pt`` (:func:`load_gar`).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.fit.state import FaceState
from faceeditor.render.camera import Camera

NETS = ("gar_generator", "gar_inverter", "gar_discriminator")


# ----------------------------------------------------------------------------- weights
@dataclass
class GarNets:
    """The shipped renderer: G (EMA), V and D (for the inversion's feature loss), on one device."""

    G: torch.nn.Module
    V: torch.nn.Module
    D: torch.nn.Module | None
    renderer_id: str
    device: torch.device

    @property
    def size(self) -> int:
        return int(self.G.size)


def available() -> bool:
    from faceeditor.neural import checkpoints

    return checkpoints.available(NETS[0]) and checkpoints.available(NETS[1])


def renderer_id(root: Path | None = None) -> str:
    """``gar_generator:<sha256[:12]>`` of the shipped G (what ``FaceState.renderer_id`` refers to)."""
    from faceeditor.paths import resources_dir

    return _renderer_id(Path(root) if root else resources_dir())


def _renderer_id(res: Path) -> str:
    import hashlib
    import json

    man = res / f"{NETS[0]}.manifest.json"
    sha = json.loads(man.read_text()).get("sha256", "") if man.is_file() else ""
    if not sha:
        sha = hashlib.sha256((res / f"{NETS[0]}.pt").read_bytes()).hexdigest()
    return f"{NETS[0]}:{sha[:12]}"


def load_gar(device: str | torch.device | None = None, root: Path | None = None) -> GarNets:
    """G, V and D from ``resources/`` (cached per device). Raises FileNotFoundError when not trained."""
    from faceeditor.device import get_device

    dev = torch.device(device) if device is not None else get_device()
    return _load_gar(str(dev), str(root) if root else "")


_load_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _load_gar_cached(dev: str, root: str, stamp: tuple) -> GarNets:
    from faceeditor.neural import checkpoints
    from faceeditor.neural.discriminator import Discriminator
    from faceeditor.neural.gar import Generator
    from faceeditor.neural.inverter import Inverter
    from faceeditor.paths import resources_dir

    res = Path(root) if root else resources_dir()
    nets = []
    for name, cls in zip(NETS, (Generator, Inverter, Discriminator)):
        path = res / f"{name}.pt"
        if not path.is_file():
            if name == NETS[2]:
                nets.append(None)
                continue
            raise FileNotFoundError(f"{path} missing (train it: python -m trainers.train_gar)")
        net = checkpoints.load_weights(path, cls, dev)
        for p in net.parameters():
            p.requires_grad_(False)
        nets.append(net)
    return GarNets(nets[0], nets[1], nets[2], _renderer_id(res), torch.device(dev))


def _load_gar(dev: str, root: str) -> GarNets:
    from faceeditor.paths import resources_dir

    res = Path(root) if root else resources_dir()
    stamp = tuple((res / f"{n}.pt").stat().st_mtime if (res / f"{n}.pt").is_file() else 0.0 for n in NETS)
    with _load_lock:
        return _load_gar_cached(dev, root, stamp)


# ----------------------------------------------------------------------------- pivotal tuning
def tuned_generator(nets: GarNets, state: FaceState) -> torch.nn.Module:
    """G with the state's pivotal-tuning deltas added (G itself when the state has none). Cached
    per (state identity, tuning) so repeated renders of one face reuse the copy."""
    tuning = getattr(state, "renderer_tuning", None) or {}
    if not tuning or state.renderer_id != nets.renderer_id:
        return nets.G
    key = (id(nets.G), id(state), tuple(sorted(tuning)), sum(int(np.asarray(v).size) for v in tuning.values()))
    with _tuned_lock:
        hit = _tuned.get(key)
        if hit is not None and hit[0] is tuning:
            return hit[1]
        G = apply_tuning(nets.G, tuning)
        if len(_tuned) >= 4:
            _tuned.pop(next(iter(_tuned)))
        _tuned[key] = (tuning, G)
        return G


_tuned: dict = {}
_tuned_lock = threading.Lock()


def apply_tuning(G: torch.nn.Module, tuning: dict[str, np.ndarray]) -> torch.nn.Module:
    """A copy of G with ``tuning`` (parameter name -> delta, any float dtype) added."""
    import copy

    out = copy.deepcopy(G)
    params = dict(out.named_parameters())
    with torch.no_grad():
        for name, delta in tuning.items():
            if name in params:
                p = params[name]
                p.add_(torch.as_tensor(np.asarray(delta, np.float32), device=p.device).view_as(p))
    return out


def tuning_deltas(G_tuned: torch.nn.Module, G_base: torch.nn.Module, names: list[str]) -> dict[str, np.ndarray]:
    """float16 deltas ``tuned - base`` of the named parameters (what :class:`FaceState` stores)."""
    a, b = dict(G_tuned.named_parameters()), dict(G_base.named_parameters())
    return {n: (a[n].detach() - b[n].detach()).float().cpu().numpy().astype(np.float16) for n in names}


# ----------------------------------------------------------------------------- crop geometry
@dataclass
class CropView:
    """The aligned crop of one face: photo -> crop matrix, crop camera, roll Q (photo frame -> crop frame)."""

    matrix: np.ndarray  # (2,3) photo pixels -> crop pixels
    camera: Camera
    roll: np.ndarray  # (3,3)
    size: int

    def to_crop(self, verts: torch.Tensor) -> torch.Tensor:
        """Photo-camera-frame points (B,N,3) -> crop-camera-frame points."""
        return verts @ torch.as_tensor(self.roll.T, dtype=verts.dtype, device=verts.device)

    def sh(self, sh: np.ndarray | torch.Tensor) -> torch.Tensor:
        """SH irradiance (9,3) of the photo's frame expressed in the crop's frame."""
        from faceeditor.neural.regressor import relabel_sh

        return torch.as_tensor(relabel_sh(np.asarray(sh, np.float64).reshape(9, 3), self.roll.T), dtype=torch.float32)


def alignment_landmarks(state: FaceState) -> np.ndarray:
    lm = state.detector_landmarks68 if state.detector_landmarks68 is not None else state.fitted_landmarks68
    if lm is None:
        raise ValueError("the state has no 68-point landmarks to align the face crop")
    return np.asarray(lm, np.float64)[:, :2]


def crop_view(state: FaceState, size: int = 128) -> CropView:
    """The aligned crop of ``state``'s face at ``size`` px (as the dataset made it: 256 px template, scaled)."""
    from faceeditor.neural.align import align_matrix, crop_pose, matrix_parts, roll_matrix, scale_matrix

    M = scale_matrix(align_matrix(alignment_landmarks(state), 256), size / 256.0)
    Q = roll_matrix(matrix_parts(M)[1])
    _, _, f, c = crop_pose(M, np.asarray(state.rotation, np.float64), np.asarray(state.translation, np.float64),
                           float(state.focal_px), state.centre)
    return CropView(M, Camera(f, size, size, c[0], c[1]), Q, size)


def crop_photo(photo: np.ndarray, state: FaceState, size: int = 128) -> tuple[torch.Tensor, CropView]:
    """(1,3,S,S) float crop of the photo (made as the dataset's crops) and its :class:`CropView`."""
    from faceeditor.neural.align import aligned_crop

    crop, _ = aligned_crop(photo, alignment_landmarks(state), size)
    x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 255.0
    return x, crop_view(state, size)


def render_condition(model, verts_crop: torch.Tensor, camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """G's condition (B,8,S,S) of crop-frame vertices (B,V,3), and the region map (B,S,S) (uint8 labels).

    Same surface and labels as the dataset (:func:`faceeditor.neural.labels.render_labels`), but
    differentiable in ``verts_crop`` (barycentrics and vertex normals carry the gradient).
    """
    from faceeditor.morphable.normals import vertex_normals
    from faceeditor.neural.gar import condition_map
    from faceeditor.neural.labels import region_table
    from faceeditor.render.interpolate import interpolate
    from faceeditor.render.raster import rasterize

    faces, lab = region_table(model)
    faces = faces.to(verts_crop.device)
    normals = vertex_normals(verts_crop, model.faces)
    frags = rasterize(camera.project(verts_crop), faces, camera.height, camera.width, cull_backfaces=True)
    nmap = F.normalize(interpolate(normals, frags, faces), dim=1, eps=1e-8)
    fid = frags.face_id_map()
    region = torch.zeros_like(fid, dtype=torch.uint8)
    cov = fid >= 0
    region[cov] = lab.to(fid.device)[fid[cov]]
    return condition_map(nmap, region), region


def state_noise(state: FaceState, G, device) -> list[torch.Tensor] | str:
    """The state's inverted noise maps as tensors (or ``"zero"`` when it has none for this G)."""
    shapes = G.noise_shapes()
    if len(state.noise) != len(shapes):
        return "zero"
    return [torch.as_tensor(np.asarray(n, np.float32), device=device).reshape(1, 1, *hw)
            for n, hw in zip(state.noise, shapes)]


@torch.no_grad()
def surface_grid(model, src_crop: torch.Tensor, dst_crop: torch.Tensor, camera: Camera) -> torch.Tensor:
    """Where each pixel of the edited head was in the fitted view: (1,S,S,2) ``grid_sample`` coordinates
    (align_corners=False) into the crop of ``src_crop`` for the crop of ``dst_crop`` (both (1,V,3)
    crop-frame vertices of the same mesh); pixels off the edited head map to themselves.

    Used to carry the inverted noise maps with the surface: noise is per-pixel detail of the
    photographed skin, so when the head turns it must move with it (left in place it prints the old
    view's details onto the new one)."""
    from faceeditor.neural.labels import region_table
    from faceeditor.render.raster import rasterize

    S = camera.width
    faces, _ = region_table(model)
    faces = faces.to(dst_crop.device)
    frags = rasterize(camera.project(dst_crop), faces, camera.height, S, cull_backfaces=True)
    src = camera.project(src_crop)[0, :, :2]  # (V,2) pixel coordinates in the fitted view
    p = (src[faces[frags.face]] * frags.bary[:, :, None]).sum(1)  # (N,2)
    g = torch.arange(S, device=dst_crop.device, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    grid = torch.stack([xx, yy], -1).reshape(-1, 2)
    grid[frags.pix] = p.float()
    return (grid.view(1, camera.height, S, 2) / S) * 2.0 - 1.0


def warp_noise(noise: list[torch.Tensor] | str, grid: torch.Tensor | None) -> list[torch.Tensor] | str:
    """Noise maps resampled along :func:`surface_grid` (each at its own resolution)."""
    if grid is None or isinstance(noise, str):
        return noise
    out = []
    for n in noise:
        h, w = n.shape[-2:]
        g = grid if grid.shape[1] == h else F.adaptive_avg_pool2d(grid.permute(0, 3, 1, 2), (h, w)).permute(0, 2, 3, 1)
        out.append(F.grid_sample(n.float(), g.to(n.device), mode="bilinear", padding_mode="border",
                                 align_corners=False))
    return out


@torch.no_grad()
def render_edit(model, state: FaceState, edit=None, nets: GarNets | None = None, verts: torch.Tensor | None = None,
                sh: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor, CropView]:
    """``G(n', s', z, eps)`` of the (edited) face: image (1,3,S,S) clamped to [0,1], the condition map
    (1,8,S,S) and the crop. ``verts`` (1,V,3) camera frame and ``sh`` (9,3) override the edit's."""
    from faceeditor.edit.geometry import edited_vertices, target_sh
    from faceeditor.edit.params import EditParams
    from faceeditor.neural.gar import shading_map

    nets = nets or load_gar()
    if state.latent is None:
        raise ValueError("the face has not been inverted (faceeditor.neural.invert.invert)")
    edit = edit or EditParams()
    dev = nets.device
    view = crop_view(state, nets.size)
    if verts is None:
        verts = edited_vertices(model, state, edit)
    if sh is None:
        sh = target_sh(state, edit)
    dst = view.to_crop(verts.to(dev).float())
    cond, _ = render_condition(model, dst, view.camera)
    cond = cond.contiguous(memory_format=torch.channels_last)
    shading = shading_map(cond, view.sh(sh).to(dev)[None])
    G = tuned_generator(nets, state)
    z = torch.as_tensor(np.asarray(state.latent, np.float32), device=dev).reshape(1, -1)
    noise = state_noise(state, G, dev)
    src = view.to_crop(fitted_vertices(model, state).to(dev))
    if not torch.equal(src, dst):
        noise = warp_noise(noise, surface_grid(model, src, dst, view.camera))
    with render_autocast(dev):
        img = G(cond, shading, z, noise=noise)
    return img.float().clamp(0, 1), cond, view


def fitted_vertices(model, state: FaceState) -> torch.Tensor:
    """The state's head (1,V,3) in the photo's camera frame, as the compositor poses it."""
    from faceeditor.edit.geometry import model_vertices, posed

    with torch.no_grad():
        return posed(model, state, model_vertices(model, state))


def render_autocast(device: torch.device, enabled: bool = True):
    """The render path's precision: bf16 autocast (1.3-2x faster on CPUs with AVX512-BF16; the
    renderer was trained under it)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


# ----------------------------------------------------------------------------- the fill provider
class NeuralFill:
    """:class:`~faceeditor.edit.fill.FillProvider` rendering the edited face through G.

    The request's edited head (camera frame) is rolled into the aligned crop, its condition and
    the request's light rendered at G's resolution, G draws the crop with the state's z, noise
    (carried with the surface: :func:`surface_grid`) and pivotal tuning, and the crop is resampled
    (bilinear) onto the request's window grid.
    Confidence: G's head region, feathered by a pixel of the crop, 0 outside the crop.
    """

    name = "neural"

    def __init__(self, model, state: FaceState, nets: GarNets | None = None) -> None:
        self.model = model
        self.state = state
        self.nets = nets or load_gar()
        if state.latent is None or state.renderer_id != self.nets.renderer_id:
            raise ValueError("the face has no latent code for the shipped neural renderer: invert it first")
        self.G = tuned_generator(self.nets, state)
        self.view = crop_view(state, self.nets.size)
        dev = self.nets.device
        self.z = torch.as_tensor(np.asarray(state.latent, np.float32), device=dev).reshape(1, -1)
        self.noise = state_noise(state, self.G, dev)
        self.src = self.view.to_crop(fitted_vertices(model, state).to(dev))

    @torch.no_grad()
    def crop(self, verts: torch.Tensor, sh: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """G's crop (1,3,S,S) and head coverage (1,1,S,S) for camera-frame ``verts`` and SH ``sh``."""
        from faceeditor.neural.gar import head_mask, shading_map

        dev = self.nets.device
        dst = self.view.to_crop(verts.to(dev).float())
        cond, _ = render_condition(self.model, dst, self.view.camera)
        cond = cond.contiguous(memory_format=torch.channels_last)
        shading = shading_map(cond, self.view.sh(sh).to(dev)[None])
        noise = self.noise
        if not torch.equal(self.src, dst):
            noise = warp_noise(noise, surface_grid(self.model, self.src, dst, self.view.camera))
        with render_autocast(dev):
            img = self.G(cond, shading, self.z, noise=noise)
        return img.float().clamp(0, 1), head_mask(cond)

    @torch.no_grad()
    def fill(self, request):
        from faceeditor.edit.fill import FillLayer

        img, head = self.crop(request.verts, np.asarray(request.sh, np.float32).reshape(9, 3))
        head = F.avg_pool2d(head, 3, 1, 1)  # a one-pixel feather of the crop's head edge
        win = request.window
        gx, gy = win.grid_centres()
        k = float(request.camera.width) / float(self.state.image_size[0])  # output px per photo px
        M = torch.as_tensor(self.view.matrix, dtype=torch.float32)
        px, py = torch.meshgrid(gx / k, gy / k, indexing="xy")  # photo coordinates of the grid centres
        cx = M[0, 0] * px + M[0, 1] * py + M[0, 2]
        cy = M[1, 0] * px + M[1, 1] * py + M[1, 2]
        S = self.view.size
        grid = torch.stack([cx / S * 2 - 1, cy / S * 2 - 1], -1)[None].to(img.device)
        rgba = torch.cat([img.float(), head.float()], 1).contiguous()
        out = F.grid_sample(rgba, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
        rgb = out[:3].permute(1, 2, 0).cpu().numpy().astype(np.float32)
        conf = out[3].clamp(0, 1).cpu().numpy().astype(np.float32)
        return FillLayer(np.ascontiguousarray(rgb), np.ascontiguousarray(conf))


_inversions: list = []  # [(weakref to the input state, photo shape, renderer id, inverted state)], newest last
_inversions_lock = threading.Lock()


def inverted_state(photo: np.ndarray, state: FaceState, model, nets: GarNets, config=None,
                   progress: Callable | None = None) -> FaceState:
    """:func:`faceeditor.neural.invert.invert`, remembered for the last few input states (the GUI
    makes a preview and a full-resolution renderer of the same face: one inversion serves both)."""
    import weakref

    from faceeditor.neural.invert import invert

    with _inversions_lock:
        for ref, shape, rid, out in _inversions:
            if ref() is state and shape == photo.shape and rid == nets.renderer_id:
                return out
    out = invert(photo, state, model, config=config, nets=nets, progress=progress)
    with _inversions_lock:
        _inversions[:] = [e for e in _inversions if e[0]() is not None][-3:] + \
            [(weakref.ref(state), photo.shape, nets.renderer_id, out)]
    return out


class NeuralRenderer:
    """The ``"neural"`` :class:`~faceeditor.edit.renderer.PhotoRenderer`: the mesh compositor (warp,
    relight, full resolution) with G as its fill layer (:class:`NeuralFill`).

    When ``state`` has no latent for the shipped G it is inverted first
    (:func:`faceeditor.neural.invert.invert`, ``invert_config``/``progress``; a few seconds to
    ~20 s on a CPU), unless ``invert_if_needed`` is False (then ValueError). :attr:`state` is the
    (inverted) state in use.
    """

    name = "neural"

    def __init__(self, photo: np.ndarray, state: FaceState, model, nets: GarNets | None = None,
                 invert_if_needed: bool = True, invert_config=None, progress: Callable | None = None,
                 **compositor_kw) -> None:
        from faceeditor.edit.compose import MeshCompositor

        self.nets = nets or load_gar()
        if state.latent is None or state.renderer_id != self.nets.renderer_id:
            if not invert_if_needed:
                raise ValueError("the face has not been inverted for the shipped neural renderer")
            state = inverted_state(photo, state, model, self.nets, invert_config, progress)
        self.state = state
        self.fill = NeuralFill(model, state, self.nets)
        self.compositor = MeshCompositor(photo, state, model, fill=self.fill, **compositor_kw)

    def prepare(self, scale: float = 1.0) -> None:
        self.compositor.prepare(scale)

    def render(self, edit, scale: float = 1.0, cancel: Callable[[], bool] | None = None) -> np.ndarray:
        return self.compositor.render(edit, scale=scale, cancel=cancel)
