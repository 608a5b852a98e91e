"""What the 3D viewport draws, on any moderngl context: the textured head, a backdrop, the light gizmo.

Qt-free and torch-free: the viewport widgets (:mod:`faceeditor.app.viewport`) own the context
and the mouse; :class:`OrbitCamera` holds the view; :class:`HeadScene` issues the GL calls.
Vertices are in the photo's camera frame (cm) and the SH lighting is in that frame too, so the
shading stays attached to the photo's light while the user orbits (the orbit is folded into
the projection; the view matrix given to the mesh program stays the identity).
"""

from __future__ import annotations

import math

import numpy as np

from faceeditor.app.materials import HEAD_FRAGMENT_SHADER, HEAD_VERTEX_SHADER, light_uniform
from faceeditor.core.camera import gl_projection, look_at
from faceeditor.render.gl import GLMeshRenderer, MeshBuffers

GIZMO_COLOUR = (1.0, 0.78, 0.25)
GIZMO_RADIUS = 1.0  # distance of the light gizmo from the head centre, in head radii

LINE_VS = """
#version 330
uniform mat4 u_mvp;
in vec3 in_pos;
void main() { gl_Position = u_mvp * vec4(in_pos, 1.0); }
"""
LINE_FS = """
#version 330
uniform vec4 u_color;
out vec4 f_color;
void main() { f_color = u_color; }
"""
BG_VS = """
#version 330
in vec2 in_pos;
out float v_y;
void main() { v_y = in_pos.y * 0.5 + 0.5; gl_Position = vec4(in_pos, 0.999, 1.0); }
"""
BG_FS = """
#version 330
in float v_y;
out vec4 f_color;
void main() { f_color = vec4(mix(vec3(0.075, 0.08, 0.09), vec3(0.2, 0.215, 0.24), v_y), 1.0); }
"""


def direction(azimuth: float, elevation: float) -> np.ndarray:
    """Unit direction toward the light (same convention as :func:`faceeditor.render.sh.direction_from_angles`)."""
    az, el = math.radians(azimuth), math.radians(elevation)
    return np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])


def angles(d: np.ndarray) -> tuple[float, float]:
    d = np.asarray(d, float) / max(float(np.linalg.norm(d)), 1e-12)
    return math.degrees(math.atan2(d[0], d[2])), math.degrees(math.asin(max(-1.0, min(1.0, d[1]))))


