"""What a fuzz run counts (cases, outcomes, failures, slowest case) and how it is sized and seeded.

``FACEEDITOR_FUZZ_CASES`` sets the long run's total (default 10,000), ``FACEEDITOR_FUZZ_SHORT_CASES``
the short run's (default 1000), ``FACEEDITOR_FUZZ_SEED`` the seed (default 14).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

CASE_SECONDS = 20.0  # one case taking longer than this is a hang
SHARES = {"images": 0.30, "sessions": 0.25, "presets": 0.20, "values": 0.25}


def seed() -> int:
    return int(os.environ.get("FACEEDITOR_FUZZ_SEED", "14"))


def counts(long: bool) -> dict[str, int]:
    """Cases per fuzzer for the long (``-m fuzz``) or the short (default suite) run."""
    total = int(
        os.environ.get("FACEEDITOR_FUZZ_CASES" if long else "FACEEDITOR_FUZZ_SHORT_CASES", "10000" if long else "1000")
    )
    return {k: max(1, round(total * share)) for k, share in SHARES.items()}


class Hang(BaseException):
    """A case ran past :data:`CASE_SECONDS`."""


@contextmanager
def deadline(seconds: float = CASE_SECONDS) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread when the block runs longer than ``seconds``."""

    def alarm(signum, frame):
        raise Hang(f"no result after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Tally:
    """Outcomes of one fuzzer; ``failures`` holds a line per case whose outcome was wrong."""

    kind: str
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def case(self, outcome: str, elapsed_s: float) -> None:
        self.cases += 1
        self.outcomes[outcome] += 1
        self.slowest_s = max(self.slowest_s, elapsed_s)

    def fail(self, case: str, problem: str) -> None:
        self.failures.append(f"{self.kind} {case}: {problem}")

    @property
    def crashes(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k.startswith(("CRASH", "HANG")))

    def line(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.outcomes.items()))
        return (
            f"fuzz {self.kind}: {self.cases} cases in {time.perf_counter() - self.started:.1f} s "
            f"(slowest {self.slowest_s * 1000:.0f} ms): {kinds}; wrong outcomes {len(self.failures)}"
        )

    def assert_clean(self) -> None:
        assert not self.failures, f"{len(self.failures)} wrong outcome(s):\n" + "\n".join(self.failures[:20])


def run_case(tally: Tally, case: str, fn: Callable[..., str], *args: object) -> None:
    """Run ``fn(*args) -> outcome`` under a deadline; any exception it lets out is a crash."""
    t0 = time.perf_counter()
    try:
        with deadline():
            outcome = fn(*args)
    except Hang as exc:
        outcome = "HANG"
        tally.fail(case, str(exc))
    except AssertionError as exc:
        outcome = "WRONG"
        tally.fail(case, str(exc) or "assertion failed")
    except Exception as exc:  # noqa: BLE001 - the point: nothing but the expected errors may come out
        outcome = f"CRASH {type(exc).__name__}"
        tally.fail(case, f"{type(exc).__name__}: {exc}"[:300])
    tally.case(outcome, time.perf_counter() - t0)
