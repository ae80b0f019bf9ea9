"""A long simulated history for the offline server: stock minute and daily bars over years,
and 1-minute bars of its simulated option contracts, served with Alpaca's pagination.

Minute bars of each session are one of the bundled real SPY sessions (chosen by a seeded
draw), scaled to a price level that chains from session to session, so the history has
real intraday shape (volume spikes, the bundled bad prints) at any length. ``every=k``
keeps minute bars for every k-th session only (sparse data for quick tests); daily bars
cover every session. Option bars price each contract with Black-Scholes on the minute
bars of its last ``listed_sessions`` sessions at a seeded per-session IV, round to cents
and leave out a seeded share of minutes (illiquid minutes have no bar, as on Alpaca).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from gammaride.config import ET, NS_MIN
from gammaride.errors import ConfigError
from gammaride.offline.market import rfc3339_seconds, schedule
from gammaride.offline.options import contract_of
from gammaride.offline.routes import MAX_PAGE, page_token, read_page_token
from gammaride.rules import blackscholes


@lru_cache(maxsize=1)
def _templates() -> tuple[np.ndarray, ...]:
    """The bundled sessions as (relative OHLC per minute, volumes), 390 minutes each."""
    from gammaride.data.bars import sample_bars

    bars = sample_bars()
    rel, vol = [], []
    for _, day in bars.groupby(bars.index.date):
        if len(day) != 390:
            continue
        ohlc = day[["open", "high", "low", "close"]].to_numpy()
        rel.append(ohlc / ohlc[0, 0])
        vol.append(day["volume"].to_numpy())
    return np.stack(rel), np.stack(vol)


class History:
    """Bars for ``symbol`` over the sessions from ``start`` to ``end`` (dates, inclusive)."""

    def __init__(
        self,
        symbol: str = "SPY",
        start: str = "2016-01-04",
        end: str = "2026-11-30",
        seed: int = 0,
        every: int = 1,
        price: float = 400.0,
        iv: float = 0.16,
        listed_sessions: int = 5,
        missing_share: float = 0.1,
        max_page: int = MAX_PAGE,
    ) -> None:
        if not (int(every) >= 1 and 0 <= missing_share < 1 and 0 < iv < 5 and price > 0):
            raise ConfigError(
                f"history every={every!r}, missing_share={missing_share!r}, iv={iv!r}, price={price!r}: "
                "give every >= 1, a share in [0, 1), iv in (0, 5) and a positive price"
            )
        try:
            first, last = pd.Timestamp(start), pd.Timestamp(end)
        except (TypeError, ValueError):
            raise ConfigError(f"history {start!r} .. {end!r}: give ISO dates such as 2023-01-03") from None
        sched = schedule()
        lo = int(np.searchsorted(np.array(sched.dates), str(first.date())))
        hi = int(np.searchsorted(np.array(sched.dates), str(last.date()), side="right"))
        if hi <= lo:
            raise ConfigError(f"history {start} .. {end} holds no session; give start <= end")
        self.symbol = symbol.upper()
        self.dates = sched.dates[lo:hi]
        self.opens = sched.opens[lo:hi]
        self.closes = sched.closes[lo:hi]
        self.minutes = ((self.closes - self.opens) // NS_MIN).astype(np.int64)
        rel, vol = _templates()
        rng = np.random.default_rng(seed)
        self.template = rng.integers(0, len(rel), len(self.dates))
        last = np.minimum(self.minutes, 390) - 1
        day_ratio = rel[self.template, last, 3]
        # no drift: the templates' mean log return is taken out, the level wanders around ``price``
        drift = np.log(rel[:, -1, 3]).mean()
        self.level = price * np.exp(np.r_[0.0, np.cumsum(np.log(day_ratio) - drift)[:-1]])
        self.iv = iv * np.exp(0.25 * rng.standard_normal(len(self.dates)))
        self.has_minutes = np.arange(len(self.dates)) % int(every) == 0
        self.listed_sessions = int(listed_sessions)
        self.missing_share = float(missing_share)
        self.seed = int(seed)
        self.max_page = int(max_page)  # Alpaca may answer fewer bars than the limit asked
        self._rel, self._vol = rel, vol
        t = self.template
        self.daily = {
            "start": pd.DatetimeIndex(list(self.dates)).tz_localize(ET).as_unit("ns").asi8,
            "open": np.round(rel[t, 0, 0] * self.level, 2),
            "high": np.round(np.maximum.accumulate(rel[:, :, 1], axis=1)[t, last] * self.level, 2),
            "low": np.round(np.minimum.accumulate(rel[:, :, 2], axis=1)[t, last] * self.level, 2),
            "close": np.round(rel[t, last, 3] * self.level, 2),
            "volume": np.cumsum(vol, axis=1)[t, last].astype(float),
        }

    # ------------------------------------------------------------------ stock bars
    def _session_bars(self, i: int) -> dict[str, np.ndarray]:
        n = int(min(self.minutes[i], 390))
        ohlc = np.round(self._rel[self.template[i], :n] * self.level[i], 2)
        return {
            "start": self.opens[i] + np.arange(n, dtype=np.int64) * NS_MIN,
            "open": ohlc[:, 0], "high": ohlc[:, 1], "low": ohlc[:, 2], "close": ohlc[:, 3],
            "volume": self._vol[self.template[i], :n],
        }

    def _sessions_between(self, start_ns: int, end_ns: int) -> range:
        lo = int(np.searchsorted(self.closes, start_ns, side="right"))
        hi = int(np.searchsorted(self.opens, end_ns, side="right"))
        return range(lo, hi)

    def minute_bars(self, start_ns: int, end_ns: int) -> dict[str, np.ndarray]:
        """Minute bars starting in [start_ns, end_ns]."""
        parts = [self._session_bars(i) for i in self._sessions_between(start_ns, end_ns) if self.has_minutes[i]]
        return _clip(_concat(parts), start_ns, end_ns)

    def daily_bars(self, start_ns: int, end_ns: int) -> dict[str, np.ndarray]:
        return _clip(self.daily, start_ns, end_ns)

    def stock_page(self, timeframe: str, start_ns: int, end_ns: int, limit: int, token: str | None,
                   desc: bool) -> tuple[list[dict], str | None]:
        """One page of bars in Alpaca's JSON shape, and the token of the next page."""
        bars = self.daily_bars(start_ns, end_ns) if timeframe == "1Day" else self.minute_bars(start_ns, end_ns)
        limit = min(limit, self.max_page)
        order = np.arange(len(bars["start"]))[::-1] if desc else np.arange(len(bars["start"]))
        if token:
            cursor = int(read_page_token(token))
            order = order[bars["start"][order] <= cursor] if desc else order[bars["start"][order] >= cursor]
        page = order[:limit]
        nxt = page_token(str(int(bars["start"][order[limit]]))) if len(order) > limit else None
        return [_bar_json(bars, j) for j in page], nxt

    # ------------------------------------------------------------------ option bars
    def option_bars(self, symbol: str, start_ns: int, end_ns: int) -> dict[str, np.ndarray]:
        """Minute bars of one simulated contract (none for symbols this market never listed)."""
        c = contract_of(symbol)
        if c is None or c.root != self.symbol or c.expiration not in self.dates:
            return _concat([])
        e = self.dates.index(c.expiration)
        expiry_ns = int(self.closes[e])
        call = c.right == "C"
        parts = []
        for i in range(max(0, e - self.listed_sessions + 1), e + 1):
            if not self.has_minutes[i]:
                continue
            u = self._session_bars(i)
            # the option's high comes with the underlying's high for a call, its low for a put
            legs = {
                "open": u["open"], "close": u["close"],
                "high": u["high"] if call else u["low"], "low": u["low"] if call else u["high"],
            }
            years_open = (expiry_ns - u["start"]) / blackscholes.YEAR_NS
            years_close = (expiry_ns - u["start"] - NS_MIN) / blackscholes.YEAR_NS
            px = {}
            for k, spot in legs.items():
                years = years_open if k == "open" else years_close
                px[k] = np.maximum(np.round(blackscholes.price(spot, c.strike, years, self.iv[i], call), 2), 0.01)
            px["high"] = np.maximum.reduce([px["high"], px["open"], px["close"]])
            px["low"] = np.minimum.reduce([px["low"], px["open"], px["close"]])
            rng = np.random.default_rng([self.seed, i, int(c.strike * 1000), int(call)])
            kept = rng.random(len(u["start"])) >= self.missing_share
            volume = np.maximum(1, (u["volume"] / 2000.0 * rng.random(len(u["start"]))).astype(np.int64))
            parts.append({"start": u["start"][kept], **{k: v[kept] for k, v in px.items()},
                          "volume": volume[kept].astype(float)})
        return _clip(_concat(parts), start_ns, end_ns)

    def option_page(self, symbols: list[str], start_ns: int, end_ns: int, limit: int,
                    token: str | None) -> tuple[dict[str, list[dict]], str | None]:
        """Bars of several contracts, symbol by symbol then by time, ``limit`` in all."""
        after = None
        if token:
            sym, _, ns = read_page_token(token).partition("|")
            after = (sym, int(ns))
        out: dict[str, list[dict]] = {}
        left = min(limit, self.max_page)
        for sym in sorted(set(symbols)):
            if after and sym < after[0]:
                continue
            bars = self.option_bars(sym, start_ns, end_ns)
            idx = np.arange(len(bars["start"]))
            if after and sym == after[0]:
                idx = idx[bars["start"] >= after[1]]
            if not len(idx):
                continue
            if len(idx) > left:
                if left:
                    out[sym] = [_bar_json(bars, j) for j in idx[:left]]
                return out, page_token(f"{sym}|{int(bars['start'][idx[left]])}")
            out[sym] = [_bar_json(bars, j) for j in idx]
            left -= len(idx)
        return out, None


def _concat(parts: list[dict]) -> dict[str, np.ndarray]:
    keys = ("start", "open", "high", "low", "close", "volume")
    if not parts:
        return {k: np.array([], dtype=np.int64 if k == "start" else float) for k in keys}
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def _clip(bars: dict[str, np.ndarray], start_ns: int, end_ns: int) -> dict[str, np.ndarray]:
    keep = (bars["start"] >= start_ns) & (bars["start"] <= end_ns)
    return {k: v[keep] for k, v in bars.items()}


def _bar_json(bars: dict[str, np.ndarray], j: int) -> dict:
    h, lo, c, v = float(bars["high"][j]), float(bars["low"][j]), float(bars["close"][j]), float(bars["volume"][j])
    return {"t": rfc3339_seconds(int(bars["start"][j])), "o": float(bars["open"][j]), "h": h, "l": lo,
            "c": c, "v": int(v), "n": int(v // 100) + 1, "vw": round((h + lo + c) / 3.0, 4)}


