"""Dealer gamma exposure of an option chain: the measure, pure and vectorised.

Convention (the common published one): customers buy puts and sell calls, so dealers
are **long the calls and short the puts** that are open. Each contract adds

    sign * open_interest * gamma * 100 * spot**2 * 0.01      (sign +1 call, -1 put)

dollars of delta that dealers must trade for a 1% move of the underlying: the net is
positive when their hedging damps moves (they sell rallies, buy dips) and negative
when it feeds them. The zero-gamma level is the spot at which the net, recomputed with
each contract's Black-Scholes gamma from its IV, crosses zero; below it (or with a
negative net) dealers are short gamma.

Nothing here touches the network or the clock: the caller passes the chain, the open
interest and ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
import pandas as pd

from gammaride.config import ET, Settings
from gammaride.rules import blackscholes
from gammaride.rules.session import session_close_minutes

GAMMA_COLUMNS = ["symbol", "expiration", "type", "strike", "iv", "gamma", "open_interest"]
GATES: tuple[str, ...] = next(f for f in fields(Settings) if f.name == "gamma_gate").metadata["choices"]
REGIME_SHORT = "short"
REGIME_LONG = "long"
REPLAY_REASON = "replay: historical open interest is not available from Alpaca"
CONTRACT_SIZE = 100.0
MOVE = 0.01  # exposure per 1% move of the underlying
_YEAR_MIN = 365.0 * 24 * 60
# IVs at or below this are placeholders (deep in the money), not volatilities.
_MIN_IV = 1e-4
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_FINE_POINTS = 17


@dataclass(frozen=True)
class GammaExposure:
    """Dealer gamma at one scan. Money in $ per 1% move; NaN (journaled NULL) when missing."""

    spot: float
    net: float = math.nan
    calls: float = math.nan
    puts: float = math.nan
    zero_dte: float = math.nan
    zero_gamma: float = math.nan
    call_wall: float = math.nan
    put_wall: float = math.nan
    regime: str | None = None
    contracts: int = 0
    bs_count: int = 0
    reason: str | None = None

    @property
    def distance_pct(self) -> float:
        """Spot's distance above the zero-gamma level, in % of spot (negative below)."""
        if not (math.isfinite(self.zero_gamma) and math.isfinite(self.spot) and self.spot > 0):
            return math.nan
        return (self.spot - self.zero_gamma) / self.spot * 100.0

    def row(self) -> dict:
        """The ``scans`` columns of migration m009 (``gamma_gate`` is the caller's)."""
        return {
            "gex_net": _or_none(self.net), "gex_calls": _or_none(self.calls),
            "gex_puts": _or_none(self.puts), "gex_0dte": _or_none(self.zero_dte),
            "zero_gamma": _or_none(self.zero_gamma), "call_wall": _or_none(self.call_wall),
            "put_wall": _or_none(self.put_wall), "gamma_regime": self.regime,
            "gamma_contracts": int(self.contracts), "gamma_bs_count": int(self.bs_count),
            "gamma_reason": self.reason,
        }

    def describe(self) -> str:
        """One line for the debug block and the notebook: regime, net, distance to zero gamma."""
        if self.regime is None:
            return f"dealer gamma: unknown ({self.reason or 'no measure'})"
        where = "no zero-gamma level in range"
        if math.isfinite(self.zero_gamma):
            d = self.distance_pct
            where = f"zero-gamma ${self.zero_gamma:.2f}, spot {abs(d):.2f}% {'above' if d >= 0 else 'below'}"
        walls = " / ".join(
            f"{name} wall ${k:g}" for name, k in (("call", self.call_wall), ("put", self.put_wall)) if math.isfinite(k)
        )
        bs = f", {self.bs_count} by Black-Scholes" if self.bs_count else ""
        return (
            f"dealer gamma: {self.regime.upper()} · net {compact_usd(self.net)} per 1% "
            f"(calls {compact_usd(self.calls)}, puts {compact_usd(self.puts)}, 0DTE {compact_usd(self.zero_dte)}) · "
            f"{where}{' · ' + walls if walls else ''} · {self.contracts} contracts{bs}"
        )


def missing(spot: float, reason: str) -> GammaExposure:
    """No measure this scan, and why."""
    return GammaExposure(spot=float(spot), reason=reason)


def compact_usd(x: float) -> str:
    """``+$1.23B``, ``-$450.0M``, ``+$12.5K``: exposures span six orders of magnitude."""
    if x is None or not math.isfinite(x):
        return "–"
    a = abs(x)
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if a >= div:
            body = f"${a / div:.2f}{unit}" if a / div < 100 else f"${a / div:.0f}{unit}"
            break
    else:
        body = f"${a:.0f}"
    return ("-" if x < 0 else "+" if x > 0 else "") + body


