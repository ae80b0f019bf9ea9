"""Option contracts of the replayed underlying: OCC symbols, Black-Scholes quotes and greeks.

The chain is generated, not recorded: daily expirations (the current session and the
next ones, each expiring at its session close), strikes on a fixed grid around the
money, prices and greeks from Black-Scholes at the simulated underlying price with a
configurable implied volatility, and a bid/ask spread of max($0.01, 3% of mid) on
penny increments. Open interest follows a plausible profile (see
:meth:`OptionBook.open_interest`), dated the previous session like Alpaca's.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from gammaride.config import ET
from gammaride.errors import ConfigError
from gammaride.offline.market import NS_SEC, Schedule

_OCC = re.compile(r"^([A-Z]{1,6})(\d{2})(\d{2})(\d{2})([CP])(\d{8})$")
_YEAR_NS = 365.0 * 86_400 * NS_SEC
# Below this time to expiry Black-Scholes degenerates; price it as one minute left.
_MIN_T = 60.0 * NS_SEC / _YEAR_NS


@dataclass(frozen=True)
class Contract:
    symbol: str
    root: str
    expiration: str  # YYYY-MM-DD
    right: str  # 'C' or 'P'
    strike: float

    @property
    def type(self) -> str:
        return "call" if self.right == "C" else "put"


def occ_symbol(root: str, expiration: str, right: str, strike: float) -> str:
    """OCC option symbol, e.g. ``occ_symbol('SPY', '2023-10-07', 'C', 168)`` -> SPY231007C00168000."""
    yy, mm, dd = expiration[2:4], expiration[5:7], expiration[8:10]
    return f"{root.upper()}{yy}{mm}{dd}{right}{int(round(strike * 1000)):08d}"


def parse_occ(symbol: str) -> Contract | None:
    """The contract an OCC symbol names, or None when it is not an OCC option symbol."""
    m = _OCC.match(symbol.upper())
    if not m:
        return None
    root, yy, mm, dd, right, strike = m.groups()
    year = 2000 + int(yy)
    return Contract(symbol.upper(), root, f"{year:04d}-{mm}-{dd}", right, int(strike) / 1000.0)


@lru_cache(maxsize=8192)
def contract_id(symbol: str) -> str:
    """A stable UUID per symbol, so ids agree across requests and server restarts."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"gammaride-offline/{symbol}"))


def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _npdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def black_scholes(
    spot: float, strike: float, years: float, vol: float, rate: float, call: bool
) -> dict[str, float]:
    """Price and greeks of a European option (theta per calendar day, vega and rho per 1%)."""
    t = max(years, _MIN_T)
    sq = math.sqrt(t)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * t) / (vol * sq)
    d2 = d1 - vol * sq
    disc = math.exp(-rate * t)
    pdf = _npdf(d1)
    if call:
        price = spot * _ncdf(d1) - strike * disc * _ncdf(d2)
        delta = _ncdf(d1)
        theta = -spot * pdf * vol / (2 * sq) - rate * strike * disc * _ncdf(d2)
        rho = strike * t * disc * _ncdf(d2)
    else:
        price = strike * disc * _ncdf(-d2) - spot * _ncdf(-d1)
        delta = _ncdf(d1) - 1.0
        theta = -spot * pdf * vol / (2 * sq) + rate * strike * disc * _ncdf(-d2)
        rho = -strike * t * disc * _ncdf(-d2)
    return {
        "price": max(price, 0.0),
        "delta": delta,
        "gamma": pdf / (spot * vol * sq),
        "theta": theta / 365.0,
        "vega": spot * pdf * sq / 100.0,
        "rho": rho / 100.0,
    }


def spread_quote(mid: float) -> tuple[float, float]:
    """(bid, ask) around ``mid``: spread max($0.01, 3% of mid), both on penny increments."""
    spread = max(0.01, round(0.03 * mid, 2))
    bid = max(0.0, math.floor((mid - spread / 2) * 100 + 1e-9) / 100)
    ask = round(bid + spread, 2)
    return round(bid, 2), ask


class IVSource:
    """A constant implied volatility, or a series of IV indexed by time (last value at or before now)."""

    def __init__(self, iv: float | pd.Series) -> None:
        if isinstance(iv, pd.Series):
            if not len(iv) or not isinstance(iv.index, pd.DatetimeIndex):
                raise ConfigError("an IV series needs a non-empty DatetimeIndex; give pd.Series(values, index=times)")
            idx = iv.index if iv.index.tz is not None else iv.index.tz_localize(ET)
            order = np.argsort(idx.asi8)
            self._times = idx.tz_convert("UTC").as_unit("ns").asi8[order]
            self._values = iv.to_numpy(dtype=float)[order]
        else:
            self._times = None
            self._values = np.array([float(iv)])
        bad = ~np.isfinite(self._values) | (self._values <= 0) | (self._values > 5)
        if bad.any():
            raise ConfigError(
                f"implied volatility {self._values[bad][0]!r} is out of range; give a fraction such as 0.20"
            )

    def at(self, now_ns: int) -> float:
        if self._times is None:
            return float(self._values[0])
        j = int(np.searchsorted(self._times, now_ns, side="right")) - 1
        return float(self._values[max(j, 0)])


