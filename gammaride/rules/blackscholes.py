"""Vectorized Black-Scholes for replay pricing and the offline server's option history:
price, delta, and the implied volatility that reproduces a price."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

YEAR_NS = 365.0 * 86_400 * 1_000_000_000
MIN_YEARS = 60.0 * 1_000_000_000 / YEAR_NS  # below a minute to expiry, price as one minute


def _d1_d2(spot, strike, years, vol):
    t = np.maximum(np.asarray(years, dtype=float), MIN_YEARS)
    vol = np.asarray(vol, dtype=float)
    sq = vol * np.sqrt(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = (np.log(np.asarray(spot, dtype=float) / np.asarray(strike, dtype=float)) + 0.5 * sq * sq) / sq
    return d1, d1 - sq


def price(spot, strike, years, vol, call) -> np.ndarray:
    """European option price at zero rates (0DTE horizons make the rate negligible)."""
    spot = np.asarray(spot, dtype=float)
    strike = np.asarray(strike, dtype=float)
    d1, d2 = _d1_d2(spot, strike, years, vol)
    c = spot * ndtr(d1) - strike * ndtr(d2)
    p = strike * ndtr(-d2) - spot * ndtr(-d1)
    return np.maximum(np.where(np.asarray(call, dtype=bool), c, p), 0.0)


def delta(spot, strike, years, vol, call) -> np.ndarray:
    d1, _ = _d1_d2(spot, strike, years, vol)
    return np.where(np.asarray(call, dtype=bool), ndtr(d1), ndtr(d1) - 1.0)


def implied_vol(option_price, spot, strike, years, call, lo: float = 0.01, hi: float = 5.0) -> np.ndarray:
    """The volatility whose price matches ``option_price`` (bisection to 1e-11); NaN where
    the price is outside what any volatility in [lo, hi] gives (below intrinsic, say)."""
    target = np.asarray(option_price, dtype=float)
    a = np.full(target.shape, lo)
    b = np.full(target.shape, hi)
    p_lo = price(spot, strike, years, a, call)
    p_hi = price(spot, strike, years, b, call)
    ok = (target > p_lo) & (target < p_hi)
    for _ in range(40):
        mid = 0.5 * (a + b)
        above = price(spot, strike, years, mid, call) > target
        b = np.where(above, mid, b)
        a = np.where(above, a, mid)
    return np.where(ok, 0.5 * (a + b), np.nan)
