import math

import numpy as np
import pandas as pd
import pytest

from gammaride.reports import stats


def test_wilson_interval_matches_published_values():
    # 3 of 5 and the edge cases 0 of 10 / 10 of 10 (Wilson 1927; Newcombe 1998, table I)
    assert stats.wilson_interval(3, 5) == pytest.approx((0.2307, 0.8824), abs=1e-4)
    assert stats.wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert stats.wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    lo, hi = stats.wilson_interval(0, 0)
    assert math.isnan(lo) and math.isnan(hi)


def test_wilson_interval_by_hand_formula():
    wins, n, z = 17, 35, stats.Z95
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert stats.wilson_interval(wins, n) == pytest.approx((centre - half, centre + half), rel=1e-12)


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError, match="wins=6, n=5"):
        stats.wilson_interval(6, 5)


def test_profit_factor():
    assert stats.profit_factor([100, -50, 30, -10]) == pytest.approx(130 / 60, rel=1e-12)
    assert stats.profit_factor([5, 7]) == math.inf
    assert math.isnan(stats.profit_factor([]))
    assert stats.profit_factor([-5, np.nan]) == 0.0


def test_max_drawdown_counts_from_zero_and_from_every_peak():
    # equity 10, -20, -15, -25, 15; peaks 10, 10, 10, 10, 15 -> deepest fall 35
    assert stats.max_drawdown([10, -30, 5, -10, 40]) == pytest.approx(35.0)
    assert stats.max_drawdown([-5, 2]) == pytest.approx(5.0)
    assert stats.max_drawdown([1, 2, 3]) == 0.0
    assert stats.max_drawdown([]) == 0.0
    equity, dd = stats.drawdown([10, -30, 5])
    np.testing.assert_allclose(equity, [10, -20, -15])
    np.testing.assert_allclose(dd, [0, 30, 25])


def test_mean_interval():
    mean, lo, hi = stats.mean_interval([1.0, 2.0, 3.0, np.nan])
    half = stats.Z95 * 1.0 / math.sqrt(3)  # sample sd of 1, 2, 3 is 1
    assert (mean, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half), rel=1e-12)
    one = stats.mean_interval([4.0])
    assert one[0] == 4.0 and math.isnan(one[1]) and math.isnan(one[2])


def test_is_win_uses_dollars_then_r():
    wins = stats.is_win(np.array([10.0, -1.0, np.nan, np.nan, 0.0]), np.array([-1.0, 2.0, 0.5, -0.5, 1.0]))
    assert wins.tolist() == [True, False, True, False, False]


def test_breakdown_keeps_ordered_empty_groups_and_flags_small_ones():
    trades = pd.DataFrame(
        {
            "side": ["call"] * 3 + ["put"] + [None],
            "pnl_usd": [10.0, -5.0, 3.0, 1.0, -2.0],
            "r_multiple": [2.0, -1.0, 0.6, 0.2, -0.4],
        }
    )
    rows = stats.breakdown(trades, "side", order=["put", "call", "straddle"], min_n=2)
    assert [r["label"] for r in rows] == ["put", "call", "straddle", "unknown"]
    put, call, straddle, unknown = rows
    assert (call["n"], call["wins"], call["enough"]) == (3, 2, True)
    assert call["exp_r"] == pytest.approx(1.6 / 3)
    assert (put["n"], put["enough"]) == (1, False)
    assert straddle["n"] == 0 and not straddle["enough"]
    assert unknown["n"] == 1 and unknown["losses"] == 1


def test_histogram_bins_are_centred_on_exact_outcomes():
    centres, counts = stats.histogram([-1.0, -1.0, -0.9, 0.1, 2.0, 1.95], 0.25)
    assert centres[0] == -1.0 and centres[-1] == 2.0
    assert counts.tolist() == [3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert stats.histogram([], 0.25)[1].tolist() == [0]


def test_power_from_the_spread_of_r():
    # +2 R with chance 0.45, -1 R otherwise: sd about 1.5
    r = np.array([2.0] * 45 + [-1.0] * 55)
    p = stats.edge_power(r)
    sd = float(r.std(ddof=1))
    z = stats.Z95 + 0.8416212335729143
    # the t-test needs a little more than the normal approximation (z * sd / edge) ** 2
    assert (z * sd / 0.1) ** 2 < p["needed"] < (z * sd / 0.1) ** 2 + 5
    assert p["mde"] == pytest.approx(z * sd / math.sqrt(100), rel=0.02)
    assert p["sd"] == pytest.approx(sd)
    few = stats.edge_power([1.0])
    assert few["n"] == 1 and math.isnan(few["mde"]) and math.isnan(few["needed"])
    assert math.isnan(stats.edge_power([1.0, 1.0])["mde"])


def test_power_of_a_spread_far_below_the_edge_needs_the_fewest_trades_instead_of_failing():
    """statsmodels' solver finds no trade count below a t-test's 2 and returns NaN: the
    report says 2, the fewest a t-test takes, rather than failing on the NaN."""
    p = stats.edge_power([1.0, 1.001, 0.999])
    assert p["needed"] == 2.0 and p["mde"] < 0.01


def test_mean_interval_is_the_normal_interval_by_hand():
    v = np.array([0.5, -1.0, 2.0, 1.2, 3.1])
    mean, lo, hi = stats.mean_interval(v)
    half = stats.Z95 * v.std(ddof=1) / math.sqrt(len(v))
    assert (mean, lo, hi) == pytest.approx((v.mean(), v.mean() - half, v.mean() + half), rel=1e-12)
