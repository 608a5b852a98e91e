"""The measurements of ``faceeditor bench light`` (:mod:`faceeditor.bench.light`), imported when it runs."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from faceeditor.bench import _judges as J
from faceeditor.bench import _personal
from faceeditor.bench import _realism as R
from faceeditor.core.atomic import atomic_write_text
from faceeditor.core.device import configure_threads
from faceeditor.core.errors import FaceEditorError
from faceeditor.edit.compose import MeshCompositor
from faceeditor.edit.geometry import NECK_BOTTOM_Y, NECK_TOP_Y, target_sh
from faceeditor.edit.light import LightParams, fit_light
from faceeditor.edit.params import EditParams
from faceeditor.edit.person_light import TRI_INNER, TRI_SKIN
from faceeditor.fit.pipeline import fit_photo
from faceeditor.io import save_image
from faceeditor.render.raster import rasterize
from faceeditor.render.sh import direction_from_angles

# name, azimuth, elevation (None: the photo's), intensity factor
RELIGHTS = (("left", -55.0, 10.0, 1.0), ("right", 55.0, 10.0, 1.0), ("top", 0.0, 55.0, 1.0), ("half", None, None, 0.5))
SKIN_ERODE = 0.03  # the skin and neck masks are eroded by this fraction of the face size
BAND = 0.02  # half-width of the face-outline band, fraction of the face size
NECK_MARGIN_CM = 1.5  # the neck region keeps this far from the cut of the ICT neck
NECK_CHROMA = 8.0  # CIELAB a*b* distance from the face skin's median that still counts as neck skin
NECK_LIGHTNESS = 20.0  # ... and L* distance
MIN_PIXELS = 30  # fewer pixels in a region: no measurement
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec. 709 luminance of linear RGB


@dataclass
class Regions:
    """Pixel masks (H,W) bool of one photo from its fitted head."""

    skin: np.ndarray  # the face skin above the chin (eyes, mouth and throat left out), eroded
    neck: np.ndarray  # the fitted neck below the chin where the photo shows skin (segmentation, colour), eroded
    outline: np.ndarray  # a band along the outline of the fitted face material (skin, eyes, mouth, throat)


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.erode(mask.astype(np.uint8), k) > 0


@torch.no_grad()
def regions(comp: MeshCompositor, person: np.ndarray, face_px: float) -> Regions:
    """Skin, neck and face-outline masks from the fitted head rasterized at the photo's size. The
    ICT face material runs down the throat, and the fitted neck often covers a collar: the neck is
    the mesh below the chin where the segmentation says person and the colour is the face skin's
    (a*, b* within :data:`NECK_CHROMA` of the skin's median, L* within :data:`NECK_LIGHTNESS`),
    in one piece with the face skin (a tie of the skin's colour is not a neck)."""
    h, w = comp.photo.shape[:2]
    frags = rasterize(comp.state.camera().project(comp.v_src), comp.tri, h, w)
    cls = comp.relight_tri[frags.face].numpy()
    y = comp.model.neutral[comp.tri[frags.face]][..., 1]  # (N,3) model-frame heights, cm
    head_tri = (y > NECK_TOP_Y).all(1).numpy()
    neck_tri = ((y < NECK_TOP_Y) & (y > NECK_BOTTOM_Y + NECK_MARGIN_CM)).all(1).numpy()

    def mask(sel: np.ndarray) -> np.ndarray:
        m = np.zeros(h * w, bool)
        m[frags.pix.numpy()[sel]] = True
        return m.reshape(h, w)

    r = max(1, round(SKIN_ERODE * face_px))
    band = max(1, round(BAND * face_px))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    outline = cv2.morphologyEx(mask((cls == TRI_SKIN) | (cls == TRI_INNER)).astype(np.uint8), cv2.MORPH_GRADIENT, k)
    skin = _erode(mask((cls == TRI_SKIN) & head_tri), r)
    neck = _erode(mask((cls != TRI_INNER) & neck_tri) & (person > 0.5), r)
    if skin.sum() >= MIN_PIXELS and neck.any():
        lab = _lab(_linear(comp.photo.reshape(-1, 3))).reshape(h, w, 3)
        ref = np.median(lab[skin], axis=0)
        near = (np.hypot(lab[..., 1] - ref[1], lab[..., 2] - ref[2]) < NECK_CHROMA) & (
            np.abs(lab[..., 0] - ref[0]) < NECK_LIGHTNESS
        )
        seed = ~_erode(~skin, 4 * r)  # the skin grown across the gap its and the neck's erosion left
        neck = _touching(neck & near, seed)
    return Regions(skin, neck, outline > 0)


def _touching(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The connected components of ``mask`` that overlap ``seed`` (both (H,W) bool)."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(labels[seed & mask])] = True
    keep[0] = False
    return keep[labels]


def _linear(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float32) / 255.0
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4)).astype(np.float32)


def _lab(linear: np.ndarray) -> np.ndarray:
    """CIELAB (N,3) of linear RGB (N,3)."""
    return cv2.cvtColor(np.ascontiguousarray(linear, np.float32)[None], cv2.COLOR_LRGB2Lab)[0]


def chroma_shift(orig: np.ndarray, relit: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean ``|(da*, db*)|`` over ``mask``: with the relit pixels scaled to the original's luminance
    first (a pure brightness change reads 0), and without (raw)."""
    if mask.sum() < MIN_PIXELS:
        return float("nan"), float("nan")
    a, b = _linear(orig[mask]), _linear(relit[mask])
    scale = (a @ LUMA) / np.maximum(b @ LUMA, 1e-6)
    lab0, lab1, lab_raw = _lab(a), _lab(b * scale[:, None]), _lab(b)
    same = float(np.hypot(*(lab1 - lab0)[:, 1:].T).mean())
    raw = float(np.hypot(*(lab_raw - lab0)[:, 1:].T).mean())
    return same, raw


def lightness(rgb: np.ndarray, mask: np.ndarray) -> float:
    return float(_lab(_linear(rgb[mask]))[:, 0].mean()) if mask.sum() >= MIN_PIXELS else float("nan")


def skin_tone_ratio(orig: np.ndarray, relit: np.ndarray, reg: Regions) -> float:
    """(relit / original mean L* on the face skin) / (the same on the neck)."""
    face = lightness(relit, reg.skin) / lightness(orig, reg.skin)
    neck = lightness(relit, reg.neck) / lightness(orig, reg.neck)
    return face / neck


def outline_seam(orig: np.ndarray, relit: np.ndarray, band: np.ndarray) -> float:
    """Mean squared gradient of ``relit`` in the face-outline band over the same in ``orig``."""
    e0 = J._gradient_energy(orig)[band]
    e1 = J._gradient_energy(relit)[band]
    return float(e1.mean() / max(float(e0.mean()), 1e-6)) if band.any() else float("nan")


def light_for(base: LightParams, azimuth: float | None, elevation: float | None, factor: float) -> LightParams:
    """The photo's light moved to (azimuth, elevation) (None: where it was), intensity times ``factor``."""
    az = base.azimuth if azimuth is None else azimuth
    el = base.elevation if elevation is None else elevation
    return LightParams(az, el, base.intensity * factor, base.ambient, base.temperature)


def roundtrip_psnr(photo: R.FittedPhoto, comp: MeshCompositor, edit: EditParams, relit: np.ndarray) -> float:
    """Relight ``relit`` (which shows ``edit``'s light) back to the photo's fitted SH; PSNR vs the photo
    over the pixels the relight changed."""
    changed = np.abs(relit.astype(np.int16) - photo.rgb).max(2) > 0
    if changed.sum() < MIN_PIXELS:
        return float("nan")
    state = photo.state.copy()
    state.sh = target_sh(photo.state, edit, comp.photo_light)
    back_comp = MeshCompositor(relit, state, comp.model, person_mask=photo.person_mask)
    back = back_comp.render(EditParams(light=LightParams(sh=np.asarray(photo.state.sh, np.float32).tolist())))
    return J.masked_psnr(back, photo.rgb, changed.astype(np.float32))


def light_dir_err(photo: R.FittedPhoto, judges: R.Judges, relit: np.ndarray, light: LightParams) -> float:
    """Angle (degrees) between the light a photometric re-fit finds on ``relit`` and ``light``'s."""
    face = J.nearest_face(judges.detector, relit, photo.face.box) or photo.face
    try:
        st = fit_photo(relit, face_index=0, faces=[face], model=judges.model, detector=judges.detector)[0]
    except FaceEditorError:
        return float("nan")
    got = fit_light(np.asarray(st.sh))
    a = direction_from_angles(got.azimuth, got.elevation).double()
    b = direction_from_angles(light.azimuth, light.elevation).double()
    return float(torch.rad2deg(torch.arccos(torch.dot(a, b).clamp(-1.0, 1.0))))


def measure_photo(photo: R.FittedPhoto, judges: R.Judges, refit: bool) -> tuple[dict[str, list[float]], list]:
    """Every relight of one photo, what the measures read on them, and the contact-sheet tiles."""
    comp = MeshCompositor(photo.rgb, photo.state, judges.model, person_mask=photo.person_mask)
    reg = regions(comp, photo.person_mask, photo.face.size)
    base = comp.photo_light
    out: dict[str, list[float]] = {k: [] for k in ("chroma", "chroma_raw", "tone", "roundtrip", "dir", "seam", "ms")}
    tiles = [J.label(photo.rgb, photo.path.name)]
    for name, az, el, factor in RELIGHTS:
        light = light_for(base, az, el, factor)
        edit = EditParams(light=light)
        relit = comp.render(edit)
        if name == "left":
            t0 = time.perf_counter()
            comp.render(edit)
            out["ms"].append((time.perf_counter() - t0) * 1000.0)
        tiles.append(J.label(relit, name))
        shift, raw = chroma_shift(photo.rgb, relit, reg.skin)
        out["chroma"].append(shift)
        out["chroma_raw"].append(raw)
        out["tone"].append(skin_tone_ratio(photo.rgb, relit, reg))
        out["seam"].append(outline_seam(photo.rgb, relit, reg.outline))
        out["roundtrip"].append(roundtrip_psnr(photo, comp, edit, relit))
        if refit and az is not None:
            out["dir"].append(light_dir_err(photo, judges, relit, light))
    return out, tiles


def summarize(rows: list[dict[str, list[float]]]) -> dict[str, object]:
    def pool(key: str) -> list[float]:
        return [v for r in rows for v in r[key]]

    return {
        "photos": len(rows),
        "chroma_shift_median": R.median(pool("chroma")),
        "skin_tone_ratio_median": R.median(pool("tone")),
        "roundtrip_psnr_db": R.median(pool("roundtrip")),
        "light_dir_err_deg_median": R.median(pool("dir")),
        "relight_seam_ratio_median": R.median(pool("seam")),
        "personal_psnr_db": None,
        "personal_fit_s_median": None,
        "personal_heldout_gain_db": None,
        "chroma_shift_raw_median": R.median(pool("chroma_raw")),
        "relight_ms_median": R.median(pool("ms")),
    }


def measure(args: argparse.Namespace) -> dict:
    configure_threads(args.threads)
    files = R.photos_under(args.data)
    if not files:
        raise FaceEditorError(f"no photos under {args.data}")
    order = np.random.default_rng(args.seed).permutation(len(files))
    folder = R.out_dir(args, "light")
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, list[float]]] = []
    done: list[dict[str, str]] = []
    judges = R.Judges()
    try:
        for i in order:
            if len(rows) >= args.n:
                break
            photo = judges.fit(files[i])
            if photo is None:
                continue
            row, tiles = measure_photo(photo, judges, not args.no_refit)
            rows.append(row)
            done.append({"photo": str(photo.path)})
            sheet = J.contact_sheet(tiles)
            if sheet.shape[0] > 1024:
                sheet = J.contact_sheet(tiles, height=1024)
            save_image(folder / f"{len(rows):03d}_{photo.path.stem}.png", sheet)
        personal = _personal.measure(judges, args.data, getattr(args, "personal_n", 0), args.seed)
    finally:
        judges.close()
    R.write_rows(folder / "photos.json", done, {"mesh": rows})
    atomic_write_text(folder / "personal.json", json.dumps(personal.pop("personal_rows"), indent=2) + "\n")
    out = summarize(rows)
    out.update(personal)
    out["sheets"] = str(folder)
    return out
