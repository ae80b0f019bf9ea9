import numpy as np
import pytest

from gammaride.config import Settings
from gammaride.rules.exits import evaluate_exits, excursions
from gammaride.rules.session import expiry_and_hard_stop
from gammaride.rules.setup import (
    ExitPolicy,
    calculate_setup,
    exit_levels,
    iv_multiplier,
    position_size,
)

S = Settings.load(env={})


def test_phase1_levels_for_calls_and_puts():
    tp, sl = exit_levels(np.array(["call", "put"], dtype=object), [350.0, 350.0], [1.25, 1.25], 2.0, 1.0)
    assert tp.tolist() == [352.5, 347.5]
    assert sl.tolist() == [348.75, 351.25]


def test_iv_multiplier_bands():
    assert iv_multiplier([0.29, 0.30, 0.50, 0.51], S).tolist() == [0.8, 1.0, 1.0, 1.5]


@pytest.mark.parametrize(
    "equity, atr, mult, expected",
    [
        (100_000, 1.25, 1.0, 8),   # 1000 / 125 = 8
        (100_000, 1.25, 1.5, 10),  # 12 capped by max_contracts 10
        (100_000, 1.25, 0.8, 6),   # floor(6.4)
        (5_000, 1.25, 0.8, 1),     # floor(0.32) -> at least 1
    ],
)
def test_position_size(equity, atr, mult, expected):
    assert int(position_size(equity, atr, mult, S)) == expected


def test_position_size_capped_by_buying_power():
    assert int(position_size(100_000, 1.25, 1.0, S, buying_power=1_000, premium=3.0)) == 3
    assert int(position_size(100_000, 1.25, 1.0, S, buying_power=100, premium=3.0)) == 0


def test_calculate_setup_is_levels_and_size_with_each_cap_named():
    s = calculate_setup("put", 350.0, 1.25, 0.6, 100_000, S)  # IV high: 1.5x -> 12, capped at 10
    assert (s.tp, s.sl, s.tp_mult, s.sl_mult, s.phase, s.atr_bucket) == (347.5, 351.25, 2.0, 1.0, 1, "all")
    assert (s.iv_multiplier, s.sized_contracts, s.contracts, s.capped, s.affordable, s.bp_capped) == \
        (1.5, 12, 10, True, None, False)
    bp = calculate_setup("call", 350.0, 1.25, 0.4, 100_000, S, buying_power=1_000, premium=3.0)
    assert (bp.sized_contracts, bp.contracts, bp.affordable, bp.capped, bp.bp_capped) == (8, 3, 3, False, True)
    assert calculate_setup("call", 350.0, 1.25, 0.4, 100_000, S, buying_power=100, premium=3.0).contracts == 0
    # a buying power the account did not report caps nothing; an unknown IV is the mid multiplier
    unknown = calculate_setup("call", 350.0, 1.25, None, 100_000, S, buying_power=float("nan"), premium=3.0)
    assert (unknown.contracts, unknown.affordable, unknown.iv_multiplier) == (8, None, 1.0)
    fitted = ExitPolicy(2, (1.0,), (1.5, 3.0), (0.5, 1.0), ("low", "high"))
    assert calculate_setup("call", 350.0, 1.25, 0.4, 100_000, S, fitted).as_dict()["atr_bucket"] == "high"


def test_phase2_lookup_by_atr_bucket():
    policy = ExitPolicy(2, (0.1, 0.2), (2.5, 2.0, 1.5), (0.8, 1.0, 1.2), ("low", "mid", "high"))
    tp, sl, label = policy.lookup([0.05, 0.1, 0.15, 0.3])
    assert tp.tolist() == [2.5, 2.0, 2.0, 1.5] and sl.tolist() == [0.8, 1.0, 1.0, 1.2]
    assert label.tolist() == ["low", "mid", "mid", "high"]


def _path(rows):
    a = np.array(rows, dtype=float)  # rows of (open, high, low, close)
    return a[None, :, 0], a[None, :, 1], a[None, :, 2], a[None, :, 3]


