"""The bottom layer: errors, progress/cancel callbacks, state dataclasses and conventions.

Imports nothing of the project; every other package may import it. Conventions written once:
camera and pixel frames (:mod:`.camera`), head pose angles and rotations (:mod:`.pose`),
compute device and threads (:mod:`.device`), where files live (:mod:`.paths`).
"""
