"""The run's record: its counts and the journal writes that must never end the run.

A scanner run and its position manager write through one :class:`RunRecord`: a failed
write is counted and printed, and the first one is remembered as the run's journal
failure (from then on the run makes no new entries and ends failed: no journal, no
trade), but open positions are still managed to their exit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from gammaride.journal import Journal


def short_error(exc: BaseException | str) -> str:
    """An error's first line, at most 200 characters (its type when it has no text)."""
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


@dataclass
class RunStats:
    scans: int = 0
    in_window: int = 0
    signals: int = 0
    entries: int = 0
    exits: dict = field(default_factory=dict)
    pnl_usd: float = 0.0
    errors: int = 0
    adopted: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class RunRecord:
    """One run's journal rows and counts. ``run_id`` is set when the run starts;
    ``scan_no`` is the scan errors are filed under."""

    def __init__(self, journal: Journal, *, out: Callable[[str], None], debug: bool = False):
        self.journal = journal
        self.out = out
        self.debug = debug
        self.stats = RunStats()
        self.run_id: int | None = None
        self.scan_no = 0
        # the first failed journal write: from then on no new entries (no journal, no trade)
        self.failure: str | None = None

    def tx(self, fn: Callable, *args, **kwargs) -> None:
        """``fn(*args, **kwargs)`` in one journal transaction."""
        with self.journal.transaction():
            fn(*args, **kwargs)

    def safe(self, fn: Callable[[], object], what: str) -> bool:
        """Run a journal write; False when it failed. A failed write must not kill the run
        (open positions are still managed to their exit), but from then on the run makes
        no new entries, says so at every scan and ends failed (no journal, no trade)."""
        try:
            fn()
            return True
        except Exception as exc:  # noqa: BLE001 - a journal failure must not kill the run
            self.stats.errors += 1
            if self.failure is None:
                self.failure = f"{what} failed: {short_error(exc)}"
            print(f"  [JOURNAL] {what} failed: {short_error(exc)}", file=sys.stderr)
            return False

    def write(self, what: str, fn: Callable, *args, **kwargs) -> bool:
        """``fn(*args, **kwargs)`` in its own transaction, through :meth:`safe`."""
        return self.safe(lambda: self.tx(fn, *args, **kwargs), what)

    def error(self, context: str, exc: BaseException | str, scan_no: int | None = None) -> None:
        """Count an error and journal it under the current scan (printed in debug mode)."""
        self.stats.errors += 1
        n = self.scan_no if scan_no is None else scan_no
        self.write("write error", self.journal.write_error, self.run_id, context, exc, n)
        if self.debug:
            self.out(f"  [ERROR] {context}: {short_error(exc)}")
