"""The ``faceeditor`` command line.

Each sub-command is a module in :mod:`faceeditor.commands` exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; they are discovered, so adding a command
never edits this file. With no sub-command, the editor window opens (``faceeditor [PHOTO]``).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from types import ModuleType

import faceeditor.commands
from faceeditor import __version__
from faceeditor.core.device import configure_threads
from faceeditor.core.errors import FaceEditorError


def command_names() -> list[str]:
    """The sub-commands' names, from the module names alone (``install_desktop`` -> ``install-desktop``)."""
    return sorted(
        i.name.replace("_", "-")
        for i in pkgutil.iter_modules(faceeditor.commands.__path__)
        if not i.name.startswith("_")
    )


def _command_modules(only: str | None = None) -> list[ModuleType]:
    """The command modules (``only``: just that one: a command imports what it needs, so running
    one command does not load the fitter, the networks and the benchmarks of all the others)."""
    mods = []
    for info in sorted(pkgutil.iter_modules(faceeditor.commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or (only is not None and info.name.replace("_", "-") != only):
            continue
        mod = importlib.import_module(f"faceeditor.commands.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return mods


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The parser with every sub-command, or with the command ``only`` alone."""
    parser = argparse.ArgumentParser(prog="faceeditor", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"faceeditor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    table: dict[str, ModuleType] = {}
    for mod in _command_modules(only):
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        table[mod.NAME] = mod
    return parser, table


_ARGPARSE_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$")  # the negative numbers argparse itself takes as values


def _negative_word(arg: str) -> bool:
    """``-inf``, ``-nan``, ``-1e-07``: numbers for ``float`` that argparse would take for an option."""
    if not arg.startswith("-") or _ARGPARSE_NEGATIVE.match(arg):
        return False
    try:
        float(arg)
    except ValueError:
        return False
    return True


def _attach_negative_words(argv: list[str]) -> list[str]:
    """``--yaw -inf`` -> ``--yaw=-inf`` (also ``-1e-07``): argparse takes such words for options, so
    the value would vanish before the edit validation could name it."""
    out: list[str] = []
    for arg in argv:
        if out and _negative_word(arg) and out[-1].startswith("--") and "=" not in out[-1]:
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = _attach_negative_words(list(sys.argv[1:] if argv is None else argv))
    names = command_names()
    if argv and argv[0] in names:
        only: str | None = argv[0]
    elif not argv or not argv[0].startswith("-"):
        only = "gui"
    else:
        only = None  # --help, --version: every command
    parser, table = build_parser(only)
    # `faceeditor` or `faceeditor photo.jpg`: open the window.
    if not argv or (argv[0] not in table and not argv[0].startswith("-")):
        argv = ["gui", *argv] if "gui" in table else argv
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command not in ("bench", "gui"):  # benchmarks and the window set their own thread counts
        configure_threads()
    try:
        return int(table[args.command].run(args) or 0)
    except FaceEditorError as exc:
        print(f"faceeditor {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
