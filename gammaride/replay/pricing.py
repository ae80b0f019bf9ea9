"""Option prices for replayed trades, from the contracts' own 1-minute bars.

For every entry from February 2024 on (Alpaca's option history starts then):

1. **Contract.** The live scanner's rules choose it (:func:`scanner.contracts.choose_contract`):
   the nearest expiration whose cut-off leaves max hold + buffer (today's until about
   15:05, then the next session's), the strike nearest the money on the
   ``option_strike_step`` grid. The chain it chooses from is rebuilt at the decision
   minute with Black-Scholes mids at the session's IV estimate and the cost model's
   spread, since history has no quotes.
2. **Bars.** Each chosen contract's minute bars of the session it is bought in are
   fetched once into the history cache (all of a session's contracts in one batched
   query) and read from there afterwards.
3. **Fill model.** Entry at the close of the option's bar of the decision minute (the
   bar whose end is the decision time); exit at the close of its bar of the exit minute,
   moved by the contract's delta times the distance from the underlying's close of that
   minute to the exit price (a TP or SL fills inside the minute). A minute without a bar
   takes the latest bar at most ``option_bar_max_age_minutes`` older; without one, a
   Black-Scholes price at the session's IV estimate. Half the spread and the slippage
   are then paid on each side (:mod:`gammaride.rules.costs`).
4. **IV estimate of a session**: the median implied volatility of the contract's own
   bars that session (each bar's close against the underlying's close), else the
   20-session realized volatility of daily closes before the session. History has no
   IV or open interest of its own.

``pnl_source`` is 'option_bars' when both prices come from bars, 'black_scholes' when
either needed the model; entries before February 2024 (or with no tradable contract)
keep the delta estimate.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import numpy as np
import pandas as pd

from gammaride.config import ET, NS_DAY, Settings
from gammaride.journal.schema import OPTION_PATH_COLUMNS
from gammaride.rules import blackscholes
from gammaride.rules.contracts import (
    CHAIN_COLUMNS,
    choose_contract,
    choose_expiration,
    occ_symbol,
)
from gammaride.rules.costs import CostModel
from gammaride.rules.session import next_session, session_close_minutes

OPTION_HISTORY_START = pd.Timestamp("2024-02-01")
PNL_OPTION_BARS = "option_bars"
PNL_BLACK_SCHOLES = "black_scholes"
FALLBACK_IV = 0.20  # when neither the contract's bars nor daily closes give an estimate
_MIN = 60_000_000_000
_CHAIN_STRIKES = 3  # strikes each side of the money in the rebuilt chain


class CachedOptionBars:
    """Option bars from the history cache, fetching what it lacks when a fetcher is given."""

    def __init__(self, cache, fetcher=None) -> None:
        self.cache, self.fetcher = cache, fetcher

    def load(self, underlying: str, contracts_by_day: dict[str, set[str]]) -> pd.DataFrame:
        """Bars of the contracts on the sessions asked (``{'2024-02-05': {OCC, ...}}``)."""
        if self.fetcher is not None and contracts_by_day:
            self.fetcher.fetch_options(underlying, contracts_by_day)
        frame = self.cache.read_options(underlying, sorted({d[:7] for d in contracts_by_day}))
        wanted = set().union(*contracts_by_day.values()) if contracts_by_day else set()
        return frame[frame["symbol"].isin(wanted)]


class OptionPricer:
    """Prices replay candidates from option bars; keeps the paths for the trades taken."""

    def __init__(self, source, daily_closes: pd.Series | None = None) -> None:
        self.source = source
        self.daily = daily_closes
        self._paths: list[pd.DataFrame] = []
        self.requested = 0  # contracts asked for

    # ------------------------------------------------------------------ public
    def price(self, candidates: pd.DataFrame, bars: pd.DataFrame, settings: Settings) -> pd.DataFrame:
        n = len(candidates)
        symbol_out = np.full(n, None, dtype=object)
        source_out = np.full(n, None, dtype=object)
        entry_out = np.full(n, np.nan)
        exit_out = np.full(n, np.nan)
        self._paths = {}
        dec_ns = candidates["decision_ns"].to_numpy(dtype=np.int64)
        exit_ns = candidates["exit_ns"].to_numpy(dtype=np.int64)
        direction = candidates["direction"].to_numpy()
        spot_in = candidates["entry"].to_numpy(dtype=float)
        spot_out = candidates["exit"].to_numpy(dtype=float)
        dec = pd.DatetimeIndex(dec_ns, tz="UTC").tz_convert(ET)
        days = dec.tz_localize(None).normalize()
        eligible = candidates["usable"].to_numpy(dtype=bool) & (days >= OPTION_HISTORY_START)
        result = pd.DataFrame({"contract_symbol": symbol_out, "entry_mid": entry_out, "exit_mid": exit_out,
                               "spread": np.nan, "pnl_source": source_out})
        if not eligible.any():
            return result
        rv = self._realized_vol(days)
        symbol = settings.symbol
        cost = CostModel.from_settings(settings)
        closes_ns = _session_closes_ns(days[eligible])
        chosen: dict[int, tuple] = {}
        for j in np.flatnonzero(eligible):
            pick = self._choose(direction[j], spot_in[j], dec[j], days[j], rv[j], settings, symbol, cost, closes_ns)
            if pick is not None:
                chosen[j] = pick
        by_day: dict[str, set[str]] = defaultdict(set)
        for j, (occ, *_rest) in chosen.items():
            by_day[f"{days[j]:%Y-%m-%d}"].add(occ)
        self.requested = sum(len(v) for v in by_day.values())
        option_bars = self.source.load(symbol, dict(by_day))
        series = {}
        for sym, g in (option_bars.groupby("symbol", sort=False) if len(option_bars) else ()):
            series[sym] = (g.index.asi8, {c: g[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")})

        u_start = bars.index.asi8
        u_close = bars["close"].to_numpy(dtype=float)
        u_ohlc = {c: bars[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close")}
        hold = settings.max_hold_minutes
        max_age = settings.option_bar_max_age_minutes * _MIN
        empty = (np.array([], dtype=np.int64), {c: np.array([]) for c in ("open", "high", "low", "close", "volume")})
        ivs: dict[tuple, float] = {}
        for j, (occ, strike, call, expiry_ns) in chosen.items():
            o_start, o_cols = series.get(occ, empty)
            key = (occ, days[j])
            if key not in ivs:
                ivs[key] = _session_iv(o_start, o_cols["close"], u_start, u_close, strike, call, expiry_ns,
                                       days[j], rv[j])
            iv = ivs[key]
            entry_mid, e_bar = _at(o_start, o_cols["close"], dec_ns[j] - _MIN, max_age)
            if e_bar is None:
                entry_mid = float(blackscholes.price(spot_in[j], strike, (expiry_ns - dec_ns[j]) / blackscholes.YEAR_NS, iv, call))
            years_out = (expiry_ns - exit_ns[j]) / blackscholes.YEAR_NS
            exit_mid, x_bar = _at(o_start, o_cols["close"], exit_ns[j] - _MIN, max_age)
            if x_bar is not None:
                # the option's close of that minute, moved to where the underlying filled
                k = int(np.searchsorted(u_start, x_bar, side="right")) - 1
                d = float(blackscholes.delta(spot_out[j], strike, years_out, iv, call))
                exit_mid = max(0.0, exit_mid + d * (spot_out[j] - u_close[k]))
            else:
                exit_mid = float(blackscholes.price(spot_out[j], strike, years_out, iv, call))
            entry_out[j], exit_out[j] = entry_mid, exit_mid
            symbol_out[j] = occ
            source_out[j] = PNL_OPTION_BARS if (e_bar is not None and x_bar is not None) else PNL_BLACK_SCHOLES
            self._paths[j] = _path(o_start, o_cols, u_start, u_ohlc, int(dec_ns[j]), hold, strike, call,
                                   expiry_ns, iv)
        result["contract_symbol"] = symbol_out
        result["entry_mid"] = entry_out
        result["exit_mid"] = exit_out
        result["pnl_source"] = source_out
        return result

    def paths_for(self, taken: np.ndarray, trade_ids: np.ndarray) -> pd.DataFrame:
        """``option_paths`` rows of the candidates at positions ``taken``, as trade ``trade_ids``."""
        parts = [(int(tid), self._paths[j]) for j, tid in zip(taken, trade_ids, strict=True) if j in self._paths]
        parts = [(tid, p) for tid, p in parts if len(p["minute"])]
        if not parts:
            return pd.DataFrame(columns=OPTION_PATH_COLUMNS)
        frame = pd.DataFrame({
            "trade_id": np.concatenate([np.full(len(p["minute"]), tid, dtype=np.int64) for tid, p in parts]),
            **{c: np.concatenate([p[c] for _, p in parts]) for c in parts[0][1] if c != "bar_time"},
        })
        frame.insert(2, "bar_time", pd.DatetimeIndex(np.concatenate([p["bar_time"] for _, p in parts]),
                                                     tz="UTC").tz_convert(ET))
        return frame[OPTION_PATH_COLUMNS]

    # ------------------------------------------------------------------ pieces
    def _choose(self, direction, spot, dec, day, rv, settings, symbol, cost, closes_ns):
        """(OCC symbol, strike, is call, expiry time ns) by the scanner's contract rules."""
        t = dec.tz_localize(None)
        exp, _ = choose_expiration([day, _next_session(day)], t, settings, symbol)
        if exp is None:
            return None
        step = settings.option_strike_step
        atm = round(spot / step) * step
        strikes = atm + step * np.arange(-_CHAIN_STRIKES, _CHAIN_STRIKES + 1)
        call = direction == "call"
        if exp not in closes_ns:
            closes_ns.update(_session_closes_ns(pd.DatetimeIndex([exp])))
        expiry_ns = closes_ns[exp]
        mids = blackscholes.price(spot, strikes, (expiry_ns - dec.value) / blackscholes.YEAR_NS, rv, call)
        m = len(strikes)
        columns = {  # CHAIN_COLUMNS, built from arrays: this runs once per entry
            "symbol": np.array([occ_symbol(symbol, exp, direction, k) for k in strikes], dtype=object),
            "expiration": np.full(m, exp.to_datetime64()), "type": np.full(m, direction, dtype=object),
            "strike": strikes, "bid": np.maximum(mids - cost.spread / 2, 0.0), "ask": mids + cost.spread / 2,
            "iv": np.full(m, rv), "delta": np.full(m, np.nan),
        }
        chain = pd.DataFrame({c: columns[c] for c in CHAIN_COLUMNS}, copy=False)
        choice, _ = choose_contract(chain, direction, spot, t, settings, symbol)
        if choice is None:
            return None
        return choice.symbol, choice.strike, call, expiry_ns

    def _realized_vol(self, days: pd.DatetimeIndex) -> np.ndarray:
        """Annualized 20-session realized volatility of the closes before each session."""
        if self.daily is None or len(self.daily) < 21:
            return np.full(len(days), FALLBACK_IV)
        closes = self.daily.sort_index()
        rv = np.log(closes).diff().rolling(20).std().mul(np.sqrt(252.0)).shift(1)
        values = rv.reindex(days, method="ffill").to_numpy(dtype=float)
        return np.where(np.isfinite(values) & (values > 0), values, FALLBACK_IV)


