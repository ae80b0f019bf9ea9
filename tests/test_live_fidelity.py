"""The live path against what the real Alpaca does: asset classes alpaca-py does not know,
price increments, the free plan's feeds, the account's shape. Real alpaca-py clients over
loopback against the offline server, real DuckDB journals."""

from __future__ import annotations

import pandas as pd
import pytest
from alpaca.trading.client import TradingClient

from gammaride.config import Settings
from gammaride.errors import BrokerError
from gammaride.journal import Journal
from gammaride.keys import Keys
from gammaride.offline import DataPlan, OfflineAlpaca, SimAccount
from gammaride.rules.contracts import marketable_limit, premium_at, price_increment, to_tick
from gammaride.scanner.broker import AlpacaBroker, OrderSpec
from gammaride.scanner.clock import SteppedClock
from gammaride.scanner.loop import Scanner

ET = "America/New_York"
FOREIGN = [
    {"symbol": "912797LB1", "asset_class": "treasury", "qty": 10, "price": 98.5},
    {"symbol": "SPX", "asset_class": "us_index", "qty": 1, "price": 1655.0},
]


def _broker(srv: OfflineAlpaca, cls=AlpacaBroker, **kw) -> AlpacaBroker:
    return cls(Keys(srv.key_id, srv.secret_key), url=srv.url, timeout=2.0, retry_wait=0.01, **kw)


# --- point 4: SDK strictness -----------------------------------------------------------
def test_alpaca_py_models_reject_an_asset_class_they_do_not_know():
    """The failure this guards against is real: alpaca-py 0.44's models refuse the list."""
    with OfflineAlpaca(start="2013-10-08 10:00:30", speed=0, account=SimAccount(foreign_holdings=FOREIGN)) as srv:
        client = TradingClient(srv.key_id, srv.secret_key, paper=True, url_override=srv.url)
        with pytest.raises(Exception, match="asset_class|AssetClass|treasury"):
            client.get_all_positions()


def test_positions_and_orders_survive_unknown_asset_classes():
    with OfflineAlpaca(start="2013-10-08 10:00:30", speed=0, account=SimAccount(foreign_holdings=FOREIGN)) as srv:
        broker = _broker(srv)
        held = {p.symbol: p for p in broker.positions()}
        orders = broker.orders("all")
    assert held["912797LB1"].asset_class == "treasury" and held["912797LB1"].qty == 10
    assert held["SPX"].asset_class == "us_index" and held["SPX"].avg_entry_price == 1655.0
    assert {o.symbol for o in orders} == {"912797LB1", "SPX"}
    assert all(o.is_filled and o.filled_avg_price > 0 for o in orders)


def test_a_scan_trades_and_reconciles_beside_foreign_holdings(tmp_path):
    """Reconcile names the foreign items and leaves them alone; the scanner's own trade is
    entered, monitored and closed as usual."""
    lines: list[str] = []
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0, seed=7, account=SimAccount(foreign_holdings=FOREIGN)) as srv:
        journal = Journal(tmp_path / "j.duckdb")
        sc = Scanner(_broker(srv), journal, Settings.load(env={}), SteppedClock(srv.advance_to),
                     mode="offline", iv_percentile=0.5, out=lines.append)
        sc.run(8)
        left = {p.symbol for p in _broker(srv).positions()}
    assert any("Leaving 2 position(s) not opened by gammaride alone: 912797LB1, SPX" in ln for ln in lines)
    assert sc.stats.entries == 1 and sum(sc.stats.exits.values()) == 1
    errors = journal.query("SELECT context, message FROM errors")
    assert not errors["context"].str.contains("reconcile|monitor").any(), errors
    assert left == {"912797LB1", "SPX"}
    journal.close()


# --- point 5: price increments ---------------------------------------------------------
@pytest.mark.parametrize(("root", "price", "tick"), [
    ("SPY", 0.42, 0.01), ("SPY", 12.37, 0.01), ("QQQ", 5.0, 0.01), ("IWM", 3.01, 0.01),
    ("AAPL", 2.99, 0.01), ("AAPL", 3.0, 0.05), ("XYZ", 2.99, 0.05), ("XYZ", 3.0, 0.10),
])
def test_price_increment_per_underlying(root, price, tick):
    assert price_increment(root, price) == tick


