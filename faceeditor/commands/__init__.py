"""Sub-commands of the ``faceeditor`` CLI, one module each (discovered by :mod:`faceeditor.cli`)."""
