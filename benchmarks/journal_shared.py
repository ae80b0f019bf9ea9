"""What holding the journal only while writing costs a scan, and what a reader's copy costs.

A running scanner opens its journal ``shared`` so report/journal/calibrate can read it:
each scan's transaction opens and closes the file. Measured: the median time of one
scan's write (one scan row, one IV observation, one query) with the file held for the
whole run (baseline) and shared; and the time a reader takes to copy the journal into
memory, on a journal of ``--scans`` rows.

    python benchmarks/journal_shared.py [--scans 20000] [--writes 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from gammaride.journal import Journal

ET = "America/New_York"


def _one_scan(j: Journal, run_id: int, n: int) -> None:
    now = pd.Timestamp("2024-03-05 10:00", tz=ET) + pd.Timedelta(minutes=n)
    j.query("SELECT count(*) AS n FROM trades")
    with j.transaction():
        j.write_scan({"run_id": run_id, "scan_no": n, "decision_time": now, "scanned_at": now,
                      "symbol": "SPY", "in_window": True, "signal": False, "skip_reason": "volume 1.1x < 2.0x"})
        j.record_iv(now, "SPY", 0.2, "snapshot", "SPY240305C00512000", now.normalize(), 512.0, "0dte")


def _writes(path: Path, shared: bool, writes: int) -> list[float]:
    j = Journal(path, shared=shared)
    run_id = j.start_run("paper", "SPY")
    out = []
    for n in range(writes):
        t = time.perf_counter()
        _one_scan(j, run_id, n)
        out.append(time.perf_counter() - t)
    j.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scans", type=int, default=20_000)
    ap.add_argument("--writes", type=int, default=50)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.duckdb"
        with Journal(path) as j:
            run_id = j.start_run("replay", "SPY")
            times = pd.date_range("2024-01-02 09:30", periods=a.scans, freq="min", tz=ET)
            j.write_scans(pd.DataFrame({"run_id": run_id, "scan_no": range(a.scans), "decision_time": times,
                                        "scanned_at": times, "symbol": "SPY", "in_window": True,
                                        "signal": False, "skip_reason": "outside window"}))
        held = statistics.median(_writes(path, False, a.writes))
        shared = statistics.median(_writes(path, True, a.writes))
        copies = []
        for _ in range(5):
            t = time.perf_counter()
            Journal(path, read_only=True).close()
            copies.append(time.perf_counter() - t)
    print(f"journal of {a.scans:,} scans; {a.writes} scan writes each")
    print(f"  scan write, file held:   median {held * 1000:7.1f} ms")
    print(f"  scan write, shared:      median {shared * 1000:7.1f} ms  ({shared / held:.1f}x)")
    print(f"  reader's private copy:  median {statistics.median(copies) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