def test_limit_prices_land_on_the_underlyings_grid():
    assert marketable_limit("buy", 1.20, 1.30, root="SPY") == 1.31
    assert marketable_limit("buy", 1.20, 1.30, root="XYZ") == 1.35  # 1.31 up to the nickel
    assert marketable_limit("sell", 1.20, 1.30, root="XYZ") == 1.15  # 1.19 down to the nickel
    assert marketable_limit("buy", 2.90, 2.98, root="XYZ") == 3.00  # 2.99 up to the nickel
    assert marketable_limit("buy", 3.00, 3.04, root="XYZ") == 3.10  # at $3 and above: dimes
    assert to_tick(3.04, "AAPL", up=None) == 3.05 and to_tick(1.234, "SPY", up=None) == 1.23
    assert premium_at(1.00, 0.5, 1, -3.0, "XYZ") == 0.05  # floored at one tick, not a cent


def test_offline_server_rejects_off_tick_option_prices_like_alpaca():
    with OfflineAlpaca(start="2013-10-08 10:00:30", speed=0, symbol="XYZ", daily=None) as srv:
        broker = _broker(srv)
        price = broker.latest_trade("XYZ").price
        chain = broker.option_chain("XYZ", pd.Timestamp("2013-10-08").date(), pd.Timestamp("2013-10-08").date(),
                                    round(price), round(price))
        call = chain[chain["type"] == "call"].iloc[0]
        with pytest.raises(BrokerError, match=r"HTTP 422: invalid limit_price 0.53: XYZ options .* \$0.05"):
            broker.submit_order(OrderSpec(call["symbol"], 1, "buy", "limit", limit_price=0.53))
        ok = broker.submit_order(OrderSpec(call["symbol"], 1, "buy", "limit",
                                           limit_price=marketable_limit("buy", call["bid"], call["ask"], root="XYZ")))
    assert ok.status in ("filled", "new", "accepted")


# --- point 2: quotes that are not tradable ---------------------------------------------
def _scan(srv, tmp_path, scans, **settings):
    lines: list[str] = []
    journal = Journal(tmp_path / "j.duckdb")
    sc = Scanner(_broker(srv, option_feed=settings.pop("option_feed", "auto")), journal,
                 Settings.load(env={}, **settings), SteppedClock(srv.advance_to),
                 mode="offline", iv_percentile=0.5, out=lines.append)
    sc.run(scans)
    return sc, journal, lines


def test_auto_option_feed_falls_back_to_indicative_without_opra(tmp_path):
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0, seed=7) as srv:
        sc, journal, lines = _scan(srv, tmp_path, 2)
        refused = [e for e in srv.request_log if e["query"].get("feed") == "opra"]
    assert refused and all(e["status"] == 403 for e in refused)
    assert sc.broker.option_feed_used == "indicative"
    feeds = journal.query("SELECT DISTINCT option_feed FROM scans WHERE option_feed IS NOT NULL")
    assert list(feeds["option_feed"]) == ["indicative"]
    assert sum("option quotes: indicative feed" in ln for ln in lines) == 1
    journal.close()


def test_auto_option_feed_uses_opra_when_the_account_has_it(tmp_path):
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0, seed=7, data=DataPlan(subscription="plus")) as srv:
        sc, journal, lines = _scan(srv, tmp_path, 2)
    assert sc.broker.option_feed_used == "opra"
    assert any("option quotes: OPRA feed" in ln for ln in lines)
    journal.close()


def test_opra_asked_for_without_subscription_is_refused():
    with OfflineAlpaca(start="2013-10-08 10:00:30", speed=0) as srv:
        broker = _broker(srv, option_feed="opra")
        with pytest.raises(BrokerError, match="HTTP 403: subscription does not permit querying OPRA data"):
            broker.option_chain("SPY", pd.Timestamp("2013-10-08").date(), pd.Timestamp("2013-10-08").date())


def test_entry_reprices_past_a_modified_quote_and_journals_its_slippage(tmp_path):
    """Indicative asks 3 cents under the market that fills: the first limit (ask + 1 cent)
    rests unfilled, a reprice within the $10/contract budget fills."""
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0, seed=7, data=DataPlan(indicative_skew=0.03)) as srv:
        sc, journal, lines = _scan(srv, tmp_path, 8)
        buys = [o for o in srv.broker.orders.values() if o.side == "buy"]
    assert sc.stats.entries == 1
    assert [o.client_order_id for o in buys] == ["gr-SPY-201310071008-C", "gr-SPY-201310071008-C-r1"]
    assert buys[0].filled_qty == 0 and buys[1].filled_qty > 0
    fills = journal.query("SELECT f.side, f.price, f.quote_price, f.slippage FROM fills f ORDER BY filled_at")
    buy = fills[fills["side"] == "buy"].iloc[0]
    assert buy["price"] - buy["quote_price"] == pytest.approx(0.03, abs=1e-9)  # the true ask
    assert buy["slippage"] == pytest.approx(3.0)  # USD per contract past the quote
    assert 0 < buy["slippage"] <= Settings().max_slippage_per_contract
    sell = fills[fills["side"] == "sell"].iloc[0]
    assert sell["slippage"] == pytest.approx((sell["quote_price"] - sell["price"]) * 100)
    journal.close()


