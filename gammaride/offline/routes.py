"""Endpoints of the offline Alpaca server: one small function per route, answering from the
simulated market and broker with JSON shaped like Alpaca's documented responses.

Each handler takes a :class:`Request` (the server, the path's parameters, the query, the
JSON body, the simulated now) and returns ``(status, payload)`` or raises
:class:`ApiError`; :data:`ROUTES` maps method and path to handler and to the fault
endpoint that may disturb it."""

from __future__ import annotations

import base64
import bisect
import datetime
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gammaride.config import NS_MIN
from gammaride.errors import ConfigError
from gammaride.offline.market import rfc3339, to_et
from gammaride.offline.options import Contract, contract_id, contract_of
from gammaride.offline.orders import ApiError, decimal_str

if TYPE_CHECKING:
    from gammaride.offline.app import OfflineAlpaca

MAX_PAGE = 10_000  # Alpaca's largest page of bars
_SIP_DELAY_NS = 15 * NS_MIN  # the free plan serves SIP data only this much older than now


def page_token(value: str) -> str:
    """An opaque next_page_token, as Alpaca hands them out."""
    return base64.urlsafe_b64encode(value.encode()).decode()


def read_page_token(token: str) -> str:
    """What :func:`page_token` wrapped; a token it did not make is a 422, as at Alpaca."""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except Exception:
        raise ApiError(422, "invalid page_token", 40010001) from None


def _limit(query: dict, default: int, maximum: int) -> int:
    raw = query.get("limit")
    if raw in (None, ""):
        return default
    try:
        n = int(raw)
    except ValueError:
        raise ApiError(422, f"invalid limit: {raw}", 40010001) from None
    if not 1 <= n <= maximum:
        raise ApiError(422, f"invalid limit: must be between 1 and {maximum}", 40010001)
    return n


def _time_param(query: dict, key: str) -> int | None:
    raw = query.get(key)
    if raw in (None, ""):
        return None
    try:
        t = pd.Timestamp(raw)
    except (ValueError, TypeError):
        raise ApiError(422, f"invalid {key}: {raw}", 40010001) from None
    return int((t if t.tz is not None else t.tz_localize("UTC")).value)


def _bool(query: dict, key: str) -> bool:
    return str(query.get(key, "")).lower() in ("true", "1", "yes")


def _float_param(query: dict, key: str) -> float | None:
    raw = query.get(key)
    if raw in (None, ""):
        return None
    try:
        return float(raw)
    except ValueError:
        raise ApiError(422, f"invalid {key}: {raw}", 40010001) from None


def _foreign_position_json(h: dict) -> dict:
    """A position held outside gammaride, in Alpaca's shape (its class may be one alpaca-py
    does not know)."""
    value = decimal_str(round(h["qty"] * h["price"], 2))
    return {
        "asset_id": contract_id(h["symbol"]), "symbol": h["symbol"], "exchange": "",
        "asset_class": h["asset_class"], "asset_marginable": False,
        "avg_entry_price": decimal_str(h["price"]), "qty": decimal_str(h["qty"]), "side": "long",
        "market_value": value, "cost_basis": value, "unrealized_pl": "0", "unrealized_plpc": "0",
        "unrealized_intraday_pl": "0", "unrealized_intraday_plpc": "0",
        "current_price": decimal_str(h["price"]), "lastday_price": decimal_str(h["price"]),
        "change_today": "0", "qty_available": decimal_str(h["qty"]),
    }


def _foreign_order_json(h: dict) -> dict:
    """The filled buy that opened a foreign holding."""
    t = rfc3339(h["created_ns"])
    return {
        "id": contract_id("order/" + h["symbol"]), "client_order_id": "web-" + h["symbol"].lower(),
        "created_at": t, "updated_at": t, "submitted_at": t, "filled_at": t, "expired_at": None,
        "canceled_at": None, "failed_at": None, "replaced_at": None, "replaced_by": None, "replaces": None,
        "asset_id": contract_id(h["symbol"]), "symbol": h["symbol"], "asset_class": h["asset_class"],
        "notional": None, "qty": decimal_str(h["qty"]), "filled_qty": decimal_str(h["qty"]),
        "filled_avg_price": decimal_str(h["price"]), "order_class": "simple", "order_type": "market",
        "type": "market", "side": "buy", "position_intent": "buy_to_open", "time_in_force": "day",
        "limit_price": None, "stop_price": None, "status": "filled", "extended_hours": False, "legs": None,
        "trail_percent": None, "trail_price": None, "hwm": None, "subtag": None, "source": None,
        "expires_at": None,
    }


