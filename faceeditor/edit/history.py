"""Undo/redo over immutable snapshots (Qt-free; the GUI's Ctrl+Z / Ctrl+Shift+Z).

The history is a list of ``(label, value)`` entries with a cursor. :meth:`History.push` adds a
new current value, dropping anything that was undone. A *gesture* (one slider drag, typing
in a spin box) makes many changes that the user thinks of as one edit: pushes with the same
``merge_key`` inside one open gesture replace the top entry (value and label: a drag reads as its
final value) instead of stacking up. The
gesture closes on :meth:`History.close_gesture` (slider released, focus left), on a push
with another key, or after ``merge_window_s`` without changes.

Values are stored as given: callers pass values they no longer mutate (copies).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Generic, Hashable, TypeVar

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    label: str
    value: T
    merge_key: Hashable | None = None
    time: float = 0.0
    open: bool = False


class History(Generic[T]):
    def __init__(self, initial: T, label: str = "Open", limit: int = 500, merge_window_s: float = 1.5) -> None:
        self._entries: list[Entry[T]] = [Entry(label, initial)]
        self._pos = 0
        self.limit = max(2, int(limit))
        self.merge_window_s = merge_window_s

    # ----------------------------------------------------------------- state
    @property
    def current(self) -> T:
        return self._entries[self._pos].value

    @property
    def position(self) -> int:
        return self._pos

    def __len__(self) -> int:
        return len(self._entries)

    def can_undo(self) -> bool:
        return self._pos > 0

    def can_redo(self) -> bool:
        return self._pos < len(self._entries) - 1

    def undo_label(self) -> str | None:
        return self._entries[self._pos].label if self.can_undo() else None

    def redo_label(self) -> str | None:
        return self._entries[self._pos + 1].label if self.can_redo() else None

    def labels(self) -> list[str]:
        return [e.label for e in self._entries]

    # ----------------------------------------------------------------- changes
    def push(self, value: T, label: str, merge_key: Hashable | None = None, now: float | None = None) -> bool:
        """Make ``value`` current. Returns True when it merged into the top entry (same gesture)."""
        now = time.monotonic() if now is None else now
        top = self._entries[self._pos]
        if (merge_key is not None and top.open and top.merge_key == merge_key and self._pos > 0
                and now - top.time <= self.merge_window_s):
            del self._entries[self._pos + 1:]
            top.value, top.time, top.label = value, now, label  # the label says the final value
            return True
        del self._entries[self._pos + 1:]
        top.open = False
        self._entries.append(Entry(label, value, merge_key, now, merge_key is not None))
        if len(self._entries) > self.limit:
            drop = len(self._entries) - self.limit
            del self._entries[:drop]
        self._pos = len(self._entries) - 1
        return False

    def close_gesture(self) -> None:
        """The current gesture ended: the next change starts a new undo step."""
        self._entries[self._pos].open = False

    def undo(self) -> T | None:
        if not self.can_undo():
            return None
        self._entries[self._pos].open = False
        self._pos -= 1
        return self.current

    def redo(self) -> T | None:
        if not self.can_redo():
            return None
        self._pos += 1
        return self.current

    def goto(self, position: int) -> T:
        """Jump to entry ``position`` (as several undos or redos at once)."""
        self._entries[self._pos].open = False
        self._pos = max(0, min(int(position), len(self._entries) - 1))
        return self.current

    def reset(self, initial: T, label: str = "Open") -> None:
        self._entries = [Entry(label, initial)]
        self._pos = 0

    # ----------------------------------------------------------------- persistence
    def entries(self) -> list[tuple[str, T]]:
        return [(e.label, e.value) for e in self._entries]

    @classmethod
    def from_entries(cls, entries: list[tuple[str, T]], position: int, **kw) -> "History[T]":
        if not entries:
            raise ValueError("a history needs at least one entry")
        h = cls(entries[0][1], entries[0][0], **kw)
        h._entries = [Entry(label, value) for label, value in entries]
        h._pos = max(0, min(int(position), len(entries) - 1))
        return h
