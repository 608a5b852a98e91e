"""dlib's face-recognition network (``dlib_face_recognition_resnet_model_v1.dat``) converted to torch.

Used as the identity teacher's network by ``trainers/prepare_dataset.py`` (:class:`DlibDescriptor
<trainers.dataset_sample.DlibDescriptor>`) and as the starting point of R in ``trainers/train_identity.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from faceeditor.face.identity import models_dir
from faceeditor.neural.identity import RESNET29, DlibResNet


class _DlibReader:
    """Reader for dlib's serialisation: integers are a header byte (bytes to follow, bit 7 = sign)
    then little-endian bytes; tensors (version 2) are 4 dims then raw little-endian float32."""

    def __init__(self, data: bytes) -> None:
        self.b, self.i = data, 0

    def int(self) -> int:
        h = self.b[self.i]
        n = h & 0x0F
        v = int.from_bytes(self.b[self.i + 1:self.i + 1 + n], "little")
        self.i += 1 + n
        return -v if h & 0x80 else v

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise ValueError("unsupported dlib tensor version")
        dims = [self.int() for _ in range(4)]
        n = int(np.prod(dims))
        a = np.frombuffer(self.b, "<f4", n, self.i).reshape(dims).copy()
        self.i += 4 * n
        return a


def convert_dlib_resnet(path: Path | None = None) -> dict[str, torch.Tensor]:
    """State dict of :class:`faceeditor.neural.identity.DlibResNet` from dlib's
    ``dlib_face_recognition_resnet_model_v1.dat`` (default: face_recognition_models' copy): its
    layers are stored input to output, each after its name (``con_4``: params = filters then biases,
    then filters, rows, cols, strides, paddings; ``affine_``: gamma then beta; ``fc_2``: outputs,
    inputs, (inputs x outputs) weights)."""
    if path is None:
        path = models_dir() / "dlib_face_recognition_resnet_model_v1.dat"
    data = Path(path).read_bytes()
    convs, affines, fc = [], [], None
    for m in re.finditer(rb"\x05con_4|\x07affine_|\x04fc_2", data):
        r = _DlibReader(data)
        r.i = m.end()
        tag = m.group()[1:]
        if tag == b"con_4":
            params = r.tensor().ravel()
            nf, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
            convs.append((params, nf, nr, nc, (sy, sx), (py, px)))
        elif tag == b"affine_":
            p = r.tensor().ravel()
            affines.append((p[: len(p) // 2], p[len(p) // 2:]))
        else:
            n_out, n_in = r.int(), r.int()
            fc = r.tensor().reshape(n_in, n_out)
    net = DlibResNet()
    sd = net.state_dict()
    conv_keys = ["stem"] + [f"blocks.{i}.conv{j}" for i in range(len(RESNET29)) for j in (1, 2)]
    aff_keys = ["stem_aff"] + [f"blocks.{i}.aff{j}" for i in range(len(RESNET29)) for j in (1, 2)]
    if len(convs) != len(conv_keys) or len(affines) != len(aff_keys) or fc is None:
        raise ValueError(f"unexpected dlib network: {len(convs)} convs, {len(affines)} affine layers")
    for key, (params, nf, nr, nc, stride, pad) in zip(conv_keys, convs):
        w = sd[f"{key}.weight"]
        mod = net.get_submodule(key)
        if (nf, nr, nc) != tuple(w.shape[:1]) + tuple(w.shape[2:]) or stride != mod.stride or pad != mod.padding:
            raise ValueError(f"layer {key}: dlib has {nf}x{nr}x{nc} stride {stride} pad {pad}, torch {tuple(w.shape)} "
                             f"stride {mod.stride} pad {mod.padding}")
        sd[f"{key}.weight"] = torch.from_numpy(params[: w.numel()].reshape(w.shape))
        sd[f"{key}.bias"] = torch.from_numpy(params[w.numel():])
    for key, (g, b) in zip(aff_keys, affines):
        sd[f"{key}.weight"], sd[f"{key}.bias"] = torch.from_numpy(g), torch.from_numpy(b)
    sd["fc.weight"] = torch.from_numpy(np.ascontiguousarray(fc.T))
    return sd