Answer = tuple[int, object]


@dataclass(frozen=True)
class Request:
    """One request as a handler sees it, taken while the server holds its lock."""

    app: OfflineAlpaca
    path: dict[str, str]  # the route's named groups, e.g. {"symbol": "SPY"}
    query: dict[str, str]
    body: object
    now: int  # simulated time, epoch ns

    @property
    def broker(self):
        return self.app.broker

    @property
    def tape(self):
        return self.app.tape

    @property
    def book(self):
        return self.app.book

    def symbols(self, required: bool = True) -> list[str]:
        """The ``symbols`` query parameter, upper case; 422 when required and empty."""
        out = [s.strip().upper() for s in self.query.get("symbols", "").split(",") if s.strip()]
        if required and not out:
            raise ApiError(422, "symbols is required", 40010001)
        return out


# --- account, clock, calendar, assets -----------------------------------------------------
def account(r: Request) -> Answer:
    return 200, r.broker.account_json(r.now)


def clock(r: Request) -> Answer:
    sched = r.app.schedule
    nxt_open, nxt_close = sched.next_open_close(r.now)
    return 200, {
        "timestamp": to_et(r.now).isoformat(),
        "is_open": sched.is_open(r.now),
        "next_open": to_et(nxt_open).isoformat(),
        "next_close": to_et(nxt_close).isoformat(),
    }


def calendar(r: Request) -> Answer:
    sched = r.app.schedule
    today = to_et(r.now).normalize().tz_localize(None)
    start = (r.query.get("start") or (today - pd.Timedelta(days=366)).strftime("%Y-%m-%d"))[:10]
    end = (r.query.get("end") or (today + pd.Timedelta(days=366)).strftime("%Y-%m-%d"))[:10]
    lo, hi = bisect.bisect_left(sched.dates, start), bisect.bisect_right(sched.dates, end)
    rows = []
    for i in range(int(lo), int(hi)):
        o, c = to_et(int(sched.opens[i])), to_et(int(sched.closes[i]))
        lag = 1 if sched.dates[i] >= "2024-05-28" else 2  # T+1 settlement since 2024-05-28, T+2 before
        rows.append({
            "date": sched.dates[i], "open": o.strftime("%H:%M"), "close": c.strftime("%H:%M"),
            "session_open": "0400", "session_close": "2000",
            "settlement_date": sched.dates[min(i + lag, len(sched.dates) - 1)],
        })
    return 200, rows


def activities(r: Request) -> Answer:
    """GET /v2/account/activities[/{type}]: Alpaca's query parameters and field names."""
    q = r.query
    raw = r.path.get("activity_type") or q.get("activity_types") or ""
    types = {t.strip().upper() for t in str(raw).split(",") if t.strip()} or None
    direction = q.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise ApiError(422, f"invalid direction: {direction}", 40010001)
    raw_size = q.get("page_size") or "100"
    try:
        size = int(raw_size)
    except ValueError:
        raise ApiError(422, f"invalid page_size: {raw_size}", 40010001) from None
    if not 1 <= size <= 100:
        raise ApiError(422, "invalid page_size: must be between 1 and 100", 40010001)
    return 200, r.broker.activities_json(types, _time_param(q, "after"), _time_param(q, "until"),
                                         q.get("date") or None, direction == "desc", size, q.get("page_token"))


def asset(r: Request) -> Answer:
    tape = r.tape
    if r.path["symbol"].upper() != tape.symbol:
        raise ApiError(404, "asset not found", 40410000)
    return 200, {
        "id": contract_id(tape.symbol), "class": "us_equity", "exchange": "ARCA",
        "symbol": tape.symbol, "name": f"{tape.symbol} (offline replay)", "status": "active",
        "tradable": True, "marginable": True, "shortable": True, "easy_to_borrow": True,
        "fractionable": True, "maintenance_margin_requirement": 30,
        "attributes": ["has_options"],
    }


