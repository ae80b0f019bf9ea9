"""Which option to trade: call or put, expiration, strike. Pure functions over a chain frame.

A chain frame has one row per contract: ``symbol`` (OCC), ``expiration`` (naive date),
``type`` ('call'|'put'), ``strike``, ``bid``, ``ask``, ``iv``, ``delta`` (NaN when the
snapshot has none). :func:`parse_occ` turns OCC symbols into the first four.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from gammaride.config import Settings
from gammaride.rules import session
from gammaride.rules.session import session_close_minutes

CHAIN_COLUMNS = ["symbol", "expiration", "type", "strike", "bid", "ask", "iv", "delta"]
_OCC = re.compile(r"^(?P<root>[A-Z.]{1,6})(?P<date>\d{6})(?P<cp>[CP])(?P<strike>\d{8})$")


@dataclass(frozen=True)
class ContractChoice:
    symbol: str
    expiration: pd.Timestamp
    type: str
    strike: float
    bid: float
    ask: float
    iv: float
    delta: float
    same_day: bool
    hard_stop_min: int  # minutes of day, ET, on the decision's session

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0


@lru_cache(maxsize=64)
def _close_min(day: pd.Timestamp) -> int:
    """The session's close (minutes of day), cached: every scan of a day asks the same."""
    return int(session_close_minutes(pd.DatetimeIndex([day]))[0])


def occ_symbol(root: str, expiration: pd.Timestamp, kind: str, strike: float) -> str:
    """``SPY231008C00432000``: root, yymmdd, C/P, strike times 1000 in eight digits."""
    exp = pd.Timestamp(expiration)
    return f"{root.upper()}{exp:%y%m%d}{'C' if kind == 'call' else 'P'}{int(round(strike * 1000)):08d}"


def parse_occ(symbol: str) -> tuple[str, pd.Timestamp, str, float]:
    """(root, expiration, 'call'|'put', strike) of an OCC option symbol."""
    m = _OCC.match(symbol.strip().upper())
    if not m:
        raise ValueError(f"{symbol!r} is not an OCC option symbol like SPY231008C00432000")
    exp = pd.Timestamp(f"20{m['date'][:2]}-{m['date'][2:4]}-{m['date'][4:]}")
    return m["root"], exp, "call" if m["cp"] == "C" else "put", int(m["strike"]) / 1000.0


def _same_day_allowed(settings: Settings, symbol: str, decision_min: int, close_min: int) -> bool:
    """Scalar form of :func:`gammaride.rules.session.same_day_allowed` (the one rule)."""
    return bool(session.same_day_allowed(settings, symbol, np.asarray([decision_min]), np.asarray([close_min]))[0])


def hard_stop_minute(settings: Settings, symbol: str, close_min: int, same_day: bool) -> int:
    """Scalar form of :func:`gammaride.rules.session.hard_stop_minutes` (the one rule)."""
    return int(session.hard_stop_minutes(settings, symbol, np.asarray([close_min]), np.asarray([same_day]))[0])


def choose_expiration(
    expirations: list[pd.Timestamp] | pd.DatetimeIndex,
    decision_time: pd.Timestamp,
    settings: Settings,
    symbol: str,
) -> tuple[pd.Timestamp | None, str | None]:
    """The nearest expiration whose cut-off leaves at least max hold + buffer minutes.

    Returns (expiration or None, reason when none qualifies). After about 15:05 on a
    normal day a SPY 0DTE no longer qualifies and the next expiration is chosen.
    """
    t = pd.Timestamp(decision_time)
    today = pd.Timestamp(t.date())
    dmin = t.hour * 60 + t.minute
    close_min = _close_min(today)
    exps = sorted({pd.Timestamp(e).normalize() for e in expirations if pd.Timestamp(e).normalize() >= today})
    if not exps:
        return None, "no expiration today or later in the chain"
    for exp in exps:
        if exp > today or _same_day_allowed(settings, symbol, dmin, close_min):
            return exp, None
    return None, "today's expiry is past its cut-off and the chain has no later expiration"


