"""Report speed and size on a large journal: 10,000 trades and 500,000 scans.

Targets: build_report_data + render_report in <= 5 s, the HTML file <= 2 MB.
The baseline is what the SQL aggregation avoids: pulling every scan row into pandas.
The charts' baseline is the same report with its charts laid out by matplotlib's
constrained layout (what the charts used before they measured their own margins).

    python benchmarks/report.py [--trades 10000] [--scans 500000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gammaride.config import ET
from gammaride.journal import Journal
from gammaride.reports import build_report_data, charts, render_report

SKIPS = np.array(
    ["outside window", "volume 0.7x < 2.0x", "volume 1.3x < 2.0x", "volume 1.9x < 2.0x",
     "IV percentile 0.25 < 0.30", "no direction (5-bar change +0.00)", "position open",
     "warming up (needs 20 bars of history)"],
    dtype=object,
)


def synthesize(path: Path, n_trades: int, n_scans: int, seed: int = 7) -> None:
    """Two runs (replay and paper) with realistic-looking scans, trades, orders and errors."""
    rng = np.random.default_rng(seed)
    sessions = pd.bdate_range("2024-01-02", periods=max(1, n_scans // 390), tz=ET)
    minute = np.arange(n_scans) % 390
    day = np.minimum(np.arange(n_scans) // 390, len(sessions) - 1)
    decision = sessions[day] + pd.to_timedelta(9 * 60 + 31 + minute, unit="min")
    dmin = 9 * 60 + 31 + minute
    in_window = ((dmin >= 575) & (dmin < 630)) | ((dmin >= 900) & (dmin < 955))
    vol_ratio = rng.lognormal(0.0, 0.5, n_scans)
    spike = vol_ratio >= 2.0
    signal = in_window & spike & (rng.random(n_scans) < 0.85)
    run_id = np.where(np.arange(n_scans) < n_scans * 0.6, 1, 2)
    skip = SKIPS[rng.integers(1, len(SKIPS), n_scans)]
    skip[~in_window] = "outside window"
    skip[signal] = None
    trade_rows = np.flatnonzero(signal)[:n_trades]
    trade_id = np.full(n_scans, None, dtype=object)
    trade_id[trade_rows] = np.arange(1, len(trade_rows) + 1)
    scans = pd.DataFrame({
        "run_id": run_id, "scan_no": np.arange(1, n_scans + 1), "decision_time": decision,
        "symbol": "SPY", "in_window": in_window, "window": np.where(dmin < 720, "am", "pm"),
        "volume": rng.integers(1e4, 1e6, n_scans).astype(float), "vol_ratio": vol_ratio,
        "vol_spike": spike, "price": 450 + rng.normal(0, 5, n_scans),
        "direction": np.where(rng.random(n_scans) < 0.5, "call", "put"),
        "atr": rng.uniform(0.05, 0.6, n_scans), "iv_percentile": rng.uniform(0, 1, n_scans),
        "iv_source": "rv_proxy", "signal": signal, "skip_reason": skip, "trade_id": trade_id,
    })
    n = len(trade_rows)
    if n < n_trades:  # fewer signals than trades asked for: put the rest on random scans
        extra = rng.choice(np.setdiff1d(np.arange(n_scans), trade_rows), n_trades - n, replace=False)
        trade_rows = np.concatenate([trade_rows, extra])
        n = n_trades
    entry = decision[trade_rows]
    atr = rng.uniform(0.05, 0.6, n)
    reason = rng.choice(["tp", "sl", "time", "hard_stop"], n, p=[0.35, 0.45, 0.15, 0.05])
    r = np.where(reason == "tp", 2.0, np.where(reason == "sl", -1.0, rng.uniform(-0.9, 1.9, n)))
    contracts = rng.integers(1, 11, n)
    trades = pd.DataFrame({
        "trade_id": np.arange(1, n + 1), "run_id": run_id[trade_rows], "symbol": "SPY",
        "instrument": "options", "direction": scans["direction"].to_numpy()[trade_rows],
        "status": "closed", "entry_time": entry, "entry_price": 450.0,
        "exit_time": entry + pd.to_timedelta(rng.integers(1, 21, n), unit="min"),
        "exit_price": 450.0 + r * atr, "exit_reason": reason, "atr": atr, "tp_mult": 2.0,
        "sl_mult": 1.0, "phase": 1, "atr_bucket": "all", "iv_percentile": rng.uniform(0.3, 1, n),
        "contracts": contracts, "pnl_usd": r * atr * 50.0 * contracts, "r_multiple": r,
        "mfe_atr": np.abs(r) + rng.uniform(0, 1, n), "mae_atr": rng.uniform(0, 1.2, n),
    })
    with Journal(path) as j, j.transaction():
        j.start_run("replay", "SPY", phase=1, exit_policy="Phase 1 exits: TP 2 ATR, SL 1 ATR")
        j.start_run("paper", "SPY", phase=1, exit_policy="Phase 1 exits: TP 2 ATR, SL 1 ATR")
        j.write_scans(scans)
        j.write_trades(trades)
        paper = trades[trades["run_id"] == 2]
        orders = pd.DataFrame({
            "order_id": [f"o{t}" for t in paper["trade_id"]], "run_id": 2,
            "trade_id": paper["trade_id"].to_numpy(), "purpose": "entry", "status": "filled",
            "submitted_at": paper["entry_time"].to_numpy(),
        })
        j.con.register("_o", orders)
        j.con.execute("INSERT INTO orders (order_id, run_id, trade_id, purpose, status, submitted_at) "
                      "SELECT order_id, run_id, trade_id, purpose, status, submitted_at FROM _o")
        j.con.execute("INSERT INTO fills (order_id, run_id, trade_id, filled_at) "
                      "SELECT order_id, run_id, trade_id, submitted_at FROM _o")
        j.con.unregister("_o")
        for k in range(200):
            j.write_error(2, "scan", f"timeout talking to the broker ({k})", scan_no=k,
                          occurred_at=decision[k * 37].to_pydatetime())


@contextlib.contextmanager
def constrained_layout():
    """The charts laid out by matplotlib's constrained layout instead of their measured margins."""
    from matplotlib.figure import Figure

    figure, fit = charts._figure, charts._fit

    def constrained(width, height, nrows=1, sharex=False):
        fig = Figure(figsize=(width, height), layout="constrained")
        return fig, (fig.subplots(nrows, 1, sharex=sharex) if nrows > 1 else [fig.subplots()])

    charts._figure, charts._fit = constrained, lambda fig: None
    try:
        yield
    finally:
        charts._figure, charts._fit = figure, fit


