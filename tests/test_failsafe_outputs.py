"""Outputs write regular files, whole or not at all: never over a device, a directory or a
symbolic link, and an interrupted write leaves nothing behind for long."""

from __future__ import annotations

import os
import stat
import time

import pytest

from gammaride import cli
from gammaride.calibration import write_calibration
from gammaride.errors import OutputError
from gammaride.journal import Journal
from gammaride.outputs import LEFTOVER_AGE_SECONDS, remove_leftovers, write_atomic
from tests.test_calibration_policy import valid_document


@pytest.fixture
def journal(tmp_path):
    path = tmp_path / "j.duckdb"
    Journal(path).close()
    return path


def _one_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_report_refuses_a_device_and_leaves_it_a_device(journal, capsys):
    code = cli.main(["report", "--journal", str(journal), "--out", "/dev/full"])
    assert code == OutputError.exit_code
    assert "/dev/full is not a regular file" in _one_error_line(capsys)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    assert not [p for p in os.listdir("/dev") if p.startswith(".full.")]


@pytest.mark.parametrize("command", ["report", "calibrate"])
def test_out_on_a_symlink_is_refused_and_the_link_kept(command, journal, tmp_path, capsys):
    target = tmp_path / "real.txt"
    target.write_text("precious\n")
    link = tmp_path / "link.html"
    link.symlink_to(target)
    code = cli.main([command, "--journal", str(journal), "--out", str(link)])
    assert code == OutputError.exit_code
    assert "is a symbolic link" in _one_error_line(capsys)
    assert link.is_symlink() and target.read_text() == "precious\n"


def test_out_under_a_file_and_an_empty_out_are_refused(journal, tmp_path, capsys):
    (tmp_path / "plain").write_text("x")
    assert cli.main(["report", "--journal", str(journal), "--out", str(tmp_path / "plain" / "r.html")]) == 8
    assert "plain is a file, not a directory" in _one_error_line(capsys)
    assert cli.main(["report", "--journal", str(journal), "--out", ""]) == 8
    assert "--out is empty" in _one_error_line(capsys)


def test_a_folder_out_gets_the_default_name(journal, tmp_path, capsys):
    folder = tmp_path / "site"
    folder.mkdir()
    assert cli.main(["report", "--journal", str(journal), "--out", str(folder)]) == 0
    assert (folder / "report.html").is_file()


def test_calibration_writer_refuses_a_directory_and_a_fifo(tmp_path):
    (tmp_path / "calibration.json").mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        write_calibration(tmp_path / "calibration.json", valid_document())
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        write_calibration(fifo, valid_document())


def test_leftovers_of_interrupted_writes_are_removed_and_fresh_ones_kept(tmp_path):
    target = tmp_path / "calibration.json"
    old = tmp_path / ".calibration.json.k3j2h1.tmp"
    fresh = tmp_path / ".calibration.json.a9b8c7.tmp"
    other = tmp_path / ".report.html.zzzzzz.tmp"
    for p in (old, fresh, other):
        p.write_text("{half")
    past = time.time() - LEFTOVER_AGE_SECONDS - 5
    for p in (old, other):
        os.utime(p, (past, past))
    write_calibration(target, valid_document())
    assert not old.exists()  # a dead write's leftover
    assert fresh.exists()  # possibly another process writing right now
    assert other.exists()  # another file's: its own writer cleans it
    assert remove_leftovers(target, older_than=0) == [fresh]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".report.html.zzzzzz.tmp", "calibration.json"]


def test_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = write_atomic(tmp_path / "r.html", "<p>old</p>")
    os.chmod(target, 0o640)
    assert write_atomic(target, b"<p>new</p>").read_text() == "<p>new</p>"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the file's mode is kept

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OutputError, match=r"\(No space left on device\); nothing was changed"):
        write_atomic(target, "<p>newer</p>", what="report")
    assert target.read_text() == "<p>new</p>"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_a_full_disk_is_a_clean_error(full_disk, journal, capsys):
    out = full_disk / "report.html"
    code = cli.main(["report", "--journal", str(journal), "--out", str(out)])
    assert code == OutputError.exit_code
    assert "No space left on device" in _one_error_line(capsys)
    assert list(full_disk.iterdir()) == []


def test_copy_is_atomic_too(tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(os.urandom(3 << 20))
    dst = write_atomic(tmp_path / "d" / "a.bin", copy_of=src)
    assert dst.read_bytes() == src.read_bytes()
