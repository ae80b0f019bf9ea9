"""Honest validation: session by session out of sample, and intervals that survive reruns.

**Walk-forward by session.** Trades are grouped by session and scored prequentially: each
session's trades are scored by a fit on earlier sessions only, cut at the session
boundary and with an embargo of the max hold (a training trade whose path could still be
running when the scored session starts is left out of the fit). The fit is redone before
every session for the first :data:`EVERY_SESSION` sessions, then each time the number of
sessions has grown by :data:`REFIT_GROWTH`. The schedule depends only on a session's
place in the journal, so a session's score does not change when later trades are added:
every rerun sees the same sequence, only longer.

**Anytime-valid interval.** The mean improvement per trade gets a confidence sequence: the
one-sided normal-mixture boundary of Howard, Ramdas, McAuliffe and Sekhon (2021,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", Annals of Statistics
49(2)) on each side (publishing reads only the lower bound, so only that side is paid
for), applied with the estimated variance of the session sums, as in the asymptotic confidence
sequences of Waudby-Smith, Arnold, Wu, Howard and Ramdas (2024, "Time-uniform central
limit theory and asymptotic confidence sequences", Annals of Statistics 52(6)). It holds
at every number of sessions at once, so looking again after each new session does not
raise the chance of a false publish.

**Descriptive intervals** per bucket stay a session bootstrap-t at one look; values within
:data:`TOL` of zero are zero, so a zero spread gives a zero-width interval, never a
studentized blow-up from floating-point leftovers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gammaride.calibration.fit import BucketFit, assign_buckets

N_BOOT = 2000
EVERY_SESSION = 40  # refit before each of the first 40 sessions
REFIT_GROWTH = 1.08  # then whenever the sessions have grown by 8%
# Below this (ATRs or dollars per trade), a difference is floating-point residue: zero.
TOL = 1e-9
# The confidence sequence is tightest around this many scored sessions (about 400 trades).
CS_TARGET_SESSIONS = 100
Z_POWER = 0.8416  # one-sided normal quantile for 80% power


@dataclass(frozen=True)
class OutOfSample:
    """Per scored trade (in time order): its index, Phase 1 and Phase 2 outcomes."""

    index: np.ndarray
    phase1: np.ndarray
    phase2: np.ndarray
    folds: int  # fits made
    warmup: int = 0  # trades before the first fit had enough earlier trades (not scored)

    @property
    def improvement(self) -> np.ndarray:
        return snap(self.phase2 - self.phase1)


def snap(values: np.ndarray) -> np.ndarray:
    """Values within :data:`TOL` of zero become exactly zero."""
    values = np.asarray(values, dtype=float)
    return np.where(np.abs(values) < TOL, 0.0, values)


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


def next_refit(session: int) -> int:
    """The session before which the fit made before ``session`` is redone."""
    if session < EVERY_SESSION:
        return session + 1
    return max(session + 1, math.ceil(session * REFIT_GROWTH))


def training_rows(
    session: np.ndarray, entry_ns: np.ndarray, horizon_ns: np.ndarray, first: int
) -> np.ndarray:
    """Trades a fit may use to score the session that starts at trade ``first``: earlier
    sessions only, and none whose path (entry + max hold) reaches past that session's
    first entry (the embargo)."""
    earlier = np.arange(first)
    keep = (session[earlier] < session[first]) & (horizon_ns[earlier] <= entry_ns[first])
    return earlier[keep]


def walk_forward(
    session: np.ndarray,
    entry_ns: np.ndarray,
    horizon_ns: np.ndarray,
    fit_fold: Callable[[np.ndarray], tuple[tuple[float, ...], list[BucketFit]]],
    score_fold: Callable[[np.ndarray, tuple[float, ...], list[BucketFit]], np.ndarray],
    phase1: np.ndarray,
    min_train: int,
) -> OutOfSample:
    """Score every session whose earlier sessions hold at least ``min_train`` trades.

    ``session``: session number of each trade, trades in time order (non-decreasing).
    ``fit_fold(train_index) -> (edges, fits)``; ``score_fold(test_index, edges, fits)``
    returns the Phase 2 outcomes of the test trades.
    """
    n = len(session)
    starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]]) if n else np.empty(0, int)
    bounds = np.r_[starts, n]
    idx, p2, fits_made, warmup = [], [], 0, 0
    s = 0
    while s < len(starts):
        first = int(starts[s])
        train = training_rows(session, entry_ns, horizon_ns, first)
        if len(train) < min_train:
            warmup = int(bounds[s + 1])
            s += 1
            continue
        stop = min(next_refit(s), len(starts))
        test = np.arange(first, int(bounds[stop]))
        edges, fits = fit_fold(train)
        fits_made += 1
        idx.append(test)
        p2.append(score_fold(test, edges, fits))
        s = stop
    if not idx:
        empty = np.empty(0)
        return OutOfSample(np.empty(0, dtype=np.int64), empty, empty, 0, warmup)
    index = np.concatenate(idx)
    return OutOfSample(index, phase1[index], np.concatenate(p2), fits_made, warmup)


# the anytime-valid interval -------------------------------------------------------------


@dataclass(frozen=True)
class SessionSums:
    """Per-session sums of a per-trade statistic: what the intervals are built from."""

    sums: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, groups: np.ndarray) -> SessionSums:
        values = snap(values)
        if len(values) == 0:
            return cls(np.empty(0), np.empty(0))
        _, g = np.unique(np.asarray(groups), return_inverse=True)
        k = int(g.max()) + 1
        sums = snap(np.bincount(g, weights=values, minlength=k))
        return cls(sums, np.bincount(g, minlength=k).astype(float))

    @property
    def sessions(self) -> int:
        return len(self.sums)

    @property
    def trades(self) -> int:
        return int(self.counts.sum())

    @property
    def mean(self) -> float:
        return float(self.sums.sum() / self.counts.sum()) if self.trades else float("nan")

    @property
    def session_var(self) -> float:
        """Variance of a session's sum around the mean times its trades (0 if no spread)."""
        k = self.sessions
        if k < 2:
            return float("nan")
        resid = snap(self.sums - self.mean * self.counts)
        return float(np.sum(resid**2) / (k - 1))


