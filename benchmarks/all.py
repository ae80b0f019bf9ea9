"""Every benchmark in one run, one after another, so the README's figures come from the same
sitting of the same machine: each script's own output under a heading, with the load
average before it and its wall and CPU time, then (with ``--suite``) the README's test
command, timed the same way. Everything is also written to ``--out``.

    python benchmarks/all.py [--suite] [--out benchmarks/last-run.txt] [--only replay startup]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the order: what the README's speed targets name first, then the rest
SCRIPTS = ["startup", "replay", "report", "scan", "server", "gamma", "journal_shared", "bars_times",
           "calibrate", "history"]
SUITE = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "auto", "--dist", "loadgroup"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(name: str, argv: list[str], out) -> int:
    """Run ``argv`` with its output streamed to the terminal and ``out``; its exit code."""
    head = f"== {name}: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    for stream in (sys.stdout, out):
        print(head, file=stream, flush=True)
    wall, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.Popen(argv, cwd=HERE.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        sys.stdout.write(line)
        out.write(line)
    code = proc.wait()
    tail = (f"== {name}: {time.perf_counter() - wall:.1f} s wall, {children_cpu() - cpu:.1f} s CPU, "
            f"exit {code}\n")
    for stream in (sys.stdout, out):
        print(tail, file=stream, flush=True)
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=SCRIPTS, help="run only these benchmarks")
    parser.add_argument("--suite", action="store_true", help="then time the README's test command")
    parser.add_argument("--out", type=Path, default=HERE / "last-run.txt")
    args = parser.parse_args()
    failed = []
    with args.out.open("w", encoding="utf-8") as out:
        for name in args.only or SCRIPTS:
            if timed(name, [sys.executable, str(HERE / f"{name}.py")], out):
                failed.append(name)
        if args.suite and timed("the test suite: " + " ".join(["python", *SUITE[1:]]), SUITE, out):
            failed.append("suite")
    print(f"written to {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
