"""The position manager alone: built from its own dependencies against the offline
server, with no Scanner, it protects, exits and books a position, and a restart's
reconcile adopts one into it."""

from __future__ import annotations

import pandas as pd

from gammaride.config import ET, Settings
from gammaride.journal import Journal
from gammaride.keys import Keys
from gammaride.offline import OfflineAlpaca
from gammaride.scanner.broker import AlpacaBroker, OrderSpec
from gammaride.scanner.clock import SteppedClock
from gammaride.scanner.market import MarketData
from gammaride.scanner.orders import OrderDesk
from gammaride.scanner.positions import MINUTE, Position, PositionManager
from gammaride.scanner.reconcile import reconcile
from gammaride.scanner.record import RunRecord

CONTRACT = "SPY131008C00166000"
CID = "gr-SPY-201310081500-C"


def manager(srv: OfflineAlpaca, journal: Journal, booked: list[float], lines: list[str]) -> PositionManager:
    settings = Settings.load(env={})
    broker = AlpacaBroker(Keys(srv.key_id, srv.secret_key), url=srv.url, timeout=2.0, retry_wait=0.01)
    clock = SteppedClock(srv.advance_to)
    record = RunRecord(journal, out=lines.append)
    record.run_id = journal.start_run("offline", "SPY", instrument="options", settings=settings.as_dict())
    market = MarketData(broker, settings, journal.iv_history)
    return PositionManager(broker, record, OrderDesk(broker, clock, record), settings, clock, market,
                           mode="offline", out=lines.append, on_exit=booked.append)


def bought(pm: PositionManager, qty: int = 2) -> Position:
    """A call bought at the broker under a gammaride client id, journaled as an open trade."""
    now = pm.broker.clock().timestamp
    pm.clock.sync(now)
    order = pm.broker.submit_order(OrderSpec(CONTRACT, qty, "buy", "market", client_order_id=CID))
    decided = now.floor("min")
    pos = Position(trade_id=1, run_id=pm.record.run_id, symbol="SPY", instrument="options", contract_symbol=CONTRACT,
                   direction="call", qty=qty, entry_time=decided, entry_price=165.97, atr=0.1, tp=166.12, sl=165.82,
                   tp_mult=1.5, sl_mult=1.5, hold_until=decided + 20 * MINUTE,
                   hard_stop=pd.Timestamp("2013-10-08 15:45", tz=ET), entry_premium=order.filled_avg_price,
                   delta=0.5, client_order_id=CID, entry_bid=order.filled_avg_price - 0.02)
    pm.journal.write_trade({"trade_id": 1, "run_id": pm.record.run_id, "symbol": "SPY", "instrument": "options",
                            "contract_symbol": CONTRACT, "direction": "call", "status": "open",
                            "entry_time": decided, "entry_price": pos.entry_price, "hard_stop_time": pos.hard_stop,
                            "atr": pos.atr, "tp": pos.tp, "sl": pos.sl, "tp_mult": 1.5, "sl_mult": 1.5,
                            "contracts": qty, "entry_premium": pos.entry_premium, "client_order_id": CID})
    return pos


def holding(srv: OfflineAlpaca, journal: Journal, booked: list[float], lines: list[str]):
    """A manager that holds the bought call."""
    pm = manager(srv, journal, booked, lines)
    pos = bought(pm)
    pm.open.append(pos)
    return pm, pos


def test_a_position_manager_alone_protects_exits_at_the_tp_and_books_the_trade(tmp_path):
    booked: list[float] = []
    lines: list[str] = []
    with OfflineAlpaca(start="2013-10-08 15:00:05", speed=0, seed=7) as srv, Journal(tmp_path / "j.duckdb") as j:
        pm, pos = holding(srv, j, booked, lines)
        pm.place_backstop(pos)
        stop = srv.broker.orders[pos.backstop_id]
        assert stop.type == "stop" and stop.client_order_id == CID + "-bs" and stop.qty == 2
        # the 15:03 bar reaches the TP: the scan at 15:04 sells, with the backstop cancelled first
        now = srv.advance_to("2013-10-08 15:04:05")
        pm.clock.sync(now)
        pm.manage(pm.market.fetch_bars(now), now)
        assert not pm.open and pm.tracking == [pos] and not srv.broker.positions
        assert stop.status == "canceled"
        paths = pm.take_paths()
        assert list(paths["minute"]) == [1, 2, 3, 4] and pm.take_paths() is None
        t = j.query("SELECT * FROM trades").iloc[0]
        sells = [f for f in srv.broker.fills if f.side == "sell"]
    assert t["status"] == "closed" and t["exit_reason"] == "tp"
    assert t["exit_time"] == pd.Timestamp("2013-10-08 15:04", tz=ET)
    assert t["exit_premium"] == sells[0].price and t["pnl_usd"] == booked[0]
    assert booked[0] == (sells[0].price - pos.entry_premium) * 2 * 100.0
    assert pm.stats.exits == {"tp": 1} and any("[EXIT] trade 1" in ln and "TP" in ln for ln in lines)


def test_a_position_sold_outside_gammaride_is_booked_manual_after_the_grace(tmp_path):
    """Sold by hand at 14:00 (not the expiry's last hour, when a sell not ours is the
    broker's liquidation): no order or activity explains it, so after the grace 'manual'."""
    booked: list[float] = []
    lines: list[str] = []
    with OfflineAlpaca(start="2013-10-08 14:00:05", speed=0, seed=7) as srv, Journal(tmp_path / "j.duckdb") as j:
        pm, pos = holding(srv, j, booked, lines)
        pm.broker.submit_order(OrderSpec(CONTRACT, 2, "sell", "market", client_order_id="by-hand"))
        pm.watch_broker()  # gone, nothing explains it yet: still managed for a while
        assert pm.open == [pos] and pos.missing_since is not None
        pm.clock.sync(srv.advance(61))
        pm.watch_broker()
        assert not pm.open and not booked
        t = j.query("SELECT status, exit_reason, pnl_usd FROM trades").iloc[0]
    assert t["status"] == "closed" and t["exit_reason"] == "manual" and pd.isna(t["pnl_usd"])
    assert any("booked as closed outside gammaride (manual)" in ln for ln in lines)


def test_reconcile_adopts_an_open_gammaride_position_into_a_manager_and_protects_it(tmp_path):
    lines: list[str] = []
    with OfflineAlpaca(start="2013-10-08 15:00:05", speed=0, seed=7) as srv, Journal(tmp_path / "j.duckdb") as j:
        first = manager(srv, j, [], [])
        bought(first)  # a run that stopped with the position open and no backstop
        j.finish_run(first.record.run_id, "interrupted")
        pm = manager(srv, j, [], lines)
        reconcile(pm)
        stops = [o for o in srv.broker.orders.values() if o.type == "stop"]
    assert pm.stats.adopted == 1 and [p.trade_id for p in pm.open] == [1]
    assert pm.open[0].adopted and pm.open[0].qty == 2
    assert len(stops) == 1 and pm.open[0].backstop_id == stops[0].id and stops[0].client_order_id == CID + "-bs"
    assert any(ln.startswith(f"Adopted open position {CONTRACT} x2 (trade 1") for ln in lines)