def test_a_stale_quote_prices_no_entry(tmp_path):
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0, seed=7, data=DataPlan(quote_age_seconds=60)) as srv:
        sc, journal, _ = _scan(srv, tmp_path, 3)
        buys = [o for o in srv.broker.orders.values() if o.side == "buy"]
    assert sc.stats.entries == 0 and buys == []
    reasons = journal.query("SELECT skip_reason FROM scans WHERE signal")["skip_reason"]
    assert reasons.str.contains(r"entry not filled: quote for SPY\w+ is 60s old").any()
    journal.close()


# --- point 3: IV from one series -------------------------------------------------------
def _history(path, dte="0dte", base=0.10, step=0.01, start="2013-09-09"):
    journal = Journal(path)
    with journal.transaction():
        for k, day in enumerate(pd.bdate_range(start, periods=20)):
            journal.record_iv(pd.Timestamp(f"{day.date()} 15:00", tz=ET), "SPY", base + step * k, "snapshot",
                              f"SPY{day:%y%m%d}C00168000", day, 168.0, dte)
    journal.close()


def _iv_scan(srv, path, scans=2):
    journal = Journal(path)
    sc = Scanner(_broker(srv), journal, Settings.load(env={}), SteppedClock(srv.advance_to), mode="offline",
                 out=lambda s: None)
    sc.run(scans)
    return journal


def test_iv_is_journaled_with_its_contract_expiry_strike_and_class(tmp_path):
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0, seed=7) as srv:
        journal = _iv_scan(srv, tmp_path / "j.duckdb")
    obs = journal.query("SELECT * FROM iv_observations")
    scans = journal.query("SELECT iv_contract FROM scans")
    assert len(obs) == 2 and (obs["dte_class"] == "0dte").all()
    assert (obs["expiry"].astype(str) == "2013-10-07").all()
    assert (obs["contract"].str.slice(0, 9) == "SPY131007").all()
    assert (obs["strike"] == obs["contract"].str.slice(-8).astype(int) / 1000).all()
    assert list(scans["iv_contract"]) == list(obs["contract"])
    journal.close()


def test_the_percentile_ranks_only_the_same_days_to_expiry_class(tmp_path):
    _history(tmp_path / "j.duckdb")  # 0dte: 0.10 .. 0.29
    _history(tmp_path / "j.duckdb", dte="2-7dte", base=0.50, start="2013-08-12")  # another series, all higher
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0, seed=7) as srv:
        journal = _iv_scan(srv, tmp_path / "j.duckdb")
    scans = journal.query("SELECT iv_source, iv_percentile FROM scans")
    assert (scans["iv_source"] == "iv_history").all()
    assert scans["iv_percentile"].tolist() == pytest.approx([11 / 20] * 2)  # 0.20 among 0dte only
    journal.close()


def test_a_missing_iv_is_a_skip_reason_not_another_expiry(tmp_path):
    _history(tmp_path / "j.duckdb")
    with OfflineAlpaca(start="2013-10-07 10:07:30", speed=0, seed=7, data=DataPlan(missing_iv="all")) as srv:
        journal = _iv_scan(srv, tmp_path / "j.duckdb", scans=1)
        orders = list(srv.broker.orders.values())
    scan = journal.query("SELECT * FROM scans").iloc[0]
    assert scan["iv_source"] == "none" and pd.isna(scan["iv_percentile"]) and pd.isna(scan["iv"])
    assert scan["vol_spike"] and scan["skip_reason"].startswith("no IV: snapshot of SPY131007")
    assert scan["iv_contract"].startswith("SPY131007")  # the series that had none, not tomorrow's
    assert orders == []
    assert journal.query("SELECT count(*) AS n FROM iv_observations WHERE session_date = '2013-10-07'")["n"][0] == 0
    journal.close()