# --- positions ----------------------------------------------------------------------------
def positions(r: Request) -> Answer:
    return 200, [r.broker.position_json(pos, r.now) for pos in r.broker.positions.values()] + [
        _foreign_position_json(h) for h in r.app.foreign_holdings]


def position(r: Request) -> Answer:
    pos = r.broker.positions.get(r.path["symbol"].upper())
    if pos is None:
        raise ApiError(404, "position does not exist", 40410000)
    return 200, r.broker.position_json(pos, r.now)


def close_position(r: Request) -> Answer:
    qty = _float_param(r.query, "qty")
    pct = _float_param(r.query, "percentage")
    if pct is not None:
        pos = r.broker.positions.get(r.path["symbol"].upper())
        if pos is not None:
            qty = max(1.0, float(int(abs(pos.qty) * pct / 100.0)))
    return 200, r.broker.close_position(r.path["symbol"], qty, r.now).to_json(nested=True)


def close_all_positions(r: Request) -> Answer:
    if _bool(r.query, "cancel_orders"):
        r.broker.cancel_all(r.now)
    return 207, [{"symbol": sym, "status": 200, "body": r.broker.close_position(sym, None, r.now).to_json()}
                 for sym in list(r.broker.positions)]


# --- orders -------------------------------------------------------------------------------
def place_order(r: Request) -> Answer:
    return 200, r.broker.submit(r.body, r.now).to_json(nested=True)


def list_orders(r: Request) -> Answer:
    q = r.query
    status = q.get("status", "open")
    if status not in ("open", "closed", "all"):
        raise ApiError(422, f"invalid status: {status}", 40010001)
    nested = _bool(q, "nested")
    limit = _limit(q, 50, 500)
    after, until = _time_param(q, "after"), _time_param(q, "until")
    symbols = set(r.symbols(required=False))
    side = q.get("side")
    rows = []
    for seq, o in enumerate(r.broker.orders.values()):
        if nested and o.parent is not None:
            continue
        if status == "open" and not o.is_open or status == "closed" and o.is_open:
            continue
        if symbols and o.symbol not in symbols or side and o.side != side:
            continue
        if after is not None and o.created_ns <= after or until is not None and o.created_ns >= until:
            continue
        rows.append((o.created_ns, seq, o.to_json(nested=nested)))
    if status != "open":
        rows += [(h["created_ns"], -1 - i, _foreign_order_json(h)) for i, h in enumerate(r.app.foreign_holdings)
                 if (not symbols or h["symbol"] in symbols) and side in (None, "", "buy")]
    rows.sort(key=lambda row: (row[0], row[1]), reverse=q.get("direction", "desc") != "asc")
    return 200, [o for _, _, o in rows[:limit]]


def get_order(r: Request) -> Answer:
    order = r.broker.orders.get(r.path["id"])
    if order is None:
        raise ApiError(404, "order not found", 40410000)
    return 200, order.to_json(nested=_bool(r.query, "nested"))


def order_by_client_id(r: Request) -> Answer:
    order = r.broker.by_client_id.get(r.query.get("client_order_id", ""))
    if order is None:
        raise ApiError(404, "order not found", 40410000)
    return 200, order.to_json(nested=True)


def cancel_order(r: Request) -> Answer:
    r.broker.cancel(r.path["id"], r.now)
    return 204, None


def cancel_all_orders(r: Request) -> Answer:
    return 207, [{"id": o.id, "status": 200, "body": o.to_json()} for o in r.broker.cancel_all(r.now)]


# --- option contracts ---------------------------------------------------------------------
def option_contracts(r: Request) -> Answer:
    q = r.query
    if q.get("status") not in (None, "", "active") or q.get("style") not in (None, "", "american"):
        return 200, {"option_contracts": [], "next_page_token": None}
    page, nxt = _page(_filtered_chain(r), q, 100, 10_000)
    return 200, {"option_contracts": [_contract_json(r, c) for c in page], "next_page_token": nxt}


