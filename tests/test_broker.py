"""AlpacaBroker: the real alpaca-py clients over loopback against the offline server."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from gammaride.config import ET
from gammaride.errors import BrokerError
from gammaride.keys import Keys
from gammaride.offline import OfflineAlpaca
from gammaride.scanner.broker import AlpacaBroker, OrderSpec
from gammaride.scanner.orders import submit_idempotent
from tests.support import offline_broker


@pytest.fixture
def srv():
    with OfflineAlpaca(start="2013-10-08 10:00:30", speed=0) as server:
        yield server


@pytest.fixture
def broker(srv):
    return offline_broker(srv)


def test_account_and_clock_become_our_numeric_types(broker):
    a = broker.account()
    assert isinstance(a.equity, float) and a.equity == pytest.approx(100_000.0)
    assert isinstance(a.options_buying_power, float) and a.options_buying_power > 0
    assert a.options_level is not None
    c = broker.clock()
    assert c.is_open and c.timestamp == pd.Timestamp("2013-10-08 10:00:30", tz=ET)
    assert str(c.timestamp.tz) == ET
    days = broker.calendar(pd.Timestamp("2013-11-27").date(), pd.Timestamp("2013-11-29").date())
    assert [d.close.strftime("%H:%M") for d in days] == ["16:00", "13:00"]  # Thanksgiving is no session


def test_bars_are_complete_regular_hours_bar_start_et(broker, sample):
    now = pd.Timestamp("2013-10-08 10:00:30", tz=ET)
    bars = broker.bars("SPY", pd.Timestamp("2013-10-07 09:30", tz=ET), now)
    assert bars.index[-1] == pd.Timestamp("2013-10-08 09:59", tz=ET)  # the 10:00 bar is not complete
    assert len(bars) == 390 + 30
    expected = sample.loc[bars.index]
    pd.testing.assert_frame_equal(bars, expected, check_freq=False, check_names=False)


def test_option_chain_frame_and_latest_trade(broker):
    trade = broker.latest_trade("SPY")
    chain = broker.option_chain("SPY", pd.Timestamp("2013-10-08").date(), pd.Timestamp("2013-10-09").date(),
                                math.floor(trade.price) - 2, math.ceil(trade.price) + 2)
    assert set(chain["expiration"].dt.strftime("%Y-%m-%d")) == {"2013-10-08", "2013-10-09"}
    assert set(chain["type"]) == {"call", "put"}
    assert (chain["ask"] >= chain["bid"]).all() and (chain["bid"] >= 0).all()
    atm = chain[(chain["strike"] - trade.price).abs() < 1]
    assert (atm["bid"] > 0).all()
    assert chain["iv"].between(0.19, 0.21).all()
    calls = chain[chain["type"] == "call"]
    assert calls["delta"].between(0, 1).all()


def test_idempotent_submit_never_buys_twice(broker, srv):
    trade = broker.latest_trade("SPY")
    chain = broker.option_chain("SPY", pd.Timestamp("2013-10-08").date(), pd.Timestamp("2013-10-08").date(),
                                round(trade.price), round(trade.price))
    call = chain[chain["type"] == "call"].iloc[0]
    spec = OrderSpec(call["symbol"], 2, "buy", "limit", limit_price=float(call["ask"]) + 0.05,
                     client_order_id="gr-SPY-201310081000-C")
    first = submit_idempotent(broker, spec)
    again = submit_idempotent(broker, spec)  # a retry: the duplicate id is found, not resent
    assert again.id == first.id
    assert first.filled_qty == 2 and first.filled_avg_price == pytest.approx(float(call["ask"]))
    posts = [b for b in srv.orders_received() if b.get("client_order_id") == spec.client_order_id]
    assert len(posts) == 2  # the second POST was refused as a duplicate
    assert len([o for o in srv.broker.orders.values() if o.client_order_id == spec.client_order_id]) == 1
    assert broker.order_by_client_id("gr-nothing") is None
    held = broker.positions()
    assert [(p.symbol, p.qty) for p in held] == [(call["symbol"], 2.0)]


def test_bracket_for_options_is_a_broker_error_with_the_status(broker):
    spec = OrderSpec("SPY131008C00168000", 1, "buy", "market", client_order_id="gr-x",
                     order_class="bracket", take_profit=2.0, stop_loss=0.5)
    with pytest.raises(BrokerError) as info:
        broker.submit_order(spec)
    assert info.value.status == 422 and info.value.kind == "http"


def test_wrong_secret_is_401_and_the_secret_is_never_in_the_message(srv):
    secret = "WrongSecretValue0123456789abcdefghijklmn"
    bad = AlpacaBroker(Keys(srv.key_id, secret), url=srv.url, timeout=2.0)
    with pytest.raises(BrokerError) as info:
        bad.account()
    assert info.value.status == 401
    assert secret not in str(info.value) and secret not in repr(bad)


def test_faults_become_broker_errors_of_their_kind(srv):
    b = AlpacaBroker(Keys(srv.key_id, srv.secret_key), url=srv.url, timeout=0.3, retry_wait=0.01, retries=1)
    kinds = {}
    for kind, spec in [("http", "500=1.0"), ("malformed", "malformed=1.0"), ("network", "drop=1.0"),
                       ("timeout", "timeout=1.0,slow_seconds=0.6")]:
        srv.set_faults(spec)
        with pytest.raises(BrokerError) as info:
            b.clock()
        kinds[kind] = info.value.kind
    srv.set_faults(None)
    assert kinds == {"http": "http", "malformed": "malformed", "network": "network", "timeout": "timeout"}
    assert b.clock().is_open


def test_an_unfilled_entry_is_cancelled_after_the_timeout(broker, srv):
    from gammaride.scanner.clock import SteppedClock
    from gammaride.scanner.orders import cancel_and_settle, wait_for_fill

    clock = SteppedClock(srv.advance_to)
    clock.sync(broker.clock().timestamp)
    chain = broker.option_chain("SPY", pd.Timestamp("2013-10-08").date(), pd.Timestamp("2013-10-08").date(),
                                166, 170)
    call = chain[(chain["type"] == "call") & (chain["bid"] > 0.2)].iloc[0]
    spec = OrderSpec(call["symbol"], 1, "buy", "limit", limit_price=round(float(call["bid"]) / 2, 2),
                     client_order_id="gr-SPY-201310081001-C")
    sent = submit_idempotent(broker, spec)
    start = clock.now()
    waited = wait_for_fill(broker, sent, clock, timeout_s=30)
    assert not waited.is_filled and clock.now() - start >= pd.Timedelta(seconds=30)
    final = cancel_and_settle(broker, waited)
    assert final.status == "canceled" and final.filled_qty == 0
    assert broker.positions() == []
