import json

import pytest

from gammaride.cli import COMMANDS, build_parser, main
from gammaride.journal import Journal


def test_every_command_has_help_with_an_example(capsys):
    parser = build_parser()
    registered = parser._subparsers._group_actions[0].choices
    assert set(registered) <= {name for name, _, _ in COMMANDS}
    for name in registered:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        assert "Example: gammaride " + name in text, name


@pytest.mark.parametrize("argv, line", [
    (["replay", "--speed"], "gammaride replay: error: unrecognized arguments: --speed; see 'gammaride replay --help'"),
    (["scan", "--scans", "abc"], "gammaride scan: error: argument --scans: invalid int value: 'abc'; see 'gammaride scan --help'"),
    (["bogus"], "gammaride: error: argument COMMAND: invalid choice: 'bogus'"),
])
def test_a_usage_error_is_one_line_naming_the_help_and_exits_2(argv, line, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and err.startswith(line)


def test_replay_then_journal_summary(tmp_path, capsys):
    journal = tmp_path / "j.duckdb"
    assert main(["replay", "--journal", str(journal), "--iv-percentile", "0.4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Replayed 2,730 bars (7 sessions) from bundled sample" in out
    assert main(["journal", "--journal", str(journal), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["scans"] == 2730 and summary["runs"] == {"replay": 1}
    with Journal(journal) as j:
        assert j.query("SELECT count(*) AS n FROM trades").n[0] == summary["trades"] > 0
        assert j.query("SELECT iv_source FROM runs").iv_source[0] == "constant 0.4"


def test_replay_json_output(tmp_path, capsys):
    assert main(["replay", "--journal", str(tmp_path / "j.duckdb"), "--iv-gate", "off", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["bars"] == 2730 and data["trades"] > 0


def test_out_of_range_iv_percentile_is_a_clear_error(tmp_path, capsys):
    assert main(["replay", "--journal", str(tmp_path / "j.duckdb"), "--iv-percentile", "45"]) == 2
    err = capsys.readouterr().err
    assert "--iv-percentile 45.0 is outside [0, 1]; pass e.g. --iv-percentile 0.45" in err
    assert not (tmp_path / "j.duckdb").exists() or Journal(tmp_path / "j.duckdb").summary()["runs"] == {}


def test_journal_command_on_a_missing_file(tmp_path, capsys):
    assert main(["journal", "--journal", str(tmp_path / "none.duckdb")]) == 4
    assert "does not exist; run 'gammaride demo'" in capsys.readouterr().err


def test_journal_path_from_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GAMMARIDE_JOURNAL", str(tmp_path / "env.duckdb"))
    assert main(["replay", "--quiet", "--iv-gate", "off"]) == 0
    assert (tmp_path / "env.duckdb").exists()


def test_out_may_name_a_folder(tmp_path, capsys):
    journal = tmp_path / "j.duckdb"
    assert main(["replay", "--journal", str(journal), "--quiet"]) == 0
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["report", "--journal", str(journal), "--out", str(folder)]) == 0
    assert main(["calibrate", "--journal", str(journal), "--min-trades", "20", "--out", str(folder)]) == 0
    assert (folder / "report.html").exists() and (folder / "calibration.json").exists()
