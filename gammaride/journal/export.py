"""The journal as CSV files for a spreadsheet: trades, scans and runs.

Every trade row carries its identity (``identity``, ``kind``, ``decision_minute``), its
P&L source (``pnl_source``: measured from fills or estimated), net ``pnl_usd`` beside
``gross_pnl_usd``, and ``counts``: whether it counts (false for a trade superseded by a
later replay or journaled again). Scans and runs carry their run's mode, kind and
dry-run flag. Times are America/New_York with their UTC offset.
"""

from __future__ import annotations

import os
from pathlib import Path

from gammaride.journal.identity import KIND_SQL, count_once
from gammaride.journal.store import DRY_RUN_SQL, Journal
from gammaride.outputs import write_atomic

FILES = ("trades.csv", "scans.csv", "runs.csv")
_TRADE_FIRST = [
    "trade_id", "identity", "kind", "counts", "run_id", "mode", "dry_run", "symbol",
    "decision_minute", "direction", "status", "pnl_source", "pnl_usd", "gross_pnl_usd",
    "r_multiple",
]


def export_csv(journal: Journal, folder: str | os.PathLike) -> list[Path]:
    """Write trades.csv, scans.csv and runs.csv into ``folder``; returns their paths.
    Each file is written whole or not at all."""
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--export {out} is a file; give a folder to write {', '.join(FILES)} into")
    out.mkdir(parents=True, exist_ok=True)
    trades = journal.trades(closed_only=False, dry_runs=True, once="none")
    dry = journal.query(f"SELECT run_id, {DRY_RUN_SQL} AS dry_run FROM runs r")
    trades = trades.merge(dry, on="run_id", how="left")
    counted = count_once(trades[~trades["dry_run"]])
    trades["counts"] = trades.index.isin(counted.index)
    trades = trades[_TRADE_FIRST + [c for c in trades.columns if c not in _TRADE_FIRST]]
    paths = [
        _write(out / "trades.csv", lambda tmp: trades.to_csv(tmp, index=False)),
        _write(out / "scans.csv", lambda tmp: _copy(
            journal,
            f"SELECT s.*, r.mode, {KIND_SQL} AS kind, {DRY_RUN_SQL} AS dry_run "
            "FROM scans s JOIN runs r USING (run_id) ORDER BY s.run_id, s.scan_no", tmp)),
        _write(out / "runs.csv", lambda tmp: _copy(
            journal,
            f"SELECT r.*, {KIND_SQL} AS kind, (SELECT count(DISTINCT e.run_id) > 0 FROM errors e "
            "WHERE e.run_id = r.run_id) AS had_errors FROM runs r ORDER BY r.run_id", tmp)),
    ]
    return paths


def _copy(journal: Journal, sql: str, path: str) -> None:
    target = path.replace("'", "''")
    journal.con.execute(f"COPY ({sql}) TO '{target}' (HEADER, DELIMITER ',')")


def _write(path: Path, write) -> Path:
    return write_atomic(path, write_with=write, what="export")

