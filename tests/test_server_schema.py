"""Responses of the offline server checked against Alpaca's published OpenAPI response schemas.

The schemas below are transcribed from Alpaca's OpenAPI documents, reduced to what a
validator needs (types, nullability, enums, formats, required fields):
- Trading API 2.0.1: Order/OrderLeg, Position, OptionContract, legacy_clock,
  legacy_calendar_day, and the documented example of GET /v2/account;
- Market Data API 1.1: stock_bar, stock_bars_resp(_single), stock_trade,
  stock_latest_trades_resp(_single), stock_quote, option_quote, option_trade,
  option_greeks, option_snapshot, option_snapshots_resp.
A small validator keeps this free of extra dependencies.
"""

from __future__ import annotations

import re
import uuid

import pandas as pd
import pytest
import requests

from gammaride.offline import OfflineAlpaca
from gammaride.rules.contracts import occ_symbol

S = {"type": "string"}
S_NULL = {"type": "string", "nullable": True}
DT = {"type": "string", "format": "date-time"}
DT_NULL = {"type": "string", "format": "date-time", "nullable": True}
UUID_ = {"type": "string", "format": "uuid"}
UUID_NULL = {"type": "string", "format": "uuid", "nullable": True}
ASSET_CLASS = {"type": "string", "enum": ["us_equity", "us_option", "crypto", "ipo"]}
ORDER_STATUS = {"type": "string", "enum": [
    "new", "partially_filled", "filled", "done_for_day", "canceled", "expired", "replaced",
    "pending_cancel", "pending_replace", "accepted", "pending_new", "accepted_for_bidding",
    "stopped", "rejected", "suspended", "calculated",
    # Not in the document's enum, but Alpaca sends it for bracket legs waiting on their
    # entry, and alpaca-py's OrderStatus has it.
    "held",
]}

ORDER_LEG = {
    "type": "object",
    "required": ["notional", "type", "time_in_force"],
    "properties": {
        "id": S, "client_order_id": {"type": "string", "maxLength": 128},
        "created_at": DT, "updated_at": DT_NULL, "submitted_at": DT_NULL, "filled_at": DT_NULL,
        "expired_at": DT_NULL, "canceled_at": DT_NULL, "failed_at": DT_NULL, "replaced_at": DT_NULL,
        "replaced_by": UUID_NULL, "replaces": UUID_NULL, "asset_id": UUID_,
        "symbol": {"type": "string", "minLength": 1}, "asset_class": ASSET_CLASS,
        "notional": {"type": "string", "minLength": 1, "nullable": True},
        "qty": {"type": "string", "minLength": 1, "nullable": True},
        "filled_qty": {"type": "string", "minLength": 1}, "filled_avg_price": S_NULL,
        "order_class": {"type": "string", "enum": ["simple", "bracket", "oco", "oto", "mleg", ""]},
        "order_type": S,
        "type": {"type": "string", "enum": ["market", "limit", "stop", "stop_limit", "trailing_stop"]},
        "side": {"type": "string", "enum": ["buy", "sell"]},
        "time_in_force": {"type": "string", "enum": ["day", "gtc", "opg", "cls", "ioc", "fok"]},
        "limit_price": S_NULL, "stop_price": S_NULL, "status": ORDER_STATUS,
        "extended_hours": {"type": "boolean"},
        "trail_percent": S_NULL, "trail_price": S_NULL, "hwm": S_NULL,
        "position_intent": {"type": "string", "enum": ["buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close"]},
    },
}
ORDER = {**ORDER_LEG, "properties": {**ORDER_LEG["properties"],
                                     "legs": {"type": "array", "nullable": True, "items": ORDER_LEG}}}
