"""What a scan prints: pure functions of a scan's row and info dict to text.

The scan line, the debug block under it, the heartbeat every 10th scan and the run's
summary. No broker, no journal, no clock: the runner passes in what each line shows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gammaride.config import ET, Settings
from gammaride.text import signed_usd

FEED_NOTE = {
    "opra": "  option quotes: OPRA feed (real-time NBBO)",
    "indicative": "  option quotes: indicative feed (free plan: modified quotes, not the NBBO; "
                  "limits reprice within max_slippage_per_contract)",
}


def feed_note(feed: str) -> str:
    """The line naming the option feed a scan's quotes came from."""
    return FEED_NOTE.get(feed, f"  option quotes: {feed} feed")


def scan_line(scan_no: int, now: pd.Timestamp, row: dict, info: dict, *, dry_run: bool = False) -> str:
    """``[SCAN n] HH:MM:SS - ...``: the scan's gates, levels and status on one line."""
    head = f"[SCAN {scan_no}] {now.tz_convert(ET):%H:%M:%S} - "
    reason = str(row.get("skip_reason") or "")
    if reason.startswith("error:"):
        return head + f"✗ Error: {reason[len('error:'):].strip()}"
    if row.get("in_window") is None:
        return head + f"Status: SKIPPED ({row.get('skip_reason')})"
    ratio = row.get("vol_ratio")
    vol = f"{math.floor(ratio * 10) / 10:.1f}x" if ratio is not None and np.isfinite(ratio) else "n/a"
    parts = [f"Time: {'IN' if row['in_window'] else 'OUT'}", f"Volume: {vol}",
             f"Direction: {(row.get('direction') or 'none').upper()}"]
    if row.get("signal") and "tp" in info:
        parts += [f"ATR: ${row['atr']:.2f}", f"TP: ${info['tp']:.2f}", f"SL: ${info['sl']:.2f}"]
    if info.get("submitted"):
        tag = " (dry run)" if dry_run else ""
        return head + " | ".join(parts) + f" | ✓ SUBMITTED{tag}"
    return head + " | ".join(parts) + f" | Status: SKIPPED ({row.get('skip_reason')})"


def debug_block(row: dict, info: dict, settings: Settings) -> str:
    """The indented lines under a scan when ``debug`` is on: every number the decision used."""
    sig = info.get("sig")
    if sig is None:
        return f"    (no decision: {row.get('skip_reason')})"
    bars = info["bars"].iloc[-20:]
    closes = " ".join(f"{c:.2f}" for c in bars["close"].iloc[-5:])
    ivp = row.get("iv_percentile")
    return "\n".join([
        f"    decision bar ends {row['decision_time']:%H:%M} · window {row.get('window') or '-'}",
        f"    volume {sig['volume']:,.0f} vs avg {sig['avg_volume']:,.0f} (threshold {settings.volume_threshold:.1f}x)",
        f"    price ${sig['price']:.2f} · {settings.direction_lookback}-bar change {sig['price_change']:+.2f} · last closes {closes}",
        f"    ATR(14) ${sig['atr']:.4f} · ATM IV {row.get('iv') if row.get('iv') is None else round(row['iv'], 4)} · "
        f"IV percentile {ivp if ivp is None else round(ivp, 2)} ({row.get('iv_source')})",
        f"    gates: window {'✓' if sig['in_window'] else '✗'} volume {'✓' if sig['vol_spike'] else '✗'} "
        f"IV {'✓' if (sig['iv_percentile'] >= settings.iv_threshold) else '✗'} "
        f"direction {'✓' if isinstance(sig['direction'], str) else '✗'}",
        f"    {info['gamma'].describe()} · gate {settings.gamma_gate}",
    ])


def heartbeat(scan_no: int, now: pd.Timestamp, *, open_positions: int, entries: int, trades_today: int,
              pnl_today: float, errors: int) -> str:
    """``[SCAN n] ✓ Still running...`` with the run's state, every 10th scan."""
    return (f"[SCAN {scan_no}] ✓ Still running... {now.tz_convert(ET):%H:%M:%S} ET · open positions "
            f"{open_positions} · entries this run {entries} · trades today "
            f"{trades_today} · P&L today {signed_usd(pnl_today)} · errors {errors}")


def summary_line(run_id: int | None, status: str, stats: dict, open_positions: list[str]) -> str:
    """``=== SUMMARY run n (status) === ...``: the run's counts, exits and P&L."""
    exits = ", ".join(f"{k} {v}" for k, v in sorted(stats["exits"].items())) or "none"
    return (
        f"=== SUMMARY run {run_id} ({status}) === scans {stats['scans']} · in window {stats['in_window']} · "
        f"signals {stats['signals']} · entries {stats['entries']} · exits: {exits} · P&L {signed_usd(stats['pnl_usd'])} · "
        f"errors {stats['errors']}" + (f" · still open: {', '.join(open_positions)}" if open_positions else "")
    )
