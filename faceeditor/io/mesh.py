"""Textured mesh export: Wavefront OBJ + MTL + PNG that Blender and MeshLab open as they are.

File layout (``stem`` = file name without extension, no whitespace)::

    stem.obj   mtllib stem.mtl / v x y z / vt u v / [vn x y z] / usemtl MAT / f v/vt[/vn] ...
    stem.mtl   newmtl MAT, Ka/Kd 1 (white, so the texture shows as it is), Ks 0, d 1,
               illum 1 (diffuse, no highlight: Blender then sets metallic 0), map_Kd stem.png
    stem.png   the albedo atlas (:mod:`faceeditor.render.atlas` layout), rows top to bottom

Indices are 1-based; triangles are counter-clockwise seen from outside (front faces); UVs use
the OBJ convention (v up, so v = 1 is the PNG's top row). Atlas UVs are deduplicated.

Frames (:func:`faceeditor.fit.export.write_face_mesh`): by default vertices are in the **camera frame** of the
photo (``R v + t``, centimetres, :mod:`faceeditor.core.camera`): a camera at the origin
looking down -Z with the photo's focal length sees the mesh over the photo. In Blender (OBJ
import defaults: forward -Z, up Y, so OBJ (x, y, z) -> Blender (x, -z, y)) that camera sits at
the origin with rotation (90, 0, 0) degrees; focal_mm = focal_px * sensor_width_mm / image
width, sensor fit "horizontal"; Blender reads the numbers as metres, which a pinhole view does
not notice. ``frame="model"`` writes the un-posed head (ICT frame: +Y up, the face looks
toward +Z, origin near the head centre). Every vertex of the ICT model is written in model
order, so OBJ vertex ``i + 1`` is ICT vertex ``i``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from faceeditor.core.atomic import atomic_write
from faceeditor.io.save import save_image

Frame = Literal["camera", "model"]


@dataclass(frozen=True)
class ObjFiles:
    """The three files written by :func:`write_textured_obj`."""

    obj: Path
    mtl: Path
    png: Path


@dataclass
class ObjMesh:
    """What :func:`read_obj` found (indices 0-based; missing parts are empty arrays)."""

    vertices: np.ndarray  # (V,3) float64
    uvs: np.ndarray  # (U,2)
    normals: np.ndarray  # (N,3)
    faces: np.ndarray  # (F,3) int64 into vertices
    faces_uv: np.ndarray  # (F,3) into uvs, or (0,3)
    faces_normal: np.ndarray  # (F,3) into normals, or (0,3)
    mtllib: str | None
    materials: list[str]  # names given to usemtl, in order


def dedupe_uvs(uvs: np.ndarray, faces_uv: np.ndarray, decimals: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Merge equal UVs (after rounding to ``decimals``): returns (unique uvs (U',2), re-indexed faces_uv)."""
    uvs = np.round(np.asarray(uvs, np.float64), decimals)
    uniq, inverse = np.unique(uvs, axis=0, return_inverse=True)
    return uniq, inverse.reshape(-1)[np.asarray(faces_uv, np.int64)]


def _check_stem(stem: str) -> None:
    if not stem or any(c.isspace() for c in stem) or "/" in stem or "\\" in stem:
        raise ValueError(f"mesh file stem must be a plain name without spaces or slashes, got {stem!r}")


def _rows(fmt: str, array: np.ndarray) -> str:
    buf = io.StringIO()
    if len(array):
        np.savetxt(buf, array, fmt=fmt)
    return buf.getvalue()


