"""``gammaride calibrate``: refuses below the minimum, prints the table and the verdict,
writes calibration.json next to the journal, and scan/replay then read it."""

from __future__ import annotations

import json

import pytest

from gammaride.cli import main
from gammaride.journal import Journal
from tests.synthetic import synthetic_frames, write_journal
from tests.test_calibration_synth import replay_journal


@pytest.fixture(scope="module")
def real_journal(tmp_path_factory):
    return replay_journal(tmp_path_factory.mktemp("cli") / "replay.duckdb")


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["calibrate", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "Example: gammaride calibrate --journal my.duckdb" in out
    for flag in (
        "--journal",
        "--out",
        "--min-trades",
        "--min-bucket-trades",
        "--edges",
        "--force",
        "--json",
    ):
        assert flag in out


def test_refuses_below_min_trades_with_count_and_what_to_do(real_journal, capsys):
    code = main(["calibrate", "--journal", str(real_journal)])
    err = capsys.readouterr().err
    assert code == 5
    assert err.startswith("gammaride calibrate: error: journal ")
    assert "has 34 closed SPY trades with recorded paths; calibration needs at least 50" in err
    assert "gammaride replay" in err and "--min-trades" in err
    assert not (real_journal.parent / "calibration.json").exists()


def test_lower_minimum_runs_and_explains_then_replay_keeps_phase1(real_journal, tmp_path, capsys):
    journal = replay_journal(tmp_path / "j.duckdb")
    code = main(["calibrate", "--journal", str(journal), "--min-trades", "20"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"Calibration of {journal}: 34 closed trades, ATR edges $")
    header = next(line for line in lines if line.startswith("bucket"))
    for column in ("ATR range", "n", "Phase 1", "Phase 2", "OOS P1", "OOS P2", "95% interval"):
        assert column in header
    rows = [line.split()[0] for line in lines[lines.index(header) + 1 :] if line.strip()][:3]
    assert rows == ["low", "high", "all"]  # 34 trades: two buckets of about 15, then the total
    assert "NOT PUBLISHED (cannot test yet)" in out and "keep Phase 1" in out
    assert "Anytime-valid interval: cannot test yet" in out
    written = tmp_path / "calibration.json"
    assert f"Written (not published) to {written}" in out
    assert json.loads(written.read_text())["published"] is False
    # replay next to it reads the file, says it was not published, and stays in Phase 1
    assert main(["replay", "--journal", str(journal), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Phase 1 exits: {written} was not published")
    with Journal(journal, read_only=True) as j:
        assert set(j.trades()["phase"]) == {1}


def test_json_output(real_journal, tmp_path, capsys):
    out_path = tmp_path / "c.json"
    code = main(
        [
            "calibrate",
            "--journal",
            str(real_journal),
            "--min-trades",
            "20",
            "--out",
            str(out_path),
            "--edges",
            "0.07,0.085",
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["path"] == str(out_path) and doc["published"] is False
    assert doc["edges"] == [0.07, 0.085] and doc["edges_source"] == "manual"
    assert [b["label"] for b in doc["buckets"]] == ["low", "mid", "high"]
    assert sum(b["n"] for b in doc["buckets"]) == doc["n_trades"] == 34
    assert json.loads(out_path.read_text())["verdict"] == doc["verdict"]


def test_bad_edges_are_a_one_line_error(real_journal, capsys):
    assert main(["calibrate", "--journal", str(real_journal), "--edges", "1.5,0.8"]) == 5
    assert "strictly ascending; e.g. --edges 0.8,1.5" in capsys.readouterr().err


def test_missing_journal(tmp_path, capsys):
    assert main(["calibrate", "--journal", str(tmp_path / "none.duckdb")]) == 4
    assert "does not exist" in capsys.readouterr().err


def test_published_calibration_drives_replay(tmp_path, capsys):
    trades, paths, _ = synthetic_frames(seed=1, n=900)
    journal = write_journal(tmp_path / "known.duckdb", trades, paths)
    assert main(["calibrate", "--journal", str(journal)]) == 0
    out = capsys.readouterr().out
    assert "PUBLISHED: out of sample" in out and "NOT PUBLISHED" not in out
    assert f"Published to {tmp_path / 'calibration.json'}" in out
    replayed = tmp_path / "replayed.duckdb"
    code = main(
        [
            "replay",
            "--journal",
            str(replayed),
            "--calibration",
            str(tmp_path / "calibration.json"),
            "--quiet",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.startswith(
        f"Phase 2 exits from {tmp_path / 'calibration.json'} (fitted "
    )
    with Journal(replayed, read_only=True) as j:
        t = j.trades()
    assert set(t["phase"]) == {2} and len(t) > 0
    assert set(t["atr_bucket"]) <= {"low", "mid", "high"}


def test_force_says_so_loudly(tmp_path, capsys):
    trades, paths, _ = synthetic_frames(seed=7, n=180, noise=True)
    journal = write_journal(tmp_path / "noise.duckdb", trades, paths)
    assert main(["calibrate", "--journal", str(journal), "--force"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "!" * 78 + "\n!!! FORCED PUBLISH: these exits are NOT supported out of sample"
    )
    assert "FORCED: published WITHOUT out-of-sample support" in out
    doc = json.loads((tmp_path / "calibration.json").read_text())
    assert doc["published"] is True and doc["forced"] is True


def test_sessions_replayed_twice_count_once(tmp_path, capsys):
    journal = replay_journal(tmp_path / "twice.duckdb", times=2)
    assert main(["calibrate", "--journal", str(journal), "--min-trades", "20"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "34 closed trades (34 left out: 34 journaled twice)" in first
