"""Expression macros and named presets built on the 53 ARKit blendshapes.

A macro maps one strength s in [0, 1] to weights of several blendshapes (both sides); the GUI's
macro sliders and ``--preset NAME:S`` use the same table.
"""

from __future__ import annotations

MACROS: dict[str, dict[str, float]] = {
    "smile": {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0, "cheekSquint_L": 0.4, "cheekSquint_R": 0.4,
              "eyeSquint_L": 0.25, "eyeSquint_R": 0.25, "mouthUpperUp_L": 0.15, "mouthUpperUp_R": 0.15},
    "surprise": {"browInnerUp_L": 1.0, "browInnerUp_R": 1.0, "browOuterUp_L": 0.9, "browOuterUp_R": 0.9,
                 "eyeWide_L": 0.8, "eyeWide_R": 0.8, "jawOpen": 0.45, "mouthFunnel": 0.2},
    "anger": {"browDown_L": 1.0, "browDown_R": 1.0, "eyeSquint_L": 0.5, "eyeSquint_R": 0.5, "noseSneer_L": 0.6,
              "noseSneer_R": 0.6, "mouthPress_L": 0.5, "mouthPress_R": 0.5, "mouthFrown_L": 0.3,
              "mouthFrown_R": 0.3},
    "sadness": {"browInnerUp_L": 0.8, "browInnerUp_R": 0.8, "browDown_L": 0.3, "browDown_R": 0.3,
                "mouthFrown_L": 0.9, "mouthFrown_R": 0.9, "mouthShrugLower": 0.4, "eyeSquint_L": 0.2,
                "eyeSquint_R": 0.2},
    "mouth_open": {"jawOpen": 1.0, "mouthLowerDown_L": 0.2, "mouthLowerDown_R": 0.2},
    "blink": {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0},
}

MACRO_LABELS = {"smile": "Smile", "surprise": "Surprise", "anger": "Anger", "sadness": "Sadness",
                "mouth_open": "Mouth open", "blink": "Blink"}


def macro_weights(name: str, strength: float) -> dict[str, float]:
    """Blendshape weights of macro ``name`` at ``strength`` (0..1, clamped)."""
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    if key not in MACROS:
        raise KeyError(f"unknown expression preset {name!r}; known: {', '.join(sorted(MACROS))}")
    s = max(0.0, min(1.0, float(strength)))
    return {k: round(v * s, 6) for k, v in MACROS[key].items()}
