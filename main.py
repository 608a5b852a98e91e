#!/usr/bin/env python3
"""FaceEditor: ``python main.py [PHOTO]`` opens the editor window (or, without a display, runs the demo)."""

import sys

from faceeditor.launch import main

if __name__ == "__main__":
    sys.exit(main())
