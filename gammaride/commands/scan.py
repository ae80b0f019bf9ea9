"""Run the live scanner: one scan a minute (broker clock, minute boundary + 5 s), each
journaled and printed; entries by marketable limit order, exits watched by gammaride
itself (options have no broker brackets). Paper by default; --live needs --live plus a
typed confirmation (or GAMMARIDE_LIVE_CONFIRM=yes when not interactive). With --offline,
or when no keys are set, it runs against the built-in offline server on real bundled
bars. At the end or on Ctrl-C it prints a summary and flattens the positions it manages.

Example: gammaride scan --scans 55 --dry-run --journal scans.duckdb
"""

from __future__ import annotations

import argparse
import sys

from gammaride.commands._common import (
    add_journal_argument,
    calibration_path,
    check_offline_arguments,
    journal_path,
    load_policy,
)
from gammaride.config import Settings
from gammaride.errors import BrokerError, ConfigError, JournalError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scans", type=int, default=None, help="scans to run (default 55)")
    parser.add_argument("--symbol", default=None, help="underlying (default SPY)")
    parser.add_argument("--instrument", choices=("options", "shares"), default=None,
                        help="options (gammaride is the OCO) or shares (a broker bracket)")
    parser.add_argument("--dry-run", action="store_true", help="decide and journal, send no orders")
    parser.add_argument("--live", action="store_true", help="trade the LIVE account (asks to confirm)")
    parser.add_argument("--offline", action="store_true", help="run against the built-in offline server")
    add_journal_argument(parser)
    parser.add_argument("--debug", action="store_true", help="detailed block per scan; 1.5x volume bar")
    parser.add_argument("--calibration", default=None, metavar="PATH",
                        help="Phase 2 exits file (default: calibration.json next to the journal)")
    parser.add_argument("--config", default=None, metavar="TOML", help="settings file")
    parser.add_argument("--iv-percentile", type=float, default=None, metavar="X",
                        help="fix the IV percentile (0-1) instead of measuring it, e.g. to compare with replay")
    parser.add_argument("--no-flatten", action="store_true",
                        help="leave open positions at the end (the backstop stop stays at the broker)")
    parser.add_argument("--no-backstop", action="store_true", help="no resting stop order for options")
    offline = parser.add_argument_group("offline server (with --offline or no keys)")
    offline.add_argument("--speed", type=float, default=60.0,
                         help="market seconds per real second (0 = stepped clock, as fast as possible)")
    offline.add_argument("--start", default=None, help="market time the offline clock starts at (ET)")
    offline.add_argument("--bars", nargs="+", metavar="FILE", help="bars for the offline server")
    offline.add_argument("--faults", default=None, metavar="SPEC", help='e.g. "429=0.05,500=0.05,drop=0.02"')
    offline.add_argument("--url", default=None,
                         help="an offline server started with 'gammaride serve' on this machine (loopback only)")


def run(args: argparse.Namespace) -> int:
    from gammaride.connection import connect
    from gammaride.journal import Journal
    from gammaride.keys import find_keys, safe_url
    from gammaride.notebook.blocks import live_confirmed

    overrides = {"symbol": args.symbol, "instrument": args.instrument, "scans": args.scans}
    if args.debug:
        overrides["debug"] = True
    settings = Settings.load(args.config, **overrides)
    check_offline_arguments(args)
    if args.iv_percentile is not None and not 0 <= args.iv_percentile <= 1:
        raise ConfigError(f"--iv-percentile {args.iv_percentile} is not in [0, 1]; pass e.g. 0.45")
    if args.live:
        if args.offline or args.url:
            raise ConfigError("--live cannot be combined with --offline/--url; choose one")
        if find_keys() is None:  # before asking to confirm: there is nothing to confirm
            raise ConfigError("--live needs Alpaca keys and none were found: set ALPACA_API_KEY and "
                              "ALPACA_SECRET_KEY (the live account's), or drop --live")
        if not live_confirmed(sys.stdin.isatty()):
            raise ConfigError(
                "live trading not confirmed; type 'yes' at the prompt, or set GAMMARIDE_LIVE_CONFIRM=yes "
                "when running without a terminal"
            )
    # keys that cannot work and a URL the keys may not go to are refused before anything
    # else happens: no journal file, no server, no banner
    if args.url is not None:
        safe_url(args.url)
    if not args.offline:
        find_keys()
    bars = None
    if args.bars:
        from gammaride.data.bars import load_bars

        bars = load_bars(args.bars)
    conn = connect(settings=settings, offline=args.offline, live=args.live, url=args.url,
                   speed=args.speed, start=args.start, bars=bars, faults=args.faults)
    with conn:
        path = journal_path(args)
        policy, message = load_policy(calibration_path(args, path), settings)
        # shared: the scan holds the file only while it writes, so report, journal and
        # calibrate can read it meanwhile; a journal that cannot open is refused before any banner
        with Journal(path, shared=True) as journal:
            for note in conn.notes:
                print("=" * len(note))
                print(note)
                print("=" * len(note))
            scanner = conn.scanner(
                journal, policy=policy, policy_message=message, dry_run=args.dry_run,
                iv_percentile=args.iv_percentile, backstop=not args.no_backstop,
                flatten_at_end=not args.no_flatten, source=conn.broker.url or "alpaca",
            )
            scanner.start()
            print(f"Journal: {path}")
            scanner.run(settings.scans)
    if scanner.journal_failure:
        raise JournalError(f"run {scanner.run_id} failed: {scanner.failure}; free the journal's disk or "
                           "pass another --journal PATH, then run again")
    if scanner.failure:
        raise BrokerError(f"run {scanner.run_id} failed: {scanner.failure}; run 'gammaride check' to see "
                          "what the broker answers")
    return 0
