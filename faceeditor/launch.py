"""Entry point of ``run.sh``: the editor window when a display exists, else the CLI demo.

The window's path imports neither the command line (whose device setup loads torch) nor torch:
the window shows first and loads the rest behind it (:mod:`faceeditor.app.startup`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def cli_main(argv: list[str]) -> int:
    from faceeditor.cli import main

    return main(argv)


def gui_main(argv: list[str]) -> int:
    """``faceeditor gui ARGS`` without building the whole command line."""
    from faceeditor.commands import gui
    from faceeditor.core.errors import FaceEditorError

    parser = argparse.ArgumentParser(prog="faceeditor gui", description=gui.HELP)
    gui.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(gui.run(args) or 0)
    except FaceEditorError as exc:
        print(f"faceeditor gui: error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    gui_ready = importlib.util.find_spec("faceeditor.commands.gui") is not None
    if argv and argv[0] not in ("gui",) and not os.path.exists(argv[0]):
        return cli_main(argv)  # explicit sub-command
    if gui_ready and has_display():
        return gui_main(argv[1:] if argv and argv[0] == "gui" else argv)
    print("No display (or no window yet): running the command-line demo on the sample portrait.")
    demo = ["demo"] + (["--photo", argv[0]] if argv else [])
    return cli_main(demo)


if __name__ == "__main__":
    sys.exit(main())
