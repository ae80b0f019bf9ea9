"""Summarize what the journal holds: runs by mode, scans, signals, trades, win rate,
the most common skip reasons and the latest errors.

Example: gammaride journal --journal my.duckdb --json
"""

from __future__ import annotations

import argparse
import json

from gammaride.commands._common import add_journal_argument, journal_path, open_journal
from gammaride.errors import JournalError
from gammaride.text import signed_usd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_journal_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    if not journal_path(args).exists():
        raise JournalError(
            f"journal {journal_path(args)} does not exist; run 'gammaride demo' or "
            "'gammaride replay' first, or pass --journal PATH"
        )
    with open_journal(args, read_only=True) as journal:
        summary = journal.summary()
        skips = journal.query(
            "SELECT regexp_replace(skip_reason, '[-+]?[0-9][0-9.]*', '#', 'g') AS reason, count(*) AS n "
            "FROM scans WHERE skip_reason IS NOT NULL GROUP BY 1 ORDER BY n DESC LIMIT 8"
        )
        summary["top_skip_reasons"] = {str(r.reason): int(r.n) for r in skips.itertuples()}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    runs = ", ".join(f"{n} {mode}" for mode, n in summary["runs"].items()) or "none"
    win = f"{summary['win_rate']:.1%}" if summary["win_rate"] is not None else "n/a"
    print(f"Journal {summary['journal']} (schema v{summary['schema_version']})")
    print(f"  runs      {runs}")
    print(f"  scans     {summary['scans']:,} ({summary['in_window']:,} in window), "
          f"{summary['first_decision'] or '-'} .. {summary['last_decision'] or '-'}")
    print(f"  signals   {summary['signals']:,}")
    print(f"  trades    {summary['trades']:,} closed, {summary['open_trades']} open; "
          f"win rate {win}; P&L {signed_usd(summary['pnl_usd'])}")
    print(f"  errors    {summary['errors']}")
    if summary["top_skip_reasons"]:
        print("  top skip reasons (# = a number):")
        for reason, n in summary["top_skip_reasons"].items():
            print(f"    {n:>8,}  {reason}")
    return 0
