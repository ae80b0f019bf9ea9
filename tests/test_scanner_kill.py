"""SIGKILL with a position open: a restarted scanner adopts it and exits it by the rules."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from gammaride.config import ET
from gammaride.journal import Journal
from gammaride.offline import DataPlan, OfflineAlpaca
from gammaride.scanner.loop import Scanner
from tests.support import offline_scanner


def _start_scan(srv: OfflineAlpaca, journal: Path) -> subprocess.Popen:
    """``gammaride scan`` in a child process against ``srv`` (stepped clock, 30 scans)."""
    env = {**os.environ, "ALPACA_API_KEY": srv.key_id, "ALPACA_SECRET_KEY": srv.secret_key}
    cmd = [sys.executable, "-m", "gammaride", "scan", "--url", srv.url, "--speed", "0", "--scans", "30",
           "--journal", str(journal), "--iv-percentile", "0.5"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def _after_backstop(srv: OfflineAlpaca) -> bool:
    """A request came after the backstop order's: the scanner journaled the trade between."""
    log = list(srv.request_log)
    at = [i for i, e in enumerate(log) if e["method"] == "POST" and e["path"] == "/v2/orders"
          and str((e.get("body") or {}).get("client_order_id", "")).endswith("-bs")]
    return bool(at) and len(log) > at[0] + 1


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_with_an_open_position_then_restart_adopts_and_exits(tmp_path):
    path = tmp_path / "j.duckdb"
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0) as srv:
        proc = _start_scan(srv, path)
        deadline = time.time() + 60
        # the trade is committed right after its backstop goes out: kill at the next request
        while time.time() < deadline and proc.poll() is None:
            if _after_backstop(srv):
                break
            time.sleep(0.001)
        assert proc.poll() is None, proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        killed_at = srv.now()
        held = {s: p.qty for s, p in srv.broker.positions.items()}
        assert list(held) == ["SPY131007C00168000"]

        printed = [int(m) for m in re.findall(r"^\[SCAN (\d+)\]", out, flags=re.M)]
        journal = Journal(path)
        first = journal.query("SELECT scan_no FROM scans WHERE run_id = 1 ORDER BY scan_no")
        assert printed and set(printed) <= set(first["scan_no"])  # nothing printed was lost
        assert journal.query("SELECT status FROM runs WHERE run_id = 1")["status"].iloc[0] == "running"

        sc, lines = _restarted_scanner(srv, journal)
        sc.run(8)
        assert any(ln.startswith("Adopted open position SPY131007C00168000") for ln in lines), lines
        assert sc.stats.adopted == 1
        trade = journal.query("SELECT * FROM trades")
        assert len(trade) == 1
        t = trade.iloc[0]
        assert t["run_id"] == 1 and t["status"] == "closed"
        assert t["entry_time"] == pd.Timestamp("2013-10-07 10:08", tz=ET)
        assert t["exit_reason"] == "tp"  # replay: the 10:08 call exits TP on the 10:12 bar
        assert t["exit_time"] > killed_at - pd.Timedelta(minutes=1)
        assert not srv.broker.positions  # flat
        bs = [o for o in srv.broker.orders.values() if o.client_order_id.endswith("-bs")]
        assert [o.status for o in bs] == ["canceled"]
        paths = journal.trade_paths([int(t["trade_id"])])
        assert list(paths["minute"]) == list(range(1, len(paths) + 1)) and len(paths) >= 5
        journal.close()


@pytest.mark.parametrize("how", ["backstop", "manual"])
def test_a_trade_closed_at_the_broker_while_no_scanner_ran_is_booked_on_restart(tmp_path, how):
    path = tmp_path / "j.duckdb"
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0) as srv:
        journal = Journal(path)
        sc, _ = offline_scanner(srv, journal, iv_percentile=0.5, flatten_at_end=False)
        broker = sc.broker
        sc.run(3)  # enters at 10:08; the run ends with the position open and its backstop resting
        assert len(srv.broker.positions) == 1
        bs = [o for o in srv.broker.orders.values() if o.client_order_id.endswith("-bs")][0]
        if how == "manual":
            broker.cancel_order(bs.id)
            srv.broker.close_position(next(iter(srv.broker.positions)), None, srv.clock.now_ns())
        srv.advance_to("2013-10-07 15:50")  # by then the resting stop has triggered
        assert not srv.broker.positions
        restarted, lines = offline_scanner(srv, journal, broker=broker, iv_percentile=0.5)
        restarted.start()
        t = journal.query("SELECT * FROM trades").iloc[0]
        assert t["status"] == "closed"
        if how == "manual":
            assert t["exit_reason"] == "manual" and any("closed outside gammaride" in ln for ln in lines)
        else:
            assert t["exit_reason"] == "sl" and t["exit_premium"] == pytest.approx(bs.filled_avg_price)
            assert t["pnl_usd"] < 0 and any("closed by its backstop stop" in ln for ln in lines)
        journal.close()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery is POSIX")
