"""Re-simulation of every journaled trade under every (TP, SL) pair of the grid.

The outcome of a trade is its result in ATRs of its own entry ATR:
``sign * (exit_price - entry) / atr``. That unit does not change when TP/SL change
(an R multiple would: its unit is the SL distance), so Phase 1 and Phase 2 compare on
one scale. Levels come from :func:`gammaride.rules.setup.exit_levels`, the code replay
and the live scanner use; Phase 1 outcomes from :func:`gammaride.rules.exits.evaluate_exits`
itself, the whole grid from :func:`grid_exits`, the same rules by first passage (equal
to ``evaluate_exits`` at every grid point, pinned by a test).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gammaride.calibration.document import SL_GRID, TP_GRID
from gammaride.config import NS_MIN
from gammaride.rules.exits import evaluate_exits
from gammaride.rules.setup import direction_sign, exit_levels


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

    def take(self, rows: np.ndarray) -> TradePaths:
        """The trades at ``rows`` (a mask or indices), in the same order."""
        return TradePaths(
            self.trade_id[rows], self.entry_time[rows], self.direction[rows], self.entry[rows],
            self.atr[rows], self.open[rows], self.high[rows], self.low[rows], self.close[rows],
            self.n_valid[rows], self.dropped, self.duplicates,
        )


def trade_paths_from_frames(
    trades: pd.DataFrame, paths: pd.DataFrame, max_hold_minutes: int = 20, duplicates: int = 0
) -> TradePaths:
    """Align the journal's closed trades with their ``trade_paths`` rows.

    A bar counts while it starts at or after the entry's decision minute (a fill lands a
    few seconds into it) and ends by the earlier
    of entry + max hold and the trade's hard stop, as in replay. The count stops at the
    first missing bar: a gap in the data ends what can be evaluated honestly. Trades come
    counted once already (``Journal.trades``); ``duplicates`` is how many rows that left
    out, reported with the trades dropped here.
    """
    need = {"trade_id", "entry_time", "direction", "entry_price", "atr", "hard_stop_time"}
    missing = need - set(trades.columns)
    if missing:
        raise ValueError(f"trades frame lacks columns {sorted(missing)}; pass journal.trades()")
    t = trades.sort_values(["entry_time", "trade_id"], kind="stable")
    n_before = len(t) + duplicates
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
    # the decision minute: a fill lands seconds after the decision, its path starts at the
    # bar the decision was made on
    entry_ns = _ns(t["entry_time"])
    entry_ns = entry_ns - entry_ns % NS_MIN
    limit = entry_ns + m * NS_MIN
    stop = t["hard_stop_time"]
    if stop.notna().any():
        stop_ns = np.where(stop.notna().to_numpy(), _ns(stop.fillna(t["entry_time"])), limit)
        limit = np.minimum(limit, stop_ns)
    counts = (
        np.isfinite(ohlc).all(axis=0)
        & (bar_ns >= entry_ns[:, None])
        & (bar_ns <= (limit - NS_MIN)[:, None])
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
    return grid_exits(tp, tp_mults, sl_mults).outcome


@dataclass(frozen=True)
class GridExits:
    """Per trade and grid point: outcome in ATRs, exit bar, and how the exit was priced."""

    outcome: np.ndarray  # (n, k_tp, k_sl)
    bar: np.ndarray  # (n, k_tp, k_sl) index of the exit bar in the path
    at_level: np.ndarray  # (n, k_tp, k_sl) True: exited at the TP/SL level inside the bar
    at_open: np.ndarray  # True: the bar opened beyond the level, exit at its open
    price: np.ndarray  # (n, k_tp, k_sl) underlying exit price


def grid_exits(
    tp: TradePaths, tp_mults: np.ndarray = TP_GRID, sl_mults: np.ndarray = SL_GRID
) -> GridExits:
    """The exit rules of :func:`gammaride.rules.exits.evaluate_exits` for every grid point
    at once, by first passage: the first bar whose running low reaches each SL and the first
    whose running high reaches each TP. The SL wins a bar that touches both; a bar that opens
    beyond a level exits at its open; else the close of the last evaluable bar. Levels and
    prices are computed with the same arithmetic as replay, so each grid point equals one
    ``evaluate_exits`` call bit for bit (a test pins it); the cost is (trades x grid points)
    instead of (trades x grid points x bars)."""
    tp_mults = np.atleast_1d(np.asarray(tp_mults, dtype=float))
    sl_mults = np.atleast_1d(np.asarray(sl_mults, dtype=float))
    n, m = np.shape(tp.close) if len(tp) else (0, 0)
    shape = (n, len(tp_mults), len(sl_mults))
    if n == 0 or m == 0:
        empty = np.empty(shape)
        return GridExits(empty, np.zeros(shape, int), empty > 0, empty > 0, empty)
    sign = tp.sign[:, None]
    valid = np.arange(m)[None, :] < tp.n_valid[:, None]
    # mirror puts so every trade is long; invalid bars can never trigger
    s_open = sign * tp.open
    s_high = np.where(valid, np.where(sign > 0, tp.high, -tp.low), -np.inf)
    s_low = np.where(valid, np.where(sign > 0, tp.low, -tp.high), np.inf)
    run_high = np.maximum.accumulate(s_high, axis=1)
    run_low = np.minimum.accumulate(s_low, axis=1)
    tp_lvl, _ = exit_levels(tp.direction[:, None], tp.entry[:, None], tp.atr[:, None], tp_mults[None, :], 1.0)
    _, sl_lvl = exit_levels(tp.direction[:, None], tp.entry[:, None], tp.atr[:, None], 1.0, sl_mults[None, :])
    s_tp, s_sl = sign * tp_lvl, sign * sl_lvl  # (n, k_tp), (n, k_sl)
    first_tp = _first_passage(run_high[:, None, :] >= s_tp[:, :, None], m)  # (n, k_tp)
    first_sl = _first_passage(run_low[:, None, :] <= s_sl[:, :, None], m)  # (n, k_sl)
    rows = np.arange(n)[:, None]
    o_tp = s_open[rows, np.minimum(first_tp, m - 1)]
    o_sl = s_open[rows, np.minimum(first_sl, m - 1)]
    px_tp = np.maximum(o_tp, s_tp)
    px_sl = np.minimum(o_sl, s_sl)
    last = tp.n_valid - 1
    close_last = sign[:, 0] * tp.close[np.arange(n), last]  # mirrored
    ft, fs = first_tp[:, :, None], first_sl[:, None, :]
    at_sl = (fs < m) & (fs <= ft)
    at_tp = (ft < m) & ~at_sl
    s_price = np.where(
        at_sl, px_sl[:, None, :], np.where(at_tp, px_tp[:, :, None], close_last[:, None, None])
    )
    price = sign[:, :, None] * s_price
    e, a = tp.entry[:, None, None], tp.atr[:, None, None]
    outcome = sign[:, :, None] * (price - e) / a
    bar = np.where(at_sl, fs, np.where(at_tp, ft, last[:, None, None]))
    opened = np.where(at_sl, (o_sl < s_sl)[:, None, :], (o_tp > s_tp)[:, :, None])
    hit = at_sl | at_tp
    return GridExits(outcome, bar, hit & ~opened, hit & opened, price)


def _first_passage(hit: np.ndarray, m: int) -> np.ndarray:
    """Index of the first True along the last axis; ``m`` where there is none."""
    return np.where(hit[..., -1], hit.argmax(axis=-1), m)


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


# the usd objective ------------------------------------------------------------------------

CONTRACT_MULTIPLIER = 100


@dataclass(frozen=True)
class OptionPrices:
    """Each aligned trade's option path, for the net-dollar objective.

    ``priced``: the trade has an entry premium and option bars for every evaluable minute;
    the other arrays are meaningful only there. ``cost``: the journaled costs per contract
    (fees, spread, slippage: gross minus net), charged whatever the exit.
    """

    priced: np.ndarray  # (n,) bool
    entry_premium: np.ndarray  # (n,)
    cost: np.ndarray  # (n,) dollars per contract
    delta: np.ndarray  # (n,) option price change per $1 of the underlying, from its path
    open: np.ndarray  # (n, m) option bars, minute 1 = first bar after the entry decision
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    @property
    def left_out(self) -> int:
        return int((~self.priced).sum())


def option_prices_from_frames(
    aligned: TradePaths, trades: pd.DataFrame, option_paths: pd.DataFrame
) -> OptionPrices:
    """Line the journal's ``option_paths`` and premiums up with ``aligned`` trades."""
    n, m = np.shape(aligned.close) if len(aligned) else (0, 0)
    by_id = trades.drop_duplicates("trade_id").set_index("trade_id").reindex(aligned.trade_id)

    def col(name: str) -> np.ndarray:
        if name not in by_id.columns:
            return np.full(n, np.nan)
        return pd.to_numeric(by_id[name], errors="coerce").to_numpy(dtype=float)

    entry_premium = col("entry_premium")
    contracts = col("contracts")
    contracts = np.where(np.isfinite(contracts) & (contracts > 0), contracts, 1.0)
    gross, net, fees = col("gross_pnl_usd"), col("pnl_usd"), col("fees_usd")
    cost = np.where(
        np.isfinite(gross) & np.isfinite(net), gross - net, np.where(np.isfinite(fees), fees, 0.0)
    ) / contracts
    ohlc = np.full((4, n, m), np.nan)
    if n and m and len(option_paths):
        ids = aligned.trade_id
        p = option_paths[option_paths["trade_id"].isin(ids) & option_paths["minute"].between(1, m)]
        order = np.argsort(ids, kind="stable")
        row = order[np.searchsorted(ids[order], p["trade_id"].to_numpy(dtype=np.int64))]
        c = p["minute"].to_numpy(dtype=np.int64) - 1
        for k, name in enumerate(("open", "high", "low", "close")):
            ohlc[k, row, c] = pd.to_numeric(p[name], errors="coerce").to_numpy(dtype=float)
    valid = np.arange(m)[None, :] < aligned.n_valid[:, None]
    complete = (np.isfinite(ohlc).all(axis=0) | ~valid).all(axis=1) if n else np.zeros(0, bool)
    priced = np.isfinite(entry_premium) & (entry_premium > 0) & complete
    # delta: least-squares slope of the option's closes on the underlying's, through the entry
    du = np.where(valid, aligned.close - aligned.entry[:, None], 0.0)
    dp = np.where(valid, ohlc[3] - entry_premium[:, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = np.where((du**2).sum(1) > 0, np.nansum(du * dp, 1) / (du**2).sum(1), 0.0)
    delta = np.clip(np.nan_to_num(delta), -1.0, 1.0)
    return OptionPrices(priced, entry_premium, cost, delta, *ohlc)


def usd_outcomes(aligned: TradePaths, options: OptionPrices, ex: GridExits) -> np.ndarray:
    """Net option P&L per contract of each priced trade under each grid point's exit.

    The exit minute and price come from the underlying (as the exit rules decide); the
    premium there is read from the option's own bar: its close on a time exit, its open
    when the underlying opened beyond the level, and inside the bar at a level hit the
    bar's open moved by the option's delta times the underlying's move from the bar's
    open, kept within the bar's high and low. Shape (priced trades, k_tp, k_sl).
    """
    rows = np.flatnonzero(options.priced)
    bar = ex.bar[rows]
    r = rows[:, None, None]
    o, h, lo, c = (a[r, bar] for a in (options.open, options.high, options.low, options.close))
    u_open = aligned.open[r, bar]
    inside = o + options.delta[r] * (ex.price[rows] - u_open)
    premium = np.where(ex.at_open[rows], o, np.where(ex.at_level[rows], np.clip(inside, lo, h), c))
    gross = CONTRACT_MULTIPLIER * (premium - options.entry_premium[r])
    return gross - options.cost[r]
