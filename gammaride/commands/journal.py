"""Summarize what the journal holds: runs by mode, scans, signals, trades counted once
(paper and live fills apart from replay and offline simulations, net P&L with gross
beside it and where the prices came from), the most common skip reasons and the latest
errors. --export DIR writes trades.csv, scans.csv and runs.csv for a spreadsheet.

Example: gammaride journal --journal my.duckdb --export journal-csv
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from gammaride.commands._common import add_journal_argument, journal_path, open_journal
from gammaride.errors import ConfigError, JournalError
from gammaride.text import signed_usd

KIND_NAMES = {"fill": "fills (paper, live)", "simulation": "simulated (replay, offline)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_journal_argument(parser)
    parser.add_argument("--errors", type=int, default=5, metavar="N",
                        help="how many of the latest errors to show (default 5)")
    parser.add_argument("--export", default=None, metavar="DIR",
                        help="write trades.csv, scans.csv and runs.csv into DIR")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    if not journal_path(args).exists():
        raise JournalError(
            f"journal {journal_path(args)} does not exist; run 'gammaride demo' or "
            "'gammaride replay' first, or pass --journal PATH"
        )
    if args.errors < 0:
        raise ConfigError(f"--errors {args.errors} is negative; pass e.g. --errors 5")
    with open_journal(args, read_only=True) as journal:
        summary = journal.summary()
        skips = journal.query(
            "SELECT regexp_replace(skip_reason, '[-+]?[0-9][0-9.]*', '#', 'g') AS reason, count(*) AS n "
            "FROM scans WHERE skip_reason IS NOT NULL GROUP BY 1 ORDER BY n DESC LIMIT 8"
        )
        summary["top_skip_reasons"] = {str(r.reason): int(r.n) for r in skips.itertuples()}
        errors = journal.latest_errors(args.errors)
        summary["latest_errors"] = [
            {"occurred_at": e.occurred_at.isoformat(), "run_id": _int(e.run_id),
             "scan_no": _int(e.scan_no), "context": e.context, "error_type": e.error_type,
             "message": e.message}
            for e in errors.itertuples()
        ]
        if args.export:
            from gammaride.journal.export import export_csv

            try:
                written = export_csv(journal, args.export)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            summary["exported"] = [str(p) for p in written]
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for line in summary_lines(summary):
        print(line)
    return 0


def summary_lines(s: dict[str, Any]) -> list[str]:
    from gammaride.journal.identity import PNL_SOURCES

    runs = ", ".join(f"{n} {mode}" for mode, n in s["runs"].items()) or "none"
    lines = [
        f"Journal {s['journal']} (schema v{s['schema_version']})",
        f"  runs      {runs}",
        f"  scans     {s['scans']:,} ({s['in_window']:,} in window), "
        f"{s['first_decision'] or '-'} .. {s['last_decision'] or '-'}",
        f"  signals   {s['signals']:,}",
        f"  trades    {s['trades']:,} closed, {s['open_trades']} open, each counted once",
    ]
    for kind, k in s["by_kind"].items():
        if not k["trades"]:
            continue
        sources = ", ".join(f"{n} {src} ({PNL_SOURCES.get(src, 'unknown')})" for src, n in k["pnl_sources"].items())
        gross = signed_usd(k["gross_pnl_usd"]) if k["gross_pnl_usd"] is not None else "-"
        lines.append(
            f"    {KIND_NAMES[kind]:<28} {k['trades']:,} trades, win rate {k['win_rate']:.1%}, "
            f"net P&L {signed_usd(k['pnl_usd'])} (gross {gross}); prices: {sources}"
        )
    marks = []
    if s["duplicates"]:
        marks.append(f"{s['duplicates']:,} journaled again (counted once)")
    if s["superseded"]:
        marks.append(f"{s['superseded']:,} superseded by a later replay")
    if s["dry_run_trades"]:
        marks.append(f"{s['dry_run_trades']:,} from dry runs (left out)")
    if marks:
        lines.append(f"  not counted  {'; '.join(marks)}")
    lines.append(f"  errors    {s['errors']:,} in {s['runs_with_errors']} run(s)")
    for e in s["latest_errors"]:
        where = f"run {e['run_id']}" if e["run_id"] is not None else "no run"
        if e["scan_no"] is not None:
            where += f" scan {e['scan_no']}"
        lines.append(f"    {e['occurred_at'][:19]}  {where}  {e['context']}: {e['error_type']}: "
                     f"{_one_line(e['message'])}")
    if s["top_skip_reasons"]:
        lines.append("  top skip reasons (# = a number):")
        for reason, n in s["top_skip_reasons"].items():
            lines.append(f"    {n:>8,}  {reason}")
    for path in s.get("exported", []):
        lines.append(f"wrote {path}")
    return lines


def _int(value: Any) -> int | None:
    try:
        return None if value is None or value != value else int(value)
    except (TypeError, ValueError):
        return None


def _one_line(text: Any, limit: int = 160) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
