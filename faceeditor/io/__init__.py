"""Image input/output at FaceEditor's edges: files <-> upright uint8 HxWx3 RGB <-> core tensors.

Policies (pixel limit, alpha, 16-bit, CMYK, ICC/EXIF) are documented in :mod:`faceeditor.io.image`.
"""

from faceeditor.core.errors import ImageLoadError, ImageSaveError
from faceeditor.io.image import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_FORMATS,
    LoadedImage,
    load_image,
    load_rgb,
)
from faceeditor.io.save import EXTENSIONS, format_for_path, save_image
from faceeditor.io.tensor import to_tensor, to_uint8

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "EXTENSIONS",
    "SUPPORTED_FORMATS",
    "ImageLoadError",
    "ImageSaveError",
    "LoadedImage",
    "format_for_path",
    "load_image",
    "load_rgb",
    "save_image",
    "to_tensor",
    "to_uint8",
]
