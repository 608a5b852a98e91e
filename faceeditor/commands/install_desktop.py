"""``faceeditor install-desktop [--uninstall]``: a freedesktop launcher so FaceEditor starts with a
double click and shows in "Open with" for photos.

Writes (per user, no root needed; ``--data-dir`` or ``$XDG_DATA_HOME``, default
``~/.local/share``):

* ``applications/faceeditor.desktop`` — runs this Python with ``-m faceeditor gui %f``, so a
  photo opened from a file manager arrives as the argument; registered for JPEG, PNG, WebP,
  TIFF, BMP and GIF;
* ``icons/hicolor/scalable/apps/faceeditor.svg`` and ``icons/hicolor/256x256/apps/faceeditor.png``.

Then refreshes the desktop and icon caches when their tools are installed. ``--uninstall``
removes exactly these files.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from faceeditor.core.paths import PACKAGE_DIR

NAME = "install-desktop"
HELP = "add FaceEditor to the desktop's application menu and 'Open with' for photos (--uninstall removes it)"
DESKTOP_ID = "faceeditor.desktop"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--uninstall", action="store_true", help="remove the launcher and icons")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where to install (default $XDG_DATA_HOME or ~/.local/share)")


def data_dir(arg: Path | None = None) -> Path:
    if arg is not None:
        return arg
    env = os.environ.get("XDG_DATA_HOME")
    return Path(env) if env else Path.home() / ".local" / "share"


def installed_files(base: Path) -> dict[str, Path]:
    return {"desktop": base / "applications" / DESKTOP_ID,
            "svg": base / "icons" / "hicolor" / "scalable" / "apps" / "faceeditor.svg",
            "png": base / "icons" / "hicolor" / "256x256" / "apps" / "faceeditor.png"}


def _exec_line() -> str:
    """The Exec= command: this interpreter running the package (quoted per the desktop spec)."""
    def quote(arg: str) -> str:
        if all(c.isalnum() or c in "/._-+=:," for c in arg):
            return arg
        return '"' + "".join("\\" + c if c in '"`$\\' else c for c in arg) + '"'

    return " ".join(quote(a) for a in (sys.executable, "-m", "faceeditor", "gui"))


def desktop_entry(icon: Path) -> str:
    template = (PACKAGE_DIR / "assets" / "faceeditor.desktop.in").read_text()
    return template.replace("{exec}", _exec_line()).replace("{icon}", str(icon))


def _refresh_caches(base: Path) -> None:
    for cmd in (["update-desktop-database", str(base / "applications")],
                ["gtk-update-icon-cache", "-q", "-t", "-f", str(base / "icons" / "hicolor")]):
        if shutil.which(cmd[0]):
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def install(base: Path) -> dict[str, Path]:
    files = installed_files(base)
    assets = PACKAGE_DIR / "assets"
    for key, src in (("svg", assets / "faceeditor.svg"), ("png", assets / "faceeditor.png")):
        files[key].parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, files[key])
    files["desktop"].parent.mkdir(parents=True, exist_ok=True)
    tmp = files["desktop"].with_suffix(".tmp")
    tmp.write_text(desktop_entry(files["png"]))
    tmp.chmod(0o755)  # some file managers only trust executable launchers
    os.replace(tmp, files["desktop"])
    _refresh_caches(base)
    return files


def uninstall(base: Path) -> list[Path]:
    removed = []
    for p in installed_files(base).values():
        if p.exists():
            p.unlink()
            removed.append(p)
    _refresh_caches(base)
    return removed


def run(args: argparse.Namespace) -> int:
    base = data_dir(args.data_dir)
    if args.uninstall:
        removed = uninstall(base)
        print("removed:" if removed else "nothing to remove: FaceEditor's launcher was not installed in " + str(base))
        for p in removed:
            print(f"  {p}")
        return 0
    files = install(base)
    print("installed the FaceEditor launcher:")
    for p in files.values():
        print(f"  {p}")
    print(f"It runs: {shlex.join([sys.executable, '-m', 'faceeditor', 'gui'])} PHOTO")
    print("Find FaceEditor in the application menu, or right-click a photo > Open With > FaceEditor.")
    return 0
