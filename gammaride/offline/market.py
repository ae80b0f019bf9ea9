"""The replayed market: a simulated clock, the exchange calendar and a tape of 1-minute bars.

Times inside the server are integers (nanoseconds since the epoch, UTC): the server does
this arithmetic on every request, and integers keep it cheap and exact. Conversion to
``pd.Timestamp`` and RFC-3339 strings happens only at the edges.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from gammaride.config import ET, MAX_SPEED, NS_MIN, NS_SEC
from gammaride.errors import ConfigError


def to_ns(ts: object) -> int:
    """Epoch nanoseconds of a time; naive times are America/New_York market time."""
    try:  # text must be ISO 8601: '07.10.2013' is refused, not guessed
        t = pd.to_datetime(ts.strip(), format="ISO8601") if isinstance(ts, str) else pd.Timestamp(ts)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(
            f"cannot read the time {ts!r} ({' '.join(str(exc).split())[:120]}); give an ISO time "
            "such as '2013-10-07 09:30'"
        ) from None
    if t is pd.NaT:
        raise ConfigError(f"the time {ts!r} is empty; give an ISO time such as '2013-10-07 09:30'")
    try:
        if t.tz is None:
            t = t.tz_localize(ET)
        return int(t.value)
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
        raise ConfigError(
            f"the time {ts!r} is outside 1678-2261 (or not a New York time); give e.g. '2013-10-07 09:30'"
        ) from None


def to_et(ns: int) -> pd.Timestamp:
    return pd.Timestamp(ns, tz="UTC").tz_convert(ET)


def rfc3339(ns: int | None) -> str | None:
    """UTC RFC-3339 with microseconds and a 'Z', the way Alpaca writes its timestamps."""
    if ns is None:
        return None
    secs, rem = divmod(int(ns), NS_SEC)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{rem // 1000:06d}Z"


def rfc3339_seconds(ns: int) -> str:
    """UTC RFC-3339 to the second, the way Alpaca labels bars ("2013-10-07T13:30:00Z")."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ns) // NS_SEC))


class SimClock:
    """Market time that runs ``speed`` market seconds per real second from ``start``.

    ``speed=0`` is a stepped clock: it moves only through ``advance``/``advance_to``.
    Advancing is allowed in any mode and adds to the running time; the clock never
    goes backwards. A running clock stands still until ``run()`` (the server calls it
    when it starts serving), so set-up time does not eat market time.
    """

    def __init__(self, start: object, speed: float) -> None:
        speed = float(speed)
        if not np.isfinite(speed) or not 0 <= speed <= MAX_SPEED:
            raise ConfigError(
                f"clock speed {speed!r} is invalid; give market seconds per real second from 0 "
                f"to {MAX_SPEED:g} (0 = stepped clock)"
            )
        self.speed = speed
        self._start_ns = to_ns(start)
        self._real0: float | None = None
        self._offset_ns = 0
        self._lock = threading.Lock()

    def run(self) -> None:
        """Start the real-time part of the clock (once; later calls change nothing)."""
        with self._lock:
            if self._real0 is None:
                self._real0 = time.monotonic()

    def _running_ns(self) -> int:
        if not self.speed or self._real0 is None:
            return 0
        return int((time.monotonic() - self._real0) * self.speed * NS_SEC)

    def now_ns(self) -> int:
        with self._lock:
            return self._start_ns + self._running_ns() + self._offset_ns

    def now(self) -> pd.Timestamp:
        return to_et(self.now_ns())

    def advance(self, seconds: float) -> int:
        seconds = float(seconds)
        if not np.isfinite(seconds) or seconds < 0:
            raise ConfigError(f"cannot advance the clock by {seconds!r} s; give seconds >= 0")
        with self._lock:
            self._offset_ns += int(round(seconds * NS_SEC))
        return self.now_ns()

    def advance_to(self, ts: object) -> int:
        """Move forward to ``ts``; a time at or before now leaves the clock where it is."""
        target = to_ns(ts)
        with self._lock:
            now = self._start_ns + self._running_ns() + self._offset_ns
            if target > now:
                self._offset_ns += target - now
        return self.now_ns()