def years_to_expiry(expiration: pd.Series | pd.DatetimeIndex, now: pd.Timestamp) -> np.ndarray:
    """Years (of 365 days) from ``now`` to each expiration's session close, ET (13:00 on
    early-close days)."""
    return _years(_days(expiration), now)


def _years(days: np.ndarray, now) -> np.ndarray:
    uniq, inv = np.unique(days, return_inverse=True)
    utc = np.array([_close_ns(int(d)) for d in uniq], dtype=float)
    return (utc[inv.reshape(-1)] - _aware(now).value) / 60e9 / _YEAR_MIN


def exposure_profile(spots, strike, years, iv, weight) -> np.ndarray:
    """Net exposure ($ per 1%) at each of ``spots``, with every contract's gamma recomputed
    from its IV there. ``weight`` = sign * open interest * 100 per contract.

    :func:`gammaride.rules.blackscholes.gamma` on the (spots x contracts) grid, rearranged so the grid costs one
    subtraction, one exp and a matrix product: gamma * S**2 = S * pdf(d1) / (iv * sqrt(T)).
    """
    s = np.asarray(spots, dtype=float)
    sq = np.asarray(iv, dtype=float) * np.sqrt(np.asarray(years, dtype=float))
    inv = 1.0 / sq
    d1 = np.subtract.outer(np.log(s), np.log(strike)) * inv + 0.5 * sq
    pdf = np.exp(-0.5 * d1 * d1)
    return (pdf @ (weight * inv / _SQRT_2PI)) * s * MOVE


def zero_crossing(spots: np.ndarray, profile: np.ndarray, spot: float) -> float:
    """The spot nearest ``spot`` where ``profile`` changes sign (linear between grid
    points); NaN when it never does."""
    p = np.asarray(profile, dtype=float)
    s = np.asarray(spots, dtype=float)
    exact = s[p == 0]
    lo, hi = p[:-1], p[1:]
    idx = np.flatnonzero(lo * hi < 0)
    cross = s[idx] - lo[idx] * (s[idx + 1] - s[idx]) / (hi[idx] - lo[idx])
    found = np.concatenate([exact, cross])
    if not len(found):
        return math.nan
    return float(found[np.argmin(np.abs(found - spot))])


def measure(
    contracts: pd.DataFrame,
    spot: float,
    now: pd.Timestamp,
    *,
    grid_range: float = 0.05,
    grid_points: int = 41,
) -> GammaExposure:
    """Dealer gamma exposure of ``contracts`` (columns :data:`GAMMA_COLUMNS`) at ``spot``.

    Per contract: the snapshot's gamma, or Black-Scholes gamma from its IV when the
    snapshot has none (counted in ``bs_count``). Contracts without open interest, or
    without both gamma and IV, or already expired, are left out and named in ``reason``.
    The zero-gamma level is searched over ``grid_points`` spots in ``spot * (1 ± grid_range)``,
    then over 17 spots between the two that bracket the crossing nearest spot.
    """
    spot = float(spot)
    if not (math.isfinite(spot) and spot > 0):
        return missing(spot, f"no underlying price ({spot!r})")
    if contracts is None or contracts.empty:
        return missing(spot, "no option contracts in range")
    strike, oi, gamma, iv = (_floats(contracts[c]) for c in ("strike", "open_interest", "gamma", "iv"))
    call = contracts["type"].to_numpy(dtype=object) == "call"  # 5x faster than Series == on arrow text
    days = _days(contracts["expiration"])
    years = _years(days, now)

    live = years > 0
    has_iv = np.isfinite(iv) & (iv > _MIN_IV) & (iv < 10)
    snap = np.isfinite(gamma) & (gamma >= 0)
    use_bs = ~snap & has_iv
    has_oi = np.isfinite(oi) & (oi >= 0)
    ok = live & has_oi & (snap | use_bs) & np.isfinite(strike) & (strike > 0)
    notes = _notes(len(contracts), live, has_oi, snap | use_bs)
    if not ok.any():
        return missing(spot, "; ".join(notes) or "no usable contracts")

    t = np.maximum(years, blackscholes.MIN_YEARS)
    g = np.where(snap, gamma, blackscholes.gamma(spot, strike, t, np.where(has_iv, iv, np.nan)))
    sign = np.where(call, 1.0, -1.0)
    per_contract = np.where(ok, sign * oi * g * CONTRACT_SIZE * spot * spot * MOVE, 0.0)
    calls = float(per_contract[call].sum())
    puts = float(per_contract[~call].sum())
    net = calls + puts
    today = np.datetime64(_aware(now).tz_convert(ET).strftime("%Y-%m-%d"), "D").astype(np.int64)
    same_day = ok & (days == today)
    zero_dte = float(per_contract[same_day].sum())

    # walls: the strikes holding the most call and the most put exposure (all expirations)
    call_wall = _wall(strike[ok & call], per_contract[ok & call])
    put_wall = _wall(strike[ok & ~call], -per_contract[ok & ~call])

    prof = ok & has_iv
    zero = math.nan
    if prof.any():
        args = (strike[prof], t[prof], iv[prof], sign[prof] * oi[prof] * CONTRACT_SIZE)
        spots = spot * np.linspace(1 - grid_range, 1 + grid_range, grid_points)
        zero = zero_crossing(spots, exposure_profile(spots, *args), spot)
        if math.isfinite(zero):  # refine between the two grid spots around it
            i = int(np.clip(np.searchsorted(spots, zero), 1, len(spots) - 1))
            fine = np.linspace(spots[i - 1], spots[i], _FINE_POINTS)
            refined = zero_crossing(fine, exposure_profile(fine, *args), zero)
            zero = refined if math.isfinite(refined) else zero
        else:
            notes.append(f"no zero-gamma level within ±{grid_range:.0%} of spot")
    else:
        notes.append("no IVs to recompute gamma away from spot: zero-gamma level unknown")
    short = net < 0 or (math.isfinite(zero) and spot < zero)
    return GammaExposure(
        spot=spot, net=net, calls=calls, puts=puts, zero_dte=zero_dte, zero_gamma=zero,
        call_wall=call_wall, put_wall=put_wall, regime=REGIME_SHORT if short else REGIME_LONG,
        contracts=int(ok.sum()), bs_count=int((ok & use_bs).sum()), reason="; ".join(notes) or None,
    )


