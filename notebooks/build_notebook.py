"""Write notebooks/gammaride_colab.ipynb from the cell sources below.

The cells live here as Python strings so they can be reviewed like code; the committed
notebook must be exactly what this script writes (a test checks it). After editing a
cell, run:

    python notebooks/build_notebook.py
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat

NOTEBOOK = Path(__file__).with_name("gammaride_colab.ipynb")
MAX_CELL_LINES = 15

INTRO = """\
# gammaride in Colab: the 0DTE dealer-gamma scanner

Dealers who are short same-day (0DTE) options hedge mechanically, and their hedging shows
up as volume spikes that push SPY for 10-30 minutes. gammaride reacts to such a spike
inside the hedging windows (09:35-10:30 and 15:00-15:55 ET), rides it with a short-dated
call or put, and gets out at a take-profit, a stop-loss, 20 minutes or the hard stop,
whichever comes first. Every scan, taken or skipped, goes into a DuckDB journal.

**Run the blocks in order** (or *Runtime > Run all*). Each cell prints ✓ for what worked
and ✗ for what did not, with the fix.

- **No Alpaca keys?** The notebook runs *offline*: a built-in simulated Alpaca serves
  real recorded SPY minutes, and no real order is ever sent.
- **Your paper account:** add `ALPACA_API_KEY` and `ALPACA_SECRET_KEY` in Colab's key panel
  (the key icon in the left sidebar), switch on *Notebook access*, and run Block 1 again.
- Step-by-step guide and troubleshooting: `docs/colab.md` in the repository."""

# (markdown, code) per block; each code cell is at most MAX_CELL_LINES lines.
BLOCKS: list[tuple[str, str]] = [
    (
        """\
