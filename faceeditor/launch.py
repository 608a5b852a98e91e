"""Entry point of ``run.sh``: the editor window when a display exists, else the CLI demo."""

from __future__ import annotations

import importlib.util
import os
import sys

from faceeditor.cli import main as cli_main


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    gui_ready = importlib.util.find_spec("faceeditor.commands.gui") is not None
    if argv and argv[0] not in ("gui",) and not os.path.exists(argv[0]):
        return cli_main(argv)  # explicit sub-command
    if gui_ready and has_display():
        return cli_main(["gui", *argv])
    print("No display (or no window yet): running the command-line demo on the sample portrait.")
    demo = ["demo"] + (["--photo", argv[0]] if argv else [])
    return cli_main(demo)


if __name__ == "__main__":
    sys.exit(main())
