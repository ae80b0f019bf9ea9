"""Option prices for replayed trades, from the contracts' own 1-minute bars.

For every entry from February 2024 on (Alpaca's option history starts then):

1. **Contract.** The live scanner's rules choose it (:func:`scanner.contracts.choose_contract`):
   the nearest expiration whose cut-off leaves max hold + buffer (today's until about
   15:05, then the next session's), the strike nearest the money on the
   ``option_strike_step`` grid. The chain it chooses from is rebuilt at the decision
   minute with Black-Scholes mids at the session's IV estimate and the cost model's
   spread, since history has no quotes.
2. **Bars.** Each chosen contract's minute bars are fetched once into the history cache
   (all of a month's contracts in one batched query) and read from there afterwards.
3. **Fill model.** Entry at the close of the option's bar of the decision minute (the
   bar whose end is the decision time); exit at the close of its bar of the exit minute,
   moved by the contract's delta times the distance from the underlying's close of that
   minute to the exit price (a TP or SL fills inside the minute). A minute without a bar
   takes the latest bar at most ``option_bar_max_age_minutes`` older; without one, a
   Black-Scholes price at the session's IV estimate. Half the spread and the slippage
   are then paid on each side (:mod:`gammaride.costs`).
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

import numpy as np
import pandas as pd

from gammaride.config import Settings
from gammaride.costs import CostModel
from gammaride.scanner.contracts import (
    CHAIN_COLUMNS,
    choose_contract,
    choose_expiration,
    occ_symbol,
)
from gammaride.scanner.session import next_session, session_close_minutes
from gammaride.sim import blackscholes

OPTION_HISTORY_START = pd.Timestamp("2024-02-01")
PNL_OPTION_BARS = "option_bars"
PNL_BLACK_SCHOLES = "black_scholes"
FALLBACK_IV = 0.20  # when neither the contract's bars nor daily closes give an estimate
_MIN = 60_000_000_000
_CHAIN_STRIKES = 3  # strikes each side of the money in the rebuilt chain
ET = "America/New_York"


class CachedOptionBars:
    """Option bars from the history cache, fetching what it lacks when a fetcher is given."""

    def __init__(self, cache, fetcher=None) -> None:
        self.cache, self.fetcher = cache, fetcher

    def load(self, underlying: str, contracts_by_month: dict[str, set[str]]) -> pd.DataFrame:
        if self.fetcher is not None and contracts_by_month:
            self.fetcher.fetch_options(underlying, contracts_by_month)
        frame = self.cache.read_options(underlying, list(contracts_by_month))
        wanted = set().union(*contracts_by_month.values()) if contracts_by_month else set()
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
        out = pd.DataFrame({
            "contract_symbol": np.full(n, None, dtype=object), "entry_mid": np.nan, "exit_mid": np.nan,
            "spread": np.nan, "pnl_source": np.full(n, None, dtype=object),
        })
        self._paths = [None] * n
        dec = pd.DatetimeIndex(candidates["decision_ns"].to_numpy(), tz="UTC").tz_convert(ET)
        days = dec.tz_localize(None).normalize()
        eligible = candidates["usable"].to_numpy() & (days >= OPTION_HISTORY_START)
        if not eligible.any():
            return out
        rv = self._realized_vol(days)
        symbol = settings.symbol
        cost = CostModel.from_settings(settings)
        chosen: dict[int, tuple] = {}
        for j in np.flatnonzero(eligible):
            pick = self._choose(candidates.iloc[j], dec[j], days[j], rv[j], settings, symbol, cost)
            if pick is not None:
                chosen[j] = pick
        by_month: dict[str, set[str]] = defaultdict(set)
        for j, (occ, *_rest) in chosen.items():
            by_month[f"{days[j]:%Y-%m}"].add(occ)
        self.requested = sum(len(v) for v in by_month.values())
        option_bars = self.source.load(symbol, dict(by_month))
        series = {s: g for s, g in option_bars.groupby("symbol", sort=False)} if len(option_bars) else {}

        u_start = bars.index.asi8
        u_close = bars["close"].to_numpy(dtype=float)
        hold = settings.max_hold_minutes
        max_age = settings.option_bar_max_age_minutes * _MIN
        for j, (occ, strike, call, expiry_ns) in chosen.items():
            c = candidates.iloc[j]
            ob = series.get(occ)
            o_start = ob.index.asi8 if ob is not None else np.array([], dtype=np.int64)
            o_close = ob["close"].to_numpy(dtype=float) if ob is not None else np.array([])
            iv = self._session_iv(o_start, o_close, u_start, u_close, strike, call, expiry_ns, days[j], rv[j])
            dec_ns = int(c["decision_ns"])
            exit_ns = int(c["exit_ns"])
            entry_mid, e_bars = _at(o_start, o_close, dec_ns - _MIN, max_age)
            spot_entry = float(c["entry"])
            if not e_bars:
                entry_mid = float(blackscholes.price(spot_entry, strike, (expiry_ns - dec_ns) / blackscholes.YEAR_NS, iv, call))
            exit_mid, x_bars = _at(o_start, o_close, exit_ns - _MIN, max_age)
            d = float(blackscholes.delta(float(c["exit"]), strike, (expiry_ns - exit_ns) / blackscholes.YEAR_NS, iv, call))
            if x_bars:
                # the option's close of that minute, moved to where the underlying filled
                k = int(np.searchsorted(u_start, x_bars, side="right")) - 1
                exit_mid = max(0.0, exit_mid + d * (float(c["exit"]) - u_close[k]))
            else:
                exit_mid = float(blackscholes.price(float(c["exit"]), strike, (expiry_ns - exit_ns) / blackscholes.YEAR_NS, iv, call))
            out.loc[j, ["entry_mid", "exit_mid"]] = [entry_mid, exit_mid]
            out.loc[j, "contract_symbol"] = occ
            out.loc[j, "pnl_source"] = PNL_OPTION_BARS if (e_bars and x_bars) else PNL_BLACK_SCHOLES
            self._paths[j] = _path(ob, bars, dec_ns, hold, strike, call, expiry_ns, iv)
        return out

    def paths_for(self, taken: np.ndarray, trade_ids: np.ndarray) -> pd.DataFrame:
        """``option_paths`` rows of the candidates at positions ``taken``, as trade ``trade_ids``."""
        frames = []
        for j, tid in zip(taken, trade_ids, strict=True):
            p = self._paths[j] if j < len(self._paths) else None
            if p is not None and len(p):
                frames.append(p.assign(trade_id=int(tid)))
        if not frames:
            return pd.DataFrame(columns=["trade_id", "minute", "bar_time", "open", "high", "low", "close",
                                         "volume", "source"])
        return pd.concat(frames, ignore_index=True)

    # ------------------------------------------------------------------ pieces
    def _choose(self, c, dec, day, rv, settings, symbol, cost):
        """(OCC symbol, strike, is call, expiry time ns) by the scanner's contract rules."""
        t = dec.tz_localize(None)
        expirations = [day, next_session(day)]
        exp, _ = choose_expiration(expirations, t, settings, symbol)
        if exp is None:
            return None
        spot = float(c["entry"])
        step = settings.option_strike_step
        atm = round(spot / step) * step
        strikes = atm + step * np.arange(-_CHAIN_STRIKES, _CHAIN_STRIKES + 1)
        call = c["direction"] == "call"
        expiry_ns = _session_close_ns(exp)
        mids = blackscholes.price(spot, strikes, (expiry_ns - dec.value) / blackscholes.YEAR_NS, rv, call)
        chain = pd.DataFrame({
            "symbol": [occ_symbol(symbol, exp, c["direction"], k) for k in strikes],
            "expiration": exp, "type": c["direction"], "strike": strikes,
            "bid": np.maximum(mids - cost.spread / 2, 0.0), "ask": mids + cost.spread / 2,
            "iv": rv, "delta": np.nan,
        })[CHAIN_COLUMNS]
        choice, _ = choose_contract(chain, c["direction"], spot, t, settings, symbol)
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

    @staticmethod
    def _session_iv(o_start, o_close, u_start, u_close, strike, call, expiry_ns, day, rv) -> float:
        if not len(o_start):
            return float(rv)
        lo = pd.Timestamp(day).tz_localize(ET).value
        same = (o_start >= lo) & (o_start < lo + 86_400 * 1_000_000_000)
        k = np.searchsorted(u_start, o_start[same])
        ok = (k < len(u_start)) & (u_start[np.minimum(k, len(u_start) - 1)] == o_start[same])
        if not ok.any():
            return float(rv)
        spot = u_close[k[ok]]
        years = (expiry_ns - (o_start[same][ok] + _MIN)) / blackscholes.YEAR_NS
        ivs = blackscholes.implied_vol(o_close[same][ok], spot, strike, years, call)
        ivs = ivs[np.isfinite(ivs)]
        return float(np.median(ivs)) if len(ivs) else float(rv)


