"""``calibrate``: from the journal to a verdict and, when the data supports it, a published file.

The steps: re-simulate every closed trade on the grid (``grid``), choose multipliers per
ATR bucket from a fitted surface (``fit``), check them out of sample (``validate``), then
write ``calibration.json`` (``policy``). Publishing needs the whole 95% interval of the
out-of-sample improvement above zero; ``force`` publishes anyway and says so.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from gammaride.calibration.fit import (
    DEGREE,
    BucketFit,
    assign_buckets,
    bucket_labels,
    fit_buckets,
    tercile_edges,
)
from gammaride.calibration.grid import (
    SL_GRID,
    TP_GRID,
    TradePaths,
    simulate_grid,
    simulate_one,
    trade_paths_from_frames,
)
from gammaride.calibration.policy import (
    FILE_NAME,
    SCHEMA,
    SCHEMA_VERSION,
    load_exit_policy,
    write_calibration,
)
from gammaride.calibration.validate import (
    N_BOOT,
    N_SPLITS,
    OutOfSample,
    bootstrap_mean_ci,
    phase2_outcomes,
    walk_forward,
)
from gammaride.config import ET, Settings
from gammaride.errors import CalibrationError
from gammaride.scanner.setup import ExitPolicy

# An interval from fewer sessions than this says little: the verdict needs at least this many.
MIN_OOS_SESSIONS = 10


@dataclass(frozen=True)
class BucketReport:
    """One ATR bucket: its multipliers and what they earned, in ATRs per trade."""

    label: str
    atr_from: float | None  # None: open below
    atr_to: float | None  # None: open above
    n: int
    phase: int  # 2: fitted multipliers; 1: too few trades, Phase 1 kept
    tp_mult: float
    sl_mult: float
    fitted_tp: float | None
    fitted_sl: float | None
    in_sample_phase1: float | None
    in_sample_phase2: float | None
    oos_n: int
    oos_phase1: float | None
    oos_phase2: float | None
    oos_improvement: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class CalibrationResult:
    """The verdict of a calibration run and what it wrote."""

    published: bool
    forced: bool  # published only because of force, without out-of-sample support
    path: Path | None
    n_trades: int
    dropped: int  # closed trades left out (duplicates included)
    duplicates: int  # the same trade journaled twice (e.g. sessions replayed again)
    edges: tuple[float, ...]
    edges_source: str  # 'terciles' | 'manual'
    buckets: tuple[BucketReport, ...]
    in_sample_phase1: float
    in_sample_phase2: float
    oos_n: int
    oos_sessions: int
    oos_phase1: float | None
    oos_phase2: float | None
    oos_improvement: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str
    fitted_at: str
    fingerprint: str | None
    phase1: tuple[float, float]  # the Phase 1 (tp_mult, sl_mult) compared against
    policy: ExitPolicy  # what scan and replay use from now on
    document: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def supported(self) -> bool:
        """The whole out-of-sample 95% interval of the improvement lies above zero."""
        return self.ci_low is not None and self.ci_low > 0


def parse_edges(text: str | None) -> tuple[float, ...] | None:
    """``"0.8,1.5"`` -> ``(0.8, 1.5)``; None or empty -> None (terciles)."""
    if text is None or not str(text).strip():
        return None
    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise CalibrationError(
            f"--edges {text!r} is not a list of numbers; write ascending ATR values, e.g. --edges 0.8,1.5"
        ) from None
    return _check_edges(values)


def _check_edges(edges: tuple[float, ...] | list[float]) -> tuple[float, ...]:
    values = tuple(float(e) for e in edges)
    if not all(math.isfinite(e) and e > 0 for e in values) or any(
        b <= a for a, b in zip(values, values[1:], strict=False)
    ):
        raise CalibrationError(
            f"ATR bucket edges {values} must be positive and strictly ascending; e.g. --edges 0.8,1.5"
        )
    return values


def calibrate_paths(
    trades: TradePaths,
    settings: Settings,
    *,
    min_bucket_trades: int = 15,
    edges: tuple[float, ...] | None = None,
    force: bool = False,
    seed: int = 0,
    n_splits: int = N_SPLITS,
    n_boot: int = N_BOOT,
    fitted_at: str | None = None,
    fingerprint: str | None = None,
) -> CalibrationResult:
    """The calibration maths on trades already aligned with their paths. Writes nothing."""
    if min_bucket_trades < 2:
        raise CalibrationError(f"--min-bucket-trades {min_bucket_trades} is below 2; use e.g. 15")
    manual = edges is not None
    if manual:
        edges = _check_edges(edges)
    n = len(trades)
    fitted_at = fitted_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
    phase1 = (settings.tp_mult, settings.sl_mult)
    atr = trades.atr
    outcomes = simulate_grid(trades, TP_GRID, SL_GRID)
    p1 = simulate_one(trades, *phase1)

    def fit_fold(rows: np.ndarray) -> tuple[tuple[float, ...], list[BucketFit]]:
        e = edges if manual else tercile_edges(atr[rows])
        return e, fit_buckets(outcomes[rows], atr[rows], e, phase1, min_bucket_trades)

    def score_fold(rows: np.ndarray, e: tuple[float, ...], fits: list[BucketFit]) -> np.ndarray:
        return phase2_outcomes(outcomes[rows], p1[rows], atr[rows], e, fits, TP_GRID, SL_GRID)

    final_edges, fits = fit_fold(np.arange(n))
    p2_in = score_fold(np.arange(n), final_edges, fits)
    oos = walk_forward(n, fit_fold, score_fold, p1, n_splits)
    sessions = _sessions(trades)
    d = oos.improvement
    lo, hi = bootstrap_mean_ci(d, sessions[oos.index], n_boot, seed) if len(d) else (None, None)
    oos_sessions = len(np.unique(sessions[oos.index]))
    supported = (
        lo is not None
        and lo > 0
        and oos_sessions >= MIN_OOS_SESSIONS
        and any(f.phase == 2 for f in fits)
    )
    buckets = _bucket_reports(fits, final_edges, atr, p1, p2_in, oos, sessions, n_boot, seed)
    published = supported or force
    forced = force and not supported
    overall = {
        "oos_n": len(d),
        "oos_sessions": oos_sessions,
        "oos_phase1": _mean(oos.phase1),
        "oos_phase2": _mean(oos.phase2),
        "oos_improvement": _mean(d),
        "ci_low": _finite(lo),
        "ci_high": _finite(hi),
    }
    verdict = _verdict(published, forced, overall, fits, min_bucket_trades, n)
    result = CalibrationResult(
        published=published,
        forced=forced,
        path=None,
        n_trades=n,
        dropped=trades.dropped,
        duplicates=trades.duplicates,
        edges=tuple(final_edges),
        edges_source="manual" if manual else "terciles",
        buckets=tuple(buckets),
        in_sample_phase1=_mean(p1) or 0.0,
        in_sample_phase2=_mean(p2_in) or 0.0,
        verdict=verdict,
        fitted_at=fitted_at,
        fingerprint=fingerprint,
        phase1=phase1,
        policy=ExitPolicy.phase1(settings),
        **overall,
    )
    doc = _document(result, settings, min_bucket_trades, oos.folds, n_boot, seed)
    return _replace(result, document=doc)


def calibrate(
    journal: Any,
    settings: Settings,
    *,
    min_trades: int = 50,
    min_bucket_trades: int = 15,
    edges: tuple[float, ...] | None = None,
    force: bool = False,
    out: str | os.PathLike | None = None,
    seed: int = 0,
) -> CalibrationResult:
    """Calibrate from a :class:`~gammaride.journal.Journal` (or a journal path) and write
    ``calibration.json`` (next to the journal unless ``out``), published or not.

    Raises :class:`CalibrationError` below ``min_trades`` closed trades with paths.
    """
    from gammaride.journal import Journal

    own = not hasattr(journal, "trades")
    j = Journal(journal, read_only=True) if own else journal
    try:
        trades = j.trades(closed_only=True)
        if "symbol" in trades.columns:
            trades = trades[trades["symbol"] == settings.symbol]
        frames = j.trade_paths(trades["trade_id"].tolist())
        aligned = trade_paths_from_frames(trades, frames, settings.max_hold_minutes)
        fingerprint = j.fingerprint()
        journal_path = j.path
    finally:
        if own:
            j.close()
    if min_trades < 10:
        raise CalibrationError(
            f"--min-trades {min_trades} is too low: walk-forward validation needs at least 10 trades"
        )
    if len(aligned) < min_trades:
        left = (
            f" ({aligned.dropped} more lack a usable path or are duplicates)"
            if aligned.dropped
            else ""
        )
        raise CalibrationError(
            f"journal {journal_path} has {len(aligned)} closed {settings.symbol} trades with "
            f"recorded paths{left}; calibration needs at least {min_trades}. Keep trading Phase 1 "
            "and rerun later, replay more sessions into the journal (gammaride replay BARS...), "
            "or lower --min-trades (fewer trades make a weaker test)"
        )
    result = calibrate_paths(
        aligned,
        settings,
        min_bucket_trades=min_bucket_trades,
        edges=edges,
        force=force,
        seed=seed,
        fingerprint=fingerprint,
    )
    if out is None:
        out = (
            Path(FILE_NAME) if journal_path == ":memory:" else Path(journal_path).parent / FILE_NAME
        )
    doc = dict(result.document, journal=Path(journal_path).name)
    path = write_calibration(out, doc)
    policy = (
        load_exit_policy(path, settings)[0] if result.published else ExitPolicy.phase1(settings)
    )
    return _replace(result, path=path, policy=policy, document=doc)


# helpers ------------------------------------------------------------------------


def _replace(result: CalibrationResult, **changes: Any) -> CalibrationResult:
    import dataclasses

    return dataclasses.replace(result, **changes)


def _sessions(trades: TradePaths) -> np.ndarray:
    """Session date of each trade (ET), as integers, for the session bootstrap."""
    t = trades.entry_time
    if t.tz is not None:
        t = t.tz_convert(ET).tz_localize(None)
    return t.normalize().as_unit("ns").asi8


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _bucket_reports(fits, edges, atr, p1, p2_in, oos: OutOfSample, sessions, n_boot, seed):
    which = assign_buckets(atr, edges)
    oos_which = which[oos.index]
    bounds = [None, *edges, None]
    reports = []
    for b, fit in enumerate(fits):
        rows = which == b
        o = oos_which == b
        d = oos.improvement[o]
        lo, hi = (None, None)
        if len(d):
            lo, hi = bootstrap_mean_ci(d, sessions[oos.index][o], n_boot, seed)
        reports.append(
            BucketReport(
                label=fit.label,
                atr_from=bounds[b],
                atr_to=bounds[b + 1],
                n=fit.n,
                phase=fit.phase,
                tp_mult=fit.tp_mult,
                sl_mult=fit.sl_mult,
                fitted_tp=fit.fitted_tp,
                fitted_sl=fit.fitted_sl,
                in_sample_phase1=_mean(p1[rows]),
                in_sample_phase2=_mean(p2_in[rows]),
                oos_n=int(o.sum()),
                oos_phase1=_mean(oos.phase1[o]),
                oos_phase2=_mean(oos.phase2[o]),
                oos_improvement=_mean(d),
                ci_low=_finite(lo),
                ci_high=_finite(hi),
            )
        )
    return reports


def _verdict(
    published: bool, forced: bool, o: dict, fits: list[BucketFit], min_bucket: int, n: int
) -> str:
    if not any(f.phase == 2 for f in fits):
        why = (
            f"no ATR bucket both has {min_bucket} trades and fits exits better than Phase 1 "
            f"({n} trades in all), so there is nothing to publish"
        )
    elif o["oos_n"] == 0 or o["ci_low"] is None:
        why = "there were too few trades to test the fit out of sample"
    else:
        rel = ""
        if o["oos_phase1"] and o["oos_phase1"] > 0:
            rel = f" ({o['oos_improvement'] / o['oos_phase1']:+.0%} on Phase 1)"
        why = (
            f"out of sample ({o['oos_n']} trades, each scored by a fit on earlier trades) "
            f"Phase 2 earned {o['oos_phase2']:+.3f} ATR per trade against {o['oos_phase1']:+.3f} "
            f"for Phase 1 on the same trades: {o['oos_improvement']:+.3f}{rel}, 95% interval "
            f"[{o['ci_low']:+.3f}, {o['ci_high']:+.3f}]"
        )
        if o["oos_sessions"] < MIN_OOS_SESSIONS:
            why += (
                f"; but those trades span only {o['oos_sessions']} sessions, too few to judge "
                f"(at least {MIN_OOS_SESSIONS} are needed)"
            )
        elif published and not forced:
            return f"PUBLISHED: {why}, entirely above zero. Scan and replay use Phase 2 exits."
    if forced:
        return (
            f"FORCED: published WITHOUT out-of-sample support because --force was given: {why}. "
            "Scan and replay will use these exits although the journal does not show they beat Phase 1."
        )
    return (
        f"NOT PUBLISHED: {why}; the journal does not show that calibrated exits beat Phase 1. "
        "Scan and replay keep Phase 1. Collect more trades and rerun 'gammaride calibrate'."
    )


def _document(
    result: CalibrationResult,
    settings: Settings,
    min_bucket: int,
    folds: int,
    n_boot: int,
    seed: int,
) -> dict:
    def interval(lo, hi):
        return None if lo is None else [lo, hi]

    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "published": result.published,
        "forced": result.forced,
        "verdict": result.verdict,
        "fitted_at": result.fitted_at,
        "journal_fingerprint": result.fingerprint,
        "symbol": settings.symbol,
        "n_trades": result.n_trades,
        "dropped_trades": result.dropped,
        "duplicate_trades": result.duplicates,
        "outcome_unit": "ATR per trade: direction * (exit - entry) / entry ATR",
        "edges": list(result.edges),
        "edges_source": result.edges_source,
        "labels": list(bucket_labels(len(result.edges) + 1)),
        "buckets": [
            {
                "label": b.label,
                "atr_from": b.atr_from,
                "atr_to": b.atr_to,
                "n": b.n,
                "phase": b.phase,
                "tp_mult": b.tp_mult,
                "sl_mult": b.sl_mult,
                "fitted_tp": b.fitted_tp,
                "fitted_sl": b.fitted_sl,
                "in_sample": {"phase1": b.in_sample_phase1, "phase2": b.in_sample_phase2},
                "out_of_sample": {
                    "n": b.oos_n,
                    "phase1": b.oos_phase1,
                    "phase2": b.oos_phase2,
                    "improvement": b.oos_improvement,
                    "ci95": interval(b.ci_low, b.ci_high),
                },
            }
            for b in result.buckets
        ],
        "overall": {
            "in_sample": {"phase1": result.in_sample_phase1, "phase2": result.in_sample_phase2},
            "out_of_sample": {
                "n": result.oos_n,
                "sessions": result.oos_sessions,
                "phase1": result.oos_phase1,
                "phase2": result.oos_phase2,
                "improvement": result.oos_improvement,
                "ci95": interval(result.ci_low, result.ci_high),
            },
        },
        "method": {
            "grid": {
                "tp": [float(TP_GRID[0]), float(TP_GRID[-1])],
                "sl": [float(SL_GRID[0]), float(SL_GRID[-1])],
                "step": 0.1,
            },
            "exits": "gammaride.scanner.exits.evaluate_exits on each trade's recorded path",
            "surface": f"per-bucket WLS of mean outcome on a degree-{DEGREE} polynomial in tp, sl (inverse-variance weights)",
            "shrinkage": f"toward Phase 1 by n / (n + {min_bucket}); buckets under {min_bucket} trades keep Phase 1",
            "validation": f"walk-forward TimeSeriesSplit ({folds} folds) over entry time",
            "interval": f"session bootstrap-t, {n_boot} draws, 95%, seed {seed}",
            "publish_rule": (
                "the whole out-of-sample 95% interval of the improvement above zero, "
                f"from at least {MIN_OOS_SESSIONS} sessions"
            ),
        },
        "settings": {
            "tp_mult": settings.tp_mult,
            "sl_mult": settings.sl_mult,
            "max_hold_minutes": settings.max_hold_minutes,
            "min_bucket_trades": min_bucket,
        },
    }