def _session_iv(o_start, o_close, u_start, u_close, strike, call, expiry_ns, day, rv) -> float:
    """Median implied volatility of the contract's bars in the session, else ``rv``."""
    if not len(o_start):
        return float(rv)
    lo = pd.Timestamp(day).tz_localize(ET).value
    same = (o_start >= lo) & (o_start < lo + NS_DAY)
    k = np.searchsorted(u_start, o_start[same])
    ok = (k < len(u_start)) & (u_start[np.minimum(k, len(u_start) - 1)] == o_start[same])
    if not ok.any():
        return float(rv)
    years = (expiry_ns - (o_start[same][ok] + _MIN)) / blackscholes.YEAR_NS
    ivs = blackscholes.implied_vol(o_close[same][ok], u_close[k[ok]], strike, years, call)
    ivs = ivs[np.isfinite(ivs)]
    return float(np.median(ivs)) if len(ivs) else float(rv)


@lru_cache(maxsize=4096)
def _next_session(day: pd.Timestamp) -> pd.Timestamp:
    return next_session(day)


def _session_closes_ns(days: pd.DatetimeIndex) -> dict[pd.Timestamp, int]:
    """Close time (epoch ns) of each session date, early closes included."""
    uniq = pd.DatetimeIndex(np.unique(days.asi8))
    minutes = session_close_minutes(uniq)
    local = uniq.tz_localize(ET) + pd.to_timedelta(minutes, unit="min")
    return dict(zip(uniq, local.asi8.tolist(), strict=True))


