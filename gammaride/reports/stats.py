"""Trade statistics for the report. Pure functions over arrays and frames.

A win is a trade with positive dollar P&L; when a trade has no dollar P&L its
R-multiple decides. Intervals are 95%: Wilson for win rates (honest at small n and
near 0 or 1), a normal interval for means. Power from the trades' own spread of R.
The formulas are statsmodels', imported inside the functions (it takes a second to
load, and no command's start-up may pay for it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

Z95 = 1.959963984540054


def wilson_interval(wins: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of ``wins / n`` (statsmodels); ``(nan, nan)`` when ``n == 0``."""
    if n < 0 or wins < 0 or wins > n:
        raise ValueError(f"wilson_interval needs 0 <= wins <= n; got wins={wins}, n={n}")
    if n == 0:
        return math.nan, math.nan
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(wins, n, alpha=alpha_of(z), method="wilson")
    return max(0.0, float(lo)), min(1.0, float(hi))


def alpha_of(z: float) -> float:
    """The two-sided level of a normal quantile: 1.96 gives 0.05."""
    return math.erfc(z / math.sqrt(2))


def edge_power(r_values: Sequence[float] | np.ndarray, edge: float = 0.1, alpha: float = 0.05,
               target: float = 0.8) -> dict[str, Any]:
    """What these trades can tell apart from no edge, from their own spread of R.

    ``mde``: the smallest mean R per trade a two-sided test at ``alpha`` detects with
    probability ``target`` at this many trades; ``needed``: the trades needed to detect
    ``edge`` R per trade. One-sample t-test power (statsmodels). NaN below 2 trades or
    with no spread.
    """
    v = np.asarray(r_values, dtype=float)
    v = v[np.isfinite(v)]
    out = {"n": len(v), "sd": math.nan, "mde": math.nan, "needed": math.nan, "edge": edge,
           "alpha": alpha, "power": target}
    if len(v) < 2 or float(v.std(ddof=1)) == 0.0:
        return out
    from statsmodels.stats.power import TTestPower

    sd = float(v.std(ddof=1))
    solver = TTestPower()
    out["sd"] = sd
    if solver.power(effect_size=edge / sd, nobs=2, alpha=alpha, alternative="two-sided") >= target:
        out["needed"] = 2.0  # a spread this small next to the edge: the fewest trades a t-test takes
    else:
        needed = solver.solve_power(effect_size=edge / sd, alpha=alpha, power=target, alternative="two-sided")
        out["needed"] = float(math.ceil(needed)) if math.isfinite(needed) else math.nan
    out["mde"] = float(solver.solve_power(nobs=len(v), alpha=alpha, power=target,
                                          alternative="two-sided")) * sd
    return out


def mean_interval(values: Sequence[float] | np.ndarray, z: float = Z95) -> tuple[float, float, float]:
    """(mean, low, high): the mean with a normal 95% interval (statsmodels); NaNs ignored.

    Bounds are NaN below two values, where no spread can be measured.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan
    from statsmodels.stats.weightstats import DescrStatsW

    lo, hi = DescrStatsW(v).zconfint_mean(alpha=alpha_of(z))
    return mean, float(lo), float(hi)


def profit_factor(pnl: Sequence[float] | np.ndarray) -> float:
    """Gross profit / gross loss. ``inf`` with profits and no losses, NaN with neither."""
    v = np.asarray(pnl, dtype=float)
    v = v[np.isfinite(v)]
    gains = float(v[v > 0].sum())
    losses = float(-v[v < 0].sum())
    if losses == 0:
        return math.inf if gains > 0 else math.nan
    return gains / losses


def drawdown(pnl: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative P&L, drawdown from the running peak) per trade.

    The peak starts at 0 (the equity before the first trade), so a first losing
    trade is already a drawdown. Drawdowns are >= 0. NaN P&L counts as 0.
    """
    v = np.nan_to_num(np.asarray(pnl, dtype=float), nan=0.0)
    equity = np.cumsum(v)
    peak = np.maximum.accumulate(np.concatenate([[0.0], equity]))[1:]
    return equity, peak - equity


