"""Each trade once: the same replay journaled twice and a paper fill at a replayed minute
are counted once each by the report, `gammaride journal` and calibration."""

import csv
import json

import pandas as pd
import pytest

from gammaride.cli import main
from gammaride.config import Settings
from gammaride.data.bars import sample_bars
from gammaride.errors import CalibrationError
from gammaride.journal import Journal
from gammaride.journal.identity import count_once, kind_of, with_identity
from gammaride.replay.engine import run_replay
from gammaride.reports import build_report_data, render_report

SESSIONS = slice("2013-10-07", "2013-10-08")


def _paper_copy_of(j: Journal, trade: pd.Series) -> int:
    """A paper fill of a replayed trade's decision: the live scanner journals the decision
    time (the end of the decision bar) as entry_time, as replay does."""
    run = j.start_run("paper", "SPY")
    tid = j.next_trade_id()
    row = {k: trade[k] for k in ("symbol", "direction", "atr", "tp", "sl", "tp_mult", "sl_mult",
                                 "entry_price", "exit_price", "exit_reason", "hard_stop_time",
                                 "r_multiple", "mfe_atr", "mae_atr", "exit_time")}
    j.write_trade({**row, "trade_id": tid, "run_id": run, "status": "closed",
                   "entry_time": trade["entry_time"],
                   "pnl_usd": 12.5, "gross_pnl_usd": 14.0, "fees_usd": 1.5, "pnl_source": "fills",
                   "contracts": 1})
    paths = j.trade_paths([int(trade["trade_id"])]).assign(trade_id=tid)
    j.write_paths(paths)
    j.finish_run(run)
    return tid


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    path = tmp_path_factory.mktemp("identity") / "twice.duckdb"
    settings = Settings.load(env={})
    with Journal(path) as j:
        for _ in range(2):
            run_replay(j, sample_bars().loc[SESSIONS], settings)
        replayed = j.trades()
        _paper_copy_of(j, replayed.iloc[0])
    return path, len(replayed)


def test_identity_names_symbol_minute_direction_and_kind():
    frame = pd.DataFrame({
        "trade_id": [1, 2, 3, 4], "run_id": [1, 2, 3, 4], "mode": ["replay", "replay", "paper", "offline"],
        "symbol": "SPY", "direction": ["call", "call", "call", "put"],
        "entry_time": pd.to_datetime(["2013-10-07 10:08:00", "2013-10-07 10:08:00",
                                      "2013-10-07 10:08:04", "2013-10-07 10:08:00"]).tz_localize("America/New_York"),
        "superseded_by": [None, None, None, None], "pnl_usd": [1.0, 1.0, 2.0, 3.0],
    })
    ids = with_identity(frame)
    assert ids["identity"].tolist()[:3] == ["SPY 2013-10-07 10:08 call simulation"] * 2 + [
        "SPY 2013-10-07 10:08 call fill"]
    assert ids["pnl_source"].tolist() == ["delta_estimate", "delta_estimate", "fills", "fills"]
    assert count_once(frame)["trade_id"].tolist() == [2, 3, 4]  # the latest replay stands
    assert count_once(frame, per="minute")["trade_id"].tolist() == [3, 4]  # the fill stands
    superseded = frame.assign(superseded_by=[None, 9, None, None])
    assert count_once(superseded)["trade_id"].tolist() == [1, 3, 4]
    with pytest.raises(ValueError, match="'demo'"):
        kind_of("demo")
    with pytest.raises(ValueError, match="'twice'"):
        count_once(frame, per="twice")


def test_report_counts_each_trade_once_and_keeps_fills_apart(twice):
    path, n = twice
    data = build_report_data(path)
    fills, backtest = data["fills"], data["backtest"]
    assert backtest["summary"]["n"] == n and fills["summary"]["n"] == 1
    assert data["quality"]["duplicates"] == n and data["quality"]["superseded"] == 0
    assert fills["summary"]["total_usd"] == pytest.approx(12.5)
    assert fills["summary"]["total_gross_usd"] == pytest.approx(14.0)
    assert fills["sources"] == [{"source": "fills", "n": 1, "mark": "measured"}]
    assert backtest["sources"] == [{"source": "delta_estimate", "n": n, "mark": "estimated"}]
    html = render_report(data)
    assert f"<b>{n}</b> trades journaled again, counted once" in html
    assert '<span class="mark measured">measured</span> from broker fills' in html


