"""The synthetic journals the calibration tests stand on, and checks that they are what
they claim: noise journals have no edge at any exit pair, regime journals have a
different best exit per ATR regime, priced journals price like a replay."""

from __future__ import annotations

import numpy as np

from gammaride.calibration.grid import SL_GRID, TP_GRID, simulate_grid
from tests.synthetic import (
    HOLD,
    noise_paths,
    priced_frames,
    synthetic_frames,
    true_surfaces,
    unit_trades,
    write_journal,
)


def best_point(surface: np.ndarray) -> tuple[float, float, float]:
    i, j = np.unravel_index(int(np.argmax(surface)), surface.shape)
    return float(TP_GRID[i]), float(SL_GRID[j]), float(surface[i, j])


def value_at(surface: np.ndarray, tp: float, sl: float) -> float:
    return float(surface[np.argmin(np.abs(TP_GRID - tp)), np.argmin(np.abs(SL_GRID - sl))])


def test_noise_journals_have_no_edge_at_any_exit_pair():
    """Brute force over the whole TP/SL grid on 3,000 fine-stepped random walks: no pair's
    mean outcome, and no pair's gain over Phase 1, is above zero beyond its standard error
    by more than chance over 648 correlated pairs allows (coarse sub-steps fail this: the
    overshoot past a stop gives tight stops a z of about 5)."""
    rng = np.random.default_rng(0)
    o, h, lo, c = noise_paths(rng, 3000)
    grid = simulate_grid(unit_trades(o, h, lo, c))
    n = len(grid)
    z = grid.mean(0) / (grid.std(0, ddof=1) / np.sqrt(n))
    gain = grid - grid[:, [15], :][:, :, [7]]  # minus Phase 1 (TP 2.0, SL 1.0)
    se = gain.std(0, ddof=1) / np.sqrt(n)
    z_gain = np.where(se > 0, gain.mean(0) / np.where(se > 0, se, 1), 0)
    assert TP_GRID[15] == 2.0 and SL_GRID[7] == 1.0
    assert z.max() < 3.0, np.unravel_index(z.argmax(), z.shape)
    assert z_gain.max() < 3.0, np.unravel_index(z_gain.argmax(), z_gain.shape)


def test_noise_bars_are_consistent_and_driftless():
    o, h, lo, c = noise_paths(np.random.default_rng(1), 2000)
    assert o.shape == (2000, HOLD)
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()
    assert abs(c[:, -1].mean()) < 0.12  # sd of the mean is about 0.06
    # a 1-minute bar's range is about one ATR
    assert 0.8 < (h - lo).mean() < 1.2


def test_each_regime_has_its_own_best_and_phase1_is_worse():
    truth = true_surfaces()  # 3,000 paths per regime: the truth the benchmark scores against
    bests = {name: best_point(s) for name, s in truth.items()}
    assert len({(tp, sl) for tp, sl, _ in bests.values()}) == 3  # three different optima
    assert bests["low"][0] > bests["mid"][0] + 0.5  # the trending regime wants the widest TP
    assert bests["high"][1] > bests["mid"][1] + 0.4  # the dipping regime wants the widest SL
    for name, surface in truth.items():
        assert value_at(surface, 2.0, 1.0) < 0.9 * bests[name][2], name


def test_frames_fit_the_journal_schema(tmp_path):
    from gammaride.journal import Journal

    trades, paths, regime = synthetic_frames(0, 15)
    priced, options = priced_frames(trades, paths, unpriced_every=5)
    write_journal(tmp_path / "j.duckdb", priced, paths, option_paths=options)
    with Journal(tmp_path / "j.duckdb", read_only=True) as j:
        back = j.trades()
        assert len(back) == 15 and set(back["mode"]) == {"replay"}
        assert len(j.trade_paths()) == 15 * HOLD
        assert len(j.query("SELECT * FROM option_paths")) == 12 * HOLD
        assert back["entry_premium"].notna().sum() == 12
    assert set(regime) <= {"high", "low", "mid"}


def replay_journal(path, times: int = 1):
    """A journal holding ``times`` replays of the bundled real SPY sessions (34 trades each)."""
    from gammaride.config import Settings
    from gammaride.data.bars import sample_bars
    from gammaride.journal import Journal
    from gammaride.replay.engine import run_replay

    bars = sample_bars()
    with Journal(path) as journal:
        for _ in range(times):
            run_replay(journal, bars, Settings.load(env={}), source="bundled sample")
    return path