def gate_block(gate: str, exposure: GammaExposure | None) -> str | None:
    """Why the gamma gate refuses an entry, or None when it lets it through."""
    if gate == "off":
        return None
    if gate != "short_only":
        raise ValueError(f"gamma_gate {gate!r} is not one of {', '.join(GATES)}")
    if exposure is None or exposure.regime is None:
        why = exposure.reason if exposure is not None else "not measured"
        return f"gamma gate short_only: regime unknown ({why})"
    if exposure.regime == REGIME_SHORT:
        return None
    return f"gamma gate short_only: dealers long gamma (net {compact_usd(exposure.net)} per 1%)"


def _days(expiration) -> np.ndarray:
    """Expiration dates as days since the epoch (naive dates; aware ones taken in ET)."""
    values = np.asarray(expiration)
    if values.dtype.kind == "M":  # naive datetime64 of any unit: no parsing
        return values.astype("datetime64[D]").astype(np.int64)
    days = pd.DatetimeIndex(pd.to_datetime(expiration))
    if days.tz is not None:
        days = days.tz_convert(ET).tz_localize(None)
    return days.to_numpy().astype("datetime64[D]").astype(np.int64)


@lru_cache(maxsize=512)
def _close_ns(day: int) -> int:
    """The session close of a day (days since the epoch) as UTC epoch ns: 16:00 ET, or
    the early close; DST-correct."""
    date = pd.Timestamp(np.datetime64(day, "D"))
    minutes = int(session_close_minutes(pd.DatetimeIndex([date]))[0])
    return (date + pd.Timedelta(minutes=minutes)).tz_localize(ET).value


def _aware(now) -> pd.Timestamp:
    """``now`` tz-aware; naive means America/New_York."""
    ts = pd.Timestamp(now)
    return ts.tz_localize(ET) if ts.tz is None else ts


def _wall(strikes: np.ndarray, exposure: np.ndarray) -> float:
    if not len(strikes) or not (exposure > 0).any():
        return math.nan
    uniq, inv = np.unique(strikes, return_inverse=True)
    total = np.bincount(inv.reshape(-1), weights=exposure, minlength=len(uniq))
    return float(uniq[int(np.argmax(total))])


def _notes(n: int, live: np.ndarray, has_oi: np.ndarray, has_gamma: np.ndarray) -> list[str]:
    notes = []
    for count, what in (
        (int((~live).sum()), "expired"),
        (int((live & ~has_oi).sum()), "without open interest"),
        (int((live & has_oi & ~has_gamma).sum()), "without gamma or IV"),
    ):
        if count:
            notes.append(f"{count} of {n} contracts {what} (left out)")
    return notes


def _floats(column: pd.Series) -> np.ndarray:
    try:
        return column.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):  # text or None in the column: what is not a number is missing
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _or_none(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None
