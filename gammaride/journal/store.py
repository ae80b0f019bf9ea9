"""The journal: one DuckDB file holding every scan, order, fill and trade.

``Journal`` owns its connection. Writes that belong together go through
:meth:`Journal.transaction`, so a failed replay leaves no partial run and the live
scanner's scans are each committed as they happen.

DuckDB lets one process hold a file at a time. So that ``report``, ``journal`` and
``calibrate`` work on the journal of a running scan, the scanner opens it ``shared``: it
holds the file only while it writes (each scan's transaction) and waits briefly when a
reader has it; a reader opened ``read_only`` copies the journal into memory and lets go of
the file at once, waiting briefly when the scanner is mid-write.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from gammaride.errors import JournalError, JournalVersionError
from gammaride.journal.schema import (
    MIGRATIONS,
    PATH_COLUMNS,
    SCAN_COLUMNS,
    SCHEMA_VERSION,
    TRADE_COLUMNS,
)

# A run made with --dry-run (orders simulated, nothing sent) carries "dry_run": true in its
# settings_json; older runs without the flag were real. SQL over ``runs r``.
DRY_RUN_SQL = "coalesce(TRY_CAST(json_extract(r.settings_json, '$.dry_run') AS BOOLEAN), false)"
DEFAULT_JOURNAL = "gammaride.duckdb"
ENV_JOURNAL = "GAMMARIDE_JOURNAL"
ET = "America/New_York"


def default_journal_path() -> Path:
    return Path(os.environ.get(ENV_JOURNAL) or DEFAULT_JOURNAL)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _holding(method):
    """Run ``method`` with the file held (a shared journal opens it for the call, unless an
    outer call or transaction holds it already, and lets go after)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._held():
            return method(self, *args, **kwargs)

    return wrapper


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "different configuration" in text