def max_drawdown(pnl: Sequence[float] | np.ndarray) -> float:
    """The largest fall from a running peak of cumulative P&L (0 when it never falls)."""
    _, dd = drawdown(pnl)
    return float(dd.max()) if len(dd) else 0.0


def is_win(pnl_usd: np.ndarray | pd.Series, r_multiple: np.ndarray | pd.Series) -> np.ndarray:
    """True where the trade made money: dollar P&L when known, else its R-multiple."""
    pnl = np.asarray(pnl_usd, dtype=float)
    r = np.asarray(r_multiple, dtype=float)
    basis = np.where(np.isfinite(pnl), pnl, r)
    with np.errstate(invalid="ignore"):
        return np.asarray(basis > 0, dtype=bool)


def summarize(trades: pd.DataFrame, min_n: int = 1) -> dict[str, Any]:
    """Headline numbers of a set of closed trades (columns pnl_usd, r_multiple).

    ``enough`` is False below ``min_n`` trades: the caller then shows counts, not rates.
    """
    n = len(trades)
    pnl = trades["pnl_usd"].to_numpy(dtype=float) if n else np.array([])
    r = trades["r_multiple"].to_numpy(dtype=float) if n else np.array([])
    wins = int(is_win(pnl, r).sum()) if n else 0
    lo, hi = wilson_interval(wins, n)
    exp_r, exp_r_lo, exp_r_hi = mean_interval(r)
    exp_usd, exp_usd_lo, exp_usd_hi = mean_interval(pnl)
    return {
        "n": n,
        "wins": wins,
        "losses": n - wins,
        "enough": n >= max(min_n, 1),
        "win_rate": wins / n if n else math.nan,
        "win_lo": lo,
        "win_hi": hi,
        "exp_r": exp_r,
        "exp_r_lo": exp_r_lo,
        "exp_r_hi": exp_r_hi,
        "exp_usd": exp_usd,
        "exp_usd_lo": exp_usd_lo,
        "exp_usd_hi": exp_usd_hi,
        "total_r": float(np.nansum(r)) if n else 0.0,
        "total_usd": float(np.nansum(pnl)) if n else 0.0,
        "profit_factor": profit_factor(pnl),
    }


def breakdown(
    trades: pd.DataFrame, key: str, order: Sequence[Any] | None = None, min_n: int = 10
) -> list[dict[str, Any]]:
    """:func:`summarize` per value of ``trades[key]``, in ``order`` (then any others).

    Values listed in ``order`` appear even with no trades, so a breakdown always shows
    every bucket; missing keys group under "unknown".
    """
    if trades.empty:
        groups: dict[Any, pd.DataFrame] = {}
    else:
        keys = trades[key].astype(object).where(trades[key].notna(), "unknown")
        groups = {k: g for k, g in trades.groupby(keys, sort=True)}
    labels = list(order or [])
    labels += [k for k in groups if k not in labels]
    empty = trades.iloc[:0] if not trades.empty else pd.DataFrame({"pnl_usd": [], "r_multiple": []})
    rows = []
    for label in labels:
        row = summarize(groups.get(label, empty), min_n=min_n)
        row["label"] = str(label)
        rows.append(row)
    return rows


def histogram(values: Sequence[float] | np.ndarray, width: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres, counts): bins of ``width`` centred on multiples of ``width``, so the
    exact outcomes of the exits (-1 R at the stop, +2 R at the target) sit mid-bin."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return np.array([0.0]), np.array([0])
    k = np.round(v / width).astype(np.int64)
    lo = int(k.min())
    counts = np.bincount(k - lo)
    centres = (np.arange(len(counts)) + lo) * width
    return centres, counts
