"""Market-session times: closes (early closes included), hedging windows, cut-offs, hard stops.

Pure functions over arrays of dates and minutes-of-day (America/New_York). The
exchange calendar is static data, not a clock: its sessions and closes are built once
from ``exchange_calendars`` and kept as a small table in the user's cache folder
(``$GAMMARIDE_CACHE_DIR``, else ``$XDG_CACHE_HOME/gammaride`` or ``~/.cache/gammaride``),
keyed by the library's version, so a run does not rebuild the calendar (0.2-0.5 s).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from gammaride.config import ET, NS_DAY, NS_MIN, Settings

REGULAR_OPEN_MIN = 9 * 60 + 30
REGULAR_CLOSE_MIN = 16 * 60
CALENDAR = "XNYS"
CALENDAR_START = "1990-01-01"
_REFRESH_DAYS = 30  # rebuild when the cached table ends within this many days


def minute_of_day(t) -> int:
    """Minutes since midnight of a clock time (``datetime.time``)."""
    return t.hour * 60 + t.minute


@lru_cache(maxsize=4)
def _calendar(start_year: int):
    import exchange_calendars as xc

    with warnings.catch_warnings():
        # exchange_calendars uses Series.values, which pandas 3.1 deprecates for tz data
        warnings.simplefilter("ignore")
        return xc.get_calendar(CALENDAR, start=f"{start_year}-01-01")


def calendar_cache_dir() -> Path:
    if os.environ.get("GAMMARIDE_CACHE_DIR"):
        return Path(os.environ["GAMMARIDE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gammaride"


def _calendar_cache_path() -> Path:
    from importlib.metadata import version

    return calendar_cache_dir() / f"{CALENDAR.lower()}-{version('exchange_calendars')}.npz"


class SessionTable(NamedTuple):
    """Every session of the exchange calendar: its date (``datetime64[D]``, sorted) and
    its open and close (minutes of day, ET)."""

    days: np.ndarray
    open: np.ndarray
    close: np.ndarray


def _build_session_table() -> SessionTable:
    schedule = _calendar(int(CALENDAR_START[:4])).schedule
    days = schedule.index.to_numpy().astype("datetime64[D]")
    opens, closes = (schedule[k].dt.tz_convert(ET) for k in ("open", "close"))
    return SessionTable(days, *((t.dt.hour * 60 + t.dt.minute).to_numpy(dtype=np.int16) for t in (opens, closes)))


def _read_session_table(path: Path) -> SessionTable | None:
    try:
        with np.load(path) as stored:
            table = SessionTable(stored["days"].astype("datetime64[D]"), stored["open"], stored["close"])
    except (OSError, ValueError, KeyError):
        return None  # absent or unreadable: rebuild it
    if not len(table.days) or not len(table.days) == len(table.open) == len(table.close):
        return None
    if table.days[-1] - np.datetime64(date.today(), "D") < _REFRESH_DAYS:
        return None  # the calendar's span is running out: rebuild with the current year
    return table


def _write_session_table(path: Path, table: SessionTable) -> None:
    """Atomically (parallel processes may build it at once); a cache that cannot be
    written is only slower, never an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as out:
            np.savez(out, days=table.days.astype(np.int64), open=table.open, close=table.close)
        os.replace(tmp, path)
    except OSError:
        return


@lru_cache(maxsize=1)
def session_table() -> SessionTable:
    """The exchange calendar's sessions, from the cache, else built and cached."""
    path = _calendar_cache_path()
    table = _read_session_table(path)
    if table is None:
        table = _build_session_table()
        _write_session_table(path, table)
    return table