def option_contract(r: Request) -> Answer:
    c = contract_of(r.path["symbol"])
    if c is None or not r.book.is_known(c, r.now):
        raise ApiError(404, "option contract not found", 40410000)
    return 200, _contract_json(r, c)


def _contract_json(r: Request, c: Contract) -> dict:
    return {**_contract_row(c), **r.book.open_interest_fields(c, r.now, r.tape)}  # open interest changes daily


@lru_cache(maxsize=8192)
def _contract_row(c: Contract) -> dict:
    """The listing data of a contract, which never changes (callers copy it)."""
    exp = datetime.date.fromisoformat(c.expiration)
    name = f"{c.root} {exp.strftime('%b %d %Y')} {decimal_str(c.strike)} {c.type.title()}"
    return {
        "id": contract_id(c.symbol), "symbol": c.symbol, "name": name, "status": "active",
        "tradable": True, "expiration_date": c.expiration, "root_symbol": c.root,
        "underlying_symbol": c.root, "underlying_asset_id": contract_id(c.root),
        "type": c.type, "style": "american", "strike_price": decimal_str(c.strike),
        "multiplier": "100", "size": "100", "open_interest": None,
        "open_interest_date": None, "close_price": None, "close_price_date": None,
        "ppind": False,
    }


def _filtered_chain(r: Request) -> list[Contract]:
    q, book = r.query, r.book
    unders = {s.strip().upper() for s in q.get("underlying_symbols", q.get("underlying", "")).split(",") if s.strip()}
    if unders and book.underlying not in unders:
        return []
    if q.get("root_symbol") and q["root_symbol"].upper() != book.underlying:
        return []
    exp_eq, exp_gte, exp_lte = q.get("expiration_date"), q.get("expiration_date_gte"), q.get("expiration_date_lte")
    typ = q.get("type")
    k_gte, k_lte = _float_param(q, "strike_price_gte"), _float_param(q, "strike_price_lte")
    out = []
    for c in book.chain(r.now, r.tape.price_at(r.now)):
        if exp_eq and c.expiration != exp_eq[:10] or exp_gte and c.expiration < exp_gte[:10]:
            continue
        if exp_lte and c.expiration > exp_lte[:10] or typ and c.type != typ:
            continue
        if k_gte is not None and c.strike < k_gte - 1e-9 or k_lte is not None and c.strike > k_lte + 1e-9:
            continue
        out.append(c)
    out.sort(key=lambda c: c.symbol)
    return out


def _page(items: list[Contract], q: dict, default: int, maximum: int) -> tuple[list[Contract], str | None]:
    limit = _limit(q, default, maximum)
    token = q.get("page_token")
    if token:
        after = read_page_token(token)
        items = [c for c in items if c.symbol > after]
    page = items[:limit]
    return page, page_token(page[-1].symbol) if len(items) > limit else None


# --- option market data -------------------------------------------------------------------
def chain_snapshots(r: Request) -> Answer:
    feed = _option_feed(r)
    if r.path["underlying"].upper() != r.book.underlying:
        return 200, {"snapshots": {}, "next_page_token": None}
    page, nxt = _page(_filtered_chain(r), r.query, 100, 1000)
    return 200, {"snapshots": _snapshots(r, page, feed), "next_page_token": nxt}


def option_snapshots(r: Request) -> Answer:
    feed = _option_feed(r)
    return 200, {"snapshots": _snapshots(r, _listed(r), feed), "next_page_token": None}


def option_quotes(r: Request) -> Answer:
    feed = _option_feed(r)
    spot, ts, listed = r.tape.price_at(r.now), _quote_time(r), _listed(r)
    return 200, {"quotes": {c.symbol: _option_quote_json(r, px, ts, c, spot, feed)
                            for c, px in zip(listed, r.book.prices(listed, r.now, spot), strict=True)}}


def option_trades(r: Request) -> Answer:
    _option_feed(r)
    spot, ts, listed = r.tape.price_at(r.now), rfc3339(r.now), _listed(r)
    return 200, {"trades": {c.symbol: _option_trade_json(px, ts)
                            for c, px in zip(listed, r.book.prices(listed, r.now, spot), strict=True)}}


