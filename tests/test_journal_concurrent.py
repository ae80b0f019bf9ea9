"""Reading the journal of a running scan: the scanner holds the file only while it writes,
readers copy it and let go; no scan row is lost. Real processes, real DuckDB files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from gammaride import cli
from gammaride.journal import Journal

ROOT = Path(__file__).resolve().parents[1]


def _gammaride(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "gammaride.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _scans_so_far(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with Journal(path, read_only=True, lock_wait=1) as j:
            return int(j.summary()["scans"])
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def test_report_journal_and_calibrate_work_while_a_scan_runs(tmp_path, capsys):
    path = tmp_path / "scan.duckdb"
    # 60x: a scan a second, so the readers run while the scanner is writing; the scan runs
    # until the readers are done and is then stopped with Ctrl-C
    proc = _gammaride("scan", "--offline", "--scans", "600", "--speed", "60",
                      "--start", "2013-10-07 10:00:30", "--journal", str(path))
    try:
        deadline = time.monotonic() + 120
        while _scans_so_far(path) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, f"the scan ended before the readers could run: {proc.stderr.read()[-2000:]}"
        report = cli.main(["report", "--journal", str(path), "--out", str(tmp_path / "r.html")])
        during = _scans_so_far(path)
        summary = cli.main(["journal", "--journal", str(path), "--json"])
        calibrate = cli.main(["calibrate", "--journal", str(path), "--out", str(tmp_path / "c.json")])
        while _scans_so_far(path) <= during and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the scanner wrote again after the readers had the file
        running = proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert running, "the scan did not outlast the readers"
    assert report == 0 and (tmp_path / "r.html").stat().st_size > 1000
    said = capsys.readouterr()
    assert summary == 0 and '"scans":' in said.out
    # calibrate read the journal: it refuses only for too few trades, not for a lock
    assert calibrate == 0 or "calibration needs at least 50" in said.err
    assert "cannot open journal" not in said.err
    assert proc.returncode == 0 and "Interrupted (Ctrl-C)." in out, err
    printed = [int(n) for n in re.findall(r"^\[SCAN (\d+)\] \d", out, flags=re.M)]
    con = duckdb.connect(str(path), read_only=True)
    rows = con.execute("SELECT count(*), count(DISTINCT scan_no), max(scan_no) FROM scans").fetchone()
    con.close()
    scans = len(printed)
    assert printed == list(range(1, scans + 1))
    assert 1 <= during < scans and rows == (scans, scans, scans)  # every scan printed is journaled, none lost
    assert "lock" not in err.lower()


def test_journal_into_a_closed_pipe_prints_no_broken_pipe_traceback(tmp_path):
    """``gammaride journal | head``: the reader goes away; the command stops quietly."""
    path = tmp_path / "j.duckdb"
    Journal(path).close()
    code = ("import os, sys\n"
            "r, w = os.pipe(); os.close(r); os.dup2(w, 1)\n"
            "from gammaride import cli\n"
            f"sys.exit(cli.main(['journal', '--journal', {str(path)!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