@dataclass(frozen=True)
class Schedule:
    """Sessions of the NYSE calendar as parallel arrays (epoch ns; dates as 'YYYY-MM-DD')."""

    dates: tuple[str, ...]
    opens: np.ndarray
    closes: np.ndarray
    by_date: dict[str, int]

    def index_at_or_after(self, now_ns: int) -> int:
        """Index of the session that is open at ``now`` or, when closed, the next one."""
        return int(np.searchsorted(self.closes, now_ns, side="right"))

    def is_open(self, now_ns: int) -> bool:
        i = self.index_at_or_after(now_ns)
        return bool(i < len(self.opens) and self.opens[i] <= now_ns)

    def next_open_close(self, now_ns: int) -> tuple[int, int]:
        i = self.index_at_or_after(now_ns)
        if i >= len(self.opens):
            raise ConfigError(
                f"the simulated time {to_et(now_ns)} is past the end of the exchange calendar; "
                "start the server at an earlier time"
            )
        next_close = int(self.closes[i])
        if self.opens[i] > now_ns:
            return int(self.opens[i]), next_close
        return int(self.opens[min(i + 1, len(self.opens) - 1)]), next_close

    def position_of_date(self, date: str) -> int:
        """Index of the session on ``date`` (YYYY-MM-DD), or -1 when it is not a session."""
        return self.by_date.get(date, -1)


@lru_cache(maxsize=1)
def schedule() -> Schedule:
    from gammaride.rules.session import session_table

    table = session_table()
    days = pd.DatetimeIndex(table.days).as_unit("ns")
    dates = tuple(days.strftime("%Y-%m-%d"))

    def at(minutes: np.ndarray) -> np.ndarray:
        return (days + pd.to_timedelta(minutes.astype(np.int64), unit="min")).tz_localize(ET).asi8

    return Schedule(dates=dates, opens=at(table.open), closes=at(table.close),
                    by_date={d: i for i, d in enumerate(dates)})


_TIMEFRAME = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D)$")


