"""Replay 1-minute bars through the scanner's rules and journal every decision.

BARS are CSV (timestamp,open,high,low,close,volume; naive times are America/New_York
bar starts), Parquet with the same columns, Lean minute zips (YYYYMMDD_trade.zip) or
the eqker CSV layout (a 'datetime' column of bar ends, newest first). With no BARS the
bundled sample (seven real SPY sessions) is replayed. The run is written atomically:
a bad file or any error leaves the journal as it was.

IV gate: by default a realized-volatility proxy from daily bars (bundled SPY history);
--iv-percentile X uses a constant, --iv-gate off switches the gate off.

Example: gammaride replay data/SPY_2024-03-01.csv --journal my.duckdb --iv-percentile 0.45
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from gammaride.commands._common import (
    add_journal_argument,
    calibration_path,
    load_policy,
    load_settings,
    open_journal,
)
from gammaride.errors import ConfigError
from gammaride.scanner.gamma import REPLAY_REASON
from gammaride.sim.data import load_bars, load_daily, sample_paths
from gammaride.sim.replay import IVChoice, run_replay
from gammaride.text import signed_usd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bars", nargs="*", metavar="BARS", help="bars files (default: bundled sample)")
    add_journal_argument(parser)
    parser.add_argument("--symbol", default=None, help="underlying symbol (default SPY)")
    iv = parser.add_mutually_exclusive_group()
    iv.add_argument("--iv-percentile", type=float, default=None, metavar="X",
                    help="constant IV percentile in [0, 1] for every decision")
    iv.add_argument("--iv-gate", choices=["on", "off"], default="on",
                    help="'off' switches the IV gate off")
    parser.add_argument("--label", choices=["start", "end"], default=None,
                        help="bar times label the bar's start or end (default: start; eqker files: end)")
    parser.add_argument("--daily", default=None, metavar="FILE",
                        help="daily bars (date,close) for the IV proxy (default: bundled SPY)")
    parser.add_argument("--calibration", default=None, metavar="PATH",
                        help="calibration file (default: calibration.json next to the journal)")
    parser.add_argument("--config", default=None, metavar="TOML", help="settings file")
    parser.add_argument("--debug", action="store_true", help="debug volume threshold (1.5x)")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args, symbol=args.symbol, debug=args.debug or None)
    if args.iv_percentile is not None:
        if not 0.0 <= args.iv_percentile <= 1.0:
            raise ConfigError(
                f"--iv-percentile {args.iv_percentile} is outside [0, 1]; pass e.g. --iv-percentile 0.45"
            )
        iv = IVChoice("constant", args.iv_percentile)
    elif args.iv_gate == "off":
        iv = IVChoice("off")
    else:
        iv = IVChoice("proxy", daily=load_daily(args.daily) if args.daily else None)

    paths = [Path(p) for p in args.bars] or sample_paths()
    show = not args.quiet and not args.json and sys.stderr.isatty()
    steps = tqdm(total=3, desc="replay", disable=not show, unit="step", leave=False)
    steps.set_postfix_str(f"loading {len(paths)} file(s)")
    bars = load_bars(paths, label=args.label)
    steps.update()

    with open_journal(args) as journal:
        policy, message = load_policy(calibration_path(args, journal.path), settings)
        steps.set_postfix_str("rules + journal")
        steps.update()
        source = ", ".join(p.name for p in paths) if args.bars else "bundled sample"
        run_id, result = run_replay(journal, bars, settings, policy, iv, source=source)
        steps.update()
        steps.close()
        summary = {"run_id": run_id, "journal": journal.path, **result.summary()}
    if args.json:
        import json

        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(message)
    print(f"Dealer gamma: not measured ({REPLAY_REASON}); the gamma columns stay empty"
          + (f" and gamma_gate {settings.gamma_gate} is not applied" if settings.gamma_gate != "off" else ""))
    sessions = len(set(bars.index.date))
    print(f"Replayed {len(bars):,} bars ({sessions} sessions) from {source} into {summary['journal']} (run {run_id})")
    print(
        f"  scans {summary['bars']:,} | in window {summary['in_window']:,} | "
        f"signals {summary['signals']:,} | trades {summary['trades']:,}"
    )
    if summary["trades"]:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary["exit_reasons"].items()))
        print(
            f"  win rate {summary['win_rate']:.1%} | avg R {summary['avg_r']:+.2f} | "
            f"P&L {signed_usd(summary['pnl_usd'])} (delta-{settings.replay_delta:g} estimate) | exits: {reasons}"
        )
    else:
        print("  no trades: see the skip reasons with 'gammaride journal'")
    return 0
