"""uint8 HxWx3 images <-> float32 (1,3,H,W) tensors in [0,1] (the core's image convention).

torch is imported on first use so that reading and writing files does not load it.
"""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(pixels: np.ndarray, device: str | torch.device | None = None) -> torch.Tensor:
    """uint8 HxWx3 -> float32 (1,3,H,W) in [0,1], contiguous, on ``device`` (default CPU)."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 array, got {getattr(pixels, 'dtype', type(pixels))} "
                         f"{getattr(pixels, 'shape', '')}")
    t = torch.from_numpy(np.ascontiguousarray(pixels)).to(device)
    return t.permute(2, 0, 1).unsqueeze(0).to(torch.float32).contiguous().div_(255.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3,H,W) or (1,3,H,W) float tensor in [0,1] -> uint8 HxWx3 (clamped, rounded; NaN -> 0)."""
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected a single image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3,H,W) or (1,3,H,W) tensor, got shape {tuple(image.shape)}")
    x = image.detach().to("cpu", torch.float32)
    x = torch.nan_to_num(x, nan=0.0).clamp_(0.0, 1.0).mul_(255.0).round_()
    return np.ascontiguousarray(x.to(torch.uint8).permute(1, 2, 0).numpy())
