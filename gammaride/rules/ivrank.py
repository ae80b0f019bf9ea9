"""IV percentile: from recorded IV history, or a realized-volatility proxy from daily bars.

Alpaca has no historical IV endpoint, so the IV history is what gammaride records. Until
enough sessions are recorded, the percentile of 20-day realized volatility over the past
year stands in (``iv_source='rv_proxy'``). Pure functions; no lookahead: the value for a
session uses only closes of earlier sessions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SOURCE_CONSTANT = "constant"
SOURCE_PROXY = "rv_proxy"
SOURCE_HISTORY = "iv_history"
SOURCE_OFF = "off"
SOURCE_NONE = "none"
SOURCES = (SOURCE_CONSTANT, SOURCE_PROXY, SOURCE_HISTORY, SOURCE_OFF, SOURCE_NONE)  # ``scans.iv_source``
MAX_GAP_DAYS = 5  # longest calendar gap between sessions (a long weekend plus a closure)


def realized_vol_percentile(
    daily_close: pd.Series, window: int = 20, lookback: int = 252
) -> pd.Series:
    """Percentile rank (0-1) of annualized ``window``-day realized volatility within the
    trailing ``lookback`` values, known at the open of the next session.

    Returns a Series indexed by the session it applies to (the day after the closes it
    uses), so ``result[d]`` is what the scanner knows on the morning of ``d``.
    """
    closes = daily_close.astype(float).sort_index()
    rets = np.log(closes).diff()
    rv = rets.rolling(window).std() * np.sqrt(252.0)
    # rank of the latest value among the trailing window, inclusive: share at or below it
    rank = rv.rolling(lookback, min_periods=window).apply(
        lambda x: np.mean(x[~np.isnan(x)] <= x[-1]) if np.isfinite(x[-1]) else np.nan, raw=True
    )
    # value computed on day d's close applies to the next session, unless the history has a
    # gap (a proxy from weeks ago is not what the scanner would know that morning)
    shifted = rank.shift(1)
    gap = pd.Series(rank.index, index=rank.index).diff() > pd.Timedelta(days=MAX_GAP_DAYS)
    return shifted[~gap.to_numpy()].dropna()


def proxy_for_sessions(
    sessions: pd.DatetimeIndex, daily_close: pd.Series, window: int = 20, lookback: int = 252
) -> np.ndarray:
    """IV-percentile proxy for each session date (NaN where history is too short)."""
    pct = realized_vol_percentile(daily_close, window, lookback)
    # A session later than the history's last day + 1 has no proxy (no stale carry-forward).
    values = pct.reindex(pd.DatetimeIndex(sessions).tz_localize(None) if pd.DatetimeIndex(sessions).tz else sessions)
    return values.to_numpy(dtype=float)


def percentile_from_history(current_iv: float, history: np.ndarray) -> float:
    """Share of recorded daily IVs at or below today's IV (0-1); NaN without history."""
    history = np.asarray(history, dtype=float)
    history = history[np.isfinite(history)]
    if not np.isfinite(current_iv) or len(history) == 0:
        return float("nan")
    return float(np.mean(history <= current_iv))
