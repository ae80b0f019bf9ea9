"""Live scan timing: decision time, full scan time against the offline server, start jitter.

1. Decision (no network): what a scan computes once its data is in: signals on the last
   400 bars (last row), exit levels and the contract choice from a 70-contract chain.
   Baseline in the same process: the same decision on the whole 2,730-bar history.
2. Full scan against the offline server on loopback (stepped clock, 55 scans of the
   2013-10-10 PM session, 5 entries): broker clock, bars, option chain, IV record,
   decision, orders when a signal fires, and each scan's journal commit (DuckDB file).
3. Start jitter over 55 scans at ``--speed`` market seconds per real second: the broker
   clock at each scan's start minus its target (minute + 5 s), in market seconds; the
   same figure divided by the speed is the real-time jitter a 1x session would see from
   the sleeping and request latency alone.

    python benchmarks/scan.py [--speed 60] [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gammaride.config import Settings
from gammaride.data.bars import sample_bars
from gammaride.journal import Journal
from gammaride.keys import Keys
from gammaride.rules.contracts import choose_contract, occ_symbol
from gammaride.rules.setup import ExitPolicy, exit_levels
from gammaride.rules.signals import compute_signals
from gammaride.scanner.broker import AlpacaBroker
from gammaride.scanner.clock import ScaledClock, SteppedClock
from gammaride.scanner.loop import Scanner


def _chain(day: pd.Timestamp, price: float) -> pd.DataFrame:
    rows = []
    for exp in (day, day + pd.Timedelta(days=1)):
        for kind in ("call", "put"):
            for k in np.arange(round(price) - 8, round(price) + 9, 1.0):
                mid = max(0.02, 1.0 - 0.3 * abs(k - price))
                rows.append((occ_symbol("SPY", exp, kind, k), exp, kind, k, mid * 0.985, mid * 1.015, 0.2, 0.5))
    return pd.DataFrame(rows, columns=["symbol", "expiration", "type", "strike", "bid", "ask", "iv", "delta"])


def decide(window: pd.DataFrame, settings: Settings, policy: ExitPolicy, chain: pd.DataFrame) -> object:
    sig = compute_signals(window, settings, 0.5).iloc[-1]
    direction = sig["direction"] if isinstance(sig["direction"], str) else "call"
    tp_mult, sl_mult, _ = policy.lookup(sig["atr"])
    exit_levels(direction, sig["price"], sig["atr"], tp_mult, sl_mult)
    return choose_contract(chain, direction, sig["price"], window.index[-1] + pd.Timedelta(minutes=1), settings)


def bench_decision(repeats: int) -> tuple[list[float], list[float]]:
    bars = sample_bars()
    settings = Settings.load(env={})
    policy = ExitPolicy.phase1(settings)
    ends = np.linspace(1200, len(bars) - 1, 55).astype(int)
    window_ms, full_ms = [], []
    for r in range(repeats):
        end = int(ends[r % len(ends)])
        chain = _chain(pd.Timestamp(bars.index[end].date()), float(bars["close"].iloc[end]))
        t0 = time.perf_counter()
        decide(bars.iloc[end - 399: end + 1], settings, policy, chain)
        window_ms.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        decide(bars.iloc[: end + 1], settings, policy, chain)
        full_ms.append((time.perf_counter() - t0) * 1e3)
    return window_ms, full_ms


def session(speed: float, start: str, scans: int) -> Scanner:
    from gammaride.offline import OfflineAlpaca

    settings = Settings.load(env={})
    with tempfile.TemporaryDirectory() as tmp, OfflineAlpaca(start=start, speed=speed) as srv:
        broker = AlpacaBroker(Keys(srv.key_id, srv.secret_key), url=srv.url, timeout=5.0, retry_wait=0.05)
        clock = SteppedClock(srv.advance_to) if speed == 0 else ScaledClock(speed)
        with Journal(Path(tmp) / "bench.duckdb") as journal:
            sc = Scanner(broker, journal, settings, clock, mode="offline", iv_percentile=0.5, out=lambda s: None)
            sc.run(scans)
    return sc


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed", type=float, default=60.0, help="market seconds per real second for jitter")
    ap.add_argument("--repeats", type=int, default=200, help="decisions timed")
    args = ap.parse_args()

    window_ms, full_ms = bench_decision(args.repeats)
    med_w, med_f = statistics.median(window_ms), statistics.median(full_ms)
    print(f"decision per scan (400-bar window, no network): median {med_w:.2f} ms, p99 {_p(window_ms, 99):.2f} ms")
    print(f"  baseline, same decision on the full 2,730-bar history: median {med_f:.2f} ms "
          f"(window/full = {med_w / med_f:.2f}x)")

    sc = session(0.0, "2013-10-10 14:59:30", 55)
    scan_ms = [o.seconds * 1e3 for o in sc.outcomes]
    quiet = [o.seconds * 1e3 for o in sc.outcomes if o.row.get("trade_id") is None]
    print(f"full scan vs offline server (loopback, 55 scans, {sc.stats.entries} entries): median "
          f"{statistics.median(scan_ms):.1f} ms, p99 {_p(scan_ms, 99):.1f} ms; "
          f"scans without an entry: median {statistics.median(quiet):.1f} ms")

    t0 = time.perf_counter()
    sc = session(args.speed, "2013-10-07 10:59:30", 55)
    wall = time.perf_counter() - t0
    jit = np.array([o.jitter_s for o in sc.outcomes])
    print(f"scan start jitter at {args.speed:g}x over {len(jit)} scans ({wall:.1f} s real): median "
          f"{np.median(jit):.3f} market s, max |jitter| {np.max(np.abs(jit)):.3f} market s "
          f"= {np.max(np.abs(jit)) / args.speed * 1e3:.1f} ms real")


if __name__ == "__main__":
    main()
