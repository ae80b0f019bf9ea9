"""``gammaride scan`` and ``gammaride check`` through ``cli.main``, and the secret hunt."""

from __future__ import annotations

import logging
import re

import duckdb
import pytest

from gammaride import cli
from gammaride.journal import Journal
from gammaride.offline import Access, OfflineAlpaca

FAKE_ID = "PKGAMMARIDEFAKE7Q2Z"
FAKE_SECRET = "sEcReTgammarideFakeValue0123456789abcdXyZ"


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch):
    for var in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "APCA_API_KEY_ID", "APCA_API_SECRET_KEY",
                "GAMMARIDE_LIVE_CONFIRM", "GAMMARIDE_JOURNAL"):
        monkeypatch.delenv(var, raising=False)


def test_help_has_examples(capsys):
    for name in ("scan", "check"):
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        out = capsys.readouterr().out
        assert f"Example: gammaride {name}" in out


def test_scan_without_keys_runs_offline_and_says_so(tmp_path, capsys):
    path = tmp_path / "j.duckdb"
    code = cli.main(["scan", "--scans", "6", "--speed", "0", "--start", "2013-10-07 10:06:30",
                     "--journal", str(path), "--iv-percentile", "0.5", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "OFFLINE: no Alpaca keys found" in out
    assert sum(bool(re.match(r"\[SCAN \d+\] \d\d:", line)) for line in out.splitlines()) == 6
    with Journal(path, read_only=True) as j:
        runs = j.query("SELECT * FROM runs")
        assert list(runs["mode"]) == ["offline"] and list(runs["status"]) == ["completed"]
        assert len(j.query("SELECT * FROM scans")) == 6
        t = j.query("SELECT * FROM trades")
        assert len(t) == 1 and t["client_order_id"].iloc[0] == "gr-SPY-201310071008-C"


def test_placeholder_keys_are_refused_before_any_request(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", "PASTE_HERE")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "PASTE_HERE")
    code = cli.main(["scan", "--scans", "1", "--journal", str(tmp_path / "j.duckdb")])
    err = capsys.readouterr().err
    assert code == 7 and "placeholder" in err and "ALPACA_API_KEY" in err
    assert not (tmp_path / "j.duckdb").exists()
    monkeypatch.setenv("ALPACA_API_KEY", "")
    assert cli.main(["check"]) == 1
    assert "is empty" in capsys.readouterr().out


def test_live_needs_an_explicit_confirmation(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", FAKE_ID)
    monkeypatch.setenv("ALPACA_SECRET_KEY", FAKE_SECRET)
    code = cli.main(["scan", "--live", "--journal", str(tmp_path / "j.duckdb")])
    assert code == 2 and "GAMMARIDE_LIVE_CONFIRM=yes" in capsys.readouterr().err
    assert cli.main(["scan", "--live", "--offline"]) == 2


def test_check_prints_one_line_per_item(capsys):
    code = cli.main(["check", "--offline", "--start", "2013-10-07 09:40"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert [ln[0] for ln in lines] == ["✓"] * 7
    assert "PKTE" in lines[0] and "paper" not in lines[0]
    assert lines[3].startswith("✓ market open") and lines[4] == "✓ in the AM hedging window"
    assert lines[6].startswith("✓ exit phase: Phase 1")
    code = cli.main(["check", "--offline", "--start", "2013-10-07 12:00"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 1 and lines[4].startswith("✗ outside the hedging windows")


def test_secret_never_printed_logged_journaled_or_reported(tmp_path, capsys, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "j.duckdb"
    with OfflineAlpaca(start="2013-10-07 10:06:30", speed=0, access=Access(key_id=FAKE_ID, secret_key=FAKE_SECRET), faults="500=0.05,malformed=0.05") as srv:
        monkeypatch.setenv("ALPACA_API_KEY", FAKE_ID)
        monkeypatch.setenv("ALPACA_SECRET_KEY", FAKE_SECRET)
        code = cli.main(["scan", "--url", srv.url, "--speed", "0", "--scans", "8", "--journal", str(path),
                         "--iv-percentile", "0.5", "--debug"])
        assert code == 0
        check = cli.main(["check", "--url", srv.url])
        served = repr(srv.request_log)
        # a wrong secret on purpose: the 401 path must not echo it either
        monkeypatch.setenv("ALPACA_SECRET_KEY", FAKE_SECRET[::-1])
        assert cli.main(["check", "--url", srv.url]) == 1
    assert check in (0, 1)
    out = capsys.readouterr()
    texts = [out.out, out.err, caplog.text, served]
    con = duckdb.connect(str(path), read_only=True)
    for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
        texts.append(repr(con.execute(f'SELECT * FROM "{table}"').fetchall()))
    con.close()
    report = tmp_path / "report.html"
    try:
        import gammaride.commands.report  # noqa: F401 - another part of the package
    except ImportError:
        pass
    else:
        assert cli.main(["report", "--journal", str(path), "--out", str(report)]) == 0
        texts.append(report.read_text(encoding="utf-8"))
    everything = "\n".join(texts)
    assert "[SCAN 8]" in everything and "PKGA...7Q2Z" in everything  # what was searched is real
    assert FAKE_SECRET not in everything and FAKE_SECRET[::-1] not in everything
    assert FAKE_ID not in everything  # the key id only ever masked


def test_check_with_keys_the_broker_refuses(capsys, monkeypatch):
    with OfflineAlpaca(start="2013-10-07 09:40", speed=0, access=Access(key_id=FAKE_ID, secret_key=FAKE_SECRET)) as srv:
        monkeypatch.setenv("ALPACA_API_KEY", FAKE_ID)
        monkeypatch.setenv("ALPACA_SECRET_KEY", FAKE_SECRET[::-1])
        assert cli.main(["check", "--url", srv.url]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "✗ keys refused by the broker (key PKGA...7Q2Z): check they are this account's keys"
    assert lines[2].startswith("✗ balance unavailable")
