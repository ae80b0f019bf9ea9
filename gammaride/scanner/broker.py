"""The broker boundary: the ``Broker`` protocol and ``AlpacaBroker`` over alpaca-py.

This is the only module that imports alpaca-py. Every reply becomes one of the small
frozen dataclasses below, with the SDK's string money turned into floats and every
time into a tz-aware America/New_York ``Timestamp``. Every failure (HTTP error,
timeout, dropped connection, malformed reply) becomes a :class:`BrokerError` whose
``status``/``kind`` say what happened; a secret never appears in its message.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

import pandas as pd

from gammaride.config import ET
from gammaride.errors import BrokerError, broker_error
from gammaride.keys import Keys, redact, safe_url
from gammaride.rules.contracts import CHAIN_COLUMNS, parse_occ

BAR_COLUMNS = ["open", "high", "low", "close", "volume"]


# --- our own types -------------------------------------------------------------------
@dataclass(frozen=True)
class Account:
    equity: float
    last_equity: float  # equity at the previous close: the day's starting equity
    cash: float
    buying_power: float
    options_buying_power: float
    options_level: int | None
    status: str
    currency: str = "USD"


@dataclass(frozen=True)
class MarketClock:
    timestamp: pd.Timestamp
    is_open: bool
    next_open: pd.Timestamp
    next_close: pd.Timestamp


@dataclass(frozen=True)
class SessionDay:
    date: pd.Timestamp  # naive session date
    open: pd.Timestamp
    close: pd.Timestamp


@dataclass(frozen=True)
class LatestTrade:
    price: float
    time: pd.Timestamp


@dataclass(frozen=True)
class OptionQuote:
    """The latest quote of one contract, with its time and the feed it came from."""

    symbol: str
    bid: float  # NaN or 0 when one-sided
    ask: float
    time: pd.Timestamp | None
    feed: str  # opra | indicative


@dataclass(frozen=True)
class OrderSpec:
    """What to send. ``type`` market | limit | stop; ``order_class`` simple | bracket."""

    symbol: str
    qty: float
    side: str  # buy | sell
    type: str = "limit"
    limit_price: float | None = None
    stop_price: float | None = None
    client_order_id: str | None = None
    order_class: str = "simple"
    take_profit: float | None = None  # bracket only
    stop_loss: float | None = None  # bracket only
    time_in_force: str = "day"


@dataclass(frozen=True)
class OrderInfo:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    filled_qty: float
    filled_avg_price: float  # NaN until filled
    status: str
    type: str
    order_class: str
    limit_price: float
    stop_price: float
    submitted_at: pd.Timestamp | None
    filled_at: pd.Timestamp | None
    legs: tuple[OrderInfo, ...] = field(default_factory=tuple)

    @property
    def is_filled(self) -> bool:
        return self.status == "filled"

    @property
    def is_done(self) -> bool:
        return self.status in DONE_STATUSES


DONE_STATUSES = frozenset({"filled", "canceled", "expired", "rejected", "done_for_day", "replaced"})


@dataclass(frozen=True)
class PositionInfo:
    symbol: str
    qty: float  # signed: negative for a short
    avg_entry_price: float
    current_price: float
    asset_class: str


class Broker(Protocol):
    """What the scanner needs from a broker. Times are tz-aware; money is float."""

    paper: bool

    def account(self) -> Account: ...
    def clock(self) -> MarketClock: ...
    def calendar(self, start: date, end: date) -> list[SessionDay]: ...
    def bars(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame: ...
    def daily_closes(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series: ...
    def latest_trade(self, symbol: str) -> LatestTrade: ...
    def option_chain(
        self, symbol: str, expiration_gte: date, expiration_lte: date,
        strike_gte: float | None = None, strike_lte: float | None = None,
    ) -> pd.DataFrame: ...
    def submit_order(self, spec: OrderSpec) -> OrderInfo: ...
    def get_order(self, order_id: str) -> OrderInfo: ...
    def order_by_client_id(self, client_order_id: str) -> OrderInfo | None: ...
    def cancel_order(self, order_id: str) -> None: ...
    def orders(self, status: str = "all", after: pd.Timestamp | None = None) -> list[OrderInfo]: ...
    def positions(self) -> list[PositionInfo]: ...
    def gamma_chain(
        self, symbol: str, expiration_gte: date, expiration_lte: date,
        strike_gte: float | None = None, strike_lte: float | None = None,
    ) -> pd.DataFrame: ...
    def open_interest(
        self, symbol: str, expiration_gte: date, expiration_lte: date,
        strike_gte: float | None = None, strike_lte: float | None = None,
    ) -> pd.DataFrame: ...


# --- conversions ---------------------------------------------------------------------
def money(value: Any) -> float:
    """The SDK's string money (or None) as a float; NaN when absent."""
    if value is None or value == "":
        return math.nan
    return float(value)


