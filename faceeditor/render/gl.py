"""OpenGL mesh rendering with moderngl: the viewport's renderer and the rasterizer's reference.

:class:`GLMeshRenderer` draws a triangle mesh (per-corner positions, normals, colours, UVs)
with an optional texture and SH lighting (:mod:`faceeditor.render.sh` convention) into
whatever framebuffer is bound on a moderngl context: the Qt viewport's, or an offscreen one
from :func:`offscreen_context` (EGL, no display needed). The projection is
:func:`faceeditor.core.camera.gl_projection`, so it matches the torch rasterizer pixel for pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VERTEX_SHADER = """
#version 330
uniform mat4 u_proj;
uniform mat4 u_view;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
in vec2 in_uv;
out vec3 v_normal;
out vec3 v_color;
out vec2 v_uv;
void main() {
    vec4 p = u_view * vec4(in_pos, 1.0);
    v_normal = mat3(u_view) * in_normal;
    v_color = in_color;
    v_uv = in_uv;
    gl_Position = u_proj * p;
}
"""

SH_SHADING_GLSL = """
vec3 shading(vec3 n) {
    // real SH basis, same order and constants as faceeditor/render/sh.py
    return u_sh[0] * 0.28209479 + u_sh[1] * (0.48860251 * n.y) + u_sh[2] * (0.48860251 * n.z)
         + u_sh[3] * (0.48860251 * n.x) + u_sh[4] * (1.09254843 * n.x * n.y)
         + u_sh[5] * (1.09254843 * n.y * n.z) + u_sh[6] * (0.31539157 * (3.0 * n.z * n.z - 1.0))
         + u_sh[7] * (1.09254843 * n.x * n.z) + u_sh[8] * (0.54627422 * (n.x * n.x - n.y * n.y));
}
"""  # the real SH irradiance of normal n (shared by every shader that shades a head)

FRAGMENT_SHADER = """
#version 330
uniform sampler2D u_tex;
uniform bool u_use_tex;
uniform bool u_use_light;
uniform vec3 u_sh[9];
in vec3 v_normal;
in vec3 v_color;
in vec2 v_uv;
out vec4 f_color;
@SH_SHADING@void main() {
    vec3 albedo = u_use_tex ? texture(u_tex, v_uv).rgb : v_color;
    vec3 c = u_use_light ? albedo * shading(normalize(v_normal)) : albedo;
    f_color = vec4(c, 1.0);
}
""".replace("@SH_SHADING@", SH_SHADING_GLSL)

WIRE_FRAGMENT_SHADER = """
#version 330
uniform vec3 u_wire_color;
out vec4 f_color;
void main() { f_color = vec4(u_wire_color, 1.0); }
"""


def offscreen_context():
    """A standalone moderngl context through EGL (works without a display)."""
    import moderngl

    return moderngl.create_standalone_context(backend="egl")


@dataclass
class MeshBuffers:
    """Per-corner (unindexed) arrays of one mesh: (3F, k) float32 each."""

    positions: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    uvs: np.ndarray

    @staticmethod
    def from_mesh(vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray | None = None,
                  colors: np.ndarray | None = None, uvs: np.ndarray | None = None,
                  faces_uv: np.ndarray | None = None) -> MeshBuffers:
        corners = np.asarray(faces).reshape(-1)
        pos = np.asarray(vertices, np.float32)[corners]
        nrm = np.asarray(normals, np.float32)[corners] if normals is not None else np.zeros_like(pos)
        col = np.asarray(colors, np.float32)[corners] if colors is not None else np.ones_like(pos)
        if uvs is not None:
            uv_idx = np.asarray(faces_uv if faces_uv is not None else faces).reshape(-1)
            uv = np.asarray(uvs, np.float32)[uv_idx]
        else:
            uv = np.zeros((len(corners), 2), np.float32)
        return MeshBuffers(pos, nrm, col, uv)


class GLMeshRenderer:
    """Draws one mesh on a moderngl context; update arrays cheaply between frames."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.prog = ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=FRAGMENT_SHADER)
        self.wire_prog = ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=WIRE_FRAGMENT_SHADER)
        self._vbos: dict[str, object] = {}
        self._vao = None
        self._wire_vao = None
        self._count = 0
        self.texture = None

    def set_mesh(self, mesh: MeshBuffers) -> None:
        """Upload (or update in place when the size is unchanged) the mesh arrays."""
        arrays = {"in_pos": mesh.positions, "in_normal": mesh.normals, "in_color": mesh.colors, "in_uv": mesh.uvs}
        same = self._count == len(mesh.positions) and self._vao is not None
        for name, arr in arrays.items():
            data = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
            if same:
                self._vbos[name].write(data)
            else:
                if name in self._vbos:
                    self._vbos[name].release()
                self._vbos[name] = self.ctx.buffer(data)
        if not same:
            fmt = {"in_pos": "3f", "in_normal": "3f", "in_color": "3f", "in_uv": "2f"}
            self._vao = self.ctx.vertex_array(self.prog, [(self._vbos[k], fmt[k], k) for k in arrays
                                                          if k in self.prog])
            self._wire_vao = self.ctx.vertex_array(self.wire_prog, [(self._vbos["in_pos"], "3f", "in_pos")])
            self._count = len(mesh.positions)

    def set_texture(self, image: np.ndarray | None) -> None:
        """Texture from uint8 HxWx3 (row 0 = top of the image, i.e. v = 1)."""
        if self.texture is not None:
            self.texture.release()
            self.texture = None
        if image is None:
            return
        img = np.ascontiguousarray(np.flipud(np.asarray(image, np.uint8)[..., :3]))
        self.texture = self.ctx.texture((img.shape[1], img.shape[0]), 3, img.tobytes())
        self.texture.filter = (self.ctx.LINEAR_MIPMAP_LINEAR, self.ctx.LINEAR)
        self.texture.build_mipmaps()

    def draw(self, proj: np.ndarray, view: np.ndarray | None = None, sh: np.ndarray | None = None,
             wireframe: bool = False, wire_color: tuple[float, float, float] = (0.1, 0.9, 0.4)) -> None:
        """Draw with row-major 4x4 ``proj``/``view`` matrices and SH irradiance ``sh`` (9,3) or None."""
        if self._vao is None:
            return
        view = np.eye(4, dtype=np.float32) if view is None else view
        for prog in (self.prog, self.wire_prog):
            prog["u_proj"].write(np.ascontiguousarray(proj.T, dtype=np.float32).tobytes())
            prog["u_view"].write(np.ascontiguousarray(view.T, dtype=np.float32).tobytes())
        self.prog["u_use_light"].value = sh is not None
        if sh is not None:
            self.prog["u_sh"].write(np.ascontiguousarray(sh, dtype=np.float32).tobytes())
        self.prog["u_use_tex"].value = self.texture is not None
        if self.texture is not None:
            self.texture.use(0)
            self.prog["u_tex"].value = 0
        self._vao.render()
        if wireframe:
            self.wire_prog["u_wire_color"].value = wire_color
            self.ctx.wireframe = True
            self.ctx.polygon_offset = (-1.0, -1.0)
            self._wire_vao.render()
            self.ctx.wireframe = False
            self.ctx.polygon_offset = (0.0, 0.0)