def choose_contract(
    chain: pd.DataFrame,
    direction: str,
    underlying_price: float,
    decision_time: pd.Timestamp,
    settings: Settings,
    symbol: str | None = None,
    target_delta: float | None = None,
) -> tuple[ContractChoice | None, str | None]:
    """The contract to buy for ``direction`` ('call' or 'put'), or (None, reason).

    Expiration by :func:`choose_expiration`; strike nearest the money (or the delta
    nearest ``target_delta``) among contracts with a two-sided quote and a spread within
    ``settings.max_spread_pct`` of the mid.
    """
    if direction not in ("call", "put"):
        raise ValueError(f"direction {direction!r} is not 'call' or 'put'")
    symbol = (symbol or settings.symbol).upper()
    if chain is None or chain.empty:
        return None, "empty option chain"
    is_kind = (chain["type"] == direction).to_numpy()
    expiry = chain["expiration"].to_numpy(dtype="datetime64[ns]")
    exp, why = choose_expiration(pd.DatetimeIndex(np.unique(expiry[is_kind])), decision_time, settings, symbol)
    if exp is None:
        return None, why
    bid = chain["bid"].to_numpy(dtype=float)
    ask = chain["ask"].to_numpy(dtype=float)
    mid = (bid + ask) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = is_kind & (expiry == np.datetime64(exp.to_datetime64(), "ns"))
        quoted = rows & (bid > 0) & (ask >= bid) & np.isfinite(bid) & np.isfinite(ask)
        tight = quoted & ((ask - bid) <= settings.max_spread_pct * mid)
    if not tight.any():
        reason = "no two-sided quote" if not quoted.any() else (
            f"every spread wider than {settings.max_spread_pct:.0%} of mid"
        )
        return None, f"no tradable {direction} for {exp:%Y-%m-%d} ({reason})"
    idx = np.flatnonzero(tight)
    delta = chain["delta"].to_numpy(dtype=float)[idx]
    if target_delta is not None and np.isfinite(delta).any():
        score = np.where(np.isfinite(delta), np.abs(np.abs(delta) - abs(target_delta)), np.inf)
    else:
        score = np.abs(chain["strike"].to_numpy(dtype=float)[idx] - underlying_price)
    # ties: the cheaper (further out of the money) contract
    best = chain.iloc[int(idx[np.lexsort((ask[idx], score))[0]])]
    today = pd.Timestamp(pd.Timestamp(decision_time).date())
    close_min = _close_min(today)
    same_day = bool(exp == today)
    return (
        ContractChoice(
            symbol=str(best["symbol"]),
            expiration=exp,
            type=direction,
            strike=float(best["strike"]),
            bid=float(best["bid"]),
            ask=float(best["ask"]),
            iv=float(best["iv"]) if pd.notna(best["iv"]) else float("nan"),
            delta=float(best["delta"]) if pd.notna(best["delta"]) else float("nan"),
            same_day=same_day,
            hard_stop_min=hard_stop_minute(settings, symbol, close_min, same_day),
        ),
        None,
    )


@dataclass(frozen=True)
class IVReading:
    """Today's at-the-money IV and the one series it came from: the contract, its expiry and
    strike, and the days-to-expiry class the percentile compares it within."""

    iv: float  # NaN when the ATM contracts of that expiry carry no IV
    contract: str | None = None
    expiry: pd.Timestamp | None = None
    strike: float = float("nan")
    dte_class: str | None = None
    reason: str | None = None  # why iv is NaN


def dte_class(expiry: pd.Timestamp, session: pd.Timestamp) -> str:
    """Days-to-expiry class: 0dte, 1dte, 2-7dte or 8+dte (calendar days)."""
    days = (pd.Timestamp(expiry).normalize() - pd.Timestamp(session).normalize()).days
    return "0dte" if days <= 0 else "1dte" if days == 1 else "2-7dte" if days <= 7 else "8+dte"


def atm_reading(chain: pd.DataFrame | None, underlying_price: float, session: pd.Timestamp) -> IVReading:
    """The ATM IV of the nearest expiration on or after ``session``: the mean IV of the call
    and put at the strike nearest the price. When those contracts carry no IV the reading
    is NaN with its reason: never an IV from another expiry or strike, which would mix
    series the percentile cannot compare."""
    if chain is None or chain.empty:
        return IVReading(float("nan"), reason="no option chain")
    session = pd.Timestamp(session).normalize()
    c = chain[chain["expiration"].dt.normalize() >= session]
    if c.empty:
        return IVReading(float("nan"), reason=f"no expiration on or after {session:%Y-%m-%d} in the chain")
    expiry = c["expiration"].min()
    c = c[c["expiration"] == expiry]
    dist = (c["strike"] - underlying_price).abs()
    at = c[dist == dist.min()]
    strike = float(at["strike"].iloc[0])
    ivs = at["iv"].to_numpy(dtype=float)
    ivs = ivs[np.isfinite(ivs) & (ivs > 0)]
    contract = str(at.sort_values("type")["symbol"].iloc[0])
    common = dict(contract=contract, expiry=pd.Timestamp(expiry), strike=strike, dte_class=dte_class(expiry, session))
    if not len(ivs):
        return IVReading(float("nan"), reason=f"snapshot of {contract} has no IV", **common)
    return IVReading(float(ivs.mean()), **common)


