"""The package's dependency structure: imports run one way, lower layer to higher, with no cycles;
files and functions stay small.

Every ``import`` of every module under ``faceeditor/`` is parsed, those inside functions
included. A module may import its own package and any package of a lower layer:

    layer  package(s)                    owns
    -----  ----------------------------  --------------------------------------------------------
      0    faceeditor (root), core       errors, progress/cancel, FaceState, camera/pose, device, paths
      1    io                            image files in/out, OBJ files, sessions
      2    face                          detection, 68/478 landmarks, dlib identity
      3    morphable                     the ICT face model, normals
      4    render                        rasterizer, SH, texture atlas, GL renderer
      5    fit                           landmark + photometric fit -> FaceState, exports
      6    edit                          EditParams, light, flow, compositor, document, history
      7    neural                        networks (G, D, V, N, FR, R), inversion, neural renderer
      8    jobs                          renderer factory (mesh | neural), photo-file edit job
      9    app                           Qt window, widgets, workers (the only users of PySide6)
     10    bench                         benchmarks (may drive the window)
     11    commands                      command-line sub-commands (may start benches / window)
     12    cli                           argument parsing, error printing
     13    launch, __main__              entry points

``trainers/`` sits on top of everything and is never imported by the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "faceeditor"

LAYERS: dict[str, int] = {
    "": 0, "core": 0, "io": 1, "face": 2, "morphable": 3, "render": 4, "fit": 5, "edit": 6, "neural": 7,
    "jobs": 8, "app": 9, "bench": 10, "commands": 11, "cli": 12, "launch": 13, "__main__": 13,
}
QT_PACKAGES = ("PySide6", "pyqtgraph")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> str:
    """The layer unit of a dotted module name: its first component below ``faceeditor``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import statement in a file, relative ones resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((name, node.lineno))
    return out


def _all_imports() -> list[tuple[str, str, int, str]]:
    """``(importing module, imported module, line, file)`` over the whole package."""
    rows = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        rows += [(module, name, line, str(path.relative_to(PACKAGE.parent))) for name, line in _imports(path)]
    return rows


def test_every_package_has_a_layer():
    units = {_unit(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units <= set(LAYERS), f"packages without a layer in LAYERS: {sorted(units - set(LAYERS))}"


def test_imports_follow_the_layer_order():
    bad = []
    for src, dst, line, file in _all_imports():
        if dst == "trainers" or dst.startswith("trainers."):
            bad.append(f"{file}:{line} imports {dst} (trainers are never imported by the package)")
        if dst != "faceeditor" and not dst.startswith("faceeditor."):
            continue
        a, b = _unit(src), _unit(dst)
        if a != b and LAYERS[b] > LAYERS[a]:
            bad.append(f"{file}:{line}: {a or 'faceeditor'} (layer {LAYERS[a]}) imports {dst} (layer {LAYERS[b]})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_package_cycles():
    edges: dict[str, set[str]] = {}
    for src, dst, _, _ in _all_imports():
        if dst.startswith("faceeditor.") and _unit(src) != _unit(dst):
            edges.setdefault(_unit(src), set()).add(_unit(dst))

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if a in reachable(b))
    assert not cycles, f"package cycles: {cycles}"


def test_qt_only_in_the_window_layers():
    bad = [f"{file}:{line} imports {dst}" for src, dst, line, file in _all_imports()
           if dst.split(".")[0] in QT_PACKAGES and _unit(src) not in ("app", "bench")]
    assert not bad, "Qt outside app/ (and the GUI benchmark):\n" + "\n".join(bad)


def test_the_core_imports_nothing_of_the_project_above_it():
    bad = [f"{file}:{line} imports {dst}" for src, dst, line, file in _all_imports()
           if _unit(src) == "core" and dst.startswith("faceeditor.") and _unit(dst) != "core"]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_violation(tmp_path):
    """The parser resolves relative imports and sees imports inside functions."""
    pkg = tmp_path / "faceeditor" / "edit"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("def f():\n    from ..neural import gar\n    from faceeditor.app import window\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "faceeditor"
    try:
        found = [(_unit(s), d) for s, d, _, _ in _all_imports()]
    finally:
        PACKAGE = saved
    assert found == [("edit", "faceeditor.neural"), ("edit", "faceeditor.app")]


MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80


def test_files_and_functions_stay_small():
    """One idea per module: no source file over 450 lines, no function over 80 (package, trainers, tests)."""
    root = PACKAGE.parent
    bad = []
    for folder in ("faceeditor", "trainers", "tests"):
        for path in sorted((root / folder).rglob("*.py")):
            text = path.read_text()
            rel = path.relative_to(root)
            if text.count("\n") > MAX_FILE_LINES:
                bad.append(f"{rel}: {text.count(chr(10))} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > MAX_FUNCTION_LINES:
                        bad.append(f"{rel}:{node.lineno} {node.name}(): {n} lines")
    assert not bad, "too long:\n" + "\n".join(bad)
