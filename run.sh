#!/usr/bin/env bash
# Install what is needed (first run only) and start FaceEditor.
# With a display: the editor window (python main.py [PHOTO]).
# Without one: the command line on the embedded sample portrait (writes ./out/demo/).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/python -m faceeditor.launch "$@"
