"""Download bars through alpaca-py into the history cache: stock minute and daily bars by
month, option minute bars by contract, paced to Alpaca's 200 requests a minute.

- Every page is followed (alpaca-py follows ``next_page_token``; each page is one request
  through :class:`RateLimiter`).
- A 429 backs off (2, 4, 8 ... s, at most a minute) and retries, up to 8 times; alpaca-py's
  own fixed retry is switched off so the pacing here is the only one.
- Resumable: a month is written whole when its requests are done; a rerun asks only for
  months the cache lacks (:meth:`BarCache.covers`). A cached span sends no request.
- SIP history older than 15 minutes is free: the default feed is ``sip``, and the span
  asked for ends 16 minutes before the broker's clock (asked once, only when a fetch is due).
"""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gammaride.data.cache import (
    BAR_COLUMNS,
    ET,
    BarCache,
    MonthRecord,
    month_bounds,
    months_between,
)
from gammaride.errors import BrokerError, ConfigError
from gammaride.keys import safe_url

REQUESTS_PER_MINUTE = 200
SIP_DELAY = pd.Timedelta(minutes=16)  # Alpaca refuses SIP of the last 15 minutes on the free plan
FIRST_SIP_DAY = pd.Timestamp("2016-01-01")
FIRST_OPTION_DAY = pd.Timestamp("2024-02-01")
MAX_429_RETRIES = 8
OPTION_FEED = "opra"  # historical option bars come from OPRA (the request takes no feed)


