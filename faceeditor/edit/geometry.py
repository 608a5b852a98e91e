"""The edited head: vertices, state and light target of ``FaceState + EditParams``.

Pose edits rotate the head about its centre in camera space (the ICT origin, i.e. the state's
translation ``t``): ``R_new = R_offset @ R_fit``, so a vertex ``p = R_fit v + t`` moves to
``R_offset (p - t) + t`` (:class:`~faceeditor.edit.params.EditParams`). The neck is *skinned*:
its weight falls from 1 under the jaw to 0 at the cut of the ICT neck, so the base of the neck
stays on the shoulders while the head turns (what a person does, and what keeps the warp of
the neck and collar small). The face itself is rigidly rotated, so a re-fit measures the
requested angles. Expression edits replace the fitted ARKit weights named in the edit.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from faceeditor.core.pose import euler_to_matrix
from faceeditor.core.state import FaceState
from faceeditor.edit.light import LightParams, fit_light, light_tint, sh_colour
from faceeditor.edit.params import EditParams
from faceeditor.morphable.model import FaceModel
from faceeditor.render.sh import direction_from_angles

NECK_TOP_Y = -9.0  # cm, model frame: vertices above rotate fully with the head (chin is at -7.6)
NECK_BOTTOM_Y = -19.3  # cm: the cut of the ICT neck; weight 0 there
EAR_MIN_X_CM = 7.5  # model frame: face-material vertices this far to the side ...
EAR_MAX_Z_CM = 3.5  # ... and behind the jaw's front at the ear root (jaw points 0/16: x 7.4, z 3.7) are the ears


def neck_weights(model: FaceModel) -> torch.Tensor:
    """(1,V,1) per-vertex weight of the head rotation (1 on the head, 0 at the bottom of the neck;
    ~0.1 ms, computed per call)."""
    y = model.neutral[:, 1]
    x = ((y - NECK_BOTTOM_Y) / (NECK_TOP_Y - NECK_BOTTOM_Y)).clamp(0.0, 1.0)
    return (x * x * (3.0 - 2.0 * x))[None, :, None]  # smoothstep


def ear_vertices(model: FaceModel) -> torch.Tensor:
    """(V,) bool: the ICT ears (the face material beside and behind the ear roots)."""
    v = model.neutral
    face = model.vertex_region == model.vertex_region_names.index("face")
    return face & (v[:, 0].abs() > EAR_MIN_X_CM) & (v[:, 2] < EAR_MAX_Z_CM)


def offset_rotation(edit: EditParams, device: torch.device | str = "cpu") -> torch.Tensor:
    """(3,3) camera-frame rotation of the pose offset (float32)."""
    return euler_to_matrix(edit.yaw, edit.pitch, edit.roll, device=torch.device(device))[0]


def fitted_expression(state: FaceState, model: FaceModel) -> dict[str, float]:
    """``{name: weight}`` of the state's fitted expression (for :meth:`EditParams.is_zero`)."""
    return {n: float(w) for n, w in zip(model.expression_names, np.asarray(state.expression).reshape(-1))}


def is_zero_edit(edit: EditParams, state: FaceState, model: FaceModel) -> bool:
    return edit.is_zero(fitted_expression(state, model))


def edited_expression(edit: EditParams, state: FaceState, model: FaceModel) -> tuple[np.ndarray, bool]:
    """The edit's (53,) expression weights, and whether they are the fitted ones (clamped to [0, 1])."""
    fitted = np.asarray(state.expression, np.float32)
    expr = edit.expression_vector(fitted, model.expression_names)
    return expr, bool(np.array_equal(expr, np.clip(fitted, 0.0, 1.0)))


def model_vertices(model: FaceModel, state: FaceState, expression: np.ndarray | None = None) -> torch.Tensor:
    """Model-frame vertices (1,V,3) of the state's identity with ``expression`` (default: fitted)."""
    dev = model.device
    expr = state.expression if expression is None else expression
    ident = torch.as_tensor(np.asarray(state.identity, np.float32), device=dev)[None]
    return model.vertices(ident, torch.as_tensor(np.asarray(expr, np.float32), device=dev)[None])


