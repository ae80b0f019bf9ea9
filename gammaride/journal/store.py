"""The journal: one DuckDB file holding every scan, order, fill and trade.

``Journal`` owns its connection. Writes that belong together go through
:meth:`Journal.transaction`, so a failed replay leaves no partial run and the live
scanner's scans are each committed as they happen.

DuckDB lets one process hold a file at a time. So that ``report``, ``journal`` and
``calibrate`` work on the journal of a running scan, the scanner opens it ``shared``: it
holds the file only while it writes (each scan's transaction) and waits briefly when a
reader has it; a reader opened ``read_only`` copies the journal to a private read-only
file and lets go of the journal at once, waiting briefly when the scanner is mid-write.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from gammaride.config import ET
from gammaride.errors import JournalError, JournalVersionError
from gammaride.journal.identity import KINDS, count_once, quality
from gammaride.journal.modes import RUN_MODES
from gammaride.journal.schema import (
    MIGRATIONS,
    OPTION_PATH_COLUMNS,
    PATH_COLUMNS,
    SCAN_COLUMNS,
    SCAN_VOCABULARIES,
    SCHEMA_VERSION,
    TRADE_COLUMNS,
)

_KNOWN_NAMES = sorted(name for name, _ in MIGRATIONS)

# A run made with --dry-run (orders simulated, nothing sent): the ``runs.dry_run`` column
# (m003, backfilled from settings_json). SQL over ``runs r``.
DRY_RUN_SQL = "coalesce(r.dry_run, false)"
DEFAULT_JOURNAL = "gammaride.duckdb"
ENV_JOURNAL = "GAMMARIDE_JOURNAL"


@lru_cache(maxsize=1)
def _expected_schema() -> frozenset[tuple[str, str]]:
    """(table, column) of every table the migrations create, from a fresh in-memory journal."""
    con = duckdb.connect(":memory:")
    try:
        for _, fn in MIGRATIONS:
            fn(con)
        return frozenset(_columns(con))
    finally:
        con.close()


def _columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
    ).fetchall()


# A digest of every table and column: what a journal is compared with on open.
_FINGERPRINT_SQL = (
    "SELECT md5(coalesce(string_agg(table_name || '.' || column_name, ',' ORDER BY table_name, column_name), "
    "'')) FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main'"
)
# The one query of a journal at the latest version: its migrations, the fingerprint its
# last full check recorded (m010) and its fingerprint now.
_CURRENT_SQL = (
    "SELECT (SELECT list(name ORDER BY name) FROM schema_migrations), "
    "(SELECT max(fingerprint) FROM schema_state WHERE version = ?), "
    f"({_FINGERPRINT_SQL})"
)


# The tables and views of the journal file itself. (``information_schema.tables`` lists
# every attached database's, and its first read in a process costs about 10 ms.)
_TABLES_SQL = (
    "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() UNION ALL "
    "SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND NOT internal"
)


def _check_schema(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """A journal missing a table or column its migrations made (dropped by hand, a damaged
    file) is refused on open, before any command reads or writes half of it."""
    missing = sorted(_expected_schema() - set(_columns(con)))
    if missing:
        tables = {t for t, _ in _columns(con)}
        gone = sorted({t for t, _ in missing if t not in tables})
        what = (f"table(s) {', '.join(gone)}" if gone else
                "column(s) " + ", ".join(f"{t}.{c}" for t, c in missing[:5]))
        raise JournalError(
            f"journal {path} is damaged: {what} missing; restore it from a copy, or pass another "
            "--journal PATH (a new file starts a new journal)"
        )


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
    """Another process holds the file (DuckDB's "Could not set lock"), or this one holds it
    with other settings; a damaged file's "checksum ... block" is not a lock."""
    text = str(exc).lower()
    return re.search(r"\block\b", text) is not None or "different configuration" in text


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
        if not self.path.strip():
            raise JournalError("the journal path is empty; give a file such as gammaride.duckdb")
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise JournalError(
                    f"cannot create the folder of journal {self.path} ({exc.strerror}: "
                    f"{exc.filename}); pass a --journal PATH in a folder you can write"
                ) from None
        self._depth = 0
        self._holds = 0
        self._after_rollback: list[Callable[[], None]] = []  # what an aborted transaction refused
        # shared: hold the file only while writing (a running scanner); readers may open it between
        self.shared = bool(shared) and not read_only and self.path != ":memory:"
        # how long to wait for a file another process holds: a reader's copy or a scan's
        # write takes a fraction of a second, so a short wait; a writer must not lose a scan
        self.lock_wait = float(lock_wait) if lock_wait is not None else (60.0 if self.shared else 15.0)
        self._con: duckdb.DuckDBPyConnection | None = None
        # a file that does not exist yet is a new journal: nothing to ask it before migrating
        self._new = self.path == ":memory:" or not Path(self.path).exists()
        if read_only and self.path != ":memory:":
            self._snapshot()
            return
        self._connect(read_only)
        self._checked(lambda: self._migrate(read_only))

    def _checked(self, migrate) -> None:
        """Migrate and check the schema under one hold (no reader between two migrations),
        unless the journal is at the latest version and its tables and columns are those
        its last full check recorded; a failure lets go of the file and says what to do."""
        try:
            with self._held():
                if not self._schema_current():
                    migrate()
        except duckdb.Error as exc:
            self._release()
            raise JournalError(
                f"journal {self.path} cannot be read or upgraded ({' '.join(str(exc).split())[:300]}); "
                "check the disk has space, or restore the file from a copy"
            ) from None
        except JournalError:
            self._release()
            raise

    def _snapshot(self) -> None:
        """Copy the file and let go of it: a reader never keeps a running scanner from
        writing. An older journal is upgraded first. One in-memory DuckDB attaches the
        journal read-only, asks it for pending migrations, copies it and then holds only
        the copy (each DuckDB instance costs ~30 ms to start: one instead of three)."""
        if self._attach_source():  # an older journal: upgrade it once with a short writing open
            self._release()
            self._connect(False)
            self._checked(lambda: self._migrate(False))
            self._release()
            self._attach_source()
        if not self._schema_current():  # a damaged or newer journal is refused before it is copied
            self._checked(lambda: self._migrate(True))
        # the copy is a private temporary file attached read-only: a write through a reader
        # fails as it would on the journal itself, instead of vanishing with a memory copy
        tmp = tempfile.mkdtemp(prefix="gammaride-read-")
        weakref.finalize(self, shutil.rmtree, tmp, True)
        copy = os.path.join(tmp, "snapshot.duckdb").replace("'", "''")
        try:
            self._con.execute(f"ATTACH '{copy}' AS snapshot")
            self._con.execute("COPY FROM DATABASE src TO snapshot")
            self._con.execute("USE memory")
            self._con.execute("DETACH src")
            self._con.execute("DETACH snapshot")
            self._con.execute(f"ATTACH '{copy}' AS snapshot (READ_ONLY)")
            self._con.execute("USE snapshot")
        except BaseException:
            self._release()
            raise
        self._checked(lambda: self._migrate(True))

    def _attach_source(self) -> bool:
        """The journal attached read-only (``src``, in use) to a new in-memory DuckDB;
        whether it has migrations pending."""
        quoted = self.path.replace("'", "''")
        self._con = duckdb.connect()
        self._con.execute(f"SET TimeZone='{ET}'")
        try:
            self._retry(lambda: self._con.execute(f"ATTACH '{quoted}' AS src (READ_ONLY)"))
            self._con.execute("USE src")
            return self._pending()
        except BaseException:
            self._release()
            raise

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

    def _schema_current(self) -> bool:
        """One query: every migration applied and the tables and columns unchanged since
        the last full check (m010 records it). Anything else (an older or newer journal,
        a table dropped or added by hand) takes the full path: migrate and check."""
        if self._new:
            return False
        try:
            applied, recorded, now = self.con.execute(_CURRENT_SQL, [SCHEMA_VERSION]).fetchall()[0]
        except duckdb.CatalogException:  # before m010, or not a journal
            return False
        return recorded is not None and recorded == now and applied == _KNOWN_NAMES

    def _pending(self) -> bool:
        if self._schema_current():
            return False
        tables = {r[0] for r in self.con.execute(_TABLES_SQL).fetchall()}
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
                self._tidy_after_abort()
                raise
            self._depth = 0
            try:
                self.con.execute("COMMIT")  # fails, and rolls back, when a statement failed
            finally:
                self._tidy_after_abort()

    def _tidy_after_abort(self) -> None:
        while self._after_rollback:
            self._after_rollback.pop(0)()

    # schema ---------------------------------------------------------------------
    def _migrate(self, read_only: bool) -> None:
        """Apply the pending migrations, check the schema and record the check (m010), all
        in one transaction: a new journal is made in one commit, and one that fails the
        check (or a migration) is left as it was."""
        if read_only:
            self._upgrade(read_only)
            return
        with self.transaction():
            self._upgrade(read_only)
        self._new = False

    def _upgrade(self, read_only: bool) -> None:
        tables = {r[0] for r in self.con.execute(_TABLES_SQL).fetchall()}
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
        if read_only:
            if pending:
                raise JournalError(f"journal {self.path} has schema version {len(applied)} and needs an "
                                   "upgrade; run the command again (a writing open upgrades it)")
            _check_schema(self.con, self.path)
            return
        ran = []
        for name, fn in pending:
            fn(self.con)
            ran += [name, _now()]
        if ran:  # one statement for all of them (one each costs about a millisecond)
            marks = ", ".join("(?, ?)" for _ in pending)
            self.con.execute(f"INSERT INTO schema_migrations VALUES {marks}", ran)
        if applied:  # a new journal holds what the migrations just made: nothing to check
            _check_schema(self.con, self.path)
        self.con.execute("DELETE FROM schema_state")
        self.con.execute(f"INSERT INTO schema_state SELECT ?, ({_FINGERPRINT_SQL}), ?", [SCHEMA_VERSION, _now()])

    @property
    @_holding
    def schema_version(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM schema_migrations").fetchall()[0][0])

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
        if mode not in RUN_MODES:
            raise ValueError(f"run mode {mode!r} is not replay, offline, paper or live")
        from gammaride import __version__

        dry_run = bool(dict(settings or {}).get("dry_run", False))  # also a column since m003
        with self.transaction():
            run_id = int(self.con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM runs").fetchall()[0][0])
            self.con.execute(
                "INSERT INTO runs (run_id, mode, symbol, instrument, status, started_at, source, phase, "
                "exit_policy, iv_source, settings_json, version, dry_run) "
                "VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id, mode, symbol, instrument, started_at or _now(), source, phase,
                    exit_policy, iv_source, json.dumps(dict(settings or {}), default=str), __version__, dry_run,
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
        # only the columns the frame has: the table's default (NULL) fills the others
        # without scanning a column of Python Nones per row
        columns = [c for c in columns if c in frame.columns]
        data = frame[columns]
        text = [c for c in columns if pd.api.types.is_string_dtype(data[c].dtype)
                and not isinstance(data[c].dtype, pd.CategoricalDtype)]
        if text:
            data = _scannable(data, text)
        name = f"_incoming_{table}"
        self.con.register(name, data)
        # one thread: appending a frame in parallel splits it into pieces DuckDB then merges
        # in order, which costs more CPU and more time than the append itself
        threads = int(self.con.execute("SELECT current_setting('threads')").fetchall()[0][0])

        def tidy() -> None:
            self.con.execute(f"SET threads = {threads}")
            self.con.unregister(name)

        self.con.execute("SET threads = 1")
        try:
            quoted = ", ".join(f'"{c}"' for c in columns)
            self.con.execute(f"INSERT INTO {table} ({quoted}) SELECT {quoted} FROM {name}")
        except duckdb.Error:
            # a failed statement aborts the open transaction, which refuses any statement
            # until its rollback: tidy up after it, and let the insert's own error through
            if self._depth:
                self._after_rollback.append(tidy)
            else:
                tidy()
            raise
        tidy()

    def write_scans(self, scans: pd.DataFrame) -> None:
        self._insert_frame("scans", scans, SCAN_COLUMNS)

    def write_trades(self, trades: pd.DataFrame) -> None:
        self._insert_frame("trades", trades, TRADE_COLUMNS)

    def write_paths(self, paths: pd.DataFrame) -> None:
        self._insert_frame("trade_paths", paths, PATH_COLUMNS)

    @_holding
    def write_option_paths(self, paths: pd.DataFrame) -> None:
        """The option's own minute bars around each trade (replay priced from history)."""
        self._insert_frame("option_paths", paths, OPTION_PATH_COLUMNS)

    @_holding
    def next_trade_id(self) -> int:
        """A trade id no trade and no journaled order intent uses yet."""
        return int(self.con.execute(
            "SELECT greatest((SELECT coalesce(max(trade_id), 0) FROM trades), "
            "(SELECT coalesce(max(trade_id), 0) FROM order_intents)) + 1").fetchall()[0][0])

    # single-row writes (live scanner) -------------------------------------------
    @_holding
    def _insert_row(self, table: str, row: Mapping[str, Any]) -> None:
        cols = list(row)
        quoted = ", ".join(f'"{c}"' for c in cols)
        marks = ", ".join("?" for _ in cols)
        self.con.execute(f"INSERT INTO {table} ({quoted}) VALUES ({marks})", [_plain(row[c]) for c in cols])

    def write_scan(self, row: Mapping[str, Any]) -> None:
        for column, words in SCAN_VOCABULARIES.items():
            value = _plain(row.get(column))  # NaN, NaT: missing
            if value is not None and value not in words:
                raise JournalError(
                    f"scan not journaled: {column} {value!r} is not one of {', '.join(words)}; "
                    "write a value from its vocabulary (gammaride.journal.schema.SCAN_VOCABULARIES)"
                )
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
        exists = self.con.execute("SELECT 1 FROM orders WHERE order_id = ?", [row["order_id"]]).fetchall()
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
        self, closed_only: bool = True, mode: str | None = None, dry_runs: bool = False,
        once: str = "trade",
    ) -> pd.DataFrame:
        """Trades with their run's mode and identity (see :mod:`gammaride.journal.identity`),
        each trade once: ``once="trade"`` one row per identity (the default; a fill and a
        simulation of the same minute are two trades), ``"minute"`` one row per market
        minute (the fill preferred), ``"none"`` every row, superseded ones included.
        Trades of --dry-run runs only when asked."""
        sql = "SELECT t.*, r.mode FROM trades t JOIN runs r USING (run_id) WHERE 1=1"
        params: list[Any] = []
        if not dry_runs:
            sql += f" AND NOT {DRY_RUN_SQL}"
        if closed_only:
            sql += " AND t.status = 'closed'"
        if mode and mode != "all":
            sql += " AND r.mode = ?"
            params.append(mode)
        frame = self.query(sql + " ORDER BY t.entry_time, t.trade_id", params)
        return count_once(frame, once).reset_index(drop=True)

    @_holding
    def replayed_runs(self, symbol: str, sessions: list[date]) -> pd.DataFrame:
        """Earlier replay runs of ``symbol`` with trades still counted in ``sessions``:
        run_id, first and last session, trades."""
        frame = pd.DataFrame({"session": pd.to_datetime(pd.Series(sessions, dtype=object)).dt.date})
        self.con.register("_sessions", frame)
        try:
            return self.query(
                "SELECT t.run_id, strftime(min(t.entry_time), '%Y-%m-%d') AS first, "
                "strftime(max(t.entry_time), '%Y-%m-%d') AS last, count(*) AS trades "
                "FROM trades t JOIN runs r USING (run_id) "
                "WHERE r.mode = 'replay' AND t.symbol = ? AND t.superseded_by IS NULL "
                "AND CAST(t.entry_time AS DATE) IN (SELECT session FROM _sessions) "
                "GROUP BY t.run_id ORDER BY t.run_id",
                [symbol],
            )
        finally:
            self.con.unregister("_sessions")

    @_holding
    def supersede(self, run_id: int, symbol: str, sessions: list[date]) -> list[int]:
        """Mark earlier replay runs' trades of ``symbol`` in ``sessions`` as superseded by
        replay run ``run_id``; record the runs replaced. Returns their run ids."""
        earlier = self.replayed_runs(symbol, sessions)
        runs = [int(r) for r in earlier["run_id"] if int(r) != run_id]
        if not runs:
            return []
        days = sorted({pd.Timestamp(d).date() for d in sessions})
        with self.transaction():
            marks = ", ".join("?" for _ in runs)
            day_marks = ", ".join("?" for _ in days)
            self.con.execute(
                f"UPDATE trades SET superseded_by = ? WHERE run_id IN ({marks}) AND symbol = ? "
                f"AND superseded_by IS NULL AND CAST(entry_time AS DATE) IN ({day_marks})",
                [run_id, *runs, symbol, *days],
            )
            self.con.execute(
                "UPDATE runs SET replaces_runs = ? WHERE run_id = ?",
                [",".join(str(r) for r in runs), run_id],
            )
        return runs

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
        ).fetchall()[0]
        paths = self.con.execute(
            "SELECT count(*), coalesce(sum(hash(trade_id, minute, high, low, close)), 0) FROM trade_paths"
        ).fetchall()[0]
        return hashlib.sha256(json.dumps([str(v) for v in (*rows, *paths)]).encode()).hexdigest()[:16]

    @_holding
    def summary(self) -> dict[str, Any]:
        """What the journal holds: runs by mode, scans, signals, and trades counted once,
        fills (paper, live) apart from simulations (replay, offline); dry runs left out."""
        runs = self.query("SELECT mode, count(*) AS n FROM runs GROUP BY mode ORDER BY mode")
        scans = self.con.execute(
            "SELECT count(*), count(*) FILTER (WHERE in_window), count(*) FILTER (WHERE signal) FROM scans"
        ).fetchall()[0]
        span = self.con.execute("SELECT min(decision_time), max(decision_time) FROM scans").fetchall()[0]
        counted = self.trades(closed_only=False)
        closed = counted[counted["status"] == "closed"]
        dry = self.con.execute(
            f"SELECT count(*) FROM trades t JOIN runs r USING (run_id) WHERE {DRY_RUN_SQL}"
        ).fetchall()[0][0]
        run_errors = self.con.execute(
            "SELECT count(DISTINCT run_id) FROM errors WHERE run_id IS NOT NULL"
        ).fetchall()[0][0]
        return {
            "journal": self.path,
            "schema_version": self.schema_version,
            "runs": {str(r.mode): int(r.n) for r in runs.itertuples()},
            "scans": int(scans[0]),
            "in_window": int(scans[1]),
            "signals": int(scans[2]),
            "trades": len(closed),
            "open_trades": int((counted["status"] != "closed").sum()),
            "by_kind": {kind: _kind_summary(closed[closed["kind"] == kind]) for kind in KINDS},
            **quality(self.trades(closed_only=False, once="none")),
            "dry_run_trades": int(dry),
            "first_decision": span[0].isoformat() if span[0] is not None else None,
            "last_decision": span[1].isoformat() if span[1] is not None else None,
            "errors": int(self.con.execute("SELECT count(*) FROM errors").fetchall()[0][0]),
            "runs_with_errors": int(run_errors),
        }

    # order intents and the live scanner's bookkeeping ------------------------------
    @_holding
    def write_intent(self, row: Mapping[str, Any]) -> None:
        """Journal an order before it is sent (state 'intended'); ``detail`` is kept as JSON.
        A void or rejected intent (no order at the broker) of the same client id is replaced;
        any other is a duplicate and refused by the primary key."""
        self.con.execute("DELETE FROM order_intents WHERE client_order_id = ? AND state IN ('void', 'rejected')",
                         [row["client_order_id"]])
        data = {k: v for k, v in row.items() if k != "detail"}
        data.setdefault("state", "intended")
        data.setdefault("created_at", _now())
        if row.get("detail") is not None:
            data["detail_json"] = json.dumps(row["detail"], default=str)
        self._insert_row("order_intents", data)

    @_holding
    def update_intents(self, state: str, *, client_order_id: str | None = None, trade_id: int | None = None,
                       order_id: str | None = None, only_open: bool = False) -> None:
        """Move one intent (by client id) or every intent of a trade to ``state``."""
        if (client_order_id is None) == (trade_id is None):
            raise ValueError("give client_order_id or trade_id")
        where = "client_order_id = ?" if client_order_id is not None else "trade_id = ?"
        if only_open:
            where += " AND state IN ('intended', 'sent')"
        self.con.execute(
            f"UPDATE order_intents SET state = ?, order_id = coalesce(?, order_id), updated_at = ? WHERE {where}",
            [state, order_id, _now(), client_order_id if client_order_id is not None else trade_id],
        )

    @_holding
    def intents(self, mode: str, *, purpose: str | None = None, open_only: bool = False,
                trade_id: int | None = None) -> pd.DataFrame:
        """Order intents of real (not dry) runs of ``mode``, oldest first, ``detail`` parsed."""
        sql = (f"SELECT i.* FROM order_intents i JOIN runs r USING (run_id) WHERE r.mode = ? AND NOT {DRY_RUN_SQL}")
        params: list[Any] = [mode]
        if purpose is not None:
            sql += " AND i.purpose = ?"
            params.append(purpose)
        if open_only:
            sql += " AND i.state IN ('intended', 'sent')"
        if trade_id is not None:
            sql += " AND i.trade_id = ?"
            params.append(int(trade_id))
        frame = self.query(sql + " ORDER BY i.created_at, i.client_order_id", params)
        frame["detail"] = [json.loads(d) if isinstance(d, str) else {} for d in frame["detail_json"]]
        return frame

    @_holding
    def knows_order(self, client_order_id: str, mode: str) -> bool:
        """Whether a real run of ``mode`` journaled this client id (as a trade or an intent)."""
        row = self.con.execute(
            "SELECT (SELECT count(*) FROM trades t JOIN runs r USING (run_id) WHERE t.client_order_id = ? "
            f"AND r.mode = ? AND NOT {DRY_RUN_SQL}) + (SELECT count(*) FROM order_intents i JOIN runs r "
            f"USING (run_id) WHERE i.client_order_id = ? AND r.mode = ? AND NOT {DRY_RUN_SQL})",
            [client_order_id, mode, client_order_id, mode]).fetchall()[0]
        return bool(row[0])

    @_holding
    def has_trade(self, client_order_id: str) -> bool:
        """Whether a trade was journaled for this entry client id."""
        return self.con.execute("SELECT count(*) FROM trades WHERE client_order_id = ?",
                                [client_order_id]).fetchall()[0][0] > 0

    @_holding
    def open_trades(self) -> pd.DataFrame:
        """Open trades with a client order id, of runs that were not dry, with their run's mode."""
        return self.query(
            "SELECT t.*, r.mode AS run_mode FROM trades t JOIN runs r USING (run_id) "
            f"WHERE t.status = 'open' AND t.client_order_id IS NOT NULL AND NOT {DRY_RUN_SQL} ORDER BY t.trade_id")

    @_holding
    def trades_today(self, mode: str, day: Any, dry_run: bool) -> tuple[int, float]:
        """(trades, realized P&L) entered on ``day`` by runs of ``mode`` (dry or not)."""
        row = self.con.execute(
            "SELECT count(*), coalesce(sum(pnl_usd), 0) FROM trades t JOIN runs r USING (run_id) "
            f"WHERE r.mode = ? AND CAST(t.entry_time AS DATE) = ? AND {DRY_RUN_SQL} = ?",
            [mode, day, bool(dry_run)]).fetchall()[0]
        return int(row[0]), float(row[1])

    @_holding
    def write_broker_event(self, row: Mapping[str, Any]) -> None:
        """Something the broker did on its own (liquidation, exercise, expiry, shares)."""
        self._insert_row("broker_events", {"occurred_at": _now(), **row})

    @_holding
    def latest_errors(self, limit: int = 5) -> pd.DataFrame:
        """The newest errors first: occurred_at, run_id, scan_no, context, error_type, message."""
        return self.query(
            "SELECT occurred_at, run_id, scan_no, context, error_type, message FROM errors "
            f"ORDER BY occurred_at DESC LIMIT {int(limit)}"
        )


def _kind_summary(closed: pd.DataFrame) -> dict[str, Any]:
    """Closed trades of one kind: count, wins, net and gross P&L, where the prices came from."""
    n = len(closed)
    pnl = closed["pnl_usd"].astype(float)
    gross = closed["gross_pnl_usd"].astype(float)
    wins = int((pnl > 0).sum())
    return {
        "trades": n,
        "wins": wins,
        "win_rate": wins / n if n else None,
        "pnl_usd": float(pnl.sum()) if n else 0.0,
        "gross_pnl_usd": (float(gross.sum()) if gross.notna().all() else None) if n else 0.0,
        "avg_r": float(closed["r_multiple"].mean()) if n else None,
        "pnl_sources": {str(k): int(v) for k, v in closed["pnl_source"].value_counts().sort_index().items()},
    }

def _scannable(data: pd.DataFrame, text: list[str]) -> pd.DataFrame | pa.Table:
    """A frame with text columns as DuckDB scans it cheapest: an Arrow table (pandas 3's
    'str' columns are Arrow already; DuckDB reads Arrow strings without sampling Python
    objects for their type), else object columns (older DuckDB releases cannot scan
    pandas 3's 'str')."""
    try:
        return pa.Table.from_pandas(data, preserve_index=False)
    except pa.ArrowException:  # a column Arrow cannot type (mixed objects): DuckDB's own scan
        return data.astype({c: object for c in text if data[c].dtype != object})


def _plain(value: Any) -> Any:
    """numpy scalars and NaN to what DuckDB's parameter binding takes."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    if value is pd.NaT:
        return None
    return value
