"""Face detection on still photos: mediapipe FaceDetection finds faces, FaceMesh (478 refined
points) runs on a padded square crop around each, and everything is mapped back to the
full-resolution photo.

Pixel convention (:mod:`faceeditor.core.camera`): continuous coordinates, the top-left
corner of pixel (0, 0) at (0, 0), pixel centres at +0.5. mediapipe's normalised coordinates
times the image size are already in this frame. Landmark z is mediapipe's relative depth
(smaller = nearer the camera, roughly zero at the face centre) in the same pixel scale as x.

Stages: photos longer than :data:`DETECT_MAX_SIDE` are downscaled for FaceDetection (short-
and full-range models on the whole image, plus full-range on :data:`TILE_PX` tiles when it is
large, merged by IoU); each face is then cropped from the full-resolution photo at
:data:`CROP_SCALE` times its box, resized to :data:`MESH_INPUT_PX` and meshed. When no
usable face results, FaceMesh on the whole photo, then small tiles, are tried. The mediapipe
graphs live in a :class:`FaceDetector` that the caller builds once, keeps and passes on (its
calls are serialised by a lock). Same input, same output: no randomness, fixed resampling.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from faceeditor.core.errors import FaceTooSmallError, NoFaceError
from faceeditor.face.landmarks68 import to_68
from faceeditor.face.quiet import load_mediapipe, quiet_native_stderr

# mediapipe/TFLite log to stderr through glog/absl: keep the console for our own messages
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DETECT_MAX_SIDE = 1280  # long side of the photo seen by FaceDetection
MESH_INPUT_PX = 512  # side of the square crop given to FaceMesh
CROP_SCALE = 2.0  # crop side / detector box side
MIN_FACE_PX = 40  # faces with a smaller box side (full-res pixels) are too small to fit
MIN_SCORE = 0.5  # FaceDetection confidence threshold
NMS_IOU = 0.3  # detections overlapping more than this are the same face
TILE_PX = 640  # detection-image tiles for photos larger than 1.25 tiles (faces >= ~40 px there)
SMALL_TILE_PX = 256  # tiles of the last-resort search when nothing usable was found

Box = tuple[float, float, float, float]


@dataclass
class Face:
    """One face in a photo; all coordinates in full-resolution pixels (project convention)."""

    box: Box  # x0, y0, x1, y1: the bounding box of the 478 landmarks (detector's box if unmeshed)
    score: float  # FaceDetection confidence in [0, 1] (0 when only the FaceMesh fallback saw it)
    landmarks: np.ndarray | None  # (478, 3) float32: x, y, relative depth z (pixels); None if unmeshed
    too_small: bool = False  # box side below the minimum asked for; not for fitting
    source: str = "detector"  # "detector", or "mesh" for the whole-image FaceMesh fallback
    det_box: Box | None = field(default=None, repr=False)  # FaceDetection's box (None for fallback faces)

    @property
    def size(self) -> float:
        """Side of the box in pixels (the larger of width and height)."""
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, y1 - y0))

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return float((x1 - x0) * (y1 - y0))

    @property
    def landmarks68(self) -> np.ndarray:
        """(68, 2) float32 iBUG points (see :mod:`faceeditor.face.landmarks68`)."""
        if self.landmarks is None:
            raise ValueError("this face has no landmarks (too small to mesh)")
        return to_68(self.landmarks)

    def to_dict(self) -> dict:
        """JSON-ready summary (landmarks as nested lists, rounded to 1/1000 px)."""
        d = {"box": [round(v, 3) for v in self.box], "score": round(self.score, 5),
             "size_px": round(self.size, 2), "too_small": self.too_small, "source": self.source}
        if self.landmarks is not None:
            d["landmarks"] = np.round(self.landmarks.astype(np.float64), 3).tolist()
            d["landmarks68"] = np.round(self.landmarks68.astype(np.float64), 3).tolist()
        return d


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 RGB image, got shape {a.shape}")
    return np.ascontiguousarray(a[:, :, :3])


def _crop_square(rgb: np.ndarray, cx: float, cy: float, side: float, out_px: int) -> tuple[np.ndarray, float, float, float]:
    """A square crop (zero-padded outside the photo) resized to out_px; returns (crop, x0, y0, scale)
    with full-res x = x0 + crop_x * scale for continuous coordinates."""
    n = max(2, int(math.ceil(side)))
    x0, y0 = int(math.floor(cx - n / 2)), int(math.floor(cy - n / 2))
    h, w = rgb.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + n, w), min(y0 + n, h)
    crop = np.zeros((n, n, 3), np.uint8)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    interp = cv2.INTER_AREA if n > out_px else cv2.INTER_LINEAR
    crop = cv2.resize(crop, (out_px, out_px), interpolation=interp)
    return crop, float(x0), float(y0), n / out_px


def _mesh_points(result, width: float, height: float) -> list[np.ndarray]:
    """FaceMesh result -> list of (478, 3) float64 arrays in the processed image's pixels."""
    out = []
    for lms in result.multi_face_landmarks or []:
        a = np.array([(p.x, p.y, p.z) for p in lms.landmark], dtype=np.float64)
        a *= (width, height, width)
        out.append(a)
    return out


