"""Write the HTML win-rate report. The headline is about paper and live fills; replay
and offline runs are a separate backtest, never added to them. Each trade counts once;
every dollar is net of costs with gross beside it and says whether it was measured
(fills) or estimated; every rate has its 95% interval, and a power line says how many
trades it would take to know. Then the equity curve by session, breakdowns, exit
reasons, the gate funnel, data-quality marks, calibration, the latest trades, errors
and runs. One self-contained file: no remote assets, opens offline, readable on a phone.

Example: gammaride report --journal j.duckdb --out report.html --since 2026-01-05 --source paper
"""

from __future__ import annotations

import argparse
import json
import math
import webbrowser
from typing import Any

from gammaride.commands._common import (
    add_journal_argument,
    journal_path,
    load_settings,
    output_path,
)
from gammaride.errors import JournalError
from gammaride.journal.modes import RUN_MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_journal_argument(parser)
    parser.add_argument("--out", default="report.html", metavar="PATH",
                        help="HTML file to write (default: report.html)")
    parser.add_argument("--since", default=None, metavar="DATE",
                        help="first session to include, YYYY-MM-DD (default: everything)")
    parser.add_argument("--source", default="all", choices=("all", *RUN_MODES),
                        help="which runs to include (default: all)")
    parser.add_argument("--calibration", default=None, metavar="PATH",
                        help="calibration file (default: calibration.json next to the journal)")
    parser.add_argument("--open", action="store_true", help="open the report in a browser")
    parser.add_argument("--json", action="store_true",
                        help="print the path and the headline numbers as JSON")


def run(args: argparse.Namespace) -> int:
    from gammaride.reports import ReportFilters, headline_text, write_report
    from gammaride.reports.data import parse_since

    path = journal_path(args)
    if not path.exists():
        raise JournalError(
            f"journal {path} does not exist; run 'gammaride demo' or 'gammaride replay' first, "
            "or pass --journal PATH"
        )
    filters = ReportFilters(
        since=parse_since(args.since) if args.since else None,
        source=args.source,
        calibration=args.calibration,
        settings=load_settings(args),  # IV bands and Phase 1 multipliers as configured
    )
    out, data = write_report(path, output_path(args.out, "report.html"), filters)
    if args.json:
        print(json.dumps(_plain({"path": str(out), "period": data["period"],
                                 "headline": data["headline"],
                                 "backtest": data["backtest"]["summary"],
                                 "power": {"fills": data["fills"]["power"],
                                           "backtest": data["backtest"]["power"]},
                                 "quality": data["quality"],
                                 "funnel": {s["key"]: s["n"] for s in data["funnel"]["stages"]}}),
                         indent=2))
    else:
        print(f"wrote {out}")
        print(headline_text(data))
    if args.open:
        webbrowser.open(out.resolve().as_uri())
    return 0


def _plain(value: Any) -> Any:
    """NaN and infinity as null: JSON has neither."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
