"""Positions the broker closes itself: its liquidation before expiry, the exercise of an
ITM contract after the close (physical settlement into shares), expiry; and the broker
rules the scanner must respect (wash-trade protection). Real alpaca-py clients over
loopback against the offline server, real DuckDB journals."""

from __future__ import annotations

import pandas as pd
import pytest

from gammaride.config import ET, Settings
from gammaride.errors import BrokerRejectedError
from gammaride.journal import Journal
from gammaride.offline import BrokerBehaviour, OfflineAlpaca
from gammaride.scanner.broker import AlpacaBroker, OrderSpec
from gammaride.scanner.loop import Scanner
from gammaride.scanner.orders import client_order_id
from tests.support import offline_broker, offline_scanner

# a quiet settings set: no new signal can enter beside the position under test
QUIET = {"vol_threshold": 20.0}


def _broker(srv: OfflineAlpaca) -> AlpacaBroker:
    return offline_broker(srv)


def open_trade(srv: OfflineAlpaca, journal: Journal, at: str, contract: str, hard_stop: str) -> dict:
    """A trade gammaride opened at ``at`` (its order at the broker with gammaride's client id,
    its open row in the journal) and then stopped watching: a restarted scanner adopts it."""
    srv.advance_to(at)
    broker = _broker(srv)
    decision = pd.Timestamp(at, tz=ET).floor("min")
    cid = client_order_id("SPY", decision, "call")
    order = broker.submit_order(OrderSpec(contract, 1, "buy", "market", client_order_id=cid))
    assert order.is_filled
    spot = broker.latest_trade("SPY").price
    run_id = journal.start_run("offline", "SPY", instrument="options", settings={})
    trade = {"trade_id": journal.next_trade_id(), "run_id": run_id, "symbol": "SPY", "instrument": "options",
             "contract_symbol": contract, "direction": "call", "status": "open", "entry_time": decision,
             "entry_price": spot, "hard_stop_time": pd.Timestamp(hard_stop, tz=ET), "atr": 0.1,
             "tp": spot + 50, "sl": spot - 50, "tp_mult": 2.0, "sl_mult": 1.0, "phase": 1,
             "contracts": 1, "entry_premium": order.filled_avg_price, "client_order_id": cid}
    with journal.transaction():
        journal.write_trade(trade)
    journal.finish_run(run_id, "interrupted")
    return trade


def scanner(srv: OfflineAlpaca, journal: Journal, **kw) -> tuple[Scanner, list[str]]:
    return offline_scanner(srv, journal, Settings.load(env={}, **QUIET), iv_percentile=0.5, **kw)


def test_a_liquidation_at_1545_during_a_hold_is_booked_at_the_brokers_price(tmp_path):
    """The trade's own hard stop (15:55, from a user's later cut-off setting) is after the
    broker's 15:45 liquidation of expiring SPY options: the broker's rule wins."""
    contract = "SPY131008C00166000"
    with OfflineAlpaca(start="2013-10-08 15:28:00", speed=0, seed=7) as srv:
        journal = Journal(tmp_path / "j.duckdb")
        trade = open_trade(srv, journal, "2013-10-08 15:29:10", contract, hard_stop="2013-10-08 15:55")
        sc, lines = scanner(srv, journal)
        sc.run(18)  # scans 15:30 ... 15:47
        liq = [o for o in srv.broker.orders.values() if o.client_order_id.startswith("liquidation-")]
        ours_after = [o for o in srv.broker.orders.values() if o.client_order_id.startswith("gr-")
                      and o.created_ns >= pd.Timestamp("2013-10-08 15:45", tz=ET).value]
        held = dict(srv.broker.positions)
    assert sc.stats.adopted == 1 and not held
    assert len(liq) == 1 and liq[0].status == "filled"
    assert pd.Timestamp(liq[0].filled_ns, tz="UTC").tz_convert(ET) == pd.Timestamp("2013-10-08 15:45", tz=ET)
    assert ours_after == []  # no exit order was sent for a position the broker had closed
    t = journal.query("SELECT * FROM trades").iloc[0]
    assert t["status"] == "closed" and t["exit_reason"] == "broker_liquidation"
    assert t["exit_premium"] == pytest.approx(liq[0].filled_avg_price)
    assert t["exit_time"] == pd.Timestamp("2013-10-08 15:45", tz=ET)
    assert t["pnl_usd"] == pytest.approx((liq[0].filled_avg_price - trade["entry_premium"]) * 100)
    assert any("the broker liquidated SPY131008C00166000" in ln for ln in lines)
    events = journal.query("SELECT activity_type, symbol, trade_id FROM broker_events")
    assert events.to_dict("records") == [{"activity_type": "liquidation", "symbol": contract,
                                          "trade_id": trade["trade_id"]}]
    journal.close()


