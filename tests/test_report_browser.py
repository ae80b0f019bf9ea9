"""The report of a replay of the bundled sessions, opened in headless Chromium.

Chromium logs every console message (errors, CSP violations, failed loads) to stderr
as ``...:CONSOLE...`` lines with ``--enable-logging=stderr``; a control page proves the
harness sees them, so "no console lines" is a real check.
"""

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from gammaride.config import Settings
from gammaride.journal import Journal
from gammaride.reports import write_report
from gammaride.sim.data import sample_bars
from gammaride.sim.replay import run_replay

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)"
)
SECTIONS = ("period", "headline", "equity", "breakdowns", "exits", "r-histogram", "excursions",
            "funnel", "calibration", "trades", "errors", "runs")


def chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--hide-scrollbars", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        *extra, url,
    ]
    env = {**os.environ, "HOME": str(profile)}
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    base = tmp_path_factory.mktemp("browser")
    with Journal(base / "journal.duckdb") as journal:
        run_replay(journal, sample_bars(), Settings.load(env={}), source="bundled sample")
        out, data = write_report(journal, base / "report.html")
    assert data["headline"]["n"] == 34
    return out


def test_harness_sees_console_errors(tmp_path):
    page = tmp_path / "control.html"
    page.write_text("<!DOCTYPE html><p>x</p><script>console.error('control-error')</script>")
    result = chromium(page.as_uri(), tmp_path / "profile", "--dump-dom")
    assert any("control-error" in line for line in console_lines(result.stderr))


def test_report_opens_without_console_errors_and_has_every_section(report, tmp_path):
    result = chromium(report.as_uri(), tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_lines(result.stderr) == []
    dom = result.stdout
    for section in SECTIONS:
        assert f'id="{section}"' in dom, section
    assert dom.count("<svg") == 3
    assert "<title>gammaride report 2013-10-04 to 2023-08-03</title>" in dom
    assert 'id="funnel-fills"' in dom and ">2,730<" in dom  # every bundled bar was a scan


def test_report_screenshots(report, tmp_path):
    keep = Path(os.environ.get("GAMMARIDE_SCREENSHOTS", tmp_path))
    keep.mkdir(parents=True, exist_ok=True)
    for name, size in (("laptop", (1280, 5200)), ("phone", (390, 7000))):
        shot = keep / f"report-{name}.png"
        result = chromium(report.as_uri(), tmp_path / f"profile-{name}",
                          f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}")
        assert result.returncode == 0, result.stderr[-2000:]
        assert console_lines(result.stderr) == []
        assert png_size(shot) == size
        assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