def atm_iv(chain: pd.DataFrame, underlying_price: float, on_or_after: pd.Timestamp | None = None) -> tuple[float, str | None]:
    """(ATM IV, contract) of :func:`atm_reading` from ``on_or_after`` (default: the chain's
    nearest expiration); (NaN, ...) without an IV."""
    if chain is None or chain.empty:
        return float("nan"), None
    r = atm_reading(chain, underlying_price, chain["expiration"].min() if on_or_after is None else on_or_after)
    return r.iv, r.contract


# Alpaca's option price increments. SPY, QQQ and IWM trade in pennies at every price;
# Penny Program classes in pennies below $3 and nickels at or above; all others in nickels
# below $3 and dimes at or above. A name missing from PENNY_PROGRAM is priced on the coarser
# grid, which is always on the finer one too: never an off-tick price, at worst a cent less
# aggressive than needed.
PENNY_EVERYWHERE = frozenset({"SPY", "QQQ", "IWM"})
PENNY_PROGRAM = frozenset({
    "AAPL", "AMD", "AMZN", "BAC", "C", "DIA", "EEM", "F", "GDX", "GLD", "GOOGL", "INTC", "META",
    "MSFT", "NFLX", "NVDA", "SLV", "SMH", "T", "TLT", "TSLA", "USO", "XLE", "XLF", "XLK",
})


def price_increment(root: str, price: float) -> float:
    """The tick of an option on ``root`` trading at ``price`` (dollars per share)."""
    root = str(root).upper()
    if root in PENNY_EVERYWHERE:
        return 0.01
    if root in PENNY_PROGRAM:
        return 0.01 if price < 3.0 else 0.05
    return 0.05 if price < 3.0 else 0.10


def to_tick(price: float, root: str, up: bool | None) -> float:
    """``price`` moved onto ``root``'s grid: up, down, or to the nearest tick (``up=None``);
    at least one tick."""
    def snap(tick: float) -> float:
        n = float(price) / tick
        n = round(n) if up is None else (np.ceil(n - 1e-6) if up else np.floor(n + 1e-6))
        return round(max(1.0, n) * tick, 2)

    tick = price_increment(root, price)
    out = snap(tick)
    # the grid changes at $3: a price snapped on the finer grid may land where the coarser applies
    coarser = price_increment(root, out)
    return float(snap(coarser) if coarser != tick else out)


def on_tick(price: float, root: str) -> bool:
    """Whether ``price`` is a multiple of ``root``'s increment at that price."""
    tick = price_increment(root, price)
    n = float(price) / tick
    return abs(n - round(n)) < 1e-6


def premium_at(entry_premium: float, delta: float, sign: int, underlying_move: float, root: str = "SPY") -> float:
    """Delta estimate of the option premium after the underlying moves by ``underlying_move``.

    ``sign`` +1 for a call, -1 for a put; ``delta`` as quoted (negative for puts) or its
    absolute value. On ``root``'s price grid, floored at one tick: a stop at zero would
    never trigger.
    """
    d = abs(delta) if np.isfinite(delta) else 0.5
    return to_tick(max(0.0, entry_premium + sign * d * underlying_move), root, up=None)


def marketable_limit(side: str, bid: float, ask: float, cushion: float = 0.05, root: str = "SPY",
                     extra: float = 0.0) -> float:
    """A limit that crosses the spread by ``cushion`` of it (at least a tick) plus ``extra``
    dollars, on ``root``'s price grid: a buy rounded up from the ask, a sell down from the bid."""
    spread = max(ask - bid, 0.0)
    pad = max(0.01, round(spread * cushion, 2)) + max(0.0, extra)
    if side == "buy":
        return to_tick(ask + pad, root, up=True)
    return to_tick(max(0.0, bid - pad), root, up=False)
