"""The pre-run checklist: one ✓/✗ line each for keys set and real, paper account,
balance, market open, inside a hedging window, data reachable and fresh, and the exit
phase in force. Exit code 0 when every line is ✓. Secrets are never shown; the key id
is masked.

Example: gammaride check --offline
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gammaride.commands._common import add_journal_argument, calibration_path, load_policy
from gammaride.config import Settings
from gammaride.errors import GammarideError

if TYPE_CHECKING:
    from gammaride.connection import Connection

# the built-in offline server's market time for a check: a session with fresh bars, inside
# the AM hedging window, so every line of a healthy setup is a check mark
CHECK_START = "2013-10-07 10:05"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--offline", action="store_true", help="check against the built-in offline server")
    parser.add_argument("--start", default=None,
                        help=f"offline market time (ET; default {CHECK_START}, inside the AM window)")
    parser.add_argument("--url", default=None, help="an offline server started with 'gammaride serve' on this machine (loopback only)")
    parser.add_argument("--live", action="store_true", help="check the live account instead of paper")
    add_journal_argument(parser)
    parser.add_argument("--calibration", default=None, metavar="PATH", help="Phase 2 exits file")
    parser.add_argument("--config", default=None, metavar="TOML", help="settings file")


def checklist(conn: Connection, settings: Settings, policy_message: str) -> list[tuple[bool, str]]:
    """(ok, text) per check, in the seed's order. Never raises on a broker failure."""
    import pandas as pd

    from gammaride.rules.session import classify_window, session_close_minutes

    lines: list[tuple[bool, str]] = []
    b = conn.broker
    account, failure = None, None
    try:
        account = b.account()
    except GammarideError as exc:
        failure = exc
    refused = getattr(failure, "status", None) in (401, 403)
    if failure is None:
        lines.append((True, f"keys set and real (key {b.key_id_masked})"))
    elif refused:
        lines.append((False, f"keys refused by the broker (key {b.key_id_masked}): check they are this account's keys"))
    else:  # the account call failed otherwise: the keys are unproven, not real
        lines.append((False, f"keys not verified (key {b.key_id_masked}): the account call failed ({failure})"))
    lines.append((conn.mode != "live", {"paper": "paper account", "offline": "offline server (no real orders)",
                                        "live": "LIVE account: real money"}[conn.mode]))
    if account is not None:
        lines.append((account.equity > 0, f"balance ${account.equity:,.2f} (options buying power "
                                          f"${account.options_buying_power:,.2f}, options level {account.options_level})"))
    else:
        lines.append((False, f"balance unavailable ({failure})"))
    try:
        mc = b.clock()
        now = mc.timestamp
        lines.append((mc.is_open, f"market open ({now:%Y-%m-%d %H:%M} ET)" if mc.is_open else
                      f"market closed (opens {mc.next_open:%Y-%m-%d %H:%M} ET)"))
        minute = now.hour * 60 + now.minute
        close = session_close_minutes(pd.DatetimeIndex([pd.Timestamp(now.date())]))
        inside, name = classify_window(settings, [minute], close)
        windows = f"AM {settings.am_start}-{settings.am_end}, PM {settings.pm_start}-{settings.pm_end}"
        lines.append((bool(inside[0]) and mc.is_open,
                      f"in the {name[0].upper()} hedging window" if inside[0] else f"outside the hedging windows ({windows})"))
        bars = b.bars(settings.symbol, now - pd.Timedelta(days=5), now)
        bars = bars[bars.index + pd.Timedelta(minutes=1) <= now]
        if bars.empty:
            lines.append((False, f"data reachable but no {settings.symbol} bars ({settings.feed} feed)"))
        else:
            age = (now - bars.index[-1] - pd.Timedelta(minutes=1)).total_seconds() / 60
            fresh = age <= settings.stale_after_minutes
            last_end = bars.index[-1] + pd.Timedelta(minutes=1)
            lines.append((fresh, f"data reachable: {len(bars)} bars, latest ended {age:.1f} min ago" if fresh
                          else f"data reachable but stale: the latest bar ended {last_end:%Y-%m-%d %H:%M} ET"
                               + (", none of today yet" if last_end.date() < now.date() else "")))
    except GammarideError as exc:
        refused = getattr(exc, "status", None) in (401, 403)
        lines.append((False, f"market data {'refused' if refused else 'unreachable'} ({exc})"))
    lines.append((not policy_message.startswith("WARNING"), f"exit phase: {policy_message}"))
    return lines


def run(args: argparse.Namespace) -> int:
    from gammaride.commands._common import journal_path
    from gammaride.connection import connect
    from gammaride.keys import find_keys

    settings = Settings.load(args.config)
    keys = None
    if not args.offline:
        try:
            keys = find_keys()
        except GammarideError as exc:
            print(f"✗ keys set and real: {exc}")
            return 1
        if keys is None:
            print("✗ keys set and real: no ALPACA_API_KEY/ALPACA_SECRET_KEY (checking the offline server instead)")
    conn = connect(keys, settings=settings, offline=args.offline or keys is None, live=args.live,
                   url=args.url, start=args.start or CHECK_START, speed=0)
    with conn:
        _, message = load_policy(calibration_path(args, journal_path(args)), settings)
        lines = checklist(conn, settings, message)
    if keys is None and not args.offline:
        lines[0] = (False, lines[0][1] + " [offline server's keys]")
    for ok, text in lines:
        print(f"{'✓' if ok else '✗'} {text}")
    return 0 if all(ok for ok, _ in lines) else 1