def write_textured_obj(folder: str | Path, stem: str, vertices: np.ndarray, faces: np.ndarray,
                       atlas_uv: np.ndarray, faces_uv: np.ndarray, texture: np.ndarray,
                       normals: np.ndarray | None = None, material: str = "face") -> ObjFiles:
    """Write ``stem.obj`` + ``stem.mtl`` + ``stem.png`` into ``folder`` (created), each atomically.

    ``vertices`` (V,3); ``faces`` (F,3) 0-based, counter-clockwise front faces; ``atlas_uv`` (K,2)
    in [0,1] with v up and ``faces_uv`` (F,3) into it (deduplicated here); ``texture`` uint8
    (H,W,3); ``normals`` (V,3) per vertex (written as ``vn``, indexed like the vertices) or None.
    """
    _check_stem(stem)
    if any(c.isspace() for c in material) or not material:
        raise ValueError(f"material name must be non-empty without spaces, got {material!r}")
    v = np.asarray(vertices, np.float64).reshape(-1, 3)
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    fuv = np.asarray(faces_uv, np.int64).reshape(-1, 3)
    if fuv.shape != f.shape:
        raise ValueError(f"faces_uv {fuv.shape} must match faces {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError("faces index outside the vertex array")
    uv, fuv = dedupe_uvs(atlas_uv, fuv)
    if uv.size and (uv.min() < 0.0 or uv.max() > 1.0):
        raise ValueError(f"atlas UVs must lie in [0, 1], got [{uv.min():.4f}, {uv.max():.4f}]")
    n = None if normals is None else np.asarray(normals, np.float64).reshape(-1, 3)
    if n is not None and len(n) != len(v):
        raise ValueError(f"normals ({len(n)}) must be per vertex ({len(v)})")

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = ObjFiles(folder / f"{stem}.obj", folder / f"{stem}.mtl", folder / f"{stem}.png")
    save_image(files.png, np.ascontiguousarray(texture, dtype=np.uint8))

    mtl = (f"# FaceEditor material\nnewmtl {material}\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\n"
           f"Ks 0.000 0.000 0.000\nNs 1.0\nd 1.0\nillum 1\nmap_Kd {files.png.name}\n")
    atomic_write(files.mtl, lambda fh: fh.write(mtl.encode()))

    header = (f"# FaceEditor mesh: {len(v)} vertices, {len(f)} triangles\n"
              f"mtllib {files.mtl.name}\no {stem}\n")
    idx = np.concatenate([f + 1, fuv + 1] + ([f + 1] if n is not None else []), axis=1)
    order = [0, 3, 6, 1, 4, 7, 2, 5, 8] if n is not None else [0, 3, 1, 4, 2, 5]
    face_fmt = "f %d/%d/%d %d/%d/%d %d/%d/%d" if n is not None else "f %d/%d %d/%d %d/%d"
    body = [header, _rows("v %.6f %.6f %.6f", v), _rows("vt %.6f %.6f", uv)]
    if n is not None:
        body.append(_rows("vn %.5f %.5f %.5f", n))
    body += [f"usemtl {material}\ns 1\n", _rows(face_fmt, idx[:, order])]
    text = "".join(body).encode()
    atomic_write(files.obj, lambda fh: fh.write(text))
    return files


def read_obj(path: str | Path) -> ObjMesh:
    """Minimal OBJ reader (triangles; ``v``, ``vt``, ``vn``, ``f``, ``mtllib``, ``usemtl``), for tests."""
    verts: list[list[float]] = []
    uvs: list[list[float]] = []
    norms: list[list[float]] = []
    fv: list[list[int]] = []
    ft: list[list[int]] = []
    fn: list[list[int]] = []
    mtllib, materials = None, []

    def index(tok: str, count: int) -> int:
        i = int(tok)
        return i - 1 if i > 0 else count + i

    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        key, rest = parts[0], parts[1:]
        if key == "v":
            verts.append([float(x) for x in rest[:3]])
        elif key == "vt":
            uvs.append([float(x) for x in rest[:2]])
        elif key == "vn":
            norms.append([float(x) for x in rest[:3]])
        elif key == "f":
            if len(rest) != 3:
                raise ValueError(f"{path}: only triangles are supported, got {line!r}")
            corners = [c.split("/") for c in rest]
            fv.append([index(c[0], len(verts)) for c in corners])
            if len(corners[0]) > 1 and corners[0][1]:
                ft.append([index(c[1], len(uvs)) for c in corners])
            if len(corners[0]) > 2 and corners[0][2]:
                fn.append([index(c[2], len(norms)) for c in corners])
        elif key == "mtllib":
            mtllib = " ".join(rest)
        elif key == "usemtl":
            materials.append(" ".join(rest))

    def arr(a: list, width: int, dtype) -> np.ndarray:
        return np.asarray(a, dtype).reshape(-1, width)

    return ObjMesh(arr(verts, 3, np.float64), arr(uvs, 2, np.float64), arr(norms, 3, np.float64),
                   arr(fv, 3, np.int64), arr(ft, 3, np.int64), arr(fn, 3, np.int64), mtllib, materials)


def read_mtl(path: str | Path) -> dict[str, dict[str, str]]:
    """Minimal MTL reader: ``{material: {keyword: rest of line}}``."""
    out: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in Path(path).read_text().splitlines():
        parts = line.strip().split(maxsplit=1)
        if not parts or parts[0].startswith("#"):
            continue
        if parts[0] == "newmtl":
            current = out.setdefault(parts[1].strip(), {})
        elif current is not None:
            current[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return out
