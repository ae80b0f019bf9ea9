"""Failing loudly: bad keys stop the run at once, an unreachable broker is named, a run
whose scans all failed or whose journal failed exits nonzero and says so in its status;
no journal, no trade. Real alpaca-py clients over loopback, real DuckDB journals."""

from __future__ import annotations

import json

import duckdb
import pytest

from gammaride import cli
from gammaride.config import Settings
from gammaride.journal import Journal
from gammaride.keys import Keys
from gammaride.offline import OfflineAlpaca
from gammaride.scanner.broker import AlpacaBroker
from gammaride.scanner.clock import SteppedClock
from gammaride.scanner.loop import Scanner

SIGNAL_AT = "2013-10-08 14:59:30"  # the 15:00 scan signals and enters a call


def refuse_inserts(path, table: str, column: str) -> None:
    """A journal whose ``table`` refuses every new row (as a full disk refuses every write)."""
    Journal(path).close()
    con = duckdb.connect(str(path))
    cols = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_name = ? ORDER BY ordinal_position", [table]).fetchall()
    con.execute(f"DROP TABLE {table}")
    con.execute(f"CREATE TABLE {table} (" + ", ".join(f'"{c}" {t}' for c, t in cols) + f", CHECK ({column} IS NULL))")
    con.close()


def _run_status(path) -> tuple[str, dict]:
    con = duckdb.connect(str(path), read_only=True)
    status, summary = con.execute("SELECT status, summary_json FROM runs ORDER BY run_id DESC").fetchone()
    con.close()
    return status, json.loads(summary or "{}")


def test_bad_keys_stop_the_run_at_once_with_the_brokers_message_and_a_nonzero_exit(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ALPACA_API_KEY", "PKWRONGKEY0000000000")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "wrong-secret-000000000000000000000000000")
    with OfflineAlpaca(start=SIGNAL_AT, speed=0) as srv:
        code = cli.main(["scan", "--url", srv.url, "--speed", "0", "--scans", "55",
                         "--journal", str(tmp_path / "j.duckdb")])
        requests = len(srv.request_log)
    out = capsys.readouterr()
    assert code == 6
    assert "✗ Error: the broker refused the keys (clock failed: HTTP 401" in out.out
    assert "[SCAN" not in out.out  # not 55 minutes of skipped scans
    assert requests <= 3
    assert "wrong-secret" not in out.out + out.err
    status, summary = _run_status(tmp_path / "j.duckdb")
    assert status == "failed" and "HTTP 401" in summary["failure"]


def test_an_unreachable_broker_is_named_in_the_scan_line_and_a_run_of_failed_scans_fails(tmp_path):
    with OfflineAlpaca(start="2013-10-08 11:00:30", speed=0) as srv:
        lines: list[str] = []
        broker = AlpacaBroker(Keys(srv.key_id, srv.secret_key), url=srv.url, timeout=0.5, retry_wait=0.01)
        journal = Journal(tmp_path / "j.duckdb")
        sc = Scanner(broker, journal, Settings.load(env={}), SteppedClock(srv.advance_to), mode="offline",
                     iv_percentile=0.5, out=lines.append)
        sc.start()
        srv.stop()  # the broker goes away; the stepped clock still moves in this process
        sc.run(3)
    scans = [ln for ln in lines if ln.startswith("[SCAN")]
    assert len(scans) == 3
    assert all("✗ Error: broker unreachable (" in ln and "network error" in ln for ln in scans), scans
    journal.close()
    status, summary = _run_status(tmp_path / "j.duckdb")
    assert status == "failed" and summary["failure"].startswith("all 3 scans failed")


def test_no_journal_no_trade_a_failing_journal_stops_entries_and_fails_the_run(tmp_path, capsys):
    path = tmp_path / "j.duckdb"
    refuse_inserts(path, "order_intents", "client_order_id")
    code = cli.main(["scan", "--offline", "--speed", "0", "--scans", "2", "--start", SIGNAL_AT,
                     "--iv-percentile", "0.5", "--journal", str(path)])
    out = capsys.readouterr()
    assert code == 4
    assert "✓ SUBMITTED" not in out.out  # the signal at 15:00 was not traded
    assert "[JOURNAL] entry order intent failed" in out.err
    assert out.out.count("✗ Error: journal write failed (entry order intent failed") == 2  # each scan after
    status, summary = _run_status(path)
    assert status == "failed" and "journal writes failed" in summary["failure"]
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM trades").fetchone()[0] == 0
    con.close()


def test_a_run_that_cannot_be_journaled_does_not_start(tmp_path, capsys):
    path = tmp_path / "j.duckdb"
    refuse_inserts(path, "runs", "run_id")
    with OfflineAlpaca(start=SIGNAL_AT, speed=0) as srv:
        code = cli.main(["scan", "--url", srv.url, "--speed", "0", "--scans", "3", "--iv-percentile", "0.5",
                         "--journal", str(path)])
        sent = srv.orders_received()
    err = capsys.readouterr().err
    assert code == 4 and sent == []
    assert f"cannot start a run in journal {path}" in err and "Traceback" not in err


def test_url_is_honoured_with_offline(tmp_path, capsys):
    with OfflineAlpaca(start="2013-10-07 10:05", speed=0) as srv:
        code = cli.main(["check", "--offline", "--url", srv.url, "--journal", str(tmp_path / "j.duckdb")])
        served = len(srv.request_log)
    out = capsys.readouterr().out
    assert served > 0  # the checks went to the server named by --url, not a built-in one
    assert code == 0 and "✗" not in out


@pytest.mark.parametrize("args", [["check", "--offline"]])
def test_check_offline_is_all_ticks_at_its_default_start(tmp_path, capsys, args):
    code = cli.main([*args, "--journal", str(tmp_path / "j.duckdb")])
    out = capsys.readouterr().out
    assert code == 0 and out.count("✓") == 7 and "✗" not in out
