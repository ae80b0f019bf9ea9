"""The entry rules as one vectorized function over a bars frame.

Replay calls :func:`compute_signals` once on the whole history; the live scanner calls
it on its recent window and takes the last row. Live and replay cannot disagree.
Pure: no clock, network, printing or database.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gammaride.config import Settings
from gammaride.rules.session import session_minutes, window_masks

SKIP_OUTSIDE_WINDOW = "outside window"
SKIP_WARMUP = "warming up"

# Skip codes (``scans.skip_code``): which gate stopped a decision, for counting. The first
# five are the entry rules' gates, in the order they are checked here; the rest are set
# by replay and the live scanner after the rules passed (or could not run).
SKIP_WINDOW = "window"        # decision outside the hedging windows
SKIP_WARMUP_CODE = "warmup"   # not enough history for the lookbacks yet
SKIP_VOLUME = "volume"        # no volume spike
SKIP_IV = "iv"                # IV percentile below the gate, or unknown
SKIP_DIRECTION = "direction"  # a spike but no price change
SKIP_GAMMA = "gamma"          # the dealer-gamma gate (settings.gamma_gate) refused the entry
SKIP_RISK = "risk"            # a risk limit: position open, trades per day, daily loss
SKIP_DATA = "data"            # no, stale or already-decided bars; replay: data ends before the exit
SKIP_MARKET = "market"        # market closed
SKIP_ORDER = "order"          # the entry was not placed (account, contract or order refused)
SKIP_ERROR = "error"          # the scan failed
SKIP_CODES = (SKIP_WINDOW, SKIP_WARMUP_CODE, SKIP_VOLUME, SKIP_IV, SKIP_DIRECTION, SKIP_GAMMA,
              SKIP_RISK, SKIP_DATA, SKIP_MARKET, SKIP_ORDER, SKIP_ERROR)
WINDOWS = ("am", "pm")            # ``scans.window``: the morning and afternoon hedging windows
DIRECTIONS = ("call", "put")      # ``scans.direction``: the option a signal buys


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
    price, price_change, direction, atr, iv_percentile, iv_ok, signal, skip_reason,
    skip_code. The text columns (window, direction, skip_reason, skip_code) are
    categoricals (missing = NaN): no per-row Python strings.
    """
    n = len(bars)
    idx = bars.index
    close = bars["close"].to_numpy(dtype=np.float64)
    volume = bars["volume"].to_numpy(dtype=np.float64)

    decision_time = idx + pd.Timedelta(minutes=1)
    decision_min, close_min = session_minutes(idx, later=1)  # a decision is a minute after the bar's start
    am, pm = window_masks(settings, decision_min, close_min)
    in_window = am | pm

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

    up = vol_spike & (price_change > 0)
    down = vol_spike & (price_change < 0)
    warm = np.isfinite(avg_volume) & np.isfinite(atr) & np.isfinite(price_change)
    signal = in_window & warm & vol_spike & iv_ok & (up | down)
    # The first failed gate, in SKIP_CODES order (-1: every gate passed).
    gate = np.select([~in_window, ~warm, ~vol_spike, ~iv_ok, ~(up | down)], [0, 1, 2, 3, 4], -1)

    warmup_reason = f"{SKIP_WARMUP} (needs {settings.warmup_bars} bars of history)"
    # Reasons that quote a number are built once per distinct (truncated) value, not per row.
    reasons = [  # per gate: (key per row, reason of a key)
        (None, lambda _: SKIP_OUTSIDE_WINDOW),
        (None, lambda _: warmup_reason),
        (np.floor(vol_ratio * 10), lambda key: _volume_reason(key / 10, threshold)),
        (np.floor(iv * 100), lambda key: _iv_reason(key / 100, settings.iv_threshold)),
        (price_change, lambda key: f"no direction ({k}-bar change {key:+.2f})"),
    ]
    texts: dict[str, int] = {}
    reason_code = np.full(n, -1, dtype=np.int32)
    for g, (keys, text_of) in enumerate(reasons):
        hit = np.flatnonzero(gate == g)
        if not len(hit):
            continue
        if keys is None:
            reason_code[hit] = texts.setdefault(text_of(None), len(texts))
            continue
        uniq, inverse = np.unique(keys[hit], return_inverse=True)
        ids = np.array([texts.setdefault(text_of(u), len(texts)) for u in uniq], dtype=np.int32)
        reason_code[hit] = ids[inverse.ravel()]

    return pd.DataFrame(
        {
            "decision_time": decision_time,
            "in_window": in_window,
            "window": _categorical(np.where(am, 0, np.where(pm, 1, -1)), WINDOWS, idx),
            "volume": volume,
            "avg_volume": avg_volume,
            "vol_ratio": vol_ratio,
            "vol_spike": vol_spike,
            "price": close,
            "price_change": price_change,
            "direction": _categorical(np.where(up, 0, np.where(down, 1, -1)), DIRECTIONS, idx),
            "atr": atr,
            "iv_percentile": iv,
            "iv_ok": iv_ok,
            "signal": signal,
            "skip_reason": _categorical(reason_code, tuple(texts), idx),
            "skip_code": _categorical(gate, SKIP_CODES, idx),
        },
        index=idx,
    )


def _categorical(codes: np.ndarray, categories: tuple[str, ...], index: pd.Index) -> pd.Series:
    """A text column as codes into a few categories (-1 = missing)."""
    values = pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=object))
    return pd.Series(values, index=index)


def _volume_reason(ratio: float, threshold: float) -> str:
    if not np.isfinite(ratio):
        return "no volume in the lookback"
    # Truncate, never round up: 1.96x must not print as "2.0x < 2.0x".
    return f"volume {np.floor(ratio * 10 + 1e-9) / 10:.1f}x < {threshold:.1f}x"


def _iv_reason(iv: float, threshold: float) -> str:
    if not np.isfinite(iv):
        return "no IV data (pass --iv-percentile X or --iv-gate off)"
    return f"IV percentile {np.floor(iv * 100 + 1e-9) / 100:.2f} < {threshold:.2f}"
