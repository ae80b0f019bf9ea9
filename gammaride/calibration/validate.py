"""Honest validation: walk forward through time, then a bootstrap interval.

Trades are ordered by entry time and split with scikit-learn's ``TimeSeriesSplit``:
each fold fits buckets and multipliers on the past only and scores the next block of
trades, Phase 2 against Phase 1 on the same trades. The improvement's 95% interval
comes from a bootstrap-t that resamples whole sessions (trades of one day move together,
so resampling them one by one would make the interval too narrow).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import TimeSeriesSplit

from gammaride.calibration.fit import BucketFit, assign_buckets

N_SPLITS = 5
N_BOOT = 2000


@dataclass(frozen=True)
class OutOfSample:
    """Per scored trade (in time order): its index, Phase 1 and Phase 2 outcomes in ATRs."""

    index: np.ndarray
    phase1: np.ndarray
    phase2: np.ndarray
    folds: int

    @property
    def improvement(self) -> np.ndarray:
        return self.phase2 - self.phase1


def phase2_outcomes(
    outcomes: np.ndarray,
    phase1: np.ndarray,
    atr: np.ndarray,
    edges: tuple[float, ...],
    fits: list[BucketFit],
    tp_grid: np.ndarray,
    sl_grid: np.ndarray,
) -> np.ndarray:
    """Outcome of each trade under the bucket multipliers of ``fits`` (Phase 1 where kept)."""
    which = assign_buckets(atr, edges)
    out = np.array(phase1, dtype=float, copy=True)
    for b, fit in enumerate(fits):
        rows = np.flatnonzero(which == b)
        if fit.phase != 2 or not len(rows):
            continue
        i = int(np.argmin(np.abs(tp_grid - fit.tp_mult)))
        j = int(np.argmin(np.abs(sl_grid - fit.sl_mult)))
        out[rows] = outcomes[rows, i, j]
    return out


def walk_forward(
    n_trades: int,
    fit_fold: Callable[[np.ndarray], tuple[tuple[float, ...], list[BucketFit]]],
    score_fold: Callable[[np.ndarray, tuple[float, ...], list[BucketFit]], np.ndarray],
    phase1: np.ndarray,
    n_splits: int = N_SPLITS,
) -> OutOfSample:
    """Fit on each past block with ``fit_fold(train_index) -> (edges, fits)``, score the
    next with ``score_fold(test_index, edges, fits) -> phase 2 outcomes``."""
    splits = min(n_splits, n_trades - 1)
    if splits < 2:
        empty = np.empty(0)
        return OutOfSample(np.empty(0, dtype=np.int64), empty, empty, 0)
    idx, p2 = [], []
    for train, test in TimeSeriesSplit(n_splits=splits).split(np.arange(n_trades)):
        edges, fits = fit_fold(train)
        idx.append(test)
        p2.append(score_fold(test, edges, fits))
    index = np.concatenate(idx)
    return OutOfSample(index, phase1[index], np.concatenate(p2), splits)


def bootstrap_mean_ci(
    values: np.ndarray,
    groups: np.ndarray,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Bootstrap-t interval of the mean of ``values``, resampling whole ``groups`` (sessions).

    Each draw is studentized by its own session-clustered standard error. With a few dozen
    sessions the plain percentile interval is too narrow and would publish noise too often;
    the bootstrap-t corrects for that and for skewed outcomes.
    """
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    k = int(g.max()) + 1
    sums = np.bincount(g, weights=values, minlength=k)
    counts = np.bincount(g, minlength=k).astype(float)
    mean = sums.sum() / counts.sum()
    se = _cluster_se(np.ones((1, k)), sums, counts, np.array([mean]))[0]
    if k < 2 or not se > 0:
        return (float(mean), float(mean))
    rng = np.random.default_rng(seed)
    # Each draw takes k sessions with replacement; w counts how often each was taken.
    picks = rng.integers(0, k, size=(n_boot, k)) + (np.arange(n_boot) * k)[:, None]
    w = np.bincount(picks.ravel(), minlength=n_boot * k).reshape(n_boot, k).astype(float)
    means = (w @ sums) / (w @ counts)
    ses = _cluster_se(w, sums, counts, means)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(ses > 0, (means - mean) / ses, np.nan)
    alpha = (1.0 - level) / 2.0
    t_lo, t_hi = np.nanquantile(t, [alpha, 1.0 - alpha])
    return float(mean - t_hi * se), float(mean - t_lo * se)


def _cluster_se(
    w: np.ndarray, sums: np.ndarray, counts: np.ndarray, means: np.ndarray
) -> np.ndarray:
    """Session-clustered standard error of the mean for each weighting row of ``w``."""
    k_eff = w.sum(axis=1)
    resid2 = w @ (sums**2) - 2 * means * (w @ (sums * counts)) + means**2 * (w @ (counts**2))
    total = w @ counts
    var = np.maximum(resid2, 0) * k_eff / np.maximum(k_eff - 1, 1) / total**2
    return np.sqrt(var)