def test_m004_recovers_the_series_of_earlier_iv_observations(tmp_path):
    import duckdb

    from gammaride.journal import schema

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)")
    for name, fn in schema.MIGRATIONS[:3]:  # a journal from before m004
        fn(con)
        con.execute("INSERT INTO schema_migrations VALUES (?, now())", [name])
    con.execute("INSERT INTO iv_observations VALUES ('2024-03-05 15:00-05', '2024-03-05', 'SPY', "
                "'SPY240306P00512500', 0.15, 'snapshot')")
    con.close()
    with Journal(path) as journal:
        row = journal.query("SELECT expiry, strike, dte_class FROM iv_observations").iloc[0]
    assert str(row["expiry"])[:10] == "2024-03-06" and row["strike"] == 512.5 and row["dte_class"] == "1dte"


# --- point 7: feeds on the free plan ---------------------------------------------------
def test_sip_on_the_free_plan_is_refused_for_recent_data_and_check_gives_the_fix(monkeypatch, capsys):
    from gammaride import cli

    monkeypatch.setenv("GAMMARIDE_FEED", "sip")
    code = cli.main(["check", "--offline", "--start", "2013-10-07 10:06:30"])
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "market data" in ln)
    assert code == 1 and line.startswith("✗ market data refused")
    assert "subscription does not permit querying recent SIP data" in line
    assert 'set feed = "iex" (GAMMARIDE_FEED=iex)' in line


def test_sip_history_older_than_15_minutes_is_served_on_the_free_plan():
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0) as srv:
        broker = _broker(srv, feed="sip")
        now = srv.now()
        old = broker.bars("SPY", now - pd.Timedelta(minutes=40), now - pd.Timedelta(minutes=16))
        with pytest.raises(BrokerError, match="recent SIP data"):
            broker.bars("SPY", now - pd.Timedelta(minutes=40), now)
        with pytest.raises(BrokerError, match="recent SIP data"):
            broker.latest_trade("SPY")
    assert len(old) == 21 and old.index[-1] == pd.Timestamp("2013-10-07 09:50", tz=ET)


# --- point 12: offline server fidelity -------------------------------------------------
def test_bad_keys_get_alpacas_401_body():
    with OfflineAlpaca(start="2013-10-08 10:00:30", speed=0) as srv:
        bad = AlpacaBroker(Keys("PKWRONG0000000000000", "Wr0ngSecretAbc123Def456Ghi789Jkl012Mno3"), url=srv.url, timeout=2.0, retry_wait=0.01)
        with pytest.raises(BrokerError) as err:
            bad.account()
        body = srv.request_log[-1]["response"]
    assert body == {"code": 40110000, "message": "request is not authorized"}
    assert err.value.status == 401 and "request is not authorized" in str(err.value)


def test_account_has_no_pdt_fields_and_options_buying_power_of_its_own():
    with OfflineAlpaca(start="2013-10-08 10:00:30", speed=0) as srv:
        acct = TradingClient(srv.key_id, srv.secret_key, url_override=srv.url, raw_data=True).get_account()
        ours = _broker(srv).account()
    assert not {"pattern_day_trader", "daytrade_count", "daytrading_buying_power"} & set(acct)
    assert float(acct["buying_power"]) == 2 * float(acct["options_buying_power"]) == 200_000.0
    assert ours.options_buying_power == 100_000.0 and ours.buying_power == 200_000.0


def test_gtc_option_orders_are_accepted():
    with OfflineAlpaca(start="2013-10-08 10:00:30", speed=0) as srv:
        broker = _broker(srv)
        chain = broker.option_chain("SPY", pd.Timestamp("2013-10-08").date(), pd.Timestamp("2013-10-08").date())
        sym = chain["symbol"].iloc[0]
        o = broker.submit_order(OrderSpec(sym, 1, "buy", "limit", limit_price=0.01, time_in_force="gtc"))
    assert o.status == "new"


@pytest.mark.parametrize(("root", "accepted", "refused"), [("SPY", "15:29:30", "15:30:00"),
                                                           ("XYZ", "15:14:30", "15:15:00")])
def test_the_expiry_day_cutoff_is_the_servers_own_rule(root, accepted, refused):
    """Alpaca's cut-off, built into the server (which takes no scanner settings)."""
    with OfflineAlpaca(start=f"2013-10-08 {accepted}", speed=0, symbol=root, daily=None) as srv:
        broker = _broker(srv)
        day = pd.Timestamp("2013-10-08").date()
        sym = broker.option_chain(root, day, day)["symbol"].iloc[0]
        ok = broker.submit_order(OrderSpec(sym, 1, "buy", "limit", limit_price=0.05))
        srv.advance_to(f"2013-10-08 {refused}")
        with pytest.raises(BrokerError, match="HTTP 422: orders for .* not accepted after"):
            broker.submit_order(OrderSpec(sym, 1, "buy", "limit", limit_price=0.05))
    assert ok.status in ("new", "filled")


