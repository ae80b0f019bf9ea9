"""Calibration maths and the calibrate pipeline: grid re-simulation, surface fit,
walk-forward validation, and the verdicts on known-best, pure-noise and real journals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gammaride.calibration import (
    SL_GRID,
    TP_GRID,
    calibrate,
    calibrate_paths,
    load_exit_policy,
    parse_edges,
    simulate_grid,
    trade_paths_from_frames,
)
from gammaride.calibration.fit import fit_buckets, tercile_edges
from gammaride.calibration.grid import simulate_one
from gammaride.calibration.validate import bootstrap_mean_ci, walk_forward
from gammaride.errors import CalibrationError
from gammaride.journal import Journal
from tests.test_calibration_synth import (
    best_point,
    replay_journal,
    synthetic_frames,
    true_surfaces,
    value_at,
    write_journal,
)

ET = "America/New_York"


@pytest.fixture(scope="module")
def real_journal(tmp_path_factory):
    return replay_journal(tmp_path_factory.mktemp("real") / "replay.duckdb")


# grid --------------------------------------------------------------------------------

# A call entered at 100 with ATR 1 (prices in ATRs from the entry):
# bar 1 reaches +0.6/-0.2; bar 2 +1.3/-0.4; bar 3 opens at -3; bar 4 runs to +6.
BARS = [  # open, high, low, close
    (100.0, 100.6, 99.8, 100.4),
    (100.4, 101.3, 99.6, 101.0),
    (97.0, 97.5, 96.8, 97.2),
    (97.2, 106.0, 97.0, 105.0),
]


def _one_trade_frames(direction: str, hard_stop_minutes: int = 200):
    start = pd.Timestamp("2024-03-01 09:40", tz=ET)
    mirror = (lambda p: p) if direction == "call" else (lambda p: 200.0 - p)
    trades = pd.DataFrame(
        {
            "trade_id": [7],
            "symbol": ["SPY"],
            "direction": [direction],
            "entry_time": [start],
            "entry_price": [100.0],
            "atr": [1.0],
            "hard_stop_time": [start + pd.Timedelta(minutes=hard_stop_minutes)],
        }
    )
    rows = []
    for k, (o, h, lo, c) in enumerate(BARS):
        hi_, lo_ = (h, lo) if direction == "call" else (mirror(lo), mirror(h))
        rows.append((7, k + 1, start + pd.Timedelta(minutes=k), mirror(o), hi_, lo_, mirror(c)))
    paths = pd.DataFrame(
        rows, columns=["trade_id", "minute", "bar_time", "open", "high", "low", "close"]
    )
    return trades, paths


def _at(grid, tp, sl):
    return grid[0, np.argmin(np.abs(TP_GRID - tp)), np.argmin(np.abs(SL_GRID - sl))]


@pytest.mark.parametrize("direction", ["call", "put"])
def test_grid_applies_the_exit_rules_by_hand(direction):
    aligned = trade_paths_from_frames(*_one_trade_frames(direction))
    assert list(aligned.n_valid) == [4]
    grid = simulate_grid(aligned)
    assert grid.shape == (1, len(TP_GRID), len(SL_GRID)) == (1, 36, 18)
    assert _at(grid, 0.5, 0.3) == pytest.approx(0.5)  # TP in bar 1
    assert _at(grid, 1.0, 0.3) == pytest.approx(-0.3)  # bar 2 touches both: the SL counts
    assert _at(grid, 1.0, 0.5) == pytest.approx(1.0)  # bar 2 reaches TP only
    assert _at(grid, 1.5, 0.5) == pytest.approx(-3.0)  # bar 3 opens beyond the SL: its open
    assert _at(grid, 4.0, 2.0) == pytest.approx(-3.0)


def test_grid_stops_at_the_hard_stop():
    # hard stop 2 minutes after entry: only bars 1-2 count; no level hit -> close of bar 2
    aligned = trade_paths_from_frames(*_one_trade_frames("call", hard_stop_minutes=2))
    assert list(aligned.n_valid) == [2]
    assert _at(simulate_grid(aligned), 1.5, 0.5) == pytest.approx(1.0)


def test_grid_reproduces_replay_on_real_sessions(real_journal):
    with Journal(real_journal, read_only=True) as j:
        trades = j.trades()
        aligned = trade_paths_from_frames(trades, j.trade_paths())
    assert len(aligned) == 34 and aligned.dropped == 0
    journaled = (
        np.where(trades["direction"] == "call", 1, -1)
        * (trades["exit_price"] - trades["entry_price"])
        / trades["atr"]
    ).to_numpy()
    grid = simulate_grid(aligned)
    np.testing.assert_array_equal(grid[:, 15, 7], journaled)  # TP 2.0, SL 1.0: Phase 1
    np.testing.assert_array_equal(simulate_one(aligned, 2.0, 1.0), journaled)
    assert TP_GRID[15] == 2.0 and SL_GRID[7] == 1.0


def test_same_trade_journaled_twice_counts_once(tmp_path):
    path = replay_journal(tmp_path / "twice.duckdb", times=2)
    with Journal(path, read_only=True) as j:
        trades = j.trades()
        aligned = trade_paths_from_frames(trades, j.trade_paths())
    assert len(trades) == 68
    assert len(aligned) == 34 and aligned.dropped == aligned.duplicates == 34


# fit ---------------------------------------------------------------------------------


def _bowl(n, tp0, sl0, seed=0):
    """Outcomes whose mean surface peaks at (tp0, sl0), plus per-trade noise."""
    rng = np.random.default_rng(seed)
    tt, ss = np.meshgrid(TP_GRID, SL_GRID, indexing="ij")
    surface = 0.5 - 0.2 * (tt - tp0) ** 2 - 0.5 * (ss - sl0) ** 2
    return (
        surface[None]
        + 0.3 * rng.standard_normal((n, 1, 1))
        + 0.05 * rng.standard_normal((n, *tt.shape))
    )


def test_fit_finds_the_peak_and_shrinks_small_buckets_toward_phase1():
    big = _bowl(400, 2.8, 0.6)
    small = _bowl(15, 2.8, 0.6, seed=1)
    few = _bowl(14, 2.8, 0.6, seed=2)
    atr = np.r_[np.full(400, 0.05), np.full(15, 0.15), np.full(14, 0.30)]
    fits = fit_buckets(np.concatenate([big, small, few]), atr, (0.1, 0.2), (2.0, 1.0), 15)
    assert [f.label for f in fits] == ["low", "mid", "high"]
    assert (fits[0].fitted_tp, fits[0].fitted_sl) == (2.8, 0.6)
    # 400 trades: 400/415 of the way from 2.0/1.0
    assert (fits[0].phase, fits[0].tp_mult, fits[0].sl_mult) == (2, 2.8, 0.6)
    # 15 trades: half way (shrinkage n / (n + 15))
    assert fits[1].phase == 2
    assert fits[1].tp_mult == pytest.approx(2.0 + 0.5 * (fits[1].fitted_tp - 2.0), abs=0.051)
    assert fits[1].sl_mult == pytest.approx(1.0 + 0.5 * (fits[1].fitted_sl - 1.0), abs=0.051)
    assert (fits[2].phase, fits[2].tp_mult, fits[2].sl_mult, fits[2].n) == (1, 2.0, 1.0, 14)


def test_flat_surface_keeps_phase1():
    flat = np.zeros((50, len(TP_GRID), len(SL_GRID))) + np.linspace(-1, 1, 50)[:, None, None]
    (fit,) = fit_buckets(flat, np.full(50, 0.1), (), (2.0, 1.0), 15)
    assert (fit.phase, fit.tp_mult, fit.sl_mult) == (1, 2.0, 1.0)


def test_tercile_edges_and_manual_edges():
    assert tercile_edges(np.arange(1.0, 10.0)) == pytest.approx((11 / 3, 19 / 3))
    assert tercile_edges(np.array([1.0, 2.0])) == ()
    assert parse_edges("0.8,1.5") == (0.8, 1.5)
    assert parse_edges(None) is None
    for bad in ("1.5,0.8", "0.8,abc", "0,1", "nan"):
        with pytest.raises(CalibrationError, match="--edges|ascending"):
            parse_edges(bad)


# validation --------------------------------------------------------------------------


def test_walk_forward_fits_only_on_the_past():
    seen = []

    def fit_fold(train):
        seen.append(train)
        return (), []

    def score_fold(test, edges, fits):
        assert test.min() > seen[-1].max()
        return np.full(len(test), 1.0)

    oos = walk_forward(60, fit_fold, score_fold, np.zeros(60), n_splits=5)
    assert oos.folds == 5 and len(seen) == 5
    assert list(oos.index) == list(range(10, 60))  # the first block is only ever trained on
    assert (oos.improvement == 1.0).all()


def test_bootstrap_interval():
    assert bootstrap_mean_ci(np.zeros(40), np.arange(40) // 4) == (0.0, 0.0)
    rng = np.random.default_rng(1)
    values = rng.standard_normal(400) + 0.5
    lo, hi = bootstrap_mean_ci(values, np.arange(400) // 4, seed=2)
    assert lo < values.mean() < hi
    assert 0.3 < lo and hi < 0.7
    # a shared shock per session: resampling sessions, not trades, widens the interval
    shock = np.repeat(rng.standard_normal(50), 8)
    clustered = 0.3 * rng.standard_normal(400) + shock
    by_session = bootstrap_mean_ci(clustered, np.arange(400) // 8)
    by_trade = bootstrap_mean_ci(clustered, np.arange(400))
    assert by_session[1] - by_session[0] > 2 * (by_trade[1] - by_trade[0])


# the pipeline on journals with a known answer ----------------------------------------


@pytest.fixture(scope="module")
def truth():
    return true_surfaces()


def test_known_best_per_bucket_is_found_and_published(tmp_path, settings, truth):
    trades, paths, _ = synthetic_frames(seed=1, n_per_bucket=300)
    journal = write_journal(tmp_path / "known.duckdb", trades, paths)
    result = calibrate(journal, settings)
    assert result.published and not result.forced and result.supported
    assert result.path == tmp_path / "calibration.json"
    assert result.n_trades == 900 and result.edges_source == "terciles"
    assert [b.label for b in result.buckets] == ["low", "mid", "high"]
    assert all(b.phase == 2 for b in result.buckets)
    achieved, best = [], []
    for b in result.buckets:
        surface = truth[b.label]
        achieved.append(value_at(surface, b.tp_mult, b.sl_mult))
        best.append(best_point(surface)[2])
        # each bucket on fresh trades: within 10% of its known best
        assert achieved[-1] >= 0.9 * best[-1], (b.label, b.tp_mult, b.sl_mult)
    assert np.mean(achieved) >= 0.9 * np.mean(best)
    # the published exits differ by bucket the way the generator made them
    low, mid, high = result.buckets
    assert low.tp_mult > mid.tp_mult + 0.5 and high.sl_mult > mid.sl_mult + 0.4
    # and the file says so
    doc = json.loads(result.path.read_text())
    assert doc["published"] is True and doc["n_trades"] == 900 and len(doc["edges"]) == 2
    assert doc["overall"]["out_of_sample"]["ci95"][0] > 0
    assert [b["tp_mult"] for b in doc["buckets"]] == [b.tp_mult for b in result.buckets]
    for key in ("schema_version", "fitted_at", "journal_fingerprint", "method", "settings"):
        assert key in doc
    assert set(doc["buckets"][0]) >= {"n", "tp_mult", "sl_mult", "in_sample", "out_of_sample"}
    policy, message = load_exit_policy(result.path, settings)
    assert policy == result.policy
    assert policy.phase == 2 and policy.n_trades == 900
    assert policy.tp_mults == tuple(b.tp_mult for b in result.buckets)
    assert message.startswith(f"Phase 2 exits from {result.path} (fitted ")
    assert "900 trades): low " in message


def test_pure_noise_is_not_published(settings):
    """Driftless random walks: no exit beats another, so at most 2 of 40 seeds may publish."""
    published = []
    for seed in range(40):
        trades, paths, _ = synthetic_frames(seed=1000 + seed, n_per_bucket=60, noise=True)
        aligned = trade_paths_from_frames(trades, paths)
        published.append(calibrate_paths(aligned, settings, seed=seed).published)
    assert sum(published) <= 2, [i for i, p in enumerate(published) if p]


def test_pure_noise_journal_writes_an_unpublished_file(tmp_path, settings):
    trades, paths, _ = synthetic_frames(seed=7, n_per_bucket=60, noise=True)
    journal = write_journal(tmp_path / "noise.duckdb", trades, paths)
    result = calibrate(journal, settings, out=tmp_path / "out" / "cal.json")
    assert not result.published and result.policy.phase == 1
    assert result.verdict.startswith("NOT PUBLISHED")
    assert json.loads((tmp_path / "out" / "cal.json").read_text())["published"] is False
    policy, message = load_exit_policy(tmp_path / "out" / "cal.json", settings)
    assert policy.phase == 1 and message.startswith("Phase 1 exits: ") and "was not published" in message
    forced = calibrate(journal, settings, out=tmp_path / "forced.json", force=True)
    assert forced.published and forced.forced and forced.verdict.startswith("FORCED")
    assert load_exit_policy(tmp_path / "forced.json", settings)[0].phase == 2


# the pipeline on the bundled real sessions ------------------------------------------


def test_real_sessions_refuse_below_min_trades(real_journal, settings, tmp_path):
    with pytest.raises(CalibrationError, match=r"has 34 closed SPY trades .* at least 50") as err:
        calibrate(real_journal, settings, out=tmp_path / "c.json")
    assert "--min-trades" in str(err.value)
    assert not (tmp_path / "c.json").exists()


def test_real_sessions_with_lower_minimum_explain_the_verdict(real_journal, settings, tmp_path):
    result = calibrate(real_journal, settings, min_trades=20, out=tmp_path / "c.json")
    assert result.n_trades == 34 and not result.published
    assert result.verdict.startswith("NOT PUBLISHED") and "Phase 1" in result.verdict
    assert sum(b.n for b in result.buckets) == 34
    # two manual edges around the sample's ATRs and a looser bucket minimum: still honest
    loose = calibrate(
        real_journal,
        settings,
        min_trades=20,
        min_bucket_trades=10,
        edges=(0.07, 0.085),
        out=tmp_path / "c2.json",
    )
    assert loose.edges == (0.07, 0.085) and loose.edges_source == "manual"
    assert not loose.published and "sessions" in loose.verdict


def test_min_trades_floor(real_journal, settings, tmp_path):
    with pytest.raises(CalibrationError, match="at least 10"):
        calibrate(real_journal, settings, min_trades=5, out=tmp_path / "c.json")
