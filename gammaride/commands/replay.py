"""Replay 1-minute bars through the scanner's rules and journal every decision.

BARS are CSV (timestamp,open,high,low,close,volume; naive times are America/New_York
bar starts), Parquet with the same columns, Lean minute zips (YYYYMMDD_trade.zip) or
the eqker CSV layout (a 'datetime' column of bar ends, newest first). With no BARS the
bundled sample (seven real SPY sessions) is replayed. The run is written atomically:
a bad file or any error leaves the journal as it was.

--alpaca SYMBOL --start DATE --end DATE replays Alpaca's history instead: bars come from
the history cache (see 'gammaride fetch'; what it lacks is fetched first, so cached
history replays offline), and every trade from February 2024 on is priced from the
option contract the scanner would have bought (its own 1-minute bars, fetched and cached).

IV gate: by default a realized-volatility proxy from daily bars (bundled SPY history, or
the cached daily bars with --alpaca); --iv-percentile X uses a constant, --iv-gate off
switches the gate off. Dollar P&L is net of fees, spread and slippage (gammaride.rules.costs).

Replaying sessions the journal already holds says so: each trade still counts once (the
latest run's); --replace supersedes the earlier runs' trades for these sessions, so a
trade the new rules no longer take stops counting.

Example: gammaride replay data/SPY_2024-03-01.csv --journal my.duckdb --iv-percentile 0.45
Example: gammaride replay --alpaca SPY --start 2024-02-01 --end 2024-12-31
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gammaride.commands._common import (
    add_journal_argument,
    calibration_path,
    load_policy,
    load_settings,
    open_journal,
)
from gammaride.commands.fetch import add_cache_arguments, make_fetcher
from gammaride.errors import ConfigError
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
    parser.add_argument("--replace", action="store_true",
                        help="supersede the trades earlier replays journaled for these sessions")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    history = parser.add_argument_group("Alpaca history (instead of BARS)")
    history.add_argument("--alpaca", default=None, metavar="SYMBOL",
                         help="replay SYMBOL's Alpaca history from the cache, fetching what it lacks")
    history.add_argument("--start", default=None, metavar="DATE", help="first date of --alpaca")
    history.add_argument("--end", default=None, metavar="DATE", help="last date of --alpaca")
    add_cache_arguments(history)


class _Silent:
    """The progress steps when nothing is drawn (quiet, JSON, not a terminal): tqdm is not
    even imported."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def _steps(show: bool):
    if not show:
        return _Silent()
    from tqdm import tqdm

    return tqdm(total=3, desc="replay", unit="step", leave=False)


def run(args: argparse.Namespace) -> int:
    from gammaride.data.bars import load_bars, load_daily, sample_paths
    from gammaride.replay.engine import IVChoice, run_replay
    from gammaride.rules.gamma import REPLAY_REASON

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

    pricer = None
    show = not args.quiet and not args.json and sys.stderr.isatty()
    if args.alpaca:
        if args.bars or not (args.start and args.end):
            raise ConfigError("--alpaca takes --start DATE and --end DATE and no BARS files; "
                              "e.g. gammaride replay --alpaca SPY --start 2024-02-01 --end 2024-12-31")
        from gammaride.data.history import load_history
        from gammaride.replay.pricing import CachedOptionBars, OptionPricer

        settings = settings.replace(symbol=args.alpaca.upper())
        fetcher = make_fetcher(args)
        fetcher.quiet = args.quiet or args.json
        history = load_history(fetcher, settings.symbol, args.start, args.end)
        bars = history.bars
        if iv.mode == "proxy" and not args.daily:
            iv = IVChoice("proxy", daily=history.daily)
        pricer = OptionPricer(CachedOptionBars(fetcher.cache, fetcher), history.daily)
        source = f"Alpaca {settings.symbol} {args.start} .. {args.end} ({fetcher.feed}, cache {fetcher.cache.root})"
        steps = _steps(show)
        steps.update()
    else:
        paths = [Path(p) for p in args.bars] or sample_paths()
        steps = _steps(show)
        steps.set_postfix_str(f"loading {len(paths)} file(s)")
        bars = load_bars(paths, label=args.label)
        source = ", ".join(p.name for p in paths) if args.bars else "bundled sample"
        steps.update()

    with open_journal(args) as journal:
        policy, message = load_policy(calibration_path(args, journal.path), settings)
        steps.set_postfix_str("rules + journal")
        steps.update()
        days = [d.date() for d in bars.index.tz_localize(None).normalize().unique()]  # sorted
        earlier = journal.replayed_runs(settings.symbol, days)
        with journal.transaction():  # the run and what it supersedes, together or not at all
            run_id, result = run_replay(journal, bars, settings, policy, iv, source=source, pricer=pricer)
            replaced = journal.supersede(run_id, settings.symbol, days) if args.replace else []
        steps.update()
        steps.close()
        summary = {"run_id": run_id, "journal": journal.path, **result.summary(),
                   "earlier_runs": [int(r) for r in earlier["run_id"]], "replaced_runs": replaced}
        if pricer is not None:
            summary["requests"] = fetcher.stats.requests
    if args.json:
        import json

        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(message)
    print(f"Dealer gamma: not measured ({REPLAY_REASON}); the gamma columns stay empty"
          + (f" and gamma_gate {settings.gamma_gate} is not applied" if settings.gamma_gate != "off" else ""))
    sessions = len(days)
    print(f"Replayed {len(bars):,} bars ({sessions} sessions) from {source} into {summary['journal']} (run {run_id})")
    print(
        f"  scans {summary['bars']:,} | in window {summary['in_window']:,} | "
        f"signals {summary['signals']:,} | trades {summary['trades']:,}"
    )
    print(pnl_lines(summary, settings))
    if pricer is not None:
        sent = summary["requests"]
        print(f"  history: {sent} request(s) sent" if sent else "  history: all from the cache, no request sent")
    if len(earlier):
        print(_overlap_line(earlier, replaced))
    return 0


def pnl_lines(summary: dict, settings) -> str:
    """The replay's result in words: trades, net and gross P&L with their sources, costs,
    outlier prints. Shared by replay and the demo."""
    lines = []
    if summary["trades"]:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary["exit_reasons"].items()))
        sources = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(summary["pnl_sources"].items()))
        lines.append(
            f"  win rate {summary['win_rate']:.1%} | avg R {summary['avg_r']:+.2f} | exits: {reasons}"
        )
        lines.append(
            f"  P&L net {signed_usd(summary['pnl_usd'])} (gross {signed_usd(summary['gross_pnl_usd'])}, "
            f"costs {signed_usd(-summary['costs_usd'])}) | priced by: {sources}"
            + (f" (delta {settings.replay_delta:g})" if "delta_estimate" in summary["pnl_sources"] else "")
        )
        lines.append(f"  costs: {summary['costs']}")
    else:
        lines.append("  no trades: see the skip reasons with 'gammaride journal'")
    lines.append(
        f"  outlier prints: {summary['outlier_prints']} bar(s) with a high or low over "
        f"{settings.outlier_atr:g} ATRs beyond their body and neighbours, kept out of TP/SL tests"
    )
    return "\n".join(lines)


def _overlap_line(earlier, replaced: list[int]) -> str:
    runs = ", ".join(
        f"run {r.run_id} ({r.trades} trades, {r.first} to {r.last})" for r in earlier.itertuples()
    )
    if replaced:
        return f"  superseded the trades of {runs}: each trade counts once, from this run"
    return (
        f"  these sessions were already replayed in {runs}. The same trade counts once "
        "(the latest run's); to drop the earlier runs' trades for these sessions, "
        "replay again with --replace"
    )