def test_journal_command_counts_each_trade_once(twice, capsys):
    path, n = twice
    assert main(["journal", "--journal", str(path), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["trades"] == n + 1 and s["duplicates"] == n
    assert s["by_kind"]["simulation"]["trades"] == n
    assert s["by_kind"]["fill"] | {"pnl_sources": None} == {
        "trades": 1, "wins": 1, "win_rate": 1.0, "pnl_usd": 12.5, "gross_pnl_usd": 14.0,
        "avg_r": pytest.approx(s["by_kind"]["fill"]["avg_r"]), "pnl_sources": None}
    assert s["by_kind"]["fill"]["pnl_sources"] == {"fills": 1}


def test_calibration_counts_each_trade_once(twice):
    from gammaride.calibration import calibrate

    path, n = twice
    with pytest.raises(CalibrationError, match=f"has {n} closed SPY trades"):
        calibrate(path, Settings.load(env={}), min_trades=10_000)
    with Journal(path, read_only=True) as j:
        assert len(j.trades()) == n + 1
        assert len(j.trades(once="minute")) == n
        assert len(j.trades(once="none")) == 2 * n + 1


def test_replay_of_held_sessions_says_so_and_replace_supersedes(tmp_path, capsys):
    journal = str(tmp_path / "j.duckdb")
    bars = tmp_path / "bars.csv"
    frame = sample_bars().loc[SESSIONS].reset_index()
    frame.rename(columns={frame.columns[0]: "timestamp"}).to_csv(bars, index=False)
    base = ["replay", str(bars), "--journal", journal, "--quiet", "--iv-gate", "off"]
    assert main(base) == 0
    assert "already replayed" not in capsys.readouterr().out
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "these sessions were already replayed in run 1" in out and "--replace" in out
    assert main([*base, "--replace"]) == 0
    assert "superseded the trades of run 1" in capsys.readouterr().out
    with Journal(journal, read_only=True) as j:
        runs = j.query("SELECT run_id, replaces_runs FROM runs ORDER BY run_id")
        assert runs["replaces_runs"].tolist()[2] == "1,2"
        rows = j.trades(once="none")
        n = len(rows) // 3
        by_run = rows.groupby("run_id")["superseded_by"]
        assert by_run.apply(lambda s: s.fillna(0).astype(int).tolist()).to_dict() == {
            1: [3] * n, 2: [3] * n, 3: [0] * n}
        assert j.trades()["run_id"].unique().tolist() == [3]
        outliers = j.query("SELECT outlier_prints FROM runs ORDER BY run_id")["outlier_prints"].tolist()
    data = build_report_data(journal)
    # the replaced runs' outlier prints are the same bars again: only the latest run's count
    assert data["quality"] == {"superseded": 2 * n, "duplicates": 0, "outlier_prints": outliers[2],
                               "runs_with_errors": 0, "errors": 0, "dry_run_trades": 0}


def test_journal_export_writes_csv_with_identity_and_source(twice, tmp_path, capsys):
    path, n = twice
    out = tmp_path / "csv"
    assert main(["journal", "--journal", str(path), "--export", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'trades.csv'}" in printed
    with open(out / "trades.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * n + 1
    assert sum(r["counts"] == "True" for r in rows) == n + 1
    paper = [r for r in rows if r["kind"] == "fill"]
    assert len(paper) == 1 and paper[0]["pnl_source"] == "fills" and paper[0]["gross_pnl_usd"] == "14.0"
    assert paper[0]["identity"].endswith(" fill") and paper[0]["identity"].startswith("SPY 2013-10-0")
    with open(out / "runs.csv", newline="") as fh:
        runs = list(csv.DictReader(fh))
    assert [r["kind"] for r in runs] == ["simulation", "simulation", "fill"]
    with open(out / "scans.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert {"run_id", "scan_no", "mode", "kind", "dry_run"} <= set(header)
    (tmp_path / "afile").write_text("x")
    assert main(["journal", "--journal", str(path), "--export", str(tmp_path / "afile")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err


def test_journal_command_shows_the_latest_errors(tmp_path, capsys):
    path = tmp_path / "e.duckdb"
    with Journal(path) as j:
        run = j.start_run("paper", "SPY")
        for i in range(7):
            j.write_error(run, "scan", f"timeout number {i}\nsecond line", scan_no=i,
                          occurred_at=pd.Timestamp(f"2026-01-05 10:0{i}", tz="America/New_York"))
    assert main(["journal", "--journal", str(path), "--errors", "3"]) == 0
    out = capsys.readouterr().out
    assert "errors    7 in 1 run(s)" in out
    shown = [line for line in out.splitlines() if "timeout number" in line]
    assert len(shown) == 3 and "timeout number 6 second line" in shown[0]
    assert "2026-01-05T10:06:00  run 1 scan 6  scan: message:" in shown[0]
