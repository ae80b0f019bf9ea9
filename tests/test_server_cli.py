"""``gammaride serve``: help, argument errors, and a real foreground run in a subprocess."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest
import requests

from gammaride.cli import main


def test_serve_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "Example: gammaride serve --port 8765" in out
    for flag in ("--port", "--speed", "--start", "--bars", "--iv", "--faults", "--seed"):
        assert flag in out


def test_serve_rejects_a_bad_fault_spec(capsys):
    assert main(["serve", "--port", "0", "--faults", "429=2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gammaride serve: error:") and "outside 0..1" in err


def test_serve_rejects_a_missing_bars_file(capsys, tmp_path):
    assert main(["serve", "--port", "0", "--bars", str(tmp_path / "nope.csv")]) == 3
    assert "does not exist" in capsys.readouterr().err


# how a script's background job (`gammaride serve &`) starts it: with SIGINT ignored
_AS_A_BACKGROUND_JOB = ("import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                        "from gammaride.cli import run; run()")


def test_serve_runs_in_the_foreground_until_interrupted(tmp_path):
    """Ctrl-C (SIGINT) stops it, even started as a background job that inherits SIGINT ignored."""
    csv = tmp_path / "bars.csv"
    rows = ["timestamp,open,high,low,close,volume"]
    rows += [f"2013-10-07 09:{30 + i:02d},{100 + i},{100.5 + i},{99.5 + i},{100.2 + i},{1000 + i}" for i in range(10)]
    csv.write_text("\n".join(rows) + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", _AS_A_BACKGROUND_JOB, "serve", "--port", "0", "--speed", "0",
         "--start", "2013-10-07 09:35", "--bars", str(csv)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(4)]
        url = re.search(r"(http://127\.0\.0\.1:\d+)", lines[0]).group(1)
        key = lines[1].split()[-1]
        secret = lines[2].split()[-1]
        assert "10 bars of SPY" in lines[3]
        h = {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret}
        bars = requests.get(f"{url}/v2/stocks/SPY/bars", params={"timeframe": "1Min"}, headers=h, timeout=5).json()
        assert [b["c"] for b in bars["bars"]] == [100.2, 101.2, 102.2, 103.2, 104.2]
        assert requests.get(f"{url}/v2/account", timeout=5).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)  # a hang guard: a loaded machine stops it in seconds
    assert proc.returncode == 0, err
    assert "stopped" in out


def test_serve_reads_an_iv_series_file_and_rejects_junk(tmp_path, capsys):
    from gammaride.commands.serve import _read_iv

    f = tmp_path / "iv.csv"
    f.write_text("timestamp,iv\n2013-10-07 09:30,0.18\n2013-10-07 12:00,0.25\n")
    series = _read_iv(str(f))
    assert list(series) == [0.18, 0.25] and series.index[1].hour == 12
    assert _read_iv("0.3") == 0.3
    assert main(["serve", "--port", "0", "--iv", str(tmp_path / "missing.csv")]) == 2
    assert "neither a number nor an existing file" in capsys.readouterr().err
    f.write_text("when,vol\n1,2\n")
    assert main(["serve", "--port", "0", "--iv", str(f)]) == 2
    assert "timestamp,iv" in capsys.readouterr().err
