"""The entry rules as one vectorized function over a bars frame.

Replay calls :func:`compute_signals` once on the whole history; the live scanner calls
it on its recent window and takes the last row. Live and replay cannot disagree.
Pure: no clock, network, printing or database.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gammaride.config import Settings
from gammaride.scanner.session import classify_window, session_close_minutes

SKIP_OUTSIDE_WINDOW = "outside window"
SKIP_WARMUP = "warming up"


def wilder_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder's ATR: true range uses the previous close; the first value (at bar
    ``period - 1``) is the mean of the first ``period`` true ranges; then
    ``atr = (atr_prev * (period - 1) + tr) / period``. NaN before the first value.
    """
    high = np.asarray(high, dtype=np.float64)
    low = np.asarray(low, dtype=np.float64)
    close = np.asarray(close, dtype=np.float64)
    n = len(close)
    out = np.full(n, np.nan)
    if n < period:
        return out
    prev_close = np.empty(n)
    prev_close[0] = np.nan
    prev_close[1:] = close[:-1]
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev_close), np.abs(low - prev_close)))
    seeded = tr[period - 1 :].copy()
    seeded[0] = tr[:period].mean()
    # Wilder smoothing is an EMA with alpha = 1/period seeded by the first mean.
    out[period - 1 :] = (
        pd.Series(seeded).ewm(alpha=1.0 / period, adjust=False).mean().to_numpy()
    )
    return out


def compute_signals(
    bars: pd.DataFrame,
    settings: Settings,
    iv_percentile: float | np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per bar: the decision taken at the bar's end, with every gate and its reason.

    ``bars``: regular-hours 1-minute bars, tz-aware ET bar-start index, sorted.
    ``iv_percentile``: a constant, an array aligned to the bars (NaN = unknown), or
    ``None`` to switch the IV gate off.

    Columns: decision_time, in_window, window, volume, avg_volume, vol_ratio, vol_spike,
    price, price_change, direction, atr, iv_percentile, iv_ok, signal, skip_reason.
    """
    n = len(bars)
    idx = bars.index
    close = bars["close"].to_numpy(dtype=np.float64)
    volume = bars["volume"].to_numpy(dtype=np.float64)

    decision_time = idx + pd.Timedelta(minutes=1)
    decision_min = np.asarray(decision_time.hour * 60 + decision_time.minute)
    session_dates = idx.tz_localize(None).normalize() if n else pd.DatetimeIndex([])
    uniq, inverse = np.unique(session_dates.asi8, return_inverse=True)
    close_min = session_close_minutes(pd.DatetimeIndex(uniq))[inverse] if n else np.array([])
    in_window, window = classify_window(settings, decision_min, close_min)

    lb = settings.vol_lookback
    csum = np.concatenate([[0.0], np.cumsum(volume)])
    avg_volume = np.full(n, np.nan)
    if n > lb:
        avg_volume[lb:] = (csum[lb:n] - csum[: n - lb]) / lb
    with np.errstate(divide="ignore", invalid="ignore"):
        vol_ratio = np.where(avg_volume > 0, volume / avg_volume, np.nan)
    threshold = settings.volume_threshold
    vol_spike = vol_ratio >= threshold

    k = settings.direction_lookback
    price_change = np.full(n, np.nan)
    if n > k:
        price_change[k:] = close[k:] - close[:-k]
    atr = wilder_atr(bars["high"].to_numpy(), bars["low"].to_numpy(), close, settings.atr_period)

    if iv_percentile is None:
        iv = np.full(n, np.nan)
        iv_ok = np.ones(n, dtype=bool)
    else:
        iv = np.broadcast_to(np.asarray(iv_percentile, dtype=np.float64), (n,)).copy()
        iv_ok = iv >= settings.iv_threshold

    direction = np.where(price_change > 0, "call", np.where(price_change < 0, "put", None))
    direction = np.where(vol_spike, direction, None).astype(object)
    warm = np.isfinite(avg_volume) & np.isfinite(atr) & np.isfinite(price_change)
    signal = in_window & warm & vol_spike & iv_ok & (direction != None)  # noqa: E711

    skip = np.full(n, None, dtype=object)
    rest = ~signal
    warmup_reason = f"{SKIP_WARMUP} (needs {settings.warmup_bars} bars of history)"
    # Reasons that quote a number are built once per distinct (truncated) value, not per row.
    vol_tenths = np.floor(vol_ratio * 10)
    iv_hundredths = np.floor(iv * 100)
    gates = [  # (failed mask, fixed reason, or (key per row, reason of a key))
        (~in_window, SKIP_OUTSIDE_WINDOW),
        (~warm, warmup_reason),
        (~vol_spike, (vol_tenths, lambda key: _volume_reason(key / 10, threshold))),
        (~iv_ok, (iv_hundredths, lambda key: _iv_reason(key / 100, settings.iv_threshold))),
        (rest, (price_change, lambda key: f"no direction ({k}-bar change {key:+.2f})")),
    ]
    for failed, reason in gates:
        hit = np.flatnonzero(rest & failed)
        if not len(hit):
            continue
        if isinstance(reason, str):
            skip[hit] = reason
        else:
            keys, text_of = reason
            uniq, inverse = np.unique(keys[hit], return_inverse=True)
            skip[hit] = np.array([text_of(u) for u in uniq], dtype=object)[inverse.ravel()]
        rest[hit] = False

    return pd.DataFrame(
        {
            "decision_time": decision_time,
            "in_window": in_window,
            "window": _objects(window, idx),
            "volume": volume,
            "avg_volume": avg_volume,
            "vol_ratio": vol_ratio,
            "vol_spike": vol_spike,
            "price": close,
            "price_change": price_change,
            "direction": _objects(direction, idx),
            "atr": atr,
            "iv_percentile": iv,
            "iv_ok": iv_ok,
            "signal": signal,
            "skip_reason": _objects(skip, idx),
        },
        index=idx,
    )


def _objects(values: np.ndarray, index: pd.Index) -> pd.Series:
    """Text columns stay plain objects (None for missing): pandas 3 would otherwise infer
    its 'str' dtype, a slow conversion that older DuckDB releases cannot scan."""
    return pd.Series(values, index=index, dtype=object)


def _volume_reason(ratio: float, threshold: float) -> str:
    if not np.isfinite(ratio):
        return "no volume in the lookback"
    # Truncate, never round up: 1.96x must not print as "2.0x < 2.0x".
    return f"volume {np.floor(ratio * 10 + 1e-9) / 10:.1f}x < {threshold:.1f}x"


def _iv_reason(iv: float, threshold: float) -> str:
    if not np.isfinite(iv):
        return "no IV data (pass --iv-percentile X or --iv-gate off)"
    return f"IV percentile {np.floor(iv * 100 + 1e-9) / 100:.2f} < {threshold:.2f}"
