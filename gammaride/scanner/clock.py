"""Clocks for the scan loop: the broker's clock is the clock; these only sleep against it.

The loop reads the broker's time (``GET /v2/clock``) and calls :meth:`sync`; between
reads a clock estimates broker time from the local monotonic clock. Three kinds:

- :class:`WallClock` — real Alpaca: market time runs at real speed.
- :class:`ScaledClock` — the offline server at ``speed`` s: one real second is ``s``
  market seconds, so sleeping ``d`` market seconds takes ``d / s`` real seconds.
- :class:`SteppedClock` — the offline server with a stepped clock (speed 0): sleeping
  advances the server's clock instead, so a 55-scan session runs in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import pandas as pd

from gammaride.config import ET


class Clock(Protocol):
    def sync(self, broker_now: pd.Timestamp) -> None: ...
    def now(self) -> pd.Timestamp: ...
    def sleep_until(self, target: pd.Timestamp) -> None: ...


class ScaledClock:
    """Broker time estimated as the last synced time plus elapsed real time times ``speed``."""

    def __init__(self, speed: float = 1.0, sleep: Callable[[float], None] = time.sleep):
        if speed <= 0:
            raise ValueError(f"clock speed {speed!r} must be > 0; use SteppedClock for speed 0")
        self.speed = float(speed)
        self._sleep = sleep
        self._anchor: pd.Timestamp | None = None
        self._mono = 0.0

    def sync(self, broker_now: pd.Timestamp) -> None:
        self._anchor = pd.Timestamp(broker_now).tz_convert(ET)
        self._mono = time.monotonic()

    def now(self) -> pd.Timestamp:
        if self._anchor is None:
            return pd.Timestamp.now(tz=ET)
        return self._anchor + pd.Timedelta(seconds=(time.monotonic() - self._mono) * self.speed)

    def sleep_until(self, target: pd.Timestamp) -> None:
        delta = (pd.Timestamp(target) - self.now()).total_seconds()
        if delta > 0:
            self._sleep(delta / self.speed)


class WallClock(ScaledClock):
    """Real time against the real broker."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep):
        super().__init__(1.0, sleep)


class SteppedClock:
    """A server clock that moves only when told: sleeping advances it to the target."""

    def __init__(self, advance_to: Callable[[pd.Timestamp], None]):
        self._advance_to = advance_to
        self._now: pd.Timestamp | None = None

    def sync(self, broker_now: pd.Timestamp) -> None:
        self._now = pd.Timestamp(broker_now).tz_convert(ET)

    def now(self) -> pd.Timestamp:
        if self._now is None:
            raise RuntimeError("SteppedClock.now() before the first sync with the broker clock")
        return self._now

    def sleep_until(self, target: pd.Timestamp) -> None:
        target = pd.Timestamp(target).tz_convert(ET)
        if self._now is None or target > self._now:
            self._advance_to(target)
            self._now = target


def next_scan_time(now: pd.Timestamp, offset_seconds: float) -> pd.Timestamp:
    """The next minute boundary plus the offset, strictly after ``now``.

    Computed from the broker's time at every scan, so scans never drift the way
    ``sleep(60)`` after each scan's own work does.
    """
    now = pd.Timestamp(now)
    target = now.floor("min") + pd.Timedelta(seconds=offset_seconds)
    if target <= now:
        target += pd.Timedelta(minutes=1)
    return target