def et(value: Any) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tz is None else ts).tz_convert(ET)


def _order(o: dict) -> OrderInfo:
    """One order from Alpaca's raw JSON. Read field by field, so an order of an asset class
    alpaca-py does not know (treasury, us_index, ...) is read like any other."""
    return OrderInfo(
        id=str(o["id"]),
        client_order_id=str(o.get("client_order_id") or ""),
        symbol=str(o.get("symbol") or ""),
        side=str(o.get("side") or ""),
        qty=money(o.get("qty")),
        filled_qty=money(o.get("filled_qty")) if o.get("filled_qty") is not None else 0.0,
        filled_avg_price=money(o.get("filled_avg_price")),
        status=str(o.get("status") or ""),
        type=str(o.get("order_type") or o.get("type") or ""),
        order_class=str(o.get("order_class") or "simple"),
        limit_price=money(o.get("limit_price")),
        stop_price=money(o.get("stop_price")),
        submitted_at=et(o.get("submitted_at")),
        filled_at=et(o.get("filled_at")),
        legs=tuple(_order(leg) for leg in (o.get("legs") or ())),
    )


def _position(p: dict) -> PositionInfo:
    qty = money(p.get("qty"))
    if str(p.get("side") or "") == "short" and qty > 0:
        qty = -qty
    return PositionInfo(str(p.get("symbol") or ""), qty, money(p.get("avg_entry_price")),
                        money(p.get("current_price")), str(p.get("asset_class") or ""))


def bars_frame(raw: list[dict]) -> pd.DataFrame:
    """Raw Alpaca bars (``t`` = bar start, UTC) to the project's bars frame: ET bar-start
    index, float OHLCV, regular hours only, sorted, unique."""
    if not raw:
        idx = pd.DatetimeIndex([], tz=ET, name="timestamp").as_unit("ns")
        return pd.DataFrame({c: pd.Series(dtype=float) for c in BAR_COLUMNS}, index=idx)
    idx = pd.DatetimeIndex(pd.to_datetime([r["t"] for r in raw], utc=True)).tz_convert(ET).as_unit("ns")
    frame = pd.DataFrame(
        {
            "open": [float(r["o"]) for r in raw],
            "high": [float(r["h"]) for r in raw],
            "low": [float(r["l"]) for r in raw],
            "close": [float(r["c"]) for r in raw],
            "volume": [float(r["v"]) for r in raw],
        },
        index=idx.rename("timestamp"),
    )
    from gammaride.rules.session import regular_hours  # the one session filter (early closes too)

    frame = frame[~frame.index.duplicated(keep="last")]
    return regular_hours(frame.sort_index())


def chain_frame(raw: dict[str, dict]) -> pd.DataFrame:
    """Raw option-chain snapshots keyed by OCC symbol to a chain frame (contracts.py)."""
    rows = []
    for sym, snap in (raw or {}).items():
        try:
            _, exp, kind, strike = parse_occ(sym)
        except ValueError:
            continue
        q = snap.get("latestQuote") or {}
        g = snap.get("greeks") or {}
        rows.append(
            (sym, exp, kind, strike, money(q.get("bp")), money(q.get("ap")),
             money(snap.get("impliedVolatility")), money(g.get("delta")))
        )
    frame = pd.DataFrame(rows, columns=CHAIN_COLUMNS)
    frame["expiration"] = pd.to_datetime(frame["expiration"])
    for c in ("strike", "bid", "ask", "iv", "delta"):
        frame[c] = frame[c].astype(float)
    return frame.sort_values(["expiration", "type", "strike"]).reset_index(drop=True)


