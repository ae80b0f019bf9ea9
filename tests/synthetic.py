"""Journals built from synthetic paths, for calibration tests and benchmarks.

Paths come in ATRs from the entry with the favourable direction up, as calibration sees
them; :func:`journal_frames` turns them into the ``trades`` and ``trade_paths`` frames
replay would journal (time exits after the max hold, Phase 1 multipliers).

Two kinds of paths:

* :func:`noise_paths`: driftless random walks whose highs and lows come from the path
  itself at :data:`FINE_SUB_STEPS` sub-steps a minute. No exit can beat another on them:
  coarser sub-steps give tight stops an edge through the overshoot past the level, and
  independent wicks give wide stops one (DESIGN.md, "Statistics facts").
* :func:`shaped_paths`: regime-dependent edges. Each ATR regime (:data:`REGIMES`) has a
  move of its own size and timing, so its best (TP, SL) differs; the truth is measured by
  brute force on a large independent sample (:func:`true_surfaces`).

:func:`priced_frames` adds option prices (entry/exit premium, costs, ``option_paths``) so
the net-dollar objective can be tested.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gammaride.config import ET
from gammaride.journal import Journal

HOLD = 20
FINE_SUB_STEPS = 1000
SIGMA = 0.6  # noise in ATRs per sqrt(minute): a 1-minute bar's range is then about one ATR
SHAPED_SUB_STEPS = 50
# name: (ATR range in $, move size mean and sd in ATRs, noise per sqrt(minute),
#        minute of the peak, level at minute 20 as a fraction of the peak,
#        mean depth in ATRs of an adverse dip over the first DIP_MINUTES)
REGIMES = {
    "low": ((0.05, 0.08), 2.7, 0.9, 0.64, 13, -0.2, 0.0),
    "mid": ((0.10, 0.14), 1.2, 0.8, 0.36, 12, -1.4, 0.0),
    "high": ((0.18, 0.25), 1.5, 0.5, 0.3, 8, -1.0, 0.8),
}
DIP_MINUTES = 4
_CHUNK = 64  # trades per block of fine sub-steps (64 x 20,000 float32: 5 MB)


def noise_paths(
    rng: np.random.Generator, n: int, sigma: float = SIGMA, sub: int = FINE_SUB_STEPS
) -> tuple[np.ndarray, ...]:
    """(open, high, low, close), shape (n, HOLD), of driftless random walks in ATRs; high and
    low are the extremes of ``sub`` Brownian sub-steps a minute (vectorized in blocks)."""
    out = np.empty((4, n, HOLD))
    scale = np.float32(sigma / np.sqrt(sub))
    for lo in range(0, n, _CHUNK):
        c = min(_CHUNK, n - lo)
        steps = rng.standard_normal((c, HOLD * sub), dtype=np.float32)
        steps *= scale
        walk = np.cumsum(steps, axis=1, dtype=np.float32).reshape(c, HOLD, sub)
        out[:, lo : lo + c] = _bars_from(walk)
    return tuple(out)


def shaped_paths(
    rng: np.random.Generator, n: int, params: tuple, sub: int = SHAPED_SUB_STEPS
) -> tuple[np.ndarray, ...]:
    """(open, high, low, close) in ATRs of one regime's paths, favourable = up."""
    _, mean, sd, sigma, peak, end, dip = params
    t = np.arange(1, HOLD * sub + 1) / sub
    shape = np.where(t <= peak, t / peak, 1 - (1 - end) * (t - peak) / (HOLD - peak))
    size = mean + sd * rng.standard_normal((n, 1))
    depth = dip * rng.uniform(0.5, 1.5, (n, 1))
    dips = -depth * np.sin(np.pi * np.minimum(t, DIP_MINUTES) / DIP_MINUTES)
    noise = sigma * np.cumsum(rng.standard_normal((n, HOLD * sub)), axis=1) / np.sqrt(sub)
    return tuple(_bars_from((size * shape + dips + noise).reshape(n, HOLD, sub)))


