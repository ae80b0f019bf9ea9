"""Fit Phase 2 exits (TP/SL multipliers per ATR bucket) from the journal's closed trades.

Every closed trade's recorded 20-minute path is re-simulated under TP 0.5-4.0 and SL
0.3-2.0 ATR (step 0.1) with the scanner's own exit rules. Per ATR bucket (up to three,
near the terciles of the journal's ATR, or --edges) a fitted outcome surface picks the
multipliers; buckets with fewer than --min-bucket-trades trades keep Phase 1. Each session
is scored by a fit on earlier sessions only, against Phase 1 on the same trades, and the
result is published to calibration.json only when the anytime-valid interval of that
improvement lies above zero. Every run is journaled (table calibrations) and counts as a
look, so rerunning as trades accumulate stays honest. --force publishes anyway, and says
so. Scan and replay read the file.

Example: gammaride calibrate --journal my.duckdb --min-trades 50
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from gammaride.commands._common import (
    add_journal_argument,
    check_seed,
    journal_path,
    load_settings,
    output_path,
)
from gammaride.errors import JournalError

if TYPE_CHECKING:
    from gammaride.calibration import CalibrationResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_journal_argument(parser)
    parser.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="calibration file to write (default: calibration.json next to the journal)",
    )
    parser.add_argument(
        "--min-trades",
        type=int,
        default=50,
        metavar="N",
        help="closed trades needed before calibrating (default 50)",
    )
    parser.add_argument(
        "--min-bucket-trades",
        type=int,
        default=15,
        metavar="N",
        help="trades a bucket needs to leave Phase 1 (default 15)",
    )
    parser.add_argument(
        "--edges",
        default=None,
        metavar="A,B",
        help="ATR bucket edges in $, e.g. 0.8,1.5 (default: terciles of the journal's ATR)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="publish even without out-of-sample support (not advised)",
    )
    parser.add_argument(
        "--objective",
        choices=("atr", "usd"),
        default="atr",
        help="atr: outcome on the underlying in ATRs (default); usd: net option P&L per "
        "contract, from trades with option prices (the others are left out and counted)",
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--config", default=None, metavar="TOML", help="settings file")
    parser.add_argument(
        "--json", action="store_true", help="print the calibration document as JSON"
    )


def run(args: argparse.Namespace) -> int:
    from gammaride.calibration import calibrate, parse_edges
    from gammaride.calibration.document import FILE_NAME
    from gammaride.journal import Journal

    settings = load_settings(args)
    check_seed(args.seed)
    edges = parse_edges(args.edges)
    path = journal_path(args)
    if not path.exists():
        raise JournalError(
            f"journal {path} does not exist; run 'gammaride replay' or 'gammaride scan' "
            "first, or pass --journal PATH"
        )
    with Journal(path) as journal:  # writable: every calibrate run is journaled as a look
        result = calibrate(
            journal,
            settings,
            min_trades=args.min_trades,
            min_bucket_trades=args.min_bucket_trades,
            edges=edges,
            force=args.force,
            out=output_path(args.out, FILE_NAME),
            seed=args.seed,
            objective=args.objective,
        )
    if args.json:
        print(json.dumps({**result.document, "path": str(result.path)}, indent=2))
        return 0
    print(format_result(result, journal_path(args)))
    return 0


def format_result(result: CalibrationResult, journal: str | Path) -> str:
    """The per-bucket table and the verdict, as printed by ``gammaride calibrate``."""
    edges = "/".join(f"{e:.4g}" for e in result.edges) or "none"
    dropped = ""
    if result.dropped:
        why = []
        if result.duplicates:
            why.append(f"{result.duplicates} journaled twice")
        if result.dropped > result.duplicates:
            why.append(f"{result.dropped - result.duplicates} without a usable path")
        dropped = f" ({result.dropped} left out: {', '.join(why)})"
    lines = [
        f"Calibration of {journal}: {result.n_trades} closed trades{dropped}, "
        f"ATR edges ${edges} ({result.edges_source})",
        f"Outcomes in {_UNIT[result.objective]}; out of sample = each session scored by a fit "
        "on earlier sessions; 95% intervals are for one look.",
        "",
        f"{'bucket':<7}{'ATR range':>16}{'n':>6}  {'Phase 1':>8}  {'Phase 2':>8}"
        f"{'OOS n':>7}{'OOS P1':>9}{'OOS P2':>9}{'gain':>9}  95% interval",
    ]
    p1 = f"{result.phase1[0]:.1f}/{result.phase1[1]:.1f}"
    for b in result.buckets:
        p2 = f"{b.tp_mult:.1f}/{b.sl_mult:.1f}" if b.phase == 2 else "(keeps 1)"
        lines.append(
            f"{b.label:<7}{_range(b.atr_from, b.atr_to):>16}{b.n:>6}  "
            f"{p1:>8}  {p2:>8}{b.oos_n:>7}{_num(b.oos_phase1):>9}"
            f"{_num(b.oos_phase2):>9}{_num(b.oos_improvement):>9}  {_interval(b.ci_low, b.ci_high)}"
        )
    lines.append(
        f"{'all':<7}{'':>16}{result.n_trades:>6}  {'':>8}  {'':>8}{result.oos_n:>7}"
        f"{_num(result.oos_phase1):>9}{_num(result.oos_phase2):>9}{_num(result.oos_improvement):>9}"
        f"  {_interval(result.boot_low, result.boot_high)}"
    )
    if result.can_test:
        anytime = (
            f"{_interval(result.ci_low, result.ci_high)} at {1 - result.level:.1%}, look "
            f"{result.look.look}, test chain {result.look.chain} (what publishing reads; valid "
            "however often calibrate is rerun)"
        )
    else:
        anytime = "cannot test yet (see below)"
    lines += ["", f"Anytime-valid interval: {anytime}", "", result.verdict]
    if result.forced:
        banner = "!" * 78
        lines = [
            banner,
            "!!! FORCED PUBLISH: these exits are NOT supported out of sample !!!",
            banner,
            *lines,
            banner,
        ]
    where = "Published to" if result.published else "Written (not published) to"
    lines.append(f"{where} {result.path}")
    return "\n".join(lines)


_UNIT = {"atr": "ATRs per trade", "usd": "net dollars per contract"}


def _range(lo: float | None, hi: float | None) -> str:
    if lo is None and hi is None:
        return "all"
    if lo is None:
        return f"< {hi:.4g}"
    if hi is None:
        return f">= {lo:.4g}"
    return f"{lo:.4g}-{hi:.4g}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _interval(lo: float | None, hi: float | None) -> str:
    return "-" if lo is None else f"[{lo:+.3f}, {hi:+.3f}]"
