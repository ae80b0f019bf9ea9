"""ATR buckets, the fitted outcome surface and the multipliers taken from it.

Per bucket, the mean outcome of its trades at each grid point (TP x SL) is fitted by
weighted least squares (normal equations on the weighted design) with a cubic polynomial in TP and SL; a separate
fit per bucket is the ``outcome ~ bucket x poly(tp, sl)`` model. The weight of a grid
point is the inverse variance of its mean, so wide-TP points, whose outcomes scatter
most, count least. The bucket's multipliers are the maximum of the fitted surface over
the grid, not of the noisy raw means, shrunk toward Phase 1 by ``n / (n + n0)`` and
rounded to the grid. Buckets with fewer than ``min_bucket_trades`` trades keep Phase 1.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from gammaride.calibration.document import SL_GRID, TP_GRID, bucket_labels

DEGREE = 3
# Fitted gains below this (ATRs per trade) are ties: Phase 1 stays.
_TIE = 1e-6


@dataclass(frozen=True)
class BucketFit:
    """What one ATR bucket's trades say about its exits."""

    label: str
    n: int
    phase: int  # 2: multipliers from the fit; 1: too few trades, Phase 1 kept
    tp_mult: float  # in force (shrunk, on the grid)
    sl_mult: float
    fitted_tp: float | None = None  # maximum of the fitted surface, before shrinkage
    fitted_sl: float | None = None
    fitted_gain: float | None = None  # fitted(tp, sl) - fitted(Phase 1), ATRs per trade
    r_squared: float | None = None


MAX_BUCKETS = 3
EDGE_WINDOW = 0.1  # an edge may move this share of the trades from its quantile


def tercile_edges(atr: np.ndarray) -> tuple[float, ...]:
    """Two edges at the 1/3 and 2/3 quantiles of ATR (fewer when ATRs repeat)."""
    return quantile_edges(atr, 3)


def quantile_edges(atr: np.ndarray, n_buckets: int) -> tuple[float, ...]:
    """``n_buckets - 1`` edges near equal quantiles of ATR (fewer when ATRs repeat).

    Each edge sits in the widest gap between neighbouring ATRs within
    :data:`EDGE_WINDOW` of the trades around its quantile, so a natural break between
    volatility regimes is not cut through; on a smooth ATR distribution that moves the
    edge only a little.
    """
    atr = np.sort(np.asarray(atr, dtype=float))
    atr = atr[np.isfinite(atr)]
    n = len(atr)
    if n < n_buckets or n_buckets < 2:
        return ()
    edges = []
    for p in np.arange(1, n_buckets) / n_buckets:
        lo = max(int(np.floor((p - EDGE_WINDOW) * n)), 0)
        hi = min(int(np.ceil((p + EDGE_WINDOW) * n)), n - 1)
        if hi <= lo:
            edges.append(float(np.quantile(atr, p)))
            continue
        gaps = np.diff(atr[lo : hi + 1])
        k = lo + int(np.argmax(gaps))
        edges.append(float((atr[k] + atr[k + 1]) / 2) if gaps.max() > 0 else float(atr[k]))
    return tuple(float(e) for e in np.unique(edges) if atr[0] < e)


