"""Everything the report shows, read from the journal with SQL: ``build_report_data``.

Scans are only ever aggregated inside DuckDB (a journal may hold millions); trades
come back as one small frame and are summarized with :mod:`gammaride.reports.stats`.
The result is a plain dict of numbers, strings and lists: no HTML, no charts.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gammaride.calibration.document import calibration_path_for
from gammaride.config import ET, Settings
from gammaride.errors import ConfigError
from gammaride.journal import Journal
from gammaride.journal.identity import (
    KIND_SQL,
    KINDS,
    PNL_SOURCES,
    count_once,
    quality,
    with_identity,
)
from gammaride.journal.modes import RUN_MODES
from gammaride.journal.store import DRY_RUN_SQL
from gammaride.reports import calibration as calib
from gammaride.reports import gamma as gamma_section
from gammaride.reports import stats
from gammaride.rules.signals import SKIP_IV, SKIP_WARMUP_CODE

SOURCES = ("all", *RUN_MODES)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EXIT_REASON_NAMES = {
    "tp": "take profit",
    "sl": "stop loss",
    "time": "max hold",
    "hard_stop": "hard stop",
    "manual": "manual",
}


@dataclass(frozen=True)
class ReportFilters:
    """What the report covers and the yardsticks it measures against.

    ``since``: first session date included (``None``: everything). ``source``: run mode
    (replay | offline | paper | live | all). ``calibration``: the calibration file
    (``None``: ``calibration.json`` next to the journal). A breakdown group with fewer
    than ``min_group_trades`` trades shows its counts, not a rate. ``target_win_rate``:
    the seed's target, marked on the win-rate card beside the exits' break-even rate.
    """

    since: date | None = None
    source: str = "all"
    calibration: Path | None = None
    latest_trades: int = 25
    latest_errors: int = 20
    min_group_trades: int = 10
    target_trades_per_day: float = 5.0
    calibration_min_trades: int = 50
    target_win_rate: float = 0.35
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(
                f"report source {self.source!r} is not one of {', '.join(SOURCES)}; "
                "pass e.g. --source paper"
            )
        if isinstance(self.since, str):
            object.__setattr__(self, "since", parse_since(self.since))
        if isinstance(self.since, datetime):
            object.__setattr__(self, "since", self.since.date())
        if self.calibration is not None:
            object.__setattr__(self, "calibration", Path(self.calibration))


def parse_since(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since {text!r} is not a date; pass it as YYYY-MM-DD, e.g. --since 2026-01-05"
        ) from None


def build_report_data(
    journal: Journal | str | os.PathLike, filters: ReportFilters | None = None
) -> dict[str, Any]:
    """The report's content as a dict. Reads only; an empty journal gives an empty report."""
    filters = filters or ReportFilters()
    if isinstance(journal, Journal):
        return _build(journal, filters)
    with Journal(journal, read_only=True) as opened:
        return _build(opened, filters)


# ------------------------------------------------------------------------------------
def _build(journal: Journal, f: ReportFilters) -> dict[str, Any]:
    q = _Query(journal, f)
    q.register()
    try:
        rows = with_identity(q.trades())
        trades = count_once(rows)  # each trade once: the report never adds a trade twice
        cal = calib.read_calibration(f.calibration or calibration_path_for(journal.path), f.settings)
        sessions = q.sessions()
        blocks = {kind: _block(kind, trades[trades["kind"] == kind], sessions.get(kind, 0), f, cal)
                  for kind in KINDS}
        closed = trades[trades["status"] == "closed"]
        data = {
            "filters": {
                "since": f.since.isoformat() if f.since else None,
                "source": f.source,
                "journal": Path(journal.path).name,
            },
            "phase1": {"tp": f.settings.tp_mult, "sl": f.settings.sl_mult},
            "period": q.period(),
            "runs": q.runs(),
            "fills": blocks["fill"],
            "backtest": blocks["simulation"],
            "headline": _headline(blocks["fill"], closed, f, cal),
            "quality": {**quality(rows), **q.quality()},
            "funnel": q.funnel(trades),
            "skip_reasons": q.skip_reasons(),
            "calibration": cal,
            "latest_trades": _latest(trades, f.latest_trades),
            "errors": q.errors(),
            "gamma": gamma_section.section(journal, closed, f.min_group_trades),
        }
    finally:
        q.unregister()
    return data


