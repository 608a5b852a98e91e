"""Materials of the 3D view's head: skin from the texture, ivory teeth and darker gums occluded
toward the back of the mouth, shaded off-white sclera, a dark iris with a wet highlight.

Qt-free. :func:`corner_materials` (on the engine's thread: it reads the model with torch) gives
each triangle corner ``(material, occlusion, 0)``, sent as the mesh's per-corner colour;
:data:`HEAD_FRAGMENT_SHADER` (used by :class:`faceeditor.app.scene.HeadRenderer`) turns them into
colours. Teeth behind closed lips stay hidden by depth (the lips are in front of them).
"""

from __future__ import annotations

import numpy as np

from faceeditor.render.gl import SH_SHADING_GLSL

SKIN, GUMS, TEETH, SCLERA, IRIS = 0.0, 1.0, 2.0, 3.0, 4.0
MATERIAL_OF_REGION = {"M_GumsTongue": GUMS, "M_Teeth": TEETH, "M_ScleraLeft": SCLERA, "M_ScleraRight": SCLERA,
                      "M_IrisLeft": IRIS, "M_IrisRight": IRIS}
MOUTH_AO_MIN = 0.22  # light left at the back of the mouth (molars, throat), 1 at the front teeth
SCLERA_AO_MIN = 0.6  # light left on the sclera toward the lids (1 around the iris)
SCLERA_DEG = (26.0, 70.0)  # angle from the eye's axis where the sclera's shading starts and ends
MOUTH_CLOSED_LIGHT = 0.12  # light left on teeth and gums seen between closed lips
LIP_GAP_CM = (0.25, 0.8)  # inner-lip gap over which the mouth counts from closed to open

HEAD_VERTEX_SHADER = """
#version 330
const float MOUTH_CLOSED_LIGHT = @CLOSED@;
uniform mat4 u_proj;
uniform mat4 u_view;
uniform float u_mouth_open;  // 0: lips closed (what shows of the mouth between them is in shadow), 1: open
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
in vec2 in_uv;
out vec3 v_normal;
out vec2 v_uv;
out vec3 v_pos;
out vec3 v_tint;  // albedo = texture * v_tint.x + v_base, times the occlusion v_tint.y
out vec3 v_base;
out float v_gloss;
void main() {
    vec4 p = u_view * vec4(in_pos, 1.0);
    v_normal = mat3(u_view) * in_normal;
    v_uv = in_uv;
    v_pos = p.xyz;
    float m = in_color.x;
    // skin: the texture; iris: the atlas's (fitted or painted) iris, darker; the rest: fixed colours
    float mouth = m > 0.5 && m < 2.5 ? mix(MOUTH_CLOSED_LIGHT, 1.0, u_mouth_open) : 1.0;
    v_tint = vec3(m < 0.5 ? 1.0 : (m > 3.5 ? 0.6 : 0.0), in_color.y * mouth, 0.0);
    v_base = m < 0.5 || m > 3.5 ? vec3(0.0)
           : m < 1.5 ? vec3(0.36, 0.13, 0.14)    // gums and tongue, in the mouth's shade
           : m < 2.5 ? vec3(0.92, 0.86, 0.72)    // teeth: ivory
           : vec3(0.86, 0.83, 0.78);             // sclera: off-white
    v_gloss = m < 0.5 ? 0.0 : m < 1.5 ? 0.08 : m < 2.5 ? 0.12 : m < 3.5 ? 0.3 : 0.45;
    gl_Position = u_proj * p;
}
""".replace("@CLOSED@", repr(MOUTH_CLOSED_LIGHT))

HEAD_FRAGMENT_SHADER = """
#version 330
uniform sampler2D u_tex;
uniform bool u_use_tex;
uniform bool u_use_light;
uniform vec3 u_sh[9];
uniform vec3 u_eye;
uniform vec4 u_light;  // the light's dominant direction (xyz) and the highlights' strength (w)
in vec3 v_normal;
in vec2 v_uv;
in vec3 v_pos;
in vec3 v_tint;
in vec3 v_base;
in float v_gloss;
out vec4 f_color;
@SH_SHADING@void main() {
    vec3 tex = u_use_tex ? texture(u_tex, v_uv).rgb : vec3(0.72, 0.55, 0.45);
    vec3 c = (tex * v_tint.x + v_base) * v_tint.y;
    if (u_use_light) {
        vec3 n = normalize(v_normal);
        c *= shading(n);
        if (v_gloss > 0.0) {  // a highlight on the wet surfaces (eyes, teeth, gums)
            vec3 v = normalize(u_eye - v_pos);
            float s = pow(max(dot(reflect(-u_light.xyz, n), v), 0.0), 48.0);
            c += vec3(v_gloss * s * v_tint.y * u_light.w);
        }
    }
    f_color = vec4(c, 1.0);
}
""".replace("@SH_SHADING@", SH_SHADING_GLSL)


