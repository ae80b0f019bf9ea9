"""Run the offline Alpaca-compatible server in the foreground until Ctrl-C.

It replays 1-minute bars (the bundled SPY sample unless --bars) on a simulated clock,
prices a daily-expiration option chain with Black-Scholes, fills orders and keeps an
account, all on loopback: point alpaca-py's clients at the printed URL with
url_override and use the printed (fake, offline) keys. Faults such as rate limits
can be injected with --faults "429=0.05,500=0.02,orders:drop=0.01".

Example: gammaride serve --port 8765 --speed 60 --start "2013-10-07 09:30"
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gammaride.commands._common import check_offline_arguments, check_seed
from gammaride.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8765, help="TCP port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    parser.add_argument("--speed", type=float, default=60.0,
                        help="market seconds per real second (0 = clock moves only via POST /_sim/clock)")
    parser.add_argument("--start", default="2013-10-07 09:30", help="market time (ET) the clock starts at")
    parser.add_argument("--bars", nargs="+", metavar="FILE", help="bars files (CSV, Parquet, Lean zip); default: the bundled sample")
    parser.add_argument("--symbol", default="SPY", help="symbol the bars belong to")
    parser.add_argument("--iv", default="0.20", metavar="IV|FILE",
                        help="implied volatility of the option chain (0.20 = 20%%), or a CSV with "
                             "columns timestamp,iv (ET times) for an IV series")
    parser.add_argument("--faults", default=None, metavar="SPEC",
                        help='fault rates, e.g. "429=0.05,500=0.05,timeout=0.02,orders:drop=0.01,slow_seconds=5"')
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault generator and ids")
    parser.add_argument("--equity", type=float, default=100_000.0, help="starting cash of the account")
    parser.add_argument("--no-option-stops", action="store_true",
                        help="refuse single-leg option stop orders, as Alpaca did before 2026-08")
    parser.add_argument("--subscription", choices=("basic", "plus"), default="basic",
                        help="market-data plan: basic (free: IEX, indicative options, no recent SIP, no OPRA) or plus")
    parser.add_argument("--missing-iv", choices=("none", "otm", "all"), default="none",
                        help="option snapshots without IV and greeks for these contracts")
    parser.add_argument("--one-sided", choices=("none", "otm", "all"), default="none",
                        help="option quotes without a bid for these contracts")
    parser.add_argument("--quote-age", type=float, default=0.0, metavar="SECONDS",
                        help="option quotes stamped this many seconds old")
    parser.add_argument("--indicative-skew", type=float, default=0.0, metavar="DOLLARS",
                        help="indicative quotes this far inside the market that fills, each side")
    parser.add_argument("--no-liquidation", action="store_true",
                        help="do not liquidate expiring options before the close (they are then "
                             "exercised or expire), as on a day Alpaca does not")
    parser.add_argument("--history", default=None, metavar="START..END",
                        help="serve a simulated SPY history of those dates to 'gammaride fetch --url' "
                             "(stock and option bars; start the clock after END, e.g. --start '2026-11-30 12:00')")
    parser.add_argument("--history-every", type=int, default=1, metavar="N",
                        help="minute bars on every N-th session of --history only (daily bars on all)")


def network_warning(host: str) -> str | None:
    """A warning when ``--host`` is not loopback: anyone who reaches this machine can trade
    on the server and read what it is fed."""
    import ipaddress

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    return (f"warning: --host {host} makes the offline server reachable from the network, not only "
            "from this machine; use --host 127.0.0.1 unless that is what you want")


def run(args: argparse.Namespace) -> int:
    import sys

    from gammaride.offline import (
        Access,
        BrokerBehaviour,
        DataPlan,
        OfflineAlpaca,
        OptionChain,
        SimAccount,
    )

    warning = network_warning(args.host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    check_offline_arguments(args)
    check_seed(args.seed)

    bars = None
    if args.bars:
        from gammaride.data.bars import load_bars

        bars = load_bars(args.bars)
    iv = _read_iv(args.iv)
    history = None
    if args.history:
        from gammaride.offline.history import History

        first, sep, last = args.history.partition("..")
        if not sep:
            raise ConfigError(f"--history {args.history!r}: write START..END, e.g. 2023-01-03..2024-12-31")
        history = History(symbol=args.symbol, start=first, end=last, every=args.history_every)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a TCP port; give 0..65535")
    try:
        srv = OfflineAlpaca(
            bars=bars, start=args.start, speed=args.speed, symbol=args.symbol, history=history,
            seed=args.seed, faults=args.faults, chain=OptionChain(iv=iv),
            account=SimAccount(equity=args.equity),
            behaviour=BrokerBehaviour(option_stops=not args.no_option_stops,
                                      liquidation=not args.no_liquidation),
            data=DataPlan(subscription=args.subscription, missing_iv=args.missing_iv,
                          one_sided=args.one_sided, quote_age_seconds=args.quote_age,
                          indicative_skew=args.indicative_skew),
            access=Access(host=args.host, port=args.port),
        )
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port} ({exc}); choose another --port") from None
    print(f"offline Alpaca server at {srv.url}", flush=True)
    print(f"  APCA-API-KEY-ID:     {srv.key_id}", flush=True)
    print(f"  APCA-API-SECRET-KEY: {srv.secret_key}", flush=True)
    print(f"  market time {srv.now():%Y-%m-%d %H:%M:%S %Z}, speed {args.speed:g}x, "
          f"{len(srv.tape)} bars of {srv.tape.symbol}; Ctrl-C stops", flush=True)
    if history is not None:
        print(f"  history: {history.dates[0]} .. {history.dates[-1]} ({len(history.dates)} sessions) for "
              f"gammaride fetch/replay --alpaca --url {srv.url}", flush=True)
    # Ctrl-C (SIGINT) stops it even when it was started as a script's background job, which
    # inherits SIGINT ignored: as the scanner does, the command says how it is stopped
    restore = _stop_on_ctrl_c()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        restore()
    return 0


def _stop_on_ctrl_c() -> Callable[[], None]:
    """Make SIGINT raise KeyboardInterrupt in this (main) thread; returns what puts the
    previous handler back. Elsewhere than the main thread, signals are not ours to set."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    return lambda: signal.signal(signal.SIGINT, previous)


def _read_iv(value: str) -> float | pd.Series:
    """A constant IV, or an IV series from a CSV file with timestamp,iv columns."""
    import pandas as pd

    try:
        return float(value)
    except ValueError:
        pass
    path = Path(value)
    if not path.exists():
        raise ConfigError(f"--iv {value!r} is neither a number nor an existing file; give e.g. 0.2 or iv.csv")
    try:
        raw = pd.read_csv(path)
        times = pd.DatetimeIndex(pd.to_datetime(raw["timestamp"]))
        return pd.Series(raw["iv"].to_numpy(dtype=float), index=times)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read an IV series ({exc}); write columns timestamp,iv") from None