def _days(dates) -> np.ndarray:
    """Session dates (naive or tz-aware; the local date counts) as ``datetime64[D]``."""
    dates = pd.DatetimeIndex(dates)
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    return (dates.as_unit("ns").asi8 // NS_DAY).astype("datetime64[D]")


def session_close_minutes(dates: pd.DatetimeIndex) -> np.ndarray:
    """Close time (minutes of day, ET) of each session date; 16:00 where the calendar has none."""
    days = _days(dates)
    out = np.full(len(days), REGULAR_CLOSE_MIN, dtype=np.int64)
    if not len(days):
        return out
    sessions, _, close = session_table()
    at = np.minimum(np.searchsorted(sessions, days), len(sessions) - 1)
    known = sessions[at] == days
    out[known] = close[at[known]]
    return out


def _day(day) -> np.datetime64:
    return _days([pd.Timestamp(day)])[0]


def _in_span(day: np.datetime64, sessions: np.ndarray) -> bool:
    return sessions[0] <= day < sessions[-1]


def next_session(date) -> pd.Timestamp:
    """The first trading session after ``date``."""
    day = _day(date)
    sessions = session_table().days
    if _in_span(day, sessions):
        return pd.Timestamp(sessions[np.searchsorted(sessions, day, side="right")]).as_unit("ns")
    # outside the calendar: the next weekday
    return (pd.Timestamp(day) + pd.offsets.BDay(1)).normalize().as_unit("ns")


def trading_day_mask(dates: pd.DatetimeIndex) -> np.ndarray:
    """True where a date is an exchange session (weekends and holidays are not); outside
    the calendar's span, any weekday."""
    days = _days(dates)
    out = np.asarray(pd.DatetimeIndex(days).day_of_week < 5)
    if not len(days):
        return out
    sessions = session_table().days
    inside = (days >= sessions[0]) & (days <= sessions[-1])
    at = np.minimum(np.searchsorted(sessions, days[inside]), len(sessions) - 1)
    out[inside] = sessions[at] == days[inside]
    return out


def is_session(date) -> bool:
    day = _day(date)
    sessions = session_table().days
    if _in_span(day, sessions) or day == sessions[-1]:
        return bool(sessions[np.searchsorted(sessions, day)] == day)
    return pd.Timestamp(day).weekday() < 5


def window_bounds(settings: Settings, close_min: np.ndarray) -> tuple[np.ndarray, ...]:
    """(am_start, am_end, pm_start, pm_end) per session; ends clipped before an early close.

    An early close shortens a window or, when its end falls before its start, drops it.
    """
    latest = np.asarray(close_min) - settings.close_buffer_minutes
    am_end = np.minimum(minute_of_day(settings.clock("am_end")), latest)
    pm_end = np.minimum(minute_of_day(settings.clock("pm_end")), latest)
    am_start = np.full_like(am_end, minute_of_day(settings.clock("am_start")))
    pm_start = np.full_like(pm_end, minute_of_day(settings.clock("pm_start")))
    return am_start, am_end, pm_start, pm_end


def window_masks(
    settings: Settings, decision_min: np.ndarray, close_min: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks: the decision falls in the AM window, in the PM window."""
    am_start, am_end, pm_start, pm_end = window_bounds(settings, close_min)
    am = (decision_min >= am_start) & (decision_min < am_end)
    pm = (decision_min >= pm_start) & (decision_min < pm_end)
    return am, pm


def classify_window(
    settings: Settings, decision_min: np.ndarray, close_min: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean in-window mask and the window name ('am', 'pm' or None) per decision."""
    am, pm = window_masks(settings, decision_min, close_min)
    name = np.where(am, "am", np.where(pm, "pm", None)).astype(object)
    return am | pm, name


def cutoff_minutes(settings: Settings, symbol: str, close_min: np.ndarray) -> np.ndarray:
    """Broker order cut-off on expiry day, minutes of day: 15:30 for SPY/QQQ/IWM, 15:15 else.

    On an early-close day the cut-off moves earlier by as much as the close does.
    """
    name = "index_etf_cutoff" if symbol.upper() in settings.index_etfs else "other_cutoff"
    base = minute_of_day(settings.clock(name))
    return base - (REGULAR_CLOSE_MIN - np.asarray(close_min))


def same_day_allowed(
    settings: Settings, symbol: str, decision_min: np.ndarray, close_min: np.ndarray
) -> np.ndarray:
    """Today's expiry is tradable while its cut-off leaves at least max hold + the buffer;
    after about 15:05 on a normal day that fails and the next session's expiry is used."""
    cutoff = cutoff_minutes(settings, symbol, close_min)
    return cutoff - np.asarray(decision_min) >= settings.max_hold_minutes + settings.cutoff_buffer_minutes


def hard_stop_minutes(
    settings: Settings, symbol: str, close_min: np.ndarray, same_day: np.ndarray
) -> np.ndarray:
    """The earlier of 15:55 (and the close minus its buffer) and, for a contract expiring
    today, its cut-off minus the buffer: a 0DTE SPY position is flat by 15:25."""
    close_min = np.asarray(close_min)
    session_stop = np.minimum(
        minute_of_day(settings.clock("hard_stop")), close_min - settings.close_buffer_minutes
    )
    cutoff_stop = cutoff_minutes(settings, symbol, close_min) - settings.cutoff_buffer_minutes
    return np.where(same_day, np.minimum(session_stop, cutoff_stop), session_stop)


def expiry_and_hard_stop(
    settings: Settings, symbol: str, decision_min: np.ndarray, close_min: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Whether an entry at each decision uses today's expiry, and its hard stop (minutes of day)."""
    same_day = same_day_allowed(settings, symbol, decision_min, close_min)
    return same_day, hard_stop_minutes(settings, symbol, close_min, same_day)


def session_minutes(idx: pd.DatetimeIndex, later: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per bar of ``idx`` (New York time): the minute of day ``later`` minutes after its
    start, and the close of its session (minutes of day). The wall clock is converted once
    and the minute and date read from it by integer math (a DST jump falls at 02:00, far
    from any session)."""
    local = (idx.tz_localize(None) if idx.tz is not None else idx).as_unit("ns").asi8
    minute = ((local + later * NS_MIN) % NS_DAY) // NS_MIN
    days, inverse = np.unique(local // NS_DAY, return_inverse=True)
    close = session_close_minutes(pd.DatetimeIndex(days.astype("datetime64[D]")))[inverse.ravel()]
    return minute, close


def regular_hours(bars: pd.DataFrame) -> pd.DataFrame:
    """Keep bars starting at or after 09:30 ET and before the session's close (16:00, or
    the early close of a half day); pre/post-market bars never enter a lookback."""
    if not len(bars):
        return bars
    minute, close = session_minutes(bars.index)
    keep = (minute >= REGULAR_OPEN_MIN) & (minute < np.minimum(close, REGULAR_CLOSE_MIN))
    return bars if keep.all() else bars[keep]
