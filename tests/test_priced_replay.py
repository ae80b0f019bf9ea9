"""replay --alpaca: Alpaca history from the cache, trades priced from their option's bars."""

import numpy as np
import pandas as pd
import pytest

from gammaride.cli import main
from gammaride.config import ET, Settings
from gammaride.journal import Journal
from gammaride.offline import OfflineAlpaca
from gammaride.offline.history import History
from gammaride.replay.engine import IVChoice, replay
from gammaride.replay.pricing import OptionPricer
from gammaride.rules import blackscholes
from gammaride.rules.contracts import parse_occ
from gammaride.rules.session import next_session

SPAN = ["--start", "2024-01-02", "--end", "2024-06-28"]


@pytest.fixture(scope="module")
def priced(tmp_path_factory):
    root = tmp_path_factory.mktemp("priced")
    journal = root / "j.duckdb"
    hist = History(start="2023-01-03", end="2024-06-28", every=6)
    with OfflineAlpaca(start="2026-11-30 12:00", speed=0, history=hist) as srv:
        assert main(["replay", "--alpaca", "SPY", *SPAN, "--url", srv.url, "--journal", str(journal),
                     "--quiet", "--iv-percentile", "0.5"]) == 0
        sent = len(srv.request_log)
    with Journal(journal) as j:
        trades = j.query("SELECT * FROM trades WHERE run_id = 1 ORDER BY trade_id")
        paths = j.query("SELECT * FROM option_paths ORDER BY trade_id, minute")
        runs = j.query("SELECT * FROM runs")
    return {"root": root, "journal": journal, "hist": hist, "trades": trades, "paths": paths,
            "runs": runs, "sent": sent}


def test_every_trade_says_how_it_was_priced(priced):
    t = priced["trades"]
    before = t.entry_time.dt.tz_convert(ET) < pd.Timestamp("2024-02-01", tz=ET)
    assert before.any() and (~before).sum() >= 20
    assert (t.loc[before, "pnl_source"] == "delta_estimate").all()
    assert set(t.loc[~before, "pnl_source"]) <= {"option_bars", "black_scholes"}
    assert (t.loc[~before, "pnl_source"] == "option_bars").mean() > 0.8
    assert t.loc[~before, ["entry_premium", "exit_premium", "contract_symbol"]].notna().all().all()
    np.testing.assert_allclose(t.pnl_usd, t.gross_pnl_usd - t.fees_usd - t.spread_usd - t.slippage_usd)


def test_the_contract_is_the_scanners_choice_with_the_expiry_roll(priced):
    t = priced["trades"]
    t = t[t.contract_symbol.notna()]
    for row in t.itertuples():
        root, exp, kind, strike = parse_occ(row.contract_symbol)
        when = row.entry_time.tz_convert(ET)
        today = pd.Timestamp(when.date())
        rolled = when.hour * 60 + when.minute > 15 * 60 + 5
        assert exp == (next_session(today) if rolled else today), row.contract_symbol
        assert kind == row.direction and root == "SPY"
        # the strike nearest the money, or its neighbour when the nearest one's spread is
        # wider than max_spread_pct of its mid (a cheap OTM contract): the scanner's rule
        assert np.floor(row.entry_price) <= strike <= np.ceil(row.entry_price)


def test_entry_premium_is_the_option_close_of_the_decision_minute_plus_half_spread_and_slippage(priced):
    s = Settings.load(env={})
    t = priced["trades"]
    checked = 0
    for row in t[t.pnl_source == "option_bars"].itertuples():
        dec = row.entry_time.tz_convert("UTC").value
        bars = priced["hist"].option_bars(row.contract_symbol, dec - 60_000_000_000, dec - 60_000_000_000)
        if len(bars["close"]):
            assert row.entry_premium == pytest.approx(bars["close"][0] + s.option_spread / 2 + s.option_slippage)
            checked += 1
    assert checked >= 10


def test_the_option_path_is_journaled_beside_the_underlying(priced):
    t = priced["trades"]
    p = priced["paths"]
    priced_ids = set(t.loc[t.contract_symbol.notna(), "trade_id"])
    assert set(p.trade_id) == priced_ids
    per = p.groupby("trade_id").minute.agg(["min", "max", "count"])
    assert (per["min"] == 0).all() and (per["max"] <= 20).all()
    assert set(p.source) == {"option_bars", "black_scholes"}  # seeded missing minutes use the model
    assert (p.high >= p.low).all()


def test_the_run_counts_outlier_prints(priced):
    run = priced["runs"].iloc[0]
    assert run.outlier_prints > 0
    assert f'"outlier_prints": {run.outlier_prints}' in run.summary_json


def test_cached_history_replays_offline_with_no_request(priced, capsys, monkeypatch):
    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    assert main(["replay", "--alpaca", "SPY", *SPAN, "--journal", str(priced["journal"]),
                 "--iv-percentile", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "no request sent" in out and "priced by:" in out and "outlier prints:" in out
    with Journal(priced["journal"]) as j:
        a = j.query("SELECT pnl_usd, contract_symbol FROM trades WHERE run_id = 1 ORDER BY trade_id")
        b = j.query("SELECT pnl_usd, contract_symbol FROM trades WHERE run_id = 2 ORDER BY trade_id")
    pd.testing.assert_frame_equal(a, b)


def test_a_contract_without_bars_is_priced_by_black_scholes_at_the_session_iv(sample):
    class NoBars:
        def load(self, underlying, contracts_by_month):
            self.asked = contracts_by_month
            return pd.DataFrame({"symbol": pd.Series(dtype=object), "close": pd.Series(dtype=float)},
                                index=pd.DatetimeIndex([], tz=ET))

    # the sample's sessions moved into 2024, so the option history rules apply
    bars = sample.copy()
    bars.index = bars.index + (pd.Timestamp("2024-03-04", tz=ET) - pd.Timestamp("2013-10-04", tz=ET))
    bars = bars[bars.index.day_of_week < 5]
    source = NoBars()
    settings = Settings.load(env={})
    result = replay(bars, settings, iv=IVChoice("constant", 0.5), pricer=OptionPricer(source))
    t = result.trades
    assert len(t) and (t.pnl_source == "black_scholes").all() and source.asked
    row = t.iloc[0]
    _, exp, kind, strike = parse_occ(row.contract_symbol)
    close_ns = (pd.Timestamp(exp).tz_localize(ET) + pd.Timedelta(hours=16)).value
    years = (close_ns - row.entry_time.value) / blackscholes.YEAR_NS
    mid = blackscholes.price(row.entry_price, strike, years, 0.20, kind == "call")
    assert row.entry_premium == pytest.approx(mid + settings.option_spread / 2 + settings.option_slippage)
    assert (result.option_paths.source == "black_scholes").all()
