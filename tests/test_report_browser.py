"""The report of a replay of the bundled sessions and a few paper fills, opened in
headless Chromium at a desktop width (1280 px) and a phone width (390 px).

Chromium logs every console message (errors, CSP violations, failed loads) to stderr
as ``...:CONSOLE...`` lines with ``--enable-logging=stderr``; a control page proves the
harness sees them, so "no console lines" is a real check. Layout is measured by a copy
of the page from a page around it (the report itself carries no script and forbids
one): the width the page body needs beyond the screen, and the on-screen size of every
chart label that is shown at that width.
"""

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from gammaride.config import Settings
from gammaride.data.bars import sample_bars
from gammaride.journal import Journal
from gammaride.replay.engine import run_replay
from gammaride.reports import write_report

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)"
)
SECTIONS = ("period", "headline", "backtest", "quality", "funnel", "calibration", "trades",
            "errors", "runs", "backtest-equity", "backtest-r-histogram", "backtest-excursions",
            "fills-equity", "fills-power")
MIN_CHART_TEXT_PX = 11.0
MEASURE = """<!DOCTYPE html>
<iframe id="page" src="%(src)s" style="width: %(width)dpx; height: 900px; border: 0"></iframe>
<script>
document.getElementById("page").addEventListener("load", function () {
  var doc = this.contentDocument, win = this.contentWindow;
  var view = doc.documentElement.clientWidth;
  var need = Math.max(doc.body.scrollWidth, doc.documentElement.scrollWidth);
  var min = 1e9, count = 0, smallest = "";
  doc.querySelectorAll("svg.chart text").forEach(function (t) {
    if (!t.getClientRects().length) return;          // in the layout not shown at this width
    var m = t.getScreenCTM();
    if (!m) return;
    var px = parseFloat(win.getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b);
    count += 1;
    if (px < min) { min = px; smallest = t.textContent; }
  });
  var charts = [];
  doc.querySelectorAll("svg.chart").forEach(function (s) {
    if (s.getClientRects().length) charts.push([s.id, Math.round(s.getBoundingClientRect().width)]);
  });
  document.title = "LAYOUT" + JSON.stringify({view: view, overflow: need - view, min: min,
                                                count: count, smallest: smallest, charts: charts});
});
</script>
"""


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


def _paper_fills(journal: Journal) -> None:
    """Three paper trades with measured, costed P&L on a later session."""
    first = journal.next_trade_id()
    run = journal.start_run("paper", "SPY")
    rows = []
    for k, (at, side, net, gross, r, reason) in enumerate([
        ("2023-08-04 09:41", "call", 41.5, 44.0, 1.9, "tp"),
        ("2023-08-04 10:02", "put", -23.0, -20.5, -1.0, "sl"),
        ("2023-08-07 15:06", "call", -0.001, 2.5, 0.0, "time"),
    ]):
        entry = pd.Timestamp(at, tz="America/New_York")
        rows.append({"trade_id": first + k, "run_id": run, "symbol": "SPY", "direction": side,
                     "status": "closed", "entry_time": entry, "entry_price": 450.0,
                     "exit_time": entry + pd.Timedelta(minutes=7), "exit_price": 450.5,
                     "exit_reason": reason, "atr": 0.2, "tp_mult": 2.0, "sl_mult": 1.0,
                     "pnl_usd": net, "gross_pnl_usd": gross, "fees_usd": gross - net,
                     "pnl_source": "fills", "r_multiple": r, "mfe_atr": 1.0, "mae_atr": 0.5,
                     "contracts": 1, "contract_symbol": "SPY230804C00450000"})
    journal.write_trades(pd.DataFrame(rows))
    # the session's dealer-gamma measure, so the gamma section draws its chart too
    start = pd.Timestamp("2023-08-04 09:36", tz="America/New_York")
    journal.write_scans(pd.DataFrame([
        {"run_id": run, "scan_no": k + 1, "decision_time": start + pd.Timedelta(minutes=k),
         "symbol": "SPY", "in_window": True, "window": "am", "price": 450.0 + 0.05 * k,
         "gex_net": (k - 12) * 2.5e8, "zero_gamma": 450.6, "gamma_regime": "short" if k < 12 else "long"}
        for k in range(30)
    ]))
    journal.finish_run(run)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    base = tmp_path_factory.mktemp("browser")
    with Journal(base / "journal.duckdb") as journal:
        run_replay(journal, sample_bars(), Settings.load(env={}), source="bundled sample")
        _paper_fills(journal)
        out, data = write_report(journal, base / "report.html")
    assert data["backtest"]["summary"]["n"] == 34 and data["fills"]["summary"]["n"] == 3
    return out, data["latest_trades"]["total"]


