"""Directional-light controls mapped to SH irradiance (the GUI's lighting panel and the CLI flags).

A light is ``ambient + intensity * max(0, n.d)`` tinted by a colour temperature, projected to
2nd-order SH with :func:`faceeditor.render.sh.directional_sh`. :func:`light_from_sh` gives the
controls that best describe a fitted SH (for "as in photo" and as slider start values).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from faceeditor.render.sh import (LAMBERT_BAND, SH_CONSTS, angles_from_direction, direction_from_angles,
                                  directional_sh)


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
    def from_dict(cls, d: dict) -> "LightParams":
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
    bal = sh[0] / max(sh[0].mean(), 1e-8)
    temperature = _temperature_from_balance(bal)
    return LightParams(az, el, float(intensity), float(ambient), temperature)


def _temperature_from_balance(rgb: np.ndarray) -> float:
    temps = np.linspace(2000.0, 12000.0, 101)
    errs = [np.abs(np.array(temperature_rgb(t)) - rgb).sum() for t in temps]
    return float(temps[int(np.argmin(errs))])