NONEMPTY = {"type": "string", "minLength": 1}
POSITION = {
    "type": "object",
    "required": ["asset_id", "symbol", "exchange", "asset_class", "avg_entry_price", "qty", "side",
                 "market_value", "cost_basis", "unrealized_pl", "unrealized_plpc",
                 "unrealized_intraday_pl", "unrealized_intraday_plpc", "current_price",
                 "lastday_price", "change_today", "asset_marginable"],
    "properties": {
        "asset_id": UUID_, "symbol": S, "exchange": S, "asset_class": ASSET_CLASS,
        **{k: NONEMPTY for k in ("avg_entry_price", "qty", "qty_available", "side", "market_value",
                                 "cost_basis", "unrealized_pl", "unrealized_plpc", "unrealized_intraday_pl",
                                 "unrealized_intraday_plpc", "current_price", "lastday_price", "change_today")},
        "asset_marginable": {"type": "boolean"},
    },
}
OPTION_CONTRACT = {
    "type": "object",
    "required": ["id", "symbol", "name", "status", "tradable", "expiration_date", "underlying_symbol",
                 "underlying_asset_id", "type", "style", "strike_price", "multiplier", "size"],
    "properties": {
        "id": S, "symbol": S, "name": S, "status": {"type": "string", "enum": ["active", "inactive"]},
        "tradable": {"type": "boolean"}, "expiration_date": {"type": "string", "format": "date"},
        "root_symbol": S, "underlying_symbol": S, "underlying_asset_id": S,
        "type": {"type": "string", "enum": ["call", "put"]},
        "style": {"type": "string", "enum": ["american", "european"]},
        "strike_price": S, "multiplier": S, "size": S,
        "open_interest": S_NULL, "open_interest_date": {"type": "string", "format": "date", "nullable": True},
        "close_price": S_NULL, "close_price_date": {"type": "string", "format": "date", "nullable": True},
    },
}
CLOCK = {
    "type": "object", "required": ["timestamp", "is_open", "next_open", "next_close"],
    "properties": {"timestamp": DT, "is_open": {"type": "boolean"}, "next_open": DT, "next_close": DT},
}
CALENDAR_DAY = {
    "type": "object",
    "required": ["date", "open", "close", "session_open", "session_close", "settlement_date"],
    "properties": {"date": {"type": "string", "format": "date"}, "open": S, "close": S,
                   "session_open": S, "session_close": S,
                   "settlement_date": {"type": "string", "format": "date"}},
}
# Market Data API
TS = {"type": "string", "format": "date-time"}
NUM = {"type": "number"}
INT = {"type": "integer"}
NEXT_PAGE = {"type": "string", "nullable": True}
STOCK_BAR = {"type": "object", "required": ["t", "o", "h", "l", "c", "v", "n", "vw"],
             "properties": {"t": TS, "o": NUM, "h": NUM, "l": NUM, "c": NUM, "v": INT, "n": INT, "vw": NUM}}
STOCK_BARS_RESP = {"type": "object", "required": ["bars", "next_page_token"],
                   "properties": {"bars": {"type": "object", "additionalProperties": {"type": "array", "items": STOCK_BAR}},
                                  "next_page_token": NEXT_PAGE}}
STOCK_BARS_RESP_SINGLE = {"type": "object", "required": ["bars", "next_page_token", "symbol"],
                          "properties": {"symbol": S, "bars": {"type": "array", "items": STOCK_BAR},
                                         "next_page_token": NEXT_PAGE}}
STOCK_TAPE = {"type": "string", "enum": ["A", "B", "C", "N", "O"]}
STOCK_TRADE = {"type": "object", "required": ["t", "i", "x", "p", "s", "c", "z"],
               "properties": {"t": TS, "x": S, "p": NUM, "s": INT, "i": INT,
                              "c": {"type": "array", "items": S}, "z": STOCK_TAPE}}
STOCK_LATEST_TRADES = {"type": "object", "required": ["trades"],
                       "properties": {"trades": {"type": "object", "additionalProperties": STOCK_TRADE}}}
STOCK_LATEST_TRADE_SINGLE = {"type": "object", "required": ["trade", "symbol"],
                             "properties": {"trade": STOCK_TRADE, "symbol": S}}
STOCK_QUOTE = {"type": "object", "required": ["t", "bx", "bp", "bs", "ap", "as", "ax", "c", "z"],
               "properties": {"t": TS, "bx": S, "bp": NUM, "bs": INT, "ax": S, "ap": NUM, "as": INT,
                              "c": {"type": "array", "items": S}, "z": STOCK_TAPE}}
STOCK_LATEST_QUOTES = {"type": "object", "required": ["quotes"],
                       "properties": {"quotes": {"type": "object", "additionalProperties": STOCK_QUOTE}}}
OPTION_QUOTE = {"type": "object", "required": ["t", "bx", "bp", "bs", "ap", "as", "ax", "c"],
                "properties": {"t": TS, "bx": S, "bp": NUM, "bs": INT, "ax": S, "ap": NUM, "as": INT, "c": S}}
OPTION_TRADE = {"type": "object", "required": ["t", "x", "p", "s", "c"],
                "properties": {"t": TS, "x": S, "p": NUM, "s": INT, "c": S}}
OPTION_GREEKS = {"type": "object", "required": ["delta", "gamma", "theta", "vega", "rho"],
                 "properties": {k: NUM for k in ("delta", "gamma", "theta", "vega", "rho")}}
OPTION_SNAPSHOT = {"type": "object", "properties": {
    "greeks": OPTION_GREEKS, "impliedVolatility": NUM, "latestQuote": OPTION_QUOTE, "latestTrade": OPTION_TRADE}}
OPTION_SNAPSHOTS_RESP = {"type": "object", "required": ["snapshots", "next_page_token"],
                         "properties": {"snapshots": {"type": "object", "additionalProperties": OPTION_SNAPSHOT},
                                        "next_page_token": NEXT_PAGE}}