def option_bars(r: Request) -> Answer:
    q, history = r.query, r.app.history
    symbols = r.symbols()
    if q.get("timeframe") != "1Min":
        raise ApiError(422, "the offline server serves option bars of timeframe 1Min", 42210000)
    if history is None:
        return 200, {"bars": {}, "next_page_token": None}
    start = _time_param(q, "start") or 0
    end = min(_time_param(q, "end") or r.now, r.now)
    bars, nxt = history.option_page(symbols, start, end, _limit(q, 1000, MAX_PAGE), q.get("page_token"))
    return 200, {"bars": bars, "next_page_token": nxt}


def _option_feed(r: Request) -> str:
    """Alpaca's default is OPRA with the subscription, else indicative; asking for OPRA
    without it is refused."""
    plus = r.app.data.subscription == "plus"
    feed = r.query.get("feed") or ("opra" if plus else "indicative")
    if feed not in ("opra", "indicative"):
        raise ApiError(400, f"invalid feed: {feed}", 40010001)
    if feed == "opra" and not plus:
        raise ApiError(403, "subscription does not permit querying OPRA data")
    return feed


def _listed(r: Request) -> list[Contract]:
    """Contracts named in ``symbols`` that this market lists (unknown ones are left out)."""
    out = []
    for sym in r.symbols(required=False):
        c = contract_of(sym)
        if c is not None and c.root == r.book.underlying and r.book.expiry_ns(c) is not None:
            out.append(c)
    if not out and not r.query.get("symbols"):
        raise ApiError(422, "symbols is required", 40010001)
    return out


def _in_set(c: Contract, spot: float, which: str) -> bool:
    """Whether ``c`` is among ``which`` contracts: "none", "otm" or "all"."""
    return which == "all" or which == "otm" and (c.strike > spot if c.right == "C" else c.strike < spot)


def _quote_time(r: Request) -> str:
    return rfc3339(r.now - r.app.data.quote_age_ns)


def _option_quote_json(r: Request, px: dict, ts: str, c: Contract, spot: float, feed: str) -> dict:
    bid, ask = px["bid"], px["ask"]
    skew = r.app.data.indicative_skew
    if feed == "indicative" and skew and bid > 0:
        k = min(skew, round((ask - bid) / 2, 2))  # never crossed
        bid, ask = round(bid + k, 2), round(ask - k, 2)
    bid, size = (0, 0) if _in_set(c, spot, r.app.data.one_sided) else (bid, 10)
    return {"ap": ask, "as": 10, "ax": "C", "bp": bid, "bs": size, "bx": "C", "c": "A", "t": ts}


def _option_trade_json(px: dict, ts: str) -> dict:
    return {"c": "I", "p": round(px["mid"], 2), "s": 1, "t": ts, "x": "C"}


def _snapshots(r: Request, contracts: list[Contract], feed: str) -> dict:
    spot, ts = r.tape.price_at(r.now), _quote_time(r)
    out = {}
    for c, px in zip(contracts, r.book.prices(contracts, r.now, spot), strict=True):
        snap = {"latestQuote": _option_quote_json(r, px, ts, c, spot, feed),
                "latestTrade": _option_trade_json(px, ts)}
        if not _in_set(c, spot, r.app.data.missing_iv):  # optional fields: OTM 0DTE contracts may lack them
            snap["impliedVolatility"] = round(px["iv"], 6)
            snap["greeks"] = {k: round(px[k], 6) for k in ("delta", "gamma", "rho", "theta", "vega")}
        out[c.symbol] = snap
    return out


# --- stock market data --------------------------------------------------------------------
def stock_bars(r: Request) -> Answer:
    symbols = r.symbols()
    if len(symbols) > 1 and r.query.get("page_token"):
        raise ApiError(422, "the offline server pages one symbol at a time", 40010001)
    out, nxt = {}, None
    for s in symbols:
        bars, nxt_s = _bars_for(r, s)
        if bars:
            out[s] = bars
        nxt = nxt or nxt_s
    return 200, {"bars": out, "next_page_token": nxt}


def symbol_bars(r: Request) -> Answer:
    bars, nxt = _bars_for(r, r.path["symbol"])
    return 200, {"bars": bars, "symbol": r.path["symbol"].upper(), "next_page_token": nxt}