class _Query:
    """The report's SQL. Every query is restricted to the filtered runs and period."""

    def __init__(self, journal: Journal, f: ReportFilters):
        self.j = journal
        self.f = f
        self.since = pd.Timestamp(f.since).tz_localize(ET) if f.since else None

    def register(self) -> None:
        mode = self.f.source
        # dry runs simulated their orders: they are rehearsals, not results
        runs = self.j.query(
            f"SELECT run_id FROM runs r WHERE (? = 'all' OR mode = ?) AND NOT {DRY_RUN_SQL}",
            [mode, mode],
        )
        self.j.con.register("_report_runs", runs.astype({"run_id": "int64"}))
        # the scans counted once, worked out once for the funnel, skip reasons and quality
        # (a temporary table lives in memory, so a read-only journal takes it too)
        once, p = self._scans_once()
        self.j.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _report_scans AS {once}
            SELECT run_id, in_window, vol_spike, signal, trade_id, skip_reason, skip_code, gate
            FROM once""",
            p,
        )

    def unregister(self) -> None:
        self.j.con.execute("DROP TABLE IF EXISTS _report_scans")
        self.j.con.unregister("_report_runs")

    def _since(self, column: str) -> tuple[str, list[Any]]:
        if self.since is None:
            return "", []
        return f" AND {column} >= ?", [self.since.to_pydatetime()]

    def _df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.j.query(sql, params)

    def _one(self, sql: str, params: list[Any] | None = None) -> tuple:
        return self.j.con.execute(sql, params or []).fetchall()[0]  # read to the end

    def _scans_once(self) -> tuple[str, list[Any]]:
        """A ``WITH`` clause naming ``once``: each market minute's scan once per kind (fill
        runs, simulations), by the trade identity's rule: scans of a run whose trades a
        later replay superseded for that symbol and session never count; of the rest the
        latest run's scans of that minute do. Rows of ``once`` carry ``gate``: the failed
        gate's code, also for rows written before the codes (see :data:`_SKIP_CODE`)."""
        c, p = self._since("s.decision_time")
        return (
            f"""
            WITH gone AS (
                SELECT DISTINCT run_id, symbol, CAST(entry_time AS DATE) AS day FROM trades
                WHERE superseded_by IS NOT NULL
            ), once AS (
                SELECT s.*, {_SKIP_CODE} AS gate FROM scans s JOIN runs r USING (run_id)
                WHERE s.run_id IN (SELECT run_id FROM _report_runs) {c}
                  AND NOT EXISTS (SELECT 1 FROM gone g WHERE g.run_id = s.run_id
                                  AND g.symbol = s.symbol
                                  AND g.day = CAST(s.decision_time AS DATE))
                QUALIFY s.run_id = max(s.run_id) OVER (
                    PARTITION BY s.symbol, date_trunc('minute', s.decision_time), {KIND_SQL})
            )
            """,
            p,
        )

    # ---------------------------------------------------------------------------
    def trades(self) -> pd.DataFrame:
        """Every trade row of the filtered runs, superseded and repeated ones included, with
        what the report shows of it; :func:`count_once` then keeps each trade once."""
        cond, params = self._since("t.entry_time")
        return self._df(
            f"""
            WITH win AS (
                SELECT trade_id, any_value("window") AS scan_window FROM scans
                WHERE trade_id IS NOT NULL AND run_id IN (SELECT run_id FROM _report_runs)
                GROUP BY trade_id
            )
            SELECT t.trade_id, t.run_id, r.mode, t.symbol, t.contract_symbol, t.direction,
                   t.status, t.entry_time, t.entry_price, t.exit_price, t.exit_reason, t.atr,
                   t.tp_mult, t.sl_mult, t.phase, t.atr_bucket, t.iv_percentile, t.contracts,
                   t.pnl_usd, t.gross_pnl_usd, t.pnl_source, t.fees_usd, t.spread_usd,
                   t.slippage_usd, t.superseded_by, t.r_multiple, t.mfe_atr, t.mae_atr,
                   strftime(t.entry_time, '%Y-%m-%d %H:%M') AS entry_at,
                   strftime(t.exit_time, '%H:%M') AS exit_at,
                   CAST(t.entry_time AS DATE) AS session,
                   strftime(coalesce(t.exit_time, t.entry_time), '%Y-%m-%d') AS exit_session,
                   (hour(coalesce(t.exit_time, t.entry_time)) * 60
                    + minute(coalesce(t.exit_time, t.entry_time)) - 570) / 390.0 AS exit_of_day,
                   isodow(t.entry_time) AS weekday,
                   epoch(t.exit_time - t.entry_time) / 60.0 AS hold_min,
                   coalesce(w.scan_window,
                            CASE WHEN hour(t.entry_time) < 12 THEN 'am' ELSE 'pm' END) AS "window"
            FROM trades t JOIN runs r USING (run_id) LEFT JOIN win w USING (trade_id)
            WHERE t.run_id IN (SELECT run_id FROM _report_runs) {cond}
            ORDER BY coalesce(t.exit_time, t.entry_time), t.trade_id
            """,
            params,
        )

    def quality(self) -> dict[str, int]:
        """Outlier prints found in replayed bars, runs with errors, errors, dry-run trades.

        Outlier prints are journaled per run: a run's count stands while any of its scans
        still counts (``_report_scans``, see :meth:`_scans_once`), so the same replay journaled twice counts its
        bars once, with or without ``--replace``."""
        c, p = self._since("occurred_at")
        t, pt = self._since("t.entry_time")
        row = self._one(
            f"""
            SELECT (SELECT coalesce(sum(outlier_prints), 0) FROM runs
                    WHERE run_id IN (SELECT DISTINCT run_id FROM _report_scans)),
                   (SELECT count(DISTINCT run_id) FROM errors
                    WHERE run_id IN (SELECT run_id FROM _report_runs) {c}),
                   (SELECT count(*) FROM errors
                    WHERE (run_id IS NULL OR run_id IN (SELECT run_id FROM _report_runs)) {c}),
                   (SELECT count(*) FROM trades t JOIN runs r USING (run_id)
                    WHERE {DRY_RUN_SQL} AND (? = 'all' OR r.mode = ?) {t})
            """,
            p + p + [self.f.source, self.f.source] + pt,
        )
        keys = ("outlier_prints", "runs_with_errors", "errors", "dry_run_trades")
        return {k: int(v or 0) for k, v in zip(keys, row, strict=True)}

    def sessions(self) -> dict[str, int]:
        """Sessions the scanner looked at (days with scans or trades) per kind of run."""
        c1, p1 = self._since("decision_time")
        c2, p2 = self._since("entry_time")
        frame = self._df(
            f"""
            SELECT {KIND_SQL} AS kind, count(DISTINCT d) AS n FROM (
                SELECT run_id, CAST(decision_time AS DATE) AS d FROM scans
                WHERE run_id IN (SELECT run_id FROM _report_runs) {c1}
                UNION ALL
                SELECT run_id, CAST(entry_time AS DATE) FROM trades
                WHERE run_id IN (SELECT run_id FROM _report_runs) {c2}
            ) JOIN runs r USING (run_id) GROUP BY 1
            """,
            p1 + p2,
        )
        return {str(k): int(n) for k, n in zip(frame["kind"], frame["n"], strict=True)}

    def period(self) -> dict[str, Any]:
        c1, p1 = self._since("decision_time")
        c2, p2 = self._since("entry_time")
        row = self._one(
            f"""
            SELECT strftime(min(t), '%Y-%m-%d'), strftime(max(t), '%Y-%m-%d') FROM (
                SELECT decision_time AS t FROM scans
                WHERE run_id IN (SELECT run_id FROM _report_runs) {c1}
                UNION ALL
                SELECT entry_time FROM trades
                WHERE run_id IN (SELECT run_id FROM _report_runs) {c2}
            )
            """,
            p1 + p2,
        )
        return {"first": row[0], "last": row[1]}

    def runs(self) -> dict[str, Any]:
        c, p = self._since("decision_time")
        frame = self._df(
            f"""
            WITH s AS (
                SELECT run_id, count(*) AS scans FROM scans
                WHERE run_id IN (SELECT run_id FROM _report_runs) {c} GROUP BY run_id
            ), t AS (
                SELECT run_id, count(*) AS trades, count(superseded_by) AS superseded FROM trades
                WHERE run_id IN (SELECT run_id FROM _report_runs) GROUP BY run_id
            ), e AS (
                SELECT run_id, count(*) AS errors FROM errors
                WHERE run_id IN (SELECT run_id FROM _report_runs) GROUP BY run_id
            )
            SELECT r.run_id, r.mode, r.symbol, r.status, r.phase, r.exit_policy, r.source,
                   strftime(r.started_at, '%Y-%m-%d %H:%M') AS started,
                   coalesce(s.scans, 0) AS scans, coalesce(t.trades, 0) AS trades,
                   coalesce(t.superseded, 0) AS superseded, coalesce(e.errors, 0) AS errors,
                   r.outlier_prints, r.replaces_runs
            FROM runs r LEFT JOIN s USING (run_id) LEFT JOIN t USING (run_id) LEFT JOIN e USING (run_id)
            WHERE r.run_id IN (SELECT run_id FROM _report_runs)
            ORDER BY r.run_id DESC
            """,
            p,
        )
        if self.since is not None:
            frame = frame[frame["scans"] > 0]
        by_mode = frame.groupby("mode").size().to_dict() if len(frame) else {}
        return {
            "n": len(frame),
            "by_mode": {str(k): int(v) for k, v in sorted(by_mode.items())},
            "latest": _records(frame.head(20)),
        }

    def funnel(self, trades: pd.DataFrame) -> dict[str, Any]:
        """Scans through the gates to fills, each market minute's scan once per kind;
        ``trades``: the trades counted once (replay entries are their own fills)."""
        # Gates apply in order (window, warm-up, volume, IV, direction), so each stage
        # counts the scans that passed it and every gate before it.
        row = self._one(
            f"""
            SELECT count(*),
                   count(*) FILTER (WHERE in_window),
                   count(*) FILTER (WHERE in_window AND vol_spike
                                     AND coalesce(gate, '') <> '{SKIP_WARMUP_CODE}'),
                   count(*) FILTER (WHERE in_window AND vol_spike
                                     AND coalesce(gate, '') NOT IN ('{SKIP_WARMUP_CODE}', '{SKIP_IV}')),
                   count(*) FILTER (WHERE signal),
                   count(*) FILTER (WHERE trade_id IS NOT NULL)
            FROM _report_scans
            """
        )
        scans, in_window, volume, iv_ok, direction, entered = (int(v or 0) for v in row)
        o, po = self._since("coalesce(o.submitted_at, o.updated_at)")
        orders = self._one(
            f"""
            SELECT count(*),
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM fills f WHERE f.order_id = o.order_id))
            FROM orders o
            WHERE o.run_id IN (SELECT run_id FROM _report_runs)
              AND coalesce(o.purpose, 'entry') = 'entry' {o}
            """,
            po,
        )
        # Replay enters at the decision price with no broker: each entry is its own fill.
        simulated = int((trades["mode"] == "replay").sum())
        n_orders = int(orders[0]) + simulated
        n_fills = int(orders[1]) + simulated
        stages = [
            ("scans", "scans", scans),
            ("in_window", "in a hedging window", in_window),
            ("volume", "volume spike", volume),
            ("iv_ok", "IV percentile ok", iv_ok),
            ("direction", "direction (signal)", direction),
            ("orders", "entry orders", n_orders),
            ("fills", "filled", n_fills),
        ]
        out = []
        prev = None
        for key, label, n in stages:
            out.append({
                "key": key,
                "label": label,
                "n": n,
                "of_scans": n / scans if scans else math.nan,
                "of_previous": n / prev if prev else math.nan,
            })
            prev = n
        return {"stages": out, "entered": entered, "simulated_fills": simulated}

    def skip_reasons(self, limit: int = 10) -> list[dict[str, Any]]:
        """Why scans did not enter, counted once like the funnel: by ``skip_code``; rows
        written before the codes by the words before the first number or parenthesis
        ("volume 0.7x < 2.0x" and "volume 1.2x < 2.0x" under "volume")."""
        frame = self._df(
            f"""
            WITH k AS (
                SELECT skip_reason,
                       coalesce(skip_code,
                                nullif(trim(regexp_extract(skip_reason, '^[^0-9(+\\-]*')), '')) AS kind
                FROM _report_scans WHERE skip_reason IS NOT NULL
            )
            SELECT left(coalesce(kind, skip_reason), 120) AS reason, count(*) AS n,
                   left(mode(skip_reason), 240) AS example, count(DISTINCT skip_reason) AS variants
            FROM k GROUP BY 1 ORDER BY n DESC, reason LIMIT {int(limit)}
            """
        )
        total = int(self._one("SELECT count(*) FROM _report_scans")[0])
        rows = _records(frame)
        for r in rows:
            r["share"] = r["n"] / total if total else math.nan
        return rows

    def errors(self) -> dict[str, Any]:
        c, p = self._since("occurred_at")
        where = f"WHERE (run_id IS NULL OR run_id IN (SELECT run_id FROM _report_runs)) {c}"
        total = int(self._one(f"SELECT count(*) FROM errors {where}", p)[0])
        frame = self._df(
            f"""
            SELECT strftime(occurred_at, '%Y-%m-%d %H:%M:%S') AS occurred, run_id, scan_no,
                   context, error_type, message
            FROM errors {where} ORDER BY occurred_at DESC LIMIT {int(self.f.latest_errors)}
            """,
            p,
        )
        return {"n": total, "latest": _records(frame)}