def test_an_itm_contract_held_through_the_close_is_exercised_and_its_shares_reported_not_adopted(tmp_path):
    contract = "SPY131008C00164000"  # SPY closed at 165.48: $1.48 in the money
    with OfflineAlpaca(start="2013-10-08 15:18:00", speed=0, seed=7, behaviour=BrokerBehaviour(liquidation=False)) as srv:
        journal = Journal(tmp_path / "j.duckdb")
        trade = open_trade(srv, journal, "2013-10-08 15:20:10", contract, hard_stop="2013-10-08 15:25")
        srv.advance_to("2013-10-09 09:35")  # nothing watched it: held through the close
        held = {s: (p.qty, p.avg_entry_price) for s, p in srv.broker.positions.items()}
        assert held == {"SPY": (100.0, 164.0)}  # physical settlement: 100 shares at the strike
        sc, lines = scanner(srv, journal)
        sc.start()
        acts = sc.broker.account_activities(("OPEXC", "OPTRD"))
    assert [(a["activity_type"], a["symbol"], a["qty"]) for a in acts] == [
        ("OPEXC", contract, "-1"), ("OPTRD", "SPY", "100")]
    assert acts[1]["price"] == "164" and acts[1]["net_amount"] == "-16400" and acts[0]["date"] == "2013-10-08"
    assert sc.stats.adopted == 0 and not sc.positions.open  # the shares are not gammaride's trade
    t = journal.query("SELECT * FROM trades").iloc[0]
    assert t["status"] == "closed" and t["exit_reason"] == "exercised"
    assert t["exit_price"] == pytest.approx(165.48) and t["exit_premium"] == pytest.approx(1.48)
    assert t["pnl_usd"] == pytest.approx((1.48 - trade["entry_premium"]) * 100)
    assert t["exit_time"] == pd.Timestamp("2013-10-08 16:00", tz=ET)
    loud = [ln for ln in lines if ln.lstrip().startswith("✗ [BROKER]")]
    assert any("+100 shares of SPY" in ln and "close them yourself" in ln for ln in loud)
    assert any("was exercised into +100 shares of SPY at $164.00" in ln for ln in loud)
    errors = journal.query("SELECT context, message FROM errors")
    assert "shares from exercise" in set(errors["context"])
    events = journal.query("SELECT activity_type, symbol, qty FROM broker_events ORDER BY activity_type")
    assert set(events["activity_type"]) == {"OPEXC", "shares"}
    journal.close()


def test_an_otm_contract_held_through_the_close_expires_and_is_booked_expired(tmp_path):
    contract = "SPY131008C00168000"
    with OfflineAlpaca(start="2013-10-08 15:18:00", speed=0, seed=7, behaviour=BrokerBehaviour(liquidation=False)) as srv:
        journal = Journal(tmp_path / "j.duckdb")
        trade = open_trade(srv, journal, "2013-10-08 15:20:10", contract, hard_stop="2013-10-08 15:25")
        srv.advance_to("2013-10-09 09:35")
        assert not srv.broker.positions
        sc, _ = scanner(srv, journal)
        sc.start()
    t = journal.query("SELECT * FROM trades").iloc[0]
    assert t["exit_reason"] == "expired" and t["exit_premium"] == 0
    assert t["pnl_usd"] == pytest.approx(-trade["entry_premium"] * 100)
    journal.close()


def test_the_broker_refuses_a_stop_sell_while_a_buy_limit_is_open(tmp_path):
    contract = "SPY131008C00160000"  # deep ITM: a $1 limit rests
    with OfflineAlpaca(start="2013-10-08 11:00", speed=0, seed=7) as srv:
        broker = _broker(srv)
        bought = broker.submit_order(OrderSpec(contract, 2, "buy", "market", client_order_id="a"))
        resting = broker.submit_order(OrderSpec(contract, 1, "buy", "limit", limit_price=1.00, client_order_id="b"))
        assert bought.is_filled and not resting.is_done
        with pytest.raises(BrokerRejectedError) as err:
            broker.submit_order(OrderSpec(contract, 1, "sell", "stop", stop_price=2.00, client_order_id="c"))
        assert err.value.status == 403 and "wash trade" in str(err.value)
        broker.cancel_order(resting.id)
        stop = broker.submit_order(OrderSpec(contract, 1, "sell", "stop", stop_price=2.00, client_order_id="d"))
        assert stop.status == "new"