def posed(model: FaceModel, state: FaceState, verts_model: torch.Tensor, edit: EditParams | None = None) -> torch.Tensor:
    """Camera-frame vertices (1,V,3): fitted pose, then the edit's rotation offset about the head
    centre with the neck skinned (see the module docstring)."""
    dev = model.device
    R = torch.as_tensor(np.asarray(state.rotation, np.float32), device=dev)
    t = torch.as_tensor(np.asarray(state.translation, np.float32), device=dev).reshape(1, 1, 3)
    rel = verts_model @ R.t()  # p - t
    if edit is not None and (edit.yaw or edit.pitch or edit.roll):
        Ro = offset_rotation(edit, dev)
        rel = rel + neck_weights(model) * (rel @ Ro.t() - rel)
    return rel + t


def edited_vertices(model: FaceModel, state: FaceState, edit: EditParams) -> torch.Tensor:
    """Camera-frame vertices (1,V,3) of the edited head."""
    expr = edit.expression_vector(np.asarray(state.expression), model.expression_names)
    return posed(model, state, model_vertices(model, state, expr), edit)


def target_sh(state: FaceState, edit: EditParams, reference: LightParams | None = None) -> np.ndarray:
    """(9,3) SH irradiance the edited photo should show (``reference``: the state's
    :func:`photo_light` when the caller keeps it, which saves refitting it, ~7 ms, per call).

    ``edit.light is None`` (or controls equal to ``reference``) keeps the fitted SH; an explicit
    ``light.sh`` is used as given. Otherwise the controls describe a directional light and the part
    of the fitted SH that the directional model does not explain (second-order terms: the residual
    against :func:`photo_light`) is kept in proportion to ``max(0, cos a)^2``, ``a`` the angle
    between the photo's and the requested light direction: controls at their "as in photo" values
    reproduce the fitted SH, a light moved far away is a clean directional light (the fitted
    residual was shaped by the old direction and would put shadows where the new light cannot).

    Colour: the light keeps the *fitted* light's colour (:func:`~faceeditor.edit.light.sh_colour`),
    whatever its temperature control says; only a temperature other than the reference's tints it,
    by the ratio of the two black-body colours (:func:`~faceeditor.edit.light.light_tint`):
    ``sh_new = (L_new x c + w (sh - L_ref x c)) * tint`` with ``L`` the white (luminance) SH of the
    controls and ``c`` the fitted colour. Direction and intensity thus never change the colour
    (the channel balance of ``sh_new`` is exactly ``c * tint``, :func:`faceeditor.edit.relight.light_change`).
    """
    sh = np.asarray(state.sh, np.float32).reshape(9, 3)
    light = edit.light
    if light is None:
        return sh
    if light.sh is not None:
        return light.to_sh()
    ref = photo_light(state) if reference is None else reference
    if light == ref:  # "as in photo": exactly the fitted SH
        return sh
    cos_a = float(torch.dot(direction_from_angles(ref.azimuth, ref.elevation),
                            direction_from_angles(light.azimuth, light.elevation)))
    w = max(0.0, cos_a) ** 2
    colour = sh_colour(sh)
    out = _white_sh(light) * colour[None] + w * (sh.astype(np.float64) - _white_sh(ref) * colour[None])
    return (out * light_tint(light.temperature, ref.temperature, colour)[None]).astype(np.float32)


def _white_sh(light: LightParams) -> np.ndarray:
    """(9,1) float64 luminance SH of ``light``'s direction, intensity and ambient (its colour left out)."""
    return dataclasses.replace(light, temperature=6500.0, sh=None).to_sh()[:, :1].astype(np.float64)


def photo_light(state: FaceState) -> LightParams:
    """Light controls describing the fitted SH ("as in photo"): the start values of light edits
    (:func:`faceeditor.edit.light.fit_light`: the directional light and ambient that best give the
    shading the fitted SH puts on a face)."""
    return fit_light(np.asarray(state.sh))


def edited_state(state: FaceState, edit: EditParams, model: FaceModel) -> FaceState:
    """A copy of ``state`` with the edit applied rigidly (rotation, expression, SH): what a
    re-fit of the edited photo should find (the neck skinning is not representable here)."""
    out = state.copy()
    Ro = offset_rotation(edit).numpy().astype(np.float64)
    out.rotation = (Ro @ np.asarray(state.rotation, np.float64)).astype(np.float32)
    out.expression = edit.expression_vector(np.asarray(state.expression), model.expression_names)
    out.sh = target_sh(state, edit)
    return out