class RateLimiter:
    """At most ``per_minute`` requests in any 60 s window; ``acquire`` sleeps until allowed."""

    def __init__(self, per_minute: int = REQUESTS_PER_MINUTE, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if per_minute < 1:
            raise ConfigError(f"rate limit {per_minute!r} requests/minute: give at least 1")
        self.per_minute = per_minute
        self._clock, self._sleep = clock, sleep
        self._sent: collections.deque[float] = collections.deque()
        self.waited = 0.0  # seconds slept to respect the limit

    def acquire(self) -> None:
        now = self._clock()
        while self._sent and now - self._sent[0] >= 60.0:
            self._sent.popleft()
        if len(self._sent) >= self.per_minute:
            pause = 60.0 - (now - self._sent[0])
            self._sleep(pause)
            self.waited += pause
            now = self._clock()
            self._sent.popleft()
        self._sent.append(now)


@dataclass
class FetchStats:
    requests: int = 0
    retries_429: int = 0
    backoff_seconds: float = 0.0
    months_fetched: list[str] = field(default_factory=list)
    months_cached: list[str] = field(default_factory=list)
    bars: int = 0
    contracts: int = 0


def _paced(base: type, limiter: RateLimiter, stats: FetchStats, sleep: Callable[[float], None]) -> type:
    """A subclass of an alpaca-py REST client whose every GET waits for the rate limiter,
    counts itself and backs off on 429."""
    from alpaca.common.exceptions import APIError

    class Paced(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # alpaca-py would retry a 429 three times 3 s apart, unpaced and uncounted; its
            # clients do not take retry settings, so switch that off here: the pacing is ours
            self._retry = 0

        def get(self, path, data=None):  # alpaca-py sends every page through get()
            for attempt in range(MAX_429_RETRIES + 1):
                limiter.acquire()
                stats.requests += 1
                try:
                    return super().get(path, data)
                except APIError as exc:
                    if exc.status_code != 429 or attempt == MAX_429_RETRIES:
                        raise
                    pause = min(60.0, 2.0 ** (attempt + 1))
                    stats.retries_429 += 1
                    stats.backoff_seconds += pause
                    sleep(pause)
            raise AssertionError("unreachable")

    Paced.__name__ = f"Paced{base.__name__}"
    return Paced


def progress(total: int, desc: str, quiet: bool = False):
    """tqdm that draws in a terminal and in a notebook (Colab), and stays silent elsewhere."""
    from tqdm.auto import tqdm

    in_notebook = "ipykernel" in sys.modules
    show = not quiet and (in_notebook or sys.stderr.isatty())
    return tqdm(total=total, desc=desc, unit="month", disable=not show, leave=False)


class Fetcher:
    """Fills a :class:`BarCache` from Alpaca (or an offline server at ``url``)."""

    def __init__(
        self,
        cache: BarCache,
        key_id: str | None,
        secret: str | None,
        *,
        url: str | None = None,
        feed: str = "sip",
        limiter: RateLimiter | None = None,
        quiet: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        now: pd.Timestamp | None = None,
    ) -> None:
        if feed not in ("sip", "iex"):
            raise ConfigError(f"--feed {feed!r} is not sip or iex; history is free on sip (older than 15 minutes)")
        self.cache = cache
        self.feed = feed
        self.option_feed = OPTION_FEED
        self._keys = (key_id, secret)
        self.url = None if url is None else safe_url(url, what="data URL", alpaca=True)
        self.limiter = limiter or RateLimiter(sleep=sleep)
        self.stats = FetchStats()
        self.quiet = quiet
        self._sleep = sleep
        self._now = now
        self._clients: dict[str, object] = {}

    # ------------------------------------------------------------------ clients
    def _client(self, kind: str):
        if kind not in self._clients:
            if not all(self._keys):
                raise ConfigError(
                    "the history cache lacks bars and fetching needs Alpaca keys; set "
                    "ALPACA_API_KEY and ALPACA_SECRET_KEY (free paper keys serve history)"
                )
            from alpaca.data.historical import OptionHistoricalDataClient, StockHistoricalDataClient
            from alpaca.trading.client import TradingClient

            base = {"stock": StockHistoricalDataClient, "option": OptionHistoricalDataClient,
                    "trading": TradingClient}[kind]
            cls = _paced(base, self.limiter, self.stats, self._sleep)
            extra = {"paper": True} if kind == "trading" else {"raw_data": True}
            self._clients[kind] = cls(self._keys[0], self._keys[1], url_override=self.url, **extra)
        return self._clients[kind]

    def now(self) -> pd.Timestamp:
        """The broker's clock, asked once (one request) and only when a fetch is due."""
        if self._now is None:
            clock = self._call(lambda: self._client("trading").get_clock())
            self._now = pd.Timestamp(clock.timestamp).tz_convert(ET)
        return self._now

    def _call(self, fn):
        from alpaca.common.exceptions import APIError

        try:
            return fn()
        except APIError as exc:
            from gammaride.keys import redact

            text = redact(str(exc), *self._keys)
            if exc.status_code in (401, 403) and "SIP" not in text:
                raise BrokerError(f"Alpaca refused the keys ({exc.status_code}: {text}); check "
                                  "ALPACA_API_KEY / ALPACA_SECRET_KEY") from None
            raise BrokerError(f"Alpaca answered {exc.status_code}: {text}") from None
        except OSError as exc:  # requests' ConnectionError and timeouts derive from it
            raise BrokerError(f"cannot reach Alpaca ({exc}); check the network and rerun: "
                              "what is cached stays cached") from None

    # ------------------------------------------------------------------ stocks
    def fetch_stock(self, symbol: str, start, end, timeframes: tuple[str, ...] = ("1Min", "1Day")) -> FetchStats:
        """Minute and daily bars of ``symbol`` for the dates ``start`` .. ``end``."""
        symbol = check_symbol(symbol)
        start, end = check_span(start, end, FIRST_SIP_DAY if self.feed == "sip" else pd.Timestamp("2015-01-01"))
        until = (end + pd.Timedelta(days=1)).tz_localize(ET)
        todo = {tf: [m for m in months_between(start, end)
                     if not self.cache.covers(self.cache.stock_path(symbol, tf, m), self.feed,
                                              min(month_bounds(m)[1], until))]
                for tf in ("1Min", "1Day") if tf in timeframes}
        todo.setdefault("1Min", [])
        todo.setdefault("1Day", [])
        done = set(months_between(start, end)) - set(todo["1Min"]) - set(todo["1Day"])
        self.stats.months_cached += sorted(done)
        bar = progress(len(todo["1Min"]) + (1 if todo["1Day"] else 0), f"fetch {symbol}", self.quiet)
        try:
            if todo["1Day"]:
                self._fetch_stock_months(symbol, "1Day", todo["1Day"])
                bar.update()
            for month in todo["1Min"]:
                self._fetch_stock_months(symbol, "1Min", [month])
                bar.update()
        finally:
            bar.close()
        return self.stats

    def _fetch_stock_months(self, symbol: str, timeframe: str, months: list[str]) -> None:
        """One request series for consecutive ``months``, then one file per month."""
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        first, last = month_bounds(months[0])[0], month_bounds(months[-1])[1]
        through = min(last, self.now() - SIP_DELAY) if self.feed == "sip" else min(last, self.now())
        if through <= first:
            return
        req = StockBarsRequest(
            symbol_or_symbols=symbol, timeframe=TimeFrame.Minute if timeframe == "1Min" else TimeFrame.Day,
            start=first.tz_convert("UTC").to_pydatetime(), end=through.tz_convert("UTC").to_pydatetime(),
            feed=DataFeed(self.feed), limit=None,
        )
        raw = self._call(lambda: self._client("stock").get_stock_bars(req))
        frame = _bars_frame(raw.get(symbol, []) if isinstance(raw, dict) else [])
        self.stats.bars += len(frame)
        for month in months:
            lo, hi = month_bounds(month)
            part = frame[(frame.index >= lo) & (frame.index < hi)]
            complete = through >= hi
            self.cache.write(self.cache.stock_path(symbol, timeframe, month), _to_utc(part),
                             MonthRecord(self.feed, min(through, hi).tz_convert("UTC"), complete))
            self.stats.months_fetched.append(f"{timeframe} {month}")

    # ------------------------------------------------------------------ options
    def fetch_options(self, underlying: str, contracts_by_day: dict[str, Iterable[str]]) -> FetchStats:
        """Minute bars of contracts on the sessions they are needed (``{'2024-02-05': {OCC, ...}}``).
        One request series per session for all its contracts not yet cached (alpaca-py
        batches the symbols in one query); the cache keeps them by month."""
        underlying = check_symbol(underlying)
        by_month: dict[str, dict[str, list[str]]] = collections.defaultdict(dict)
        for day, symbols in sorted(contracts_by_day.items()):
            month = day[:7]
            rec = self.cache.record(self.cache.option_path(underlying, month))
            have = rec.contracts if rec is not None and rec.feed == self.option_feed else frozenset()
            missing = sorted(s for s in set(symbols) if f"{s}@{day}" not in have)
            if missing:
                by_month[month][day] = missing
        bar = progress(sum(len(d) for d in by_month.values()), f"option bars {underlying}", self.quiet)
        try:
            for month, days in by_month.items():
                self._fetch_option_days(underlying, month, days, bar)
        finally:
            bar.close()
        return self.stats

    def _fetch_option_days(self, underlying: str, month: str, days: dict[str, list[str]], bar) -> None:
        from alpaca.data.requests import OptionBarsRequest
        from alpaca.data.timeframe import TimeFrame

        path = self.cache.option_path(underlying, month)
        rec = self.cache.record(path)
        keep = rec is not None and rec.feed == self.option_feed
        frames = [self.cache.read_options(underlying, [month])] if keep else []
        keys = set(rec.contracts) if keep else set()
        fresh = 0
        for day, symbols in days.items():
            lo = pd.Timestamp(day).tz_localize(ET)
            through = min(lo + pd.Timedelta(days=1), self.now() - SIP_DELAY)
            if through <= lo:
                continue
            for chunk in _chunks(symbols, 100):  # keep the query string of one request short
                req = OptionBarsRequest(symbol_or_symbols=chunk, timeframe=TimeFrame.Minute,
                                        start=lo.tz_convert("UTC").to_pydatetime(),
                                        end=through.tz_convert("UTC").to_pydatetime(), limit=None)
                raw = self._call(lambda r=req: self._client("option").get_option_bars(r))
                for sym, rows in (raw or {}).items():
                    f = _bars_frame(rows)
                    f.insert(0, "symbol", sym)
                    frames.append(f)
                    fresh += len(f)
            keys |= {f"{s}@{day}" for s in symbols}
            self.stats.contracts += len(symbols)
            bar.update()
        frame = pd.concat(frames) if frames else _bars_frame([]).assign(symbol=pd.Series(dtype=object))
        frame = frame[["symbol", *BAR_COLUMNS]]
        self.stats.bars += fresh
        lo, hi = month_bounds(month)
        through = min(hi, self.now() - SIP_DELAY)
        self.cache.write(path, _to_utc(frame), MonthRecord(self.option_feed, through.tz_convert("UTC"),
                                                            through >= hi, frozenset(keys)))
        self.stats.months_fetched.append(f"options {month}")


def check_symbol(symbol: str) -> str:
    import re

    s = str(symbol).strip().upper()
    if not re.fullmatch(r"[A-Z][A-Z.]{0,5}", s):
        raise ConfigError(f"symbol {symbol!r} is not a ticker; write e.g. SPY")
    return s


def check_span(start, end, earliest: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Dates ``start`` .. ``end`` (inclusive, naive), checked."""
    out = []
    for name, value in (("--start", start), ("--end", end)):
        try:
            ts = pd.Timestamp(value)
        except (TypeError, ValueError):
            ts = pd.NaT
        if ts is pd.NaT:
            raise ConfigError(f"{name} {value!r} is not a date; write e.g. 2024-02-01")
        out.append((ts.tz_localize(None) if ts.tz is not None else ts).normalize())
    if out[0] > out[1]:
        raise ConfigError(f"--start {out[0]:%Y-%m-%d} is after --end {out[1]:%Y-%m-%d}; swap them")
    if out[1] < earliest:
        raise ConfigError(f"--end {out[1]:%Y-%m-%d} is before Alpaca's history ({earliest:%Y-%m-%d}); "
                          "give a later span")
    return max(out[0], earliest), out[1]


def _chunks(items: list[str], n: int) -> list[list[str]]:
    return [items[i:i + n] for i in range(0, len(items), n)]


def _bars_frame(rows: list[dict]) -> pd.DataFrame:
    """alpaca-py's raw bars (t, o, h, l, c, v) as a frame indexed by New York bar start."""
    if not rows:
        index = pd.DatetimeIndex([], tz=ET, name="timestamp").as_unit("ns")
        return pd.DataFrame({c: pd.Series(dtype=float) for c in BAR_COLUMNS}, index=index)
    t = pd.DatetimeIndex(pd.to_datetime([r["t"] for r in rows], utc=True)).tz_convert(ET).as_unit("ns")
    data = {name: np.array([r[k] for r in rows], dtype=float)
            for name, k in zip(BAR_COLUMNS, ("o", "h", "l", "c", "v"), strict=True)}
    return pd.DataFrame(data, index=t.rename("timestamp"))


def _to_utc(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.index = out.index.tz_convert("UTC").rename("timestamp")
    return out
