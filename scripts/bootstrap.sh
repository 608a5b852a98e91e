#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 / Python 3.11 machine (root, nothing installed).
# Installs the system libraries Qt, OpenGL (EGL) and Xvfb need, creates .venv, installs the
# pinned CPU torch wheel first (an unpinned torch would pull multi-GB CUDA builds), then the
# package with its pinned dependencies. A second run only checks the stamp and returns.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
STAMP=.venv/.faceeditor-stamp
want=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)

APT_PKGS="xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglx-mesa0 libegl-mesa0 libxkbcommon0 \
libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-randr0 \
libxcb-render-util0 libxcb-image0 libxcb-xinerama0 libxcb-xkb1 libdbus-1-3 libfontconfig1 \
libjemalloc2 fonts-dejavu-core desktop-file-utils"

missing_apt() {
  local p out=""
  for p in $APT_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out="$out $p"
  done
  echo "$out"
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -z "$(missing_apt)" ]; then
  exit 0
fi

miss=$(missing_apt)
if [ -n "$miss" ]; then
  echo "[bootstrap] installing system packages:$miss"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $miss >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
VPY="$ROOT/.venv/bin/python"
"$VPY" -m pip install -q --upgrade pip
# torch first and pinned: takes the local CPU wheel, never the CUDA build.
"$VPY" -m pip install -q "torch==2.13.0"
"$VPY" -m pip install -q -e ".[dev]"
"$VPY" -c "import torch, mediapipe, PySide6, moderngl, dlib, cv2; print('[bootstrap] ok: torch', torch.__version__)"
echo "$want" > "$STAMP"
