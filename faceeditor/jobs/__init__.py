"""Whole-photo jobs above the renderers: the renderer factory (mesh or neural, by name) and editing
a photo file end to end. Shared by the window, the command line and the benchmarks."""
