from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gammaride.config import ET
from gammaride.rules.contracts import (
    atm_iv,
    choose_contract,
    choose_expiration,
    hard_stop_minute,
    marketable_limit,
    occ_symbol,
    parse_occ,
    premium_at,
)


def _chain(day: str, next_day: str, price: float = 168.0, spread: float = 0.02) -> pd.DataFrame:
    rows = []
    for exp in (day, next_day):
        for kind in ("call", "put"):
            for k in np.arange(price - 3, price + 3.5, 1.0):
                mid = max(0.05, 1.0 - 0.3 * abs(k - price))
                call_delta = 0.5 - 0.15 * (k - price)
                delta = call_delta if kind == "call" else call_delta - 1.0
                rows.append((occ_symbol("SPY", pd.Timestamp(exp), kind, k), pd.Timestamp(exp), kind, k,
                             round(mid - spread / 2, 2), round(mid + spread / 2, 2), 0.2 + 0.01 * abs(k - price), delta))
    return pd.DataFrame(rows, columns=["symbol", "expiration", "type", "strike", "bid", "ask", "iv", "delta"])


def test_occ_round_trip():
    sym = occ_symbol("SPY", pd.Timestamp("2013-10-08"), "put", 168.5)
    assert sym == "SPY131008P00168500"
    assert parse_occ(sym) == ("SPY", pd.Timestamp("2013-10-08"), "put", 168.5)
    with pytest.raises(ValueError, match="OCC"):
        parse_occ("SPY")


@pytest.mark.parametrize(
    ("clock", "expected"),
    [("10:00", "2013-10-10"), ("15:05", "2013-10-10"), ("15:06", "2013-10-11"), ("15:30", "2013-10-11")],
)
def test_0dte_until_1505_then_next_expiration(settings, clock, expected):
    exps = [pd.Timestamp("2013-10-10"), pd.Timestamp("2013-10-11")]
    got, why = choose_expiration(exps, pd.Timestamp(f"2013-10-10 {clock}", tz=ET), settings, "SPY")
    assert why is None
    assert got == pd.Timestamp(expected)


def test_other_underlyings_cut_off_at_1515(settings):
    exps = [pd.Timestamp("2013-10-10"), pd.Timestamp("2013-10-11")]
    got, _ = choose_expiration(exps, pd.Timestamp("2013-10-10 14:51", tz=ET), settings, "AAPL")
    assert got == pd.Timestamp("2013-10-11")
    got, _ = choose_expiration(exps, pd.Timestamp("2013-10-10 14:50", tz=ET), settings, "AAPL")
    assert got == pd.Timestamp("2013-10-10")


def test_no_later_expiration_is_a_reason_not_an_error(settings):
    got, why = choose_expiration([pd.Timestamp("2013-10-10")], pd.Timestamp("2013-10-10 15:20", tz=ET), settings, "SPY")
    assert got is None and "cut-off" in why


def test_hard_stop_is_1525_for_0dte_spy_and_1225_on_an_early_close(settings):
    assert hard_stop_minute(settings, "SPY", 960, same_day=True) == 15 * 60 + 25
    assert hard_stop_minute(settings, "SPY", 960, same_day=False) == 15 * 60 + 55
    # 2013-11-29 closes 13:00: cut-off 12:30, hard stop 12:25; session stop 12:55
    assert hard_stop_minute(settings, "SPY", 13 * 60, same_day=True) == 12 * 60 + 25
    assert hard_stop_minute(settings, "SPY", 13 * 60, same_day=False) == 12 * 60 + 55


def test_early_close_day_moves_the_expiry_switch(settings):
    exps = [pd.Timestamp("2013-11-29"), pd.Timestamp("2013-12-02")]
    got, _ = choose_expiration(exps, pd.Timestamp("2013-11-29 10:05", tz=ET), settings, "SPY")
    assert got == pd.Timestamp("2013-11-29")
    got, _ = choose_expiration(exps, pd.Timestamp("2013-11-29 12:06", tz=ET), settings, "SPY")
    assert got == pd.Timestamp("2013-12-02")


def test_strike_nearest_the_money_with_a_two_sided_tight_quote(settings):
    chain = _chain("2013-10-10", "2013-10-11", price=168.0)
    t = pd.Timestamp("2013-10-10 10:00", tz=ET)
    choice, why = choose_contract(chain, "call", 168.3, t, settings)
    assert why is None
    assert choice.symbol == "SPY131010C00168000" and choice.same_day
    assert choice.hard_stop_min == 15 * 60 + 25
    # the ATM quote loses its bid: the next strike is taken
    chain.loc[chain["symbol"] == "SPY131010C00168000", "bid"] = 0.0
    choice, _ = choose_contract(chain, "call", 168.3, t, settings)
    assert choice.strike in (167.0, 169.0) and choice.bid > 0
    # every spread too wide: no contract and a reason
    wide = chain.assign(ask=chain["bid"] + 5.0)
    choice, why = choose_contract(wide, "put", 168.0, t, settings)
    assert choice is None and "spread" in why


def test_target_delta_and_next_expiry_after_1505(settings):
    chain = _chain("2013-10-10", "2013-10-11", price=168.0)
    choice, _ = choose_contract(chain, "put", 168.0, pd.Timestamp("2013-10-10 15:07", tz=ET), settings,
                                target_delta=0.35)
    assert choice.expiration == pd.Timestamp("2013-10-11") and not choice.same_day
    assert choice.strike == 167.0  # |delta| 0.35 for the put one strike below
    assert choice.hard_stop_min == 15 * 60 + 55


def test_atm_iv_and_premium_estimates():
    chain = _chain("2013-10-10", "2013-10-11", price=168.0)
    iv, contract = atm_iv(chain, 168.2)
    assert iv == pytest.approx(0.2) and contract.startswith("SPY131010")
    assert np.isnan(atm_iv(chain.iloc[0:0], 168.0)[0])
    # call loses delta x move; put mirrored; never below a cent
    assert premium_at(1.00, 0.5, +1, -0.10) == pytest.approx(0.95)
    assert premium_at(1.00, -0.5, -1, +0.10) == pytest.approx(0.95)
    assert premium_at(0.03, 0.5, +1, -1.0) == 0.01
    assert marketable_limit("buy", 1.00, 1.04) == 1.05
    assert marketable_limit("sell", 1.00, 1.04) == 0.99
