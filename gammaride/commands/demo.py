"""A tour with no keys and no network: replay the bundled real SPY sessions into a
fresh demo journal and show what it holds.

Everything goes to a folder (default ./gammaride-demo) that the demo empties first.

Example: gammaride demo --out gammaride-demo
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from gammaride.config import Settings
from gammaride.journal import Journal
from gammaride.sim.data import sample_bars
from gammaride.sim.replay import IVChoice, run_replay


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="gammaride-demo", metavar="DIR", help="demo folder")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    journal_path = out / "journal.duckdb"
    settings = Settings.load(env={})
    print(f"gammaride demo: offline, no keys; writing to {out}/")
    print("\n== Replay: the rules over the 7 bundled real SPY sessions ==")
    bars = sample_bars()
    with Journal(journal_path) as journal:
        run_id, result = run_replay(journal, bars, settings, iv=IVChoice(), source="bundled sample")
        s = result.summary()
        print(f"  {s['bars']:,} scans, {s['in_window']:,} in window, {s['signals']} signals, {s['trades']} trades")
        if s["trades"]:
            print(f"  win rate {s['win_rate']:.1%}, average {s['avg_r']:+.2f} R")
        summary = journal.summary()
    print(f"\nJournal: {journal_path} ({summary['scans']:,} scans, {summary['trades']} trades)")
    print(f"Done in {time.perf_counter() - started:.1f} s. Next: gammaride journal --journal {journal_path}")
    return 0