def _utc(ts: object) -> datetime:
    """A UTC ``datetime`` for alpaca-py, floored to the microsecond (a clock estimate with
    nanoseconds would make pandas warn "Discarding nonzero nanoseconds" on every scan)."""
    return pd.Timestamp(ts).tz_convert("UTC").floor("us").to_pydatetime()


# --- alpaca-py -----------------------------------------------------------------------
class AlpacaBroker:
    """alpaca-py's trading, stock-data and option-data clients behind the ``Broker`` protocol.

    ``url`` overrides all three base URLs (the offline server). ``timeout`` bounds every
    request (requests has none by default: a hung socket would freeze a scan).
    ``retry_wait`` is alpaca-py's pause between its own 429/504 retries (3 s default).
    """

    def __init__(
        self,
        keys: Keys,
        paper: bool = True,
        url: str | None = None,
        feed: str = "iex",
        option_feed: str = "auto",
        timeout: float = 10.0,
        retry_wait: float | None = None,
        retries: int | None = None,
        read_attempts: int = 3,
    ):
        from alpaca.data.historical.option import OptionHistoricalDataClient
        from alpaca.data.historical.stock import StockHistoricalDataClient
        from alpaca.trading.client import TradingClient

        self.paper = paper
        self.url = url = None if url is None else safe_url(url, what="broker URL", alpaca=True)
        self.feed = feed
        if option_feed not in ("auto", "opra", "indicative"):
            raise ValueError(f"option_feed {option_feed!r} is not auto, opra or indicative")
        self.option_feed = option_feed
        # the option feed in use: known once an option request succeeded (auto tries OPRA
        # first and keeps to indicative after a 403: the account has no OPRA subscription)
        self.option_feed_used: str | None = None if option_feed == "auto" else option_feed
        self.read_attempts = max(1, int(read_attempts))
        self.key_id_masked = keys.masked
        self._secret = keys.secret  # only to scrub it from error text
        # raw JSON from the trading API too: alpaca-py 0.44 validates enums strictly, and one
        # position or order of an asset class it does not know (Alpaca also lists treasury,
        # corporate, global_equity, us_index, us_equity_chain, ipo) fails the whole list
        self.trading = TradingClient(keys.key_id, keys.secret, paper=paper, url_override=url, raw_data=True)
        self.stocks = StockHistoricalDataClient(keys.key_id, keys.secret, url_override=url, raw_data=True)
        self.options = OptionHistoricalDataClient(keys.key_id, keys.secret, url_override=url, raw_data=True)
        for client in (self.trading, self.stocks, self.options):
            client._session.request = functools.partial(client._session.request, timeout=timeout)
            client._session.max_redirects = 0  # a redirect would resend the key headers elsewhere
            if retry_wait is not None:
                client._retry_wait = retry_wait
            if retries is not None:
                client._retry = retries

    def __repr__(self) -> str:
        return f"AlpacaBroker(key {self.key_id_masked}, {'paper' if self.paper else 'LIVE'}, url={self.url or 'alpaca'})"

    # every call goes through here: one place turns SDK/network failures into BrokerError
    def _call(self, what: str, fn, *args, **kwargs):
        """Run ``fn``; reads (everything but order submission) are retried on transient
        failures (5xx, 429, timeout, dropped connection, malformed reply): repeating a read
        changes nothing at the broker, and one lost packet should not cost a scan."""
        from gammaride.scanner.retry import is_transient, with_retries

        return with_retries(
            lambda: self._once(what, fn, *args, **kwargs),
            attempts=1 if what.startswith("submit") else self.read_attempts,
            retry_if=lambda exc: exc.kind != "http" or is_transient(exc),
        )

    def _once(self, what: str, fn, *args, **kwargs):
        import requests
        from alpaca.common.exceptions import APIError
        from pydantic import ValidationError

        try:
            return fn(*args, **kwargs)
        except APIError as exc:
            status = exc.status_code
            try:
                text = exc.message
            except Exception:
                text = str(exc)[:300]
            raise self._error(what, f"HTTP {status}: {text}", status, "http") from None
        except requests.Timeout:
            raise self._error(what, "timed out", None, "timeout") from None
        except requests.JSONDecodeError:
            raise self._error(what, "malformed reply (not JSON)", None, "malformed") from None
        except requests.RequestException as exc:
            raise self._error(what, f"network error ({type(exc).__name__})", None, "network") from None
        except (ValidationError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self._error(what, f"malformed reply ({type(exc).__name__})", None, "malformed") from None

    def _error(self, what: str, text: str, status: int | None, kind: str) -> BrokerError:
        return broker_error(redact(f"{what} failed: {text}", self._secret), status, kind,
                            auth_403=what in ("account", "clock"))

    # account and market --------------------------------------------------------
    def account(self) -> Account:
        def get() -> Account:
            a = self.trading.get_account()
            obp = a.get("options_buying_power")
            level = a.get("options_trading_level")
            return Account(
                equity=money(a["equity"]),
                last_equity=money(a.get("last_equity")),
                cash=money(a.get("cash")),
                buying_power=money(a.get("buying_power")),
                options_buying_power=money(obp if obp is not None else a.get("buying_power")),
                options_level=int(level) if level is not None else None,
                status=str(a.get("status") or ""),
                currency=str(a.get("currency") or "USD"),
            )

        return self._call("account", get)

    def clock(self) -> MarketClock:
        def get() -> MarketClock:
            c = self.trading.get_clock()
            return MarketClock(et(c["timestamp"]), bool(c["is_open"]), et(c["next_open"]), et(c["next_close"]))

        return self._call("clock", get)

    def calendar(self, start: date, end: date) -> list[SessionDay]:
        from alpaca.trading.requests import GetCalendarRequest

        def get() -> list[SessionDay]:
            days = self.trading.get_calendar(GetCalendarRequest(start=start, end=end))
            out = []
            for d in days:
                day = pd.Timestamp(d["date"])
                # the exchange's local HH:MM on that day
                out.append(SessionDay(day, _local(f"{d['date']} {d['open']}"), _local(f"{d['date']} {d['close']}")))
            return out

        return self._call("calendar", get)

    def bars(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        req = StockBarsRequest(
            symbol_or_symbols=symbol, timeframe=TimeFrame.Minute,
            start=_utc(start),
            end=_utc(end), feed=DataFeed(self.feed),
        )
        return self._stock_data("bars", lambda: bars_frame(self.stocks.get_stock_bars(req).get(symbol, [])))

    def _stock_data(self, what: str, get):
        """A stock-data call; a 403 on the SIP feed gets its cause and fix (the free plan
        serves no SIP data from the last 15 minutes and none on latest endpoints)."""
        try:
            return self._call(what, get)
        except BrokerError as exc:
            if self.feed != "sip" or getattr(exc, "status", None) != 403:
                raise
            err = BrokerError(f"{exc} - the sip feed needs a paid data plan for the last 15 minutes; "
                              'set feed = "iex" (GAMMARIDE_FEED=iex) or subscribe to Algo Trader Plus')
            err.status, err.kind = 403, "http"  # type: ignore[attr-defined]
            raise err from None

    def daily_closes(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        req = StockBarsRequest(
            symbol_or_symbols=symbol, timeframe=TimeFrame.Day,
            start=_utc(start),
            end=_utc(end), feed=DataFeed(self.feed),
        )

        def get() -> pd.Series:
            raw = self.stocks.get_stock_bars(req).get(symbol, [])
            days = pd.to_datetime([r["t"] for r in raw], utc=True).tz_convert(ET).tz_localize(None).normalize()
            return pd.Series([float(r["c"]) for r in raw], index=pd.DatetimeIndex(days), dtype=float)

        return self._stock_data("daily bars", get)

    def latest_trade(self, symbol: str) -> LatestTrade:
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import StockLatestTradeRequest

        req = StockLatestTradeRequest(symbol_or_symbols=symbol, feed=DataFeed(self.feed))

        def get() -> LatestTrade:
            raw = self.stocks.get_stock_latest_trade(req)[symbol]
            return LatestTrade(float(raw["p"]), et(raw["t"]))

        return self._stock_data("latest trade", get)

    def option_chain(
        self, symbol: str, expiration_gte: date, expiration_lte: date,
        strike_gte: float | None = None, strike_lte: float | None = None,
    ) -> pd.DataFrame:
        return self._chain("option chain", chain_frame, symbol, expiration_gte, expiration_lte,
                           strike_gte, strike_lte)

    def _chain(self, what: str, frame, symbol: str, expiration_gte: date, expiration_lte: date,
               strike_gte: float | None, strike_lte: float | None) -> pd.DataFrame:
        """The underlying's chain snapshots (alpaca-py follows the pages) read by ``frame``."""
        from alpaca.data.requests import OptionChainRequest

        def get(feed):
            req = OptionChainRequest(
                underlying_symbol=symbol, feed=feed,
                expiration_date_gte=expiration_gte, expiration_date_lte=expiration_lte,
                strike_price_gte=strike_gte, strike_price_lte=strike_lte,
            )
            return frame(self.options.get_option_chain(req))

        return self._option_data(what, get)

    def option_quote(self, contract: str) -> OptionQuote:
        """The contract's latest quote (its time says how old it is)."""
        from alpaca.data.requests import OptionLatestQuoteRequest

        def get(feed):
            raw = self.options.get_option_latest_quote(OptionLatestQuoteRequest(symbol_or_symbols=contract, feed=feed))
            q = raw[contract]
            return OptionQuote(contract, money(q.get("bp")), money(q.get("ap")), et(q.get("t")), feed.value)

        return self._option_data("option quote", get)

    def _option_data(self, what: str, get):
        from alpaca.data.enums import OptionsFeed

        feed = self.option_feed_used or "opra"
        try:
            out = self._call(what, get, OptionsFeed(feed))
        except BrokerError as exc:
            if not (self.option_feed == "auto" and feed == "opra" and getattr(exc, "status", None) == 403):
                raise
            feed = "indicative"
            out = self._call(what, get, OptionsFeed(feed))
        self.option_feed_used = feed
        return out

    # orders and positions --------------------------------------------------------
    def submit_order(self, spec: OrderSpec) -> OrderInfo:
        return self._call(f"submit {spec.side} {spec.symbol}", lambda: _order(self.trading.submit_order(_request(spec))))

    def get_order(self, order_id: str) -> OrderInfo:
        from alpaca.trading.requests import GetOrderByIdRequest

        # nested: a bracket's legs come with it (they must be seen, and cancelled, by id)
        req = GetOrderByIdRequest(nested=True)
        return self._call("order status", lambda: _order(self.trading.get_order_by_id(order_id, req)))

    def order_by_client_id(self, client_order_id: str) -> OrderInfo | None:
        try:
            return self._call("order lookup", lambda: _order(self.trading.get_order_by_client_id(client_order_id)))
        except BrokerError as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def cancel_order(self, order_id: str) -> None:
        self._call("cancel order", self.trading.cancel_order_by_id, order_id)

    def orders(self, status: str = "all", after: pd.Timestamp | None = None) -> list[OrderInfo]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        req = GetOrdersRequest(
            status=QueryOrderStatus(status), limit=500, nested=True,
            after=_utc(after) if after is not None else None,
        )
        return self._call("list orders", lambda: [_order(o) for o in self.trading.get_orders(req)])

    def positions(self) -> list[PositionInfo]:
        return self._call("positions", lambda: [_position(p) for p in self.trading.get_all_positions()])

    def account_activities(self, types: tuple[str, ...], after: pd.Timestamp | None = None) -> list[dict]:
        """Account activities of ``types`` (e.g. OPEXC, OPASN, OPEXP, OPTRD), oldest first,
        as Alpaca's plain dicts. alpaca-py 0.44 has no method for GET /v2/account/activities:
        this goes through the trading client's own request path (auth, retries, timeout)."""
        params = {"activity_types": ",".join(types), "direction": "asc", "page_size": 100}
        if after is not None:
            params["after"] = pd.Timestamp(after).tz_convert("UTC").isoformat()

        def get() -> list[dict]:
            out: list[dict] = []
            for _ in range(20):  # pages of 100: far more than a day's option events
                page = self.trading.get("/account/activities", dict(params)) or []
                if not isinstance(page, list):
                    raise TypeError("activities reply is not a list")
                out.extend(a for a in page if isinstance(a, dict))
                if len(page) < params["page_size"]:
                    break
                params["page_token"] = page[-1].get("id")
            return out

        return self._call("account activities", get)

    # dealer gamma ------------------------------------------------------------------
    def gamma_chain(
        self, symbol: str, expiration_gte: date, expiration_lte: date,
        strike_gte: float | None = None, strike_lte: float | None = None,
    ) -> pd.DataFrame:
        """The chain frame plus each snapshot's ``gamma`` (NaN where the snapshot has none);
        alpaca-py follows the pages (1,000 snapshots each)."""
        return self._chain("gamma chain", gamma_chain_frame, symbol, expiration_gte, expiration_lte,
                           strike_gte, strike_lte)

    def open_interest(
        self, symbol: str, expiration_gte: date, expiration_lte: date,
        strike_gte: float | None = None, strike_lte: float | None = None,
    ) -> pd.DataFrame:
        """Open interest of the underlying's active contracts from the option contracts
        endpoint: ``symbol``, ``open_interest`` (NaN when absent), ``open_interest_date``.
        Alpaca publishes it once a day (the previous session's figure), so call it once a
        session. Every page (10,000 contracts each) is its own retried request."""
        from alpaca.trading.enums import AssetStatus
        from alpaca.trading.requests import GetOptionContractsRequest

        rows: list[tuple] = []
        token: str | None = None
        for _ in range(_MAX_CONTRACT_PAGES):
            req = GetOptionContractsRequest(
                underlying_symbols=[symbol], status=AssetStatus.ACTIVE,
                expiration_date_gte=expiration_gte, expiration_date_lte=expiration_lte,
                strike_price_gte=None if strike_gte is None else f"{strike_gte:g}",
                strike_price_lte=None if strike_lte is None else f"{strike_lte:g}",
                limit=10_000, page_token=token,
            )
            page = self._call("option contracts", self.trading.get_option_contracts, req)
            # raw JSON (the trading client parses no models: see __init__)
            rows += [(str(c["symbol"]), money(c.get("open_interest")), c.get("open_interest_date"))
                     for c in page.get("option_contracts") or ()]
            token = page.get("next_page_token")
            if not token:
                break
        frame = pd.DataFrame(rows, columns=["symbol", "open_interest", "open_interest_date"])
        frame["open_interest"] = frame["open_interest"].astype(float)
        frame["open_interest_date"] = pd.to_datetime(frame["open_interest_date"])
        return frame.drop_duplicates("symbol", keep="last").reset_index(drop=True)


def _local(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize(ET) if ts.tz is None else ts.tz_convert(ET)


def cent(price: float, up: bool) -> float:
    """``price`` rounded to a cent upwards or downwards (float noise of 1e-9 ignored)."""
    x = float(price) * 100.0
    return (math.ceil(x - 1e-6) if up else math.floor(x + 1e-6)) / 100.0


def _request(spec: OrderSpec):
    from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
    from alpaca.trading.requests import (
        LimitOrderRequest,
        MarketOrderRequest,
        StopLossRequest,
        StopOrderRequest,
        TakeProfitRequest,
    )

    common = dict(
        symbol=spec.symbol, qty=spec.qty, side=OrderSide(spec.side),
        time_in_force=TimeInForce(spec.time_in_force), client_order_id=spec.client_order_id,
    )
    if spec.order_class == "bracket":
        # cents away from the entry: a level rounded toward it would fill on a bar whose
        # price never reached the replay's level (a bar early); prices trade in cents, so
        # rounding away touches exactly when replay's unrounded level is touched
        long = spec.side == "buy"
        common.update(
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=cent(spec.take_profit, up=long)),
            stop_loss=StopLossRequest(stop_price=cent(spec.stop_loss, up=not long)),
        )
    if spec.type == "market":
        return MarketOrderRequest(**common)
    if spec.type == "limit":
        return LimitOrderRequest(limit_price=round(spec.limit_price, 2), **common)
    if spec.type == "stop":
        return StopOrderRequest(stop_price=round(spec.stop_price, 2), **common)
    raise ValueError(f"order type {spec.type!r} is not market, limit or stop")


_MAX_CONTRACT_PAGES = 20  # 200,000 contracts: far beyond any underlying's 60-day chain


def gamma_chain_frame(raw: dict[str, dict]) -> pd.DataFrame:
    """:func:`chain_frame` plus each snapshot's ``gamma`` (NaN when it has none)."""
    frame = chain_frame(raw)
    greeks = {sym: (snap or {}).get("greeks") or {} for sym, snap in (raw or {}).items()}
    frame["gamma"] = [money(greeks.get(sym, {}).get("gamma")) for sym in frame["symbol"]]
    frame["gamma"] = frame["gamma"].astype(float)
    return frame
