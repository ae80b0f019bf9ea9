import numpy as np
import pandas as pd
import pytest

from gammaride.config import ET, Settings
from gammaride.journal import Journal
from gammaride.replay.engine import IVChoice, replay, run_replay
from gammaride.rules.costs import CostModel, estimated_costs, round_trip
from gammaride.rules.exits import outlier_prints, without_outliers
from gammaride.rules.signals import compute_signals


def test_round_trip_pays_half_the_spread_and_slippage_each_way_and_fees_per_side():
    model = CostModel(fee_per_contract=0.03, spread=0.04, slippage=0.01)
    rt = round_trip([1.00], [1.50], [3], model)
    assert rt.entry_premium[0] == pytest.approx(1.03)  # mid + 0.02 + 0.01
    assert rt.exit_premium[0] == pytest.approx(1.47)
    assert rt.gross_usd[0] == pytest.approx(150.0)  # 0.50 x 100 x 3
    assert rt.fees_usd[0] == pytest.approx(0.18)
    assert rt.spread_usd[0] == pytest.approx(12.0)
    assert rt.slippage_usd[0] == pytest.approx(6.0)
    assert rt.net_usd[0] == pytest.approx((1.47 - 1.03) * 300 - 0.18)


def test_a_quoted_spread_replaces_the_setting_and_a_worthless_exit_receives_nothing():
    model = CostModel(fee_per_contract=0.0, spread=0.04, slippage=0.01)
    rt = round_trip([1.0, 1.0], [0.01, 1.0], [1, 1], model, spread=[np.nan, 0.10])
    assert rt.exit_premium[0] == 0.0
    assert rt.net_usd[0] == pytest.approx(-103.0)  # paid 1.03, received nothing
    assert rt.entry_premium[1] == pytest.approx(1.06)
    parts = rt.gross_usd - rt.fees_usd - rt.spread_usd - rt.slippage_usd
    np.testing.assert_allclose(parts, rt.net_usd)


def test_estimated_trades_carry_the_same_costs_without_premiums():
    est = estimated_costs([100.0], [2], CostModel(0.03, 0.03, 0.01))
    assert np.isnan(est.entry_premium[0])
    assert est.net_usd[0] == pytest.approx(100.0 - 0.12 - 6.0 - 4.0)


def test_negative_costs_are_refused():
    with pytest.raises(ValueError, match="spread"):
        CostModel(spread=-0.01)


def _flags(bars, settings):
    sig = compute_signals(bars, settings, None)
    prior = np.r_[np.nan, sig["atr"].to_numpy()[:-1]]
    cols = [bars[c].to_numpy() for c in ("open", "high", "low", "close")]
    return outlier_prints(*cols, prior, settings.outlier_atr)


def test_the_bundled_sample_bad_prints_are_found_and_nothing_else(sample, settings):
    bad_high, bad_low = _flags(sample, settings)
    highs = sample.index[bad_high].strftime("%Y-%m-%d %H:%M").tolist()
    lows = sample.index[bad_low].strftime("%Y-%m-%d %H:%M").tolist()
    # 167.51 printed twice on 10-08; 169.20 reported in two consecutive bars on 10-11
    assert highs == ["2013-10-08 15:03", "2013-10-08 15:36"]
    assert lows == ["2013-10-11 15:00", "2013-10-11 15:01"]


def test_bad_extremes_fall_back_to_the_body():
    h, lo = without_outliers(np.array([10.0]), np.array([12.0]), np.array([8.0]), np.array([10.5]),
                             np.array([True]), np.array([False]))
    assert (h[0], lo[0]) == (10.5, 8.0)


def test_bad_prints_no_longer_take_profit_and_the_run_counts_them(sample, settings, tmp_path):
    flagged = replay(sample, settings, iv=IVChoice())
    blind = replay(sample, settings.replace(outlier_atr=1000.0), iv=IVChoice())
    print_time = pd.Timestamp("2013-10-08 15:03", tz=ET)
    won_on_print = blind.trades[(blind.trades.exit_reason == "tp")
                                & (blind.trades.exit_time == print_time + pd.Timedelta(minutes=1))]
    assert len(won_on_print) == 1
    assert not ((flagged.trades.exit_reason == "tp")
                & (flagged.trades.exit_time == print_time + pd.Timedelta(minutes=1))).any()
    assert flagged.summary()["outlier_prints"] == 4 and blind.summary()["outlier_prints"] == 0
    with Journal(tmp_path / "j.duckdb") as journal:
        run_id, _ = run_replay(journal, sample, settings, iv=IVChoice())
        assert journal.query("SELECT outlier_prints FROM runs WHERE run_id = ?", [run_id]).iloc[0, 0] == 4


def test_replay_pnl_is_net_with_gross_and_costs_beside_it(sample, settings, tmp_path):
    with Journal(tmp_path / "j.duckdb") as journal:
        _, result = run_replay(journal, sample, settings, iv=IVChoice("constant", 0.4))
        t = journal.query("SELECT * FROM trades")
    assert len(t) == len(result.trades) > 0
    assert (t.pnl_source == "delta_estimate").all()
    np.testing.assert_allclose(t.pnl_usd, t.gross_pnl_usd - t.fees_usd - t.spread_usd - t.slippage_usd)
    np.testing.assert_allclose(t.fees_usd, 2 * settings.option_fee_per_contract * t.contracts)
    np.testing.assert_allclose(t.spread_usd, settings.option_spread * 100 * t.contracts)
    move = np.where(t.direction == "call", 1, -1) * (t.exit_price - t.entry_price)
    np.testing.assert_allclose(t.gross_pnl_usd, move * 100 * t.contracts * settings.replay_delta)


def test_cost_settings_are_validated():
    from gammaride.errors import ConfigError

    with pytest.raises(ConfigError, match="option_spread"):
        Settings.load(env={}, option_spread=-1)
