"""Re-simulation of every journaled trade under every (TP, SL) pair of the grid.

The outcome of a trade is its result in ATRs of its own entry ATR:
``sign * (exit_price - entry) / atr``. That unit does not change when TP/SL change
(an R multiple would: its unit is the SL distance), so Phase 1 and Phase 2 compare on
one scale. Exits come from :func:`gammaride.scanner.exits.evaluate_exits` with levels
from :func:`gammaride.scanner.setup.exit_levels`: the very code replay and the live
scanner use, called on blocks of (trade x TP) rows per SL value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gammaride.scanner.exits import evaluate_exits
from gammaride.scanner.setup import direction_sign, exit_levels

MINUTE = pd.Timedelta(minutes=1)
TP_GRID = np.round(np.arange(0.5, 4.0 + 1e-9, 0.1), 1)
SL_GRID = np.round(np.arange(0.3, 2.0 + 1e-9, 0.1), 1)
# Rows per evaluate_exits call: large enough to amortize numpy overhead, small enough
# that the (rows x bars) temporaries stay in tens of megabytes.
_BLOCK_ROWS = 60000


@dataclass(frozen=True)
class TradePaths:
    """Closed trades as arrays, each with its path of bars after the entry decision."""

    trade_id: np.ndarray  # (n,)
    entry_time: pd.DatetimeIndex  # (n,)
    direction: np.ndarray  # (n,) 'call' | 'put'
    entry: np.ndarray  # (n,) underlying price at entry
    atr: np.ndarray  # (n,)
    open: np.ndarray  # (n, m)
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    n_valid: np.ndarray  # (n,) leading bars that count for the exit
    dropped: int = 0  # trades left out: no evaluable bar, no ATR, or a duplicate
    duplicates: int = 0  # of those, the same trade journaled again

    def __len__(self) -> int:
        return len(self.trade_id)

    @property
    def sign(self) -> np.ndarray:
        return direction_sign(self.direction).astype(float)


def trade_paths_from_frames(
    trades: pd.DataFrame, paths: pd.DataFrame, max_hold_minutes: int = 20
) -> TradePaths:
    """Align the journal's closed trades with their ``trade_paths`` rows.

    A bar counts while it starts at or after the entry decision and ends by the earlier
    of entry + max hold and the trade's hard stop, as in replay. The count stops at the
    first missing bar: a gap in the data ends what can be evaluated honestly. The same
    trade journaled twice (the same sessions replayed again) counts once.
    """
    need = {"trade_id", "entry_time", "direction", "entry_price", "atr", "hard_stop_time"}
    missing = need - set(trades.columns)
    if missing:
        raise ValueError(f"trades frame lacks columns {sorted(missing)}; pass journal.trades()")
    t = trades.sort_values(["entry_time", "trade_id"], kind="stable")
    n_before = len(t)
    keys = ["entry_time", "direction"] + (["symbol"] if "symbol" in t.columns else [])
    t = t.drop_duplicates(keys, keep="last")
    duplicates = n_before - len(t)
    ok = (
        t["direction"].isin(["call", "put"]).to_numpy()
        & np.isfinite(t["atr"].to_numpy(dtype=float))
        & (t["atr"].to_numpy(dtype=float) > 0)
        & np.isfinite(t["entry_price"].to_numpy(dtype=float))
    )
    t = t[ok]

    m = int(max_hold_minutes)
    n = len(t)
    ids = t["trade_id"].to_numpy(dtype=np.int64)
    ohlc = np.full((4, n, m), np.nan)
    bar_ns = np.full((n, m), np.iinfo(np.int64).max, dtype=np.int64)
    if n and len(paths):
        p = paths[paths["trade_id"].isin(ids) & paths["minute"].between(1, m)]
        order = np.argsort(ids, kind="stable")
        row = order[np.searchsorted(ids[order], p["trade_id"].to_numpy(dtype=np.int64))]
        col = p["minute"].to_numpy(dtype=np.int64) - 1
        for k, name in enumerate(("open", "high", "low", "close")):
            ohlc[k, row, col] = p[name].to_numpy(dtype=float)
        bar_ns[row, col] = _ns(p["bar_time"])
    entry_ns = _ns(t["entry_time"])
    limit = entry_ns + m * MINUTE.value
    stop = t["hard_stop_time"]
    if stop.notna().any():
        stop_ns = np.where(stop.notna().to_numpy(), _ns(stop.fillna(t["entry_time"])), limit)
        limit = np.minimum(limit, stop_ns)
    counts = (
        np.isfinite(ohlc).all(axis=0)
        & (bar_ns >= entry_ns[:, None])
        & (bar_ns <= (limit - MINUTE.value)[:, None])
    )
    # leading run of evaluable bars
    n_valid = np.where(counts.all(axis=1), m, np.argmin(counts, axis=1)) if m else np.zeros(n, int)
    keep = n_valid > 0
    return TradePaths(
        trade_id=ids[keep],
        entry_time=pd.DatetimeIndex(t["entry_time"])[keep],
        direction=t["direction"].to_numpy(dtype=object)[keep],
        entry=t["entry_price"].to_numpy(dtype=float)[keep],
        atr=t["atr"].to_numpy(dtype=float)[keep],
        open=ohlc[0][keep],
        high=ohlc[1][keep],
        low=ohlc[2][keep],
        close=ohlc[3][keep],
        n_valid=n_valid[keep].astype(np.int64),
        dropped=n_before - int(keep.sum()),
        duplicates=duplicates,
    )


def simulate_grid(
    tp: TradePaths,
    tp_mults: np.ndarray = TP_GRID,
    sl_mults: np.ndarray = SL_GRID,
) -> np.ndarray:
    """Outcome in ATRs of every trade under every (tp_mult, sl_mult): shape (n, len(tp), len(sl))."""
    tp_mults = np.atleast_1d(np.asarray(tp_mults, dtype=float))
    sl_mults = np.atleast_1d(np.asarray(sl_mults, dtype=float))
    n, k = len(tp), len(tp_mults)
    out = np.empty((n, k, len(sl_mults)))
    if n == 0:
        return out
    sign = tp.sign
    block = max(1, _BLOCK_ROWS // k)
    for lo in range(0, n, block):
        s = slice(lo, min(n, lo + block))
        b = s.stop - s.start
        # rows are (trade, tp) pairs, trade-major
        rep = np.repeat(np.arange(s.start, s.stop), k)
        tp_rows = np.tile(tp_mults, b)
        direction, entry, atr, sign_rows = tp.direction[rep], tp.entry[rep], tp.atr[rep], sign[rep]
        n_valid = tp.n_valid[rep]
        paths = [a[rep] for a in (tp.open, tp.high, tp.low, tp.close)]
        for j, sl_mult in enumerate(sl_mults):
            tp_level, sl_level = exit_levels(direction, entry, atr, tp_rows, sl_mult)
            ex = evaluate_exits(sign_rows, tp_level, sl_level, *paths, n_valid)
            out[s, :, j] = (sign_rows * (ex.price - entry) / atr).reshape(b, k)
    return out


def simulate_one(
    tp: TradePaths, tp_mult: np.ndarray | float, sl_mult: np.ndarray | float
) -> np.ndarray:
    """Outcome in ATRs of each trade under its own (tp_mult, sl_mult) (scalars or per trade)."""
    n = len(tp)
    tp_m = np.broadcast_to(np.asarray(tp_mult, dtype=float), (n,))
    sl_m = np.broadcast_to(np.asarray(sl_mult, dtype=float), (n,))
    if n == 0:
        return np.empty(0)
    tp_level, sl_level = exit_levels(tp.direction, tp.entry, tp.atr, tp_m, sl_m)
    sign = tp.sign
    ex = evaluate_exits(sign, tp_level, sl_level, tp.open, tp.high, tp.low, tp.close, tp.n_valid)
    return sign * (ex.price - tp.entry) / tp.atr


def _ns(values: pd.Series | pd.Index) -> np.ndarray:
    """Epoch nanoseconds of tz-aware timestamps, whatever the frame's time unit."""
    idx = pd.DatetimeIndex(values)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    return idx.tz_convert("UTC").as_unit("ns").asi8
