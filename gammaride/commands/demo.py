"""The whole product in under a minute, with no keys and no network.

1. A short scanner session against the built-in offline Alpaca (real SPY bars of
   2013-10-07, simulated clock), printing the real scan lines and trading its signal.
2. A replay of the seven bundled real SPY sessions through the same rules.
3. A priced replay of history: the offline server's simulated SPY history is fetched
   through alpaca-py into the history cache (as 'gammaride fetch' does from Alpaca) and
   replayed with every trade priced from its option's own minute bars, net of costs.
4. Calibration of Phase 2 exits from that journal (a demo journal is far too small to
   trust, and the demo says so; below 50 trades it lowers the bar to show the method).
5. The HTML win-rate report, written to disk.

Everything goes to one folder (default ./gammaride-demo). A rerun replaces the demo's own
files there (journal, calibration, report), reuses its history cache and touches nothing else.

Example: gammaride demo --out gammaride-demo
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gammaride.config import Settings
from gammaride.errors import CalibrationError, ConfigError

if TYPE_CHECKING:
    from gammaride.journal import Journal

SCAN_START = "2013-10-07 09:57"  # ten minutes before a real volume spike
DEMO_SCANS = 20
DEMO_MIN_TRADES = 20
BANNER = "!" * 78


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="gammaride-demo", metavar="DIR", help="demo folder")
    parser.add_argument("--scans", type=int, default=DEMO_SCANS, help="offline scans to run")


def run(args: argparse.Namespace) -> int:
    from gammaride.journal import Journal

    started = time.perf_counter()
    out = Path(args.out)
    _clear_demo_files(out)
    journal_path = out / "journal.duckdb"
    settings = Settings.load(env={})
    print(f"gammaride demo: no keys, no network. Everything is written to {out}/\n")
    with Journal(journal_path) as journal:
        _offline_scan(journal, settings, args.scans)
        _replay(journal, settings)
        _priced_replay(journal, settings, out)
        _calibrate(journal, settings, out)
        report = _report(journal, out)
    print(f"\nDone in {time.perf_counter() - started:.0f} s.")
    print(f"  journal  {journal_path}   (gammaride journal --journal {journal_path})")
    print(f"  report   {report}")
    print("Next: set ALPACA_API_KEY / ALPACA_SECRET_KEY (paper account) and run "
          "'gammaride check', then 'gammaride scan'.")
    return 0


DEMO_FILES = ("journal.duckdb", "journal.duckdb.wal", "calibration.json", "report.html")


def _clear_demo_files(out: Path) -> None:
    """Remove what an earlier demo wrote; never anything else."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the demo")
    out.mkdir(parents=True, exist_ok=True)
    for name in DEMO_FILES:
        (out / name).unlink(missing_ok=True)


def _heading(text: str) -> None:
    print(f"== {text} ==")


def _offline_scan(journal: Journal, settings: Settings, scans: int) -> None:
    from gammaride.connection import connect

    _heading(f"1. Scanner: {scans} scans against the offline Alpaca, SPY on {SCAN_START[:10]}")
    with connect(offline=True, speed=0, start=SCAN_START, settings=settings) as conn:
        for note in conn.notes:
            print(note)
        conn.scanner(journal, source="demo: offline server").run(scans)
    print()


def _replay(journal: Journal, settings: Settings) -> None:
    from gammaride.data.bars import sample_bars
    from gammaride.replay.engine import IVChoice, run_replay

    _heading("2. Replay: the same rules over 7 real SPY sessions (2013 and 2023)")
    bars = sample_bars()
    _, result = run_replay(journal, bars, settings, iv=IVChoice(), source="bundled sample")
    s = result.summary()
    print(f"{s['bars']:,} scans, {s['in_window']:,} in a hedging window, {s['signals']} signals, "
          f"{s['trades']} trades")
    from gammaride.commands.replay import pnl_lines

    print(pnl_lines(s, settings))
    print()


# Simulated history: daily bars every session (the IV proxy's year of lookback), minute
# bars every 5th session so the demo stays quick.
HISTORY = {"start": "2023-01-03", "end": "2024-04-30", "every": 5}
PRICED_SPAN = ("2024-02-01", "2024-04-30")


def _priced_replay(journal: Journal, settings: Settings, out: Path) -> None:
    from gammaride.commands.replay import pnl_lines
    from gammaride.data.cache import BarCache
    from gammaride.data.fetch import Fetcher
    from gammaride.data.history import load_history
    from gammaride.offline import OfflineAlpaca
    from gammaride.offline.history import History
    from gammaride.replay.engine import IVChoice, run_replay
    from gammaride.replay.pricing import CachedOptionBars, OptionPricer

    start, end = PRICED_SPAN
    _heading(f"3. Priced replay: SPY history {start} .. {end} from the offline server, option bars included")
    with OfflineAlpaca(start="2026-11-30 12:00", speed=0, history=History(**HISTORY)) as srv:
        fetcher = Fetcher(BarCache(out / "history"), srv.key_id, srv.secret_key, url=srv.url, quiet=True)
        history = load_history(fetcher, settings.symbol, start, end)
        pricer = OptionPricer(CachedOptionBars(fetcher.cache, fetcher), history.daily)
        _, result = run_replay(journal, history.bars, settings, iv=IVChoice("proxy", daily=history.daily),
                               source="demo: offline server history", pricer=pricer)
    s = result.summary()
    print(f"{len(history.bars):,} minute bars ({len(set(history.bars.index.date))} sessions), "
          f"{s['trades']} trades, {fetcher.stats.requests} requests to the server "
          f"(cache {fetcher.cache.root})")
    print(pnl_lines(s, settings))
    print()


def _calibrate(journal: Journal, settings: Settings, out: Path) -> None:
    from gammaride.calibration import calibrate
    from gammaride.commands.calibrate import format_result

    _heading("4. Calibration of Phase 2 exits")
    n = len(journal.trades(closed_only=True))
    print(BANNER)
    if n < 50:
        print(f"The demo journal holds {n} closed trades; calibration needs 50. The demo lowers")
        print(f"the bar to {DEMO_MIN_TRADES} to show the method. Do not trade on a calibration this small.")
    else:
        print(f"The demo journal holds {n} closed trades from a handful of sessions: enough for the")
        print("50 calibration needs, far too few to trust. Do not trade on a calibration this small.")
    print(BANNER)
    try:
        result = calibrate(journal, settings, min_trades=DEMO_MIN_TRADES, out=out / "calibration.json")
    except CalibrationError as exc:
        print(f"calibration declined: {exc}\n")
        return
    print(format_result(result, journal.path))
    print()


def _report(journal: Journal, out: Path) -> Path:
    from gammaride.reports import ReportFilters, headline_text, write_report

    _heading("5. Report")
    path, data = write_report(
        journal, out / "report.html", ReportFilters(calibration=out / "calibration.json")
    )
    print(headline_text(data))
    print(f"wrote {path.resolve()}  (open it in a browser)")
    return path
