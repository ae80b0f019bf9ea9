"""Synthetic journals for the calibration tests, and checks that they are what they claim.

Each ATR bucket gets paths of its own shape: a move of random size that peaks at a
bucket-specific minute and then fades, plus Brownian noise. The shapes make a different
(TP, SL) best in each bucket; its true expectancy is measured on a large independent
sample. Pure-noise journals are driftless random walks: no exit beats another.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gammaride.calibration.grid import SL_GRID, TP_GRID, TradePaths, simulate_grid
from gammaride.sim.synthetic import journal_frames, write_journal  # noqa: F401 - used by other tests

HOLD = 20
SUB = 20  # Brownian sub-steps per 1-minute bar: highs and lows come from them
# name: (ATR range in $, move size mean and sd in ATRs, noise per sqrt(minute),
#        minute of the peak, level at minute 20 as a fraction of the peak,
#        mean depth in ATRs of an adverse dip over the first DIP_MINUTES)
BUCKETS = {
    "low": ((0.05, 0.08), 2.7, 0.9, 0.64, 13, -0.2, 0.0),
    "mid": ((0.10, 0.14), 1.2, 0.8, 0.36, 12, -1.4, 0.0),
    "high": ((0.18, 0.25), 1.5, 0.5, 0.3, 8, -1.0, 0.8),
}
DIP_MINUTES = 4


def shaped_paths(rng: np.random.Generator, n: int, params: tuple) -> tuple[np.ndarray, ...]:
    """(open, high, low, close) in ATRs from the entry, favourable = up, shape (n, HOLD)."""
    _, mean, sd, sigma, peak, end, dip = params
    t = np.arange(1, HOLD * SUB + 1) / SUB
    shape = np.where(t <= peak, t / peak, 1 - (1 - end) * (t - peak) / (HOLD - peak))
    size = mean + sd * rng.standard_normal((n, 1))
    depth = dip * rng.uniform(0.5, 1.5, (n, 1))
    dips = -depth * np.sin(np.pi * np.minimum(t, DIP_MINUTES) / DIP_MINUTES)
    noise = sigma * np.cumsum(rng.standard_normal((n, HOLD * SUB)), axis=1) / np.sqrt(SUB)
    return _bars(size * shape + dips + noise)


def noise_paths(rng: np.random.Generator, n: int, sigma: float = 0.6) -> tuple[np.ndarray, ...]:
    """Driftless random walks (sigma ATRs per sqrt(minute))."""
    return _bars(sigma * np.cumsum(rng.standard_normal((n, HOLD * SUB)), axis=1) / np.sqrt(SUB))


def _bars(walk: np.ndarray) -> tuple[np.ndarray, ...]:
    n = len(walk)
    w = walk.reshape(n, HOLD, SUB)
    open_ = np.concatenate([np.zeros((n, 1)), w[:, :-1, -1]], axis=1)
    return open_, np.maximum(w.max(axis=2), open_), np.minimum(w.min(axis=2), open_), w[:, :, -1]


def synthetic_frames(
    seed: int, n_per_bucket: int = 150, noise: bool = False, per_day: int = 4
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(trades, paths, bucket name per trade) shaped like the journal's tables; the buckets'
    trades are interleaved in time, ``per_day`` trades per session, calls and puts mixed."""
    rng = np.random.default_rng(seed)
    names = list(BUCKETS)
    bucket = rng.permutation(np.repeat(np.arange(len(names)), n_per_bucket))
    n = len(bucket)
    ranges = np.array([BUCKETS[b][0] for b in names])[bucket]
    atr = rng.uniform(ranges[:, 0], ranges[:, 1])
    o, h, lo, c = (np.empty((n, HOLD)) for _ in range(4))
    for b, name in enumerate(names):
        rows = np.flatnonzero(bucket == b)
        bars = noise_paths(rng, len(rows)) if noise else shaped_paths(rng, len(rows), BUCKETS[name])
        o[rows], h[rows], lo[rows], c[rows] = bars
    sign = rng.choice([1.0, -1.0], n)
    entry = np.round(rng.uniform(400, 480, n), 2)
    trades, paths = journal_frames(o, h, lo, c, sign, entry, atr, per_day=per_day)
    return trades, paths, np.array(names)[bucket]


def true_surfaces(n: int = 2500, seed: int = 12345) -> dict[str, np.ndarray]:
    """Mean outcome (ATRs) over the grid per bucket, from a large independent sample."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, params in BUCKETS.items():
        o, h, lo, c = shaped_paths(rng, n, params)
        tp = TradePaths(
            np.arange(n),
            pd.DatetimeIndex([]),
            np.full(n, "call", dtype=object),
            np.zeros(n),
            np.ones(n),
            o,
            h,
            lo,
            c,
            np.full(n, HOLD),
        )
        out[name] = simulate_grid(tp).mean(axis=0)
    return out


def best_point(surface: np.ndarray) -> tuple[float, float, float]:
    i, j = np.unravel_index(int(np.argmax(surface)), surface.shape)
    return float(TP_GRID[i]), float(SL_GRID[j]), float(surface[i, j])


def value_at(surface: np.ndarray, tp: float, sl: float) -> float:
    return float(surface[np.argmin(np.abs(TP_GRID - tp)), np.argmin(np.abs(SL_GRID - sl))])


# the generator's own claims -------------------------------------------------------


def test_each_bucket_has_its_own_best_and_phase1_is_worse():
    truth = true_surfaces(n=600, seed=3)
    bests = {name: best_point(s) for name, s in truth.items()}
    points = {(tp, sl) for tp, sl, _ in bests.values()}
    assert len(points) == 3  # three different optima
    assert bests["low"][0] > bests["mid"][0] + 0.5  # the trending bucket wants the widest TP
    assert bests["high"][1] > bests["mid"][1] + 0.4  # the dipping bucket wants the widest SL
    for name, surface in truth.items():
        assert value_at(surface, 2.0, 1.0) < 0.9 * bests[name][2], name


def test_noise_paths_have_no_edge():
    rng = np.random.default_rng(0)
    o, h, lo, c = noise_paths(rng, 4000)
    assert abs(c[:, -1].mean()) < 0.1  # sd of the mean is about 0.04
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()


def test_frames_fit_the_journal_schema(tmp_path):
    from gammaride.journal import Journal

    trades, paths, bucket = synthetic_frames(0, n_per_bucket=5)
    write_journal(tmp_path / "j.duckdb", trades, paths)
    with Journal(tmp_path / "j.duckdb", read_only=True) as j:
        back = j.trades()
        assert len(back) == 15 and set(back["mode"]) == {"replay"}
        assert len(j.trade_paths()) == 15 * HOLD
    assert sorted(set(bucket)) == ["high", "low", "mid"]


def replay_journal(path, times: int = 1):
    """A journal holding ``times`` replays of the bundled real SPY sessions (34 trades each)."""
    from gammaride.config import Settings
    from gammaride.journal import Journal
    from gammaride.sim.data import sample_bars
    from gammaride.sim.replay import run_replay

    bars = sample_bars()
    with Journal(path) as journal:
        for _ in range(times):
            run_replay(journal, bars, Settings.load(env={}), source="bundled sample")
    return path