def test_one_sided_quotes_for_out_of_the_money_contracts():
    with OfflineAlpaca(start="2013-10-08 10:00:30", speed=0, data=DataPlan(one_sided="otm", missing_iv="otm")) as srv:
        broker = _broker(srv)
        price = broker.latest_trade("SPY").price
        day = pd.Timestamp("2013-10-08").date()
        chain = broker.option_chain("SPY", day, day)
    otm = ((chain["type"] == "call") & (chain["strike"] > price)) | ((chain["type"] == "put") & (chain["strike"] < price))
    assert (chain.loc[otm, "bid"] == 0).all() and chain.loc[otm, "iv"].isna().all() and chain.loc[otm, "delta"].isna().all()
    assert (chain.loc[~otm, "bid"] > 0).all() and chain.loc[~otm, "iv"].notna().all()


# --- point 11: the seed's print contract -----------------------------------------------
def test_an_error_scan_prints_x_error_with_what_failed(tmp_path):
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0) as srv:
        lines: list[str] = []
        sc = Scanner(_broker(srv), Journal(tmp_path / "j.duckdb"), Settings.load(env={}),
                     SteppedClock(srv.advance_to), mode="offline", out=lines.append)
        sc.start()
        outcome = sc.step(srv.now(), None)  # the broker's clock could not be read
        sc.journal.close()
    assert outcome.line == "[SCAN 1] 10:06:30 - ✗ Error: broker clock unavailable"


def test_signal_line_comes_before_the_order_is_sent(tmp_path):
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0, seed=7) as srv:
        seen: list[tuple[str, int]] = []
        sc = Scanner(_broker(srv), Journal(tmp_path / "j.duckdb"), Settings.load(env={}),
                     SteppedClock(srv.advance_to), mode="offline", iv_percentile=0.5,
                     out=lambda s: seen.append((s, len(srv.orders_received()))))
        sc.run(3)
        sc.journal.close()
    text = [s for s, _ in seen]
    i = next(k for k, s in enumerate(text) if s.startswith("  ✓ SIGNAL - Submitting order... CALL"))
    j = next(k for k, s in enumerate(text) if s.endswith("✓ SUBMITTED"))
    assert i < j and seen[i][1] == 0 and seen[j][1] >= 1


def test_block_3_prints_the_price_change_and_block_4_the_cap():
    from gammaride.connection import connect
    from gammaride.notebook.blocks import calculate_setup, check_conditions
    from gammaride.notebook.colab import print_conditions, print_setup

    s = Settings.load(env={}, max_contracts=3)
    with connect(offline=True, speed=0, start="2013-10-07 10:08:05", settings=s) as conn:
        cond = check_conditions(conn, iv_percentile=0.5)
        setup = calculate_setup(conn, cond)
    out: list[str] = []
    print_conditions(cond, s, out.append)
    print_setup(setup, cond, out.append)
    change = next(ln for ln in out if "Price change" in ln)
    assert change == f"✓ Price change (5 min): +${cond['price_change']:.2f} [UP]" and cond["price_change"] > 0
    assert setup["contracts"] == 3 and setup["sized_contracts"] == int(100_000 * 0.01 / (setup["atr"] * 100))
    assert f"✓ capped by max_contracts 3: the sizing rule gives {setup['sized_contracts']}" in out


def test_block_3_at_a_closed_market_shows_no_volume_or_direction_from_an_old_bar():
    from gammaride.connection import connect
    from gammaride.notebook.blocks import check_conditions
    from gammaride.notebook.colab import print_conditions

    s = Settings.load(env={})
    with connect(offline=True, speed=0, start="2013-10-07 18:00:00", settings=s) as conn:
        cond = check_conditions(conn, iv_percentile=0.5)
    out: list[str] = []
    print_conditions(cond, s, out.append)
    assert out[0].startswith("✗ market closed")
    assert not any(ln.startswith("✓") and ("volume" in ln or "direction" in ln or "Price change" in ln) for ln in out)
    assert any(ln.startswith("✗ volume: no live bar (the last bar ended Mon 16:00 ET") for ln in out)
    assert any(ln.startswith("✗ direction NONE") for ln in out)
