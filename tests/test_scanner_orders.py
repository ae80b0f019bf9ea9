"""Order lifecycle edge cases of the live scanner: journal failures, re-decided bars,
refused exits, asynchronous cancels, adoption, dry runs and the hard stop. Real alpaca-py
clients over loopback against the offline server, real DuckDB journals."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from gammaride import cli
from gammaride.config import ET, Settings
from gammaride.errors import BrokerError
from gammaride.journal import Journal
from gammaride.journal.store import DRY_RUN_SQL
from gammaride.offline import BrokerBehaviour, OfflineAlpaca
from gammaride.reports import build_report_data
from gammaride.scanner.broker import AlpacaBroker, OrderSpec, _request, bars_frame, cent
from gammaride.scanner.loop import SKIP_DECIDED, Scanner
from gammaride.scanner.orders import backstop_client_id
from gammaride.scanner.positions import ExitDecision, Position
from tests.support import offline_broker, offline_scanner

TRADE_DAY = "2013-10-07 10:06:30"  # a 10:08 call that exits TP on the 10:12 bar


class FailingTradeJournal(Journal):
    """A journal whose trade inserts fail (a full disk, a locked file)."""

    def write_trade(self, row):  # noqa: ANN001 - the parent's signature
        raise OSError("disk full")


class RefusingExits(AlpacaBroker):
    """The real client, but every exit order (client id ``-x<n>``) is refused."""

    def submit_order(self, spec: OrderSpec):
        if "-x" in (spec.client_order_id or ""):
            exc = BrokerError("submit sell failed: HTTP 403: insufficient options buying power")
            exc.status = 403
            raise exc
        return super().submit_order(spec)


def scanner(srv: OfflineAlpaca, journal: Journal, broker_cls=AlpacaBroker, settings: Settings | None = None,
            **kw) -> tuple[Scanner, list[str]]:
    kw.setdefault("iv_percentile", 0.5)
    return offline_scanner(srv, journal, settings, offline_broker(srv, broker_cls), **kw)


def step_now(sc: Scanner):
    mc = sc.broker.clock()
    sc.clock.sync(mc.timestamp)
    return sc.step(mc.timestamp, mc)


def test_a_failed_trade_write_still_manages_the_position_to_its_exit_and_fails_the_run(tmp_path, capsys):
    with OfflineAlpaca(start="2013-10-08 14:59:30", speed=0, seed=7) as srv:
        journal = FailingTradeJournal(tmp_path / "j.duckdb")
        sc, lines = scanner(srv, journal)
        sc.run(2)
        held = dict(srv.broker.positions)
        open_orders = [o for o in srv.broker.orders.values() if o.is_open]
        stops = [o for o in srv.broker.orders.values() if o.type == "stop"]
    assert sc.stats.entries == 1 and sc.stats.errors >= 1
    assert "[JOURNAL] write trade failed: disk full" in capsys.readouterr().err
    assert len(stops) == 1  # the backstop went out although the journal did not take the trade
    # every scan after the failure says so; the position rides to its TP after the last scan
    assert sum(ln.startswith("✗ Error: journal write failed (write trade failed: disk full)") for ln in lines) == 2
    assert any(ln.startswith("Last scan done; managing 1 open position(s)") for ln in lines)
    assert sc.stats.exits == {"tp": 1}
    assert not held and not open_orders and not sc.positions.open
    run = journal.query("SELECT status, summary_json FROM runs").iloc[0]
    assert run["status"] == "failed" and "journal writes failed (write trade failed: disk full)" in run["summary_json"]
    journal.close()


def test_a_bar_decided_twice_is_skipped_and_never_becomes_a_phantom_trade(tmp_path):
    with OfflineAlpaca(start="2013-10-08 15:00:05", speed=0, seed=7) as srv:
        journal = Journal(tmp_path / "j.duckdb")
        sc, _ = scanner(srv, journal)
        sc.start()
        first = step_now(sc)
        assert first.row["trade_id"] is not None
        pos = sc.positions.open[0]
        sc.positions.close(pos, ExitDecision("manual", sc.positions.price_now(), sc.clock.now(), False))
        again = step_now(sc)  # the next bar is late: the same decision bar again
        assert again.row["skip_reason"] == SKIP_DECIDED and again.row.get("trade_id") is None
        # a new run (restart) at the same moment: the client id is journaled and known
        sc2, _ = scanner(srv, journal)
        sc2.start()
        third = step_now(sc2)
        assert third.row["skip_reason"].startswith(SKIP_DECIDED + " (entry gr-SPY-201310081500-C")
        assert not sc.positions.open and not sc2.positions.open and not srv.broker.positions
    trades = journal.query("SELECT trade_id, status FROM trades")
    assert list(trades["status"]) == ["closed"]
    journal.close()


def test_a_refused_exit_puts_a_new_backstop_back_and_says_the_position_is_open(tmp_path):
    with OfflineAlpaca(start="2013-10-08 14:59:30", speed=0, seed=7) as srv:
        journal = Journal(tmp_path / "j.duckdb")
        sc, lines = scanner(srv, journal, broker_cls=RefusingExits)
        sc.start()
        srv.advance_to("2013-10-08 15:00:05")
        step_now(sc)
        sc.finish("interrupted")  # as after Ctrl-C: flatten what the run manages
        held = {s: p.qty for s, p in srv.broker.positions.items()}
        resting = [o for o in srv.broker.orders.values() if o.is_open]
    assert held == {"SPY131008C00166000": 10.0}
    cid = "gr-SPY-201310081500-C"
    assert [o.client_order_id for o in resting] == [backstop_client_id(cid, 4)]  # placed, re-placed 3x
    assert resting[0].type == "stop" and resting[0].qty == 10
    warn = [ln for ln in lines if "STILL OPEN" in ln]
    assert warn and "after 3 exit attempts" in warn[0] and "backstop stop" in warn[0]
    journal.close()


def test_an_asynchronous_backstop_cancel_is_waited_for_before_the_exit(tmp_path):
    results = {}
    for async_cancels in (False, True):
        with OfflineAlpaca(start=TRADE_DAY, speed=0, seed=7, behaviour=BrokerBehaviour(async_cancels=async_cancels)) as srv:
            journal = Journal(tmp_path / f"j{async_cancels}.duckdb")
            sc, _ = scanner(srv, journal)
            sc.run(8)
            refused = [e for e in srv.request_log if e["method"] == "POST" and e["path"] == "/v2/orders"
                       and e["status"] >= 400]
            stops = [o for o in srv.broker.orders.values() if o.type == "stop"]
            results[async_cancels] = (journal.query("SELECT * FROM trades").iloc[0], refused, stops, sc.stats.errors)
            journal.close()
    sync_trade = results[False][0]
    trade, refused, stops, errors = results[True]
    assert not refused and errors == 0  # no sell refused for the qty the stop still reserved
    assert [s.status for s in stops] == ["canceled"]
    assert (trade["exit_reason"], trade["exit_time"]) == (sync_trade["exit_reason"], sync_trade["exit_time"])
    assert trade["exit_reason"] == "tp"


def test_server_async_cancel_is_pending_until_the_clock_moves(tmp_path):
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import LimitOrderRequest

    with OfflineAlpaca(start="2013-10-07 10:00", speed=0, behaviour=BrokerBehaviour(async_cancels=True)) as srv:
        client = TradingClient(srv.key_id, srv.secret_key, url_override=srv.url)
        order = client.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY,
                                                      time_in_force=TimeInForce.DAY, limit_price=1.0))
        client.cancel_order_by_id(order.id)
        assert client.get_order_by_id(order.id).status.value == "pending_cancel"
        client.cancel_order_by_id(order.id)  # asking again while pending is no error
        srv.advance(1)
        assert client.get_order_by_id(order.id).status.value == "canceled"


def test_submit_order_block_cancels_an_entry_that_did_not_fill(tmp_path):
    from gammaride.connection import connect
    from gammaride.notebook.blocks import check_conditions, submit_order

    settings = Settings.load(env={}).replace(entry_timeout_seconds=2.0)
    conn = connect(settings=settings, offline=True, speed=0, start="2013-10-08 15:00:05")
    with conn:
        journal = Journal(tmp_path / "j.duckdb")
        cond = check_conditions(conn, journal)
        assert cond["signal"]
        # a stale chain: the quote moved up, so the marketable limit is below the market now
        stale = cond["chain"].copy()
        stale[["bid", "ask"]] = stale[["bid", "ask"]] * 0.5
        cond = {**cond, "chain": stale}
        from gammaride.notebook.blocks import calculate_setup

        setup = calculate_setup(conn, cond)
        out = submit_order(conn, cond, setup, dry_run=False, journal=journal)
        entries = [o for o in conn.server.broker.orders.values() if o.client_order_id.startswith("gr-")]
    assert out["contracts"] == 0 and out["trade_id"] is None
    assert [o.status for o in entries] == ["canceled"]  # nothing left working to fill unjournaled
    assert journal.query("SELECT count(*) AS n FROM trades")["n"].iloc[0] == 0
    journal.close()


def test_an_adopted_position_gets_a_backstop(tmp_path):
    from gammaride.notebook.blocks import calculate_setup, check_conditions
    from gammaride.notebook.colab import open_connection, send_order

    conn = open_connection(None, offline=True, speed=0, settings=Settings.load(env={}),
                           start="2013-10-08 15:00:05")
    try:
        journal = Journal(tmp_path / "j.duckdb")
        cond = check_conditions(conn, journal)
        send_order(conn, cond, calculate_setup(conn, cond), journal)  # a notebook entry: no backstop
        assert not [o for o in conn.broker.orders("open") if o.type == "stop"]
        sc = conn.scanner(journal)
        sc.start()
        stops = [o for o in conn.broker.orders("open") if o.type == "stop"]
        assert sc.stats.adopted == 1 and len(stops) == 1
        pos = sc.positions.open[0]
        assert stops[0].client_order_id == pos.client_order_id + "-bs" and pos.backstop_id == stops[0].id
        assert stops[0].qty == pos.qty
        journal.close()
    finally:
        conn.close()


def test_backstop_ids_are_new_for_every_replacement():
    assert backstop_client_id("gr-SPY-201310081500-C", 1) == "gr-SPY-201310081500-C-bs"
    assert backstop_client_id("gr-SPY-201310081500-C", 3) == "gr-SPY-201310081500-C-bs3"


def test_dry_run_is_marked_and_not_counted_against_the_accounts_limits(tmp_path):
    with OfflineAlpaca(start=TRADE_DAY, speed=0, seed=7) as srv:
        journal = Journal(tmp_path / "j.duckdb")
        dry, _ = scanner(srv, journal, dry_run=True)
        dry.run(8)
        assert dry.stats.entries == 1
        runs = journal.query(f"SELECT run_id, {DRY_RUN_SQL} AS dry FROM runs r")
        assert runs["dry"].tolist() == [True]
        assert journal.query("SELECT summary_json FROM runs")["summary_json"].iloc[0].count('"dry_run": true') == 1
        now = srv.now()
        real, _ = scanner(srv, journal)
        real.run_id = 99
        real._new_day(now)
        assert real.risk.trades == 0 and real.risk.realized_pnl == 0.0
        again, _ = scanner(srv, journal, dry_run=True)
        again._new_day(now)
        assert again.risk.trades == 1  # a dry run does count earlier dry-run trades
        # rehearsals are not results: calibration and the report leave them out
        assert len(journal.trades(dry_runs=True)) == 1 and journal.trades().empty
        assert build_report_data(journal)["headline"]["n"] == 0
    journal.close()


def test_hard_stop_exits_on_the_clock_without_waiting_for_the_bar(tmp_path):
    with OfflineAlpaca(start="2013-10-08 15:00:05", speed=0, seed=7) as srv:
        journal = Journal(tmp_path / "j.duckdb")
        sc, _ = scanner(srv, journal)
        sc.start()
        step_now(sc)
        pos = sc.positions.open[0]
        srv.advance(150)  # 15:02:35
        now = srv.now()
        pos.hard_stop = now.floor("min")  # 15:02: its bar (15:01-15:02) has not come in
        bars = sc.market.fetch_bars(now)
        bars = bars[bars.index + pd.Timedelta(minutes=1) < pos.hard_stop]
        sc.positions.manage(bars, now)
        assert not sc.positions.open and not srv.broker.positions
    t = journal.query("SELECT exit_reason, exit_time FROM trades").iloc[0]
    assert t["exit_reason"] == "hard_stop" and t["exit_time"] == now
    journal.close()


def test_bracket_levels_round_away_from_the_entry():
    assert (cent(166.121, up=True), cent(166.129, up=False), cent(0.1 + 0.2, up=True)) == (166.13, 166.12, 0.3)
    long = _request(OrderSpec("SPY", 10, "buy", "market", order_class="bracket", take_profit=166.121,
                              stop_loss=165.829, client_order_id="x"))
    assert (long.take_profit.limit_price, long.stop_loss.stop_price) == (166.13, 165.82)
    short = _request(OrderSpec("SPY", 10, "sell", "market", order_class="bracket", take_profit=165.829,
                               stop_loss=166.121, client_order_id="y"))
    assert (short.take_profit.limit_price, short.stop_loss.stop_price) == (165.82, 166.13)


def test_bars_frame_drops_bars_after_an_early_close():
    times = ["2013-11-29 17:59:00Z", "2013-11-29 18:00:00Z", "2013-12-02 20:59:00Z"]  # 12:59, 13:00, 15:59 ET
    raw = [{"t": t, "o": 1, "h": 1, "l": 1, "c": 1, "v": 1} for t in times]
    frame = bars_frame(raw)
    assert [f"{ts:%m-%d %H:%M}" for ts in frame.index] == ["11-29 12:59", "12-02 15:59"]


def test_check_shows_unverified_keys_when_the_account_call_fails(capsys, monkeypatch):
    with OfflineAlpaca(start="2013-10-07 09:40", speed=0, faults="account:500=1") as srv:
        monkeypatch.setenv("ALPACA_API_KEY", srv.key_id)
        monkeypatch.setenv("ALPACA_SECRET_KEY", srv.secret_key)
        code = cli.main(["check", "--url", srv.url])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 1 and lines[0].startswith("✗ keys not verified (key ")
    assert "the account call failed" in lines[0]


def test_url_must_be_loopback_and_live_without_keys_says_so(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ALPACA_API_KEY", "PKREALKEYREALKEY1234")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "s" * 40)
    code = cli.main(["scan", "--url", "http://203.0.113.9:8080", "--journal", str(tmp_path / "j.duckdb")])
    err = capsys.readouterr()
    assert code != 0 and "only an offline server on this machine" in err.out + err.err
    for name in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "APCA_API_KEY_ID", "APCA_API_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    code = cli.main(["scan", "--live", "--journal", str(tmp_path / "j.duckdb")])
    err = capsys.readouterr()
    assert code != 0 and "--live needs Alpaca keys and none were found" in err.out + err.err


@pytest.mark.parametrize("sql", [f"SELECT count(*) FROM runs r WHERE {DRY_RUN_SQL}"])
def test_dry_run_sql_reads_runs_without_the_flag(tmp_path, sql):
    journal = Journal(tmp_path / "j.duckdb")
    journal.start_run("paper", "SPY", settings={"symbol": "SPY"})  # a run from before the flag
    journal.close()
    con = duckdb.connect(str(tmp_path / "j.duckdb"), read_only=True)
    assert con.execute(sql).fetchone()[0] == 0
    con.close()


def test_partial_exit_fills_all_count_in_the_trades_pnl_and_fills(tmp_path):
    # a thin book: at most 3 contracts fill per check, and each exit price rests only 0.5 s
    with OfflineAlpaca(start=TRADE_DAY, speed=0, seed=7, behaviour=BrokerBehaviour(partial_fill_max=3)) as srv:
        journal = Journal(tmp_path / "j.duckdb")
        sc, lines = scanner(srv, journal, settings=Settings.load(env={}, reprice_seconds=0.5),
                            exit_timeout_seconds=0.5)
        sc.run(8)
        assert not srv.broker.positions
        sells = [f for f in srv.broker.fills if f.side == "sell"]
        sell_ids = [o.client_order_id for o in srv.broker.orders.values() if o.side == "sell"]
    t = journal.query("SELECT * FROM trades").iloc[0]
    assert t["status"] == "closed" and t["exit_reason"] == "tp"
    assert len([i for i in sell_ids if "-x" in i]) >= 2  # the exit did take two orders
    fills = journal.query("SELECT side, qty, price FROM fills WHERE trade_id = ? AND side = 'sell'",
                          [int(t["trade_id"])])
    assert fills["qty"].sum() == t["contracts"] == sum(f.qty for f in sells)
    got = float((fills["qty"] * fills["price"]).sum())
    assert got == pytest.approx(sum(f.qty * f.price for f in sells))
    assert t["pnl_usd"] == pytest.approx((got - t["entry_premium"] * t["contracts"]) * 100.0)
    assert t["exit_premium"] == pytest.approx(got / t["contracts"])
    journal.close()


def test_a_bracket_leg_filling_while_cancelled_is_booked_not_sold_again(tmp_path):
    settings = Settings.load(env={}, instrument="shares")
    with OfflineAlpaca(start="2013-10-07 10:07:30", speed=0, seed=7, behaviour=BrokerBehaviour(async_cancels=True)) as srv:
        journal = Journal(tmp_path / "j.duckdb")
        sc, _ = offline_scanner(srv, journal, settings, iv_percentile=0.5)
        sc.start()
        srv.advance_to("2013-10-07 10:08:05")
        assert step_now(sc).row["trade_id"] is not None
        # a time exit just before the boundary where the TP leg fills (the 10:12 bar)
        now = srv.advance_to("2013-10-07 10:12:59.9")
        sc.clock.sync(now)
        closed = sc.positions.close(sc.positions.open[0], ExitDecision("time", sc.positions.price_now(), now, False))
        held = {k: p.qty for k, p in srv.broker.positions.items()}
        exits = [o for o in srv.broker.orders.values() if "-x" in o.client_order_id]
        legs = {o.type: o.status for o in srv.broker.orders.values() if o.parent is not None}
    assert not held and not exits  # flat, and no second sell that would have gone short
    assert closed and not sc.positions.open
    assert legs == {"limit": "filled", "stop": "canceled"}
    t = journal.query("SELECT exit_reason FROM trades").iloc[0]
    assert t["exit_reason"] == "tp"
    journal.close()


def test_after_its_last_scan_a_run_manages_the_open_position_to_its_exit(tmp_path):
    """One scan buys at 15:00; the run does not flatten it seconds later but rides it to its
    exit by the rules (here the TP on the 15:03 bar, as replay), printing as it goes."""
    with OfflineAlpaca(start="2013-10-08 14:59:30", speed=0, seed=7) as srv:
        journal = Journal(tmp_path / "j.duckdb")
        sc, lines = scanner(srv, journal)
        sc.run(1)
        held = dict(srv.broker.positions)
    assert sc.stats.entries == 1 and sc.stats.exits == {"tp": 1} and not held
    i = next(i for i, ln in enumerate(lines) if ln.startswith("Last scan done; managing 1 open position(s)"))
    assert any(ln.lstrip().startswith("[HOLD]") for ln in lines[i:])
    assert not any(ln.startswith("Flattening") for ln in lines)
    assert lines[-1].startswith("=== SUMMARY run 1 (completed) ===") and "exits: tp 1" in lines[-1]
    t = journal.query("SELECT exit_reason, exit_time FROM trades").iloc[0]
    assert t["exit_reason"] == "tp" and t["exit_time"] == pd.Timestamp("2013-10-08 15:04", tz=ET)
    journal.close()


def test_the_backstop_waits_until_the_entry_order_is_final(tmp_path):
    """A stop sell beside the entry's open buy limit is refused as a wash trade (403): while
    the entry is not final no backstop goes out; at the first check after, it does."""
    contract = "SPY131008C00160000"  # deep in the money: a $1 buy limit rests
    with OfflineAlpaca(start="2013-10-08 11:00:30", speed=0, seed=7) as srv:
        journal = Journal(tmp_path / "j.duckdb")
        sc, lines = scanner(srv, journal)
        sc.start()
        cid = "gr-SPY-201310081100-C"
        bought = sc.broker.submit_order(OrderSpec(contract, 2, "buy", "market", client_order_id=cid))
        rest = sc.broker.submit_order(OrderSpec(contract, 1, "buy", "limit", limit_price=1.0,
                                                client_order_id=cid + "-rest"))
        now = srv.now()
        pos = Position(trade_id=1, run_id=sc.run_id, symbol="SPY", instrument="options", contract_symbol=contract,
                       direction="call", qty=2, entry_time=now.floor("min"), entry_price=170.0, atr=0.1, tp=171.0,
                       sl=169.0, tp_mult=2, sl_mult=1, hold_until=now + pd.Timedelta(minutes=20),
                       hard_stop=now + pd.Timedelta(hours=4), entry_premium=bought.filled_avg_price, delta=0.9,
                       client_order_id=cid, entry_order_id=rest.id)
        sc.positions.open.append(pos)
        sc.positions.watch_broker()
        assert pos.backstop_id is None and pos.entry_order_id == rest.id  # not final: no stop yet
        sc.broker.cancel_order(rest.id)
        sc.positions.watch_broker()
        stops = [o for o in srv.broker.orders.values() if o.type == "stop"]
    assert pos.entry_order_id is None and len(stops) == 1 and stops[0].status == "new"
    assert pos.backstop_id == stops[0].id and stops[0].qty == 2
    assert not any("backstop stop not accepted" in ln for ln in lines)
    journal.close()


def test_an_intent_the_broker_never_received_is_void_and_does_not_block_the_decision(tmp_path):
    """Killed after journaling an entry intent but before sending it: the broker knows no
    such order, so the restart voids the intent and the decision is still free to trade."""
    with OfflineAlpaca(start="2013-10-08 14:59:30", speed=0, seed=7) as srv:
        journal = Journal(tmp_path / "j.duckdb")
        run_id = journal.start_run("offline", "SPY", settings={})
        cid = "gr-SPY-201310081500-C"
        journal.write_intent({"client_order_id": cid, "run_id": run_id, "trade_id": 1, "purpose": "entry",
                              "symbol": "SPY131008C00166000", "underlying": "SPY", "side": "buy", "qty": 10,
                              "detail": {"tp": 1.0}})
        journal.finish_run(run_id, "interrupted")
        sc, lines = scanner(srv, journal)
        sc.start()
        assert journal.query("SELECT state FROM order_intents")["state"].tolist() == ["void"]
        assert not sc.entries.already_entered(cid)
        srv.advance_to("2013-10-08 15:00:05")
        outcome = step_now(sc)
        assert outcome.row["trade_id"] is not None  # the 15:00 signal is traded once, now
        sc.finish("interrupted")
    intents = journal.query("SELECT client_order_id, purpose, state FROM order_intents")
    assert set(intents["purpose"]) == {"entry", "backstop", "exit"} and set(intents["state"]) == {"booked"}
    journal.close()