def render_offscreen(mesh: MeshBuffers, proj: np.ndarray, width: int, height: int, *,
                     view: np.ndarray | None = None, sh: np.ndarray | None = None, texture: np.ndarray | None = None,
                     background: tuple[float, float, float] = (0.0, 0.0, 0.0), ctx=None) -> tuple[np.ndarray, np.ndarray]:
    """Render to an offscreen framebuffer. Returns float32 RGB (H,W,3) and coverage mask (H,W) bool,
    rows ordered like an image (row 0 at the top)."""
    own = ctx is None
    ctx = offscreen_context() if own else ctx
    try:
        fbo = ctx.framebuffer(color_attachments=[ctx.renderbuffer((width, height), 4, dtype="f4")],
                              depth_attachment=ctx.depth_renderbuffer((width, height)))
        fbo.use()
        ctx.viewport = (0, 0, width, height)
        ctx.enable(ctx.DEPTH_TEST)
        fbo.clear(*background, -1.0, depth=1.0)  # alpha -1 marks uncovered pixels
        renderer = GLMeshRenderer(ctx)
        renderer.set_mesh(mesh)
        renderer.set_texture(texture)
        renderer.draw(proj, view, sh)
        raw = np.frombuffer(fbo.read(components=4, dtype="f4"), dtype=np.float32).reshape(height, width, 4)
        raw = np.flipud(raw)
        fbo.release()
        return np.ascontiguousarray(raw[..., :3]), raw[..., 3] > 0
    finally:
        if own:
            ctx.release()
