"""The live scanner end to end: real alpaca-py clients over loopback against the offline
server on bundled real SPY sessions, the server's clock stepped by the scanner."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from gammaride.config import ET, Settings
from gammaride.journal import Journal
from gammaride.offline import BrokerBehaviour, OfflineAlpaca, SimAccount
from gammaride.replay.engine import IVChoice, replay
from tests.support import offline_broker, offline_scanner

IVP = 0.5  # the same fixed IV percentile on both sides (the server's IV is constant)

SCAN_LINE = re.compile(r"\[SCAN \d+\] \d\d:\d\d:\d\d - ")  # one per scan (heartbeats are extra)


def run_session(tmp_path, start, scans, settings=None, bars=None, faults=None, timeout=2.0, name="j",
                equity=100_000.0, option_stops=True, **kw):
    settings = settings or Settings.load(env={})
    with OfflineAlpaca(bars=bars, start=start, speed=0, faults=faults, seed=7, account=SimAccount(equity=equity), behaviour=BrokerBehaviour(option_stops=option_stops)) as srv:
        journal = Journal(tmp_path / f"{name}.duckdb")
        kw.setdefault("iv_percentile", IVP)
        sc, lines = offline_scanner(srv, journal, settings, offline_broker(srv, timeout=timeout), **kw)
        sc.run(scans)
        log = list(srv.request_log)
        server_orders = list(srv.broker.orders.values())
    return sc, journal, lines, log, server_orders


def redate(session: pd.DataFrame, day: str) -> pd.DataFrame:
    """A session moved to another date at the same wall-clock times (across DST)."""
    out = session.copy()
    naive = out.index.tz_localize(None)
    out.index = (naive - naive.normalize() + pd.Timestamp(day)).tz_localize(ET).rename("timestamp")
    return out


def both_touch(bars: pd.DataFrame, trade: pd.Series) -> bool:
    """Whether any held bar touched both the TP and the SL (the only allowed difference)."""
    held = bars[(bars.index >= trade["entry_time"]) & (bars.index < trade["entry_time"] + pd.Timedelta(minutes=20))]
    lo, hi = sorted((trade["tp"], trade["sl"]))
    return bool(((held["low"] <= lo) & (held["high"] >= hi)).any())


@pytest.fixture(scope="module")
def pm_session(tmp_path_factory, pm_afternoon):
    """The recorded 55-scan afternoon; its debug block is printed under each scan line, as
    extra indented lines, and changes no decision."""
    pm = pm_afternoon
    journal = pm.journal(tmp_path_factory.mktemp("pm"))
    yield pm.scanner, journal, pm.lines, pm.log, pm.server_orders
    journal.close()


def test_55_scans_print_55_lines_and_journal_55_scans(pm_session):
    sc, journal, lines, _, _ = pm_session
    scan_lines = [ln for ln in lines if SCAN_LINE.match(ln)]
    assert len(scan_lines) == 55
    beats = [ln for ln in lines if "✓ Still running..." in ln]
    assert [b.split("]")[0] for b in beats] == [f"[SCAN {n}" for n in (10, 20, 30, 40, 50)]
    assert scan_lines[0].startswith("[SCAN 1] 15:00:05 - Time: IN | Volume: ")
    assert re.match(r"\[SCAN 2\] 15:01:05 - Time: IN \| Volume: \d+\.\dx \| Direction: CALL \| ATR: \$\d+\.\d\d \| "
                    r"TP: \$\d+\.\d\d \| SL: \$\d+\.\d\d \| ✓ SUBMITTED$", scan_lines[1])
    assert lines[-1].startswith("=== SUMMARY")
    scans = journal.query("SELECT * FROM scans WHERE run_id = ? ORDER BY scan_no", [sc.run_id])
    assert list(scans["scan_no"]) == list(range(1, 56))
    assert scans["scanned_at"].notna().all() and (scans["iv_source"] == "constant").all()
    assert scans["iv"].between(0.19, 0.21).all()  # the ATM IV from the chain snapshot, recorded
    # each scan at the minute boundary + 5 s of the broker's clock: no drift
    assert [o.now.strftime("%H:%M:%S") for o in sc.outcomes][-1] == "15:54:05"
    assert max(abs(o.jitter_s) for o in sc.outcomes) < 1e-6
    assert journal.query("SELECT count(*) AS n FROM iv_observations")["n"].iloc[0] == 55


def test_live_trades_agree_with_replay_on_the_same_bars(pm_session, sample):
    sc, journal, _, _, _ = pm_session
    live = journal.query("SELECT * FROM trades WHERE run_id = ? ORDER BY entry_time", [sc.run_id])
    rep = replay(sample, Settings.load(env={}), iv=IVChoice("constant", IVP)).trades
    rep = rep[(rep["entry_time"] >= pd.Timestamp("2013-10-10 15:00", tz=ET))
              & (rep["entry_time"] <= pd.Timestamp("2013-10-10 15:54", tz=ET))].reset_index(drop=True)
    assert len(live) == len(rep) == 5
    assert list(live["entry_time"]) == list(rep["entry_time"])
    assert list(live["direction"]) == list(rep["direction"])
    np.testing.assert_allclose(live["entry_price"], rep["entry_price"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(live["atr"], rep["atr"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(live["tp"], rep["tp"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(live["sl"], rep["sl"], rtol=0, atol=1e-6)
    differ = [int(i) for i in np.flatnonzero(live["exit_reason"].to_numpy() != rep["exit_reason"].to_numpy())]
    allowed = [i for i in range(len(rep)) if both_touch(sample, rep.iloc[i])]
    assert set(differ) <= set(allowed), f"exit reasons differ at {differ}; both-touch bars only at {allowed}"
    assert list(live["exit_reason"]) == ["tp", "tp", "tp", "sl", "tp"]  # none differs on this day
    assert (live["status"] == "closed").all() and live["pnl_usd"].notna().all()
    # the live exit happens no earlier than replay's exit bar starts and within a bar after it ends
    exit_lag = (live["exit_time"] - rep["exit_time"]).dt.total_seconds()
    assert ((exit_lag > -60) & (exit_lag <= 60)).all()


def test_paths_recorded_for_20_minutes_past_the_exit_like_replay(pm_session, sample):
    sc, journal, _, _, _ = pm_session
    live = journal.query("SELECT * FROM trades WHERE run_id = ? ORDER BY entry_time", [sc.run_id])
    paths = journal.trade_paths(list(live["trade_id"]))
    first = live.iloc[0]
    p = paths[paths["trade_id"] == first["trade_id"]]
    assert list(p["minute"]) == list(range(1, 21))  # exited at minute 2, path kept to 20
    expect = sample[(sample.index >= first["entry_time"])].iloc[:20]
    np.testing.assert_allclose(p["close"], expect["close"])
    assert list(pd.DatetimeIndex(p["bar_time"]).tz_convert(ET)) == list(expect.index)


def test_contract_choice_0dte_flat_by_1525_and_next_expiry_after_1505(pm_session):
    sc, journal, _, _, _ = pm_session
    t = journal.query("SELECT * FROM trades WHERE run_id = ? ORDER BY entry_time", [sc.run_id])
    minute = t["entry_time"].dt.hour * 60 + t["entry_time"].dt.minute
    same_day = t["contract_symbol"].str.slice(3, 9) == "131010"
    assert list(same_day) == list(minute <= 15 * 60 + 5)
    assert (~same_day).sum() >= 2 and t.loc[~same_day, "contract_symbol"].str.slice(3, 9).eq("131011").all()
    assert (t.loc[same_day, "hard_stop_time"].dt.strftime("%H:%M") == "15:25").all()
    assert (t.loc[~same_day, "hard_stop_time"].dt.strftime("%H:%M") == "15:55").all()
    fills = journal.query(
        "SELECT f.*, o.purpose FROM fills f JOIN orders o USING (order_id) WHERE f.run_id = ?", [sc.run_id])
    exits = fills[(fills["purpose"] == "exit") & fills["symbol"].str.slice(3, 9).eq("131010")]
    assert len(exits) == same_day.sum()
    assert (exits["filled_at"].dt.tz_convert(ET) <= pd.Timestamp("2013-10-10 15:25", tz=ET)).all()


def test_orders_one_entry_per_signal_backstop_cancelled_before_exit(pm_session):
    sc, journal, _, log, server_orders = pm_session
    orders = journal.query("SELECT * FROM orders WHERE run_id = ? ORDER BY submitted_at", [sc.run_id])
    trades = journal.query("SELECT * FROM trades WHERE run_id = ?", [sc.run_id])
    entries = orders[orders["purpose"] == "entry"]
    assert sorted(entries["client_order_id"]) == sorted(trades["client_order_id"])
    assert (entries["status"] == "filled").all() and (entries["order_type"] == "limit").all()
    backstops = orders[orders["purpose"] == "backstop"]
    assert len(backstops) == len(trades) and (backstops["status"] == "canceled").all()
    assert (backstops["order_type"] == "stop").all()
    # at the server: exactly one entry order per signal's client id
    ids = [o.client_order_id for o in server_orders if re.fullmatch(r"gr-SPY-\d{12}-[CP]", o.client_order_id)]
    assert sorted(ids) == sorted(trades["client_order_id"])
    posts = [e for e in log if e["method"] == "POST" and e["path"] == "/v2/orders"]
    assert all(e["body"]["time_in_force"] == "day" for e in posts)
    assert all(float(e["body"]["qty"]) == int(float(e["body"]["qty"])) for e in posts)


def test_a_rejected_backstop_is_journaled_and_the_exit_stays_client_side(tmp_path):
    # before 2026-08 Alpaca refused single-leg option stop orders: rehearse that
    sc, journal, lines, log, _ = run_session(tmp_path, "2013-10-07 10:07:30", 8, option_stops=False)
    assert any(ln.startswith("  backstop stop not accepted (") and "watched client-side" in ln for ln in lines)
    orders = journal.query("SELECT purpose, status, order_type, message FROM orders ORDER BY submitted_at")
    backstop = orders[orders["purpose"] == "backstop"]
    assert len(backstop) == 1 and backstop["status"].iloc[0] == "rejected"
    assert "stop is not supported for options" in backstop["message"].iloc[0]
    trade = journal.query("SELECT * FROM trades").iloc[0]
    assert (trade.status, trade.exit_reason) == ("closed", "tp")  # exited by gammaride itself
    stops = [e for e in log if e["method"] == "POST" and e["path"] == "/v2/orders" and e["body"]["type"] == "stop"]
    assert len(stops) == 1 and stops[0]["status"] == 422


def test_market_closed_stale_and_outside_window_are_skips_not_errors(tmp_path):
    sc, journal, lines, _, _ = run_session(tmp_path, "2013-10-07 09:27:30", 10)
    scans = journal.query("SELECT scan_no, skip_reason, skip_code, in_window FROM scans ORDER BY scan_no")
    reasons = list(scans["skip_reason"])
    assert reasons[0].startswith("market closed") and reasons[1].startswith("market closed")
    assert reasons[2].startswith("stale data")  # 09:30:05: the newest bar is Friday's 15:59
    assert reasons[3] == "outside window"  # 09:31:05 decides on the 09:30 bar
    assert list(scans["skip_code"][:4]) == ["market", "market", "data", "window"]
    assert scans["skip_reason"].str.startswith("error").sum() == 0
    assert len([ln for ln in lines if SCAN_LINE.match(ln)]) == 10
    assert journal.query("SELECT count(*) AS n FROM errors")["n"].iloc[0] == 0


def test_dry_run_sends_no_orders_and_journals_paper_sim_ids(tmp_path):
    sc, journal, lines, log, _ = run_session(tmp_path, "2013-10-07 10:07:30", 8, dry_run=True)
    assert not [e for e in log if e["method"] == "POST" and e["path"] == "/v2/orders"]
    t = journal.query("SELECT * FROM trades")
    assert len(t) == 1 and t["exit_reason"].iloc[0] == "tp" and t["status"].iloc[0] == "closed"
    orders = journal.query("SELECT * FROM orders ORDER BY order_id")
    assert orders["order_id"].str.startswith("PAPER_SIM_").all() and list(orders["purpose"]) == ["entry", "exit"]
    assert any("✓ SUBMITTED (dry run)" in ln for ln in lines)


def test_hard_stop_exit_and_next_session_expiry(tmp_path, sample):
    settings = Settings.load(env={}, hard_stop="15:10")
    sc, journal, _, _, _ = run_session(tmp_path, "2013-10-10 15:06:30", 6, settings=settings)
    t = journal.query("SELECT * FROM trades")
    rep = replay(sample, settings, iv=IVChoice("constant", IVP)).trades
    rep = rep[rep["entry_time"] == pd.Timestamp("2013-10-10 15:07", tz=ET)]
    assert list(t["exit_reason"]) == list(rep["exit_reason"]) == ["hard_stop"]
    assert t["exit_time"].iloc[0] == pd.Timestamp("2013-10-10 15:10", tz=ET)
    assert t["contract_symbol"].iloc[0].startswith("SPY131011C")


def test_early_close_day_drops_the_pm_window_and_uses_a_1225_hard_stop(tmp_path, sample):
    # Real sessions re-dated onto Thanksgiving week 2013: Wed 11-27 (full), Fri 11-29 (closes 13:00).
    wed = redate(sample.loc["2013-10-10"], "2013-11-27")
    fri = redate(sample.loc["2013-10-11"], "2013-11-29")
    fri = fri[fri.index.hour * 60 + fri.index.minute < 13 * 60]
    bars = pd.concat([wed, fri])
    sc, journal, lines, _, _ = run_session(tmp_path, "2013-11-29 09:55:30", 10, bars=bars, name="am")
    t = journal.query("SELECT * FROM trades")
    assert len(t) == 1 and t["contract_symbol"].iloc[0].startswith("SPY131129C")
    assert t["hard_stop_time"].iloc[0] == pd.Timestamp("2013-11-29 12:25", tz=ET)
    assert t["exit_reason"].iloc[0] == "tp"
    journal.close()
    sc, journal, lines, _, _ = run_session(tmp_path, "2013-11-29 12:57:30", 5, bars=bars, name="close")
    reasons = list(journal.query("SELECT skip_reason FROM scans ORDER BY scan_no")["skip_reason"])
    # 12:58:05 and 12:59:05: no PM window on an early close; 13:00:05 on: closed
    assert reasons[:2] == ["outside window"] * 2
    assert all(r.startswith("market closed (opens 2013-12-02 09:30") for r in reasons[2:])


def test_shares_mode_uses_a_broker_bracket_and_journals_its_exit(tmp_path):
    settings = Settings.load(env={}, instrument="shares")
    sc, journal, lines, log, server_orders = run_session(tmp_path, "2013-10-07 10:07:30", 8, settings=settings)
    posts = [e["body"] for e in log if e["method"] == "POST" and e["path"] == "/v2/orders"]
    assert posts[0]["order_class"] == "bracket" and posts[0]["type"] == "market"
    assert float(posts[0]["take_profit"]["limit_price"]) > float(posts[0]["stop_loss"]["stop_price"])
    t = journal.query("SELECT * FROM trades")
    assert len(t) == 1 and t["status"].iloc[0] == "closed" and t["exit_reason"].iloc[0] == "tp"
    assert t["instrument"].iloc[0] == "shares"
    # the broker's TP leg closed it; gammaride sent no exit of its own (it would go short)
    assert len(posts) == 1
    fills = journal.query("SELECT * FROM fills ORDER BY filled_at")
    assert list(fills["side"]) == ["buy", "sell"] and fills["price"].iloc[1] == pytest.approx(t["tp"].iloc[0], abs=0.005)
    legs = {o.type: o.status for o in server_orders if o.parent is not None}
    assert legs == {"limit": "filled", "stop": "canceled"}


def test_shares_time_exit_cancels_the_bracket_legs_first(tmp_path):
    settings = Settings.load(env={}, instrument="shares", max_hold_minutes=2)
    sc, journal, lines, log, server_orders = run_session(tmp_path, "2013-10-07 10:07:30", 4, settings=settings)
    t = journal.query("SELECT * FROM trades")
    assert list(t["exit_reason"]) == ["time"] and t["exit_time"].iloc[0] == pd.Timestamp("2013-10-07 10:10", tz=ET)
    legs = [o.status for o in server_orders if o.parent is not None]
    assert legs == ["canceled", "canceled"]
    exits = [o for o in server_orders if o.client_order_id.endswith("-x1")]
    assert len(exits) == 1 and exits[0].status == "filled" and exits[0].side == "sell"


# A "timeout" answers after slow_seconds, past the client's timeout: the scanner waits out
# its own timeout (0.1 s) on each one, some 40 times a session, and the reply arrives after
# it gave up. An answer on time takes a few milliseconds, so 0.1 s times out only the faults.
FAULTS_20 = "429=0.04,500=0.04,503=0.03,timeout=0.03,malformed=0.03,drop=0.03,slow_seconds=0.2"


def test_20_percent_faults_every_scan_completes_and_no_signal_buys_twice(tmp_path):
    sc, journal, lines, log, server_orders = run_session(
        tmp_path, "2013-10-10 14:59:30", 55, faults=FAULTS_20, timeout=0.1)
    faults = {e["fault"] for e in log if e["fault"]}
    assert faults == {"429", "500", "503", "timeout", "malformed", "drop"}
    assert sum(1 for e in log if e["fault"]) / len(log) > 0.12
    assert len([ln for ln in lines if SCAN_LINE.match(ln)]) == 55
    scans = journal.query("SELECT scan_no, skip_reason FROM scans ORDER BY scan_no")
    assert list(scans["scan_no"]) == list(range(1, 56))
    errors = journal.query("SELECT * FROM errors")
    assert len(errors) > 0 and errors["message"].str.contains("failed").all()
    failed = scans[scans["skip_reason"].fillna("").str.startswith("error")]
    assert set(failed["scan_no"]) <= set(errors["scan_no"].dropna().astype(int))
    # no second order for any signal: one entry order per decision minute at the server
    entries = [o for o in server_orders if re.fullmatch(r"gr-SPY-\d{12}-[CP]", o.client_order_id)]
    minutes = [o.client_order_id[7:19] for o in entries]
    assert len(minutes) == len(set(minutes))
    trades = journal.query("SELECT * FROM trades")
    filled = [o for o in entries if o.status == "filled"]
    assert sorted(o.client_order_id for o in filled) == sorted(trades["client_order_id"])
    assert (trades["status"] == "closed").all()
    assert sc.stats.errors >= len(errors)


def test_iv_percentile_from_the_proxy_until_20_sessions_then_from_history(tmp_path, sample):
    from gammaride.connection import _bundled_daily

    sc, journal, _, _, _ = run_session(tmp_path, "2013-10-07 10:06:30", 2, iv_percentile=None,
                                       daily_fallback=_bundled_daily, name="proxy")
    scans = journal.query("SELECT * FROM scans ORDER BY scan_no")
    expected, _ = IVChoice("proxy").for_bars(sample, "SPY")
    want = expected[sample.index.get_loc(pd.Timestamp("2013-10-07 10:06", tz=ET))]
    assert (scans["iv_source"] == "rv_proxy").all()
    np.testing.assert_allclose(scans["iv_percentile"], want)
    # an offline run's IV is the server's constant: recorded, but never as live history
    ivs = journal.query("SELECT source FROM iv_observations")["source"]
    assert len(ivs) == 2 and (ivs == "offline").all()
    assert journal.iv_history("SPY").empty
    journal.close()

    journal = Journal(tmp_path / "history.duckdb")
    days = pd.bdate_range("2013-09-09", periods=20)
    with journal.transaction():
        for k, day in enumerate(days):
            journal.record_iv(pd.Timestamp(f"{day.date()} 15:00", tz=ET), "SPY", 0.10 + 0.01 * k, "snapshot",
                              f"SPY{day:%y%m%d}C00168000", day, 168.0, "0dte")
    journal.close()
    sc, journal, _, _, _ = run_session(tmp_path, "2013-10-07 10:06:30", 2, iv_percentile=None,
                                       daily_fallback=_bundled_daily, name="history")
    scans = journal.query("SELECT * FROM scans ORDER BY scan_no")
    assert (scans["iv_source"] == "iv_history").all()
    # today's ATM IV is 0.20: at or above 11 of the 20 recorded sessions (0.10 .. 0.29)
    np.testing.assert_allclose(scans["iv_percentile"], 11 / 20)
    journal.close()


def test_daily_loss_limit_is_a_journaled_kill_switch(tmp_path):
    settings = Settings.load(env={}, daily_loss_limit=0.003)  # $30 of a $10,000 account
    sc, journal, lines, _, _ = run_session(tmp_path, "2013-10-10 15:12:30", 22, settings=settings, equity=10_000.0)
    t = journal.query("SELECT * FROM trades")
    assert len(t) == 1 and t["exit_reason"].iloc[0] == "sl" and t["pnl_usd"].iloc[0] < -30
    assert any(ln.startswith("  [KILL SWITCH]") for ln in lines)
    assert journal.query("SELECT count(*) AS n FROM errors WHERE context = 'kill switch'")["n"].iloc[0] == 1
    blocked = journal.query("SELECT * FROM scans WHERE signal AND trade_id IS NULL")
    assert len(blocked) >= 1 and blocked["skip_reason"].str.startswith("daily loss limit hit").all()
    assert (blocked["skip_code"] == "risk").all()


def test_0dte_entered_at_1505_rides_to_1525_and_is_flat_then(tmp_path, sample):
    # wide TP/SL so only the clock can end the trade: the last 0DTE entry of the day
    settings = Settings.load(env={}, tp_mult=9.0, sl_mult=9.0)
    sc, journal, lines, _, server_orders = run_session(tmp_path, "2013-10-10 15:04:30", 22, settings=settings)
    t = journal.query("SELECT * FROM trades ORDER BY entry_time").iloc[0]
    assert t["entry_time"] == pd.Timestamp("2013-10-10 15:05", tz=ET)
    assert t["contract_symbol"].startswith("SPY131010")  # 0DTE: 15:05 still leaves 20 + 5 minutes
    assert t["hard_stop_time"] == pd.Timestamp("2013-10-10 15:25", tz=ET)
    assert t["exit_reason"] == "time" and t["exit_time"] == pd.Timestamp("2013-10-10 15:25", tz=ET)
    sells = [o for o in server_orders if o.client_order_id == t["client_order_id"] + "-x1"]
    assert len(sells) == 1 and sells[0].status == "filled"  # before the 15:30 cut-off: accepted
    fill = journal.query("SELECT filled_at FROM fills WHERE order_id = ?", [sells[0].id])["filled_at"].iloc[0]
    # woken at the limit + 1 s, when the bar ending 15:25 is complete
    assert pd.Timestamp(fill).tz_convert(ET) <= pd.Timestamp("2013-10-10 15:25:02", tz=ET)
    assert t["exit_price"] == sample.loc[pd.Timestamp("2013-10-10 15:24", tz=ET), "close"]