def _exit(sign, tp, sl, rows, n_valid=None, end="time"):
    o, h, lo, c = _path(rows)
    r = evaluate_exits(np.array([sign]), np.array([tp]), np.array([sl]), o, h, lo, c,
                       np.array([n_valid or len(rows)]), end)
    return int(r.bar[0]), float(r.price[0]), r.reason[0]


def test_call_hits_tp():
    assert _exit(1, 102, 99, [(100, 101, 99.5, 100.5), (100.5, 102.2, 100.4, 102)]) == (1, 102, "tp")


def test_bar_touching_both_counts_as_the_stop():
    assert _exit(1, 102, 99, [(100, 102.5, 98.9, 101)]) == (0, 99, "sl")


def test_bar_opening_beyond_the_stop_exits_at_its_open():
    assert _exit(1, 102, 99, [(100, 100.5, 99.5, 100), (98.5, 99.2, 98.0, 99)]) == (1, 98.5, "sl")


def test_bar_opening_beyond_the_target_exits_at_its_open():
    assert _exit(1, 102, 99, [(100, 100.5, 99.5, 100), (103, 103.5, 102.5, 103)]) == (1, 103, "tp")


def test_put_is_mirrored():
    assert _exit(-1, 98, 101, [(100, 100.5, 97.5, 98)]) == (0, 98, "tp")
    assert _exit(-1, 98, 101, [(100, 101.2, 97.5, 98)]) == (0, 101, "sl")
    assert _exit(-1, 98, 101, [(100, 100.2, 99.5, 100), (101.5, 102, 101, 101.8)]) == (1, 101.5, "sl")


def test_time_exit_at_the_close_of_the_last_evaluable_bar():
    rows = [(100, 100.5, 99.5, 100.1 + i / 100) for i in range(20)]
    assert _exit(1, 102, 99, rows) == (19, pytest.approx(100.29), "time")
    assert _exit(1, 102, 99, rows, n_valid=7, end="hard_stop") == (6, pytest.approx(100.16), "hard_stop")


def test_bars_past_the_limit_are_ignored():
    rows = [(100, 100.5, 99.5, 100)] * 3 + [(100, 105, 100, 104)]
    assert _exit(1, 102, 99, rows, n_valid=3) == (2, 100, "time")


def test_live_check_without_a_hit_is_not_an_exit():
    o, h, lo, c = _path([(100, 100.5, 99.5, 100)])
    r = evaluate_exits(np.array([1]), np.array([102]), np.array([99]), o, h, lo, c, np.array([1]), final=False)
    assert r.bar[0] == -1 and r.reason[0] is None


def test_excursions_in_atr_units():
    o, h, lo, c = _path([(100, 101, 99.5, 100), (100, 102, 99, 101)])
    mfe, mae = excursions(np.array([1]), np.array([100.0]), np.array([0.5]), h, lo, np.array([1]))
    assert (mfe[0], mae[0]) == (2.0, 1.0)
    mfe, mae = excursions(np.array([-1]), np.array([100.0]), np.array([0.5]), h, lo, np.array([2]))
    assert (mfe[0], mae[0]) == (2.0, 4.0)


@pytest.mark.parametrize(
    "decision, close, same_day, stop",
    [
        ("09:40", "16:00", True, "15:25"),
        ("15:05", "16:00", True, "15:25"),   # 25 minutes to the 15:30 cut-off: still 0DTE
        ("15:06", "16:00", False, "15:55"),  # next session's expiry
        ("15:40", "16:00", False, "15:55"),
        ("10:00", "13:00", True, "12:25"),   # early close: cut-off 12:30
        ("12:10", "13:00", False, "12:55"),
    ],
)
def test_expiry_choice_and_hard_stop(decision, close, same_day, stop):
    def m(t):
        h, mm = t.split(":")
        return int(h) * 60 + int(mm)

    got_same, got_stop = expiry_and_hard_stop(S, "SPY", np.array([m(decision)]), np.array([m(close)]))
    assert (bool(got_same[0]), int(got_stop[0])) == (same_day, m(stop))


def test_other_underlyings_cut_off_at_15_15():
    same, stop = expiry_and_hard_stop(S, "AAPL", np.array([14 * 60 + 50]), np.array([960]))
    assert (bool(same[0]), int(stop[0])) == (True, 15 * 60 + 10)