def latest_trades(r: Request) -> Answer:
    _stock_feed(r, None)
    return 200, {"trades": {s: _latest_trade(r) for s in r.symbols() if s == r.tape.symbol}}


def symbol_latest_trade(r: Request) -> Answer:
    _stock_feed(r, None)
    if r.path["symbol"].upper() != r.tape.symbol:
        raise ApiError(404, f"no trade found for {r.path['symbol']}", 40410000)
    return 200, {"symbol": r.tape.symbol, "trade": _latest_trade(r)}


def latest_quotes(r: Request) -> Answer:
    _stock_feed(r, None)
    symbols = r.symbols()
    px = r.tape.price_at(r.now)
    # A one-cent market around the last trade: the replayed data has no quotes.
    bid = math.floor(px * 100 + 1e-9) / 100
    quote = {"ap": round(bid + 0.01, 2), "as": 1, "ax": "V", "bp": round(bid, 2), "bs": 1, "bx": "V",
             "c": ["R"], "t": rfc3339(r.now), "z": "B"}
    return 200, {"quotes": {s: quote for s in symbols if s == r.tape.symbol}}


def _stock_feed(r: Request, end_ns: int | None) -> None:
    """The free plan serves SIP only older than 15 minutes, and never on latest endpoints."""
    plus = r.app.data.subscription == "plus"
    feed = r.query.get("feed") or ("sip" if plus else "iex")
    if feed not in ("iex", "sip", "otc", "boats", "overnight"):
        raise ApiError(400, f"invalid feed: {feed}", 40010001)
    if feed == "sip" and not plus and (end_ns is None or end_ns > r.now - _SIP_DELAY_NS):
        raise ApiError(403, "subscription does not permit querying recent SIP data")


def _bars_for(r: Request, symbol: str) -> tuple[list[dict], str | None]:
    q, tape = r.query, r.tape
    _stock_feed(r, _time_param(q, "end"))
    try:
        arr = tape.timeframe(q.get("timeframe", ""))
    except ValueError as exc:
        raise ApiError(422, str(exc), 42210000) from None
    if r.app.history is not None:
        return _history_bars(r, symbol)
    if symbol.upper() != tape.symbol:
        return [], None
    visible = arr.complete_count(r.now)
    start = _time_param(q, "start")
    if start is None:  # Alpaca's default: the beginning of the current day
        start = int(to_et(r.now).normalize().value)
    end = _time_param(q, "end")
    lo = int(np.searchsorted(arr.start, start))
    hi = visible if end is None else min(visible, int(np.searchsorted(arr.start, end, side="right")))
    limit = _limit(q, 1000, MAX_PAGE)
    desc = q.get("sort", "asc") == "desc"
    token = q.get("page_token")
    if token:
        cursor = int(read_page_token(token))
        if desc:
            hi = min(hi, int(np.searchsorted(arr.start, cursor, side="right")))
        else:
            lo = max(lo, int(np.searchsorted(arr.start, cursor)))
    idx = range(hi - 1, lo - 1, -1) if desc else range(lo, hi)
    page = idx[:limit]
    nxt = page_token(str(int(arr.start[idx[limit]]))) if len(idx) > limit else None
    return [arr.bar_json(j) for j in page], nxt


def _history_bars(r: Request, symbol: str) -> tuple[list[dict], str | None]:
    q, h = r.query, r.app.history
    tf = q.get("timeframe", "")
    if symbol.upper() != h.symbol or tf not in ("1Min", "1Day"):
        return [], None
    start = _time_param(q, "start")
    start = int(to_et(r.now).normalize().value) if start is None else start
    end = min(_time_param(q, "end") or r.now, r.now)
    return h.stock_page(tf, start, end, _limit(q, 1000, MAX_PAGE), q.get("page_token"),
                        q.get("sort", "asc") == "desc")


