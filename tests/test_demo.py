"""`gammaride demo`: the offline tour on a fresh checkout, fast, ending in a report a
browser opens."""

import re
import time

import pytest

from gammaride.cli import main
from gammaride.journal import Journal

from .test_report_browser import CHROMIUM, chromium, console_lines


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "gammaride-demo"
    out.mkdir()  # a folder that already holds a file of the user's, which the demo must keep
    (out / "my_journal.duckdb").write_text("precious")
    capture = pytest.MonkeyPatch()
    lines: list[str] = []
    capture.setattr("builtins.print", lambda *a, **k: lines.append(" ".join(map(str, a))))
    started = time.perf_counter()
    try:
        code = main(["demo", "--out", str(out)])
    finally:
        capture.undo()
    return code, "\n".join(lines), time.perf_counter() - started, out


def test_demo_runs_offline_in_under_a_minute(demo):
    code, text, seconds, out = demo
    assert code == 0
    assert seconds < 60
    assert "no keys, no network" in text


def test_demo_prints_the_real_scan_lines_and_trades_its_signal(demo):
    _, text, _, _ = demo
    scans = re.findall(r"^\[SCAN (\d+)\] \d\d:\d\d:\d\d - Time: (IN|OUT) \| Volume: ", text, re.M)
    assert [int(n) for n, _ in scans] == list(range(1, 21))
    assert re.search(r"\[SCAN 12\] 10:08:05 - Time: IN \| Volume: 2\.1x \| Direction: CALL .* ✓ SUBMITTED", text)


def test_demo_says_loudly_that_its_calibration_is_too_small_to_trust(demo):
    _, text, _, out = demo
    assert "enough for the\n50 calibration needs, far too few to trust" in text
    assert (out / "calibration.json").exists()


def test_demo_journal_holds_the_offline_run_and_the_replay(demo):
    _, _, _, out = demo
    with Journal(out / "journal.duckdb", read_only=True) as j:
        runs = j.query("SELECT mode, count(*) AS n FROM runs GROUP BY mode ORDER BY mode")
        assert runs.set_index("mode").n.to_dict() == {"offline": 1, "replay": 2}
        scans = j.query("SELECT run_id, count(*) AS n FROM scans GROUP BY run_id ORDER BY run_id").n.tolist()
        assert scans[:2] == [20, 2730] and scans[2] > 2730
        assert j.query("SELECT outlier_prints FROM runs WHERE run_id = 2").outlier_prints[0] == 4


def test_demo_shows_a_priced_replay_of_the_offline_servers_history(demo):
    _, text, _, out = demo
    assert "3. Priced replay: SPY history" in text
    assert re.search(r"P&L net [-+]\$[\d,.]+ \(gross [-+]\$[\d,.]+, costs -\$[\d,.]+\) \| priced by: .*option bars \d+", text)
    with Journal(out / "journal.duckdb", read_only=True) as j:
        t = j.query("SELECT pnl_source, count(*) AS n FROM trades WHERE run_id = 3 GROUP BY 1")
        assert t.set_index("pnl_source").n.get("option_bars", 0) > 0
        assert j.query("SELECT count(*) AS n FROM option_paths").n[0] > 0
    assert (out / "history" / "stocks" / "SPY" / "1Min").is_dir()


def test_demo_never_deletes_files_it_did_not_write(demo, capsys):
    code, _, _, out = demo
    keep = out / "my_journal.duckdb"
    assert code == 0
    assert keep.read_text() == "precious" and (out / "report.html").exists()
    assert main(["demo", "--out", str(keep)]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_demo_report_renders_in_headless_chromium(demo, tmp_path):
    _, text, _, out = demo
    report = out / "report.html"
    assert f"wrote {report.resolve()}" in text
    result = chromium(report.resolve().as_uri(), tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0 and console_lines(result.stderr) == []
    assert 'id="headline"' in result.stdout and 'id="funnel"' in result.stdout
