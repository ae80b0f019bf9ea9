"""``calibrate``: from the journal to a verdict and, when the data supports it, a published file.

The steps: re-simulate every closed trade on the grid (``grid``), choose multipliers per
ATR bucket from a fitted surface (``fit``), score them session by session on sessions the
fit never saw (``validate``), place this run among the journal's earlier looks (``looks``),
then journal the look and write ``calibration.json`` (``policy``). Publishing needs the
anytime-valid interval of the out-of-sample improvement above zero, from at least
:data:`MIN_OOS_SESSIONS` scored sessions; ``force`` publishes anyway and says so.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from gammaride.calibration.document import (
    SCHEMA,
    SCHEMA_VERSION,
    SL_GRID,
    TP_GRID,
    bucket_labels,
    calibration_path_for,
)
from gammaride.calibration.fit import (
    DEGREE,
    BucketFit,
    assign_buckets,
    auto_edges,
    fit_buckets,
)
from gammaride.calibration.grid import (
    OptionPrices,
    TradePaths,
    grid_exits,
    option_prices_from_frames,
    simulate_one,
    trade_paths_from_frames,
    usd_outcomes,
)
from gammaride.calibration.looks import (
    ALPHA,
    Look,
    place_look,
    read_looks,
    record_look,
    sequence_digests,
)
from gammaride.calibration.policy import load_exit_policy, write_calibration
from gammaride.calibration.validate import (
    CS_TARGET_SESSIONS,
    EVERY_SESSION,
    N_BOOT,
    REFIT_GROWTH,
    OutOfSample,
    Power,
    SessionSums,
    bootstrap_mean_ci,
    confidence_sequence,
    phase2_outcomes,
    power,
    relative_gain_ci,
    snap,
    walk_forward,
)
from gammaride.config import ET, NS_MIN, Settings
from gammaride.errors import CalibrationError
from gammaride.rules.setup import ExitPolicy

# An interval from fewer sessions than this says little: the verdict needs at least this many.
MIN_OOS_SESSIONS = 10
OBJECTIVES = ("atr", "usd")
UNITS = {
    "atr": "ATR per trade: direction * (exit - entry) / entry ATR",
    "usd": "USD per contract: net option P&L, premium re-simulated along the option's path",
}
SHORT_UNIT = {"atr": "ATR", "usd": "$"}
# The improvement the power line asks about: +0.1 ATR, or +$10 per contract.
POWER_TARGET = {"atr": 0.1, "usd": 10.0}
METHOD_VERSION = 2


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
    edges_source: str  # 'terciles' (auto quantiles) | 'manual'
    buckets: tuple[BucketReport, ...]
    in_sample_phase1: float
    in_sample_phase2: float
    oos_n: int
    oos_sessions: int
    oos_phase1: float | None
    oos_phase2: float | None
    oos_improvement: float | None
    ci_low: float | None  # the anytime-valid interval the publish decision reads
    ci_high: float | None
    verdict: str
    fitted_at: str
    fingerprint: str | None
    phase1: tuple[float, float]  # the Phase 1 (tp_mult, sl_mult) compared against
    policy: ExitPolicy  # what scan and replay use from now on
    objective: str = "atr"
    can_test: bool = False  # enough scored sessions with a spread to test at all
    warmup: int = 0  # trades before the first fit had enough earlier trades (not scored)
    boot_low: float | None = None  # one-look 95% session bootstrap-t, for reading only
    boot_high: float | None = None
    level: float | None = None  # two-sided level of this look's chain (alpha)
    look: Look | None = None  # this run as the journal records it
    power: Power | None = None
    relative: tuple[float, float, float, float] | None = None  # gain / Phase 1 with interval
    no_option_prices: int = 0  # usd: trades left out for lack of option prices
    oos_index: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0, int))
    oos_values: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    document: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def supported(self) -> bool:
        """The anytime-valid interval of the out-of-sample improvement lies above zero."""
        return self.can_test and self.ci_low is not None and self.ci_low > 0

    @property
    def unit(self) -> str:
        return SHORT_UNIT[self.objective]


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
    n_boot: int = N_BOOT,
    fitted_at: str | None = None,
    fingerprint: str | None = None,
    objective: str = "atr",
    options: OptionPrices | None = None,
    prior_looks: Sequence[Look] = (),
    today: str | None = None,
) -> CalibrationResult:
    """The calibration maths on trades already aligned with their paths. Writes nothing.

    ``today`` (ISO date, default: today in New York): trades of that session or later are
    not scored yet.

    ``prior_looks``: the journal's earlier looks (``looks.read_looks``); the result's
    ``look`` is this run's record, to be journaled with ``looks.record_look``.
    ``objective='usd'`` needs ``options`` (``grid.option_prices_from_frames``).
    """
    if min_bucket_trades < 2:
        raise CalibrationError(f"--min-bucket-trades {min_bucket_trades} is below 2; use e.g. 15")
    if objective not in OBJECTIVES:
        raise CalibrationError(f"--objective {objective!r} is not atr or usd; e.g. --objective atr")
    manual = edges is not None
    if manual:
        edges = _check_edges(edges)
    fitted_at = fitted_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
    phase1 = (settings.tp_mult, settings.sl_mult)
    ex = grid_exits(trades, TP_GRID, SL_GRID)
    no_prices = 0
    if objective == "atr":
        outcomes, p1 = ex.outcome, simulate_one(trades, *phase1)
    else:
        if options is None:
            raise CalibrationError("--objective usd needs the journal's option prices")
        outcomes = usd_outcomes(trades, options, ex)
        p1 = usd_outcomes(trades, options, grid_exits(trades, [phase1[0]], [phase1[1]]))[:, 0, 0]
        no_prices = options.left_out
        trades = trades.take(options.priced)
    n = len(trades)
    atr = trades.atr
    sessions = _sessions(trades)
    _, session_no = np.unique(sessions, return_inverse=True)
    entry_ns = trades.entry_time.as_unit("ns").asi8
    horizon_ns = entry_ns + int(settings.max_hold_minutes) * NS_MIN

    def fit_fold(rows: np.ndarray) -> tuple[tuple[float, ...], list[BucketFit]]:
        e = edges if manual else auto_edges(atr[rows], min_bucket_trades)
        return e, fit_buckets(outcomes[rows], atr[rows], e, phase1, min_bucket_trades)

    def score_fold(rows: np.ndarray, e: tuple[float, ...], fits: list[BucketFit]) -> np.ndarray:
        return phase2_outcomes(outcomes[rows], p1[rows], atr[rows], e, fits, TP_GRID, SL_GRID)

    final_edges, fits = fit_fold(np.arange(n))
    p2_in = score_fold(np.arange(n), final_edges, fits)
    oos = walk_forward(
        session_no, entry_ns, horizon_ns, fit_fold, score_fold, p1, min_bucket_trades
    )
    # a session counts once it is over: today's trades (still accumulating) are not scored,
    # so every look sees whole sessions and extends the sequence of the looks before it
    oos = _closed_sessions(oos, sessions, today)
    groups = sessions[oos.index]
    scored = SessionSums.of(oos.improvement, groups)
    can_test = scored.sessions >= MIN_OOS_SESSIONS and scored.session_var > 0
    key = _sequence_key(objective, settings, min_bucket_trades, edges if manual else None)
    labels = np.unique(groups)
    digests = sequence_digests(labels, scored.sums, scored.counts)
    look_no, chain, level = place_look(prior_looks, key, digests, can_test)
    next_level = level if level is not None else place_look(prior_looks, key, digests, True)[2]
    lo, hi = confidence_sequence(scored, level) if can_test else (None, None)
    b_lo, b_hi = (
        bootstrap_mean_ci(oos.improvement, groups, n_boot, seed) if scored.trades else (None, None)
    )
    supported = bool(can_test and lo > 0 and any(f.phase == 2 for f in fits))
    published = supported or force
    forced = force and not supported
    pw = _power(scored, oos, outcomes, p1, p2_in, sessions, next_level, objective)
    relative = (
        relative_gain_ci(oos.phase1, oos.phase2, groups, n_boot, seed) if can_test else None
    )
    buckets = _bucket_reports(fits, final_edges, atr, p1, p2_in, oos, sessions, n_boot, seed)
    result = CalibrationResult(
        published=published, forced=forced, path=None,
        n_trades=n, dropped=trades.dropped, duplicates=trades.duplicates,
        edges=tuple(final_edges), edges_source="manual" if manual else "terciles", buckets=tuple(buckets),
        in_sample_phase1=_mean(p1) or 0.0, in_sample_phase2=_mean(p2_in) or 0.0,
        oos_n=len(oos.index), oos_sessions=scored.sessions, oos_phase1=_mean(oos.phase1),
        oos_phase2=_mean(oos.phase2), oos_improvement=_mean(oos.improvement),
        ci_low=_finite(lo), ci_high=_finite(hi), verdict="",
        fitted_at=fitted_at, fingerprint=fingerprint, phase1=phase1, policy=ExitPolicy.phase1(settings),
        objective=objective, can_test=bool(can_test), warmup=oos.warmup,
        boot_low=_finite(b_lo), boot_high=_finite(b_hi), level=level, power=pw, relative=relative,
        no_option_prices=no_prices, oos_index=oos.index, oos_values=oos.improvement,
    )
    per_session = n / max(len(np.unique(sessions)), 1)
    verdict = _verdict(result, fits, min_bucket_trades, n, look_no, chain, per_session)
    look = Look(
        look=look_no, chain=chain, alpha=level, sequence_key=key, sessions=scored.sessions,
        digest=digests[-1] if digests else None, published=published, forced=forced,
        objective=objective, symbol=settings.symbol, trades=n, scored_trades=len(oos.index),
        statistic=result.oos_improvement, ci_low=result.ci_low, ci_high=result.ci_high,
        verdict=verdict,
    )
    result = _replace(result, verdict=verdict, look=look)
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
    objective: str = "atr",
) -> CalibrationResult:
    """Calibrate from a :class:`~gammaride.journal.Journal` (or a journal path), journal the
    look in ``calibrations`` and write ``calibration.json`` (next to the journal unless
    ``out``), published or not. The journal must be writable: every look is recorded.

    Raises :class:`CalibrationError` below ``min_trades`` closed trades with paths (with
    ``objective='usd'``: with option prices).
    """
    from gammaride.journal import Journal

    if min_trades < 10:
        raise CalibrationError(
            f"--min-trades {min_trades} is too low: walk-forward validation needs at least 10 trades"
        )
    if objective not in OBJECTIVES:
        raise CalibrationError(f"--objective {objective!r} is not atr or usd; e.g. --objective atr")
    own = not hasattr(journal, "trades")
    j = Journal(journal) if own else journal
    try:
        result = _calibrate_open(
            j, settings, min_trades, min_bucket_trades, edges, force, out, seed, objective
        )
    finally:
        if own:
            j.close()
    return result


def _calibrate_open(j, settings, min_trades, min_bucket_trades, edges, force, out, seed, objective):
    import duckdb

    # each market moment once (a fill preferred over a simulation of it): the journal's rule
    every = j.trades(closed_only=True, once="none")
    trades = j.trades(closed_only=True, once="minute")
    every = every[every["symbol"] == settings.symbol]
    trades = trades[trades["symbol"] == settings.symbol]
    frames = j.trade_paths(trades["trade_id"].tolist())
    aligned = trade_paths_from_frames(
        trades, frames, settings.max_hold_minutes, duplicates=len(every) - len(trades)
    )
    options = None
    usable = len(aligned)
    if objective == "usd":
        option_paths = j.query("SELECT * FROM option_paths ORDER BY trade_id, minute")
        options = option_prices_from_frames(aligned, trades, option_paths)
        usable = int(options.priced.sum())
    if usable < min_trades:
        raise CalibrationError(_too_few(j.path, settings, aligned, options, min_trades))
    prior = read_looks(j, settings.symbol)
    result = calibrate_paths(
        aligned,
        settings,
        min_bucket_trades=min_bucket_trades,
        edges=edges,
        force=force,
        seed=seed,
        fingerprint=j.fingerprint(),
        objective=objective,
        options=options,
        prior_looks=prior,
    )
    path = Path(out) if out is not None else calibration_path_for(j.path)
    doc = dict(result.document, journal=Path(j.path).name)
    try:  # the look first: a file must never be published without its look on record
        record_look(j, result.look, str(path), {"journal_fingerprint": result.fingerprint})
    except duckdb.Error as exc:
        raise CalibrationError(
            f"cannot journal this calibration look in {j.path} ({str(exc).splitlines()[0]}); "
            "calibrate records every look so reruns stay honest: open the journal writable"
        ) from None
    from gammaride.calibration.schema import CalibrationDocument

    CalibrationDocument.model_validate(doc)  # the one schema the loader parses with
    path = write_calibration(path, doc)
    policy = (
        load_exit_policy(path, settings)[0] if result.published else ExitPolicy.phase1(settings)
    )
    return _replace(result, path=path, policy=policy, document=doc)


def _too_few(journal_path, settings, aligned, options, min_trades) -> str:
    if options is not None:
        return (
            f"journal {journal_path} has {int(options.priced.sum())} closed {settings.symbol} "
            f"trades with option prices ({options.left_out} of {len(aligned)} lack an entry "
            f"premium or option bars); --objective usd needs at least {min_trades}. Replay "
            "with option bars (or trade paper/live) to price more trades, or use --objective atr"
        )
    left = (
        f" ({aligned.dropped} more lack a usable path or are duplicates)" if aligned.dropped else ""
    )
    return (
        f"journal {journal_path} has {len(aligned)} closed {settings.symbol} trades with "
        f"recorded paths{left}; calibration needs at least {min_trades}. Keep trading Phase 1 "
        "and rerun later, replay more sessions into the journal (gammaride replay BARS...), "
        "or lower --min-trades (fewer trades make a weaker test)"
    )


# helpers ------------------------------------------------------------------------


def _replace(result: CalibrationResult, **changes: Any) -> CalibrationResult:
    import dataclasses

    return dataclasses.replace(result, **changes)


def _sequence_key(objective: str, settings: Settings, min_bucket: int, edges) -> str:
    """What defines the scored sequence: looks with another key are another test."""
    e = "auto" if edges is None else ",".join(f"{x:g}" for x in edges)
    return (
        f"v{METHOD_VERSION}|{objective}|tp {settings.tp_mult:g}|sl {settings.sl_mult:g}|"
        f"hold {settings.max_hold_minutes}|min bucket {min_bucket}|edges {e}"
    )


def _sessions(trades: TradePaths) -> np.ndarray:
    """Session date of each trade (ET), as integers, for the session bootstrap."""
    t = trades.entry_time
    if t.tz is not None:
        t = t.tz_convert(ET).tz_localize(None)
    return t.normalize().as_unit("ns").asi8


def _closed_sessions(oos: OutOfSample, sessions: np.ndarray, today: str | None) -> OutOfSample:
    import pandas as pd

    day = pd.Timestamp(today) if today else pd.Timestamp.now(tz=ET).tz_localize(None)
    cut = day.normalize().as_unit("ns").value
    keep = sessions[oos.index] < cut
    if keep.all():
        return oos
    return OutOfSample(oos.index[keep], oos.phase1[keep], oos.phase2[keep], oos.folds, oos.warmup)


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _power(scored, oos, outcomes, p1, p2_in, sessions, level, objective) -> Power | None:
    """From the out-of-sample spread when there is one; else estimated from in-sample
    differences (the fitted exits, or the raw best grid point, against Phase 1)."""
    target = POWER_TARGET[objective]
    if scored.sessions >= 2 and scored.session_var > 0:
        return power(scored.session_var, scored.sessions, scored.trades, oos.warmup, level,
                     target, "measured")
    d = snap(p2_in - p1)
    if not np.any(d):
        i, j = np.unravel_index(int(np.argmax(outcomes.mean(axis=0))), outcomes.shape[1:])
        d = snap(outcomes[:, i, j] - p1)
    est = SessionSums.of(d, sessions)
    if est.sessions < 2 or not est.session_var > 0:
        return None
    return power(est.session_var, est.sessions, est.trades, oos.warmup, level, target, "estimated")


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


def _money(value: float, unit: str) -> str:
    return f"{value:+,.2f} $" if unit == "$" else f"{value:+.3f} ATR"


def power_line(r: CalibrationResult) -> str:
    """'Smallest improvement this journal can detect ...; detecting +0.1 ATR needs ...'."""
    if r.power is None:
        return "Power: not yet estimable (no spread between exits in this journal yet)."
    p, u = r.power, r.unit
    per = "per contract" if u == "$" else "per trade"
    where = "" if p.source == "measured" else " (estimated from in-sample differences)"
    if p.trades_for_target is None:
        need = "more trades than any journal holds"
    elif p.trades_for_target <= r.n_trades:
        need = f"about {p.trades_for_target:,} trades, fewer than this journal holds"
    else:
        need = f"about {p.trades_for_target:,} trades"
    return (
        f"Power{where}: the smallest improvement this journal can detect (80% power, the "
        f"publish rule in force) is {_money(p.detectable, u)} {per}; detecting "
        f"{_money(p.target, u)} {per} needs {need} at this journal's spread."
    )


def _verdict(r: CalibrationResult, fits: list[BucketFit], min_bucket: int, n: int, look: int,
             chain: int | None, per_session: float) -> str:
    u = r.unit
    per = "per contract" if u == "$" else "per trade"
    left = (
        f"; {r.no_option_prices} trades without option prices left out"
        if r.objective == "usd" and r.no_option_prices
        else ""
    )
    if not any(f.phase == 2 for f in fits):
        why = (
            f"no ATR bucket both has {min_bucket} trades and fits exits better than Phase 1 "
            f"({n} trades in all{left}), so there is nothing to publish"
        )
        head = "NOT PUBLISHED"
    elif not r.can_test:
        missing = max(MIN_OOS_SESSIONS - r.oos_sessions, 1)
        why = (
            f"{r.oos_n} of {n} trades could be scored out of sample, in "
            f"{r.oos_sessions} sessions (each session is scored by a fit on at least "
            f"{min_bucket} earlier trades, so the first {r.warmup} trades only train{left}), and an "
            f"honest test needs at least {MIN_OOS_SESSIONS} scored sessions whose results differ. "
            f"It can test after about {missing} more session{'s' if missing > 1 else ''} "
            f"(about {math.ceil(missing * per_session)} trades at this journal's "
            f"{per_session:.1f} a session)"
        )
        head = "NOT PUBLISHED (cannot test yet)"
    else:
        rel = ""
        if r.relative is not None:
            g, lo, hi, _ = r.relative
            rel = f" ({g:+.0%} on Phase 1, 95% interval [{lo:+.0%}, {hi:+.0%}])"
        why = (
            f"out of sample ({r.oos_n} trades in {r.oos_sessions} sessions, each scored "
            f"by a fit on earlier sessions only{left}) Phase 2 earned {_money(r.oos_phase2, u)} {per} "
            f"against {_money(r.oos_phase1, u)} for Phase 1 on the same trades: "
            f"{_money(r.oos_improvement, u)}{rel}; anytime-valid interval "
            f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}] (each bound holds at {1 - r.level:.1%} at "
            f"every journal length at once; look {look} at this journal, test chain "
            f"{chain}: valid however often calibrate is rerun)"
        )
        head = "NOT PUBLISHED"
        if r.published and not r.forced:
            return f"PUBLISHED: {why}, entirely above zero. Scan and replay use Phase 2 exits. {power_line(r)}"
    if r.forced:
        return (
            f"FORCED: published WITHOUT out-of-sample support because --force was given: {why}. "
            "Scan and replay will use these exits although the journal does not show they beat "
            f"Phase 1. {power_line(r)}"
        )
    return (
        f"{head}: {why}; the journal does not show that calibrated exits beat Phase 1. "
        "Scan and replay keep Phase 1. Collect more trades and rerun 'gammaride calibrate' "
        f"(reruns are accounted for). {power_line(r)}"
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

    p = result.power
    look = result.look
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "published": result.published,
        "forced": result.forced,
        "verdict": result.verdict,
        "fitted_at": result.fitted_at,
        "journal_fingerprint": result.fingerprint,
        "symbol": settings.symbol,
        "objective": result.objective,
        "n_trades": result.n_trades,
        "dropped_trades": result.dropped,
        "duplicate_trades": result.duplicates,
        "trades_without_option_prices": result.no_option_prices,
        "outcome_unit": UNITS[result.objective],
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
                "warmup_trades": result.warmup,
                "can_test": result.can_test,
                "phase1": result.oos_phase1,
                "phase2": result.oos_phase2,
                "improvement": result.oos_improvement,
                "ci95": interval(result.boot_low, result.boot_high),
                "anytime": {
                    "interval": interval(result.ci_low, result.ci_high),
                    "level": None if result.level is None else 1 - result.level,
                    "look": look.look if look else None,
                    "chain": look.chain if look else None,
                },
                "relative_to_phase1": None
                if result.relative is None
                else {"gain": result.relative[0], "ci95": list(result.relative[1:3])},
            },
            "power": None
            if p is None
            else {
                "detectable": p.detectable,
                "target": p.target,
                "trades_for_target": p.trades_for_target,
                "source": p.source,
            },
        },
        "method": {
            "grid": {
                "tp": [float(TP_GRID[0]), float(TP_GRID[-1])],
                "sl": [float(SL_GRID[0]), float(SL_GRID[-1])],
                "step": 0.1,
            },
            "exits": "the exit rules of gammaride.rules.exits on each trade's recorded path",
            "surface": f"per-bucket WLS of mean outcome on a degree-{DEGREE} polynomial in tp, sl (inverse-variance weights)",
            "buckets": "up to three ATR quantile buckets, as many as give each the bucket minimum",
            "shrinkage": f"toward Phase 1 by n / (n + {min_bucket}); buckets under {min_bucket} trades keep Phase 1",
            "validation": (
                f"prequential by session ({folds} fits): each session scored by a fit on earlier "
                f"sessions, embargo of the {settings.max_hold_minutes}-minute max hold; refit "
                f"every session for {EVERY_SESSION} sessions, then every {REFIT_GROWTH - 1:.0%} growth"
            ),
            "interval": (
                "anytime-valid one-sided normal-mixture bounds on session sums (Howard et al. "
                f"2021; Waudby-Smith et al. 2024), tuned for {CS_TARGET_SESSIONS} sessions; "
                f"bucket and ci95 figures: one-look session bootstrap-t, {n_boot} draws, seed {seed}"
            ),
            "publish_rule": (
                "the anytime-valid lower bound of the improvement above zero, from at least "
                f"{MIN_OOS_SESSIONS} scored sessions; test chain c runs at one-sided level "
                f"{ALPHA:g} / (c (c + 1))"
            ),
        },
        "settings": {
            "tp_mult": settings.tp_mult,
            "sl_mult": settings.sl_mult,
            "max_hold_minutes": settings.max_hold_minutes,
            "min_bucket_trades": min_bucket,
        },
    }