def cs_half_width(session_var: float, sessions: float, trades: float, alpha: float) -> float:
    """Distance from the mean per trade to the one-sided (1 - alpha) anytime-valid bound
    after ``sessions`` sessions and ``trades`` trades: the one-sided normal-mixture
    boundary of Howard et al. (2021) (a half-normal mixture over the tilt, so that only
    the side the publish decision reads is paid for), in units of the session sums'
    spread, with the mixture's width tuned for :data:`CS_TARGET_SESSIONS` sessions."""
    return math.sqrt(session_var) * one_sided_mixture(sessions, alpha) / trades


def mixture_width(alpha: float) -> float:
    """The mixture's width (in sessions) that makes the boundary tightest near
    :data:`CS_TARGET_SESSIONS` sessions (Howard et al.'s closed form for the two-sided
    boundary at ``2 alpha``, which the one-sided boundary approaches)."""
    la = -2.0 * math.log(2.0 * alpha)
    return CS_TARGET_SESSIONS / (la + math.log(1.0 + la))


def one_sided_mixture(sessions: float, alpha: float) -> float:
    """The boundary ``s`` (in standard deviations of one session's sum) at which the
    half-normal mixture martingale ``2 sqrt(k0 / v) exp(s^2 / 2v) Phi(s / sqrt(v))``,
    ``v = sessions + k0``, reaches ``1 / alpha``; by Ville's inequality a sum of
    mean-zero session results crosses it at some length with probability at most alpha."""
    k0 = mixture_width(alpha)
    v = sessions + k0
    target = -math.log(alpha)

    def excess(s: float) -> float:
        phi = 0.5 * math.erfc(-s / math.sqrt(2.0 * v))
        return math.log(2.0) + 0.5 * math.log(k0 / v) + s * s / (2.0 * v) + math.log(phi) - target

    # the two-sided boundary at alpha bounds the root from above (Phi <= 1 there costs
    # at most log 2), and the excess at 0 is negative: bisect between them
    lo, hi = 0.0, math.sqrt(v * math.log(v / (k0 * alpha**2)))
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    return hi


def confidence_sequence(s: SessionSums, alpha: float) -> tuple[float, float]:
    """(low, high) anytime-valid bounds for the mean per trade, each one-sided at level
    ``alpha`` (together a two-sided ``1 - 2 alpha`` interval); a zero spread is a zero
    width. Publishing reads only ``low``."""
    var = s.session_var
    if not math.isfinite(var):
        return (float("nan"), float("nan"))
    half = cs_half_width(var, s.sessions, s.trades, alpha)
    return (s.mean - half, s.mean + half)


@dataclass(frozen=True)
class Power:
    """What this journal can detect, at 80% power, with the publish rule in force."""

    detectable: float  # smallest true improvement per trade detected with 80% power now
    target: float  # the improvement asked about (0.1 ATR, or dollars for usd)
    trades_for_target: int | None  # trades in the journal needed to detect ``target``
    source: str  # 'measured' (out-of-sample spread) | 'estimated' (in-sample spread)


