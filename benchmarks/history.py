"""Real history: fetching a year of SPY bars, and a priced replay of a cached year.

1. Fetch: the offline server serves a simulated SPY history (every session, 390 minute
   bars each); ``Fetcher.fetch_stock`` downloads 2024 through alpaca-py into a fresh
   cache. Reported: requests sent, wall time, and time net of the rate limit (sleeps for
   the 200/minute pacing and 429 backoff taken out). Baseline: the same span fetched
   again, already cached (no request).
2. Priced replay: the cached year (minute bars, daily bars, the option bars of every
   priced entry, fetched on a first run) replayed with every trade priced from its
   option's bars, journal writes included. Baseline: the delta-estimate replay of the same
   bars in the same process (the rules alone).

    python benchmarks/history.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from gammaride.config import Settings
from gammaride.data.cache import BarCache
from gammaride.data.fetch import Fetcher
from gammaride.data.history import load_history
from gammaride.journal import Journal
from gammaride.offline import OfflineAlpaca
from gammaride.offline.history import History
from gammaride.replay.engine import IVChoice, run_replay
from gammaride.replay.pricing import CachedOptionBars, OptionPricer

SPAN = ("2024-01-01", "2024-12-31")


def fetch_year(srv: OfflineAlpaca, root: Path) -> tuple[float, float, int, int]:
    fetcher = Fetcher(BarCache(root), srv.key_id, srv.secret_key, url=srv.url, quiet=True)
    start = time.perf_counter()
    stats = fetcher.fetch_stock("SPY", *SPAN)
    wall = time.perf_counter() - start
    return wall, wall - fetcher.limiter.waited - stats.backoff_seconds, stats.requests, stats.bars


def priced_replay(srv: OfflineAlpaca, root: Path, journal: Path, settings: Settings, priced: bool):
    fetcher = Fetcher(BarCache(root), srv.key_id, srv.secret_key, url=srv.url, quiet=True)
    start = time.perf_counter()
    history = load_history(fetcher, "SPY", *SPAN)
    pricer = OptionPricer(CachedOptionBars(fetcher.cache, fetcher), history.daily) if priced else None
    with Journal(journal) as j:
        _, result = run_replay(j, history.bars, settings, iv=IVChoice("proxy", daily=history.daily),
                               pricer=pricer)
    return time.perf_counter() - start, fetcher.stats.requests, len(history.bars), result.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = Settings.load(env={})
    with OfflineAlpaca(start="2026-11-30 12:00", speed=0, history=History(start="2023-01-03", end="2024-12-31")) as srv, \
            tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = [fetch_year(srv, tmp / f"cache{k}") for k in range(args.repeats)]
        again = [fetch_year(srv, tmp / "cache0") for _ in range(args.repeats)]
        wall = statistics.median(r[0] for r in runs)
        net = statistics.median(r[1] for r in runs)
        print(f"fetch {SPAN[0]} .. {SPAN[1]}: {runs[0][3]:,} bars in {runs[0][2]} requests; "
              f"median {wall:.2f} s wall, {net:.2f} s net of the rate limit; runs "
              f"{', '.join(f'{r[0]:.2f}' for r in runs)}")
        print(f"  again, cached: {again[0][2]} requests, median {statistics.median(r[0] for r in again) * 1000:.0f} ms")

        first = priced_replay(srv, tmp / "cache0", tmp / "first.duckdb", settings, True)
        print(f"priced replay, first run (option bars fetched): {first[0]:.2f} s, {first[1]} requests, "
              f"{first[3]['trades']} trades, priced by {first[3]['pnl_sources']}")
        priced = [priced_replay(srv, tmp / "cache0", tmp / f"p{k}.duckdb", settings, True) for k in range(args.repeats)]
        plain = [priced_replay(srv, tmp / "cache0", tmp / f"d{k}.duckdb", settings, False) for k in range(args.repeats)]
        p, d = statistics.median(r[0] for r in priced), statistics.median(r[0] for r in plain)
        bars = priced[0][2]
        print(f"priced replay of the cached year ({bars:,} bars, {priced[0][1]} requests): median {p:.2f} s "
              f"({bars / p:,.0f} bars/s)")
        print(f"delta-estimate replay of the same bars (rules + journal, cache read): median {d:.2f} s "
              f"({bars / d:,.0f} bars/s)")
        print(f"ratio priced / delta estimate: {p / d:.2f}x")


if __name__ == "__main__":
    main()
