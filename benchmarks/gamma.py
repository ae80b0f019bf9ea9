"""Dealer-gamma timing and request budget.

1. The measure (no network): net, calls, puts, 0DTE, walls and the zero-gamma search
   (41 grid spots and 17 more around the crossing, Black-Scholes gamma recomputed per
   contract at each) for 250, 1,000
   and 4,000 contracts; a tenth of them without snapshot gamma (Black-Scholes fallback).
   Baseline in the same process: the same net exposure and zero-gamma search written as
   a plain Python loop over the contracts (math module, one contract at a time).
2. Requests: a 55-scan offline session (2013-10-10 PM, stepped clock, real alpaca-py
   over loopback): requests per scan minute, the gamma chain's and the open-interest
   fetches among them, and the wall time the measure adds to a scan.

    python benchmarks/gamma.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gammaride.config import ET, Settings
from gammaride.journal import Journal
from gammaride.keys import Keys
from gammaride.offline import OfflineAlpaca
from gammaride.rules import blackscholes
from gammaride.rules import gamma as G
from gammaride.scanner.broker import AlpacaBroker
from gammaride.scanner.clock import SteppedClock
from gammaride.scanner.loop import Scanner

NOW = pd.Timestamp("2024-01-04 10:00", tz=ET)
SPOT = 468.0


def contracts(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` contracts: 5 daily expirations x strikes around spot x call/put."""
    rng = np.random.default_rng(seed)
    per = n // 10
    strikes = SPOT + np.arange(per) - per // 2
    exp = pd.bdate_range("2024-01-04", periods=5)
    rows = []
    for e in exp:
        for kind in ("call", "put"):
            for k in strikes:
                rows.append((f"SPY{e:%y%m%d}{kind[0].upper()}{int(k * 1000):08d}", e, kind, float(k)))
    frame = pd.DataFrame(rows, columns=["symbol", "expiration", "type", "strike"])
    frame["iv"] = rng.uniform(0.1, 0.3, len(frame))
    years = G.years_to_expiry(frame["expiration"], NOW)
    frame["gamma"] = blackscholes.gamma(SPOT, frame["strike"].to_numpy(), years, frame["iv"].to_numpy())
    frame.loc[rng.random(len(frame)) < 0.1, "gamma"] = np.nan
    frame["open_interest"] = np.round(rng.uniform(0, 20_000, len(frame)))
    return frame[G.GAMMA_COLUMNS]


def loop_measure(frame: pd.DataFrame, spot: float, now: pd.Timestamp, grid_range=0.05, points=58) -> tuple:
    """The baseline: net exposure and the zero-gamma search, one contract at a time."""
    years = G.years_to_expiry(frame["expiration"], now)
    rows = list(zip(frame["type"], frame["strike"], frame["iv"], frame["gamma"], frame["open_interest"], years,
                    strict=True))

    def gamma(s, k, iv, t):
        d1 = (math.log(s / k) + iv * iv * t / 2) / (iv * math.sqrt(t))
        return math.exp(-d1 * d1 / 2) / (math.sqrt(2 * math.pi) * s * iv * math.sqrt(t))

    net = 0.0
    for kind, k, iv, g, oi, t in rows:
        g = g if g == g else gamma(spot, k, iv, t)
        net += (1 if kind == "call" else -1) * oi * g * 100 * spot * spot * 0.01
    profile = []
    grid = [spot * (1 - grid_range + 2 * grid_range * i / (points - 1)) for i in range(points)]
    for s in grid:
        profile.append(sum((1 if kind == "call" else -1) * oi * gamma(s, k, iv, t) * 100 * s * s * 0.01
                           for kind, k, iv, _, oi, t in rows))
    return net, profile


def _median_ms(fn, repeats: int) -> tuple[float, float, float]:
    """Median wall, median CPU and fastest wall milliseconds (on a shared machine the CPU
    time and the fastest run say what the code costs; the median what a scan waits)."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3, min(wall) * 1e3


def bench_measure(repeats: int) -> None:
    for n in (250, 1000, 4000):
        frame = contracts(n)
        G.measure(frame, SPOT, NOW)  # warm the calendar cache
        fast, fast_cpu, best = _median_ms(lambda f=frame: G.measure(f, SPOT, NOW), repeats)
        line = f"measure, {n:,} contracts: median {fast:.2f} ms (CPU {fast_cpu:.2f} ms, fastest {best:.2f} ms)"
        if n == 1000:
            net, _ = loop_measure(frame, SPOT, NOW)
            assert math.isclose(net, G.measure(frame, SPOT, NOW).net, rel_tol=1e-9)
            slow, _, _ = _median_ms(lambda f=frame: loop_measure(f, SPOT, NOW), max(3, repeats // 10))
            line += f", target 10 ms | baseline, plain Python loop: {slow:.0f} ms ({slow / fast:.0f}x)"
        print(line)


def bench_requests() -> None:
    settings = Settings.load(env={})
    with tempfile.TemporaryDirectory() as tmp, \
            OfflineAlpaca(start="2013-10-10 14:59:30", speed=0, seed=7) as srv:
        broker = AlpacaBroker(Keys(srv.key_id, srv.secret_key), url=srv.url, timeout=2, retry_wait=0.01)
        journal = Journal(Path(tmp) / "bench.duckdb")
        sc = Scanner(broker, journal, settings, SteppedClock(srv.advance_to), mode="offline",
                     out=lambda s: None, iv_percentile=0.5)
        spent: list[float] = []
        measure = sc.gamma.measure

        def timed(now, spot):
            t0 = time.perf_counter()
            try:
                return measure(now, spot)
            finally:
                spent.append(time.perf_counter() - t0)

        sc.gamma.measure = timed
        t0 = time.perf_counter()
        sc.run(55)
        wall = time.perf_counter() - t0
        log = list(srv.request_log)
        journal.close()
    gamma_chain = sum(1 for e in log if e["path"].startswith("/v1beta1/options/snapshots/")
                      and e["query"].get("expiration_date_lte") == "2013-10-17")
    oi = sum(1 for e in log if e["path"].startswith("/v2/options/contracts"))
    per_scan = len(log) / 55
    print(f"load average {os.getloadavg()[0]:.1f}; 55-scan offline session: {len(log):,} requests, {per_scan:.1f} per scan minute (limit 200); "
          f"gamma chain {gamma_chain} ({gamma_chain / 55:.1f} a minute), open interest {oi} fetch")
    print(f"  gamma measure per scan, chain + open interest over loopback: median "
          f"{statistics.median(spent) * 1e3:.1f} ms of a {wall / 55 * 1e3:.0f} ms scan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    bench_measure(args.repeats)
    bench_requests()


if __name__ == "__main__":
    main()