def cpu_time(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=10_000)
    parser.add_argument("--scans", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.duckdb"
        t0 = time.perf_counter()
        synthesize(path, args.trades, args.scans)
        print(f"journal: {args.trades:,} trades, {args.scans:,} scans, written in "
              f"{time.perf_counter() - t0:.1f} s ({path.stat().st_size / 1e6:.1f} MB)")
        render_report(build_report_data(path))  # warm-up: imports, template, fonts
        with Journal(path, read_only=True) as j:
            t_build, data = timed(lambda: build_report_data(j), args.repeat)
            t_render, html = timed(lambda: render_report(data), args.repeat)
            t_total, _ = timed(lambda: render_report(build_report_data(j)), args.repeat)
            t_pull, frame = timed(lambda: j.query("SELECT * FROM scans"), args.repeat)
        fitted, constrained = [], []
        for _ in range(args.repeat):  # taking turns, so both see the same machine load
            fitted.append(cpu_time(lambda: render_report(data)))
            with constrained_layout():
                constrained.append(cpu_time(lambda: render_report(data)))
        t_fitted, t_constrained = statistics.median(fitted), statistics.median(constrained)
        size = len(html.encode("utf-8"))
        n = data["fills"]["summary"]["n"] + data["backtest"]["summary"]["n"]
        print(f"report of {n:,} trades, {data['funnel']['stages'][0]['n']:,} scans "
              f"(median of {args.repeat}):")
        print(f"  build_report_data   {t_build:7.3f} s")
        print(f"  render_report       {t_render:7.3f} s")
        print(f"  build + render      {t_total:7.3f} s   target <= 5 s   "
              f"{'OK' if t_total <= 5 else 'OVER'}")
        print(f"  HTML size           {size / 1e6:7.3f} MB  target <= 2 MB  "
              f"{'OK' if size <= 2e6 else 'OVER'}")
        print(f"baseline: pulling all {len(frame):,} scan rows into pandas {t_pull:.3f} s; "
              f"the whole report takes {t_total / t_pull:.2f}x that")
        print(f"charts: render_report CPU with measured margins {t_fitted:.3f} s, with constrained "
              f"layout {t_constrained:.3f} s: {t_constrained / t_fitted:.2f}x less")


if __name__ == "__main__":
    main()
