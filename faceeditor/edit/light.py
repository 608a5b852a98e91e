"""Directional-light controls mapped to SH irradiance (the GUI's lighting panel and the CLI flags).

A light is ``ambient + intensity * max(0, n.d)`` tinted by a colour temperature, projected to
2nd-order SH with :func:`faceeditor.render.sh.directional_sh`. :func:`fit_light` (and the simpler
:func:`light_from_sh`) gives the controls that best describe a fitted SH (for "as in photo" and as
slider start values). A photo's light keeps its own *colour* (:func:`sh_colour`, the channel
balance of its mean shading on a face) when the controls move: the temperature control tints it
relative to the fitted temperature only (:func:`light_tint`, :func:`faceeditor.edit.geometry.target_sh`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from faceeditor.render.sh import (
    LAMBERT_BAND,
    SH_CONSTS,
    angles_from_direction,
    direction_from_angles,
    directional_sh,
    sh_basis,
)


@dataclass
class LightParams:
    """Directional light in camera space; azimuth > 0 = light from image right, elevation > 0 = from above."""

    azimuth: float = 0.0  # degrees
    elevation: float = 0.0  # degrees
    intensity: float = 0.7  # directional strength (albedo units)
    ambient: float = 0.3  # constant term
    temperature: float = 6500.0  # Kelvin; 6500 = neutral white
    sh: list[list[float]] | None = None  # explicit (9,3) SH overriding the above (advanced panel)

    def to_sh(self) -> np.ndarray:
        """(9,3) float32 SH irradiance."""
        if self.sh is not None:
            return np.asarray(self.sh, dtype=np.float32).reshape(9, 3)
        d = direction_from_angles(self.azimuth, self.elevation)
        col = torch.tensor(temperature_rgb(self.temperature))
        return directional_sh(d, self.intensity, self.ambient, col).numpy().astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LightParams:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def temperature_rgb(kelvin: float) -> tuple[float, float, float]:
    """Relative RGB of a black body at ``kelvin`` (Tanner Helland's fit), normalised so 6500 K = (1,1,1)."""

    def raw(k: float) -> np.ndarray:
        t = max(1000.0, min(40000.0, k)) / 100.0
        r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
        g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
        b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
        return np.clip(np.array([r, g, b]), 1.0, 255.0)

    rgb = raw(kelvin) / raw(6500.0)
    return tuple(float(v) for v in rgb / rgb.mean())


def light_from_sh(sh: np.ndarray) -> LightParams:
    """Controls approximating a fitted SH (9,3): direction from the first-order band, intensity from
    its magnitude, ambient from what remains of the DC term, colour from the channel balance."""
    sh = np.asarray(sh, dtype=np.float64).reshape(9, 3)
    lum = sh.mean(1)
    first = np.array([lum[3], lum[1], lum[2]])  # x, y, z
    mag = float(np.linalg.norm(first))
    # directional_sh: first-order coefficients = intensity * A_1 * c1 * d
    intensity = mag / (LAMBERT_BAND[1] * SH_CONSTS[1])
    if mag > 1e-8:
        az, el = angles_from_direction(torch.tensor(first / mag))
        az, el = float(az), float(el)
    else:
        az, el = 0.0, 0.0
    # DC of directional part: intensity * A_0 * c0^2 ; the rest is ambient / c0 (times c0 when shading)
    dc_light = intensity * LAMBERT_BAND[0] * SH_CONSTS[0]
    ambient = max(0.0, (lum[0] - dc_light) * SH_CONSTS[0])
    return LightParams(az, el, float(intensity), float(ambient), _temperature_of(sh))


TEMPERATURES_K = np.linspace(2000.0, 12000.0, 101)  # the colour temperatures a fitted light is matched to


def _temperature_of(sh: np.ndarray) -> float:
    """The colour temperature of SH irradiance (9,3): from the channel balance of its mean shading on
    the normals a face shows the camera (:func:`sh_colour`; not of its constant term alone, which a
    fit on one face may leave near zero or negative: its sign would turn a white light orange or
    blue). A white SH (equal channels) reads exactly 6500 K."""
    mean = front_mean(sh)
    lum = float(mean.mean())
    if lum <= 1e-8 or np.allclose(mean, lum, rtol=1e-6, atol=0.0):
        return 6500.0
    return _temperature_from_balance(np.clip(mean / lum, 0.0, None))


def front_basis() -> np.ndarray:
    """(9,) mean SH basis over the normals a face shows the camera: ``front_basis() @ sh`` is the
    mean shading of SH irradiance ``sh`` (9,C) on a face (~0.5 ms: callers that need it often
    keep it)."""
    return _front_normals()[1].mean(0)


def front_mean(sh: np.ndarray, basis: np.ndarray | None = None) -> np.ndarray:
    """Mean shading of SH irradiance (9,3) (or (9,): one channel) over the normals a face shows the
    camera: (3,) (or a 0-d array). ``basis``: :func:`front_basis` when the caller keeps it."""
    b = front_basis() if basis is None else basis
    sh = np.asarray(sh, np.float64)
    return (b @ sh.reshape(9, -1)).reshape(sh.shape[1:])


def sh_colour(sh: np.ndarray, basis: np.ndarray | None = None) -> np.ndarray:
    """The colour of SH irradiance (9,3): the channel balance of :func:`front_mean`, mean 1, float64
    (3,); (1,1,1) when its mean shading is not positive. Linear in ``sh`` up to the normalisation,
    so a light built as ``luminance (9,) x colour (3,)`` reads exactly ``colour``."""
    mean = front_mean(sh, basis)
    lum = float(mean.mean())
    if not lum > 1e-8:
        return np.ones(3)
    return np.clip(mean / lum, 0.05, None)


def light_tint(kelvin: float, reference_kelvin: float, colour: np.ndarray) -> np.ndarray:
    """(3,) factor that turns a light of colour ``colour`` (:func:`sh_colour`) at ``reference_kelvin``
    into one at ``kelvin``: the ratio of their black-body colours, scaled so that the tinted light
    keeps its mean level (``mean(tint * colour) = 1``). Exactly (1,1,1) for equal temperatures."""
    if kelvin == reference_kelvin:
        return np.ones(3)
    t = np.asarray(temperature_rgb(kelvin)) / np.asarray(temperature_rgb(reference_kelvin))
    return t / float(np.mean(t * np.asarray(colour, np.float64)))


def _temperature_from_balance(rgb: np.ndarray) -> float:
    """The temperature of :data:`TEMPERATURES_K` whose black-body colour is nearest ``rgb`` (L1)."""
    table = np.array([temperature_rgb(t) for t in TEMPERATURES_K])  # (T,3); ~1 ms
    errs = np.abs(table - np.asarray(rgb)[None, :]).sum(1)
    return float(TEMPERATURES_K[int(np.argmin(errs))])


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)


