"""The fuzz suite's helpers (``mutate``, ``tally``, ``fuzz_*``) and the tests' shared fixtures
(``session_fixtures``) are imported by name: their folders go on ``sys.path``."""

from __future__ import annotations

import sys
from pathlib import Path

for folder in (Path(__file__).parent, Path(__file__).parents[1]):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