def _session_close_ns(day: pd.Timestamp) -> int:
    close_min = int(session_close_minutes(pd.DatetimeIndex([day]))[0])
    return int((pd.Timestamp(day).tz_localize(ET) + pd.Timedelta(minutes=close_min)).value)


def _at(starts: np.ndarray, closes: np.ndarray, minute_ns: int, max_age_ns: int) -> tuple[float, int | None]:
    """Close of the bar starting at ``minute_ns``, else of the latest at most ``max_age`` older:
    (price, start of the bar used) or (nan, None)."""
    i = int(np.searchsorted(starts, minute_ns, side="right")) - 1
    if i >= 0 and minute_ns - starts[i] <= max_age_ns:
        return float(closes[i]), int(starts[i])
    return float("nan"), None


def _path(ob, bars, dec_ns, hold, strike, call, expiry_ns, iv) -> pd.DataFrame:
    """The option's bars from the decision minute (0) through max hold: its own where it
    traded, Black-Scholes on the underlying's bar where it did not."""
    u_start = bars.index.asi8
    first = int(np.searchsorted(u_start, dec_ns - _MIN))
    idx = np.arange(first, min(first + hold + 1, len(u_start)))
    idx = idx[(u_start[idx] >= dec_ns - _MIN) & (u_start[idx] < dec_ns + hold * _MIN)
              & (u_start[idx] < expiry_ns)]
    if not len(idx):
        return pd.DataFrame()
    starts = u_start[idx]
    minute = ((starts - (dec_ns - _MIN)) // _MIN).astype(np.int64)
    years_open = (expiry_ns - starts) / blackscholes.YEAR_NS
    years_close = (expiry_ns - starts - _MIN) / blackscholes.YEAR_NS
    u = {k: bars[k].to_numpy(dtype=float)[idx] for k in ("open", "high", "low", "close")}
    model = {
        "open": blackscholes.price(u["open"], strike, years_open, iv, call),
        "close": blackscholes.price(u["close"], strike, years_close, iv, call),
        "high": blackscholes.price(u["high"] if call else u["low"], strike, years_close, iv, call),
        "low": blackscholes.price(u["low"] if call else u["high"], strike, years_close, iv, call),
    }
    path = pd.DataFrame({"minute": minute, "bar_time": bars.index[idx], **model,
                         "volume": np.nan, "source": PNL_BLACK_SCHOLES})
    path["high"] = path[["open", "high", "close"]].max(axis=1)
    path["low"] = path[["open", "low", "close"]].min(axis=1)
    if ob is not None and len(ob):
        own = ob.reindex(bars.index[idx])
        has = own["close"].notna().to_numpy()
        for col in ("open", "high", "low", "close", "volume"):
            path.loc[has, col] = own[col].to_numpy()[has]
        path.loc[has, "source"] = PNL_OPTION_BARS
    return path