def light_uniform(sh: np.ndarray | None) -> tuple[float, float, float, float]:
    """``u_light`` for :data:`HEAD_FRAGMENT_SHADER`: the SH's dominant direction (its linear band,
    luminance-weighted) and the highlights' strength (half the ambient level; 0 without light)."""
    if sh is None:
        return (0.0, 0.0, 1.0, 0.0)
    lum = np.asarray(sh, np.float64) @ np.array([0.3, 0.59, 0.11])
    d = np.array([lum[3], lum[1], lum[2]])
    norm = float(np.linalg.norm(d))
    if norm < 1e-6:
        return (0.0, 0.0, 1.0, 0.0)
    d /= norm
    return (float(d[0]), float(d[1]), float(d[2]), float(max(lum[0], 0.0) * 0.5))


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def vertex_materials(region_names: list[str], face_region: np.ndarray, faces: np.ndarray,
                     neutral: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-triangle material codes (F,) and per-vertex occlusion (V,) in (0, 1] from the neutral
    head (model frame, +z forward): the mouth darkens from the front teeth backward, the sclera
    from the iris toward the lids."""
    mat = np.full(len(faces), SKIN, np.float32)
    for name, code in MATERIAL_OF_REGION.items():
        if name in region_names:
            mat[face_region == region_names.index(name)] = code
    ao = np.ones(len(neutral), np.float32)
    teeth = np.unique(faces[mat == TEETH])
    mouth = np.unique(faces[(mat == TEETH) | (mat == GUMS)])
    if len(teeth):
        z = neutral[:, 2]
        front, back = float(z[teeth].max()), float(z[teeth].min())
        depth = _ramp(z[mouth], back, front) ** 1.3
        ao[mouth] = MOUTH_AO_MIN + (1.0 - MOUTH_AO_MIN) * depth
    for side in ("Left", "Right"):
        if f"M_Sclera{side}" not in region_names:
            continue
        sclera = np.unique(faces[face_region == region_names.index(f"M_Sclera{side}")])
        d = neutral[sclera] - neutral[sclera].mean(0)
        ang = np.degrees(np.arccos(np.clip(d[:, 2] / np.maximum(np.linalg.norm(d, axis=1), 1e-9), -1, 1)))
        ao[sclera] = 1.0 - (1.0 - SCLERA_AO_MIN) * _ramp(ang, *SCLERA_DEG)
    return mat, ao


def mouth_open(vertices: np.ndarray, landmarks68: np.ndarray) -> float:
    """How open the mouth of the posed head ``vertices`` (V,3, cm) is, 0 (lips closed) to 1, from
    the gap between the middle inner-lip landmarks (iBUG 62 and 66) of ``landmarks68`` (vertex ids)."""
    gap = float(np.linalg.norm(vertices[landmarks68[62]] - vertices[landmarks68[66]]))
    return float(_ramp(np.array(gap), *LIP_GAP_CM))


def corner_materials(model, face_ids: np.ndarray) -> np.ndarray:
    """``(material, occlusion, 0)`` per corner of the triangles ``face_ids`` (3F', 3) float32, in
    the order of :class:`~faceeditor.render.gl.MeshBuffers` corners."""
    faces = model.faces.cpu().numpy()
    mat, ao = vertex_materials(list(model.region_names), model.face_region.cpu().numpy(), faces,
                               model.neutral.cpu().numpy().astype(np.float64))
    sel = faces[face_ids]
    out = np.zeros((sel.size, 3), np.float32)
    out[:, 0] = np.repeat(mat[face_ids], 3)
    shaded = (out[:, 0] != SKIN) & (out[:, 0] != IRIS)  # skin sharing a vertex with the mouth stays lit
    out[:, 1] = np.where(shaded, ao[sel.reshape(-1)], 1.0)
    return out
