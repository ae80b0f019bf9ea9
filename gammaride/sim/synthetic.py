"""Journals built from synthetic paths, for calibration tests and benchmarks.

Paths come in ATRs from the entry with the favourable direction up, as calibration sees
them; :func:`journal_frames` turns them into the ``trades`` and ``trade_paths`` frames
replay would journal (time exits after the max hold, Phase 1 multipliers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gammaride.config import ET
from gammaride.journal import Journal


def journal_frames(
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    sign: np.ndarray,
    entry: np.ndarray,
    atr: np.ndarray,
    start: str = "2024-01-02",
    per_day: int = 4,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``trades`` and ``trade_paths`` frames for ``n`` trades whose bars are (n, hold)
    arrays in ATRs; ``per_day`` entries a session, 12 minutes apart from 09:40."""
    n, hold = np.shape(c)
    s, e, a = sign[:, None], entry[:, None], atr[:, None]
    days = pd.DatetimeIndex(pd.bdate_range(start, periods=n // per_day + 1)).tz_localize(ET)
    day = days[np.arange(n) // per_day]
    entry_time = day + pd.to_timedelta(9 * 60 + 40 + 12 * (np.arange(n) % per_day), unit="min")
    ids = np.arange(1, n + 1)
    trades = pd.DataFrame(
        {
            "trade_id": ids,
            "symbol": "SPY",
            "instrument": "options",
            "direction": np.where(sign > 0, "call", "put"),
            "status": "closed",
            "entry_time": entry_time,
            "entry_price": entry,
            "exit_time": entry_time + pd.Timedelta(minutes=hold),
            "exit_price": (e + s * a * c)[:, -1],
            "exit_reason": "time",
            "hard_stop_time": day + pd.Timedelta(hours=15, minutes=25),
            "atr": atr,
            "tp_mult": 2.0,
            "sl_mult": 1.0,
            "phase": 1,
            "atr_bucket": "all",
            "contracts": 1,
        }
    )
    minute = np.tile(np.arange(1, hold + 1), n)
    paths = pd.DataFrame(
        {
            "trade_id": np.repeat(ids, hold),
            "minute": minute,
            "bar_time": entry_time.repeat(hold) + pd.to_timedelta(minute - 1, unit="min"),
            "open": (e + s * a * o).ravel(),
            "high": np.where(s > 0, e + a * h, e - a * lo).ravel(),
            "low": np.where(s > 0, e + a * lo, e - a * h).ravel(),
            "close": (e + s * a * c).ravel(),
        }
    )
    return trades, paths


def write_journal(path: str | Path, trades: pd.DataFrame, paths: pd.DataFrame,
                  source: str = "synthetic") -> str | Path:
    """Write the frames into a real journal as one replay run, through the Journal API."""
    with Journal(path) as journal, journal.transaction():
        run_id = journal.start_run("replay", "SPY", source=source)
        journal.write_trades(trades.assign(run_id=run_id))
        journal.write_paths(paths)
        journal.finish_run(run_id)
    return path