class OrbitCamera:
    """Orbits a target: yaw/pitch about it (degrees) at ``distance``; frontal = the photo's view."""

    FOV_DEG = 30.0

    def __init__(self) -> None:
        self.target = np.array([0.0, 0.0, -60.0])
        self.radius = 12.0
        self.yaw = 0.0
        self.pitch = 0.0
        self.distance = 60.0
        self.pan = np.zeros(3)

    def frame(self, centre: np.ndarray, radius: float) -> None:
        self.target, self.radius = np.asarray(centre, float), max(float(radius), 1.0)
        self.reset()

    def reset(self) -> None:
        self.yaw = self.pitch = 0.0
        self.pan = np.zeros(3)
        self.distance = self.radius / math.tan(math.radians(self.FOV_DEG / 2)) * 1.12

    def eye(self) -> np.ndarray:
        back = -self.target / max(np.linalg.norm(self.target), 1e-6)  # head -> photo camera
        yaw, pitch = math.radians(self.yaw), math.radians(self.pitch)
        ry = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
        right = np.cross([0.0, 1.0, 0.0], back)
        right /= max(np.linalg.norm(right), 1e-6)
        k = right
        c, s = math.cos(-pitch), math.sin(-pitch)
        rx = c * np.eye(3) + s * np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]]) + (1 - c) * np.outer(k, k)
        return self.target + self.pan + ry @ rx @ back * self.distance

    def view(self) -> np.ndarray:
        return look_at(self.eye(), self.target + self.pan)

    def projection(self, width: int, height: int) -> np.ndarray:
        f = (height / 2.0) / math.tan(math.radians(self.FOV_DEG / 2))
        near = max(0.5, self.distance - 4 * self.radius)
        return gl_projection(f, width, height, width / 2.0, height / 2.0, near, self.distance + 6 * self.radius)

    def focal(self, height: int) -> float:
        return (height / 2.0) / math.tan(math.radians(self.FOV_DEG / 2))

    def ray(self, x: float, y: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """World-space ray (origin, unit direction) through widget pixel (x, y)."""
        f = self.focal(height)
        d_cam = np.array([(x - width / 2.0) / f, -(y - height / 2.0) / f, -1.0])
        V = self.view().astype(np.float64)
        d = V[:3, :3].T @ d_cam
        return self.eye(), d / np.linalg.norm(d)

    def project(self, p: np.ndarray, width: int, height: int) -> tuple[float, float]:
        q = self.view().astype(np.float64) @ np.append(p, 1.0)
        f = self.focal(height)
        z = max(-q[2], 1e-6)
        return width / 2.0 + f * q[0] / z, height / 2.0 - f * q[1] / z


class HeadRenderer(GLMeshRenderer):
    """:class:`GLMeshRenderer` with the head's materials (:mod:`faceeditor.app.materials`): the
    per-corner colours are ``(material, occlusion, 0)``; ``u_eye`` places the highlights."""

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.prog.release()
        self.prog = ctx.program(vertex_shader=HEAD_VERTEX_SHADER, fragment_shader=HEAD_FRAGMENT_SHADER)

    def set_view(self, eye: np.ndarray, sh: np.ndarray | None, mouth_open: float = 1.0) -> None:
        """The viewer's position, the light (for the highlights) and how open the mouth is
        (:func:`faceeditor.app.materials.mouth_open`) for the next draws."""
        self.prog["u_eye"].value = tuple(float(x) for x in eye)
        self.prog["u_light"].value = light_uniform(sh)
        self.prog["u_mouth_open"].value = float(mouth_open)

    def set_texture(self, image: np.ndarray | None) -> None:
        """As :meth:`GLMeshRenderer.set_texture`; a texture of the same size is overwritten in place
        (no new texture object for llvmpipe to set up)."""
        t = self.texture
        if image is not None and t is not None and (t.width, t.height) == (image.shape[1], image.shape[0]):
            t.write(np.ascontiguousarray(np.flipud(np.asarray(image, np.uint8)[..., :3])).tobytes())
            t.build_mipmaps()
            return
        super().set_texture(image)


def _warm_up_mesh() -> MeshBuffers:
    """One small triangle in front of the default camera, with every material's corner code."""
    pos = np.array([[-1, -1, -60], [1, -1, -60], [0, 1, -60]], np.float32)
    nrm = np.tile(np.array([[0, 0, 1]], np.float32), (3, 1))
    col = np.array([[0, 1, 0], [2, 0.5, 0], [4, 1, 0]], np.float32)
    uv = np.array([[0, 0], [1, 0], [0.5, 1]], np.float32)
    return MeshBuffers(pos, nrm, col, uv)


class HeadScene:
    """GL resources and draw calls for one moderngl context."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.mesh = HeadRenderer(ctx)
        self.has_mesh = False
        self.mouth_open = 1.0  # of the head shown (HeadMesh.mouth_open)
        self._uploaded = None  # the static arrays (uvs, colours) last uploaded
        self.line_prog = ctx.program(vertex_shader=LINE_VS, fragment_shader=LINE_FS)
        self.line_vbo = ctx.buffer(reserve=4096 * 12)
        self.line_vao = ctx.vertex_array(self.line_prog, [(self.line_vbo, "3f", "in_pos")])
        self.bg_prog = ctx.program(vertex_shader=BG_VS, fragment_shader=BG_FS)
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], np.float32)
        self.bg_vbo = ctx.buffer(quad.tobytes())
        self.bg_vao = ctx.vertex_array(self.bg_prog, [(self.bg_vbo, "2f", "in_pos")])

    def set_mesh(self, buffers) -> None:
        m = self.mesh
        vbos = getattr(m, "_vbos", None)
        if self._uploaded is buffers.uvs and vbos and m._count == len(buffers.positions):
            # same head, new pose/expression: only positions and normals changed
            vbos["in_pos"].write(np.ascontiguousarray(buffers.positions, np.float32).tobytes())
            vbos["in_normal"].write(np.ascontiguousarray(buffers.normals, np.float32).tobytes())
        else:
            m.set_mesh(buffers)
            self._uploaded = buffers.uvs
        self.has_mesh = True

    def set_texture(self, image: np.ndarray | None) -> None:
        self.mesh.set_texture(image)

    def _lines(self, pts: np.ndarray, mvp: np.ndarray, colour, mode) -> None:
        pts = np.ascontiguousarray(pts, np.float32)
        self.line_vbo.write(pts.tobytes())
        self.line_prog["u_mvp"].write(np.ascontiguousarray(mvp.T, np.float32).tobytes())
        self.line_prog["u_color"].value = tuple(colour)
        self.line_vao.render(mode, vertices=len(pts))

    def draw(self, width: int, height: int, cam: OrbitCamera, sh: np.ndarray | None, wireframe: bool,
             light_dir: np.ndarray | None, gizmo_hot: bool = False) -> None:
        ctx = self.ctx
        ctx.viewport = (0, 0, width, height)
        ctx.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
        ctx.disable(ctx.DEPTH_TEST)
        ctx.disable(ctx.CULL_FACE)
        self.bg_vao.render(ctx.TRIANGLE_STRIP)
        ctx.enable(ctx.DEPTH_TEST)
        ctx.depth_func = "<"
        mvp = cam.projection(width, height).astype(np.float64) @ cam.view().astype(np.float64)
        if self.has_mesh:
            self.mesh.set_view(cam.eye(), sh, self.mouth_open)
            self.mesh.draw(mvp.astype(np.float32), None, sh, wireframe=wireframe, wire_color=(0.35, 0.75, 1.0))
        if light_dir is not None:
            ctx.disable(ctx.DEPTH_TEST)
            ctx.enable(ctx.BLEND)
            ctx.blend_func = ctx.SRC_ALPHA, ctx.ONE_MINUS_SRC_ALPHA
            self._draw_gizmo(mvp, cam, light_dir, gizmo_hot)
            ctx.disable(ctx.BLEND)
            ctx.enable(ctx.DEPTH_TEST)

    def warm_up(self) -> None:
        """Draw the head (textured, lit) and the gizmo once into a small framebuffer of the
        viewport's formats. Software OpenGL (llvmpipe) compiles a shader variant on the first draw
        with each new state: 50-150 ms on the UI thread, which would otherwise land with the first
        fitted head and its texture. Does nothing once a head or a texture is set."""
        if self.has_mesh or self.mesh.texture is not None:
            return
        ctx = self.ctx
        colour, depth = ctx.renderbuffer((16, 16), 4, samples=0), ctx.depth_renderbuffer((16, 16))
        fbo = ctx.framebuffer(color_attachments=[colour], depth_attachment=depth)
        try:
            fbo.use()
            self.mesh.set_mesh(_warm_up_mesh())
            self.has_mesh = True
            sh = np.zeros((9, 3), np.float32)
            sh[0], sh[2] = 2.0, 0.5
            for texture in (None, np.full((8, 16, 3), 128, np.uint8)):  # a head may come before its texture
                self.mesh.set_texture(texture)
                self.draw(16, 16, OrbitCamera(), sh, False, direction(0.0, 30.0))
                fbo.read(components=3, alignment=1)  # llvmpipe draws (and compiles) when pixels are read
        finally:
            self.has_mesh = False
            self.mesh.set_texture(None)
            for obj in (fbo, colour, depth):
                obj.release()

    def gizmo_point(self, cam: OrbitCamera, light_dir: np.ndarray) -> np.ndarray:
        return cam.target + light_dir * cam.radius * GIZMO_RADIUS

    def _draw_gizmo(self, mvp: np.ndarray, cam: OrbitCamera, d: np.ndarray, hot: bool) -> None:
        c = cam.target
        sun = self.gizmo_point(cam, d)
        V = cam.view().astype(np.float64)
        right, up = V[0, :3], V[1, :3]
        r = cam.radius * (0.07 if not hot else 0.09)
        ring = np.array([sun + r * (math.cos(t) * right + math.sin(t) * up)
                         for t in np.linspace(0, 2 * math.pi, 33)])
        rays = []
        for k in range(8):
            t = k * math.pi / 4
            u = math.cos(t) * right + math.sin(t) * up
            rays += [sun + u * r * 1.4, sun + u * r * 2.0]
        # dotted path from the head centre to the light
        n = 14
        dots = [c + (sun - c) * (i / n) for i in range(n)]
        dash = np.array([p for i in range(0, n - 1, 2) for p in (dots[i], dots[i + 1])])
        orbit = np.array([cam.target + cam.radius * GIZMO_RADIUS * np.array([math.sin(t), 0, math.cos(t)])
                          for t in np.linspace(-math.pi / 2, math.pi / 2, 41)])
        col = (*GIZMO_COLOUR, 1.0)
        self._lines(orbit, mvp, (*GIZMO_COLOUR, 0.18), self.ctx.LINE_STRIP)
        self._lines(dash, mvp, (*GIZMO_COLOUR, 0.55), self.ctx.LINES)
        self._lines(ring, mvp, col, self.ctx.LINE_STRIP)
        self._lines(np.array(rays), mvp, col, self.ctx.LINES)
        fill = np.array([sun] + [sun + r * 0.7 * (math.cos(t) * right + math.sin(t) * up)
                                 for t in np.linspace(0, 2 * math.pi, 25)])
        self._lines(fill, mvp, (*GIZMO_COLOUR, 0.9 if hot else 0.65), self.ctx.TRIANGLE_FAN)

    def release(self) -> None:
        for obj in (self.line_vao, self.line_vbo, self.line_prog, self.bg_vao, self.bg_vbo, self.bg_prog):
            try:
                obj.release()
            except Exception:  # noqa: BLE001, S110 - the context may be gone already
                pass
