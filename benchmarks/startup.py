"""Start-up time of the ``gammaride`` command: ``--version`` and ``COMMAND --help`` as fresh
processes (what a trader waits for before anything happens), against a bare interpreter
start in the same run, plus the top import offenders of one command line from
``python -X importtime``. Then the floor under every command that works on data: importing
the libraries it needs (pandas, which loads numpy and pyarrow, and DuckDB), and the
interpreter's exit after them, plain and after ``gc.freeze()`` as ``gammaride.cli.run``
does.

    python benchmarks/startup.py [--repeats 9] [--top 8] [--profile "calibrate --help"]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

from gammaride.cli import COMMANDS

TARGET_S = 0.25
GAMMARIDE = [sys.executable, "-m", "gammaride"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_seconds(cmd: list[str], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``cmd`` as a fresh process (one warm-up run first);
    CPU moves less than wall when the machine is shared."""
    subprocess.run(cmd, capture_output=True, check=True)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), children_cpu()
        subprocess.run(cmd, capture_output=True, check=True)
        walls.append(time.perf_counter() - wall)
        cpus.append(children_cpu() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def import_offenders(argv: list[str], top: int) -> list[tuple[float, float, str]]:
    """(cumulative ms, self ms, module) of the slowest imports, from ``-X importtime``."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "gammaride", *argv],
                          capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
        rows.append((int(cumulative) / 1000, int(own) / 1000, name.strip()))
    return sorted(rows, reverse=True)[:top]


# the CPU clock after the imports; the rest of the child's CPU is start-up before them and exit
_FLOOR = """
import time
import pandas, duckdb
imported = time.process_time()
{freeze}
print(imported)
"""


def library_floor(repeats: int) -> dict[str, tuple[float, float]]:
    """Median CPU seconds (imports, exit) of a fresh process that imports pandas and DuckDB
    and ends, with the interpreter's final collection (plain) and without it (frozen);
    the two take turns."""
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "frozen": []}
    for _ in range(repeats):
        for kind, freeze in (("plain", ""), ("frozen", "import gc; gc.freeze()")):
            cpu = children_cpu()
            done = subprocess.run([sys.executable, "-c", _FLOOR.format(freeze=freeze)],
                                  capture_output=True, text=True, check=True)
            total, imported = children_cpu() - cpu, float(done.stdout)
            runs[kind].append((imported, total - imported))
    return {kind: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
            for kind, rs in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--profile", default="calibrate --help", help="command line to profile")
    args = parser.parse_args()

    bare, bare_cpu = median_seconds([sys.executable, "-c", "pass"], args.repeats)
    print(f"bare interpreter start: median {bare:.3f} s wall, {bare_cpu:.3f} s CPU "
          f"({args.repeats} fresh processes each)")
    lines = [["--version"], ["--help"], *([name, "--help"] for name, _, _ in COMMANDS)]
    worst = worst_cpu = 0.0
    for argv in lines:
        s, cpu = median_seconds([*GAMMARIDE, *argv], args.repeats)
        worst, worst_cpu = max(worst, s), max(worst_cpu, cpu)
        print(f"gammaride {' '.join(argv):<18} median {s:.3f} s wall ({s / bare:.1f}x bare), {cpu:.3f} s CPU")
    # wall time includes waiting for a core: on a shared machine CPU time is the steadier measure
    for what, value in (("wall", worst), ("CPU", worst_cpu)):
        verdict = "within" if value <= TARGET_S else "ABOVE"
        print(f"slowest: {value:.3f} s {what}, {verdict} the {TARGET_S} s target")
    print(f"load average while measured: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    floor = library_floor(args.repeats)
    (imports, plain_exit), (_, frozen_exit) = floor["plain"], floor["frozen"]
    print(f"\nimporting pandas (with numpy and pyarrow) and DuckDB: median {imports:.2f} s CPU; "
          f"interpreter exit after them {plain_exit:.2f} s CPU, {frozen_exit:.2f} s after gc.freeze() "
          f"({plain_exit / max(frozen_exit, 1e-3):.1f}x less, as gammaride.cli.run ends every command)")
    print(f"\nslowest imports of 'gammaride {args.profile}' (cumulative / self ms):")
    for cumulative, own, name in import_offenders(args.profile.split(), args.top):
        print(f"  {cumulative:8.1f} {own:8.1f}  {name}")


if __name__ == "__main__":
    main()
