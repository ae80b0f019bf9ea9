"""Conformance of the offline Alpaca server, driven by the real alpaca-py clients over loopback."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pandas as pd
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical import OptionHistoricalDataClient, StockHistoricalDataClient
from alpaca.data.requests import OptionChainRequest, StockBarsRequest, StockLatestTradeRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetCalendarRequest,
    GetOptionContractsRequest,
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)

from gammaride.config import ET
from gammaride.errors import ConfigError
from gammaride.offline import OfflineAlpaca, OptionChain, SimAccount, spread_quote
from gammaride.offline.options import contract_of
from gammaride.rules import blackscholes
from gammaride.rules.contracts import occ_symbol
from gammaride.rules.exits import evaluate_exits


@pytest.fixture
def bars(sample):
    return sample  # the session-wide bundled sample


@pytest.fixture
def srv(bars):
    with OfflineAlpaca(bars=bars, start="2013-10-07 10:00", speed=0) as s:
        yield s
        assert s.errors == []


def _clients(s: OfflineAlpaca):
    kw = {"api_key": s.key_id, "secret_key": s.secret_key, "url_override": s.url}
    return (
        TradingClient(paper=True, **kw),
        StockHistoricalDataClient(**kw),
        OptionHistoricalDataClient(**kw),
    )


def _auth(s: OfflineAlpaca) -> dict:
    return {"APCA-API-KEY-ID": s.key_id, "APCA-API-SECRET-KEY": s.secret_key}


def _option(s: OfflineAlpaca, right: str = "C", days: int = 0, moneyness: int = 0) -> str:
    """An OCC symbol near the money, expiring ``days`` sessions after today."""
    spot = s.tape.price_at(s.clock.now_ns())
    exp = s.book.expiration_dates(s.clock.now_ns())[days]
    return occ_symbol("SPY", exp, "call" if right == "C" else "put", round(spot) + moneyness)


# ----------------------------------------------------------------- account, clock, calendar
def test_account_clock_and_calendar_parse_into_alpaca_models(srv):
    tc, _, _ = _clients(srv)
    acct = tc.get_account()
    assert acct.status == "ACTIVE"
    assert float(acct.equity) == 100_000.0 and float(acct.cash) == 100_000.0
    assert float(acct.options_buying_power) == 100_000.0
    assert acct.options_approved_level == 3 and acct.options_trading_level == 3

    clock = tc.get_clock()
    assert clock.is_open is True
    assert clock.timestamp == pd.Timestamp("2013-10-07 10:00", tz=ET)
    assert clock.next_close == pd.Timestamp("2013-10-07 16:00", tz=ET)
    assert clock.next_open == pd.Timestamp("2013-10-08 09:30", tz=ET)

    days = tc.get_calendar(GetCalendarRequest(start="2013-11-25", end="2013-11-29"))
    assert [d.date.isoformat() for d in days] == ["2013-11-25", "2013-11-26", "2013-11-27", "2013-11-29"]
    assert days[-1].close.strftime("%H:%M") == "13:00"  # the day after Thanksgiving closes early
    assert days[0].open.strftime("%H:%M") == "09:30"


def test_clock_after_close_and_on_early_close_day(bars):
    with OfflineAlpaca(bars=bars, start="2013-11-29 13:30", speed=0) as s:
        clock = _clients(s)[0].get_clock()
        assert clock.is_open is False
        assert clock.next_open == pd.Timestamp("2013-12-02 09:30", tz=ET)
        assert clock.next_close == pd.Timestamp("2013-12-02 16:00", tz=ET)
        s.advance_to("2013-12-02 09:29:59")
        assert _clients(s)[0].get_clock().is_open is False
        s.advance(1)
        assert _clients(s)[0].get_clock().is_open is True


# ----------------------------------------------------------------- bars and trades
def test_bars_show_only_complete_bars_and_cross_sessions(srv, bars):
    _, sc, _ = _clients(srv)
    srv.advance_to("2013-10-07 10:00:59")
    req = StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame.Minute, feed="iex",
                           start=pd.Timestamp("2013-10-04 09:30", tz=ET).to_pydatetime())
    df = sc.get_stock_bars(req).df.loc["SPY"]
    # 390 bars of Friday plus 09:30..09:59 of Monday: the 10:00 bar is not complete yet.
    assert len(df) == 420
    assert df.index[-1] == pd.Timestamp("2013-10-07 09:59", tz=ET)
    expected = bars.loc[: "2013-10-07 09:59"].loc["2013-10-04":]
    np.testing.assert_allclose(df["close"].to_numpy(), expected["close"].to_numpy())
    np.testing.assert_allclose(df["volume"].to_numpy(), expected["volume"].to_numpy())
    srv.advance(1)
    assert sc.get_stock_bars(req).df.index[-1][1] == pd.Timestamp("2013-10-07 10:00", tz=ET)


def test_bars_pagination_sort_and_single_symbol_endpoint(srv, bars):
    q = {"timeframe": "1Min", "start": "2013-10-04T13:30:00Z", "limit": "150"}
    got, token, pages = [], None, 0
    while True:
        r = requests.get(f"{srv.url}/v2/stocks/SPY/bars", params={**q, **({"page_token": token} if token else {})},
                         headers=_auth(srv), timeout=5)
        assert r.status_code == 200
        body = r.json()
        assert body["symbol"] == "SPY"
        got += body["bars"]
        pages += 1
        token = body["next_page_token"]
        if token is None:
            break
    assert pages == 3 and len(got) == 420  # 150 + 150 + 120
    assert got[0]["t"] == "2013-10-04T13:30:00Z"
    assert set(got[0]) == {"t", "o", "h", "l", "c", "v", "n", "vw"}
    desc = requests.get(f"{srv.url}/v2/stocks/bars", params={**q, "symbols": "SPY", "sort": "desc", "limit": "2"},
                        headers=_auth(srv), timeout=5).json()
    assert [b["t"] for b in desc["bars"]["SPY"]] == ["2013-10-07T13:59:00Z", "2013-10-07T13:58:00Z"]
    assert desc["next_page_token"] is not None
    unknown = requests.get(f"{srv.url}/v2/stocks/bars", params={**q, "symbols": "QQQ"}, headers=_auth(srv), timeout=5)
    assert unknown.json() == {"bars": {}, "next_page_token": None}


def test_latest_trade_is_inside_the_current_bar(srv, bars):
    _, sc, _ = _clients(srv)
    srv.advance_to("2013-10-07 10:00:30")
    trade = sc.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="SPY", feed="iex"))["SPY"]
    bar = bars.loc[pd.Timestamp("2013-10-07 10:00", tz=ET)]
    assert trade.price == pytest.approx(bar["open"] + 0.5 * (bar["close"] - bar["open"]), abs=1e-4)
    assert min(bar["open"], bar["close"]) <= trade.price <= max(bar["open"], bar["close"])
    single = requests.get(f"{srv.url}/v2/stocks/SPY/trades/latest", headers=_auth(srv), timeout=5).json()
    assert single["symbol"] == "SPY" and single["trade"]["p"] == pytest.approx(trade.price)


# ----------------------------------------------------------------- options data
def test_option_chain_snapshots_are_black_scholes_with_penny_spread(srv):
    _, _, oc = _clients(srv)
    chain = oc.get_option_chain(OptionChainRequest(underlying_symbol="SPY", feed="indicative"))
    assert len(chain) == 5 * 21 * 2  # 5 daily expirations x 21 strikes x call/put
    exps = sorted({contract_of(s).expiration for s in chain})
    assert exps == ["2013-10-07", "2013-10-08", "2013-10-09", "2013-10-10", "2013-10-11"]
    now = srv.clock.now_ns()
    spot = srv.tape.price_at(now)
    sym = occ_symbol("SPY", "2013-10-08", "call", round(spot))
    snap = chain[sym]
    close = pd.Timestamp("2013-10-08 16:00", tz=ET).value
    bs = {k: float(v) for k, v in blackscholes.greeks(spot, round(spot), (close - now) / (365 * 86400e9), 0.20, True).items()}
    bid, ask = spread_quote(bs["price"])
    assert snap.latest_quote.bid_price == bid and snap.latest_quote.ask_price == ask
    assert ask - bid == pytest.approx(max(0.01, round(0.03 * bs["price"], 2)))
    assert snap.implied_volatility == pytest.approx(0.20)
    assert snap.greeks.delta == pytest.approx(bs["delta"], abs=1e-6)
    assert 0.3 < snap.greeks.delta < 0.7
    put = chain[occ_symbol("SPY", "2013-10-08", "put", round(spot))]
    assert -0.7 < put.greeks.delta < -0.3

    calls = oc.get_option_chain(OptionChainRequest(
        underlying_symbol="SPY", type="call", expiration_date="2013-10-07",
        strike_price_gte=round(spot) - 2, strike_price_lte=round(spot) + 2))
    assert sorted(calls) == [occ_symbol("SPY", "2013-10-07", "call", round(spot) + k) for k in range(-2, 3)]


def test_option_chain_pagination_and_iv_series(bars):
    iv = pd.Series([0.15, 0.35], index=pd.DatetimeIndex(["2013-10-07 09:30", "2013-10-07 12:00"]).tz_localize(ET))
    with OfflineAlpaca(bars=bars, start="2013-10-07 10:00", speed=0, chain=OptionChain(iv=iv)) as s:
        seen, token = [], None
        while True:
            params = {"limit": "64", **({"page_token": token} if token else {})}
            body = requests.get(f"{s.url}/v1beta1/options/snapshots/SPY", params=params,
                                headers=_auth(s), timeout=5).json()
            seen += list(body["snapshots"])
            token = body["next_page_token"]
            if not token:
                break
        assert len(seen) == len(set(seen)) == 210
        first = body["snapshots"][seen[-1]]
        assert first["impliedVolatility"] == pytest.approx(0.15)
        s.advance_to("2013-10-07 12:30")
        later = _clients(s)[2].get_option_chain(OptionChainRequest(underlying_symbol="SPY", type="put"))
        assert {round(v.implied_volatility, 6) for v in later.values()} == {0.35}


def test_option_contracts_endpoint(srv):
    tc, _, _ = _clients(srv)
    resp = tc.get_option_contracts(GetOptionContractsRequest(
        underlying_symbols=["SPY"], expiration_date="2013-10-09", type="put", limit=7))
    assert len(resp.option_contracts) == 7 and resp.next_page_token is not None
    c = resp.option_contracts[0]
    assert c.type == "put" and c.expiration_date.isoformat() == "2013-10-09"
    assert c.tradable and c.style == "american" and c.size == "100" and c.underlying_symbol == "SPY"
    assert re.fullmatch(r"SPY131009P\d{8}", c.symbol)
    rest = tc.get_option_contracts(GetOptionContractsRequest(
        underlying_symbols=["SPY"], expiration_date="2013-10-09", type="put",
        page_token=resp.next_page_token, limit=100))
    assert len(rest.option_contracts) == 21 - 7 and rest.next_page_token is None
    assert tc.get_option_contract(c.symbol).symbol == c.symbol
    with pytest.raises(APIError) as err:
        tc.get_option_contract("SPY131004C00160000")  # expired on Friday
    assert err.value.status_code == 404


# ----------------------------------------------------------------- option orders
def test_option_market_orders_fill_at_ask_then_bid_and_keep_cash(srv):
    tc, _, _ = _clients(srv)
    sym = _option(srv, "C", days=1)
    q0 = srv.broker.option_quote(contract_of(sym), srv.clock.now_ns())
    order = tc.submit_order(MarketOrderRequest(symbol=sym, qty=2, side=OrderSide.BUY,
                                               time_in_force=TimeInForce.DAY, client_order_id="buy-1"))
    assert order.status == OrderStatus.FILLED and float(order.filled_avg_price) == q0["ask"]
    assert order.position_intent == "buy_to_open" and order.asset_class == "us_option"
    pos = tc.get_open_position(sym)
    assert pos.qty == "2" and float(pos.avg_entry_price) == q0["ask"]
    acct = tc.get_account()
    assert float(acct.cash) == pytest.approx(100_000 - 200 * q0["ask"])
    assert float(acct.equity) == pytest.approx(float(acct.cash) + 200 * q0["mid"], abs=0.01)

    srv.advance(600)
    q1 = srv.broker.option_quote(contract_of(sym), srv.clock.now_ns())
    close = tc.close_position(sym, ClosePositionRequest(qty="1"))
    assert close.side == OrderSide.SELL and float(close.filled_avg_price) == q1["bid"]
    assert tc.get_open_position(sym).qty == "1"
    tc.close_position(sym)
    assert tc.get_all_positions() == []
    assert float(tc.get_account().cash) == pytest.approx(100_000 - 200 * q0["ask"] + 200 * q1["bid"])
    with pytest.raises(APIError) as err:
        tc.close_position(sym)
    assert err.value.status_code == 404


def test_option_limit_rests_cancels_and_duplicate_client_order_id(srv):
    tc, _, _ = _clients(srv)
    sym = _option(srv, "P", days=1, moneyness=-3)
    req = LimitOrderRequest(symbol=sym, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                            limit_price=0.01, client_order_id="cheap-put")
    order = tc.submit_order(req)
    assert order.status == OrderStatus.NEW and order.filled_qty == "0"
    with pytest.raises(APIError) as err:
        tc.submit_order(req)
    assert err.value.status_code == 422
    assert json.loads(str(err.value)) == {"code": 40010001, "message": "client_order_id must be unique"}
    assert tc.get_order_by_client_id("cheap-put").id == order.id
    assert [o.id for o in tc.get_orders()] == [order.id]
    tc.cancel_order_by_id(order.id)
    assert tc.get_order_by_id(order.id).status == OrderStatus.CANCELED
    with pytest.raises(APIError) as err:
        tc.cancel_order_by_id(order.id)
    assert err.value.status_code == 422 and "canceled" in str(err.value)
    assert tc.get_orders() == []
    assert [o.id for o in tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))] == [order.id]
    with pytest.raises(APIError) as err:
        tc.get_order_by_id("00000000-0000-4000-8000-000000000000")
    assert err.value.status_code == 404


def test_bracket_for_options_is_rejected_like_alpaca(srv):
    tc, _, _ = _clients(srv)
    sym = _option(srv, "C")
    with pytest.raises(APIError) as err:
        tc.submit_order(MarketOrderRequest(
            symbol=sym, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
            order_class=OrderClass.BRACKET, take_profit=TakeProfitRequest(limit_price=5.0),
            stop_loss=StopLossRequest(stop_price=0.5)))
    assert err.value.status_code == 422
    assert json.loads(str(err.value)) == {
        "code": 42210000, "message": "order_class provided not supported for options trading"}
    with pytest.raises(APIError) as err:
        tc.submit_order(MarketOrderRequest(symbol=sym, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.IOC))
    assert err.value.status_code == 422 and "time_in_force" in str(err.value)  # day and gtc only
    with pytest.raises(APIError) as err:
        tc.submit_order(MarketOrderRequest(symbol=sym, qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY))
    assert err.value.status_code == 403 and "insufficient qty" in str(err.value)
    assert tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)) == []
    assert srv.orders_received()[0]["order_class"] == "bracket"
    assert len(srv.orders_received()) == 3


def test_0dte_orders_after_cutoff_rejected_and_next_day_accepted(bars):
    with OfflineAlpaca(bars=bars, start="2013-10-07 15:29:59", speed=0) as s:
        tc, _, _ = _clients(s)
        today = _option(s, "C", days=0)
        ok = tc.submit_order(MarketOrderRequest(symbol=today, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
        assert ok.status == OrderStatus.FILLED
        s.advance(1)  # 15:30:00
        with pytest.raises(APIError) as err:
            tc.submit_order(MarketOrderRequest(symbol=today, qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY))
        assert err.value.status_code == 422 and "15:30" in str(err.value)
        tomorrow = _option(s, "C", days=1)
        assert tc.submit_order(MarketOrderRequest(
            symbol=tomorrow, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)).status == OrderStatus.FILLED

        # 15:45: the expiring contract is liquidated at the bid; tomorrow's stays.
        s.advance_to("2013-10-07 15:50")
        held = {p.symbol for p in tc.get_all_positions()}
        assert held == {tomorrow}
        liq = [o for o in tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED)) if o.symbol == today and o.side == "sell"]
        assert len(liq) == 1 and liq[0].filled_at == pd.Timestamp("2013-10-07 15:45", tz=ET)
        q = s.broker.option_quote(contract_of(today), pd.Timestamp("2013-10-07 15:45", tz=ET).value)
        assert float(liq[0].filled_avg_price) == q["bid"]
        assert s.errors == []


def test_early_close_moves_the_cutoff(bars):
    with OfflineAlpaca(bars=bars, start="2013-11-29 12:29", speed=0) as s:
        tc, _, _ = _clients(s)
        sym = occ_symbol("SPY", "2013-11-29", "call", 168)
        assert s.broker.cutoff_ns(contract_of(sym)) == pd.Timestamp("2013-11-29 12:30", tz=ET).value
        s.advance(60)
        with pytest.raises(APIError) as err:
            tc.submit_order(MarketOrderRequest(symbol=sym, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
        assert "12:30" in str(err.value)


def test_option_stop_order_triggers_when_bid_falls_to_stop(srv):
    tc, _, _ = _clients(srv)
    start = srv.clock.now_ns()
    minutes = [start + k * 60_000_000_000 for k in range(1, 300)]
    # Of the at-the-money call and put, take one whose simulated bid falls 10 cents later on.
    for right in ("C", "P"):
        sym = _option(srv, right, days=1)
        c = contract_of(sym)
        stop = round(srv.broker.option_quote(c, start)["bid"] - 0.10, 2)
        hit = next((t for t in minutes if srv.broker.option_quote(c, t)["bid"] <= stop), None)
        if hit is not None:
            break
    assert hit is not None
    tc.submit_order(MarketOrderRequest(symbol=sym, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    order = tc.submit_order(StopOrderRequest(symbol=sym, qty=1, side=OrderSide.SELL,
                                             time_in_force=TimeInForce.DAY, stop_price=stop))
    assert order.status == OrderStatus.NEW
    srv.advance_to(pd.Timestamp(hit, tz="UTC") + pd.Timedelta(seconds=30))
    got = tc.get_order_by_id(order.id)
    assert got.status == OrderStatus.FILLED
    assert got.filled_at == pd.Timestamp(hit, tz="UTC")
    assert float(got.filled_avg_price) == srv.broker.option_quote(c, hit)["bid"]
    assert tc.get_all_positions() == []


# ----------------------------------------------------------------- shares
def test_share_bracket_exits_match_the_replay_exit_rules(srv, bars):
    tc, _, _ = _clients(srv)
    entry_px = srv.tape.price_at(srv.clock.now_ns())
    tp, sl = round(entry_px + 0.30, 2), round(entry_px - 0.15, 2)
    order = tc.submit_order(MarketOrderRequest(
        symbol="SPY", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, client_order_id="br-1",
        order_class=OrderClass.BRACKET, take_profit=TakeProfitRequest(limit_price=tp),
        stop_loss=StopLossRequest(stop_price=sl)))
    assert order.status == OrderStatus.FILLED and float(order.filled_avg_price) == pytest.approx(entry_px)
    assert [(leg.type, leg.status) for leg in order.legs] == [("limit", "new"), ("stop", "new")]
    pos = tc.get_open_position("SPY")
    assert pos.qty == "10" and pos.qty_available == "0"  # both OCO legs hold the same 10 shares

    path = bars.loc["2013-10-07 10:00":"2013-10-07 15:59"]
    res = evaluate_exits(np.array([1.0]), np.array([tp]), np.array([sl]),
                         path["open"].to_numpy()[None], path["high"].to_numpy()[None],
                         path["low"].to_numpy()[None], path["close"].to_numpy()[None],
                         np.array([len(path)]), final=False)
    assert res.reason[0] in ("tp", "sl")
    exit_bar_end = path.index[res.bar[0]] + pd.Timedelta(minutes=1)
    srv.advance_to(exit_bar_end)
    nested = tc.get_order_by_id(order.id, GetOrderByIdRequest(nested=True))
    legs = {leg.type: leg for leg in nested.legs}
    hit, other = (legs["limit"], legs["stop"]) if res.reason[0] == "tp" else (legs["stop"], legs["limit"])
    assert hit.status == OrderStatus.FILLED and other.status == OrderStatus.CANCELED  # OCO
    assert float(hit.filled_avg_price) == pytest.approx(res.price[0])
    assert hit.filled_at == exit_bar_end
    assert tc.get_all_positions() == []
    flat = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
    assert len(flat) == 3 and all(o.legs is None for o in flat)
    rolled = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True))
    assert len(rolled) == 1 and len(rolled[0].legs) == 2


def test_share_limit_and_stop_fill_against_bars(srv, bars):
    tc, _, _ = _clients(srv)
    later = bars.loc["2013-10-07 10:00":"2013-10-07 11:00"]
    low = float(later["low"].min())
    order = tc.submit_order(LimitOrderRequest(symbol="SPY", qty=5, side=OrderSide.BUY,
                                              time_in_force=TimeInForce.DAY, limit_price=low))
    assert order.status == OrderStatus.NEW
    first = later.index[(later["low"] <= low).to_numpy()][0]
    srv.advance_to(first + pd.Timedelta(seconds=59))
    assert tc.get_order_by_id(order.id).status == OrderStatus.NEW
    srv.advance(1)
    got = tc.get_order_by_id(order.id)
    assert got.status == OrderStatus.FILLED
    assert float(got.filled_avg_price) == pytest.approx(min(low, later.loc[first, "open"]))
    with pytest.raises(APIError) as err:
        tc.cancel_order_by_id(order.id)
    assert err.value.status_code == 422 and "filled" in str(err.value)
    with pytest.raises(APIError) as err:
        tc.submit_order(MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    assert err.value.status_code == 422


def test_orders_outside_hours_wait_for_the_open(bars):
    with OfflineAlpaca(bars=bars, start="2013-10-07 08:00", speed=0) as s:
        tc, _, _ = _clients(s)
        order = tc.submit_order(MarketOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
        assert order.status == OrderStatus.NEW
        s.advance_to("2013-10-07 09:31")
        got = tc.get_order_by_id(order.id)
        assert got.status == OrderStatus.FILLED
        assert float(got.filled_avg_price) == bars.loc[pd.Timestamp("2013-10-07 09:30", tz=ET), "open"]


# ----------------------------------------------------------------- auth, log, control
def test_wrong_key_is_401_and_keys_never_logged(srv):
    bad = TradingClient("PKWRONG0000000000000", "nope", paper=True, url_override=srv.url)
    with pytest.raises(APIError) as err:
        bad.get_account()
    assert err.value.status_code == 401
    assert json.loads(str(err.value)) == {"code": 40110000, "message": "request is not authorized"}
    tc, _, _ = _clients(srv)
    tc.get_account()
    log_text = repr(srv.request_log)
    assert srv.key_id not in log_text and srv.secret_key not in log_text
    assert [e["status"] for e in srv.request_log] == [401, 200]
    assert srv.request_log[1]["key_id"] == "PKTE...0000"
    entry = srv.request_log[1]
    assert entry["method"] == "GET" and entry["path"] == "/v2/account" and entry["fault"] is None
    assert entry["response"]["equity"] == "100000"


def test_sim_clock_endpoints_need_auth_and_move_time(srv):
    r = requests.post(f"{srv.url}/_sim/clock", json={"advance_seconds": 90}, timeout=5)
    assert r.status_code == 401
    r = requests.post(f"{srv.url}/_sim/clock", json={"advance_seconds": 90}, headers=_auth(srv), timeout=5)
    assert r.json()["now"] == "2013-10-07T10:01:30-04:00"
    r = requests.post(f"{srv.url}/_sim/clock", json={"to": "2013-10-07 11:00"}, headers=_auth(srv), timeout=5)
    assert r.json()["now"] == "2013-10-07T11:00:00-04:00"
    r = requests.post(f"{srv.url}/_sim/clock", json={"to": "2013-10-07 10:00"}, headers=_auth(srv), timeout=5)
    assert r.json()["now"] == "2013-10-07T11:00:00-04:00"  # never backwards
    assert requests.get(f"{srv.url}/_sim/clock", headers=_auth(srv), timeout=5).json()["now"] == "2013-10-07T11:00:00-04:00"
    assert srv.now() == pd.Timestamp("2013-10-07 11:00", tz=ET)
    bad = requests.post(f"{srv.url}/_sim/clock", json={"advance_seconds": -5}, headers=_auth(srv), timeout=5)
    assert bad.status_code == 422


def test_running_clock_moves_at_speed(bars):
    srv = OfflineAlpaca(bars=bars, start="2013-10-07 10:00", speed=600)
    time.sleep(0.05)
    assert srv.now() == pd.Timestamp("2013-10-07 10:00", tz=ET)  # stands still until served
    with srv as s:
        r0, t0 = time.monotonic(), s.now()
        time.sleep(0.2)
        t1, r1 = s.now(), time.monotonic()
        moved = (t1 - t0).total_seconds()
        assert 600 * 0.2 - 0.01 <= moved <= 600 * (r1 - r0) + 0.01


def test_multi_day_advance_expires_day_orders_and_rolls_last_equity(srv, bars):
    tc, _, _ = _clients(srv)
    day = tc.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY,
                                            time_in_force=TimeInForce.DAY, limit_price=100))
    gtc = tc.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY,
                                            time_in_force=TimeInForce.GTC, limit_price=100))
    shares = tc.submit_order(MarketOrderRequest(symbol="SPY", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    srv.advance_to("2013-10-09 10:00")
    assert tc.get_order_by_id(day.id).status == OrderStatus.EXPIRED
    assert tc.get_order_by_id(day.id).expired_at == pd.Timestamp("2013-10-07 16:00", tz=ET)
    assert tc.get_order_by_id(gtc.id).status == OrderStatus.NEW
    acct = tc.get_account()
    last_close = bars.loc["2013-10-08", "close"].iloc[-1]
    cash = 100_000 - 10 * float(shares.filled_avg_price)
    assert float(acct.last_equity) == pytest.approx(cash + 10 * last_close, abs=0.01)
    pos = tc.get_open_position("SPY")
    assert float(pos.lastday_price) == pytest.approx(last_close)
    assert float(pos.current_price) == pytest.approx(srv.tape.price_at(srv.clock.now_ns()))


def test_coarser_timeframes_aggregate_complete_bars_and_daily_history(srv, bars):
    _, sc, _ = _clients(srv)
    srv.advance_to("2013-10-08 10:02")
    five = sc.get_stock_bars(StockBarsRequest(
        symbol_or_symbols="SPY", timeframe=TimeFrame(5, TimeFrameUnit.Minute),
        start=pd.Timestamp("2013-10-08 09:30", tz=ET).to_pydatetime())).df.loc["SPY"]
    assert list(five.index.strftime("%H:%M")) == ["13:30", "13:35", "13:40", "13:45", "13:50", "13:55"]
    chunk = bars.loc["2013-10-08 09:35":"2013-10-08 09:39"]
    row = five.iloc[1]
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == (
        chunk["open"].iloc[0], chunk["high"].max(), chunk["low"].min(), chunk["close"].iloc[-1], chunk["volume"].sum())

    daily = sc.get_stock_bars(StockBarsRequest(
        symbol_or_symbols="SPY", timeframe=TimeFrame.Day,
        start=pd.Timestamp("2013-09-30", tz=ET).to_pydatetime())).df.loc["SPY"]
    days = list(daily.index.tz_convert(ET).strftime("%Y-%m-%d"))
    # Sep 30 - Oct 3 from the bundled daily closes, Oct 4 and 7 from the minute bars; Oct 8 is not over.
    assert days == ["2013-09-30", "2013-10-01", "2013-10-02", "2013-10-03", "2013-10-04", "2013-10-07"]
    assert daily["close"].iloc[-1] == bars.loc["2013-10-07", "close"].iloc[-1]
    assert daily["volume"].iloc[-1] == bars.loc["2013-10-07", "volume"].sum()
    bad = requests.get(f"{srv.url}/v2/stocks/bars", params={"symbols": "SPY", "timeframe": "2Day"},
                       headers=_auth(srv), timeout=5)
    assert bad.status_code == 422 and "timeframe" in bad.json()["message"]


def test_buying_power_close_all_and_cancel_all(bars):
    with OfflineAlpaca(bars=bars, start="2013-10-07 10:00", speed=0, account=SimAccount(equity=1_000.0)) as s:
        tc, _, _ = _clients(s)
        sym = _option(s, "C", days=4, moneyness=-6)  # deep in the money: about $6 a share
        ask = s.broker.option_quote(contract_of(sym), s.clock.now_ns())["ask"]
        assert ask * 100 * 2 > 1_000
        with pytest.raises(APIError) as err:
            tc.submit_order(MarketOrderRequest(symbol=sym, qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
        assert err.value.status_code == 403 and "buying power" in str(err.value)
        tc.submit_order(MarketOrderRequest(symbol=sym, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
        tc.submit_order(MarketOrderRequest(symbol="SPY", qty=2, side=OrderSide.SELL, time_in_force=TimeInForce.DAY))
        resting = tc.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side=OrderSide.SELL,
                                                    time_in_force=TimeInForce.GTC, limit_price=500))
        acct = tc.get_account()
        assert float(acct.options_buying_power) == pytest.approx(float(acct.cash))
        half = tc.close_position("SPY", ClosePositionRequest(percentage="50"))
        assert half.qty == "1" and half.side == OrderSide.BUY
        assert tc.get_order_by_id(resting.id).status == OrderStatus.CANCELED  # worked against it
        low = tc.submit_order(LimitOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY,
                                                time_in_force=TimeInForce.GTC, limit_price=100))
        canceled = tc.cancel_orders()
        assert [str(c.id) for c in canceled] == [str(low.id)] and canceled[0].status == 200
        assert tc.get_orders() == []
        closed = tc.close_all_positions()
        assert sorted(r.symbol for r in closed) == sorted([sym, "SPY"]) and all(r.status == 200 for r in closed)
        assert tc.get_all_positions() == []
        acct = tc.get_account()
        assert float(acct.equity) == pytest.approx(float(acct.cash))
        assert float(acct.cash) < 1_000  # paid the spreads


def test_chain_shape_is_configurable(bars):
    with OfflineAlpaca(bars=bars, start="2013-10-07 10:00", speed=0, chain=OptionChain(strike_step=5.0, strikes_each_side=2, expirations=2)) as s:
        chain = _clients(s)[2].get_option_chain(OptionChainRequest(underlying_symbol="SPY", type="call"))
        strikes = sorted({contract_of(c).strike for c in chain})
        assert strikes == [160.0, 165.0, 170.0, 175.0, 180.0]  # spot 167.72 rounds to 170
        assert sorted({contract_of(c).expiration for c in chain}) == ["2013-10-07", "2013-10-08"]
    with pytest.raises(ConfigError, match="strike_step"):
        OfflineAlpaca(bars=bars, speed=0, chain=OptionChain(strike_step=0))
