"""Market-session times: closes (early closes included), hedging windows, cut-offs, hard stops.

Pure functions over arrays of dates and minutes-of-day (America/New_York). The
exchange calendar is static data, not a clock: it is loaded once and cached.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pandas as pd

from gammaride.config import Settings

ET = "America/New_York"
REGULAR_CLOSE_MIN = 16 * 60


def minute_of_day(t) -> int:
    """Minutes since midnight of a clock time (``datetime.time``)."""
    return t.hour * 60 + t.minute


@lru_cache(maxsize=4)
def _calendar(start_year: int):
    import exchange_calendars as xc

    with warnings.catch_warnings():
        # exchange_calendars uses Series.values, which pandas 3.1 deprecates for tz data
        warnings.simplefilter("ignore")
        return xc.get_calendar("XNYS", start=f"{start_year}-01-01")


def _calendar_for(dates: pd.DatetimeIndex):
    first = int(dates.min().year) if len(dates) else 2006
    # Share one cached calendar for everything after 2006 (the library's default span).
    return _calendar(min(first, 2006))


def session_close_minutes(dates: pd.DatetimeIndex) -> np.ndarray:
    """Close time (minutes of day, ET) of each session date; 16:00 where the calendar has none."""
    dates = pd.DatetimeIndex(dates)
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    dates = dates.normalize()
    out = np.full(len(dates), REGULAR_CLOSE_MIN, dtype=np.int64)
    if not len(dates):
        return out
    cal = _calendar_for(dates)
    closes = cal.schedule["close"]
    known = dates.isin(closes.index)
    if known.any():
        local = closes.reindex(dates[known]).dt.tz_convert(ET)
        out[np.asarray(known)] = (local.dt.hour * 60 + local.dt.minute).to_numpy()
    return out


def _naive_day(date) -> pd.Timestamp:
    ts = pd.Timestamp(date)
    return (ts.tz_localize(None) if ts.tz is not None else ts).normalize()


def next_session(date) -> pd.Timestamp:
    """The first trading session after ``date``."""
    day = _naive_day(date)
    cal = _calendar_for(pd.DatetimeIndex([day]))
    try:
        if cal.is_session(day):
            return pd.Timestamp(cal.next_session(day))
        return pd.Timestamp(cal.date_to_session(day, direction="next"))
    except Exception:  # outside the calendar's span: the next weekday
        return (day + pd.offsets.BDay(1)).normalize()


def trading_day_mask(dates: pd.DatetimeIndex) -> np.ndarray:
    """True where a date is an exchange session (weekends and holidays are not); outside
    the calendar's span, any weekday."""
    dates = pd.DatetimeIndex(dates)
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    dates = dates.normalize()
    out = np.asarray(dates.day_of_week < 5)
    if not len(dates):
        return out
    try:
        sessions = _calendar_for(dates).sessions
    except Exception:  # noqa: BLE001 - a span the calendar library refuses: weekdays only
        return out
    inside = np.asarray((dates >= sessions[0]) & (dates <= sessions[-1]))
    out[inside] = np.asarray(dates[inside].isin(sessions))
    return out


def is_session(date) -> bool:
    day = _naive_day(date)
    cal = _calendar_for(pd.DatetimeIndex([day]))
    try:
        return bool(cal.is_session(day))
    except Exception:
        return day.weekday() < 5


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


def classify_window(
    settings: Settings, decision_min: np.ndarray, close_min: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean in-window mask and the window name ('am', 'pm' or None) per decision."""
    am_start, am_end, pm_start, pm_end = window_bounds(settings, close_min)
    am = (decision_min >= am_start) & (decision_min < am_end)
    pm = (decision_min >= pm_start) & (decision_min < pm_end)
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