def _box_of(points: np.ndarray) -> Box:
    return (float(points[:, 0].min()), float(points[:, 1].min()), float(points[:, 0].max()), float(points[:, 1].max()))


class FaceDetector:
    """mediapipe graphs held for reuse; :meth:`detect` is thread-safe (one call at a time)."""

    def __init__(self, min_score: float = MIN_SCORE) -> None:
        mp = load_mediapipe()  # slow import; only when one is made

        fd, fm = mp.solutions.face_detection, mp.solutions.face_mesh
        self._lock = threading.Lock()
        self._warm = False  # first inference still logs native start-up chatter
        with quiet_native_stderr():
            self._detectors = [fd.FaceDetection(model_selection=m, min_detection_confidence=min_score)
                               for m in (0, 1)]
            self._crop_mesh = fm.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=3,
                                          min_detection_confidence=0.3)
            self._full_mesh = fm.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=8,
                                          min_detection_confidence=min_score)

    def close(self) -> None:
        for g in (*self._detectors, self._crop_mesh, self._full_mesh):
            g.close()

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect(self, image: np.ndarray, max_faces: int = 8, min_face_px: float = MIN_FACE_PX,
               include_small: bool = False) -> list[Face]:
        """Faces in a uint8 RGB photo, largest box first (ties: higher score, then left to right).

        Faces with a box side under ``min_face_px`` are returned with ``too_small=True`` only when
        ``include_small``; when no face of usable size remains, raises :class:`FaceTooSmallError`
        (faces found, all too small) or :class:`NoFaceError` (none found).
        """
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        rgb = _as_rgb(image)
        with self._lock:
            if self._warm:
                faces = self._detect(rgb, max_faces, min_face_px)
            else:
                with quiet_native_stderr():
                    faces = self._detect(rgb, max_faces, min_face_px)
                self._warm = True
        faces.sort(key=lambda f: (-f.area, -f.score, f.box[0], f.box[1]))
        usable = [f for f in faces if not f.too_small]
        if not usable:
            h, w = rgb.shape[:2]
            if faces:
                sizes = ", ".join(f"{f.size:.0f}" for f in faces[:5])
                raise FaceTooSmallError(
                    f"found {len(faces)} face(s) but too small to fit: {sizes} px, need {min_face_px:.0f} px "
                    f"(use a larger or less downscaled photo)", faces[:max_faces])
            hint = f" (faces under ~{24 * max(h, w) / DETECT_MAX_SIDE:.0f} px are missed at this size)" \
                if max(h, w) > DETECT_MAX_SIDE else ""
            raise NoFaceError(f"no face found in the {w}x{h} photo{hint}")
        return (faces if include_small else usable)[:max_faces]

    # -- stages (called under the lock) ------------------------------------------------------

    def _run_detector(self, det, img: np.ndarray, ox: int, oy: int, f: tuple[float, float], out: list) -> None:
        """Append (box, score) of detections in ``img`` (placed at ox, oy in the detection image,
        which is ``f`` = (fx, fy) times smaller than the photo)."""
        h, w = img.shape[:2]
        for d in det.process(img).detections or []:
            bb = d.location_data.relative_bounding_box
            x0, y0 = ox + bb.xmin * w, oy + bb.ymin * h
            box = (x0 * f[0], y0 * f[1], (x0 + bb.width * w) * f[0], (y0 + bb.height * h) * f[1])
            if box[2] > box[0] and box[3] > box[1]:
                out.append((box, float(d.score[0])))

    def _find_boxes(self, small: np.ndarray, f: tuple[float, float], tile: int | None) -> list[tuple[Box, float]]:
        """FaceDetection on the detection image (``f`` scales it to full-res pixels): both models
        on the whole image, or the full-range model on overlapping ``tile``-sized tiles."""
        cands: list[tuple[Box, float]] = []
        if tile is None:
            for det in self._detectors:
                self._run_detector(det, small, 0, 0, f, cands)
        else:
            for y in _tile_starts(small.shape[0], tile):
                for x in _tile_starts(small.shape[1], tile):
                    view = np.ascontiguousarray(small[y:y + tile, x:x + tile])
                    self._run_detector(self._detectors[1], view, x, y, f, cands)
        return cands

    def _mesh_crop(self, rgb: np.ndarray, box: Box, scale: float) -> np.ndarray | None:
        """FaceMesh on a square crop around ``box``: the mesh nearest the box centre, full-res pixels."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = scale * max(box[2] - box[0], box[3] - box[1])
        crop, x0, y0, s = _crop_square(rgb, cx, cy, side, MESH_INPUT_PX)
        meshes = _mesh_points(self._crop_mesh.process(crop), MESH_INPUT_PX, MESH_INPUT_PX)
        if not meshes:
            return None
        full = [m * s + (x0, y0, 0.0) for m in meshes]
        best = min(full, key=lambda m: float(np.hypot(*(m[:, :2].mean(0) - (cx, cy)))))
        if np.hypot(*(best[:, :2].mean(0) - (cx, cy))) > 0.5 * side / scale:
            return None  # only a neighbouring face in view
        return best

    def _mesh_faces(self, rgb: np.ndarray, cands: list[tuple[Box, float]], faces: list[Face],
                    max_faces: int, min_face_px: float) -> None:
        """Mesh each new candidate (best score first) and append the faces not seen yet."""
        cands = sorted(cands, key=lambda c: (-c[1], c[0]))
        tried: list[Box] = [f.det_box for f in faces if f.det_box is not None]
        for box, score in cands:
            if len(tried) >= 2 * max_faces:
                break
            if any(iou(box, t) > NMS_IOU for t in tried):
                continue  # the same detection from another model or tile
            tried.append(box)
            det_side = max(box[2] - box[0], box[3] - box[1])
            pts = self._mesh_crop(rgb, box, CROP_SCALE)
            if pts is None:
                pts = self._mesh_crop(rgb, box, 1.5 * CROP_SCALE)  # a wider view helps cut-off faces
            if pts is None:
                if det_side < min_face_px:  # a tiny face: report it, unmeshed
                    faces.append(Face(box, score, None, True, det_box=box))
                continue  # no face the mesh could see: a false detection
            lbox = _box_of(pts)
            if any(f.landmarks is not None and iou(lbox, f.box) > 0.5 for f in faces):
                continue  # the same face reached from another detection
            size = max(lbox[2] - lbox[0], lbox[3] - lbox[1])
            faces.append(Face(lbox, score, pts.astype(np.float32), size < min_face_px, det_box=box))

    def _detect(self, rgb: np.ndarray, max_faces: int, min_face_px: float) -> list[Face]:
        h, w = rgb.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
        small = rgb if scale >= 1.0 else cv2.resize(
            rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        f = (w / small.shape[1], h / small.shape[0])
        faces: list[Face] = []
        cands = self._find_boxes(small, f, None)
        if max(small.shape[:2]) > 1.25 * TILE_PX:  # small faces in big photos: tiles too
            cands += self._find_boxes(small, f, TILE_PX)
        self._mesh_faces(rgb, cands, faces, max_faces, min_face_px)
        if not any(not face.too_small for face in faces):  # look harder: whole-photo mesh, small tiles
            faces += self._fallback(rgb, small, faces, min_face_px)
            if not faces:
                self._mesh_faces(rgb, self._find_boxes(small, f, SMALL_TILE_PX), faces, max_faces, min_face_px)
        return faces

    def _fallback(self, rgb: np.ndarray, small: np.ndarray, seen: list[Face], min_face_px: float) -> list[Face]:
        """FaceMesh on the whole detection image; each new face re-meshed on a full-res crop."""
        faces: list[Face] = []
        h, w = rgb.shape[:2]
        for m in _mesh_points(self._full_mesh.process(small), w, h):
            box = _box_of(m)
            if any(iou(box, f.box) > 0.3 for f in seen + faces):
                continue
            pts = self._mesh_crop(rgb, box, CROP_SCALE)  # full resolution, same path as detections
            pts = m if pts is None else pts
            lbox = _box_of(pts)
            size = max(lbox[2] - lbox[0], lbox[3] - lbox[1])
            faces.append(Face(lbox, 0.0, pts.astype(np.float32), size < min_face_px, source="mesh"))
        return faces


def _tile_starts(length: int, tile: int) -> list[int]:
    """Start offsets of tiles covering ``length`` with at least a quarter tile of overlap."""
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / (0.75 * tile)) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def get_detector() -> FaceDetector:
    """A new detector for the caller to keep (building the graphs takes ~0.1-0.5 s): hold it and
    pass it to :func:`detect_faces` (or call its :meth:`~FaceDetector.detect`) for every photo."""
    return FaceDetector()


def detect_faces(image: np.ndarray, max_faces: int = 8, min_face_px: float = MIN_FACE_PX,
                 include_small: bool = False, detector: FaceDetector | None = None) -> list[Face]:
    """Faces in a uint8 HxWx3 RGB photo, sorted by box area, largest first (see :meth:`FaceDetector.detect`).

    ``detector``: the caller's detector; without one, a detector is built for this call and closed
    after it (same faces, but the graphs are built each time)."""
    if detector is not None:
        return detector.detect(image, max_faces=max_faces, min_face_px=min_face_px, include_small=include_small)
    with FaceDetector() as own:
        return own.detect(image, max_faces=max_faces, min_face_px=min_face_px, include_small=include_small)