OPTION_LATEST_QUOTES = {"type": "object", "required": ["quotes"],
                        "properties": {"quotes": {"type": "object", "additionalProperties": OPTION_QUOTE}}}
OPTION_LATEST_TRADES = {"type": "object", "required": ["trades"],
                        "properties": {"trades": {"type": "object", "additionalProperties": OPTION_TRADE}}}

# GET /v2/account: the document's example, as field -> JSON type, without the fields Alpaca
# removed on 2026-07-06 (pattern_day_trader, daytrade_count, daytrading_buying_power).
ACCOUNT_EXAMPLE_TYPES = {
    "id": str, "admin_configurations": dict, "user_configurations": type(None), "account_number": str,
    "status": str, "crypto_status": str, "currency": str, "buying_power": str, "regt_buying_power": str,
    "options_buying_power": str, "effective_buying_power": str,
    "non_marginable_buying_power": str, "bod_dtbp": (int, str), "cash": str, "accrued_fees": str,
    "pending_transfer_in": str, "portfolio_value": str,
    "trading_blocked": bool, "transfers_blocked": bool, "account_blocked": bool, "created_at": str,
    "trade_suspended_by_user": bool, "multiplier": str, "shorting_enabled": bool, "equity": str,
    "last_equity": str, "long_market_value": str, "short_market_value": str,
    "position_market_value": str, "initial_margin": str, "maintenance_margin": str,
    "last_maintenance_margin": str, "sma": str, "balance_asof": str,
    "crypto_tier": int, "options_trading_level": int, "intraday_adjustments": str,
    "pending_reg_taf_fees": str,
}

_TYPES = {"string": str, "boolean": bool, "integer": int, "number": (int, float), "array": list, "object": dict}
_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def validate(value, schema, where="$") -> list[str]:
    """Errors of ``value`` against an OpenAPI 3.0 schema subset (empty list: valid)."""
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null but not nullable"]
    want = _TYPES[schema["type"]]
    if not isinstance(value, want) or (schema["type"] in ("integer", "number") and isinstance(value, bool)):
        return [f"{where}: {type(value).__name__} is not {schema['type']}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in enum")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 10**9):
            errors.append(f"{where}: length {len(value)} out of bounds")
        fmt = schema.get("format")
        if fmt == "date-time" and not _DATE_TIME.match(value):
            errors.append(f"{where}: {value!r} is not date-time")
        if fmt == "date" and not re.fullmatch(r"\d{4}-\d\d-\d\d", value):
            errors.append(f"{where}: {value!r} is not a date")
        if fmt == "uuid":
            try:
                uuid.UUID(value)
            except ValueError:
                errors.append(f"{where}: {value!r} is not a uuid")
    if isinstance(value, dict):
        errors += [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
        for k, sub in schema.get("properties", {}).items():
            if k in value:
                errors += validate(value[k], sub, f"{where}.{k}")
        if "additionalProperties" in schema:
            for k, v in value.items():
                errors += validate(v, schema["additionalProperties"], f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], f"{where}[{i}]")
    return errors


def test_validator_catches_violations():
    assert validate({"timestamp": "2013-10-07T10:00:00-04:00", "is_open": True,
                     "next_open": "2013-10-08T09:30:00-04:00", "next_close": "2013-10-07T16:00:00-04:00"}, CLOCK) == []
    errs = validate({"timestamp": "yesterday", "is_open": "yes", "next_open": None}, CLOCK)
    assert any("not date-time" in e for e in errs) and any("is_open" in e for e in errs)
    assert any("missing next_close" in e for e in errs) and any("null" in e for e in errs)
    assert validate({"status": "weird", "notional": None, "type": "market", "time_in_force": "day"}, ORDER)