_SKIP_CODE = f"""coalesce(s.skip_code, CASE
    WHEN s.skip_reason LIKE 'warming up%' THEN '{SKIP_WARMUP_CODE}'
    WHEN s.skip_reason LIKE 'IV percentile%' OR s.skip_reason LIKE 'no IV data%' THEN '{SKIP_IV}'
    END)"""
"""Which gate failed: ``scans.skip_code``; rows journaled before the codes carry only the
message, and the two gates the funnel needs are read from its words."""


# ------------------------------------------------------------------------------------
def _block(kind: str, trades: pd.DataFrame, sessions: int, f: ReportFilters,
           cal: dict[str, Any]) -> dict[str, Any]:
    """Everything the page shows about one kind of trade: fills or simulations."""
    closed = trades[trades["status"] == "closed"].reset_index(drop=True)
    h = stats.summarize(closed)
    h["open"] = int((trades["status"] != "closed").sum())
    gross = closed["gross_pnl_usd"].to_numpy(dtype=float)
    known = bool(np.isfinite(gross).all())
    h["total_gross_usd"] = float(gross.sum()) if known else math.nan
    h["exp_gross_usd"] = float(gross.mean()) if known and len(gross) else math.nan
    h["max_dd_usd"] = stats.max_drawdown(closed["pnl_usd"].to_numpy(dtype=float))
    h["max_dd_r"] = stats.max_drawdown(closed["r_multiple"].to_numpy(dtype=float))
    hold = closed["hold_min"].to_numpy(dtype=float)
    h["avg_hold_min"] = float(np.nanmean(hold)) if np.isfinite(hold).any() else math.nan
    h["sessions"] = sessions
    h["trades_per_day"] = len(closed) / sessions if sessions else math.nan
    h["target_per_day"] = f.target_trades_per_day
    counts = closed["pnl_source"].value_counts()
    order = [*PNL_SOURCES, *sorted(set(map(str, counts.index)) - set(PNL_SOURCES))]
    sources = [
        {"source": src, "n": int(counts[src]), "mark": PNL_SOURCES.get(src, "estimated")}
        for src in order if src in counts.index
    ]
    return {
        "kind": kind,
        "summary": h,
        "measured": bool(sources) and all(s["mark"] == "measured" for s in sources),
        "sources": sources,
        "power": stats.edge_power(closed["r_multiple"]),
        "equity": _equity(closed),
        "breakdowns": _breakdowns(closed, f, cal),
        "exit_reasons": _exit_reasons(closed),
        "r_values": _floats(closed["r_multiple"]),
        "excursions": _excursions(closed),
    }