def _at(starts: np.ndarray, closes: np.ndarray, minute_ns: int, max_age_ns: int) -> tuple[float, int | None]:
    """Close of the bar starting at ``minute_ns``, else of the latest at most ``max_age`` older:
    (price, start of the bar used) or (nan, None)."""
    i = int(np.searchsorted(starts, minute_ns, side="right")) - 1
    if i >= 0 and minute_ns - starts[i] <= max_age_ns:
        return float(closes[i]), int(starts[i])
    return float("nan"), None


def _path(o_start, o_cols, u_start, u, dec_ns, hold, strike, call, expiry_ns, iv) -> dict[str, np.ndarray]:
    """The option's bars from the decision minute (0) through max hold: its own where it
    traded, Black-Scholes on the underlying's bar where it did not."""
    first = int(np.searchsorted(u_start, dec_ns - _MIN))
    idx = np.arange(first, min(first + hold + 1, len(u_start)))
    idx = idx[(u_start[idx] < dec_ns + hold * _MIN) & (u_start[idx] < expiry_ns)]
    starts = u_start[idx]
    years_open = (expiry_ns - starts) / blackscholes.YEAR_NS
    years_close = (expiry_ns - starts - _MIN) / blackscholes.YEAR_NS
    px = {
        "open": blackscholes.price(u["open"][idx], strike, years_open, iv, call),
        "close": blackscholes.price(u["close"][idx], strike, years_close, iv, call),
        "high": blackscholes.price((u["high"] if call else u["low"])[idx], strike, years_close, iv, call),
        "low": blackscholes.price((u["low"] if call else u["high"])[idx], strike, years_close, iv, call),
    }
    px["high"] = np.maximum.reduce([px["open"], px["high"], px["close"]])
    px["low"] = np.minimum.reduce([px["open"], px["low"], px["close"]])
    px["volume"] = np.full(len(idx), np.nan)
    source = np.full(len(idx), PNL_BLACK_SCHOLES, dtype=object)
    if len(o_start) and len(idx):
        k = np.minimum(np.searchsorted(o_start, starts), len(o_start) - 1)
        own = o_start[k] == starts
        for col in ("open", "high", "low", "close", "volume"):
            px[col] = np.where(own, o_cols[col][k], px[col])
        source[own] = PNL_OPTION_BARS
    return {"minute": ((starts - (dec_ns - _MIN)) // _MIN).astype(np.int64), "bar_time": starts,
            "open": px["open"], "high": px["high"], "low": px["low"], "close": px["close"],
            "volume": px["volume"], "source": source}