@pytest.fixture
def traffic(sample):
    """Drive every trading endpoint once with real HTTP and keep the parsed answers."""
    with OfflineAlpaca(bars=sample, start="2013-10-07 10:00", speed=0) as s:
        h = {"APCA-API-KEY-ID": s.key_id, "APCA-API-SECRET-KEY": s.secret_key}

        def call(method, path, **kw):
            r = requests.request(method, s.url + path, headers=h, timeout=5, **kw)
            assert r.status_code in (200, 204, 207), (path, r.text)
            return r.json() if r.text else None

        opt = occ_symbol("SPY", "2013-10-08", "call", 168)
        out = {
            "account": call("GET", "/v2/account"),
            "clock": call("GET", "/v2/clock"),
            "calendar": call("GET", "/v2/calendar", params={"start": "2013-11-25", "end": "2013-12-02"}),
            "option_order": call("POST", "/v2/orders", json={"symbol": opt, "qty": "1", "side": "buy",
                                                            "type": "market", "time_in_force": "day"}),
            "bracket": call("POST", "/v2/orders", json={
                "symbol": "SPY", "qty": "2", "side": "buy", "type": "market", "time_in_force": "day",
                "order_class": "bracket", "take_profit": {"limit_price": "175"},
                "stop_loss": {"stop_price": "160"}}),
            "resting": call("POST", "/v2/orders", json={"symbol": opt, "qty": "1", "side": "sell",
                                                        "type": "limit", "limit_price": "9.99", "time_in_force": "day"}),
        }
        out["positions"] = call("GET", "/v2/positions")
        out["orders_nested"] = call("GET", "/v2/orders", params={"status": "all", "nested": "true"})
        out["orders_flat"] = call("GET", "/v2/orders", params={"status": "all"})
        out["by_client"] = call("GET", "/v2/orders:by_client_order_id",
                                params={"client_order_id": out["bracket"]["client_order_id"]})
        call("DELETE", f"/v2/orders/{out['resting']['id']}")
        out["canceled"] = call("GET", f"/v2/orders/{out['resting']['id']}")
        out["closed"] = call("DELETE", f"/v2/positions/{opt}")
        out["contracts"] = call("GET", "/v2/options/contracts", params={"underlying_symbols": "SPY"})
        assert s.errors == []
        return out


def test_trading_responses_match_alpaca_schemas(traffic):
    assert validate(traffic["clock"], CLOCK) == []
    for day in traffic["calendar"]:
        assert validate(day, CALENDAR_DAY) == []
    for key in ("option_order", "bracket", "resting", "by_client", "canceled", "closed"):
        assert validate(traffic[key], ORDER, key) == []
    for o in traffic["orders_nested"] + traffic["orders_flat"]:
        assert validate(o, ORDER) == []
    for p in traffic["positions"]:
        assert validate(p, POSITION) == []
    assert len(traffic["positions"]) == 2
    assert len(traffic["contracts"]["option_contracts"]) == 100
    for c in traffic["contracts"]["option_contracts"]:
        assert validate(c, OPTION_CONTRACT) == []
    assert traffic["bracket"]["legs"][0]["status"] == "new" and traffic["canceled"]["status"] == "canceled"


def test_account_has_every_documented_field_with_its_json_type(traffic):
    acct = traffic["account"]
    missing = set(ACCOUNT_EXAMPLE_TYPES) - set(acct)
    assert missing == set()
    wrong = {k: type(acct[k]).__name__ for k, t in ACCOUNT_EXAMPLE_TYPES.items() if not isinstance(acct[k], t)}
    assert wrong == {}
    # Money fields are decimal strings.
    for k in ("buying_power", "cash", "equity", "options_buying_power", "portfolio_value"):
        float(acct[k])
    assert pd.Timestamp(acct["created_at"]).tzinfo is not None


def test_market_data_responses_match_alpaca_schemas(sample):
    with OfflineAlpaca(bars=sample, start="2013-10-07 10:00:30", speed=0) as s:
        h = {"APCA-API-KEY-ID": s.key_id, "APCA-API-SECRET-KEY": s.secret_key}

        def get(path, **params):
            r = requests.get(s.url + path, headers=h, params=params, timeout=5)
            assert r.status_code == 200, (path, r.text)
            return r.json()

        opt = occ_symbol("SPY", "2013-10-08", "call", 168)
        cases = [
            (get("/v2/stocks/bars", symbols="SPY", timeframe="1Min", limit=50, start="2013-10-04T13:30:00Z"), STOCK_BARS_RESP),
            (get("/v2/stocks/SPY/bars", timeframe="1Min", limit=50), STOCK_BARS_RESP_SINGLE),
            (get("/v2/stocks/trades/latest", symbols="SPY", feed="iex"), STOCK_LATEST_TRADES),
            (get("/v2/stocks/SPY/trades/latest"), STOCK_LATEST_TRADE_SINGLE),
            (get("/v2/stocks/quotes/latest", symbols="SPY"), STOCK_LATEST_QUOTES),
            (get("/v1beta1/options/snapshots/SPY", feed="indicative"), OPTION_SNAPSHOTS_RESP),
            (get("/v1beta1/options/snapshots", symbols=opt), OPTION_SNAPSHOTS_RESP),
            (get("/v1beta1/options/quotes/latest", symbols=opt), OPTION_LATEST_QUOTES),
            (get("/v1beta1/options/trades/latest", symbols=opt), OPTION_LATEST_TRADES),
        ]
        for body, schema in cases:
            assert validate(body, schema) == []
        assert len(cases[0][0]["bars"]["SPY"]) == 50 and cases[0][0]["next_page_token"]
        assert len(cases[5][0]["snapshots"]) == 100  # the default page size, like Alpaca
        assert s.errors == []
