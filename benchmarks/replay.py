"""Replay, the whole job: a bars CSV in, signals, trades, one DuckDB journal row per bar out.

The reference is a minimal implementation of the same job in this file (pandas CSV read
with one ISO-8601 parse, the same gates as vectorized numpy, a loop over signals for
one-position-at-a-time exits, one DuckDB row per bar and per trade); it skips what
gammaride adds (early closes, the risk gates and sizing, trade paths, runs and
migrations). Both run in this process on the same file; figures are medians.

Then, as fresh processes: ``gammaride replay YEAR.csv`` end to end (imports, exit and
all), and the same job on ``--years`` years to show time and memory grow linearly
(memory: the peak resident size of the process, per bar, beyond the one-year run's).

The years are built from the seven bundled real sessions: their minute returns and
volumes are replayed in turn onto every NYSE session (390 bars each), prices chained so
the series is continuous, timestamps written as Alpaca exports them (ISO with offset).

    python benchmarks/replay.py [--repeats 5] [--years 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from gammaride.config import ET, Settings
from gammaride.data.bars import load_bars, sample_bars
from gammaride.journal import Journal
from gammaride.journal.schema import MIGRATIONS, SCAN_COLUMNS
from gammaride.replay.engine import IVChoice, replay, run_replay
from gammaride.rules.session import session_table
from gammaride.rules.setup import ExitPolicy

IV = 0.4
TARGETS = {"ratio": 1.3, "cli_s": 1.0, "kb_per_bar": 1.0}


# -- data ------------------------------------------------------------------------------
def write_years(path: Path, last_year: int, years: int) -> int:
    """Write ``years`` years of 1-minute bars ending with ``last_year`` as CSV; bar count."""
    sample = sample_bars()
    days = [g for _, g in sample.groupby(sample.index.date)]
    sessions, _, close = session_table()
    span = (sessions >= np.datetime64(f"{last_year - years + 1}-01-01")) & (
        sessions <= np.datetime64(f"{last_year}-12-31")) & (close == 16 * 60)
    dates = pd.DatetimeIndex(sessions[span])
    minutes = pd.timedelta_range("09:30:00", periods=390, freq="min")
    stamps = (dates.repeat(390) + np.tile(minutes, len(dates))).tz_localize(ET)
    rel = np.concatenate([days[k % len(days)][["open", "high", "low", "close"]].to_numpy()
                          / days[k % len(days)]["open"].iloc[0] for k in range(len(dates))])
    day_ret = np.array([d["close"].iloc[-1] / d["open"].iloc[0] for d in days])
    level = 100.0 * np.cumprod(np.concatenate([[1.0], day_ret[np.arange(len(dates) - 1) % len(days)]]))
    prices = rel * np.repeat(level, 390)[:, None]
    volume = np.concatenate([days[k % len(days)]["volume"].to_numpy() for k in range(len(dates))])
    text = stamps.strftime("%Y-%m-%dT%H:%M:%S%z")
    frame = pd.DataFrame({"timestamp": text.str[:-2] + ":" + text.str[-2:],
                          "open": prices[:, 0], "high": prices[:, 1], "low": prices[:, 2],
                          "close": prices[:, 3], "volume": volume})
    con = duckdb.connect()
    con.register("bars", frame)
    con.execute(f"COPY (SELECT timestamp, round(open, 4) AS open, round(high, 4) AS high, "
                f"round(low, 4) AS low, round(close, 4) AS close, volume FROM bars) "
                f"TO '{path}' (HEADER, DELIMITER ',')")
    con.close()
    return len(frame)


# -- the reference: the same job, minimal ---------------------------------------------
def reference_job(csv: Path, db: Path, s: Settings) -> int:
    raw = pd.read_csv(csv)
    idx = pd.DatetimeIndex(pd.to_datetime(raw["timestamp"], format="ISO8601", utc=True)).tz_convert(ET)
    minute = np.asarray(idx.hour * 60 + idx.minute)
    keep = (minute >= 570) & (minute < 960)
    idx, minute = idx[keep], minute[keep]
    o, h, lo, c, v = (raw[k].to_numpy(dtype=float)[keep] for k in ("open", "high", "low", "close", "volume"))
    n = len(c)
    dm = minute + 1
    in_window = ((dm >= 575) & (dm < 630)) | ((dm >= 900) & (dm < 955))
    lb, k = s.vol_lookback, s.direction_lookback
    csum = np.concatenate([[0.0], np.cumsum(v)])
    avg = np.full(n, np.nan)
    avg[lb:] = (csum[lb:n] - csum[: n - lb]) / lb
    ratio = v / avg
    spike = ratio >= s.volume_threshold
    change = np.full(n, np.nan)
    change[k:] = c[k:] - c[:-k]
    prev = np.concatenate([[np.nan], c[:-1]])
    tr = np.fmax(h - lo, np.fmax(np.abs(h - prev), np.abs(lo - prev)))
    atr = np.full(n, np.nan)
    seeded = tr[s.atr_period - 1:].copy()
    seeded[0] = tr[: s.atr_period].mean()
    atr[s.atr_period - 1:] = pd.Series(seeded).ewm(alpha=1 / s.atr_period, adjust=False).mean().to_numpy()
    warm = np.isfinite(avg) & np.isfinite(atr) & np.isfinite(change)
    iv_ok = np.full(n, IV >= s.iv_threshold)
    signal = in_window & warm & spike & iv_ok & (change != 0)
    code = np.select([~in_window, ~warm, ~spike, ~iv_ok, ~signal], [1, 2, 3, 4, 5], 0)
    skip = pd.Categorical.from_codes(code, ["", "window", "warmup", "volume", "iv", "direction"])
    day = idx.normalize().asi8
    trade_id = np.zeros(n, dtype=np.int64)
    trades, busy = [], -1
    for i in np.flatnonzero(signal):
        if i <= busy:
            continue
        sign = 1.0 if change[i] > 0 else -1.0
        tp, sl = c[i] + sign * s.tp_mult * atr[i], c[i] - sign * s.sl_mult * atr[i]
        j = np.arange(i + 1, min(i + 1 + s.max_hold_minutes, n))
        j = j[day[j] == day[i]]
        if not len(j):
            continue
        adverse, favourable = (lo, h) if sign > 0 else (h, lo)
        hit_sl = sign * adverse[j] <= sign * sl
        hit_tp = sign * favourable[j] >= sign * tp
        hits = np.flatnonzero(hit_sl | hit_tp)
        e = hits[0] if len(hits) else len(j) - 1
        price = sl if len(hits) and hit_sl[e] else tp if len(hits) else c[j[e]]
        trades.append((len(trades) + 1, idx[i], c[i], idx[j[e]], price, sign * (price - c[i]) * 100))
        trade_id[i], busy = len(trades), j[e]
    scans = pd.DataFrame({
        "scan_no": np.arange(1, n + 1), "decision_time": idx + pd.Timedelta(minutes=1),
        "in_window": in_window, "volume": v, "avg_volume": avg, "vol_ratio": ratio,
        "vol_spike": spike, "price": c, "price_change": change, "atr": atr,
        "iv_percentile": np.full(n, IV), "signal": signal, "skip_code": skip,
        "trade_id": pd.Series(trade_id).where(trade_id > 0).astype("Int64"),
    })
    trade_frame = pd.DataFrame(trades, columns=["trade_id", "entry_time", "entry_price", "exit_time",
                                                "exit_price", "pnl_usd"])
    con = duckdb.connect(str(db))
    con.execute("BEGIN")
    for name, frame in (("scans", scans), ("trades", trade_frame)):
        con.register(f"_in_{name}", frame)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _in_{name}")
        con.unregister(f"_in_{name}")
    con.execute("COMMIT")
    con.close()
    return n


# -- gammaride's job --------------------------------------------------------------------
def gammaride_job(csv: Path, db: Path, s: Settings) -> int:
    bars = load_bars([csv])
    with Journal(db) as journal:
        run_replay(journal, bars, s, ExitPolicy.phase1(s), IVChoice("constant", IV), source=csv.name)
    return len(bars)


def phases(csv: Path, folder: Path, repeats: int, s: Settings) -> dict[str, float]:
    """Median CPU seconds of each part of gammaride's job: load the bars, open a new journal
    (its migrations), the rules alone (``replay``, pure), the journal writes and their commit
    (``run_replay`` less its rules), close."""
    parts: dict[str, list[float]] = {}
    policy, iv = ExitPolicy.phase1(s), IVChoice("constant", IV)
    for k in range(repeats):
        db = folder / f"phases_{k}.duckdb"
        marks = [time.process_time()]
        bars = load_bars([csv])
        marks.append(time.process_time())
        journal = Journal(db)
        marks.append(time.process_time())
        replay(bars, s, policy, iv)
        marks.append(time.process_time())
        run_replay(journal, bars, s, policy, iv, source=csv.name)
        marks.append(time.process_time())
        journal.close()
        marks.append(time.process_time())
        step = np.diff(marks)
        step[3] -= step[2]  # run_replay runs the rules again before it writes
        for name, value in zip(("load bars", "open a new journal", "rules", "journal writes + commit", "close"), step, strict=True):
            parts.setdefault(name, []).append(value)
        db.unlink()
    return {name: statistics.median(values) for name, values in parts.items()}


def scan_write_costs(csv: Path, folder: Path, repeats: int, s: Settings) -> dict[str, float]:
    """Median CPU seconds to write one year's scan rows (one per bar, as replay makes them)
    into a new DuckDB file, appended on one thread as the journal does: the journal's
    ``scans`` table, the same columns without its primary key, a table of only the columns
    replay fills, and of only those not text."""
    scans = replay(load_bars([csv]), s, ExitPolicy.phase1(s), IVChoice("constant", IV)).scans.assign(run_id=1)
    filled = [c for c in SCAN_COLUMNS if c in scans.columns]
    quoted = ", ".join(f'"{c}"' for c in filled)
    numbers = [c for c in filled if not isinstance(scans[c].dtype, pd.CategoricalDtype)]
    quoted_numbers = ", ".join(f'"{c}"' for c in numbers)
    shapes = {
        f"the journal's scans table ({len(SCAN_COLUMNS)} columns, primary key)": "",
        "the same columns, no primary key": "CREATE TABLE keyless AS SELECT * FROM scans LIMIT 0; "
                                            "DROP TABLE scans; ALTER TABLE keyless RENAME TO scans",
        f"only the {len(filled)} columns replay fills, no key": f"CREATE TABLE narrow AS SELECT {quoted} FROM scans "
                                                               "LIMIT 0; DROP TABLE scans; ALTER TABLE narrow RENAME TO scans",
        f"only its {len(numbers)} columns that are not text, no key": f"CREATE TABLE plain AS SELECT {quoted_numbers} "
                                                                   "FROM scans LIMIT 0; DROP TABLE scans; "
                                                                   "ALTER TABLE plain RENAME TO scans",
    }
    out: dict[str, list[float]] = {}
    for _ in range(repeats):
        for shape, sql in shapes.items():
            db = folder / "shape.duckdb"
            con = duckdb.connect(str(db))
            con.execute("BEGIN")
            for _, migrate in MIGRATIONS:
                migrate(con)
            for statement in filter(None, sql.split("; ")):
                con.execute(statement)
            con.execute("COMMIT")
            con.execute("SET threads = 1")  # as the journal appends a frame (Journal._insert_frame)
            cpu = time.process_time()
            con.execute("BEGIN")
            columns = numbers if "not text" in shape else filled
            names = ", ".join(f'"{c}"' for c in columns)
            con.register("incoming", scans[columns])
            con.execute(f"INSERT INTO scans ({names}) SELECT {names} FROM incoming")
            con.execute("COMMIT")
            con.close()
            out.setdefault(shape, []).append(time.process_time() - cpu)
            db.unlink()
    return {shape: statistics.median(values) for shape, values in out.items()}


def timed(jobs: dict, csv: Path, folder: Path, repeats: int, s: Settings) -> tuple[dict, int]:
    """Median wall and CPU seconds (all threads of this process) of each job, and the bars.
    The jobs take turns, run by run, so a change in the shared machine's load falls on both."""
    runs: dict[str, list[tuple[float, float]]] = {tag: [] for tag in jobs}
    n = 0
    for k in range(repeats):
        for tag, job in jobs.items():
            db = folder / f"{tag}_{k}.duckdb"
            wall, cpu = time.perf_counter(), time.process_time()
            n = job(csv, db, s)
            runs[tag].append((time.perf_counter() - wall, time.process_time() - cpu))
            db.unlink()
    return {tag: tuple(statistics.median(r[i] for r in rs) for i in (0, 1)) for tag, rs in runs.items()}, n


