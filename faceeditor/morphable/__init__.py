"""The face model: ICT-FaceKit linear head model (``resources/face_model.npz``), normals, and the
tables derived from a model (``model.derived``). The pose helpers are re-exported from
:mod:`faceeditor.core.pose`.

Frame: +X subject's left, +Y up, face toward +Z, centimetres (see :mod:`faceeditor.core.pose`).
"""

from faceeditor.core.pose import euler_to_matrix, matrix_to_euler, transform
from faceeditor.morphable.derived import DerivedTables
from faceeditor.morphable.model import FaceModel, default_model_path, load_face_model
from faceeditor.morphable.normals import face_normals, vertex_normals

__all__ = ["DerivedTables", "FaceModel", "default_model_path", "load_face_model", "face_normals", "vertex_normals",
           "euler_to_matrix", "matrix_to_euler", "transform"]