def test_ctrl_c_prints_a_summary_and_flattens_what_the_run_opened(tmp_path):
    path = tmp_path / "j.duckdb"
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0) as srv:
        proc = _start_scan(srv, path)
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if any(o.client_order_id.endswith("-bs") for o in list(srv.broker.orders.values())):
                break
            time.sleep(0.001)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "Interrupted (Ctrl-C)." in out and "Flattening 1 open position(s)" in out
        assert re.search(r"^=== SUMMARY run 1 \(interrupted\) === .*entries 1 .*exits: manual 1", out, re.M)
        assert not srv.broker.positions
    with Journal(path, read_only=True) as journal:
        assert journal.query("SELECT status FROM runs")["status"].iloc[0] == "interrupted"
        t = journal.query("SELECT * FROM trades").iloc[0]
        assert t["status"] == "closed" and t["exit_reason"] == "manual" and pd.notna(t["exit_premium"])


def _hold_the_reply(srv: OfflineAlpaca, wanted: str) -> tuple[threading.Event, threading.Event]:
    """The server takes (and fills) the first order whose client id matches ``wanted``,
    then holds its reply until released: a kill meanwhile lands exactly between the
    broker taking the order and the scanner hearing of it."""
    taken, release = threading.Event(), threading.Event()
    real = srv.broker.submit

    def submit(body, now_ns):
        order = real(body, now_ns)
        if not taken.is_set() and re.fullmatch(wanted, str((body or {}).get("client_order_id", ""))):
            taken.set()
            release.wait(60)
        return order

    srv.broker.submit = submit
    return taken, release


def _kill_at_order(srv: OfflineAlpaca, journal: Path, wanted: str) -> None:
    """Run a scan in a child process and SIGKILL it once the broker has taken (and
    filled) the first order whose client id matches ``wanted``, before its reply."""
    taken, release = _hold_the_reply(srv, wanted)
    proc = _start_scan(srv, journal)
    assert taken.wait(60), proc.stderr.read() if proc.poll() is not None else "no such order sent"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    release.set()


