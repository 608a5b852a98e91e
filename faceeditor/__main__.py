import sys

from faceeditor.cli import main

sys.exit(main())