def power(
    session_var: float,
    sessions: int,
    scored: int,
    warmup: int,
    alpha: float,
    target: float,
    source: str,
) -> Power | None:
    """Smallest detectable improvement now, and the trades needed for ``target``, assuming
    the spread per session and trades per session stay as measured."""
    if not (math.isfinite(session_var) and session_var > 0 and sessions >= 1 and scored >= 1):
        return None
    per_session = scored / sessions

    def detectable(n_scored: float) -> float:
        k = n_scored / per_session
        se = math.sqrt(session_var * k) / n_scored
        return cs_half_width(session_var, k, n_scored, alpha) + Z_POWER * se

    needed = None
    lo, hi = 1.0, 1e8
    if detectable(hi) <= target:
        for _ in range(60):  # detectable() falls as trades grow: bisect
            mid = math.sqrt(lo * hi)
            lo, hi = (lo, mid) if detectable(mid) <= target else (mid, hi)
        needed = int(math.ceil(hi)) + warmup
    return Power(detectable(scored), target, needed, source)


# descriptive intervals at one look -------------------------------------------------------


def bootstrap_mean_ci(
    values: np.ndarray,
    groups: np.ndarray,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Bootstrap-t interval of the mean of ``values``, resampling whole ``groups`` (sessions).

    Each draw is studentized by its own session-clustered standard error. Values within
    :data:`TOL` of zero are zero, a zero spread is a zero-width interval, and a draw whose
    spread is zero counts as no deviation (t = 0) instead of a division by residue.
    """
    s = SessionSums.of(values, groups)
    if s.trades == 0:
        return (float("nan"), float("nan"))
    sums, counts, mean, k = s.sums, s.counts, s.mean, s.sessions
    # the expanded sum of squares in _cluster_se leaves ~1e-8 relative residue: below
    # this, a standard error is zero
    se_tol = TOL + 1e-6 * float(np.max(np.abs(sums / counts)))
    se = _cluster_se(np.ones((1, k)), sums, counts, np.array([mean]))[0]
    if k < 2 or not se > se_tol:
        return (mean, mean)
    rng = np.random.default_rng(seed)
    w = _draw_weights(rng, n_boot, k)
    means = (w @ sums) / (w @ counts)
    ses = _cluster_se(w, sums, counts, means)
    dev = snap(means - mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(ses > se_tol, dev / ses, np.where(dev == 0, 0.0, np.nan))
    alpha = (1.0 - level) / 2.0
    t_lo, t_hi = np.nanquantile(t, [alpha, 1.0 - alpha])
    return float(mean - t_hi * se), float(mean - t_lo * se)


def relative_gain_ci(
    phase1: np.ndarray,
    phase2: np.ndarray,
    groups: np.ndarray,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float, float] | None:
    """(gain / Phase 1, its low, its high, low of Phase 1's own interval) by session
    bootstrap percentiles; None when Phase 1's expectancy is not clearly above zero (a
    percentage of a number indistinguishable from zero means nothing)."""
    p1 = SessionSums.of(phase1, groups)
    p2 = SessionSums.of(phase2, groups)
    if p1.sessions < 2 or not p1.mean > 0:
        return None
    rng = np.random.default_rng(seed)
    w = _draw_weights(rng, n_boot, p1.sessions)
    m1 = (w @ p1.sums) / (w @ p1.counts)
    m2 = (w @ p2.sums) / (w @ p2.counts)
    a = (1.0 - level) / 2.0
    p1_low = float(np.quantile(m1, a))
    if not p1_low > 0:
        return None
    rel = (m2 - m1) / m1
    lo, hi = np.quantile(rel, [a, 1.0 - a])
    return float((p2.mean - p1.mean) / p1.mean), float(lo), float(hi), p1_low


def _draw_weights(rng: np.random.Generator, n_boot: int, k: int) -> np.ndarray:
    """How often each of ``k`` sessions is taken in each of ``n_boot`` draws."""
    picks = rng.integers(0, k, size=(n_boot, k)) + (np.arange(n_boot) * k)[:, None]
    return np.bincount(picks.ravel(), minlength=n_boot * k).reshape(n_boot, k).astype(float)


def _cluster_se(
    w: np.ndarray, sums: np.ndarray, counts: np.ndarray, means: np.ndarray
) -> np.ndarray:
    """Session-clustered standard error of the mean for each weighting row of ``w``."""
    k_eff = w.sum(axis=1)
    resid2 = w @ (sums**2) - 2 * means * (w @ (sums * counts)) + means**2 * (w @ (counts**2))
    total = w @ counts
    var = np.maximum(resid2, 0) * k_eff / np.maximum(k_eff - 1, 1) / total**2
    return np.sqrt(var)
