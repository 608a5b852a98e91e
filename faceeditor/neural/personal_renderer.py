"""``PersonalRenderer`` (name ``"personal"``): the mesh compositor relit by the Personal model.

The photo is warped exactly as by :class:`~faceeditor.edit.compose.MeshCompositor`; its relight
gain on the face skin is the Personal model's shading ratio (paper 001's pipeline,
:mod:`faceeditor.neural.personal`): the luminance of the Blinn-Phong render with the learned
ambient occlusion and self-shadowing under the edited light over the same under the photo's fitted
light, per surface point (the albedos are the model's; only their ratio touches the photo, so
the photo's own detail stays). So a light moved to the side moves the highlights on nose and
forehead and lets the nose, brow and lips cast soft shadows that follow it. Off the face skin
(hair, neck, clothes, eyes, mouth) the compositor's SH relight stays, blended in over a band
inside the skin's outline (no seam). The colour stays true: the ratio is on luminance and the
tint is the compositor's (only a user-picked light colour tints).

The edited light (:class:`~faceeditor.edit.light.LightParams`) maps onto the photo's Personal
light: its direction is the photo's fitted Personal direction while azimuth and elevation are "as
in photo", else the asked-for one; intensity and ambient scale the light's diffuse + specular and
ambient terms by their ratio to the photo's SH light controls. An explicit SH light (``light.sh``)
is left to the SH relight.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.core.progress import Progress
from faceeditor.core.state import FaceState
from faceeditor.edit.compose import MeshCompositor
from faceeditor.edit.flow import Sources
from faceeditor.edit.geometry import model_vertices, offset_rotation
from faceeditor.edit.grid import Window
from faceeditor.edit.maps import EditedHead
from faceeditor.edit.params import EditParams
from faceeditor.edit.person_light import TRI_SKIN
from faceeditor.edit.relight import SHADE_FLOOR, soft_limit
from faceeditor.morphable.model import FaceModel
from faceeditor.neural.personal import PersonalConfig, PersonalLight, PersonalModel, Surface, photo_key
from faceeditor.neural.personal_fit import add_photo, fit_personal, surface_points
from faceeditor.render.blinn_phong import shadow_visibility
from faceeditor.render.interpolate import interpolate_packed
from faceeditor.render.sh import direction_from_angles

SPLIT_DEG = 30.0  # over this turn of the light the direct/ambient split goes from the fit's to the controls'
BLEND_BAND = 0.06  # fraction of the face's size: the Personal ratio fades in over this band inside the skin


class PersonalRenderer:
    """A :class:`~faceeditor.edit.renderer.PhotoRenderer` bound to one photo, its fitted face and a
    :class:`PersonalModel` (fitted on this photo alone when none is given; a model fitted on other
    photos of the person gets this photo's light fitted and appended)."""

    name = "personal"

    def __init__(self, photo: np.ndarray, state: FaceState, model: FaceModel, personal: PersonalModel | None = None,
                 config: PersonalConfig | None = None, progress: Progress | None = None, **kw) -> None:
        if personal is None:
            personal, _ = fit_personal([photo], [state], model, config, progress)
        index = personal.index_of(photo_key(photo))
        if index is None:
            index = add_photo(personal, photo, state, model, progress=progress)
        self.personal = personal
        self.index = index
        self.light = personal.light(index)
        self.comp = MeshCompositor(photo, state, model, shading_ratio=self.shading_ratio, **kw)
        self._v_model = model_vertices(self.comp.model, state)

    def render(self, edit: EditParams, scale: float = 1.0, cancel: Callable[[], bool] | None = None) -> np.ndarray:
        """The edited photo, uint8 (round(H*scale), round(W*scale), 3)."""
        return self.comp.render(edit, scale, cancel)

    def target_light(self, edit: EditParams) -> PersonalLight | None:
        """The Personal light the edit asks for (module docstring); None for an explicit SH light."""
        light = edit.light
        if light is None:
            return self.light
        if light.sh is not None:
            return None
        ref, own = self.comp.photo_light, self.light
        same_dir = (light.azimuth, light.elevation) == (ref.azimuth, ref.elevation)
        az, el = own.angles if same_dir else (light.azimuth, light.elevation)
        gain = light.intensity / max(ref.intensity, 1e-3)
        amb = light.ambient / ref.ambient if ref.ambient > 1e-3 else 1.0
        # a frontal light and an ambient one look alike on a face: a light turned away from the
        # photo's takes the SH controls' split of the photo's total (ka + kd) into direct and ambient
        cos_a = float(np.dot(own.direction, direction_from_angles(az, el).numpy()))
        t = min(1.0, float(np.degrees(np.arccos(np.clip(cos_a, -1.0, 1.0)))) / SPLIT_DEG)
        total = (own.ka + own.kd) / max(ref.intensity + ref.ambient, 1e-3)
        gain = (1 - t) * gain + t * total * light.intensity / max(own.kd, 1e-4)
        amb = (1 - t) * amb + t * total * light.ambient / max(own.ka, 1e-4)
        return own.moved(az, el, gain, amb)

    @torch.no_grad()
    def surfaces(self, src: Sources, head: EditedHead, edit: EditParams) -> tuple[Surface, Surface]:
        """The fitted (source) and the edited surface points of the edited head's grid pixels."""
        comp = self.comp
        s_old = surface_points(comp.model, comp.state, comp.face_ids, src.face, src.bary, self._v_model, comp.v_src)
        R = s_old.rotation
        R_new = offset_rotation(edit) @ R if (edit.yaw or edit.pitch or edit.roll) else R
        zero = torch.zeros_like(src.face)
        x_new = interpolate_packed(head.verts[0], comp.tri, src.face, src.bary, zero)
        s_old.n_model = F.normalize(src.n_src.float() @ R, dim=-1)
        s_new = Surface(s_old.uv, s_old.x_model, F.normalize(src.n_dst.float() @ R_new, dim=-1), R_new, x_new)
        return s_old, s_new

    @torch.no_grad()
    def shading_ratio(self, src: Sources, head: EditedHead, edit: EditParams,
                      win: Window) -> tuple[np.ndarray, np.ndarray] | None:
        """:data:`faceeditor.edit.maps.ShadingRatio`: the Personal model's luminance log ratio (new /
        fitted light) on the edited head's face skin, and its blend weight."""
        new = self.target_light(edit)
        if new is None or src.pix.numel() == 0:
            return None
        comp = self.comp
        s_old, s_new = self.surfaces(src, head, edit)
        lights = (PersonalModel.as_tensors(self.light), PersonalModel.as_tensors(new))
        lum = []
        for s, verts, light in ((s_old, comp.v_src, lights[0]), (s_new, head.verts, lights[1])):
            n_cam = s.n_model @ s.rotation.t()
            s.vis_geo = shadow_visibility(verts[0], comp.tri, s.x_cam, n_cam, light["direction"],
                                          self.personal.config.shadow_px)
            lum.append(self.personal.shade(s, light, photo=self.index).mean(1).clamp(min=0.0).numpy())
        L = soft_limit(_soft_log(lum[1], SHADE_FLOOR * float(lum[1].mean()))
                       - _soft_log(lum[0], SHADE_FLOOR * float(lum[0].mean())))
        gh, gw = win.grid_h, win.grid_w
        pix = src.pix.numpy()
        out = np.zeros(gh * gw, np.float32)
        out[pix] = L
        skin = (comp.relight_tri[src.face] == TRI_SKIN).numpy()
        w = np.zeros(gh * gw, np.float32)
        w[pix] = skin * src.warp_conf.numpy()
        return out.reshape(gh, gw), _fade_in(w.reshape(gh, gw))


def _soft_log(s: np.ndarray, floor: float) -> np.ndarray:
    """``log((s^4 + floor^4)^(1/4))``: the compositor's soft shading floor (:mod:`faceeditor.edit.relight`)."""
    floor = max(floor, 1e-4)
    return 0.25 * np.log(np.power(s, 4) + floor**4)


def _fade_in(w: np.ndarray) -> np.ndarray:
    """``w`` (H,W) times a smoothstep of the distance into its support over :data:`BLEND_BAND` of its size."""
    inside = (w > 0.05).astype(np.uint8)
    if not inside.any():
        return w
    ys, xs = np.nonzero(inside)
    size = max(ys.max() - ys.min(), xs.max() - xs.min(), 1)
    d = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    x = np.clip(d / max(BLEND_BAND * size, 1.0), 0.0, 1.0)
    return (w * x * x * (3.0 - 2.0 * x)).astype(np.float32)
