#!/usr/bin/env bash
# Install what is needed (first run only) and run the test suite under a virtual X server
# (Qt widgets offscreen, OpenGL via EGL/Xvfb). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p test-artifacts
exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest "$@"
