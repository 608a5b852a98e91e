"""Rendering: camera conventions, the differentiable torch rasterizer, SH lighting, GL rendering."""