## Block 1 · Set-up
Installs gammaride (only when it is not installed yet) from `INSTALL_FROM`: the package
name, a `git+https://...` URL, or the path of a wheel you keep on Drive (README: "Colab
from a wheel"). A cloned `gammaride/` folder in the working directory is not the
package and does not count as installed. Then it looks for your Alpaca keys in Colab's
secrets or the environment, and decides where the journal lives. With no keys it
switches to **offline** mode and says so. Google Drive: Colab asks once for access;
allow it and the journal survives the runtime, refuse and it stays on this runtime's disk.
`TEST_ORDER = True` lets Block 5 send a one-contract test order on paper when there is no
signal; `LIVE = True` trades real money and asks you to confirm.""",
        """\
INSTALL_FROM = "git+https://github.com/gammaride/gammaride"  # a pip spec: name, git+https URL or wheel path
TEST_ORDER = False  # True: Block 5 sends a 1-contract test order on paper even with no signal
LIVE = False  # True trades REAL money (you type yes to confirm); paper is the default
import importlib.util, os, subprocess, sys
if getattr(importlib.util.find_spec("gammaride"), "origin", None) is None:  # not installed (a clone's folder is no package)
    sys.modules.pop("gammaride", None)
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", INSTALL_FROM], capture_output=True, text=True)
    if pip.returncode:
        raise SystemExit(f"✗ pip install {INSTALL_FROM} failed: {' '.join((pip.stderr or pip.stdout).strip().splitlines()[-1:])}. Fix: set INSTALL_FROM to gammaride, a git+https URL or a wheel path (on Drive: mount Drive first), check the runtime is online, run Block 1 again")
    importlib.invalidate_caches()
from gammaride.notebook.colab import journal_place, keys_or_offline
print(f"✓ gammaride {sys.modules['gammaride'].__version__} is installed")
KEYS, OFFLINE = keys_or_offline()  # Colab secrets or environment; none found: OFFLINE = True
PLACE = journal_place(mount_drive=True)  # Google Drive when mounted, else local disk""",
    ),
    (
        """\
## Block 2 · Connect
Connects to your Alpaca account (paper unless `LIVE`), or starts the simulated one, and
prints the balance, whether it is paper, live or offline, your options trading level
(buying calls and puts needs level 2) and the market clock. It also opens the journal
and loads the exits: Phase 1 (TP 2 ATR, SL 1 ATR) until a calibration is published.
`DEBUG = True` prints each scan's detailed block and lowers the volume spike bar to 1.5x.""",
        """\
from gammaride.calibration import load_exit_policy
from gammaride.config import Settings
from gammaride.journal import Journal
from gammaride.notebook.colab import open_connection, print_connection
DEBUG = False  # True: every scan prints its detailed block; the volume spike bar drops to 1.5x
SPEED = 0 if os.environ.get("GAMMARIDE_NOTEBOOK_CI") else 60  # offline: 60 = a market minute a second
for old in [name for name in ("conn", "journal") if name in globals()]:
    globals()[old].close()  # running this cell again: let go of the previous ones
SETTINGS = Settings.load(debug=DEBUG)
conn = open_connection(KEYS, offline=OFFLINE, live=LIVE, speed=SPEED, settings=SETTINGS)
account = print_connection(conn)
journal = Journal(PLACE.journal)
POLICY, POLICY_MESSAGE = load_exit_policy(PLACE.calibration, SETTINGS)
print(f"✓ journal {PLACE.journal}: {journal.summary()['trades']} closed trades so far")
print(f"✓ exits: {POLICY_MESSAGE}")""",
    ),
    (
        """\
## Block 3 · Check conditions
One look at the market now, on the latest complete 1-minute bar: the time and whether it
is inside a hedging window, the volume against its 20-bar average (a spike is 2x), the
IV percentile (needs 30%), and the direction: **CALL** when the price rose over the last
5 bars, **PUT** when it fell. A signal needs all of them. The last line is dealer gamma:
**SHORT** or **LONG**, the net exposure per 1% move and the distance to the zero-gamma
level (`docs/gamma.md`).""",
        """\
from gammaride.notebook.blocks import check_conditions
from gammaride.notebook.colab import print_conditions
cond = check_conditions(conn, journal)  # in_window, vol_spike, direction, bars, avg_volume, ...
print_conditions(cond, SETTINGS)
cond["bars"].tail(5)  # the latest complete 1-minute bars (bar start, ET)""",
    ),
    (
        """\
## Block 4 · Calculate the setup
What a trade would look like now: the 14-bar ATR (how far SPY moves in a minute), the
take-profit and stop-loss on SPY's price, the number of contracts (1% of equity per ATR
move, scaled by the IV multiplier), and the phase of the exits.""",
        """\
from gammaride.notebook.blocks import calculate_setup
from gammaride.notebook.colab import print_setup
setup = calculate_setup(conn, cond, policy=POLICY) if "atr" in cond else None
print_setup(setup, cond)""",
    ),
    (
        """\
## Block 5 · Submit an order
Only when Block 3 found a signal, or with `TEST_ORDER = True` on paper: buys the chosen
contract with a marketable limit order and prints the order id. Alpaca has no bracket
orders for options, so gammaride is its own OCO: the entry is journaled with its TP, SL
and hard stop, and the scanner in Block 6 adopts the position and exits it by the rules.
Run Block 6 right after. On a live account it only rehearses (`PAPER_SIM_###`).""",
        """\
from gammaride.notebook.colab import send_order
order = None
if setup is not None and (cond["signal"] or TEST_ORDER):
    # a test order without a signal buys 1 contract; a signal buys the setup's size
    order = send_order(conn, cond, setup if cond["signal"] else {**setup, "contracts": 1}, journal)
else:
    print("✗ no signal now: nothing submitted (TEST_ORDER = True in Block 1 sends a test order)")""",
    ),
    (
        """\
## Block 6 · The scanner
55 scans, one a minute on the broker's clock (5 seconds past each minute), each printed as
a `[SCAN n]` line and journaled, with a heartbeat every tenth scan. On a signal it buys,
then watches the position against TP, SL, 20 minutes and the hard stop. It stops by itself
after 55 scans (inside Colab's idle limit) and closes what it opened. Offline, the
simulated market moves one minute per second (`SPEED`) and waits while you read.""",
        """\
from gammaride.notebook.colab import save_after_trades
from gammaride.text import signed_usd
SCANS = 55  # one run stays inside Colab's idle limit; run this cell again for 55 more
scanner = conn.scanner(journal, policy=POLICY, policy_message=POLICY_MESSAGE,
                       source=conn.broker.url or "alpaca", out=save_after_trades(PLACE, journal))
scanner.start()
stats = scanner.run(SCANS)
print(f"{'✓' if stats.scans == SCANS else '✗'} {stats.scans} of {SCANS} scans · "
      f"{stats.entries} entries · P&L {signed_usd(stats.pnl_usd)} · errors {stats.errors}")
print(PLACE.save(journal))""",
    ),
    (
        """\
## Block 7 · Report
With 50 closed trades in the journal, calibrates the exits per ATR bucket and publishes
them only when they beat Phase 1 out of sample; below 50 it says how many there are.
Then writes `report.html` next to the journal (and to Drive) and shows it here: win rate
with its interval, expectancy, the scan funnel and every trade.""",
        """\
from gammaride.reports import headline_text, show, write_report
from gammaride.notebook.colab import calibrate_when_ready
result = calibrate_when_ready(journal, SETTINGS, PLACE.calibration)  # needs 50 closed trades
if result is not None and result.published:
    POLICY, POLICY_MESSAGE = result.policy, result.policy.describe()  # the next run uses it
path, data = write_report(journal, PLACE.report)
print(f"✓ report written to {path}: {headline_text(data)}")
print(PLACE.save(journal))
show(journal)""",
    ),
]


def cells() -> list[tuple[str, str]]:
    """(cell_type, source) in notebook order."""
    out = [("markdown", INTRO)]
    for markdown, code in BLOCKS:
        out += [("markdown", markdown), ("code", code)]
    return out


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.nbformat_minor = 5  # fixed: a newer nbformat must not change the committed file
    nb.metadata = {
        "colab": {"provenance": [], "toc_visible": True},
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, (kind, source) in enumerate(cells()):
        source = textwrap.dedent(source).strip("\n")
        if kind == "code":
            cell = nbformat.v4.new_code_cell(source)
        else:
            cell = nbformat.v4.new_markdown_cell(source)
        cell.id = f"cell-{i:02d}"  # fixed ids: rebuilding changes nothing that did not change
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render() -> str:
    return nbformat.writes(build())


def main(argv: list[str] | None = None) -> int:
    long = [(i, len(src.split("\n"))) for i, (kind, src) in enumerate(cells())
            if kind == "code" and len(src.split("\n")) > MAX_CELL_LINES]
    if long:
        print(f"cells longer than {MAX_CELL_LINES} lines (index, lines): {long}", file=sys.stderr)
        return 1
    NOTEBOOK.write_text(render(), encoding="utf-8")
    print(f"wrote {NOTEBOOK.name} ({len(cells())} cells)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