def _bars_from(walk: np.ndarray) -> np.ndarray:
    """(4, n, HOLD) bars from a walk shaped (n, HOLD, sub) that starts at 0 before minute 1."""
    n = len(walk)
    close = walk[:, :, -1].astype(float)
    open_ = np.concatenate([np.zeros((n, 1)), close[:, :-1]], axis=1)
    high = np.maximum(walk.max(axis=2), open_)
    low = np.minimum(walk.min(axis=2), open_)
    return np.stack([open_, high, low, close])


def regime_sample(
    rng: np.random.Generator, n: int, noise: bool = False
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """``n`` trades, regimes interleaved at random: (regime index, ATR, bars)."""
    names = list(REGIMES)
    regime = rng.integers(0, len(names), n)
    ranges = np.array([REGIMES[r][0] for r in names])[regime]
    atr = rng.uniform(ranges[:, 0], ranges[:, 1])
    bars = np.empty((4, n, HOLD))
    for b, name in enumerate(names):
        rows = np.flatnonzero(regime == b)
        if len(rows):
            made = noise_paths(rng, len(rows)) if noise else shaped_paths(rng, len(rows), REGIMES[name])
            bars[:, rows] = np.stack(made)
    return regime, atr, tuple(bars)


def true_surfaces(n: int = 4000, seed: int = 12345) -> dict[str, np.ndarray]:
    """Mean outcome (ATRs) over the grid per regime, by brute force on a large sample."""
    from gammaride.calibration.grid import simulate_grid

    rng = np.random.default_rng(seed)
    out = {}
    for name, params in REGIMES.items():
        o, h, lo, c = shaped_paths(rng, n, params)
        out[name] = simulate_grid(unit_trades(o, h, lo, c)).mean(axis=0)
    return out


def unit_trades(o, h, lo, c):
    """Calls entered at 0 with ATR 1, for brute force over the grid (no journal needed)."""
    from gammaride.calibration.grid import TradePaths

    n = len(c)
    return TradePaths(
        np.arange(n), pd.DatetimeIndex([pd.Timestamp("2024-01-02 09:40", tz=ET)] * n),
        np.full(n, "call", dtype=object), np.zeros(n), np.ones(n), o, h, lo, c,
        np.full(n, HOLD),
    )


def journal_frames(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    sign: np.ndarray,
    entry: np.ndarray,
    atr: np.ndarray,
    start: str = "2024-01-02",
    per_day: int = 4,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``trades`` and ``trade_paths`` frames for ``n`` trades whose bars are (n, hold)
    arrays in ATRs; ``per_day`` entries a session, 12 minutes apart from 09:40."""
    n, hold = np.shape(c)
    s, e, a = sign[:, None], entry[:, None], atr[:, None]
    days = pd.DatetimeIndex(pd.bdate_range(start, periods=n // per_day + 1)).tz_localize(ET)
    day = days[np.arange(n) // per_day]
    entry_time = day + pd.to_timedelta(9 * 60 + 40 + 12 * (np.arange(n) % per_day), unit="min")
    ids = np.arange(1, n + 1)
    trades = pd.DataFrame(
        {
            "trade_id": ids,
            "symbol": "SPY",
            "instrument": "options",
            "direction": np.where(sign > 0, "call", "put"),
            "status": "closed",
            "entry_time": entry_time,
            "entry_price": entry,
            "exit_time": entry_time + pd.Timedelta(minutes=hold),
            "exit_price": (e + s * a * c)[:, -1],
            "exit_reason": "time",
            "hard_stop_time": day + pd.Timedelta(hours=15, minutes=25),
            "atr": atr,
            "tp_mult": 2.0,
            "sl_mult": 1.0,
            "phase": 1,
            "atr_bucket": "all",
            "contracts": 1,
        }
    )
    minute = np.tile(np.arange(1, hold + 1), n)
    paths = pd.DataFrame(
        {
            "trade_id": np.repeat(ids, hold),
            "minute": minute,
            "bar_time": entry_time.repeat(hold) + pd.to_timedelta(minute - 1, unit="min"),
            "open": (e + s * a * o).ravel(),
            "high": np.where(s > 0, e + a * h, e - a * lo).ravel(),
            "low": np.where(s > 0, e + a * lo, e - a * h).ravel(),
            "close": (e + s * a * c).ravel(),
        }
    )
    return trades, paths


def synthetic_frames(
    seed: int, n: int, noise: bool = False, per_day: int = 4
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(trades, paths, regime name per trade) of ``n`` trades shaped like the journal's
    tables; regimes interleaved in time, ``per_day`` trades a session, calls and puts mixed."""
    rng = np.random.default_rng(seed)
    regime, atr, (o, h, lo, c) = regime_sample(rng, n, noise)
    sign = rng.choice([1.0, -1.0], n)
    entry = np.round(rng.uniform(400, 480, n), 2)
    trades, paths = journal_frames(o, h, lo, c, sign, entry, atr, per_day=per_day)
    return trades, paths, np.array(list(REGIMES))[regime]


def priced_frames(
    trades: pd.DataFrame,
    paths: pd.DataFrame,
    delta: float = 0.5,
    premium: float = 1.2,
    fees: float = 1.30,
    unpriced_every: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Option prices for synthetic trades: a premium that moves ``delta`` per $1 of the
    underlying in the trade's favour (less a steady time decay of 1% a minute), journaled
    like a priced replay (entry/exit premium at the recorded exits, fees, net P&L) with
    its ``option_paths``. Every ``unpriced_every``-th trade gets no option prices."""
    sign = np.where(trades["direction"].to_numpy() == "call", 1.0, -1.0)
    by_id = pd.Series(np.arange(len(trades)), index=trades["trade_id"].to_numpy())
    row = by_id.loc[paths["trade_id"].to_numpy()].to_numpy()
    entry = trades["entry_price"].to_numpy()[row]
    s = sign[row]
    decay = 1 - 0.01 * paths["minute"].to_numpy()

    def price(u: np.ndarray) -> np.ndarray:
        return np.maximum(premium * decay + delta * s * (u - entry), 0.01)

    fav_hi = np.where(s > 0, paths["high"], paths["low"])
    fav_lo = np.where(s > 0, paths["low"], paths["high"])
    option_paths = pd.DataFrame(
        {
            "trade_id": paths["trade_id"].to_numpy(),
            "minute": paths["minute"].to_numpy(),
            "bar_time": paths["bar_time"].to_numpy(),
            "open": price(paths["open"].to_numpy()),
            "high": price(fav_hi),
            "low": price(fav_lo),
            "close": price(paths["close"].to_numpy()),
            "volume": 100.0,
            "source": "option_bars",
        }
    )
    last = option_paths.groupby("trade_id")["close"].last()
    exit_premium = last.reindex(trades["trade_id"]).to_numpy()
    gross = 100 * (exit_premium - premium)
    priced = trades.assign(
        entry_premium=premium,
        exit_premium=exit_premium,
        gross_pnl_usd=gross,
        fees_usd=fees,
        pnl_usd=gross - fees,
        pnl_source="option_bars",
    )
    if unpriced_every:
        drop = trades["trade_id"].to_numpy()[::unpriced_every]
        cols = ["entry_premium", "exit_premium", "gross_pnl_usd", "fees_usd", "pnl_usd"]
        priced.loc[priced["trade_id"].isin(drop), cols] = np.nan
        priced["pnl_source"] = np.where(priced["trade_id"].isin(drop), None, "option_bars")
        option_paths = option_paths[~option_paths["trade_id"].isin(drop)]
    return priced, option_paths.reset_index(drop=True)


def write_journal(
    path: str | Path,
    trades: pd.DataFrame,
    paths: pd.DataFrame,
    source: str = "synthetic",
    option_paths: pd.DataFrame | None = None,
) -> str | Path:
    """Write the frames into a real journal as one replay run, through the Journal API."""
    from gammaride.journal.schema import OPTION_PATH_COLUMNS

    with Journal(path) as journal, journal.transaction():
        run_id = journal.start_run("replay", "SPY", source=source)
        journal.write_trades(trades.assign(run_id=run_id))
        journal.write_paths(paths)
        if option_paths is not None:
            journal._insert_frame("option_paths", option_paths, OPTION_PATH_COLUMNS)
        journal.finish_run(run_id)
    return path
