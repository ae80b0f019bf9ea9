"""Every bad input is one line on stderr with its exit code, never a traceback, and a
refused command leaves the journal as it was."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from gammaride import cli
from gammaride.config import ET
from gammaride.data.bars import load_bars, sample_paths
from gammaride.errors import BarsFileError, ConfigError, JournalError


@pytest.fixture(scope="module")
def bars_csv(tmp_path_factory) -> Path:
    """One real SPY session (2013-10-07) as a CSV with UTC offsets."""
    day = load_bars(sample_paths()[1])
    path = tmp_path_factory.mktemp("bars") / "spy.csv"
    day.reset_index().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def journal_file(tmp_path_factory, bars_csv) -> Path:
    path = tmp_path_factory.mktemp("journal") / "j.duckdb"
    assert cli.main(["replay", str(bars_csv), "--journal", str(path), "--quiet", "--iv-gate", "off"]) == 0
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(capsys, argv: list[str], code: int) -> str:
    """Run the CLI; assert the exit code and exactly one line on stderr; return it."""
    assert cli.main(argv) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "unexpected" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def bars_with(tmp_path: Path, bars_csv: Path, edit) -> Path:
    lines = bars_csv.read_text().splitlines()
    edit(lines)
    path = tmp_path / "edited.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(text: str):
    def edit(lines):
        lines[5] = text
    return edit


def every_date(old: str, new: str, drop_offset: bool = False):
    def edit(lines):
        for i in range(1, len(lines)):
            lines[i] = lines[i].replace(old, new)
            if drop_offset:
                lines[i] = lines[i].replace("-04:00", "")
    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (row("2262-04-12 09:34:00,167.29,167.43,167.28,167.42,707606"), "'2262-04-12 09:34:00' cannot be read"),
        (row("0001-01-01 09:34:00,167.29,167.43,167.28,167.42,707606"), "'0001-01-01 09:34:00' cannot be read"),
        (row("03,167.29,167.43,167.28,167.42,707606"), "'03' cannot be read"),
        (row("２０１３-10-07 09:34:00,167.29,167.43,167.28,167.42,707606"), "cannot be read"),
        (row("2013-10-07 09:34:00-04:00,167.29,167.43,167.28,167.42," + "9" * 400), "a number too large to hold"),
        (row("2013-10-07 09:34:00-04:00,167.29,167.43,167.28,167.42,7,8,9"), "Expected 6 fields in line 6"),
        (row('"2013-10-07 09:34:00-04:00,167.29'), "EOF inside string"),
        (row("2013-10-07 09:34:00,167.29,167.43,167.28,167.42,707606"), "has no UTC offset but"),
        (every_date("2013-10-07", "2013-10-05"), "Saturday 2013-10-05, a weekend"),
        (every_date("2013-10-07", "2013-12-25"), "Wednesday 2013-12-25, an exchange holiday"),
        (every_date("2013-10-07", "07.10.2013", drop_offset=True), "'07.10.2013 09:30:00' cannot be read"),
        (every_date("2013-10-07", "10/07/2013", drop_offset=True), "'10/07/2013 09:30:00' cannot be read"),
    ],
)
def test_a_bad_bars_file_is_one_line_naming_the_row(edit, expected, tmp_path, bars_csv, journal_file, capsys):
    before = digest(journal_file)
    path = bars_with(tmp_path, bars_csv, edit)
    line = refused(capsys, ["replay", str(path), "--journal", str(journal_file), "--quiet"], BarsFileError.exit_code)
    assert expected in line and str(path) in line
    assert digest(journal_file) == before


def test_times_are_parsed_once_and_mixed_dst_offsets_agree(tmp_path):
    """Naive strings are New York wall time; -05:00 and -04:00 may share a file."""
    path = tmp_path / "dst.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2013-11-01 09:30:00-04:00,1,1,1,1,1\n"
        "2013-11-04T09:30:00-05:00,1,1,1,1,1\n"
        "2013-11-05 14:30:00Z,1,1,1,1,1\n"
    )
    naive = tmp_path / "naive.csv"
    naive.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2013-11-01 09:30:00,1,1,1,1,1\n2013-11-04 09:30,1,1,1,1,1\n2013-11-05 09:30:00.000,1,1,1,1,1\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aware, plain = load_bars(path), load_bars(naive)
    expected = pd.DatetimeIndex(["2013-11-01 09:30", "2013-11-04 09:30", "2013-11-05 09:30"]).tz_localize(ET)
    assert list(aware.index) == list(expected) == list(plain.index)
    assert str(aware.index.tz) == ET


def test_a_nanosecond_time_parses_without_a_warning(tmp_path):
    path = tmp_path / "ns.csv"
    path.write_text("timestamp,open,high,low,close,volume\n2013-11-01 09:30:00.000000001,1,1,1,1,1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_bars(path)) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GAMMARIDE_MAX_CONTRACTS": "inf"}, "max_contracts='inf' is not a whole number"),
        ({"GAMMARIDE_MAX_CONTRACTS": "1e400"}, "max_contracts='1e400' is not a whole number"),
        ({"GAMMARIDE_RISK_PER_TRADE": "nan"}, "risk_per_trade=nan is out of range"),
        ({"GAMMARIDE_MAX_CONTRACT": "3"}, "unknown environment variable GAMMARIDE_MAX_CONTRACT. Did you mean GAMMARIDE_MAX_CONTRACTS?"),
        ({"GAMMARIDE_JOURNALL": "x.duckdb"}, "Did you mean GAMMARIDE_JOURNAL?"),
    ],
)
def test_bad_environment_settings_are_refused(env, expected, monkeypatch, bars_csv, journal_file, capsys):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = digest(journal_file)
    line = refused(capsys, ["replay", str(bars_csv), "--journal", str(journal_file), "--quiet"], ConfigError.exit_code)
    assert expected in line
    assert digest(journal_file) == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "is a directory; give the path of a .toml file"),
        (b"max_contracts = 3\n# \xff\xfe\n", "is not UTF-8 text (byte 20)"),
        (b"max_contracts = true\n", "max_contracts=True is a true/false value; give a whole number"),
        (b"risk_per_trade = false\n", "risk_per_trade=False is a true/false value"),
        (b"max_contract = 3\n", "Did you mean 'max_contracts'?"),
    ],
)
def test_bad_config_files_are_refused(content, expected, tmp_path, bars_csv, capsys):
    config = tmp_path / "settings.toml"
    if content is None:
        config.mkdir()
    else:
        config.write_bytes(content)
    line = refused(capsys, ["replay", str(bars_csv), "--journal", str(tmp_path / "j.duckdb"), "--quiet",
                            "--config", str(config)], ConfigError.exit_code)
    assert expected in line
    assert not (tmp_path / "j.duckdb").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["scan", "--offline", "--speed", "1e308"], "--speed 1e+308 is not in 0..1e+06"),
        (["scan", "--offline", "--speed", "nan"], "--speed nan is not in"),
        (["scan", "--offline", "--speed", "0", "--start", "2262-04-12"], "'2262-04-12' is outside 1678-2261"),
        (["scan", "--offline", "--speed", "0", "--start", "07.10.2013 09:30"], "cannot read the time '07.10.2013 09:30'"),
        (["scan", "--offline", "--speed", "0", "--faults", "slow_seconds=inf"], "slow_seconds=inf is outside 0..600"),
        (["scan", "--offline", "--speed", "0", "--faults", "500=nan"], "500=nan is outside 0..1"),
        (["serve", "--port", "0", "--faults", "slow_seconds=inf"], "slow_seconds=inf is outside 0..600"),
        (["serve", "--port", "0", "--speed", "inf"], "--speed inf is not in"),
        (["serve", "--port", "0", "--seed", "-1"], "--seed -1 is negative"),
        (["calibrate", "--seed", "-1"], "--seed -1 is negative"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(argv, expected, tmp_path, capsys):
    journal = tmp_path / "j.duckdb"
    if argv[0] != "serve":
        argv = [*argv, "--journal", str(journal)]
    line = refused(capsys, argv, ConfigError.exit_code)
    assert expected in line
    assert argv[0] == "calibrate" or not journal.exists()


def test_an_empty_journal_path_is_refused(capsys, bars_csv):
    for command in (["replay", str(bars_csv), "--quiet"], ["journal"], ["report"], ["scan", "--offline"]):
        assert "--journal is empty" in refused(capsys, [*command, "--journal", ""], ConfigError.exit_code)


def _damaged(journal_file: Path, tmp_path: Path, how: str) -> Path:
    path = tmp_path / f"{how}.duckdb"
    path.write_bytes(journal_file.read_bytes())
    if how == "truncated":
        with open(path, "r+b") as fh:
            fh.truncate(100_000)
    else:
        con = duckdb.connect(str(path))
        con.execute({"no_table": "DROP TABLE trades", "no_column": "ALTER TABLE scans DROP COLUMN skip_reason"}[how])
        con.close()
    return path


@pytest.mark.parametrize("how", ["truncated", "no_table", "no_column"])
@pytest.mark.parametrize("command", ["journal", "report", "calibrate", "replay", "scan"])
def test_a_damaged_journal_is_refused_on_open_and_left_as_it_was(how, command, journal_file, bars_csv, tmp_path, capsys):
    path = _damaged(journal_file, tmp_path, how)
    before = digest(path)
    argv = {
        "journal": ["journal"],
        "report": ["report", "--out", str(tmp_path / "r.html")],
        "calibrate": ["calibrate", "--out", str(tmp_path / "c.json")],
        "replay": ["replay", str(bars_csv), "--quiet"],
        "scan": ["scan", "--offline", "--speed", "0", "--scans", "1"],
    }[command]
    line = refused(capsys, [*argv, "--journal", str(path)], JournalError.exit_code)
    expected = {"truncated": "Could not read enough bytes", "no_table": "damaged: table(s) trades missing",
                "no_column": "damaged: column(s) scans.skip_reason missing"}[how]
    assert expected in line
    assert digest(path) == before
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "c.json").exists()


def test_scan_prints_no_banner_before_refusing_the_journal(journal_file, tmp_path, capsys):
    path = _damaged(journal_file, tmp_path, "no_table")
    refused(capsys, ["scan", "--offline", "--speed", "0", "--journal", str(path)], JournalError.exit_code)
    # the banner would have gone to stdout: refused() saw stdout, and it was empty of OFFLINE
    assert cli.main(["scan", "--offline", "--speed", "0", "--journal", str(path)]) == JournalError.exit_code
    out, _ = capsys.readouterr()
    assert out == ""


def test_a_journal_under_a_file_or_in_a_directory_is_refused(tmp_path, bars_csv, capsys):
    (tmp_path / "plain").write_text("x")
    line = refused(capsys, ["replay", str(bars_csv), "--quiet", "--journal", str(tmp_path / "plain" / "j.duckdb")],
                   JournalError.exit_code)
    assert "cannot create the folder of journal" in line
    line = refused(capsys, ["journal", "--journal", str(tmp_path)], JournalError.exit_code)
    assert "Is a directory" in line


def test_a_read_only_folder_is_a_clean_error(read_only_dir, bars_csv, capsys):
    line = refused(capsys, ["replay", str(bars_csv), "--quiet", "--journal", str(read_only_dir / "j.duckdb")],
                   JournalError.exit_code)
    assert "Read-only file system" in line


def test_a_full_disk_during_replay_is_a_clean_error(full_disk, bars_csv, capsys):
    line = refused(capsys, ["replay", str(bars_csv), "--quiet", "--journal", str(full_disk / "j.duckdb")],
                   JournalError.exit_code)
    assert "No space left on device" in line or "could not" in line.lower()


def test_an_unexpected_exception_is_still_one_line(monkeypatch, capsys):
    import gammaride.commands.journal as command

    def broken(args):  # noqa: ANN001
        raise KeyError("a\nmulti-line\nbug")

    monkeypatch.setattr(command, "run", broken)
    assert cli.main(["journal"]) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected KeyError" in err and "Traceback" not in err


def test_the_broker_never_sends_times_with_nanoseconds():
    from gammaride.scanner.broker import _utc

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = _utc(pd.Timestamp("2013-10-07 10:05:00.123456789", tz=ET))
    assert t.microsecond == 123456 and str(t.tzinfo) == "UTC"
