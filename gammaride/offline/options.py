"""Option contracts of the replayed underlying: the chain, its Black-Scholes quotes and greeks.

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
import uuid
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from gammaride.config import ET
from gammaride.errors import ConfigError
from gammaride.offline.market import Schedule
from gammaride.offline.params import OptionChain
from gammaride.rules import blackscholes
from gammaride.rules.contracts import occ_symbol, parse_occ


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


@lru_cache(maxsize=8192)
def contract_of(symbol: str) -> Contract | None:
    """The contract an OCC symbol names (read by :func:`gammaride.rules.contracts.parse_occ`),
    or None when it is not an OCC option symbol."""
    if not isinstance(symbol, str):
        return None
    try:
        root, expiration, kind, strike = parse_occ(symbol)
    except ValueError:
        return None
    return Contract(symbol.strip().upper(), root, f"{expiration:%Y-%m-%d}", "C" if kind == "call" else "P", strike)


@lru_cache(maxsize=8192)
def contract_id(symbol: str) -> str:
    """A stable UUID per symbol, so ids agree across requests and server restarts."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"gammaride-offline/{symbol}"))


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

    def __init__(self, underlying: str, schedule: Schedule, chain: OptionChain) -> None:
        self.underlying = underlying.upper()
        self.schedule = schedule
        self.iv = IVSource(chain.iv)
        self.rate = float(chain.rate)
        self.strikes_each_side = int(chain.strikes_each_side)
        self.strike_step = float(chain.strike_step)
        self.expirations = int(chain.expirations)
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
                Contract(occ_symbol(self.underlying, exp, "call" if right == "C" else "put", k),
                         self.underlying, exp, right, k)
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
        return self.prices([contract], now_ns, spot)[0]

    def prices(self, contracts: list[Contract], now_ns: int, spot: float) -> list[dict[str, float]]:
        """:meth:`price` of each contract, the Black-Scholes part in one vectorized call."""
        vol = self.iv.at(now_ns)
        exp = np.array([self.expiry_ns(c) or 0 for c in contracts], dtype=np.int64)
        strike = np.array([c.strike for c in contracts], dtype=float)
        call = np.array([c.right == "C" for c in contracts], dtype=bool)
        live = exp > now_ns
        greeks = blackscholes.greeks(spot, strike, (exp - now_ns) / blackscholes.YEAR_NS, vol, call, self.rate)
        # after expiry (or on a day that is no session): the intrinsic value, no greeks
        greeks = {k: np.where(live, v, 0.0) for k, v in greeks.items()}
        greeks["price"] = np.where(live, greeks["price"],
                                   np.maximum(np.where(call, spot - strike, strike - spot), 0.0))
        rows = [dict(zip(greeks, map(float, values), strict=True)) for values in zip(*greeks.values(), strict=True)]
        for row in rows:
            row["mid"] = row["price"]
            row["bid"], row["ask"] = spread_quote(row["price"])
            row["iv"] = vol
        return rows

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
