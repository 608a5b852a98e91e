"""Benchmarks for ``faceeditor bench``: one module per benchmark (see :mod:`faceeditor.commands.bench`)."""
