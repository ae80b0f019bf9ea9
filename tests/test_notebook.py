"""The Colab notebook: its cells' shape, that it is what the build script writes, and a
run top to bottom in a real kernel against the offline server; plus the helpers its
cells call (``gammaride.notebook.colab``)."""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gammaride.config import Settings
from gammaride.connection import Connection, connect
from gammaride.errors import CredentialsError
from gammaride.journal import Journal
from gammaride.notebook import colab
from gammaride.notebook.blocks import calculate_setup, check_conditions
from gammaride.scanner.clock import SteppedClock

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "gammaride_colab.ipynb"
BUILD_SCRIPT = ROOT / "notebooks" / "build_notebook.py"
ORDER_ID = re.compile(r"order id ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|PAPER_SIM_\d{3})")


def _cells() -> list[dict]:
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def _code_cells() -> list[str]:
    return [_source(c) for c in _cells() if c["cell_type"] == "code"]


# ---------------------------------------------------------------------------- shape
def test_every_code_cell_has_at_most_15_lines():
    code = _code_cells()
    assert len(code) == 7
    lengths = [len(src.split("\n")) for src in code]  # every line: comments and blank ones too
    assert max(lengths) <= 15, lengths


def test_each_block_has_a_markdown_cell_before_it_in_order():
    cells = _cells()
    headings = []
    for before, cell in zip(cells, cells[1:], strict=False):
        if cell["cell_type"] == "code":
            assert before["cell_type"] == "markdown"
            headings.append(_source(before).splitlines()[0])
    assert [h.split("·")[0].strip() for h in headings] == [f"## Block {i}" for i in range(1, 8)]


def test_committed_notebook_is_what_the_build_script_writes():
    pytest.importorskip("nbformat")
    spec = importlib.util.spec_from_file_location("build_notebook", BUILD_SCRIPT)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert NOTEBOOK.read_text(encoding="utf-8") == build.render(), (
        "the notebook differs from notebooks/build_notebook.py: run python notebooks/build_notebook.py"
    )


def test_cells_are_python_and_block_1_installs_from_one_pip_spec():
    trees = [ast.parse(src) for src in _code_cells()]
    block1 = trees[0]
    first = block1.body[0]
    assert isinstance(first, ast.Assign) and first.targets[0].id == "INSTALL_FROM"
    assert first.value.value == "git+https://github.com/gammaride/gammaride"
    calls = [n for n in ast.walk(block1) if isinstance(n, ast.Call) and ast.unparse(n.func) == "subprocess.run"]
    assert len(calls) == 1 and "'pip', 'install', '-q', INSTALL_FROM]" in ast.unparse(calls[0])
    branch = next(n for n in block1.body if isinstance(n, ast.If))
    assert "find_spec('gammaride')" in ast.unparse(branch.test)
    assert calls[0] in list(ast.walk(branch))  # pip runs only when gammaride is not installed
    debug = [n for n in ast.walk(trees[1]) if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "DEBUG"]
    assert len(debug) == 1 and debug[0].value.value is False  # the seed's DEBUG switch
    assert "Settings.load(debug=DEBUG)" in _code_cells()[1]


def _block1_install(install_from: str) -> str:
    """Block 1's install step (up to its first gammaride import) with ``install_from``."""
    src = _code_cells()[0]
    lines = src[: src.index("from gammaride.notebook.colab")].splitlines()
    lines[0] = f"INSTALL_FROM = {install_from!r}"
    return "\n".join(lines) + "\nimport gammaride\nprint(f'✓ gammaride {gammaride.__version__} is installed')\n"


def _clone_beside(tmp_path: Path) -> Path:
    """The working directory after ``!git clone``: a gammaride/ folder that is not the package."""
    work = tmp_path / "content"
    (work / "gammaride").mkdir(parents=True)
    (work / "gammaride" / "README.md").write_text("the clone's top folder\n")
    return work