def layout(report: Path, tmp_path: Path, width: int) -> dict:
    """The report as shipped, in a frame exactly ``width`` CSS pixels wide (a headless
    window cannot be narrower than 500 px), measured by the page around it."""
    page = report.parent / f"measure-{width}.html"
    page.write_text(MEASURE % {"src": report.name, "width": width}, encoding="utf-8")
    result = chromium(page.as_uri(), tmp_path / f"profile-{width}", "--dump-dom",
                      "--allow-file-access-from-files", "--window-size=1400,900")
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r"<title>LAYOUT(.*?)</title>", result.stdout)
    assert found, result.stdout[:500]
    return json.loads(found.group(1).replace("&amp;", "&").replace("&quot;", '"'))


def test_harness_sees_console_errors(tmp_path):
    page = tmp_path / "control.html"
    page.write_text("<!DOCTYPE html><p>x</p><script>console.error('control-error')</script>")
    result = chromium(page.as_uri(), tmp_path / "profile", "--dump-dom")
    assert any("control-error" in line for line in console_lines(result.stderr))


def test_report_opens_without_console_errors_and_has_every_section(report, tmp_path):
    report, total = report
    result = chromium(report.as_uri(), tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_lines(result.stderr) == []
    dom = result.stdout
    for section in SECTIONS:
        assert f'id="{section}"' in dom, section
    assert dom.count("<svg") == 14  # three charts of two sections and the gamma chart, two layouts each
    assert "<title>gammaride report 2013-10-04 to 2023-08-07</title>" in dom
    assert 'id="funnel-fills"' in dom and ">2,730<" in dom  # every bundled bar was a scan
    assert "-0.00" not in dom and "-$0.00" not in dom
    assert f"25 of {total} trades shown" in dom


@pytest.mark.parametrize("width", [1280, 390])
def test_page_fits_the_screen_and_chart_text_is_readable(report, tmp_path, width):
    got = layout(report[0], tmp_path, width)
    assert got["view"] == width
    assert got["overflow"] <= 0, got  # the body never needs more than the screen's width
    assert got["count"] > 50, got     # the labels of the seven charts shown at this width
    assert got["min"] >= MIN_CHART_TEXT_PX, got
    widths = dict(got["charts"])
    assert len(widths) == 7 and ("chart-gamma-narrow" if width < 900 else "chart-gamma") in widths
    assert all(k.endswith("-narrow" if width < 900 else "-wide") or "rhist" in k or k == "chart-gamma"
               for k in widths), widths
    if width >= 900:  # a desktop chart uses the page's width
        assert widths["chart-backtest-equity-wide"] >= 1000, widths


def test_report_screenshots(report, tmp_path):
    keep = Path(os.environ.get("GAMMARIDE_SCREENSHOTS", tmp_path))
    keep.mkdir(parents=True, exist_ok=True)
    for name, size in (("laptop", (1280, 5200)), ("phone", (390, 7000))):
        shot = keep / f"report-{name}.png"
        result = chromium(report[0].as_uri(), tmp_path / f"profile-{name}",
                          f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}")
        assert result.returncode == 0, result.stderr[-2000:]
        assert console_lines(result.stderr) == []
        assert png_size(shot) == size
        assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