def auto_edges(atr: np.ndarray, min_bucket_trades: int) -> tuple[float, ...]:
    """Quantile edges for as many buckets (up to three) as the trades support: each
    bucket gets about ``min_bucket_trades``, so a young journal fits one bucket for all
    ATRs, and three from three times the minimum (a bucket the gap-seeking edges leave
    short keeps Phase 1). Splitting that early is what lets regime-dependent exits show
    in the first out-of-sample sessions (docs/calibration.md: fits on 40-80 trades reach
    77-92% of the best on the planted regimes this way, 67-81% with twice the minimum)."""
    k = int(np.clip(len(atr) // max(min_bucket_trades, 1), 1, MAX_BUCKETS))
    return quantile_edges(atr, k)


def assign_buckets(atr: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Bucket index of each ATR; bucket i holds edges[i-1] <= atr < edges[i] (as ExitPolicy)."""
    return np.searchsorted(
        np.asarray(edges, dtype=float), np.asarray(atr, dtype=float), side="right"
    )


def _design(tp: np.ndarray, sl: np.ndarray, degree: int = DEGREE) -> np.ndarray:
    # Scale to [-1, 1] so the polynomial columns are well conditioned.
    x = (tp - TP_GRID.mean()) / (np.ptp(TP_GRID) / 2)
    y = (sl - SL_GRID.mean()) / (np.ptp(SL_GRID) / 2)
    cols = [
        x**i * y**j for total in range(degree + 1) for i in range(total + 1) for j in [total - i]
    ]
    return np.column_stack(cols)


@functools.lru_cache(maxsize=8)
def _grid_design(tp_grid: tuple, sl_grid: tuple, degree: int) -> np.ndarray:
    tt, ss = np.meshgrid(np.asarray(tp_grid), np.asarray(sl_grid), indexing="ij")
    return _design(tt.ravel(), ss.ravel(), degree)


def fit_surface(
    outcomes: np.ndarray,
    tp_grid: np.ndarray = TP_GRID,
    sl_grid: np.ndarray = SL_GRID,
    degree: int = DEGREE,
) -> tuple[np.ndarray, float]:
    """Fitted mean outcome on the grid, shape (len(tp), len(sl)), and the fit's R^2.

    ``outcomes``: (n, len(tp), len(sl)) outcomes in ATRs of one bucket's trades.
    """
    n = outcomes.shape[0]
    mean = outcomes.mean(axis=0)
    var = outcomes.var(axis=0, ddof=1) if n > 1 else np.ones_like(mean)
    # A grid point where every trade ends the same has no sampling noise; floor it so
    # it does not take all the weight.
    floor = max(float(np.median(var)) * 1e-3, 1e-12)
    weights = n / np.maximum(var, floor)
    X = _grid_design(tuple(tp_grid), tuple(sl_grid), degree)
    y, w = mean.ravel(), weights.ravel()
    # normal equations on the 15 scaled polynomial columns: well conditioned, and far
    # cheaper than an SVD per fit
    xtw = X.T * w
    try:
        params = np.linalg.solve(xtw @ X, xtw @ y)
    except np.linalg.LinAlgError:
        root = np.sqrt(w)
        params = np.linalg.lstsq(X * root[:, None], y * root, rcond=None)[0]
    fitted = X @ params
    centred = np.sum(w * (y - np.average(y, weights=w)) ** 2)
    r2 = 1.0 - np.sum(w * (y - fitted) ** 2) / centred if centred > 0 else 1.0
    return fitted.reshape(mean.shape), float(r2)


def fit_buckets(
    outcomes: np.ndarray,
    atr: np.ndarray,
    edges: tuple[float, ...],
    phase1: tuple[float, float],
    min_bucket_trades: int,
    shrink_trades: float | None = None,
    tp_grid: np.ndarray = TP_GRID,
    sl_grid: np.ndarray = SL_GRID,
) -> list[BucketFit]:
    """One :class:`BucketFit` per bucket (``len(edges) + 1``).

    ``phase1``: the Phase 1 (tp_mult, sl_mult). ``shrink_trades`` (n0, default
    ``min_bucket_trades``): a bucket of n trades moves ``n / (n + n0)`` of the way from
    Phase 1 to its fitted multipliers.
    """
    n0 = float(min_bucket_trades if shrink_trades is None else shrink_trades)
    labels = bucket_labels(len(edges) + 1)
    which = assign_buckets(atr, edges)
    p1_tp, p1_sl = phase1
    i1 = _nearest(tp_grid, p1_tp)
    j1 = _nearest(sl_grid, p1_sl)
    fits = []
    for b, label in enumerate(labels):
        rows = which == b
        n = int(rows.sum())
        if n < max(min_bucket_trades, 2):
            fits.append(BucketFit(label, n, 1, p1_tp, p1_sl))
            continue
        fitted, r2 = fit_surface(outcomes[rows], tp_grid, sl_grid)
        i, j = np.unravel_index(int(np.argmax(fitted)), fitted.shape)
        gain = float(fitted[i, j] - fitted[i1, j1])
        if gain <= _TIE:
            fits.append(
                BucketFit(
                    label, n, 1, p1_tp, p1_sl, float(tp_grid[i1]), float(sl_grid[j1]), 0.0, r2
                )
            )
            continue
        w = n / (n + n0)
        tp = _on_grid(tp_grid, p1_tp + w * (tp_grid[i] - p1_tp))
        sl = _on_grid(sl_grid, p1_sl + w * (sl_grid[j] - p1_sl))
        fits.append(BucketFit(label, n, 2, tp, sl, float(tp_grid[i]), float(sl_grid[j]), gain, r2))
    return fits


def _nearest(grid: np.ndarray, value: float) -> int:
    return int(np.argmin(np.abs(grid - value)))


def _on_grid(grid: np.ndarray, value: float) -> float:
    return float(grid[_nearest(grid, value)])
