"""Endpoints of the offline Alpaca server: one function per route, answering from the
simulated market and broker with JSON shaped like Alpaca's documented responses."""

from __future__ import annotations

import base64
import bisect
import datetime
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gammaride.errors import ConfigError
from gammaride.offline.market import rfc3339, to_et
from gammaride.offline.options import contract_id, parse_occ
from gammaride.offline.orders import ApiError, decimal_str

if TYPE_CHECKING:
    from gammaride.offline.app import OfflineAlpaca

_MAX_BARS_PAGE = 10_000
_SIP_DELAY_NS = 15 * 60 * 1_000_000_000


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


def build_routes(app: OfflineAlpaca) -> list[tuple[str, re.Pattern, str | None, Callable]]:
    broker, tape, book, sched = app.broker, app.tape, app.book, app.schedule

    def account(p, q, b, now):
        return 200, broker.account_json(now)

    def clock(p, q, b, now):
        nxt_open, nxt_close = sched.next_open_close(now)
        return 200, {
            "timestamp": to_et(now).isoformat(),
            "is_open": sched.is_open(now),
            "next_open": to_et(nxt_open).isoformat(),
            "next_close": to_et(nxt_close).isoformat(),
        }

    def calendar(p, q, b, now):
        today = to_et(now).normalize().tz_localize(None)
        start = q.get("start") or (today - pd.Timedelta(days=366)).strftime("%Y-%m-%d")
        end = q.get("end") or (today + pd.Timedelta(days=366)).strftime("%Y-%m-%d")
        start, end = start[:10], end[:10]
        lo, hi = bisect.bisect_left(sched.dates, start), bisect.bisect_right(sched.dates, end)
        rows = []
        for i in range(int(lo), int(hi)):
            o, c = to_et(int(sched.opens[i])), to_et(int(sched.closes[i]))
            # T+1 settlement since 2024-05-28, T+2 before.
            lag = 1 if sched.dates[i] >= "2024-05-28" else 2
            settle = sched.dates[min(i + lag, len(sched.dates) - 1)]
            rows.append({
                "date": sched.dates[i], "open": o.strftime("%H:%M"), "close": c.strftime("%H:%M"),
                "session_open": "0400", "session_close": "2000", "settlement_date": settle,
            })
        return 200, rows

    def positions(p, q, b, now):
        return 200, [broker.position_json(pos, now) for pos in broker.positions.values()] + [
            _foreign_position_json(h) for h in app.foreign_holdings]

    def position(p, q, b, now):
        pos = broker.positions.get(p["symbol"].upper())
        if pos is None:
            raise ApiError(404, "position does not exist", 40410000)
        return 200, broker.position_json(pos, now)

    def close_position(p, q, b, now):
        qty = _float_param(q, "qty")
        pct = _float_param(q, "percentage")
        if pct is not None:
            pos = broker.positions.get(p["symbol"].upper())
            if pos is not None:
                qty = max(1.0, float(int(abs(pos.qty) * pct / 100.0)))
        return 200, broker.close_position(p["symbol"], qty, now).to_json(nested=True)

    def close_all(p, q, b, now):
        if _bool(q, "cancel_orders"):
            broker.cancel_all(now)
        out = []
        for sym in list(broker.positions):
            order = broker.close_position(sym, None, now)
            out.append({"symbol": sym, "status": 200, "body": order.to_json()})
        return 207, out

    def activities(p, q, b, now):
        """GET /v2/account/activities[/{type}]: Alpaca's query parameters and field names."""
        raw = p.get("activity_type") or q.get("activity_types") or ""
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
        return 200, broker.activities_json(types, _time_param(q, "after"), _time_param(q, "until"),
                                           q.get("date") or None, direction == "desc", size, q.get("page_token"))

    def submit(p, q, b, now):
        return 200, broker.submit(b, now).to_json(nested=True)

    def list_orders(p, q, b, now):
        status = q.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise ApiError(422, f"invalid status: {status}", 40010001)
        nested = _bool(q, "nested")
        limit = _limit(q, 50, 500)
        after, until = _time_param(q, "after"), _time_param(q, "until")
        symbols = {s.strip().upper() for s in q.get("symbols", "").split(",") if s.strip()}
        side = q.get("side")
        rows = []
        for seq, o in enumerate(broker.orders.values()):
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
            rows += [(h["created_ns"], -1 - i, _foreign_order_json(h)) for i, h in enumerate(app.foreign_holdings)
                     if (not symbols or h["symbol"] in symbols) and side in (None, "", "buy")]
        rows.sort(key=lambda r: (r[0], r[1]), reverse=q.get("direction", "desc") != "asc")
        return 200, [o for _, _, o in rows[:limit]]

    def get_order(p, q, b, now):
        order = broker.orders.get(p["id"])
        if order is None:
            raise ApiError(404, "order not found", 40410000)
        return 200, order.to_json(nested=_bool(q, "nested"))

    def by_client_id(p, q, b, now):
        order = broker.by_client_id.get(q.get("client_order_id", ""))
        if order is None:
            raise ApiError(404, "order not found", 40410000)
        return 200, order.to_json(nested=True)

    def cancel_order(p, q, b, now):
        broker.cancel(p["id"], now)
        return 204, None

    def cancel_all_orders(p, q, b, now):
        return 207, [{"id": o.id, "status": 200, "body": o.to_json()} for o in broker.cancel_all(now)]

    contract_rows: dict[str, dict] = {}

    def _contract_json(c, now):
        row = contract_rows.get(c.symbol)
        if row is None:  # listing data never changes for a symbol: build it once
            row = contract_rows[c.symbol] = _contract_row(c)
        return {**row, **book.open_interest_fields(c, now, tape)}  # open interest changes daily

    def _contract_row(c):
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

    def _filtered_chain(q, now):
        unders = {s.strip().upper() for s in q.get("underlying_symbols", q.get("underlying", "")).split(",") if s.strip()}
        if unders and book.underlying not in unders:
            return []
        if q.get("root_symbol") and q["root_symbol"].upper() != book.underlying:
            return []
        exp_eq, exp_gte, exp_lte = q.get("expiration_date"), q.get("expiration_date_gte"), q.get("expiration_date_lte")
        typ = q.get("type")
        k_gte, k_lte = _float_param(q, "strike_price_gte"), _float_param(q, "strike_price_lte")
        out = []
        for c in book.chain(now, tape.price_at(now)):
            if exp_eq and c.expiration != exp_eq[:10] or exp_gte and c.expiration < exp_gte[:10]:
                continue
            if exp_lte and c.expiration > exp_lte[:10] or typ and c.type != typ:
                continue
            if k_gte is not None and c.strike < k_gte - 1e-9 or k_lte is not None and c.strike > k_lte + 1e-9:
                continue
            out.append(c)
        out.sort(key=lambda c: c.symbol)
        return out

    def _page(items, q, default, maximum):
        limit = _limit(q, default, maximum)
        token = q.get("page_token")
        if token:
            after = read_page_token(token)
            items = [c for c in items if c.symbol > after]
        page = items[:limit]
        nxt = page_token(page[-1].symbol) if len(items) > limit else None
        return page, nxt

    def contracts(p, q, b, now):
        if q.get("status") not in (None, "", "active"):
            return 200, {"option_contracts": [], "next_page_token": None}
        if q.get("style") not in (None, "", "american"):
            return 200, {"option_contracts": [], "next_page_token": None}
        page, nxt = _page(_filtered_chain(q, now), q, 100, 10_000)
        return 200, {"option_contracts": [_contract_json(c, now) for c in page], "next_page_token": nxt}

    def contract(p, q, b, now):
        c = parse_occ(p["symbol"])
        if c is None or not book.is_known(c, now):
            raise ApiError(404, "option contract not found", 40410000)
        return 200, _contract_json(c, now)

    def _otm(c, spot, which):
        return which == "all" or which == "otm" and (c.strike > spot if c.right == "C" else c.strike < spot)

    def _option_quote_json(px, ts, one_sided=False, feed="opra"):
        bid, ask = px["bid"], px["ask"]
        if feed == "indicative" and app.indicative_skew and bid > 0:
            k = min(app.indicative_skew, round((ask - bid) / 2, 2))  # never crossed
            bid, ask = round(bid + k, 2), round(ask - k, 2)
        bid, size = (0, 0) if one_sided else (bid, 10)
        return {"ap": ask, "as": 10, "ax": "C", "bp": bid, "bs": size, "bx": "C", "c": "A", "t": ts}

    def _option_feed(q):
        """Alpaca's default is OPRA with the subscription, else indicative; asking for OPRA
        without it is refused."""
        feed = q.get("feed") or ("opra" if app.subscription == "plus" else "indicative")
        if feed not in ("opra", "indicative"):
            raise ApiError(400, f"invalid feed: {feed}", 40010001)
        if feed == "opra" and app.subscription != "plus":
            raise ApiError(403, "subscription does not permit querying OPRA data")
        return feed

    def _stock_feed(q, end_ns, now):
        """The free plan serves SIP only older than 15 minutes, and never on latest endpoints."""
        feed = q.get("feed") or ("sip" if app.subscription == "plus" else "iex")
        if feed not in ("iex", "sip", "otc", "boats", "overnight"):
            raise ApiError(400, f"invalid feed: {feed}", 40010001)
        if feed == "sip" and app.subscription != "plus" and (end_ns is None or end_ns > now - 15 * 60 * 10**9):
            raise ApiError(403, "subscription does not permit querying recent SIP data")

    def _option_trade_json(px, ts):
        return {"c": "I", "p": round(px["mid"], 2), "s": 1, "t": ts, "x": "C"}

    def _snapshot(c, now, spot, ts, feed):
        px = book.price(c, now, spot)
        snap = {
            "latestQuote": _option_quote_json(px, ts, _otm(c, spot, app.one_sided), feed),
            "latestTrade": _option_trade_json(px, ts),
        }
        if not _otm(c, spot, app.missing_iv):  # optional fields: OTM 0DTE contracts may lack them
            snap["impliedVolatility"] = round(px["iv"], 6)
            snap["greeks"] = {k: round(px[k], 6) for k in ("delta", "gamma", "rho", "theta", "vega")}
        return snap

    def _quote_time(now):
        return rfc3339(now - app.quote_age_ns)

    def snapshots(p, q, b, now):
        feed = _option_feed(q)
        if p["underlying"].upper() != book.underlying:
            return 200, {"snapshots": {}, "next_page_token": None}
        page, nxt = _page(_filtered_chain(q, now), q, 100, 1000)
        spot, ts = tape.price_at(now), _quote_time(now)
        return 200, {"snapshots": {c.symbol: _snapshot(c, now, spot, ts, feed) for c in page}, "next_page_token": nxt}

    def _listed(q, now):
        """Contracts named in ``symbols`` that this market lists (unknown ones are left out)."""
        out = []
        for sym in (x.strip().upper() for x in q.get("symbols", "").split(",") if x.strip()):
            c = parse_occ(sym)
            if c is not None and c.root == book.underlying and book.expiry_ns(c) is not None:
                out.append(c)
        if not out and not q.get("symbols"):
            raise ApiError(422, "symbols is required", 40010001)
        return out

    def option_snapshots(p, q, b, now):
        feed = _option_feed(q)
        spot, ts = tape.price_at(now), _quote_time(now)
        return 200, {"snapshots": {c.symbol: _snapshot(c, now, spot, ts, feed) for c in _listed(q, now)},
                     "next_page_token": None}

    def option_quotes(p, q, b, now):
        feed = _option_feed(q)
        spot, ts = tape.price_at(now), _quote_time(now)
        return 200, {"quotes": {c.symbol: _option_quote_json(book.price(c, now, spot), ts,
                                                             _otm(c, spot, app.one_sided), feed)
                                for c in _listed(q, now)}}

    def option_trades(p, q, b, now):
        _option_feed(q)
        spot, ts = tape.price_at(now), rfc3339(now)
        return 200, {"trades": {c.symbol: _option_trade_json(book.price(c, now, spot), ts) for c in _listed(q, now)}}

    def stock_quotes(p, q, b, now):
        _stock_feed(q, None, now)
        symbols = [s.strip().upper() for s in q.get("symbols", "").split(",") if s.strip()]
        if not symbols:
            raise ApiError(422, "symbols is required", 40010001)
        px = tape.price_at(now)
        # A one-cent market around the last trade: the replayed data has no quotes.
        bid = math.floor(px * 100 + 1e-9) / 100
        quote = {"ap": round(bid + 0.01, 2), "as": 1, "ax": "V", "bp": round(bid, 2), "bs": 1, "bx": "V",
                 "c": ["R"], "t": rfc3339(now), "z": "B"}
        return 200, {"quotes": {s: quote for s in symbols if s == tape.symbol}}

    def asset(p, q, b, now):
        if p["symbol"].upper() != tape.symbol:
            raise ApiError(404, "asset not found", 40410000)
        return 200, {
            "id": contract_id(tape.symbol), "class": "us_equity", "exchange": "ARCA",
            "symbol": tape.symbol, "name": f"{tape.symbol} (offline replay)", "status": "active",
            "tradable": True, "marginable": True, "shortable": True, "easy_to_borrow": True,
            "fractionable": True, "maintenance_margin_requirement": 30,
            "attributes": ["has_options"],
        }

    def _bars_for(symbol, q, now):
        _stock_feed(q, _time_param(q, "end"), now)
        try:
            arr = tape.timeframe(q.get("timeframe", ""))
        except ValueError as exc:
            raise ApiError(422, str(exc), 42210000) from None
        _refuse_recent_sip(q, now)
        if app.history is not None:
            return _history_bars(symbol, q, now)
        if symbol.upper() != tape.symbol:
            return [], None
        visible = arr.complete_count(now)
        start = _time_param(q, "start")
        if start is None:  # Alpaca's default: the beginning of the current day
            start = int(to_et(now).normalize().value)
        end = _time_param(q, "end")
        lo = int(np.searchsorted(arr.start, start))
        hi = visible if end is None else min(visible, int(np.searchsorted(arr.start, end, side="right")))
        limit = _limit(q, 1000, _MAX_BARS_PAGE)
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

    def _refuse_recent_sip(q, now):
        # Free plan: SIP data of the last 15 minutes is refused (403), older SIP is served.
        end = _time_param(q, "end")
        if q.get("feed") == "sip" and (end is None or end > now - _SIP_DELAY_NS):
            raise ApiError(403, "subscription does not permit querying recent SIP data", 40310000)

    def _history_bars(symbol, q, now):
        h = app.history
        tf = q.get("timeframe", "")
        if symbol.upper() != h.symbol or tf not in ("1Min", "1Day"):
            return [], None
        start = _time_param(q, "start")
        start = int(to_et(now).normalize().value) if start is None else start
        end = min(_time_param(q, "end") or now, now)
        return h.stock_page("1Day" if tf == "1Day" else "1Min", start, end,
                            _limit(q, 1000, _MAX_BARS_PAGE), q.get("page_token"),
                            q.get("sort", "asc") == "desc")

    def option_bars(p, q, b, now):
        symbols = [s.strip().upper() for s in q.get("symbols", "").split(",") if s.strip()]
        if not symbols:
            raise ApiError(422, "symbols is required", 40010001)
        if q.get("timeframe") != "1Min":
            raise ApiError(422, "the offline server serves option bars of timeframe 1Min", 42210000)
        if app.history is None:
            return 200, {"bars": {}, "next_page_token": None}
        start = _time_param(q, "start") or 0
        end = min(_time_param(q, "end") or now, now)
        bars, nxt = app.history.option_page(symbols, start, end, _limit(q, 1000, _MAX_BARS_PAGE),
                                            q.get("page_token"))
        return 200, {"bars": bars, "next_page_token": nxt}

    def bars_multi(p, q, b, now):
        symbols = [s.strip().upper() for s in q.get("symbols", "").split(",") if s.strip()]
        if not symbols:
            raise ApiError(422, "symbols is required", 40010001)
        if len(symbols) > 1 and q.get("page_token"):
            raise ApiError(422, "the offline server pages one symbol at a time", 40010001)
        out, nxt = {}, None
        for s in symbols:
            bars, nxt_s = _bars_for(s, q, now)
            if bars:
                out[s] = bars
            nxt = nxt or nxt_s
        return 200, {"bars": out, "next_page_token": nxt}

    def bars_single(p, q, b, now):
        bars, nxt = _bars_for(p["symbol"], q, now)
        return 200, {"bars": bars, "symbol": p["symbol"].upper(), "next_page_token": nxt}

    def _latest_trade(now):
        j = int(np.searchsorted(tape.start, now, side="right")) - 1
        t = now if j >= 0 and now < tape.end[j] else (int(tape.end[j]) - 1000 if j >= 0 else now)
        return {"t": rfc3339(t), "x": "V", "p": round(tape.price_at(now), 4), "s": 100,
                "c": ["@"], "i": int(t // 1_000_000), "z": "B"}

    def trades_multi(p, q, b, now):
        _stock_feed(q, None, now)
        symbols = [s.strip().upper() for s in q.get("symbols", "").split(",") if s.strip()]
        if not symbols:
            raise ApiError(422, "symbols is required", 40010001)
        return 200, {"trades": {s: _latest_trade(now) for s in symbols if s == tape.symbol}}

    def trade_single(p, q, b, now):
        _stock_feed(q, None, now)
        if p["symbol"].upper() != tape.symbol:
            raise ApiError(404, f"no trade found for {p['symbol']}", 40410000)
        return 200, {"symbol": tape.symbol, "trade": _latest_trade(now)}

    def sim_clock_get(p, q, b, now):
        return 200, {"now": to_et(now).isoformat(), "speed": app.clock.speed}

    def sim_clock_post(p, q, b, now):
        if not isinstance(b, dict) or not ({"advance_seconds", "to"} & set(b)):
            raise ApiError(422, 'send {"advance_seconds": n} or {"to": "ISO time"}', 40010001)
        try:
            if "to" in b:
                new = app.clock.advance_to(b["to"])
            else:
                new = app.clock.advance(float(b["advance_seconds"]))
        except (ConfigError, TypeError, ValueError) as exc:
            raise ApiError(422, str(exc), 40010001) from None
        broker.sync(new)
        return 200, {"now": to_et(new).isoformat(), "speed": app.clock.speed}

    sym = r"(?P<symbol>[A-Za-z0-9.]+)"
    table = [
        ("GET", r"/v2/account", "account", account),
        ("GET", r"/v2/clock", "clock", clock),
        ("GET", r"/v2/calendar", "calendar", calendar),
        ("GET", r"/v2/account/activities", "account", activities),
        ("GET", r"/v2/account/activities/(?P<activity_type>[A-Za-z]+)", "account", activities),
        ("GET", r"/v2/positions", "positions", positions),
        ("DELETE", r"/v2/positions", "positions", close_all),
        ("GET", rf"/v2/positions/{sym}", "positions", position),
        ("DELETE", rf"/v2/positions/{sym}", "positions", close_position),
        ("POST", r"/v2/orders", "orders", submit),
        ("GET", r"/v2/orders", "orders", list_orders),
        ("DELETE", r"/v2/orders", "orders", cancel_all_orders),
        ("GET", r"/v2/orders:by_client_order_id", "orders", by_client_id),
        ("GET", r"/v2/orders/(?P<id>[^/]+)", "orders", get_order),
        ("DELETE", r"/v2/orders/(?P<id>[^/]+)", "orders", cancel_order),
        ("GET", r"/v2/options/contracts", "contracts", contracts),
        ("GET", rf"/v2/options/contracts/{sym}", "contracts", contract),
        ("GET", r"/v2/stocks/bars", "bars", bars_multi),
        ("GET", rf"/v2/stocks/{sym}/bars", "bars", bars_single),
        ("GET", r"/v2/stocks/trades/latest", "trades", trades_multi),
        ("GET", rf"/v2/stocks/{sym}/trades/latest", "trades", trade_single),
        ("GET", r"/v2/stocks/quotes/latest", "trades", stock_quotes),
        ("GET", rf"/v2/assets/{sym}", "account", asset),
        ("GET", r"/v1beta1/options/snapshots/(?P<underlying>[A-Za-z0-9.]+)", "snapshots", snapshots),
        ("GET", r"/v1beta1/options/snapshots", "snapshots", option_snapshots),
        ("GET", r"/v1beta1/options/quotes/latest", "snapshots", option_quotes),
        ("GET", r"/v1beta1/options/trades/latest", "snapshots", option_trades),
        ("GET", r"/v1beta1/options/bars", "bars", option_bars),
        ("GET", r"/_sim/clock", None, sim_clock_get),
        ("POST", r"/_sim/clock", None, sim_clock_post),
    ]
    return [(m, re.compile(pat), ep, fn) for m, pat, ep, fn in table]