def _headline(
    fills: dict[str, Any], closed: pd.DataFrame, f: ReportFilters, cal: dict[str, Any]
) -> dict[str, Any]:
    """The fills' summary (the headline is about real fills), calibration readiness and
    the yardsticks a win rate is read against."""
    h = dict(fills["summary"])
    # calibration learns from the underlying's path: a market minute counts once
    ready = len(count_once(closed, per="minute"))
    h["calibration_n"] = ready
    h["calibration_needed"] = f.calibration_min_trades
    h["calibration_ready"] = ready >= f.calibration_min_trades
    # What scan and replay would use now, decided by the calibration file (or its absence).
    h["phase"] = cal["active_phase"]
    h["phase_text"] = cal["active_text"]
    h["break_even"] = cal["break_even"]
    h["target_win_rate"] = f.target_win_rate
    return h


def _equity(closed: pd.DataFrame) -> dict[str, Any]:
    """Cumulative P&L per closed trade, placed on a session axis: session k runs from k
    to k + 1 (09:30 to 16:00), the trade sits at its exit time within it."""
    pnl = closed["pnl_usd"].to_numpy(dtype=float)
    r = closed["r_multiple"].to_numpy(dtype=float)
    eq_usd, dd_usd = stats.drawdown(pnl)
    eq_r, dd_r = stats.drawdown(r)
    days = closed["exit_session"].astype(str).tolist() if len(closed) else []
    sessions = sorted(set(days))
    index = {d: i for i, d in enumerate(sessions)}
    frac = np.clip(np.nan_to_num(closed["exit_of_day"].to_numpy(dtype=float), nan=0.5), 0.0, 1.0)
    x = [index[d] + float(v) for d, v in zip(days, frac, strict=True)]
    return {
        "x": x,
        "sessions": sessions,
        "usd": eq_usd.tolist(),
        "dd_usd": dd_usd.tolist(),
        "r": eq_r.tolist(),
        "dd_r": dd_r.tolist(),
    }