def child(warm: Path, csv: Path, db: Path) -> None:
    """In this fresh process: one warm-up job on ``warm`` (lazy imports, caches), then the
    job on ``csv``: its wall and CPU time, and the process's peak memory."""
    s = Settings.load(env={})
    gammaride_job(warm, db.with_suffix(".warm.duckdb"), s)
    wall, cpu = time.perf_counter(), time.process_time()
    n = gammaride_job(csv, db, s)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"bars": n, "seconds": wall, "cpu": cpu, "peak_kb": peak_kb}))


def in_child(warm: Path, csv: Path, db: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(warm), str(csv), str(db)],
                         capture_output=True, text=True, check=True)
    db.unlink(missing_ok=True)
    db.with_suffix(".warm.duckdb").unlink(missing_ok=True)
    return json.loads(out.stdout.splitlines()[-1])


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli_seconds(csv: Path, db: Path, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``gammaride replay CSV`` as a fresh process."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), children_cpu()
        subprocess.run([sys.executable, "-m", "gammaride", "replay", str(csv), "--journal", str(db),
                        "--iv-percentile", str(IV), "--quiet"], check=True, capture_output=True)
        walls.append(time.perf_counter() - wall)
        cpus.append(children_cpu() - cpu)
        db.unlink()
    return statistics.median(walls), statistics.median(cpus)


# the same command line as a fresh process, with its CPU clock read after the imports it
# needs and after the command: the rest of the process's CPU is interpreter start and exit,
# which ends as gammaride.cli.run ends every command (the heap frozen first)
_PARTS = """
import gc, json, sys, time
import gammaride.commands.replay, gammaride.data.bars, gammaride.journal.store, gammaride.replay.engine
imported = time.process_time()
from gammaride.cli import main
code = main(sys.argv[1:])
print(json.dumps({"imports": imported, "job": time.process_time() - imported}))
gc.freeze()
sys.exit(code)
"""


def cli_parts(csv: Path, db: Path, repeats: int) -> dict[str, float]:
    """Median CPU seconds of a fresh ``gammaride replay CSV`` by part: interpreter start and
    the imports, the command itself, interpreter exit (the process's CPU after the command)."""
    parts: dict[str, list[float]] = {}
    for _ in range(repeats):
        cpu = children_cpu()
        done = subprocess.run([sys.executable, "-c", _PARTS, "replay", str(csv), "--journal", str(db),
                               "--iv-percentile", str(IV), "--quiet"], check=True, capture_output=True, text=True)
        total = children_cpu() - cpu
        seen = json.loads(done.stdout.splitlines()[-1])
        for name, value in (("start + imports", seen["imports"]), ("command", seen["job"]),
                            ("exit", total - seen["imports"] - seen["job"])):
            parts.setdefault(name, []).append(value)
        db.unlink()
    return {name: statistics.median(values) for name, values in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--years", type=int, default=20, help="long run for linearity (0: skip)")
    parser.add_argument("--child", nargs=3, metavar=("WARM", "CSV", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*(Path(a) for a in args.child))
        return

    s = Settings.load(env={})
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        year = folder / "year.csv"
        write_years(year, 2023, 1)
        gammaride_job(year, folder / "warm.duckdb", s)  # imports and calendar, once
        reference_job(year, folder / "warm_ref.duckdb", s)
        medians, n = timed({"ref": reference_job, "ours": gammaride_job}, year, folder, args.repeats, s)
        (ref, ref_cpu), (ours, ours_cpu) = medians["ref"], medians["ours"]
        print(f"one year: {n:,} bars; whole job in process, median of {args.repeats} (wall / CPU):")
        print(f"  reference (minimal, this file) {ref:.3f} s / {ref_cpu:.3f} s  {n / ref:,.0f} bars/s")
        print(f"  gammaride                      {ours:.3f} s / {ours_cpu:.3f} s  {n / ours:,.0f} bars/s")
        print(f"  ratio gammaride / reference    {ours / ref:.2f}x wall, {ours_cpu / ref_cpu:.2f}x CPU "
              f"(target <= {TARGETS['ratio']}x)")
        parts = phases(year, folder, args.repeats, s)
        print("  where gammaride's CPU goes: " + " | ".join(f"{k} {v:.3f} s" for k, v in parts.items()))
        print("  writing the year's scan rows into DuckDB (CPU, median):")
        for shape, cpu in scan_write_costs(year, folder, args.repeats, s).items():
            print(f"    {shape:<52} {cpu:.3f} s")
        cli, cli_cpu = cli_seconds(year, folder / "cli.duckdb", max(3, args.repeats // 2))
        print(f"gammaride replay YEAR.csv as a fresh process: median {cli:.2f} s wall, {cli_cpu:.2f} s CPU "
              f"(target <= {TARGETS['cli_s']} s)")
        parts = cli_parts(year, folder / "parts.duckdb", max(3, args.repeats // 2))
        print("  where its CPU goes: " + " | ".join(f"{k} {v:.2f} s" for k, v in parts.items()))
        if args.years > 1:
            one = in_child(year, year, folder / "one.duckdb")
            long = folder / "long.csv"
            write_years(long, 2023, args.years)
            many = in_child(year, long, folder / "long.duckdb")
            per_bar = {k: (many[k] / many["bars"]) / (one[k] / one["bars"]) for k in ("seconds", "cpu")}
            kb = (many["peak_kb"] - one["peak_kb"]) * 1.024 / (many["bars"] - one["bars"])
            print(f"{args.years} years: {many['bars']:,} bars in {many['seconds']:.2f} s wall, "
                  f"{many['cpu']:.2f} s CPU; per bar {per_bar['seconds']:.2f}x wall, "
                  f"{per_bar['cpu']:.2f}x CPU the one-year run's (one year {one['seconds']:.2f} s / "
                  f"{one['cpu']:.2f} s, each in its own warmed-up process)")
            print(f"  peak memory {many['peak_kb'] / 1024:,.0f} MiB vs {one['peak_kb'] / 1024:,.0f} MiB: "
                  f"{kb:.2f} KB per extra bar (target <= {TARGETS['kb_per_bar']} KB)")


if __name__ == "__main__":
    main()