def _latest_trade(r: Request) -> dict:
    tape, now = r.tape, r.now
    j = int(np.searchsorted(tape.start, now, side="right")) - 1
    t = now if j >= 0 and now < tape.end[j] else (int(tape.end[j]) - 1000 if j >= 0 else now)
    return {"t": rfc3339(t), "x": "V", "p": round(tape.price_at(now), 4), "s": 100,
            "c": ["@"], "i": int(t // 1_000_000), "z": "B"}


# --- the simulated clock (never faulted) --------------------------------------------------
def sim_clock(r: Request) -> Answer:
    return 200, {"now": to_et(r.now).isoformat(), "speed": r.app.clock.speed}


def move_sim_clock(r: Request) -> Answer:
    b, app = r.body, r.app
    if not isinstance(b, dict) or not ({"advance_seconds", "to"} & set(b)):
        raise ApiError(422, 'send {"advance_seconds": n} or {"to": "ISO time"}', 40010001)
    try:
        new = app.clock.advance_to(b["to"]) if "to" in b else app.clock.advance(float(b["advance_seconds"]))
    except (ConfigError, TypeError, ValueError) as exc:
        raise ApiError(422, str(exc), 40010001) from None
    app.broker.sync(new)
    return 200, {"now": to_et(new).isoformat(), "speed": app.clock.speed}


# --- the table ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    endpoint: str | None  # the fault spec's endpoint name; None: never faulted
    handler: Callable[[Request], Answer]


_SYM = r"(?P<symbol>[A-Za-z0-9.]+)"
ROUTES: tuple[Route, ...] = tuple(Route(m, re.compile(p), ep, fn) for m, p, ep, fn in (
    ("GET", r"/v2/account", "account", account),
    ("GET", r"/v2/clock", "clock", clock),
    ("GET", r"/v2/calendar", "calendar", calendar),
    ("GET", r"/v2/account/activities", "account", activities),
    ("GET", r"/v2/account/activities/(?P<activity_type>[A-Za-z]+)", "account", activities),
    ("GET", r"/v2/positions", "positions", positions),
    ("DELETE", r"/v2/positions", "positions", close_all_positions),
    ("GET", rf"/v2/positions/{_SYM}", "positions", position),
    ("DELETE", rf"/v2/positions/{_SYM}", "positions", close_position),
    ("POST", r"/v2/orders", "orders", place_order),
    ("GET", r"/v2/orders", "orders", list_orders),
    ("DELETE", r"/v2/orders", "orders", cancel_all_orders),
    ("GET", r"/v2/orders:by_client_order_id", "orders", order_by_client_id),
    ("GET", r"/v2/orders/(?P<id>[^/]+)", "orders", get_order),
    ("DELETE", r"/v2/orders/(?P<id>[^/]+)", "orders", cancel_order),
    ("GET", r"/v2/options/contracts", "contracts", option_contracts),
    ("GET", rf"/v2/options/contracts/{_SYM}", "contracts", option_contract),
    ("GET", r"/v2/stocks/bars", "bars", stock_bars),
    ("GET", rf"/v2/stocks/{_SYM}/bars", "bars", symbol_bars),
    ("GET", r"/v2/stocks/trades/latest", "trades", latest_trades),
    ("GET", rf"/v2/stocks/{_SYM}/trades/latest", "trades", symbol_latest_trade),
    ("GET", r"/v2/stocks/quotes/latest", "trades", latest_quotes),
    ("GET", rf"/v2/assets/{_SYM}", "account", asset),
    ("GET", r"/v1beta1/options/snapshots/(?P<underlying>[A-Za-z0-9.]+)", "snapshots", chain_snapshots),
    ("GET", r"/v1beta1/options/snapshots", "snapshots", option_snapshots),
    ("GET", r"/v1beta1/options/quotes/latest", "snapshots", option_quotes),
    ("GET", r"/v1beta1/options/trades/latest", "snapshots", option_trades),
    ("GET", r"/v1beta1/options/bars", "bars", option_bars),
    ("GET", r"/_sim/clock", None, sim_clock),
    ("POST", r"/_sim/clock", None, move_sim_clock),
))


def find_route(method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    """The route answering ``method path`` and the path's named groups; (None, {}) when none does."""
    for route in ROUTES:
        if route.method == method:
            match = route.pattern.fullmatch(path)
            if match:
                return route, match.groupdict()
    return None, {}