def _restarted_scanner(srv, journal: Journal) -> tuple[Scanner, list[str]]:
    """The scanner a restart builds on the same journal and server, and what it prints."""
    return offline_scanner(srv, journal, iv_percentile=0.5)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_kill_right_after_the_entry_order_is_booked_from_the_brokers_fill_on_restart(tmp_path):
    path = tmp_path / "j.duckdb"
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0) as srv:
        _kill_at_order(srv, path, r"gr-SPY-\d{12}-[CP]")
        entry = next(o for o in srv.broker.orders.values() if o.client_order_id == "gr-SPY-201310071008-C")
        assert entry.status == "filled" and list(srv.broker.positions) == ["SPY131007C00168000"]
        with Journal(path) as journal:  # the order is known although its trade never was
            assert journal.query("SELECT count(*) AS n FROM trades")["n"].iloc[0] == 0
            intent = journal.query("SELECT * FROM order_intents").iloc[0]
            assert intent["client_order_id"] == entry.client_order_id and intent["purpose"] == "entry"

            sc, lines = _restarted_scanner(srv, journal)
            sc.run(3)
            assert any(ln.startswith(f"Booked entry {entry.client_order_id} from the broker's record") for ln in lines)
            assert sc.stats.adopted == 1
            t = journal.query("SELECT * FROM trades WHERE client_order_id = ?", [entry.client_order_id])
            assert len(t) == 1
            t = t.iloc[0]
            assert t["entry_premium"] == pytest.approx(entry.filled_avg_price) and t["contracts"] == entry.filled_qty
            assert t["status"] == "closed" and t["exit_reason"] == "tp"  # as replay: TP on the 10:12 bar
            fills = journal.query("SELECT price, qty FROM fills WHERE order_id = ?", [entry.id])
            assert fills.to_dict("records") == [{"price": entry.filled_avg_price, "qty": entry.filled_qty}]
            state = journal.query("SELECT state FROM order_intents WHERE client_order_id = ?", [entry.client_order_id])
            assert state["state"].iloc[0] == "booked"
        buys = [o for o in srv.broker.orders.values() if o.side == "buy" and o.symbol == entry.symbol]
        assert buys == [entry]  # no second position beside the first
        assert not srv.broker.positions


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_kill_right_after_the_exit_order_books_the_real_exit_on_restart(tmp_path):
    path = tmp_path / "j.duckdb"
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0) as srv:
        _kill_at_order(srv, path, r"gr-SPY-\d{12}-[CP]-x1")
        cid = "gr-SPY-201310071008-C"
        entry = srv.broker.by_client_id[cid]
        exit_ = srv.broker.by_client_id[cid + "-x1"]
        assert exit_.status == "filled" and not srv.broker.positions  # flat at the broker
        with Journal(path) as journal:
            t = journal.query("SELECT status FROM trades").iloc[0]
            assert t["status"] == "open"  # the kill came before the exit was booked
            sc, lines = _restarted_scanner(srv, journal)
            sc.start()
            t = journal.query("SELECT * FROM trades").iloc[0]
            assert t["status"] == "closed" and t["exit_reason"] == "tp"  # the exit's own reason, not 'manual'
            assert t["exit_premium"] == pytest.approx(exit_.filled_avg_price)
            assert t["pnl_usd"] == pytest.approx((exit_.filled_avg_price - entry.filled_avg_price) * entry.filled_qty * 100)
            assert t["exit_time"] == pd.Timestamp(exit_.filled_ns, tz="UTC").tz_convert(ET)
            assert any(f"closed by its exit order {cid}-x1" in ln for ln in lines)
            assert sc.stats.adopted == 0 and not sc.positions.open
            assert sc.entries.already_entered(cid)  # the decision was ordered: never entered again
        assert [o.client_order_id for o in srv.broker.orders.values() if o.side == "buy"] == [cid]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_kill_right_after_a_reprice_fill_is_booked_from_its_intent_on_restart(tmp_path):
    """Indicative asks under the market: the entry's first limit rests unfilled and is
    cancelled, its reprice (``-r1``) fills, and the run dies before it hears so. The
    restart books the trade from the reprice's intent, at the broker's price and
    quantity, and manages it to its exit; the unfilled first order is void."""
    path = tmp_path / "j.duckdb"
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0, data=DataPlan(indicative_skew=0.03)) as srv:
        _kill_at_order(srv, path, r"gr-SPY-\d{12}-[CP]-r1")
        cid = "gr-SPY-201310071008-C"
        first, reprice = srv.broker.by_client_id[cid], srv.broker.by_client_id[cid + "-r1"]
        assert first.filled_qty == 0 and reprice.status == "filled"
        assert {s: p.qty for s, p in srv.broker.positions.items()} == {reprice.symbol: reprice.filled_qty}
        with Journal(path) as journal:
            assert journal.query("SELECT count(*) AS n FROM trades")["n"].iloc[0] == 0
            intents = journal.query("SELECT client_order_id, purpose FROM order_intents ORDER BY created_at")
            assert intents.values.tolist() == [[cid, "entry"], [cid + "-r1", "entry_reprice"]]

            sc, lines = _restarted_scanner(srv, journal)
            sc.run(3)
            assert any(ln.startswith(f"Booked entry {cid} from the broker's record: {reprice.symbol} "
                                     f"x{reprice.filled_qty:g} at ${reprice.filled_avg_price:.2f}") for ln in lines)
            assert not any("which this journal does not know" in ln for ln in lines)
            assert sc.stats.adopted == 1
            t = journal.query("SELECT * FROM trades WHERE client_order_id = ?", [cid]).iloc[0]
            assert t["contracts"] == reprice.filled_qty and t["entry_premium"] == pytest.approx(reprice.filled_avg_price)
            assert t["status"] == "closed" and t["exit_reason"] == "tp"  # as replay: TP on the 10:12 bar
            fills = journal.query("SELECT order_id, price, qty FROM fills WHERE side = 'buy'")
            assert fills.to_dict("records") == [{"order_id": reprice.id, "price": reprice.filled_avg_price,
                                                 "qty": reprice.filled_qty}]
            states = journal.query("SELECT client_order_id, state FROM order_intents WHERE purpose LIKE 'entry%' "
                                   "ORDER BY created_at")
            assert states.values.tolist() == [[cid, "void"], [cid + "-r1", "booked"]]
        buys = [o.client_order_id for o in srv.broker.orders.values() if o.side == "buy"]
        assert buys == [cid, cid + "-r1"]  # nothing bought again
        assert not srv.broker.positions
