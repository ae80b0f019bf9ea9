"""Calibration speed: 10,000 journaled trades with 20-minute paths, end to end.

Builds a synthetic journal (random walks with a small drift that differs by ATR bucket),
then times ``calibrate`` from opening the journal to the written calibration.json, and
the grid re-simulation against a baseline that calls the exit rules once per grid point.
Prints medians. Run: python benchmarks/calibrate.py [--trades 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from gammaride.calibration import (
    SL_GRID,
    TP_GRID,
    calibrate,
    simulate_grid,
    trade_paths_from_frames,
)
from gammaride.calibration.grid import simulate_one
from gammaride.config import Settings
from gammaride.journal import Journal
from gammaride.sim.synthetic import journal_frames, write_journal

HOLD = 20


def build_journal(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    atr = rng.choice([0.06, 0.11, 0.2], n) * rng.uniform(0.8, 1.2, n)
    drift = np.where(atr < 0.08, 0.08, np.where(atr < 0.15, 0.03, -0.02))[:, None]
    sub = 10
    steps = drift / sub + 0.6 * rng.standard_normal((n, HOLD * sub)) / np.sqrt(sub)
    w = np.cumsum(steps, axis=1).reshape(n, HOLD, sub)
    o = np.concatenate([np.zeros((n, 1)), w[:, :-1, -1]], axis=1)
    h, lo, c = np.maximum(w.max(2), o), np.minimum(w.min(2), o), w[:, :, -1]
    sign = rng.choice([1.0, -1.0], n)
    entry = rng.uniform(400, 480, n)
    trades, paths = journal_frames(o, h, lo, c, sign, entry, atr, start="2015-01-02")
    write_journal(path, trades, paths, source="benchmark")


def _time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = Settings.load(env={})
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "bench.duckdb"
        build_journal(journal, args.trades)

        def end_to_end():
            with Journal(journal, read_only=True) as j:
                return calibrate(j, settings, out=Path(tmp) / "calibration.json")

        def read():
            with Journal(journal, read_only=True) as j:
                t = j.trades()
                return trade_paths_from_frames(t, j.trade_paths(t["trade_id"].tolist()))

        total, result = _time(end_to_end, args.repeat)
        t_read, aligned = _time(read, args.repeat)
        t_grid, _ = _time(lambda: simulate_grid(aligned), args.repeat)

        def baseline():  # one evaluate_exits call per (tp, sl) grid point
            return [simulate_one(aligned, tp, sl) for tp in TP_GRID for sl in SL_GRID]

        t_base, _ = _time(baseline, 1)
    points = len(TP_GRID) * len(SL_GRID)
    print(f"calibrate: {args.trades:,} trades x {points} grid points x {HOLD} bars, 2 cores")
    print(
        f"  end to end (journal read -> calibration.json), median of {args.repeat}: {total:.2f} s"
    )
    print(f"    journal read + alignment: {t_read:.2f} s")
    print(f"    grid re-simulation:       {t_grid:.2f} s")
    print(
        f"  baseline grid, one call per grid point (1 run): {t_base:.2f} s "
        f"-> blocked grid is {t_base / t_grid:.1f}x faster"
    )
    print(f"  verdict: {result.verdict[:100]}...")


if __name__ == "__main__":
    main()
