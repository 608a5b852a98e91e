"""Person vs background: mediapipe's selfie segmentation (ships in the mediapipe package).

:class:`PersonSegmenter` owns one mediapipe graph (create it once per photo batch and close it,
or use it as a context manager); :meth:`PersonSegmenter.mask` returns a soft float32 mask in
[0, 1] at the photo's resolution (1 = person: head, hair, neck, shoulders, clothing).
"""

from __future__ import annotations

import threading
from typing import Self

import cv2
import numpy as np

from faceeditor.face.quiet import load_mediapipe, quiet_native_stderr

SEGMENT_PX = 512  # long side the photo is resized to before segmentation (the model runs at 256)


class PersonSegmenter:
    """mediapipe SelfieSegmentation (``model_selection=0``: the general 256x256 model)."""

    def __init__(self) -> None:
        mp = load_mediapipe()  # slow import; only when one is made

        with quiet_native_stderr():
            self._graph = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        self._lock = threading.Lock()
        self._warm = False  # the first inference logs native start-up chatter ("Feedback manager ...")

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        """Soft person mask (H, W) float32 in [0, 1] of a uint8 HxWx3 RGB photo."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected a uint8 HxWx3 RGB image, got {rgb.dtype} {rgb.shape}")
        h, w = rgb.shape[:2]
        k = min(1.0, SEGMENT_PX / max(h, w))
        small = (
            rgb
            if k == 1.0
            else cv2.resize(rgb, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
        )
        with self._lock:
            if self._warm:
                out = self._graph.process(np.ascontiguousarray(small)).segmentation_mask
            else:
                with quiet_native_stderr():
                    out = self._graph.process(np.ascontiguousarray(small)).segmentation_mask
                self._warm = True
        out = np.clip(np.asarray(out, np.float32), 0.0, 1.0)
        if out.shape != (h, w):
            out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
        return out

    def close(self) -> None:
        self._graph.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
