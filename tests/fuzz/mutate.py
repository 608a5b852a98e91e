"""Seeded mutators for the fuzz suite: absurd values, JSON structure mutations, byte-level damage."""

from __future__ import annotations

import copy
import math
import random
import string
from typing import Any

# values no field should take, or should take only within its range
ABSURD_NUMBERS = [
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    -1e308,
    1e300,
    -1e30,
    1e9,
    -1e9,
    1e-320,
    -0.0,
    10**40,
    -(10**40),
    10**400,
    2**63,
    -(2**63),
    999,
    -999,
    361,
    -361,
    31,
    -31,
    1.0000001,
    -0.0000001,
    3.0000001,
    12000.5,
]
ABSURD_OTHER = [
    None,
    True,
    False,
    "",
    "abc",
    "nan",
    "inf",
    "-inf",
    "NaN",
    "1e999",
    "12",
    " 5 ",
    "0x10",
    "1_0",
    "٣",
    [],
    [1, 2],
    {},
    {"a": 1},
    [[[]]],
    "\x00",
    "ä" * 300,
]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON-able value (NaN/infinity included: Python's json writes and reads them)."""
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, 1, -1, 7, 2**31, -(2**63), 10**30, 10**400])
    if kind == 3:
        return rng.choice([0.5, -2.5, math.nan, math.inf, -math.inf, 1e308, -1e-308, rng.uniform(-1e3, 1e3)])
    if kind in (4, 5):
        return "".join(rng.choice(string.printable + "äß☃\x00") for _ in range(rng.randrange(12)))
    if kind == 6:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return {random_key(rng): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}
    return rng.choice(ABSURD_NUMBERS + ABSURD_OTHER)


def random_key(rng: random.Random) -> str:
    return rng.choice(["", "x", "yaw", "label", "edit", "params", "history", "version", "0", "ä", "__class__"])


def _nodes(doc: Any, path: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indexes) into ``doc``, the root ``()`` included."""
    out = [path]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _nodes(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _nodes(v, (*path, i))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def mutate_json(rng: random.Random, doc: Any, n: int = 1) -> Any:
    """``doc`` with ``n`` random structural mutations (delete, replace, retype, wrap, duplicate, add)."""
    doc = copy.deepcopy(doc)
    for _ in range(n):
        path = rng.choice(_nodes(doc))
        op = rng.randrange(7)
        if not path:  # the root itself
            doc = [doc] if op == 0 else random_json(rng) if op == 1 else doc
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        if op == 0:
            del parent[key]
        elif op in (1, 2):
            parent[key] = random_json(rng)
        elif op == 3:
            parent[key] = rng.choice(ABSURD_NUMBERS + ABSURD_OTHER)
        elif op == 4:
            parent[key] = [parent[key]]
        elif op == 5 and isinstance(parent[key], (list, dict)):
            parent[key] = list(parent[key].values()) if isinstance(parent[key], dict) else dict(enumerate(parent[key]))
        elif isinstance(parent, dict):
            parent[random_key(rng)] = random_json(rng)
        else:
            parent.append(copy.deepcopy(parent[key]))
    return doc


def mutate_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """(damaged copy, what was done): byte flips, bit flips, truncation, a cut-out, a repeat, garbage."""
    b = bytearray(data)
    op = rng.randrange(6)
    if op == 0 or not b:
        for _ in range(rng.randint(1, 8)):
            if b:
                b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b), "byte flips"
    if op == 1:
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
        return bytes(b), "bit flip"
    if op == 2:
        return bytes(b[: rng.randrange(len(b))]), "truncated"
    if op == 3:
        i = rng.randrange(len(b))
        return bytes(b[:i] + b[i + rng.randint(1, 64) :]), "cut out"
    if op == 4:
        i, j = sorted(rng.sample(range(len(b) + 1), 2))
        return bytes(b[:j] + b[i:j] + b[j:]), "repeated"
    i = rng.randrange(len(b))
    return bytes(b[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 32))) + b[i:]), "garbage inserted"
