import duckdb
import pandas as pd
import pytest

from gammaride.errors import JournalError, JournalVersionError
from gammaride.journal import Journal, store
from gammaride.journal.schema import (
    MIGRATIONS,
    SCAN_VOCABULARIES,
    SCHEMA_VERSION,
    enum_type,
    m001_initial,
)
from gammaride.rules.gamma import GATES
from gammaride.rules.signals import SKIP_CODES

STABLE_SCAN_COLUMNS = [
    "run_id", "decision_time", "symbol", "in_window", "window", "volume", "avg_volume",
    "vol_ratio", "vol_spike", "price", "price_change", "direction", "atr", "iv_percentile",
    "iv_source", "signal", "skip_reason",
]
STABLE_TRADE_COLUMNS = [
    "trade_id", "run_id", "symbol", "direction", "entry_time", "entry_price", "exit_time",
    "exit_price", "exit_reason", "atr", "tp", "sl", "tp_mult", "sl_mult", "phase", "atr_bucket",
    "iv_percentile", "contracts", "pnl_usd", "r_multiple", "mfe_atr", "mae_atr",
]


def _columns(j, table):
    return j.query(f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'").column_name.tolist()


def test_documented_columns_exist(tmp_path):
    with Journal(tmp_path / "j.duckdb") as j:
        assert set(STABLE_SCAN_COLUMNS) <= set(_columns(j, "scans"))
        assert set(STABLE_TRADE_COLUMNS) <= set(_columns(j, "trades"))
        for table in ("runs", "orders", "fills", "trade_paths", "iv_observations", "errors"):
            assert _columns(j, table)


def test_migrations_are_recorded_with_the_time_they_ran(tmp_path):
    with Journal(tmp_path / "j.duckdb") as j:
        rows = j.query("SELECT * FROM schema_migrations")
        assert rows.name.tolist() == [name for name, _ in MIGRATIONS] and rows.applied_at.notna().all()
        assert j.schema_version == SCHEMA_VERSION


def test_reopening_does_not_migrate_again(tmp_path):
    Journal(tmp_path / "j.duckdb").close()
    with Journal(tmp_path / "j.duckdb") as j:
        assert j.query("SELECT count(*) AS n FROM schema_migrations").n[0] == SCHEMA_VERSION


def test_a_journal_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "j.duckdb"
    Journal(path).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_migrations VALUES ('m999_future', now())")
    con.close()
    with pytest.raises(JournalVersionError, match=f"newer than this gammaride's version {SCHEMA_VERSION}; upgrade gammaride"):
        Journal(path)


def _first_schema_journal(path):
    """A journal as the first release wrote it (m001 only), open for more rows."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)")
    m001_initial(con)
    con.execute("INSERT INTO schema_migrations VALUES ('m001_initial', now())")
    return con


def _changed_by_hand(path, sql):
    """A journal at the latest version, then ``sql`` run on it outside gammaride."""
    Journal(path).close()
    con = duckdb.connect(str(path))
    con.execute(sql)
    con.close()


def test_a_journal_at_the_first_schema_opens_and_upgrades_keeping_its_rows(tmp_path):
    path = tmp_path / "old.duckdb"
    con = _first_schema_journal(path)
    con.execute(
        "INSERT INTO runs (run_id, mode, symbol, status, started_at, settings_json) VALUES "
        "(1, 'replay', 'SPY', 'completed', now(), '{}'), "
        "(2, 'paper', 'SPY', 'completed', now(), '{\"dry_run\": true}')"
    )
    con.execute(
        "INSERT INTO trades (trade_id, run_id, symbol, direction, status, entry_time, entry_price, pnl_usd) "
        "VALUES (1, 1, 'SPY', 'call', 'closed', now(), 100.0, 12.5)"
    )
    con.close()
    with Journal(path) as j:
        assert j.schema_version == SCHEMA_VERSION
        runs = j.query("SELECT run_id, dry_run FROM runs ORDER BY run_id")
        assert runs.dry_run.tolist() == [False, True]
        trade = j.query("SELECT pnl_usd, gross_pnl_usd, pnl_source FROM trades").iloc[0]
        assert (trade.pnl_usd, trade.gross_pnl_usd, trade.pnl_source) == (12.5, 12.5, "delta_estimate")


def test_a_journal_at_the_latest_version_opens_without_rebuilding_the_schema(tmp_path):
    path = tmp_path / "j.duckdb"
    Journal(path).close()
    store._expected_schema.cache_clear()
    with Journal(path) as j:
        assert j.schema_version == SCHEMA_VERSION
    assert store._expected_schema.cache_info().misses == 0


def test_an_upgraded_journal_records_its_check_and_then_opens_without_one(tmp_path):
    path = tmp_path / "old.duckdb"
    con = _first_schema_journal(path)
    con.close()
    Journal(path).close()
    con = duckdb.connect(str(path))
    assert con.execute("SELECT version FROM schema_state").fetchall() == [(SCHEMA_VERSION,)]
    con.close()
    store._expected_schema.cache_clear()
    Journal(path).close()
    assert store._expected_schema.cache_info().misses == 0


def test_a_column_added_by_hand_is_checked_once_then_opens_fast(tmp_path):
    path = tmp_path / "j.duckdb"
    _changed_by_hand(path, "ALTER TABLE trades ADD COLUMN my_note VARCHAR")
    store._expected_schema.cache_clear()
    Journal(path).close()  # the full check: nothing missing, the new shape recorded
    assert store._expected_schema.cache_info().misses == 1
    Journal(path).close()
    assert store._expected_schema.cache_info().misses == 1


def test_a_column_dropped_after_the_last_check_is_still_refused(tmp_path):
    path = tmp_path / "j.duckdb"
    _changed_by_hand(path, "ALTER TABLE trades DROP COLUMN mfe_atr")
    with pytest.raises(JournalError, match="damaged: column.s. trades.mfe_atr missing"):
        Journal(path)


def test_a_foreign_duckdb_file_is_refused(tmp_path):
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE prices (x INT)")
    con.close()
    with pytest.raises(JournalError, match="not a gammaride journal"):
        Journal(path)


def test_transaction_rolls_back_everything(tmp_path):
    with Journal(tmp_path / "j.duckdb") as j:
        with pytest.raises(ValueError):
            with j.transaction():
                run = j.start_run("paper", "SPY")
                j.write_error(run, "scan", RuntimeError("boom"))
                raise ValueError("abort")
        assert j.query("SELECT count(*) AS n FROM runs").n[0] == 0
        assert j.query("SELECT count(*) AS n FROM errors").n[0] == 0


def test_times_come_back_in_new_york(tmp_path):
    with Journal(tmp_path / "j.duckdb") as j:
        run = j.start_run("paper", "SPY")
        t = pd.Timestamp("2024-03-01 14:37", tz="UTC")
        j.write_scan({"run_id": run, "scan_no": 1, "decision_time": t, "symbol": "SPY", "signal": False,
                      "skip_reason": "outside window"})
        got = j.query("SELECT decision_time FROM scans").decision_time[0]
        assert got == t and str(got.tz) == "America/New_York" and got.hour == 9


def test_unknown_run_mode_is_refused(tmp_path):
    with Journal(tmp_path / "j.duckdb") as j, pytest.raises(ValueError, match="'backtest' is not replay"):
        j.start_run("backtest", "SPY")


def test_read_only_open_of_a_missing_journal_says_what_to_do(tmp_path):
    with pytest.raises(JournalError, match="does not exist; run 'gammaride replay'"):
        Journal(tmp_path / "missing.duckdb", read_only=True)


def test_iv_history_keeps_the_last_snapshot_of_each_session(tmp_path):
    with Journal(tmp_path / "j.duckdb") as j:
        for ts, iv in [("2024-03-01 09:40", 0.20), ("2024-03-01 15:00", 0.22), ("2024-03-04 10:00", 0.30)]:
            j.record_iv(pd.Timestamp(ts, tz="America/New_York"), "SPY", iv, "snapshot")
        j.record_iv(pd.Timestamp("2024-03-05 10:00", tz="America/New_York"), "SPY", 0.9, "rv_proxy")
        hist = j.iv_history("SPY")
        assert hist.tolist() == [0.22, 0.30]


def test_a_frame_can_be_written_right_after_a_single_value_read(tmp_path):
    # DuckDB refuses register() while a result is half read; every single-value read
    # of the journal reads its result to the end
    with Journal(tmp_path / "j.duckdb") as j:
        run = j.start_run("replay", "SPY")
        tid = j.next_trade_id()
        j.write_paths(pd.DataFrame({
            "trade_id": [tid], "minute": [1], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0],
            "bar_time": [pd.Timestamp("2024-03-01 10:00", tz="America/New_York")],
        }))
        assert j.schema_version == SCHEMA_VERSION and j.fingerprint()
        assert len(j.trade_paths([tid])) == 1 and run == 1


def _scan_types(con):
    return dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_name = 'scans'").fetchall())


def test_fixed_vocabulary_scan_columns_are_enums_of_the_rules_own_codes(tmp_path):
    with Journal(tmp_path / "j.duckdb") as j:
        types = _scan_types(j.con)
        for column, words in SCAN_VOCABULARIES.items():
            assert types[column] == enum_type(words)
        assert SCAN_VOCABULARIES["skip_code"] == SKIP_CODES and SCAN_VOCABULARIES["gamma_gate"] == GATES
        assert types["skip_reason"] == "VARCHAR" and types["symbol"] == "VARCHAR"  # open texts stay text


def test_an_old_journal_s_scans_upgrade_to_enums_keeping_every_text_and_the_key(tmp_path):
    path = tmp_path / "old.duckdb"
    con = _first_schema_journal(path)
    con.execute("INSERT INTO runs (run_id, mode, symbol, status, started_at) VALUES (1, 'paper', 'SPY', 'completed', now())")
    # 'auto' and 'rv' were written by releases before today's vocabularies
    con.execute(
        "INSERT INTO scans (run_id, scan_no, symbol, \"window\", direction, iv_source, skip_reason) VALUES "
        "(1, 1, 'SPY', 'am', 'put', 'auto', NULL), (1, 2, 'SPY', 'pm', NULL, 'rv', 'volume 1.3x < 2.0x'), "
        "(1, 3, 'SPY', NULL, 'call', NULL, 'outside window')"
    )
    con.close()
    with Journal(path) as j:
        rows = j.con.execute('SELECT "window", direction, iv_source, skip_reason FROM scans ORDER BY scan_no').fetchall()
        assert rows == [("am", "put", "auto", None), ("pm", None, "rv", "volume 1.3x < 2.0x"),
                        (None, "call", None, "outside window")]
        assert _scan_types(j.con)["iv_source"].startswith("ENUM(") and "'auto'" in _scan_types(j.con)["iv_source"]
        # users' SQL reads them as text
        assert j.con.execute("SELECT count(*) FROM scans WHERE iv_source = 'auto' OR direction LIKE 'ca%'"
                             ).fetchall() == [(2,)]
        assert j.con.execute("SELECT count(*) FROM scans WHERE skip_code = 'volume'").fetchall() == [(0,)]
        assert j.con.execute("SELECT string_agg(coalesce(\"window\", 'none') || '/' || direction, ',' "
                             "ORDER BY scan_no) FROM scans").fetchall() == [("am/put,none/call",)]
        j.write_scan({"run_id": 1, "scan_no": 4, "symbol": "SPY", "window": "am", "skip_code": "volume"})
        with pytest.raises(duckdb.ConstraintException, match="Duplicate key"):
            j.write_scan({"run_id": 1, "scan_no": 4, "symbol": "SPY"})


def test_a_live_scan_outside_a_vocabulary_is_refused_naming_the_value(tmp_path):
    with Journal(tmp_path / "j.duckdb") as j:
        run = j.start_run("paper", "SPY")
        j.write_scan({"run_id": run, "scan_no": 1, "symbol": "SPY", "direction": float("nan"),
                      "skip_code": "volume", "iv_source": "iv_history", "gamma_gate": "short_only"})
        with pytest.raises(JournalError, match="skip_code 'stale' is not one of window, warmup, volume"):
            j.write_scan({"run_id": run, "scan_no": 2, "symbol": "SPY", "skip_code": "stale"})
        assert j.con.execute("SELECT scan_no, direction, skip_code FROM scans").fetchall() == [(1, None, "volume")]


def test_frames_with_text_of_every_kind_are_written_as_given(tmp_path):
    # pandas 3 'str', object with missing values, all-None object, and an object column
    # mixing numbers and text (Arrow cannot type it: DuckDB's own scan of the frame takes it)
    entry = pd.Timestamp("2024-03-01 10:00", tz="America/New_York")
    trades = pd.DataFrame({
        "trade_id": [1, 2], "run_id": [1, 1], "symbol": pd.array(["SPY", "SPY"], dtype="str"),
        "direction": ["call", "put"], "status": "closed", "entry_time": [entry, entry],
        "entry_price": [500.0, 501.0], "contract_symbol": pd.Series(["SPY240301C00500000", None], dtype=object),
        "client_order_id": pd.Series([None, None], dtype=object),
        "atr_bucket": pd.Series(["low", 2], dtype=object),
    })
    with Journal(tmp_path / "j.duckdb") as j:
        j.write_trades(trades)
        got = j.con.execute("SELECT symbol, direction, contract_symbol, client_order_id, atr_bucket "
                            "FROM trades ORDER BY trade_id").fetchall()
    assert got == [("SPY", "call", "SPY240301C00500000", None, "low"), ("SPY", "put", None, None, "2")]


def test_a_frame_refused_inside_a_transaction_says_why_and_leaves_the_journal_as_it_was(tmp_path):
    with Journal(tmp_path / "j.duckdb") as j:
        threads = j.con.execute("SELECT current_setting('threads')").fetchall()
        scans = pd.DataFrame({"run_id": [1, 1], "scan_no": [1, 1], "symbol": ["SPY", "SPY"]})
        with pytest.raises(duckdb.ConstraintException, match="(?i)duplicate key"), j.transaction():
            j.start_run("replay", "SPY")
            j.write_scans(scans)
        assert j.con.execute("SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM scans)").fetchall() == [(0, 0)]
        assert j.con.execute("SELECT current_setting('threads')").fetchall() == threads
        j.write_scans(scans.iloc[:1])  # the journal takes the next frame
        assert j.con.execute("SELECT count(*) FROM scans").fetchall() == [(1,)]
