"""Black-Scholes, the one implementation: price, delta, gamma, the greeks the offline
server quotes, and the implied volatility that reproduces a price. Vectorized over every
argument (scalars work too); European exercise, no dividends, rate 0 unless given (0DTE
horizons make the rate negligible). Replay pricing, the offline server's quotes and
option history, and the dealer gamma measure all price through here."""

from __future__ import annotations

import math

import numpy as np

from gammaride.config import NS_SEC

YEAR_NS = 365.0 * 86_400 * NS_SEC
MIN_YEARS = 60.0 * NS_SEC / YEAR_NS  # below a minute to expiry, price as one minute
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def _ndtr(x):
    # scipy loads on first use: the scanner's gamma gate needs only the pdf
    from scipy.special import ndtr

    return ndtr(x)


def _d1_d2(spot, strike, years, vol, rate=0.0):
    t = np.maximum(np.asarray(years, dtype=float), MIN_YEARS)
    vol = np.asarray(vol, dtype=float)
    sq = vol * np.sqrt(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = (np.log(np.asarray(spot, dtype=float) / np.asarray(strike, dtype=float)) + rate * t + 0.5 * sq * sq) / sq
    return d1, d1 - sq, t, sq


def price(spot, strike, years, vol, call, rate: float = 0.0) -> np.ndarray:
    """European option price, never below 0."""
    spot = np.asarray(spot, dtype=float)
    strike = np.asarray(strike, dtype=float)
    d1, d2, t, _ = _d1_d2(spot, strike, years, vol, rate)
    disc = np.exp(-rate * t)
    c = spot * _ndtr(d1) - strike * disc * _ndtr(d2)
    p = strike * disc * _ndtr(-d2) - spot * _ndtr(-d1)
    return np.maximum(np.where(np.asarray(call, dtype=bool), c, p), 0.0)


def delta(spot, strike, years, vol, call, rate: float = 0.0) -> np.ndarray:
    d1 = _d1_d2(spot, strike, years, vol, rate)[0]
    return np.where(np.asarray(call, dtype=bool), _ndtr(d1), _ndtr(d1) - 1.0)


def gamma(spot, strike, years, vol, rate: float = 0.0) -> np.ndarray:
    """Gamma (the same for a call and a put); NaN where ``vol`` is NaN or 0."""
    spot = np.asarray(spot, dtype=float)
    d1, _, _, sq = _d1_d2(spot, strike, years, vol, rate)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.exp(-0.5 * d1 * d1) / (_SQRT_2PI * spot * sq)


def greeks(spot, strike, years, vol, call, rate: float = 0.0) -> dict[str, np.ndarray]:
    """Price, delta, gamma, theta per calendar day, vega and rho per 1 vol or rate point."""
    spot = np.asarray(spot, dtype=float)
    strike = np.asarray(strike, dtype=float)
    call = np.asarray(call, dtype=bool)
    d1, d2, t, sq = _d1_d2(spot, strike, years, vol, rate)
    disc = strike * np.exp(-rate * t)
    pdf = np.exp(-0.5 * d1 * d1) / _SQRT_2PI
    n1, n2, m1, m2 = _ndtr(d1), _ndtr(d2), _ndtr(-d1), _ndtr(-d2)
    decay = -spot * pdf * np.asarray(vol, dtype=float) / (2.0 * np.sqrt(t))
    return {
        "price": np.maximum(np.where(call, spot * n1 - disc * n2, disc * m2 - spot * m1), 0.0),
        "delta": np.where(call, n1, n1 - 1.0),
        "gamma": pdf / (spot * sq),
        "theta": np.where(call, decay - rate * disc * n2, decay + rate * disc * m2) / 365.0,
        "vega": spot * pdf * np.sqrt(t) / 100.0,
        "rho": np.where(call, disc * t * n2, -disc * t * m2) / 100.0,
    }


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