def _front_normals() -> tuple[np.ndarray, np.ndarray]:
    """Normals a face shows the camera (z > 0.15) and their SH basis (N,9)."""
    n = _fibonacci_sphere(800)
    n = n[n[:, 2] > 0.15]
    return n, sh_basis(torch.as_tensor(n, dtype=torch.float64)).numpy()


def fit_light(sh: np.ndarray) -> LightParams:
    """The directional light + ambient that best reproduces SH irradiance (9,3) *on the normals a
    face shows the camera* (least squares over the front hemisphere, z > 0.15; direction by a
    coarse-to-fine search, intensity and ambient >= 0 in closed form), colour from the channel
    balance. Unlike :func:`light_from_sh`, which reads the first-order band alone, it is not
    thrown by the second-order terms a fit on one face puts in the SH: those decide the shading
    the photo shows. The light is sought in front of the face (direction z >= 0, the range of the
    lighting panel's azimuth): on the normals a face shows the camera, a first-order lobe from
    behind plus a strong second-order term can mimic a frontal light (LFW photos fitted so read
    "intensity 2.4 from behind"), and a light moved from there to the front would flood the photo
    with 2.5 times its light; what the directional light does not explain stays in the residual
    (:func:`faceeditor.edit.geometry.target_sh`). ~7 ms: a caller that needs the light of one SH
    often keeps the result (e.g. :class:`~faceeditor.edit.compose.MeshCompositor` its photo's light)."""
    sh = np.ascontiguousarray(np.asarray(sh, np.float64).reshape(9, 3))
    _, basis = _front_normals()
    t = basis @ sh.mean(1)  # luminance shading on the front normals (N,)
    band = np.array([LAMBERT_BAND[b] for b in (0, 1, 1, 1, 2, 2, 2, 2, 2)])

    def solve(dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best (error, intensity, ambient) >= 0 for each direction (D,3), vectorised."""
        lobes = (sh_basis(torch.as_tensor(dirs, dtype=torch.float64)).numpy() * band) @ basis.T  # (D,N)
        n = t.size
        ll, ls, lt, st = (lobes * lobes).sum(1), lobes.sum(1), lobes @ t, t.sum()
        det = ll * n - ls * ls
        i_f = np.where(np.abs(det) > 1e-12, (lt * n - ls * st) / np.where(det == 0, 1, det), 0.0)
        a_f = np.where(np.abs(det) > 1e-12, (ll * st - ls * lt) / np.where(det == 0, 1, det), st / n)
        i_1 = np.maximum(0.0, lt / np.maximum(ll, 1e-12))
        cands = [(i_f, a_f), (i_1, np.zeros_like(i_1)), (np.zeros_like(i_1), np.full_like(i_1, max(0.0, st / n)))]
        best_e = np.full(len(dirs), np.inf)
        best_i = np.zeros(len(dirs))
        best_a = np.zeros(len(dirs))
        for ci, ca in cands:
            ok = (ci >= 0) & (ca >= 0)
            e = ((ci[:, None] * lobes + ca[:, None] - t[None]) ** 2).sum(1)
            better = ok & (e < best_e) & (dirs[:, 2] >= -1e-9)  # in front of the face (see the docstring)
            best_e, best_i, best_a = (
                np.where(better, e, best_e),
                np.where(better, ci, best_i),
                np.where(better, ca, best_a),
            )
        return best_e, best_i, best_a

    dirs = _fibonacci_sphere(400)
    e, i, a = solve(dirs)
    k = int(np.argmin(e))
    d, best = dirs[k], (e[k], i[k], a[k])
    g = np.random.default_rng(0).standard_normal((60, 3))
    for step in (0.15, 0.06, 0.02):  # refine around the best direction
        cand = d[None] + g * step
        cand /= np.linalg.norm(cand, axis=1, keepdims=True)
        e, i, a = solve(cand)
        k = int(np.argmin(e))
        if e[k] < best[0]:
            d, best = cand[k], (e[k], i[k], a[k])
    az, el = angles_from_direction(torch.as_tensor(d))
    return LightParams(float(az), float(el), float(best[1]), float(best[2]), _temperature_of(sh))