class OptionBook:
    """Generates the chain and prices contracts of one underlying."""

    def __init__(
        self,
        underlying: str,
        schedule: Schedule,
        iv: IVSource,
        rate: float = 0.0,
        strikes_each_side: int = 10,
        strike_step: float = 1.0,
        expirations: int = 5,
    ) -> None:
        self.underlying = underlying.upper()
        self.schedule = schedule
        self.iv = iv
        self.rate = float(rate)
        self.strikes_each_side = int(strikes_each_side)
        self.strike_step = float(strike_step)
        self.expirations = int(expirations)
        self._chains: dict[tuple, list[Contract]] = {}

    def expiration_dates(self, now_ns: int) -> list[str]:
        """The current session (until its close) and the next sessions."""
        i = self.schedule.index_at_or_after(now_ns)
        return list(self.schedule.dates[i : i + self.expirations])

    def strikes(self, spot: float) -> list[float]:
        step = self.strike_step
        atm = round(spot / step) * step
        n = self.strikes_each_side
        return [round(atm + k * step, 2) for k in range(-n, n + 1)]

    def chain(self, now_ns: int, spot: float) -> list[Contract]:
        """Contracts listed at ``now``: expirations x strikes around ``spot`` x call/put."""
        strikes = self.strikes(spot)
        key = (tuple(self.expiration_dates(now_ns)), strikes[0])
        cached = self._chains.get(key)
        if cached is None:  # the listing changes only when the money or the day moves
            cached = [
                Contract(occ_symbol(self.underlying, exp, right, k), self.underlying, exp, right, k)
                for exp in key[0] for k in strikes for right in ("C", "P")
            ]
            if len(self._chains) > 256:
                self._chains.clear()
            self._chains[key] = cached
        return list(cached)

    def expiry_ns(self, contract: Contract) -> int | None:
        """The session close of the expiration date (None when it is not a session)."""
        i = self.schedule.position_of_date(contract.expiration)
        return None if i < 0 else int(self.schedule.closes[i])

    def is_known(self, contract: Contract, now_ns: int) -> bool:
        """Tradable here: our underlying, a session expiration, not yet expired."""
        exp = self.expiry_ns(contract)
        return contract.root == self.underlying and exp is not None and exp > now_ns

    def price(self, contract: Contract, now_ns: int, spot: float) -> dict[str, float]:
        """Mid, bid, ask, IV and greeks at ``now``; after expiry the intrinsic value."""
        exp = self.expiry_ns(contract)
        call = contract.right == "C"
        vol = self.iv.at(now_ns)
        if exp is None or now_ns >= exp:
            intrinsic = max(0.0, spot - contract.strike) if call else max(0.0, contract.strike - spot)
            greeks = {"price": intrinsic, "delta": 0.0, "gamma": 0.0, "theta": 0.0, "vega": 0.0, "rho": 0.0}
        else:
            greeks = black_scholes(spot, contract.strike, (exp - now_ns) / _YEAR_NS, vol, self.rate, call)
        bid, ask = spread_quote(greeks["price"])
        return {**greeks, "mid": greeks["price"], "bid": bid, "ask": ask, "iv": vol}

    def open_interest(self, contract: Contract, reference: float, as_of: str) -> int:
        """A plausible open interest, fixed for a contract and a date: a bell around
        ``reference`` (the previous close) about 2% wide, puts heavier below it and calls
        above it (customers buy protection and sell upside), twice as much at strikes on
        $5 and three times at $10, less in later expirations, and +-20% of noise that is
        the same for the same contract and date."""
        m = (contract.strike - reference) / reference
        width = 0.02
        bell = math.exp(-0.5 * (m / width) ** 2)
        lean = 1.0 + 0.6 * math.tanh(m / width) * (1.0 if contract.right == "C" else -1.0)
        k = round(contract.strike, 2)
        round_strike = 3.0 if k % 10 == 0 else 2.0 if k % 5 == 0 else 1.0
        later = max(0, self.schedule.position_of_date(contract.expiration) - self.schedule.position_of_date(as_of) - 1)
        noise = int(hashlib.sha256(f"{contract.symbol}/{as_of}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return int(round(8000.0 * bell * lean * round_strike / (1.0 + 0.25 * later) * (0.8 + 0.4 * noise)))

    def open_interest_fields(self, contract: Contract, now_ns: int, tape) -> dict[str, object]:
        """``open_interest`` (text, as Alpaca sends it) and ``open_interest_date`` of a
        contract at ``now``: as of the previous session's close, around its last price."""
        i = self.schedule.index_at_or_after(now_ns)
        if i < 1 or i >= len(self.schedule.dates):
            return {"open_interest": None, "open_interest_date": None}
        as_of = self.schedule.dates[i - 1]
        reference = tape.last_close_before(int(self.schedule.opens[i])) or tape.price_at(now_ns)
        return {"open_interest": str(self.open_interest(contract, float(reference), as_of)),
                "open_interest_date": as_of}