def _atr_edges(closed: pd.DataFrame, cal: dict[str, Any]) -> tuple[list[float], str]:
    """Bucket edges: the calibration's when it has them, else the trades' ATR terciles."""
    edges = cal.get("edges") if cal.get("status") == "ok" else None
    if edges:
        return [float(e) for e in edges], "the calibration's buckets"
    atr = closed["atr"].to_numpy(dtype=float)
    atr = atr[np.isfinite(atr)]
    if len(atr) < 3:
        return [], "all trades"
    q = np.unique(np.round(np.quantile(atr, [1 / 3, 2 / 3]), 6))
    return [float(v) for v in q], "ATR terciles of these trades"


def _bucket_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    labels = [f"ATR < ${edges[0]:.3g}"]
    labels += [f"${a:.3g} to ${b:.3g}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    labels.append(f"ATR >= ${edges[-1]:.3g}")
    return labels


def _breakdowns(closed: pd.DataFrame, f: ReportFilters, cal: dict[str, Any]) -> list[dict[str, Any]]:
    s = f.settings
    frame = closed.copy()
    edges, basis = _atr_edges(closed, cal)
    labels = _bucket_labels(edges)
    idx = np.searchsorted(np.asarray(edges, dtype=float), frame["atr"].to_numpy(dtype=float), side="right")
    frame["atr_group"] = np.asarray(labels, dtype=object)[idx] if len(frame) else []
    frame.loc[~np.isfinite(frame["atr"].to_numpy(dtype=float)), "atr_group"] = None

    iv = frame["iv_percentile"].to_numpy(dtype=float)
    bands = [
        f"< {s.iv_threshold:.2f}",
        f"{s.iv_threshold:.2f} to {s.iv_band_high:.2f}",
        f"> {s.iv_band_high:.2f}",
    ]
    band = np.where(iv < s.iv_threshold, bands[0], np.where(iv > s.iv_band_high, bands[2], bands[1]))
    frame["iv_band"] = np.where(np.isfinite(iv), band, None) if len(frame) else []
    wd = frame["weekday"].to_numpy()
    frame["weekday_name"] = [WEEKDAYS[int(d) - 1] for d in wd] if len(frame) else []
    frame["window_name"] = frame["window"].map({"am": "AM", "pm": "PM"})

    n = f.min_group_trades
    specs = [
        ("atr", f"ATR bucket ({basis})", "atr_group", labels),
        ("window", "hedging window", "window_name", ["AM", "PM"]),
        ("direction", "direction", "direction", ["call", "put"]),
        ("iv", "IV percentile band", "iv_band", bands),
        ("weekday", "weekday", "weekday_name", list(WEEKDAYS[:5])),
    ]
    return [
        {"key": key, "title": title, "rows": stats.breakdown(frame, col, order, min_n=n)}
        for key, title, col, order in specs
    ]


def _exit_reasons(closed: pd.DataFrame) -> list[dict[str, Any]]:
    order = list(EXIT_REASON_NAMES)
    rows = stats.breakdown(closed, "exit_reason", order, min_n=1)
    total = len(closed)
    out = []
    for r in rows:
        if r["n"] == 0 and r["label"] in ("manual", "hard_stop"):
            continue  # rare reasons only when they happened
        r["name"] = EXIT_REASON_NAMES.get(r["label"], r["label"])
        r["share"] = r["n"] / total if total else math.nan
        out.append(r)
    return out


def _excursions(closed: pd.DataFrame) -> dict[str, Any]:
    lines = (
        closed[["tp_mult", "sl_mult"]].dropna().drop_duplicates().sort_values(["tp_mult", "sl_mult"])
    )
    return {
        "mfe": _floats(closed["mfe_atr"]),
        "mae": _floats(closed["mae_atr"]),
        "win": stats.is_win(closed["pnl_usd"], closed["r_multiple"]).tolist(),
        "levels": [
            {"tp": float(a), "sl": float(b)} for a, b in lines.head(4).itertuples(index=False)
        ],
    }


def _latest(trades: pd.DataFrame, k: int) -> dict[str, Any]:
    cols = [
        "trade_id", "mode", "kind", "pnl_source", "identity", "entry_at", "exit_at", "symbol",
        "contract_symbol", "direction", "status", "entry_price", "exit_price", "exit_reason",
        "atr", "contracts", "hold_min", "r_multiple", "pnl_usd", "gross_pnl_usd",
    ]
    latest = trades.tail(k).iloc[::-1][cols]
    rows = _records(latest)
    for r in rows:
        r["exit_name"] = EXIT_REASON_NAMES.get(r["exit_reason"], r["exit_reason"])
        r["mark"] = PNL_SOURCES.get(r["pnl_source"], "estimated")
    return {"rows": rows, "shown": len(rows), "total": len(trades)}


def _floats(series: pd.Series) -> list[float]:
    return [float(v) for v in series.to_numpy(dtype=float)]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values (NaN and NA become None)."""
    out = []
    for rec in frame.to_dict("records"):
        row = {}
        for key, value in rec.items():
            if isinstance(value, np.generic):
                value = value.item()
            if value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
                value = None
            row[str(key)] = value
        out.append(row)
    return out