class BarArrays:
    """Bars as parallel arrays; bar ``j`` covers [start[j], end[j]) and is visible once complete."""

    def __init__(self, start, end, open_, high, low, close, volume) -> None:
        self.start = np.asarray(start, dtype=np.int64)
        self.end = np.asarray(end, dtype=np.int64)
        self.open = np.asarray(open_, dtype=float)
        self.high = np.asarray(high, dtype=float)
        self.low = np.asarray(low, dtype=float)
        self.close = np.asarray(close, dtype=float)
        self.volume = np.asarray(volume, dtype=float)
        self._json: list[dict | None] = [None] * len(self.start)

    def __len__(self) -> int:
        return len(self.start)

    def complete_count(self, now_ns: int) -> int:
        """How many bars have ended at ``now`` (bars are sorted by end too)."""
        return int(np.searchsorted(self.end, now_ns, side="right"))

    def bar_json(self, j: int) -> dict:
        """Bar ``j`` in Alpaca's JSON shape (built once: bars are immutable).

        Trade count and VWAP are not in the replayed data; ``n`` is estimated from the
        volume (one trade per 100 shares) and ``vw`` is the typical price (h+l+c)/3.
        """
        row = self._json[j]
        if row is None:
            h, lo, c, v = float(self.high[j]), float(self.low[j]), float(self.close[j]), float(self.volume[j])
            row = {
                "t": rfc3339_seconds(int(self.start[j])), "o": float(self.open[j]), "h": h, "l": lo,
                "c": c, "v": int(v), "n": int(v // 100) + (1 if v > 0 else 0), "vw": round((h + lo + c) / 3.0, 4),
            }
            self._json[j] = row
        return row


class Tape(BarArrays):
    """The replayed 1-minute bars of one symbol, plus coarser timeframes built from them.

    ``daily_closes`` (dates -> close) adds daily bars for sessions without minute bars,
    so daily lookbacks (the realized-volatility IV proxy) reach before the replay.
    """

    def __init__(self, bars: pd.DataFrame, symbol: str, daily_closes: pd.Series | None = None) -> None:
        missing = {"open", "high", "low", "close", "volume"} - set(bars.columns)
        if missing:
            raise ConfigError(
                f"bars frame lacks columns {sorted(missing)}; load bars with gammaride.data.bars.load_bars"
            )
        if not isinstance(bars.index, pd.DatetimeIndex) or bars.index.tz is None or not len(bars):
            raise ConfigError(
                "bars need a non-empty tz-aware DatetimeIndex of bar starts; "
                "load them with gammaride.data.bars.load_bars"
            )
        start = bars.index.tz_convert("UTC").as_unit("ns").asi8.astype(np.int64)
        if np.any(np.diff(start) <= 0):
            raise ConfigError("bars must be sorted by time without duplicates; use load_bars")
        super().__init__(start, start + NS_MIN, bars["open"], bars["high"], bars["low"],
                         bars["close"], bars["volume"])
        self.symbol = symbol.upper()
        self._bars = bars
        self._daily_closes = daily_closes
        self._frames: dict[str, BarArrays] = {}

    def timeframe(self, tf: str) -> BarArrays:
        """Bars of an Alpaca timeframe string: '1Min', '5Min', '1Hour', '1Day' (also 5T, 1H, 1D)."""
        m = _TIMEFRAME.match(tf or "")
        if not m or int(m.group(1)) < 1:
            raise ValueError(f"invalid timeframe {tf!r}; use e.g. 1Min, 5Min, 1Hour or 1Day")
        n, unit = int(m.group(1)), m.group(2)
        minutes = n * {"Min": 1, "T": 1, "Hour": 60, "H": 60}.get(unit, 0)
        if unit in ("Day", "D") and n != 1 or minutes > 24 * 60:
            raise ValueError(f"invalid timeframe {tf!r}; the offline server serves N minutes, N hours or 1Day")
        key = "1Day" if unit in ("Day", "D") else f"{minutes}Min"
        if key == "1Min":
            return self
        if key not in self._frames:
            self._frames[key] = self._daily() if key == "1Day" else self._minutes(minutes)
        return self._frames[key]

    def _minutes(self, minutes: int) -> BarArrays:
        # Buckets align on the clock (09:30, 09:35, ... for 5Min; 09:00, 10:00 for 1Hour), as Alpaca's.
        local = self._bars.index.tz_convert(ET)
        key = local.floor(f"{minutes}min")
        g = self._bars.groupby(key)
        agg = pd.DataFrame({"open": g["open"].first(), "high": g["high"].max(), "low": g["low"].min(),
                            "close": g["close"].last(), "volume": g["volume"].sum()})
        start = agg.index.tz_convert("UTC").as_unit("ns").asi8
        return BarArrays(start, start + minutes * NS_MIN, agg["open"], agg["high"], agg["low"],
                         agg["close"], agg["volume"])

    def _daily(self) -> BarArrays:
        local = self._bars.index.tz_convert(ET)
        day = local.tz_localize(None).normalize()
        g = self._bars.groupby(day)
        agg = pd.DataFrame({"open": g["open"].first(), "high": g["high"].max(), "low": g["low"].min(),
                            "close": g["close"].last(), "volume": g["volume"].sum()})
        ends = pd.Series(self.end, index=day).groupby(level=0).max()
        agg["end"] = ends.reindex(agg.index).to_numpy()
        if self._daily_closes is not None and len(self._daily_closes):
            extra = self._daily_closes[~self._daily_closes.index.normalize().isin(agg.index)]
            sched = schedule()
            dates = pd.DatetimeIndex(extra.index).normalize()
            close_ns = [
                int(sched.closes[i]) if (i := sched.position_of_date(d.strftime("%Y-%m-%d"))) >= 0
                else int(pd.Timestamp(d).tz_localize(ET).value) + 16 * 60 * NS_MIN
                for d in dates
            ]
            # Only closes are known for these days: a flat bar, volume 0.
            c = extra.to_numpy(dtype=float)
            hist = pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 0.0,
                                 "end": np.asarray(close_ns, dtype=np.int64)}, index=dates)
            agg = pd.concat([hist, agg]).sort_index()
        start = pd.DatetimeIndex(agg.index).tz_localize(ET).tz_convert("UTC").as_unit("ns").asi8
        return BarArrays(start, agg["end"].to_numpy(dtype=np.int64), agg["open"], agg["high"],
                         agg["low"], agg["close"], agg["volume"])

    def bar_starting(self, start_ns: int) -> int:
        """Index of the 1-minute bar starting exactly at ``start_ns``, or -1."""
        j = int(np.searchsorted(self.start, start_ns))
        return j if j < len(self.start) and self.start[j] == start_ns else -1

    def price_at(self, now_ns: int) -> float:
        """Last trade price at ``now``: inside a bar, open moved toward close by the elapsed
        fraction of the minute (never past the current bar); between bars, the last close."""
        j = int(np.searchsorted(self.start, now_ns, side="right")) - 1
        if j < 0:
            return float(self.open[0])
        if now_ns < self.end[j]:
            frac = (now_ns - self.start[j]) / NS_MIN
            return float(self.open[j] + (self.close[j] - self.open[j]) * frac)
        return float(self.close[j])

    def last_close_before(self, ns: int) -> float | None:
        j = int(np.searchsorted(self.end, ns, side="right")) - 1
        return float(self.close[j]) if j >= 0 else None