class Journal:
    """A DuckDB journal file (or ``":memory:"``), migrated to the current schema on open."""

    def __init__(self, path: str | os.PathLike = DEFAULT_JOURNAL, read_only: bool = False,
                 shared: bool = False, lock_wait: float | None = None):
        self.path = str(path)
        if read_only and self.path != ":memory:" and not Path(self.path).exists():
            raise JournalError(
                f"journal {self.path} does not exist; run 'gammaride replay' or 'gammaride scan' "
                "first, or pass --journal PATH"
            )
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._depth = 0
        self._holds = 0
        # shared: hold the file only while writing (a running scanner); readers may open it between
        self.shared = bool(shared) and not read_only and self.path != ":memory:"
        # how long to wait for a file another process holds: a reader's copy or a scan's
        # write takes a fraction of a second, so a short wait; a writer must not lose a scan
        self.lock_wait = float(lock_wait) if lock_wait is not None else (60.0 if self.shared else 15.0)
        self._con: duckdb.DuckDBPyConnection | None = None
        if read_only and self.path != ":memory:":
            self._snapshot()
            return
        self._connect(read_only)
        with self._held():  # every migration under one hold: no reader between two of them
            self._migrate(read_only)

    def _snapshot(self) -> None:
        """Copy the file into an in-memory database and let go of the file: a reader never
        keeps a running scanner from writing. An older journal is upgraded first."""
        self._connect(True)
        pending = self._pending()
        self.con.close()
        if pending:  # an older journal: upgrade it once with a short writing open
            self._connect(False)
            self._migrate(False)
            self.con.close()
        mem = duckdb.connect(":memory:")
        quoted = self.path.replace("'", "''")
        self._retry(lambda: mem.execute(f"ATTACH '{quoted}' AS src (READ_ONLY)"))
        try:
            mem.execute("COPY FROM DATABASE src TO memory")
        finally:
            mem.execute("DETACH src")
        mem.execute(f"SET TimeZone='{ET}'")
        self._con = mem
        self._migrate(True)

    @contextmanager
    def _held(self) -> Iterator[None]:
        """The file held for the duration (nests); a shared journal lets go at the end."""
        if self._con is None:
            if not self.shared:
                raise JournalError(f"journal {self.path} is closed; open it again")
            self._connect(False)
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if self.shared and self._holds == 0 and self._depth == 0:
                self._release()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The open connection. A shared journal opens the file when asked and lets go at
        the end of the next held call or transaction."""
        if self._con is None:
            if not self.shared:
                raise JournalError(f"journal {self.path} is closed; open it again")
            self._connect(False)
        return self._con

    def _release(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _pending(self) -> bool:
        tables = {r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "schema_migrations" not in tables:
            return False  # _migrate says what this file is
        applied = {r[0] for r in self.con.execute("SELECT name FROM schema_migrations").fetchall()}
        return any(name not in applied for name, _ in MIGRATIONS)

    def _retry(self, fn):
        """``fn()``, retried while another process holds the file, up to ``lock_wait`` s."""
        deadline = time.monotonic() + self.lock_wait
        pause = 0.02
        while True:
            try:
                return fn()
            except duckdb.Error as exc:
                if not _is_lock_error(exc):
                    raise JournalError(
                        f"cannot open {self.path} as a journal ({exc}); pass another --journal PATH"
                    ) from None
                if time.monotonic() >= deadline:
                    raise JournalError(
                        f"cannot open journal {self.path}: another process has held it for "
                        f"{self.lock_wait:g}s ({exc}). A scanner holds it only while it writes; "
                        "a program that keeps it open (a notebook's Journal, a duckdb shell) "
                        "must close it first"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.25)

    def _connect(self, read_only: bool) -> None:
        self._con = self._retry(lambda: duckdb.connect(self.path, read_only=read_only))
        self.con.execute(f"SET TimeZone='{ET}'")

    # lifecycle ------------------------------------------------------------------
    def close(self) -> None:
        self._release()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Journal]:
        """All writes inside commit together or not at all (nests: the outermost wins)."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        with self._held():
            self.con.execute("BEGIN TRANSACTION")
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._depth = 0
                self.con.execute("ROLLBACK")
                raise
            self._depth = 0
            self.con.execute("COMMIT")

    # schema ---------------------------------------------------------------------
    def _migrate(self, read_only: bool) -> None:
        tables = {r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "schema_migrations" not in tables:
            if tables and not read_only:
                raise JournalError(
                    f"{self.path} is a DuckDB file but not a gammaride journal (tables: "
                    f"{', '.join(sorted(tables))}); pass another --journal PATH"
                )
            if read_only:
                raise JournalError(f"{self.path} is not a gammaride journal; pass another --journal PATH")
            self.con.execute(
                "CREATE TABLE schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
            )
        applied = [r[0] for r in self.con.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()]
        known = [name for name, _ in MIGRATIONS]
        unknown = [name for name in applied if name not in known]
        if unknown or len(applied) > SCHEMA_VERSION:
            raise JournalVersionError(
                f"journal {self.path} has schema version {len(applied)} (migrations "
                f"{', '.join(unknown)}), newer than this gammaride's version {SCHEMA_VERSION}; "
                "upgrade gammaride (pip install -U gammaride) to open it"
            )
        pending = [(n, fn) for n, fn in MIGRATIONS if n not in applied]
        for name, fn in pending:
            with self.transaction():
                fn(self.con)
                self.con.execute("INSERT INTO schema_migrations VALUES (?, ?)", [name, _now()])

    @property
    @_holding
    def schema_version(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0])

    # runs -----------------------------------------------------------------------
    @_holding
    def start_run(
        self,
        mode: str,
        symbol: str,
        *,
        instrument: str | None = None,
        source: str | None = None,
        phase: int | None = None,
        exit_policy: str | None = None,
        iv_source: str | None = None,
        settings: Mapping[str, Any] | None = None,
        started_at: datetime | None = None,
    ) -> int:
        if mode not in {"replay", "offline", "paper", "live"}:
            raise ValueError(f"run mode {mode!r} is not replay, offline, paper or live")
        from gammaride import __version__

        with self.transaction():
            run_id = int(self.con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchone()[0])
            self.con.execute(
                "INSERT INTO runs (run_id, mode, symbol, instrument, status, started_at, source, phase, "
                "exit_policy, iv_source, settings_json, version) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id, mode, symbol, instrument, started_at or _now(), source, phase,
                    exit_policy, iv_source, json.dumps(dict(settings or {}), default=str), __version__,
                ],
            )
        return run_id

    @_holding
    def finish_run(self, run_id: int, status: str = "completed", summary: Mapping | None = None) -> None:
        with self.transaction():
            self.con.execute(
                "UPDATE runs SET status = ?, finished_at = ?, summary_json = ? WHERE run_id = ?",
                [status, _now(), json.dumps(dict(summary or {}), default=str), run_id],
            )

    # bulk writes ----------------------------------------------------------------
    @_holding
    def _insert_frame(self, table: str, frame: pd.DataFrame, columns: list[str]) -> None:
        if frame.empty:
            return
        missing = [c for c in columns if c not in frame.columns]
        data = frame.assign(**{c: None for c in missing})[columns]
        # pandas 3 infers a 'str' dtype that older DuckDB releases cannot scan; object can.
        text = [c for c in columns if pd.api.types.is_string_dtype(data[c].dtype) and data[c].dtype != object]
        if text:
            data = data.astype({c: object for c in text})
        name = f"_incoming_{table}"
        self.con.register(name, data)
        try:
            quoted = ", ".join(f'"{c}"' for c in columns)
            self.con.execute(f"INSERT INTO {table} ({quoted}) SELECT {quoted} FROM {name}")
        finally:
            self.con.unregister(name)

    def write_scans(self, scans: pd.DataFrame) -> None:
        self._insert_frame("scans", scans, SCAN_COLUMNS)

    def write_trades(self, trades: pd.DataFrame) -> None:
        self._insert_frame("trades", trades, TRADE_COLUMNS)

    def write_paths(self, paths: pd.DataFrame) -> None:
        self._insert_frame("trade_paths", paths, PATH_COLUMNS)

    @_holding
    def next_trade_id(self) -> int:
        return int(self.con.execute("SELECT coalesce(max(trade_id), 0) + 1 FROM trades").fetchone()[0])

    # single-row writes (live scanner) -------------------------------------------
    @_holding
    def _insert_row(self, table: str, row: Mapping[str, Any]) -> None:
        cols = list(row)
        quoted = ", ".join(f'"{c}"' for c in cols)
        marks = ", ".join("?" for _ in cols)
        self.con.execute(f"INSERT INTO {table} ({quoted}) VALUES ({marks})", [_plain(row[c]) for c in cols])

    def write_scan(self, row: Mapping[str, Any]) -> None:
        self._insert_row("scans", {k: row.get(k) for k in SCAN_COLUMNS if k in row})

    def write_trade(self, row: Mapping[str, Any]) -> None:
        self._insert_row("trades", {k: row.get(k) for k in TRADE_COLUMNS if k in row})

    @_holding
    def update_trade(self, trade_id: int, **values: Any) -> None:
        unknown = [k for k in values if k not in TRADE_COLUMNS]
        if unknown:
            raise ValueError(f"unknown trade columns {unknown}")
        sets = ", ".join(f'"{k}" = ?' for k in values)
        self.con.execute(
            f"UPDATE trades SET {sets} WHERE trade_id = ?", [*map(_plain, values.values()), trade_id]
        )

    @_holding
    def write_order(self, row: Mapping[str, Any]) -> None:
        """Insert or update an order by its id."""
        exists = self.con.execute("SELECT 1 FROM orders WHERE order_id = ?", [row["order_id"]]).fetchone()
        if exists:
            sets = ", ".join(f'"{k}" = ?' for k in row if k != "order_id")
            self.con.execute(
                f"UPDATE orders SET {sets} WHERE order_id = ?",
                [*(_plain(v) for k, v in row.items() if k != "order_id"), row["order_id"]],
            )
        else:
            self._insert_row("orders", row)

    def write_fill(self, row: Mapping[str, Any]) -> None:
        self._insert_row("fills", row)

    def write_error(
        self, run_id: int | None, context: str, error: BaseException | str, scan_no: int | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        kind = type(error).__name__ if isinstance(error, BaseException) else "message"
        self._insert_row(
            "errors",
            {"run_id": run_id, "occurred_at": occurred_at or _now(), "scan_no": scan_no,
             "context": context, "error_type": kind, "message": str(error)[:2000]},
        )

    @_holding
    def record_iv(self, observed_at: datetime, symbol: str, iv: float, source: str, contract: str | None = None,
                  expiry: Any = None, strike: float | None = None, dte_class: str | None = None) -> None:
        """One ATM IV observation with the series it came from (contract, expiry, strike,
        days-to-expiry class)."""
        ts = pd.Timestamp(observed_at).tz_convert(ET)
        self._insert_row(
            "iv_observations",
            {"observed_at": ts, "session_date": ts.date(), "symbol": symbol, "contract": contract,
             "iv": iv, "source": source, "expiry": pd.Timestamp(expiry).date() if expiry is not None else None,
             "strike": strike, "dte_class": dte_class},
        )

    @_holding
    def iv_history(self, symbol: str, before: datetime | None = None, dte_class: str | None = None) -> pd.Series:
        """One IV per recorded session (the last observation of the day), oldest first; with
        ``dte_class`` only observations of that days-to-expiry class (like with like)."""
        sql = (
            "SELECT session_date, arg_max(iv, observed_at) AS iv FROM iv_observations "
            "WHERE symbol = ? AND iv IS NOT NULL AND source = 'snapshot'"
        )
        params: list[Any] = [symbol]
        if dte_class is not None:
            sql += " AND dte_class = ?"
            params.append(dte_class)
        if before is not None:
            sql += " AND session_date < ?"
            params.append(pd.Timestamp(before).tz_convert(ET).date())
        rows = self.con.execute(sql + " GROUP BY session_date ORDER BY session_date", params).fetchall()
        return pd.Series([r[1] for r in rows], index=pd.DatetimeIndex([r[0] for r in rows]), dtype=float)

    # reads ----------------------------------------------------------------------
    @_holding
    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duckdb's pandas export warns on pandas 3
            return self.con.execute(sql, params or []).df()

    @_holding
    def trades(
        self, closed_only: bool = True, mode: str | None = None, dry_runs: bool = False
    ) -> pd.DataFrame:
        """Trades with their run's mode; trades of --dry-run runs only when asked."""
        sql = "SELECT t.*, r.mode FROM trades t JOIN runs r USING (run_id) WHERE 1=1"
        params: list[Any] = []
        if not dry_runs:
            sql += f" AND NOT {DRY_RUN_SQL}"
        if closed_only:
            sql += " AND t.status = 'closed'"
        if mode and mode != "all":
            sql += " AND r.mode = ?"
            params.append(mode)
        return self.query(sql + " ORDER BY t.entry_time, t.trade_id", params)

    @_holding
    def trade_paths(self, trade_ids: list[int] | None = None) -> pd.DataFrame:
        if trade_ids is None:
            return self.query("SELECT * FROM trade_paths ORDER BY trade_id, minute")
        frame = pd.DataFrame({"trade_id": np.asarray(trade_ids, dtype=np.int64)})
        self.con.register("_wanted", frame)
        try:
            return self.query(
                "SELECT p.* FROM trade_paths p JOIN _wanted w USING (trade_id) ORDER BY trade_id, minute"
            )
        finally:
            self.con.unregister("_wanted")

    @_holding
    def fingerprint(self) -> str:
        """A digest of the closed trades and their paths: changes whenever they change."""
        rows = self.con.execute(
            "SELECT count(*), coalesce(sum(hash(trade_id, entry_time, exit_time, exit_price, atr)), 0) "
            "FROM trades WHERE status = 'closed'"
        ).fetchone()
        paths = self.con.execute(
            "SELECT count(*), coalesce(sum(hash(trade_id, minute, high, low, close)), 0) FROM trade_paths"
        ).fetchone()
        return hashlib.sha256(json.dumps([str(v) for v in (*rows, *paths)]).encode()).hexdigest()[:16]

    @_holding
    def summary(self) -> dict[str, Any]:
        """What the journal holds: runs, scans, signals, trades, win rate, by mode."""
        runs = self.query("SELECT mode, count(*) AS n FROM runs GROUP BY mode ORDER BY mode")
        scans = self.con.execute(
            "SELECT count(*), count(*) FILTER (WHERE in_window), count(*) FILTER (WHERE signal) FROM scans"
        ).fetchone()
        trades = self.con.execute(
            "SELECT count(*), count(*) FILTER (WHERE pnl_usd > 0), coalesce(sum(pnl_usd), 0), "
            "avg(r_multiple), count(*) FILTER (WHERE status = 'open') FROM trades"
        ).fetchone()
        span = self.con.execute("SELECT min(decision_time), max(decision_time) FROM scans").fetchone()
        closed = trades[0] - trades[4]
        return {
            "journal": self.path,
            "schema_version": self.schema_version,
            "runs": {str(r.mode): int(r.n) for r in runs.itertuples()},
            "scans": int(scans[0]),
            "in_window": int(scans[1]),
            "signals": int(scans[2]),
            "trades": int(closed),
            "open_trades": int(trades[4]),
            "wins": int(trades[1]),
            "win_rate": (trades[1] / closed) if closed else None,
            "pnl_usd": float(trades[2]),
            "avg_r": float(trades[3]) if trades[3] is not None else None,
            "first_decision": span[0].isoformat() if span[0] is not None else None,
            "last_decision": span[1].isoformat() if span[1] is not None else None,
            "errors": int(self.con.execute("SELECT count(*) FROM errors").fetchone()[0]),
        }


def _plain(value: Any) -> Any:
    """numpy scalars and NaN to what DuckDB's parameter binding takes."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    if value is pd.NaT:
        return None
    return value
