"""The face model: ICT-FaceKit linear head model (``resources/face_model.npz``), pose, normals.

Frame: +X subject's left, +Y up, face toward +Z, centimetres (see :mod:`.pose`).
"""

from faceeditor.morphable.model import FaceModel, default_model_path, load_face_model
from faceeditor.morphable.normals import face_normals, vertex_normals
from faceeditor.morphable.pose import euler_to_matrix, matrix_to_euler, transform

__all__ = ["FaceModel", "default_model_path", "load_face_model", "face_normals", "vertex_normals",
           "euler_to_matrix", "matrix_to_euler", "transform"]