def test_block_1_with_a_cloned_gammaride_folder_in_the_working_directory(tmp_path):
    """gammaride installed as a regular package (as pip installs it in Colab) and a clone's
    gammaride/ folder in the working directory: the package is imported, not the folder."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "gammaride").symlink_to(Path(colab.__file__).resolve().parents[1], target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-S", "-c", _block1_install("gammaride")], cwd=_clone_beside(tmp_path),
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "✓ gammaride " in done.stdout and "AttributeError" not in done.stderr


def test_block_1_says_why_a_failed_install_failed_and_how_to_fix_it(tmp_path):
    """Not installed (only the clone's folder is found) and an INSTALL_FROM that pip cannot use."""
    wheel = "/content/drive/MyDrive/gammaride-0.1.0-py3-none-any.whl"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-S", "-c", _block1_install(wheel)], cwd=_clone_beside(tmp_path),
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert f"✗ pip install {wheel} failed: ERROR: " in done.stderr  # pip's own last line: the cause
    assert "Fix: set INSTALL_FROM to gammaride, a git+https URL or a wheel path" in done.stderr
    assert "CalledProcessError" not in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------------------- execution
def _kernel_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No keys and no journal override reach the kernel; a kernel spec of this interpreter
    only, found first through JUPYTER_PATH, so nothing is registered anywhere else."""
    for name in list(os.environ):
        if name.startswith(("ALPACA_", "APCA_", "GAMMARIDE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GAMMARIDE_NOTEBOOK_CI", "1")
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter" / "runtime"))  # connection files


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_notebook_runs_offline_top_to_bottom(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    _kernel_env(monkeypatch, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=120,
                                     resources={"metadata": {"path": str(work)}})
    code = [c for c in nb.cells if c.cell_type == "code"]
    again = [copy.deepcopy(code[1]), copy.deepcopy(code[2])]  # Blocks 2 and 3, run a second time
    block2 = nb.cells.index(code[1])
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        for cell in again:
            client.execute_cell(cell, block2)
    setup, connect_, conditions, calc, order, scan, report = (_text(c) for c in code)
    for i, text in enumerate((setup, connect_, conditions, calc, order, scan, report), 1):
        assert "✓" in text or "✗" in text, f"block {i} printed no ✓/✗ line"
    assert "no keys found: running offline against the built-in simulated Alpaca; no real orders" in setup
    assert "journal on local disk" in setup
    assert re.search(r"^✓ balance: equity \$100,000\.00 ", connect_, re.M)
    assert "✓ connected: OFFLINE" in connect_ and "options level 3" in connect_
    assert "✓ SIGNAL" in conditions and "direction CALL" in conditions
    assert re.search(r"✓ CALL: TP \$\d+\.\d\d .* SL \$\d+\.\d\d", calc) and "✓ contracts 10 " in calc
    assert ORDER_ID.search(order) and "✓ journaled as trade" in order
    assert "Adopted open position SPY" in scan  # Block 6 manages Block 5's entry
    numbers = [int(m) for m in re.findall(r"^\[SCAN (\d+)\] \d\d:", scan, re.M)]
    assert numbers == list(range(1, 56))  # each of 1..55 exactly once, then it stopped
    assert re.search(r"^✓ 55 of 55 scans · [1-9]\d* entries · P&L [+-]?\$[\d,]+\.\d\d · errors 0$", scan, re.M)
    assert "calibration needs 50: Phase 1 exits stay in force" in report
    shown = [o for o in code[-1].outputs if "data" in o and "text/html" in o["data"]]
    assert shown and "Gate funnel" in shown[0]["data"]["text/html"]
    written = work / "gammaride-data" / "report.html"
    assert written.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    assert f"✓ report written to {written}" in report
    # a second Block 2 let go of the first connection and journal, and found the trades
    reconnected, rechecked = (_text(c) for c in again)
    assert re.search(r"^✓ balance: equity ", reconnected, re.M) and "Traceback" not in reconnected
    found = int(re.search(r": (\d+) closed trades so far", reconnected).group(1))
    assert "✓ time 15:01:05 ET" in rechecked  # the offline market starts over with the connection
    with Journal(work / "gammaride-data" / "journal.duckdb", read_only=True) as j:
        runs = j.query("SELECT run_id, mode, status FROM runs")
        # Block 5's entry is a run of its own; Block 6's scanner is the second
        assert runs[["mode", "status"]].values.tolist() == [["offline", "completed"]] * 2
        assert j.query("SELECT count(*) AS n FROM scans")["n"].iloc[0] == 55
        trades = j.trades(closed_only=True)
        assert len(trades) == found >= 1 and trades["exit_reason"].notna().all()
        assert (j.query("SELECT count(*) AS n FROM trades WHERE status = 'open'")["n"] == 0).all()


# ---------------------------------------------------------------------------- helpers
def test_no_keys_means_offline_said_loudly():
    lines: list[str] = []
    keys, offline = colab.keys_or_offline(env={}, colab=False, out=lines.append)
    assert keys is None and offline is True
    assert any("no keys found: running offline against the built-in simulated Alpaca; no real orders" in s
               for s in lines)


def test_keys_from_the_environment_and_placeholders_refused():
    lines: list[str] = []
    keys, offline = colab.keys_or_offline(
        env={"ALPACA_API_KEY": "PKABCDEFGH12345678", "ALPACA_SECRET_KEY": "s3cr3tvalue99"},
        colab=False, out=lines.append)
    assert not offline and keys.key_id == "PKABCDEFGH12345678"
    assert lines == ["✓ Alpaca keys found in $ALPACA_API_KEY (key PKAB...5678, secret hidden)"]
    lines.clear()
    with pytest.raises(CredentialsError, match="placeholder"):
        colab.keys_or_offline(env={"ALPACA_API_KEY": "PASTE_HERE", "ALPACA_SECRET_KEY": "x"},
                              colab=False, out=lines.append)
    assert lines and lines[0].startswith("✗ ")


def _fill(journal: Journal, n: int) -> None:
    run = journal.start_run("offline", "SPY")
    for i in range(n):
        journal.write_scan({"run_id": run, "scan_no": i + 1, "symbol": "SPY", "signal": False,
                            "skip_reason": "volume"})


def test_journal_on_local_disk_without_drive(tmp_path):
    lines: list[str] = []
    place = colab.journal_place(tmp_path / "data", drive_root=tmp_path / "no-drive", colab=False,
                                out=lines.append)
    assert place.drive_dir is None and place.journal == tmp_path / "data" / "journal.duckdb"
    assert lines == [f"✓ journal on local disk: {place.journal}"]
    lines.clear()
    colab.journal_place(tmp_path / "data", drive_root=tmp_path / "no-drive", colab=True, out=lines.append)
    assert lines[0].startswith("✗ Google Drive not mounted") and "lost when the runtime ends" in lines[0]


def test_journal_copied_to_drive_whole_and_brought_back_when_newer(tmp_path):
    drive = tmp_path / "MyDrive"
    drive.mkdir()
    lines: list[str] = []
    place = colab.journal_place(tmp_path / "a", drive_root=drive, colab=False, out=lines.append)
    assert place.drive_dir == drive / "gammaride" and "Google Drive mounted" in lines[0]
    with Journal(place.journal) as j:
        _fill(j, 3)
        # still open, rows possibly only in the WAL: the copy must hold them all the same
        assert place.save(j).startswith("✓ copied to Google Drive")
    (drive / "gammaride" / "journal.duckdb.wal").write_bytes(b"")  # stale: must not survive a save
    place.save()
    assert not (drive / "gammaride" / "journal.duckdb.wal").exists()
    with Journal(drive / "gammaride" / "journal.duckdb", read_only=True) as copy:
        assert copy.summary()["scans"] == 3
    # a new runtime: empty local disk, the journal comes back from Drive
    lines.clear()
    other = colab.journal_place(tmp_path / "b", drive_root=drive, colab=False, out=lines.append)
    assert any("brought the newer copy back from Drive: journal.duckdb" in s for s in lines)
    with Journal(other.journal, read_only=True) as j:
        assert j.summary()["scans"] == 3
    # the local journal is newer than Drive's: it stays
    with Journal(other.journal) as j:
        _fill(j, 2)
    os.utime(other.journal, (2e9, 2e9))
    colab.journal_place(tmp_path / "b", drive_root=drive, colab=False, out=lambda s: None)
    with Journal(other.journal, read_only=True) as j:
        assert j.summary()["scans"] == 5


def test_save_after_trades_copies_on_exit_lines_only(tmp_path):
    drive = tmp_path / "MyDrive"
    drive.mkdir()
    place = colab.journal_place(tmp_path / "a", drive_root=drive, colab=False, out=lambda s: None)
    copy = drive / "gammaride" / "journal.duckdb"
    shown: list[str] = []
    with Journal(place.journal) as j:
        emit = colab.save_after_trades(place, j, out=shown.append)
        emit("[SCAN 1] 15:02:05 - Time: IN | ✓ SUBMITTED")
        assert not copy.exists()
        _fill(j, 1)
        emit("  [EXIT] trade 1 SPY131010C00168000 TP · P&L $+110.00")
        assert copy.exists()
    assert shown == ["[SCAN 1] 15:02:05 - Time: IN | ✓ SUBMITTED",
                     "  [EXIT] trade 1 SPY131010C00168000 TP · P&L $+110.00"]


def test_paced_clock_sleeps_market_time_over_speed_then_steps():
    stepped_to: list[pd.Timestamp] = []
    slept: list[float] = []
    clock = colab.PacedClock(SteppedClock(stepped_to.append), speed=60, sleep=slept.append)
    t0 = pd.Timestamp("2013-10-10 15:01:05", tz="America/New_York")
    clock.sync(t0)
    clock.sleep_until(t0 + pd.Timedelta(seconds=55))
    clock.sleep_until(t0 + pd.Timedelta(hours=2))  # a long gap is capped at max_pause
    clock.sleep_until(t0)  # the past: no pause, no step back
    assert slept == pytest.approx([55 / 60, 5.0])
    assert stepped_to == [t0 + pd.Timedelta(seconds=55), t0 + pd.Timedelta(hours=2)]
    assert clock.now() == t0 + pd.Timedelta(hours=2)


def test_condition_and_setup_lines():
    s = Settings.load(env={})
    cond = {"now": pd.Timestamp("2013-10-10 15:01:05", tz="America/New_York"), "market_open": True,
            "in_window": True, "vol_spike": False, "avg_volume": 100_000.0, "current_volume": 199_000.0,
            "iv_percentile": 0.42, "iv_source": "rv_proxy", "direction": None, "signal": False,
            "skip_reason": "volume 1.9x < 2.0x"}
    lines: list[str] = []
    colab.print_conditions(cond, s, out=lines.append)
    assert lines == [
        "✓ time 15:01:05 ET (Thu 2013-10-10) · window IN (09:35-10:30 and 15:00-15:55 ET)",
        "✗ volume 199,000 vs 20-bar average 100,000: 1.9x (spike at 2.0x)",  # 1.99 floors to 1.9
        "✓ IV percentile 42% (rv_proxy; needs 30%)",
        "✗ direction NONE (no spike or no move)",
        "✗ no signal now: volume 1.9x < 2.0x",
    ]
    lines.clear()
    setup = {"direction": "call", "atr": 0.0514, "entry": 168.37, "tp": 168.4728, "sl": 168.3186,
             "tp_mult": 2.0, "sl_mult": 1.0, "contracts": 10, "iv_multiplier": 1.0, "phase": 1,
             "atr_bucket": "all"}
    colab.print_setup(setup, cond, out=lines.append)
    assert lines[:2] == ["✓ ATR(14) $0.05 · entry $168.37 (the underlying at the decision)",
                         "✓ CALL: TP $168.47 (2.0 ATR) · SL $168.32 (1.0 ATR)"]
    assert lines[2].startswith("✓ contracts 10 ") and lines[3].startswith("✓ phase 1")
    assert lines[-1].startswith("✗ no direction now")
    lines.clear()
    colab.print_setup(None, {"skip_reason": "no data"}, out=lines.append)
    assert lines == ["✗ no setup: no data"]


@pytest.fixture
def offline():
    with connect(offline=True, speed=0, start=colab.NOTEBOOK_START, settings=Settings.load(env={})) as conn:
        yield conn


def test_connection_lines_offline(offline):
    lines: list[str] = []
    acct = colab.print_connection(offline, out=lines.append)
    assert acct.equity == 100_000.0
    assert "✓ balance: equity $100,000.00 · cash $100,000.00 · options buying power $100,000.00 · account ACTIVE" in lines
    assert "✓ options level 3: buying calls and puts is allowed" in lines
    assert "✓ market open: 2013-10-10 15:01:05 ET · closes 16:00 ET" in lines


def test_block5_entry_is_journaled_and_the_scanner_exits_it(offline, tmp_path):
    cond = check_conditions(offline, iv_percentile=0.5)
    setup = calculate_setup(offline, cond)
    assert cond["signal"] and setup["contracts"] == 10
    lines: list[str] = []
    with Journal(tmp_path / "j.duckdb") as journal:
        order = colab.send_order(offline, cond, {**setup, "contracts": 1}, journal, out=lines.append)
        assert lines[0] == "✓ SIGNAL - Submitting order..."  # said before the order goes out
        assert ORDER_ID.search(lines[1]) and order["contracts"] == 1
        assert lines[2].startswith(f"✓ journaled as trade {order['trade_id']} ")
        trade = journal.query("SELECT * FROM trades").iloc[0]
        assert (trade.status, trade.contract_symbol, trade.tp, trade.sl) == (
            "open", order["contract"], setup["tp"], setup["sl"])
        said: list[str] = []
        scanner = offline.scanner(journal, iv_percentile=0.5, out=said.append)
        scanner.run(25)
        assert any(s.startswith(f"Adopted open position {order['contract']} x1") for s in said)
        closed = journal.query(f"SELECT * FROM trades WHERE trade_id = {order['trade_id']}").iloc[0]
        assert closed.status == "closed" and closed.exit_reason in {"tp", "sl", "time", "hard_stop"}
    assert offline.server.broker.positions == {}
    sent = offline.server.orders_received()
    assert sent[0]["side"] == "buy" and sent[0]["client_order_id"] == trade.client_order_id
    assert sum(o["side"] == "buy" and o["client_order_id"] == trade.client_order_id for o in sent) == 1


def test_live_account_only_rehearses(offline, tmp_path):
    cond = check_conditions(offline, iv_percentile=0.5)
    setup = calculate_setup(offline, cond)
    live = Connection(offline.broker, offline.clock, "live", offline.settings)
    lines: list[str] = []
    with Journal(tmp_path / "j.duckdb") as journal:
        order = colab.send_order(live, cond, setup, journal, out=lines.append)
        assert journal.query("SELECT count(*) AS n FROM trades").n[0] == 0
    assert order["order_id"].startswith("PAPER_SIM_")
    assert offline.server.orders_received() == []
    assert lines[2].startswith("✓ live account: this cell only rehearses")


def test_open_connection_paces_the_offline_clock_and_ignores_live_without_keys():
    lines: list[str] = []
    with colab.open_connection(None, live=True, speed=60, settings=Settings.load(env={}),
                               out=lines.append) as conn:
        assert conn.mode == "offline" and isinstance(conn.clock, colab.PacedClock)
    assert lines == ["✗ LIVE = True ignored: there are no keys, so this runs offline"]


def test_calibration_waits_for_50_trades_then_runs(tmp_path):
    from gammaride.data.bars import sample_bars
    from gammaride.replay.engine import IVChoice, run_replay

    s = Settings.load(env={})
    lines: list[str] = []
    with Journal(tmp_path / "j.duckdb") as j:
        run_replay(j, sample_bars(), s, None, IVChoice(), "bundled sample")
        n = len(j.trades(closed_only=True))
        assert colab.calibrate_when_ready(j, s, tmp_path / "calibration.json", out=lines.append) is None
        assert lines == [f"✗ {n} closed SPY trades in the journal; calibration needs 50: Phase 1 exits "
                         "stay in force (keep scanning, run this block again later)"]
        lines.clear()
        result = colab.calibrate_when_ready(j, s, tmp_path / "calibration.json", min_trades=n,
                                            out=lines.append)
    assert result is not None and result.n_trades == n and (tmp_path / "calibration.json").exists()
    assert lines[0].endswith(f"calibration on {n} trades, written to {tmp_path / 'calibration.json'}")
    assert lines[1].strip().startswith(("PUBLISHED", "NOT PUBLISHED"))
