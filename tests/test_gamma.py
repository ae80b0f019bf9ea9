"""The dealer-gamma measure: convention, Black-Scholes fallback, walls, zero-gamma level,
regime, gate, missing data, and a real SPY option universe checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gammaride.config import ET
from gammaride.rules import blackscholes
from gammaride.rules import gamma as G
from tests.conftest import shared_file

NOW = pd.Timestamp("2024-01-04 10:00", tz=ET)
YEARS_TO_NEXT_CLOSE = (pd.Timestamp("2024-01-05 16:00", tz=ET) - NOW).total_seconds() / (365 * 86400)


def chain(*rows) -> pd.DataFrame:
    """Rows of (expiration, type, strike, iv, gamma, open interest)."""
    return pd.DataFrame(
        [(f"SPY{i}", pd.Timestamp(e), t, float(k), iv, g, oi) for i, (e, t, k, iv, g, oi) in enumerate(rows)],
        columns=G.GAMMA_COLUMNS,
    )


@pytest.mark.parametrize("call", [True, False])
def test_black_scholes_greeks_are_the_derivatives_of_its_price(call):
    """The one Black-Scholes: each greek matches a central difference of the price."""
    price = blackscholes.price
    for spot, strike, years, vol, rate in [(468.0, 470.0, 1 / 365, 0.12, 0.0), (168.0, 160.0, 7 / 365, 0.3, 0.05),
                                           (100.0, 130.0, 0.5, 0.6, 0.02), (400.0, 400.0, 30 / 365, 0.2, 0.0)]:
        g = blackscholes.greeks(spot, strike, years, vol, call, rate)
        h = spot * 1e-5
        up, mid, down = (float(price(s, strike, years, vol, call, rate)) for s in (spot + h, spot, spot - h))
        assert float(g["price"]) == pytest.approx(mid, rel=1e-12)
        assert float(g["delta"]) == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9)
        assert float(g["gamma"]) == pytest.approx((up - 2 * mid + down) / h**2, rel=1e-3)
        assert float(blackscholes.gamma(spot, strike, years, vol, rate)) == pytest.approx(float(g["gamma"]), rel=1e-12)
        dt = 1e-5
        later = float(price(spot, strike, years - dt, vol, call, rate))
        assert float(g["theta"]) == pytest.approx((later - mid) / dt / 365, rel=1e-3)
        dv = 1e-5
        vega = (float(price(spot, strike, years, vol + dv, call, rate)) - float(price(spot, strike, years, vol - dv, call, rate))) / (2 * dv)
        assert float(g["vega"]) == pytest.approx(vega / 100, rel=1e-5)
        rho = (float(price(spot, strike, years, vol, call, rate + dv)) - float(price(spot, strike, years, vol, call, rate - dv))) / (2 * dv)
        assert float(g["rho"]) == pytest.approx(rho / 100, rel=1e-4, abs=1e-9)


def test_calls_add_and_puts_subtract_dollars_per_1pct_move():
    # one call and one put, 100 open each, gamma 0.05 at spot 400:
    # 100 contracts * 0.05 * 100 shares * 400^2 * 1% = $800,000 each
    e = G.measure(chain(("2024-01-05", "call", 400, 0.2, 0.05, 100),
                        ("2024-01-05", "put", 400, 0.2, 0.05, 100)), 400.0, NOW)
    assert e.calls == pytest.approx(800_000) and e.puts == pytest.approx(-800_000)
    assert e.net == pytest.approx(0.0) and e.contracts == 2 and e.bs_count == 0
    calls_only = G.measure(chain(("2024-01-05", "call", 400, 0.2, 0.05, 100)), 400.0, NOW)
    assert calls_only.net == pytest.approx(800_000) and calls_only.regime == G.REGIME_LONG
    puts_only = G.measure(chain(("2024-01-05", "put", 400, 0.2, 0.05, 100)), 400.0, NOW)
    assert puts_only.net == pytest.approx(-800_000) and puts_only.regime == G.REGIME_SHORT


def test_missing_snapshot_gamma_comes_from_black_scholes_on_its_iv_and_is_counted():
    e = G.measure(chain(("2024-01-05", "call", 470, 0.15, np.nan, 250),
                        ("2024-01-05", "call", 480, 0.15, 0.01, 10)), 468.0, NOW)
    bs = float(blackscholes.gamma(468.0, 470.0, YEARS_TO_NEXT_CLOSE, 0.15))
    assert e.bs_count == 1 and e.contracts == 2
    assert e.calls == pytest.approx((250 * bs + 10 * 0.01) * 100 * 468.0**2 * 0.01, rel=1e-9)


def test_contracts_without_open_interest_or_any_gamma_are_left_out_and_named():
    e = G.measure(chain(("2024-01-05", "call", 470, 0.15, 0.02, np.nan),
                        ("2024-01-05", "put", 460, np.nan, np.nan, 40),
                        ("2024-01-05", "put", 465, 1e-7, np.nan, 40),     # placeholder IV is no IV
                        ("2024-01-03", "put", 465, 0.2, 0.03, 40),        # expired yesterday
                        ("2024-01-05", "call", 475, 0.15, 0.01, 100)), 468.0, NOW)
    assert e.contracts == 1 and e.net == pytest.approx(100 * 0.01 * 100 * 468.0**2 * 0.01)
    assert "1 of 5 contracts expired" in e.reason
    assert "1 of 5 contracts without open interest" in e.reason
    assert "2 of 5 contracts without gamma or IV" in e.reason


def test_same_day_expiry_is_split_out_and_walls_are_the_biggest_strikes():
    e = G.measure(chain(("2024-01-04", "call", 470, 0.15, 0.04, 100),    # 0DTE
                        ("2024-01-04", "put", 465, 0.15, 0.03, 100),     # 0DTE
                        ("2024-01-05", "call", 470, 0.15, 0.02, 100),
                        ("2024-01-05", "call", 475, 0.15, 0.01, 500),
                        ("2024-01-05", "put", 460, 0.15, 0.02, 300)), 468.0, NOW)
    unit = 100 * 468.0**2 * 0.01
    assert e.zero_dte == pytest.approx((100 * 0.04 - 100 * 0.03) * unit)
    # call exposure by strike: 470 -> 6, 475 -> 5 (x unit); put: 460 -> 6, 465 -> 3
    assert e.call_wall == 470.0 and e.put_wall == 460.0
    assert e.net == pytest.approx((4 - 3 + 2 + 5 - 6) * unit)


def test_zero_gamma_level_where_the_recomputed_net_crosses_zero():
    # a call at 105 and a put at 95 of equal open interest and IV: their gammas are equal
    # where |d1| is, at S = sqrt(95 * 105) * exp(-iv^2 T / 2)
    iv, years = 0.3, YEARS_TO_NEXT_CLOSE + 6 / 365
    rows = chain(("2024-01-11", "call", 105, iv, np.nan, 1000), ("2024-01-11", "put", 95, iv, np.nan, 1000))
    t = G.years_to_expiry(rows["expiration"], NOW)[0]
    assert t == pytest.approx(years)
    level = math.sqrt(95 * 105) * math.exp(-iv * iv * t / 2)
    below, above = G.measure(rows, 99.0, NOW), G.measure(rows, 101.0, NOW)
    for e in (below, above):
        assert e.zero_gamma == pytest.approx(level, rel=2e-5) and e.reason is None
    assert below.regime == G.REGIME_SHORT and below.net < 0 and below.distance_pct < 0
    assert above.regime == G.REGIME_LONG and above.net > 0
    assert above.distance_pct == pytest.approx((101.0 - above.zero_gamma) / 101.0 * 100)


def test_short_when_net_is_negative_even_without_a_zero_gamma_level():
    e = G.measure(chain(("2024-01-05", "put", 468, 0.2, np.nan, 100)), 468.0, NOW)
    assert math.isnan(e.zero_gamma) and "no zero-gamma level within ±5% of spot" in e.reason
    assert e.regime == G.REGIME_SHORT
    assert "SHORT" in e.describe() and "no zero-gamma level in range" in e.describe()


def test_missing_data_is_a_reason_in_the_row_never_a_crash():
    for e in (G.measure(chain(), 468.0, NOW), G.measure(chain(("2024-01-05", "call", 470, 0.2, 0.01, 5)), math.nan, NOW),
              G.measure(chain(("2024-01-05", "call", 470, 0.2, 0.01, np.nan)), 468.0, NOW)):
        row = e.row()
        assert e.regime is None and row["gamma_regime"] is None and row["gex_net"] is None
        assert row["gamma_reason"] and row["gamma_contracts"] == 0
        assert e.describe().startswith("dealer gamma: unknown (")
    text = G.measure(chain(("2024-01-05", "call", 470, "0.2", "bad", "12")), 468.0, NOW)  # text for numbers
    assert (text.contracts, text.bs_count) == (1, 1)


def test_the_gate_lets_through_only_short_gamma_when_asked():
    short = G.measure(chain(("2024-01-05", "put", 468, 0.2, 0.02, 100)), 468.0, NOW)
    long_ = G.measure(chain(("2024-01-05", "call", 468, 0.2, 0.02, 100)), 468.0, NOW)
    unknown = G.missing(468.0, "open interest unavailable (HTTP 500)")
    assert G.gate_block("off", long_) is None and G.gate_block("off", unknown) is None
    assert G.gate_block("short_only", short) is None
    assert G.gate_block("short_only", long_).startswith("gamma gate short_only: dealers long gamma (net +$")
    assert G.gate_block("short_only", unknown) == (
        "gamma gate short_only: regime unknown (open interest unavailable (HTTP 500))")
    with pytest.raises(ValueError, match="gamma_gate 'sometimes'"):
        G.gate_block("sometimes", short)


# ------------------------------------------------------------------ real SPY data
def _universe(day: str) -> tuple[float, pd.DataFrame]:
    """A Lean SPY option universe: (underlying close, rows as text)."""
    path = shared_file(f"lean/option/usa/universes/spy/{day}.csv")
    lines = path.read_text().splitlines()
    spot = float(lines[1].split(",")[6])
    return spot, [ln.split(",") for ln in lines[2:]]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


DAYS = ["20231228", "20231229", "20240102", "20240103", "20240104", "20240105", "20240108", "20240109"]


@pytest.mark.parametrize("day", DAYS)
def test_real_spy_universe_matches_a_hand_computation(day):
    spot, rows = _universe(day)
    frame = pd.DataFrame(
        [(f"row{i}", pd.Timestamp(r[0]), "call" if r[2] == "C" else "put", float(r[1]),
          _number(r[9]), _number(r[11]), _number(r[8])) for i, r in enumerate(rows)],
        columns=G.GAMMA_COLUMNS,
    )
    now = pd.Timestamp(f"{day} 15:59", tz=ET)
    e = G.measure(frame, spot, now)

    # by hand: every row with open interest, its own gamma, one at a time
    calls = puts = zero_dte = 0.0
    used = 0
    by_strike: dict[tuple[str, float], float] = {}
    for r in rows:
        oi, gamma = _number(r[8]), _number(r[11])
        if math.isnan(oi) or math.isnan(gamma):
            continue
        used += 1
        dollars = oi * gamma * 100 * spot * spot / 100
        if r[2] == "C":
            calls += dollars
        else:
            puts -= dollars
        if r[0] == day:
            zero_dte += dollars if r[2] == "C" else -dollars
        by_strike[(r[2], float(r[1]))] = by_strike.get((r[2], float(r[1])), 0.0) + dollars
    assert used and e.contracts == used and e.bs_count == 0
    assert e.calls == pytest.approx(calls, rel=1e-12)
    assert e.puts == pytest.approx(puts, abs=1e-6)
    assert e.net == pytest.approx(calls + puts, rel=1e-12)
    assert e.zero_dte == pytest.approx(zero_dte, abs=1e-6)
    call_strikes = {k: v for (right, k), v in by_strike.items() if right == "C"}
    if any(v > 0 for v in call_strikes.values()):
        assert e.call_wall == max(call_strikes, key=call_strikes.get)
    else:  # every call with open interest is deep in the money: gamma 0, no wall
        assert math.isnan(e.call_wall)
    # Lean's test subset holds calls only: dealers are long all of it, no zero crossing
    assert math.isnan(e.put_wall) and math.isnan(e.zero_gamma) and e.regime == G.REGIME_LONG
    missing_oi = sum(1 for r in rows if math.isnan(_number(r[8])))
    assert (f"{missing_oi} of {len(rows)} contracts without open interest" in e.reason) == bool(missing_oi)


def test_real_spy_universe_black_scholes_fallback_matches_a_hand_black_scholes():
    """Snapshot gammas dropped: the measure recomputes them from the file's IVs, the same
    as a scalar Black-Scholes by hand (IV placeholders of 1e-7 are no IV)."""
    spot, rows = _universe("20240109")
    now = pd.Timestamp("2024-01-09 15:59", tz=ET)
    frame = pd.DataFrame(
        [(f"row{i}", pd.Timestamp(r[0]), "call", float(r[1]), _number(r[9]), np.nan, _number(r[8]))
         for i, r in enumerate(rows)], columns=G.GAMMA_COLUMNS)
    e = G.measure(frame, spot, now)
    expected = used = 0
    for r in rows:
        oi, iv = _number(r[8]), _number(r[9])
        if math.isnan(oi) or not iv > 1e-4:
            continue
        close = pd.Timestamp(f"{r[0]} 16:00", tz=ET)
        years = (close - now).total_seconds() / (365 * 86400)
        d1 = (math.log(spot / float(r[1])) + iv * iv * years / 2) / (iv * math.sqrt(years))
        gamma = math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi) / (spot * iv * math.sqrt(years))
        expected += oi * gamma * 100 * spot * spot * 0.01
        used += 1
    assert used == e.contracts == e.bs_count == 6
    assert e.net == pytest.approx(expected, rel=1e-9)
