"""``MeshCompositor``: an edit of the fitted head turned into an edited photo at any resolution.

The fallback :class:`~faceeditor.edit.renderer.PhotoRenderer` (name ``"mesh"``). Per render:

1. the edited head (:mod:`.geometry`) is rasterized on the work grid of the region of interest
   (:mod:`.grid`); its pixels look up where the same surface point was in the photo
   (:mod:`.flow`): a backward flow and a per-pixel warp confidence;
2. the flow is extended past the silhouette and faded by LiftedGAN's transformation map (:mod:`.blendmap`,
   :mod:`.maps`): hair follows, the background stays, where the face left the photo behind it shows
   (:class:`.layers.BehindFace`); under the jaw, a still clothes layer (:mod:`.jaw_clothes`: no dragged collar);
3. the luminance shading ratio of the target to the fitted SH light on the edited vs fitted normals
   is the relight gain on the whole person (:mod:`.relight`, :mod:`.person_light`) — pose edits get it too, since
   a turned head turns in the scene's light; relit face skin then takes the photo's skin colour at
   its new brightness (:mod:`.skin_tone`: shadows redder, highlights paler, as the photo shows them);
4. pixels the photo cannot supply are rendered by the :class:`~faceeditor.edit.fill.FillProvider`
   (face and mouth; ears, scalp and neck are moved photo; at the output resolution capped at
   :data:`fill_layer.MAX_FILL_PX`, on the work grid for previews), matched to the photo around
   them by a smooth membrane (:mod:`.fill_layer`) and blended with a soft mask;
5. at full resolution only tiles where something changes are touched (:mod:`.tiles`): the grid
   maps are upsampled with ``cv2.warpAffine``, the photo is ``cv2.remap``-ed (where the face
   occludes the neck or scalp, each side by its own flow, cut along a smooth anti-aliased outline:
   :class:`~faceeditor.edit.maps.FaceLayer`), relit with one saturating ``cv2.multiply`` (plus a
   float roll-off for bright highlights), the fill blended with ``cv2.blendLinear``, in uint8.

Resolution: the work grid has 1/:data:`WORK_SUBSAMPLE` of the output's resolution, between
``min_work_px`` and ``max_work_px`` on its long side (171 x 128 for a 1024 x 768 preview, 512 x 384
for a 4000 x 3000 export of a head that fills the frame).

Everything not depending on the edit (fitted head, normals, original-view z-buffer, windows, scaled photos) is
cached per output size. A zero edit returns the photo (a copy; INTER_AREA at other scales).

Thread safety: caches are locked and renders share no mutable state, but renders are CPU-bound: the GUI runs
one at a time in a worker and drops stale ones. ``cancel()`` is polled between stages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from faceeditor.core.camera import Camera
from faceeditor.core.progress import check_cancel
from faceeditor.core.state import FaceState
from faceeditor.edit import blendmap, eyes, fill_layer, grain, layers, maps, person_light, relight, skin_tone, tiles
from faceeditor.edit.fill import FillProvider, FillRequest, MeshFill
from faceeditor.edit.flow import OriginalView, Sources, original_view, screen_areas, surface_ids, trace_sources
from faceeditor.edit.geometry import (
    ear_vertices,
    edited_expression,
    is_zero_edit,
    model_vertices,
    neck_weights,
    offset_rotation,
    photo_light,
    posed,
    target_sh,
)
from faceeditor.edit.grid import Window, make_window, upsample
from faceeditor.edit.jaw_clothes import JawClothes, head_weights
from faceeditor.edit.layers import PortraitLayers
from faceeditor.edit.maps import EditedHead, GridMaps
from faceeditor.edit.params import EditParams
from faceeditor.fit.texture import PHOTO_TILES
from faceeditor.morphable.model import FaceModel
from faceeditor.morphable.normals import vertex_normals
from faceeditor.render.atlas import atlas_uvs, render_face_ids
from faceeditor.render.interpolate import interpolate_packed, sample_texture

MAX_WORK_PX = 512  # longest side of the work grid (export)
MIN_WORK_PX = 160  # ... never coarser than this, unless the region itself is smaller
WORK_SUBSAMPLE = 6.0  # between the two, the grid has 1/WORK_SUBSAMPLE of the output's resolution
ROI_MARGIN = 0.8  # region of interest: head box grown by this x head size on each side (falloff + motion)
TILE_PX = 256  # full-resolution work is done in tiles of this size; unchanged tiles are skipped
RETONE_MIN_Y = -8.0  # cm, model frame: relit skin below this (under the chin) keeps its colour (the chin is at -7.6)
RETONE_FEATHER_PX = 1.5  # work-grid pixels: softness of the face-skin mask of the relit colour change
UNDER_JAW_HEAD_WEIGHT = 0.99  # face triangles turning less than this with the head (under the chin): the face cut's back


@dataclass
class _ScaleView:
    """Per output size: camera, scaled photo, work window and the original view on it."""

    camera: Camera
    photo: np.ndarray  # uint8 photo at this output size
    window: Window
    orig: OriginalView
    orig_sources: Sources  # the fitted head's own pixels (zero flow): the light-only edit path
    head_px: float  # head size in output pixels
    taper: tuple[bool, bool, bool, bool]  # window sides that end inside the photo
    person: person_light.PersonShading | None = None  # the whole-person relight maps, made on first use
    tone: skin_tone.SkinTone | None = None  # the skin's colour by brightness (None: too little skin seen)
    grains: dict = field(default_factory=dict)  # the fill's grain tiles by upsampling (:func:`fill_layer.skin_grain`)
    portrait: PortraitLayers | None = None  # the layered portrait (:meth:`MeshCompositor._portrait_layers`)
    behind: tuple[layers.BehindFace | None] | None = None  # (:meth:`MeshCompositor._behind_face`), made on first use


class MeshCompositor:
    """Warp + relight + fill compositor bound to one photo and one fitted face."""

    name = "mesh"

    def __init__(self, photo: np.ndarray, state: FaceState, model: FaceModel, fill: FillProvider | None = None,
                 max_work_px: int = MAX_WORK_PX, min_work_px: int = MIN_WORK_PX, layered: bool = False,
                 person_mask: np.ndarray | None = None, shading_ratio: maps.ShadingRatio | None = None) -> None:
        """``layered``: draw the moved person over an inpainted background (:mod:`.layers`) rather
        than warping the whole photo (off by default: on 30 LFW reenactment pairs it removed the
        background streaks but left hard hairline edges, and the ghost faces come from the fill); ``person_mask``: the photo's person alpha (any size, float in
        [0,1]) when the caller has it (else mediapipe's selfie segmentation, once, on first use)."""
        if not (isinstance(photo, np.ndarray) and photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3):
            raise ValueError("photo must be a uint8 HxWx3 array")
        w, h = (int(v) for v in state.image_size)
        if photo.shape[:2] != (h, w):
            raise ValueError(f"photo is {photo.shape[1]}x{photo.shape[0]} but the state was fitted on {w}x{h}")

        if model.device.type != "cpu":  # the compositor is CPU work (torch + OpenCV on numpy)
            model = model.to("cpu")
        self.photo, self.state, self.model = photo, state, model
        self.max_work_px, self.min_work_px = int(max_work_px), int(min_work_px)
        self.face_ids = render_face_ids(model)
        self.tri = model.faces[self.face_ids]
        self.relight_tri = person_light.triangle_classes(model, self.face_ids)  # skin / head+neck / inner
        self.inner_tri = self.relight_tri == person_light.TRI_INNER  # move with the face in pose-only edits
        self.skin_faces = torch.zeros(model.faces.shape[0], dtype=torch.bool)  # over model.faces: the fill's
        self.skin_faces[self.face_ids] = self.relight_tri == person_light.TRI_SKIN  # colour-matched surfaces
        # the fill draws the face and mouth; the ICT head/neck material (hair and collar in a photo) would be a
        # flat band there, and its plain eyeball a cartoon eye (a blink is :mod:`.eyes`'): the photo covers those
        keep_photo = [model.region_names.index(n) for n in ("M_BackHead", "M_ScleraLeft", "M_IrisLeft",
                                                            "M_ScleraRight", "M_IrisRight")]
        # the model's ears are drawn from the photo too: they rarely sit on the person's (a textured
        # ICT ear over a cheek, an ear-shaped shard in the background), and hair often covers them
        ears = ear_vertices(model)[self.tri].all(1)
        self.fillable_tri = ~torch.isin(model.face_region[self.face_ids], torch.tensor(keep_photo)) & ~ears
        # scalp, neck and ears (hair and collar in a photo): unseen, they take their seen neighbours' flow
        self.scalp_tri = (model.face_region[self.face_ids] == model.region_names.index("M_BackHead")) | ears
        self.cut_tri = self.scalp_tri | (head_weights(model)[self.face_ids].mean(1) < UNDER_JAW_HEAD_WEIGHT)
        self.tri_surface = surface_ids(model, self.face_ids)  # visibility test (flow.py)
        with torch.no_grad():
            self._expr_fit = np.asarray(state.expression, np.float32).reshape(-1)
            self._v_model = model_vertices(model, state)  # (1,V,3) model frame, fitted expression
            self.v_src = posed(model, state, self._v_model)  # (1,V,3) fitted head, camera frame
            self.n_src = vertex_normals(self.v_src, model.faces)
        self._used = torch.unique(self.tri.reshape(-1))  # the rendered vertices, sorted
        self._head_only = self._used[neck_weights(model)[0, self._used, 0] > 0.5]
        self.photo_light = photo_light(state)  # the fitted SH as light controls: target_sh's reference
        self._fill = fill
        self._lock = threading.RLock()
        self._views: dict[tuple[int, int], _ScaleView] = {}
        self.layered = bool(layered)
        self.jaw_clothes: JawClothes | None = JawClothes(model)  # a still collar under the jaw (None: off)
        self._person = person_mask
        self._tex_conf: tuple[torch.Tensor, ...] | None = None  # texture confidence, UVs, photo-textured triangles
        # retoned: the face above the jaw (under the chin, collars and lace look like a pale skin's highlights)
        self.retone_faces = self.skin_faces & (model.neutral[:, 1] > RETONE_MIN_Y)[model.faces].all(1)
        self.retone = True  # relit skin takes the photo's skin colour at its new brightness (:mod:`.skin_tone`)
        self.shading_ratio = shading_ratio  # optional: a renderer's own shading ratio on the face (:data:`maps.ShadingRatio`)

    # ------------------------------------------------------------------ caches
    def output_size(self, scale: float) -> tuple[int, int]:
        w, h = self.state.image_size
        return max(1, round(w * scale)), max(1, round(h * scale))

    def head_size_px(self, scale: float = 1.0) -> float:
        """The fitted head's size in output pixels at ``scale`` (longer side of its projected box):
        the unit of the transformation map's falloff (:data:`blendmap.FALLOFF_HEAD_FRACTION`)."""
        return self._view(scale).head_px

    def grid_maps(self, edit: EditParams, scale: float = 1.0) -> GridMaps:
        """The edit's maps on the work grid, for inspection (tests, debug overlays)."""
        view = self._view(scale)
        with torch.no_grad():
            return self._grid_maps(edit, view, lambda: None)

    def prepare(self, scale: float = 1.0) -> None:
        """Compute what renders at ``scale`` need (also done lazily by the first render)."""
        self._view(scale)

    def _view(self, scale: float) -> _ScaleView:
        size = self.output_size(scale)
        with self._lock:
            view = self._views.get(size)
            if view is None:
                view = self._make_view(scale, size)
                if len(self._views) >= 4:
                    self._views.pop(next(iter(self._views)))
                self._views[size] = view
            return view

    @torch.no_grad()
    def _make_view(self, scale: float, size: tuple[int, int]) -> _ScaleView:
        W, H = size
        cam = self.state.camera(scale)
        photo = self.photo if (W, H) == tuple(self.state.image_size) else cv2.resize(
            self.photo, (W, H), interpolation=cv2.INTER_AREA)
        scr = cam.project(self.v_src)[0]
        ok = scr[:, 2] > 0
        head = scr[self._head_only][ok[self._head_only]]
        allv = scr[self._used][ok[self._used]]
        if head.shape[0] == 0:
            raise ValueError("the fitted head is behind the camera")
        hx0, hy0 = head[:, 0].min().item(), head[:, 1].min().item()
        hx1, hy1 = head[:, 0].max().item(), head[:, 1].max().item()
        head_px = max(hx1 - hx0, hy1 - hy0, 1.0)
        ax0, ay0 = allv[:, 0].min().item(), allv[:, 1].min().item()
        ax1, ay1 = allv[:, 0].max().item(), allv[:, 1].max().item()
        m = ROI_MARGIN * head_px
        roi_long = max(min(ax1 + m, W) - max(ax0 - m, 0), min(ay1 + m, H) - max(ay0 - m, 0))
        cap = min(self.max_work_px, max(self.min_work_px, roi_long / WORK_SUBSAMPLE))
        win = make_window(ax0 - m, ay0 - m, ax1 + m, ay1 + m, W, H, round(cap))
        taper = (win.x0 > 0, win.y0 > 0, win.x0 + win.w < W, win.y0 + win.h < H)
        s0 = win.screen(self.v_src, cam)
        area0 = screen_areas(s0, self.tri)
        frags = tiles.raster_front(s0, self.tri, area0, win)
        orig = original_view(frags, s0, self.tri, self.tri_surface, win)
        src = trace_sources(frags, self.tri, self.v_src, self.n_src, self.n_src, area0, orig, cam)
        src = Sources(src.pix, src.face, src.src_xy, torch.zeros_like(src.flow), torch.ones_like(src.warp_conf),
                      src.n_src, src.n_src, src.bary)
        return _ScaleView(cam, photo, win, orig, src, head_px, taper, tone=maps.skin_tone_of(photo, win, src, self.relight_tri))

    def person_mask(self) -> np.ndarray:
        """The photo's person alpha (:func:`layers.segment_person`), segmented once."""
        with self._lock:
            if self._person is None:
                self._person = layers.segment_person(self.photo)
            return self._person

    def _person_shading(self, view: _ScaleView) -> person_light.PersonShading:
        """The window's whole-person relight maps (:func:`person_light.prepare`), made once per size."""
        with self._lock:
            if view.person is None:
                view.person = person_light.prepare(self.person_mask(), view.orig.covered.numpy(), view.window,
                                                   (view.camera.width, view.camera.height), view.head_px)
            return view.person

    def _portrait_layers(self, view: _ScaleView) -> PortraitLayers:
        with self._lock:  # the layered portrait (:func:`layers.make_layers`), made once per size
            if view.portrait is None:
                view.portrait = layers.make_layers(view.photo, self.person_mask(), view.orig.covered.numpy(), view.window)
            return view.portrait

    def _behind_face(self, view: _ScaleView) -> layers.BehindFace | None:
        """The photo, the fitted face below the brows inpainted away (:func:`layers.behind_face`), per size."""
        with self._lock:
            if view.behind is None:
                brows = view.window.screen(self.v_src[:, self.model.landmarks68[[19, 24]]], view.camera)[0, :, :2]
                face = maps.face_pixels(view.orig_sources, self.scalp_tri, view.window)
                view.behind = (layers.behind_face(view.photo, face, view.window, brows.numpy()),)
            return view.behind[0]

    def _fill_provider(self, view: _ScaleView) -> FillProvider:
        with self._lock:
            if self._fill is None:
                fill = MeshFill(self.model, self.state, self.face_ids)
                fill.set_gain(self._colour_gain(view, fill))
                self._fill = fill
            return self._fill

    @torch.no_grad()
    def _colour_gain(self, view: _ScaleView, fill: MeshFill) -> np.ndarray:
        """(n_surfaces, 3) gains matching the fill's colours to the photo: per surface (skin, each
        eye material, teeth, ...) the median of photo / rendered head over its well-seen pixels
        (clamped to [0.3, 3]); surfaces the photo shows too little of take the skin's gain."""
        win = view.window
        src = view.orig_sources
        hw = win.grid_h * win.grid_w
        sid = torch.full((hw,), -1, dtype=torch.long)
        sid[src.pix] = self.tri_surface[src.face]
        sid = sid.view(win.grid_h, win.grid_w).numpy()
        req = FillRequest(win, view.camera, self.v_src, self.n_src, (sid >= 0).astype(np.float32),
                          np.asarray(self.state.sh), self.state, EditParams(),
                          fragments=(src.pix, self.face_ids[src.face], src.bary))
        layer = fill.fill(req)
        r, c = win.slices
        seen = cv2.resize(view.photo[r, c], (win.grid_w, win.grid_h), interpolation=cv2.INTER_AREA)
        seen = seen.astype(np.float32) / 255.0
        gains = np.full((fill.n_surfaces, 3), np.nan, np.float32)
        kernel = np.ones((3, 3), np.uint8)
        for s in range(fill.n_surfaces):
            m = cv2.erode((sid == s).astype(np.uint8), kernel) > 0
            rend = layer.rgb[m]
            ok = rend.min(1) > 0.03
            if ok.sum() >= 30:
                gains[s] = np.clip(np.median(seen[m][ok] / rend[ok], axis=0), 0.3, 3.0)
        skin = self.model.region_names.index("M_Face")
        fallback = gains[skin] if np.isfinite(gains[skin]).all() else np.ones(3, np.float32)
        gains[~np.isfinite(gains).all(1)] = fallback
        return gains

    # ------------------------------------------------------------------ render
    def render(self, edit: EditParams, scale: float = 1.0, cancel: Callable[[], bool] | None = None) -> np.ndarray:
        """The edited photo, uint8 (round(H*scale), round(W*scale), 3)."""
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")

        def check() -> None:
            check_cancel(cancel, task="render")

        check()
        view = self._view(scale)
        edit, blink = eyes.split_blink(edit, self.state, self.model.expression_names)
        grid = None
        if is_zero_edit(edit, self.state, self.model):
            out = view.photo.copy()
        else:
            check()
            with torch.no_grad():
                grid = self._grid_maps(edit, view, check)
            check()
            out = self._compose(view, grid, check)
        if blink:
            out = eyes.close_edited_eyes(out, self.state, blink, None if grid is None else grid.flow,
                                         view.window)
        return out

    def _sources(self, edit: EditParams, view: _ScaleView) -> tuple[Sources, EditedHead]:
        """Correspondence of the edited head's grid pixels, and the edited head (its grid-screen
        vertices and triangle areas only when the geometry is not the fitted one)."""
        win, cam = view.window, view.camera
        expr, same_expr = edited_expression(edit, self.state, self.model)
        if same_expr and not (edit.yaw or edit.pitch or edit.roll):
            # light only: the geometry is the fitted one, reuse its rasterization
            src = view.orig_sources
            return src, EditedHead(self.v_src, self.n_src, None, None, self._fragments(src))
        v1, n1 = self._edited_geometry(edit, expr)
        s1 = win.screen(v1, cam)
        area1 = screen_areas(s1, self.tri)
        frags = tiles.raster_front(s1, self.tri, area1, win)
        src = trace_sources(frags, self.tri, self.v_src, self.n_src, n1, area1, view.orig, cam,
                            torch.from_numpy(self.person_mask()), self._texture_confidence(frags))
        return src, EditedHead(v1, n1, s1, area1, self._fragments(src))

    def _texture_confidence(self, frags) -> torch.Tensor | None:
        """(N,) the fitted texture's confidence at ``frags``' surface points (None without a texture):
        how much better than a stretched photo the fill would be there (:func:`flow.source_trust`)."""
        conf = self.state.texture_confidence
        if conf is None or self.state.texture is None:
            return None
        if self._tex_conf is None:
            uv, uv_faces = atlas_uvs(self.model)
            names = self.model.region_names
            photo_tiles = torch.isin(self.model.face_region[self.face_ids],
                                     torch.tensor([names.index(n) for n in PHOTO_TILES]))
            self._tex_conf = (torch.as_tensor(np.asarray(conf), dtype=torch.float32)[None, None] / 255.0,
                              uv, uv_faces[self.face_ids], photo_tiles)
        tex, uv, tri_uv, photo_tiles = self._tex_conf
        uvp = interpolate_packed(uv, tri_uv, frags.face, frags.bary, torch.zeros_like(frags.face))
        # materials the photo does not texture (teeth, eyes) are drawn as materials: always fillable
        return torch.where(photo_tiles[frags.face], sample_texture(tex, uvp)[:, 0], 1.0)

    def _fragments(self, src: Sources) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``src``'s pixels as fill-request fragments: triangles indexed into ``model.faces``."""
        return src.pix, self.face_ids[src.face], src.bary

    def _edited_geometry(self, edit: EditParams, expr: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Edited camera-frame vertices and unit normals (1,V,3) (= :func:`geometry.edited_vertices`,
        with only the changed blendshapes added to the cached fitted head, and the fitted normals
        rotated when only the pose changes)."""
        delta = expr - self._expr_fit
        idx = np.flatnonzero(np.abs(delta) > 1e-7)
        vm = self._v_model
        if idx.size:
            rows = torch.as_tensor(idx, device=vm.device)
            d = torch.as_tensor(delta[idx], device=vm.device)
            vm = vm + torch.einsum("k,kvc->vc", d, self.model.expression_basis[rows])[None]
        v1 = posed(self.model, self.state, vm, edit)
        if idx.size:
            return v1, vertex_normals(v1, self.model.faces)

        Ro = offset_rotation(edit, vm.device)
        n = self.n_src
        return v1, torch.nn.functional.normalize(n + neck_weights(self.model) * (n @ Ro.t() - n), dim=-1)

    @torch.no_grad()
    def _grid_maps(self, edit: EditParams, view: _ScaleView, check: Callable[[], None]) -> GridMaps:
        """Everything on the work grid: source coordinates, relight gain, fill need, change masks."""
        win = view.window
        src, head = self._sources(edit, view)
        check()
        sh_new = target_sh(self.state, edit, self.photo_light)
        covered = maps.coverage(src, win)
        moving_px = maps.moves(src)
        flow, moving, face, face_px = None, np.zeros((win.grid_h, win.grid_w), bool), None, None
        if moving_px:
            inner = self.inner_tri if edited_expression(edit, self.state, self.model)[1] else None
            flow, moving, face, face_px = maps.flow_map(src, covered, view.orig.covered.numpy(), win, view.head_px,
                                                        view.taper, self.scalp_tri, inner, self.cut_tri)
        gain, lit = None, np.zeros((win.grid_h, win.grid_w), bool)
        if not np.array_equal(sh_new, np.asarray(self.state.sh, np.float32).reshape(9, 3)) or moving_px:
            own = None if self.shading_ratio is None else self.shading_ratio(src, head, edit, win)
            gain, lit = maps.relight_gain(src, self._person_shading(view), self.relight_tri, self.state.sh, sh_new,
                                          win, flow, own)
        need = maps.fill_need(src, covered, win, self.fillable_tri)
        return GridMaps(win, edit, head, sh_new, flow, moving, gain, lit, need, need > 1e-3, face, face_px,
                        maps.source_facing(src, win) if need.max() > 1e-3 else None)

    def _compose(self, view: _ScaleView, grid: GridMaps, check: Callable[[], None]) -> np.ndarray:
        """Full resolution, tile by tile over the work window; untouched tiles stay the photo's."""
        win = view.window
        out = view.photo.copy()
        moving, lit, filled = grid.moving, grid.lit, grid.filled
        if not (moving.any() or lit.any() or filled.any()):
            return out
        flow = np.ascontiguousarray(grid.flow, np.float32) if grid.flow is not None else None
        gain = np.ascontiguousarray(grid.gain, np.float32) if grid.gain is not None else None
        sums = {k: cv2.integral(v.astype(np.uint8)) for k, v in (("m", moving), ("l", lit), ("f", filled))}
        layer = None
        face_skin = None  # where relit pixels take the skin's colour at their new brightness
        if lit.any() and view.tone is not None and self.retone:
            face_skin = blendmap.feather(fill_layer.skin_map(grid, self.retone_faces).astype(np.float32), RETONE_FEATHER_PX)
        portrait = self._portrait_layers(view) if self.layered and moving.any() else None
        behind = self._behind_face(view) if moving.any() else None
        clothes = None if self.jaw_clothes is None or not moving.any() else self.jaw_clothes.prepare(
            view.photo, win, view.camera, view.head_px, self._fragments(view.orig_sources),
            (self.v_src, grid.head.verts), grid.head.fragments, moving)
        for ox0, oy0, w, h in tiles.tiles(win, TILE_PX):
            gbox = tiles.grid_box(win, ox0, oy0, w, h)
            has = {k: tiles.box_sum(v, gbox) > 0 for k, v in sums.items()}
            if not (has["m"] or has["l"] or has["f"]):
                continue
            check()
            if has["m"]:
                tile = tiles.moved_tile(view.photo, win, flow, portrait, (ox0, oy0, w, h), grid.face, behind,
                                        grid.face_px)
                tile = tile if clothes is None else clothes.blend(tile, ox0, oy0, w, h)
            else:
                tile = np.array(view.photo[oy0:oy0 + h, ox0:ox0 + w])  # a copy: never write into the photo
            if has["l"]:  # relight the part of the tile under lit grid pixels
                rx, ry, rw, rh = tiles.sub_rect(lit, gbox, win, ox0, oy0, w, h)
                if rw > 0 and rh > 0:
                    part = tile[ry - oy0:ry - oy0 + rh, rx - ox0:rx - ox0 + rw]
                    relit = relight.apply_gain_u8(part, upsample(win, gain, rx, ry, rw, rh))
                    if face_skin is not None:
                        relit = skin_tone.retone_u8(part, relit, view.tone, upsample(win, face_skin, rx, ry, rw, rh))
                    tile[ry - oy0:ry - oy0 + rh, rx - ox0:rx - ox0 + rw] = relit
            if has["f"]:
                if layer is None:
                    layer = self._fill_layer(view, grid)
                tile = tiles.blend_layer(tile, layer, ox0, oy0, w, h,
                                         tiles.sub_rect(filled, gbox, win, ox0, oy0, w, h))
            out[oy0:oy0 + h, ox0:ox0 + w] = tile
        return out

    def _fill_layer(self, view: _ScaleView, grid: GridMaps) -> tuple[Window, np.ndarray, grain.Grain | None]:
        """The fill provider's layer matched to the photo (:func:`fill_layer.draw`)."""
        return fill_layer.draw(self._fill_provider(view), view.photo, view.camera, self.state, grid, self.face_ids,
                               self.tri, self.skin_faces, view.grains)
