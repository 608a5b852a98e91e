"""FaceEditor: edit faces in photos through a fitted 3D head and neural renderers.

Conventions live in code, once:
  * camera and pixel frames: :mod:`faceeditor.core.camera`
  * image tensors: float32 (B,3,H,W) in [0,1] in the core, uint8 HxWx3 at the edges
  * lighting: 2nd-order spherical harmonics, :mod:`faceeditor.render.sh`
  * devices: :mod:`faceeditor.core.device`
"""

__version__ = "0.1.0"
