"""Helpers that keep the Colab notebook's cells short: where the journal lives, keys or
offline mode, a paced offline clock, and the ✓/✗ lines each block prints.

The journal is always written on local disk and *copied* to Google Drive (after each
trade and at the end) when Drive is mounted: DuckDB on the Drive mount would make every
commit a network write, and a runtime that dies mid-write could leave a broken file there.

    KEYS, OFFLINE = keys_or_offline()
    PLACE = journal_place(mount_drive=True)
    conn = open_connection(KEYS, offline=OFFLINE, speed=60)
    print_connection(conn)
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from gammaride.config import Settings
from gammaride.connection import Connection, connect
from gammaride.errors import BrokerError, ConfigError, CredentialsError
from gammaride.journal import Journal
from gammaride.keys import Keys, find_keys
from gammaride.notebook.blocks import live_confirmed, submit_order
from gammaride.outputs import write_atomic
from gammaride.scanner.broker import Account
from gammaride.scanner.clock import SteppedClock

DRIVE_ROOT = Path("/content/drive/MyDrive")
DRIVE_FOLDER = "gammaride"
# Not "gammaride/": a folder of the package's name in the working directory could shadow it.
LOCAL_DIR = Path("gammaride-data")
JOURNAL_NAME = "journal.duckdb"
# A real session minute with a volume spike (2013-10-10 15:00 bar): offline, blocks 3-5
# show a live signal and the 55 scans after it cover the PM hedging window.
NOTEBOOK_START = "2013-10-10 15:01:05"

Out = Callable[[str], None]


def _say(text: str) -> None:
    # flushed: a notebook shows each line when it happens, not when the cell ends
    print(text, flush=True)


def in_colab() -> bool:
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):
        return False


# ---------------------------------------------------------------------------- keys
def keys_or_offline(
    env: Mapping[str, str] | None = None, colab: bool = True, out: Out = _say
) -> tuple[Keys | None, bool]:
    """``(keys, OFFLINE)``: keys from the environment or Colab secrets, or ``(None, True)``
    with a loud notice. Keys that are set but empty or placeholders raise
    :class:`CredentialsError`: running offline instead would hide the mistake."""
    try:
        keys = find_keys(env, colab)
    except CredentialsError as exc:
        out(f"✗ {exc}")
        raise
    if keys is None:
        text = "OFFLINE: no keys found: running offline against the built-in simulated Alpaca; no real orders"
        out("=" * len(text))
        out(text)
        out("=" * len(text))
        if colab and in_colab():
            out("✗ to use your paper account: add ALPACA_API_KEY and ALPACA_SECRET_KEY in the key panel "
                "(left sidebar), switch on notebook access, then run Block 1 again")
        else:
            out("✓ offline mode: every block runs on real recorded SPY bars; set ALPACA_API_KEY and "
                "ALPACA_SECRET_KEY to use your paper account")
        return None, True
    out(f"✓ Alpaca keys found in {keys.source} (key {keys.masked}, secret hidden)")
    return keys, False


# ---------------------------------------------------------------------------- journal place
@dataclass(frozen=True)
class JournalPlace:
    """The local folder the journal is written in, and the Drive folder it is copied to."""

    local_dir: Path
    drive_dir: Path | None = None

    @property
    def journal(self) -> Path:
        return self.local_dir / JOURNAL_NAME

    @property
    def calibration(self) -> Path:
        return self.local_dir / "calibration.json"

    @property
    def report(self) -> Path:
        return self.local_dir / "report.html"

    def save(self, journal: Journal | None = None) -> str:
        """Copy the journal (checkpointed first, so the file alone is complete), the
        calibration file and the report to Drive; returns the ✓/✗ line to print."""
        if self.drive_dir is None:
            return f"✓ journal on local disk: {self.journal} (Google Drive not mounted: nothing copied)"
        try:
            if journal is not None:
                # committed rows may sit in the WAL; fold them into the file before copying it
                journal.con.execute("CHECKPOINT")
            self.drive_dir.mkdir(parents=True, exist_ok=True)
            copied = []
            for src in (self.journal, self.calibration, self.report):
                if src.exists():
                    _copy_atomic(src, self.drive_dir / src.name)
                    copied.append(src.name)
            # a WAL left beside an older Drive copy would be replayed into the new file
            (self.drive_dir / (JOURNAL_NAME + ".wal")).unlink(missing_ok=True)
        except Exception as exc:  # noqa: BLE001 - a failed copy must not stop trading
            return f"✗ copy to Google Drive failed ({exc}); the journal is safe at {self.journal}"
        return f"✓ copied to Google Drive {self.drive_dir}: {', '.join(copied) or 'nothing yet'}"


def _copy_atomic(src: Path, dst: Path) -> None:
    write_atomic(dst, copy_of=src, what="copy")


def journal_place(
    local_dir: str | os.PathLike = LOCAL_DIR,
    drive_root: str | os.PathLike = DRIVE_ROOT,
    mount_drive: bool = False,
    colab: bool | None = None,
    out: Out = _say,
) -> JournalPlace:
    """Where the journal lives: always ``local_dir`` on local disk; when Google Drive is
    mounted at ``drive_root`` (Colab mounts it when ``mount_drive``), also a copy in
    ``<drive_root>/gammaride/`` brought back here first when it is the newer one."""
    colab = in_colab() if colab is None else colab
    local = Path(local_dir).absolute()
    local.mkdir(parents=True, exist_ok=True)
    root = Path(drive_root)
    if mount_drive and colab and not root.is_dir():
        try:
            from google.colab import drive  # type: ignore[import-not-found]

            drive.mount(str(root.parent))
        except Exception as exc:  # noqa: BLE001 - declined or failed: keep going locally
            out(f"✗ Google Drive was not mounted ({exc})")
    if not root.is_dir():
        if colab:
            out(f"✗ Google Drive not mounted: the journal is on this runtime's local disk at {local / JOURNAL_NAME} "
                "and is lost when the runtime ends; run this cell again and allow Drive to keep it")
        else:
            out(f"✓ journal on local disk: {local / JOURNAL_NAME}")
        return JournalPlace(local)
    place = JournalPlace(local, root / DRIVE_FOLDER)
    place.drive_dir.mkdir(parents=True, exist_ok=True)
    restored = _restore_from_drive(place, place.drive_dir)
    out(f"✓ Google Drive mounted: the journal is kept in {place.drive_dir / JOURNAL_NAME}")
    out(f"  it is written locally at {place.journal} and copied to Drive after each trade and at the end "
        "(DuckDB on the Drive mount would make every commit a network write)")
    if restored:
        out(f"✓ brought the newer copy back from Drive: {', '.join(restored)}")
    return place


def _restore_from_drive(place: JournalPlace, drive_dir: Path) -> list[str]:
    restored = []
    for local in (place.journal, place.calibration):
        remote = drive_dir / local.name
        if not remote.exists():
            continue
        wal = local.with_name(local.name + ".wal")
        # a local WAL means rows not yet in any copy: the local journal is the newer one
        if local.exists() and (wal.exists() or local.stat().st_mtime >= remote.stat().st_mtime):
            continue
        _copy_atomic(remote, local)
        wal.unlink(missing_ok=True)
        restored.append(local.name)
    return restored


def save_after_trades(place: JournalPlace, journal: Journal, out: Out = _say) -> Out:
    """A scanner ``out`` that prints each line and copies the journal to Drive after every
    exit, so a runtime that vanishes loses at most the trade in progress."""

    def emit(line: str) -> None:
        out(line)
        if place.drive_dir is not None and line.lstrip().startswith("[EXIT]"):
            result = place.save(journal)
            if result.startswith("✗"):
                out("  " + result)

    return emit


# ---------------------------------------------------------------------------- connection
class PacedClock:
    """The offline server's stepped clock at a pace a person can follow: sleeping ``d``
    market seconds takes ``d / speed`` real seconds (at most ``max_pause``), then steps the
    server there. Unlike a free-running clock, the offline market waits while you read."""

    def __init__(self, inner: SteppedClock, speed: float, sleep: Callable[[float], None] = time.sleep,
                 max_pause: float = 5.0):
        if speed < 0:
            raise ConfigError(f"speed {speed!r} is negative; use 0 (as fast as possible) or e.g. 60")
        self.inner = inner
        self.speed = float(speed)
        self._sleep = sleep
        self.max_pause = max_pause

    def sync(self, broker_now: pd.Timestamp) -> None:
        self.inner.sync(broker_now)

    def now(self) -> pd.Timestamp:
        return self.inner.now()

    def sleep_until(self, target: pd.Timestamp) -> None:
        if self.speed > 0:
            try:
                gap = (pd.Timestamp(target) - self.inner.now()).total_seconds()
            except RuntimeError:  # never synced: nothing to pace against
                gap = 0.0
            if gap > 0:
                self._sleep(min(gap / self.speed, self.max_pause))
        self.inner.sleep_until(target)


def open_connection(
    keys: Keys | None,
    *,
    offline: bool = False,
    live: bool = False,
    speed: float = 60.0,
    settings: Settings | None = None,
    start: str = NOTEBOOK_START,
    ask: Callable[[str], str] = input,
    out: Out = _say,
) -> Connection:
    """:func:`~gammaride.connection.connect` for the notebook. Offline it steps the
    built-in server's clock at ``speed`` market seconds per real second (0: as fast as
    possible) from ``start``; ``live`` asks for a typed yes."""
    offline = offline or keys is None
    if live and offline:
        out("✗ LIVE = True ignored: there are no keys, so this runs offline")
        live = False
    if live and not live_confirmed(True, ask=ask):
        raise ConfigError("live trading not confirmed; type 'yes' at the prompt, or set LIVE = False for paper")
    conn = connect(keys, settings=settings, offline=offline, live=live, speed=0 if offline else 60.0,
                   start=start)
    if conn.mode == "offline" and isinstance(conn.clock, SteppedClock) and speed > 0:
        conn.clock = PacedClock(conn.clock, speed)
    return conn


def _ok(flag: Any) -> str:
    return "✓" if flag else "✗"


def print_connection(conn: Connection, out: Out = _say) -> Account | None:
    """Prints who we are connected to, the balance, the options level and the market clock."""
    for note in conn.notes:
        out(f"✓ {note}")
    try:
        acct = conn.broker.account()
        clock = conn.broker.clock()
    except BrokerError as exc:
        out(f"✗ could not reach the broker: {exc}")
        return None
    kind = {"offline": "OFFLINE (simulated Alpaca, no real orders)", "paper": "PAPER account",
            "live": "LIVE account: REAL MONEY"}[conn.mode]
    out(f"✓ connected: {kind} · key {getattr(conn.broker, 'key_id_masked', '')}")
    out(f"{_ok(acct.status == 'ACTIVE')} balance: equity ${acct.equity:,.2f} · cash ${acct.cash:,.2f} · "
        f"options buying power ${acct.options_buying_power:,.2f} · account {acct.status}")
    level = acct.options_level
    if level is not None and level >= 2:
        out(f"✓ options level {level}: buying calls and puts is allowed")
    else:
        out(f"✗ options level {level if level is not None else 'unknown'}: buying calls and puts needs "
            "level 2; request it in the Alpaca dashboard (Account > Configure)")
    when = f"{clock.timestamp:%Y-%m-%d %H:%M:%S} ET"
    if clock.is_open:
        out(f"✓ market open: {when} · closes {clock.next_close:%H:%M} ET")
    else:
        out(f"✗ market closed: {when} · opens {clock.next_open:%a %Y-%m-%d %H:%M} ET "
            "(scans skip until then)")
    return acct


# ---------------------------------------------------------------------------- blocks 3-5
def print_conditions(cond: Mapping[str, Any], settings: Settings, out: Out = _say) -> None:
    """Block 3's lines: time and window, volume ratio, IV percentile, direction, verdict."""
    now = cond["now"]
    live = cond.get("market_open", True) and not cond.get("stale", False)
    if not cond.get("market_open", True):
        out(f"✗ market closed at {now:%Y-%m-%d %H:%M:%S} ET")
    out(f"{_ok(cond['in_window'])} time {now:%H:%M:%S} ET ({now:%a %Y-%m-%d}) · window "
        f"{'IN' if cond['in_window'] else 'OUT'} (09:35-10:30 and 15:00-15:55 ET)")
    avg, vol = cond["avg_volume"], cond["current_volume"]
    last_end = cond.get("decision_time")
    old = f"the last bar ended {last_end:%a %H:%M} ET" if last_end is not None else "no bar now"
    if not live:  # an old bar's spike or move is no signal now
        out(f"✗ volume: no live bar ({old}; {cond.get('skip_reason')})")
    elif math.isfinite(avg) and avg > 0 and math.isfinite(vol):
        ratio = math.floor(vol / avg * 10 + 1e-9) / 10  # truncated, as the skip reasons show it
        out(f"{_ok(cond['vol_spike'])} volume {vol:,.0f} vs 20-bar average {avg:,.0f}: {ratio:.1f}x "
            f"(spike at {settings.volume_threshold:.1f}x)")
    else:
        out("✗ volume: no bars to compare")
    ivp = cond["iv_percentile"]
    if math.isfinite(ivp):
        out(f"{_ok(ivp >= settings.iv_threshold)} IV percentile {ivp:.0%} ({cond.get('iv_source')}; "
            f"needs {settings.iv_threshold:.0%})")
    else:
        out("✗ IV percentile unknown")
    change = cond.get("price_change", float("nan"))
    k = settings.direction_lookback
    if live and math.isfinite(change):
        tag = "UP" if change > 0 else "DOWN" if change < 0 else "FLAT"
        out(f"{_ok(change != 0)} Price change ({k} min): {'+' if change >= 0 else '-'}${abs(change):.2f} [{tag}]")
    direction = cond["direction"] if live else None
    move = {"call": f"price up over {k} bars", "put": f"price down over {k} bars"}.get(
        direction, "no spike or no move" if live else old)
    out(f"{_ok(direction)} direction {(direction or 'none').upper()} ({move})")
    if cond.get("gamma") is not None:
        out(f"· {cond['gamma'].describe()} (gamma gate {settings.gamma_gate})")
    if cond["signal"]:
        out("✓ SIGNAL: every gate passes")
    else:
        out(f"✗ no signal now: {cond.get('skip_reason')}")


def print_setup(setup: Mapping[str, Any] | None, cond: Mapping[str, Any], out: Out = _say) -> None:
    """Block 4's lines: ATR, TP, SL, contracts, phase."""
    if setup is None:
        out(f"✗ no setup: {cond.get('skip_reason', 'no bars')}")
        return
    direction = str(setup["direction"]).upper()
    out(f"✓ ATR(14) ${setup['atr']:.2f} · entry ${setup['entry']:.2f} (the underlying at the decision)")
    out(f"✓ {direction}: TP ${setup['tp']:.2f} ({setup['tp_mult']:.1f} ATR) · SL ${setup['sl']:.2f} "
        f"({setup['sl_mult']:.1f} ATR)")
    if setup["contracts"] < 1:
        out(f"✗ contracts 0: options buying power ${setup['buying_power']:,.2f} cannot pay one "
            f"{setup.get('contract')} at ${setup['premium']:.2f}")
    else:
        out(f"✓ contracts {setup['contracts']} (1% of equity per ATR move, IV multiplier {setup['iv_multiplier']:.1f}x)")
    if setup.get("capped", setup.get("sized_contracts", 0) > setup["contracts"]):
        out(f"✓ capped by max_contracts {setup.get('max_contracts')}: the sizing rule gives {setup['sized_contracts']}")
    if setup.get("bp_capped") and setup["contracts"] >= 1:
        out(f"✓ capped by options buying power ${setup['buying_power']:,.2f}: {setup['affordable']} x "
            f"{setup.get('contract')} at ${setup['premium']:.2f}")
    if setup["phase"] == 1:
        out("✓ phase 1: fixed exits until 50 trades calibrate them (Block 7)")
    else:
        out(f"✓ phase 2: calibrated exits, ATR bucket {setup['atr_bucket']}")
    if not cond.get("direction"):
        out("✗ no direction now: the levels are shown for a CALL as an example")


def send_order(
    conn: Connection, cond: Mapping[str, Any], setup: Mapping[str, Any], journal: Journal,
    out: Out = _say,
) -> dict[str, Any]:
    """Block 5: buy the chosen contract and print the order id.

    The filled entry is journaled as an open trade with its TP, SL and hard stop, so the
    scanner in Block 6 adopts the position and exits it by the rules (Alpaca has no
    option brackets: gammaride is the OCO). On a live account nothing is sent (a
    ``PAPER_SIM_###`` dry run): live entries are the scanner's alone.
    """
    live = conn.mode == "live"
    if cond.get("signal"):
        out("✓ SIGNAL - Submitting order...")
    order = submit_order(conn, dict(cond), dict(setup), dry_run=live, journal=None if live else journal)
    if order["status"] == "error" or not order["order_id"]:
        out(f"✗ no order sent: {order.get('message')}")
        return order
    out(f"✓ order id {order['order_id']} · {order['status']} · {order.get('message', '')}")
    if live:
        out("✓ live account: this cell only rehearses (nothing sent); the scanner in Block 6 trades")
    elif order.get("trade_id") is not None:
        out(f"✓ journaled as trade {order['trade_id']} (TP ${setup['tp']:.2f}, SL ${setup['sl']:.2f}): "
            "run Block 6 now, its scanner adopts the position and exits it by TP, SL, "
            "20 minutes or the hard stop")
    else:
        out(f"✗ the entry did not fill ({order.get('order_status')}): nothing is held")
    return order


# ---------------------------------------------------------------------------- block 7
def calibrate_when_ready(
    journal: Journal, settings: Settings, out_path: str | os.PathLike, min_trades: int = 50,
    out: Out = _say,
) -> Any:
    """Block 7's calibration: run :func:`~gammaride.calibration.calibrate` once the journal
    holds ``min_trades`` closed trades of the symbol, else say how many there are and that
    Phase 1 stays in force. Returns the ``CalibrationResult``, or None when it did not run."""
    from gammaride.calibration import calibrate
    from gammaride.errors import CalibrationError

    trades = journal.trades(closed_only=True)
    n = int((trades["symbol"] == settings.symbol).sum()) if "symbol" in trades.columns else len(trades)
    if n < min_trades:
        out(f"✗ {n} closed {settings.symbol} trades in the journal; calibration needs {min_trades}: "
            "Phase 1 exits stay in force (keep scanning, run this block again later)")
        return None
    try:
        result = calibrate(journal, settings, min_trades=min_trades, out=out_path)
    except CalibrationError as exc:
        out(f"✗ {exc}")
        return None
    out(f"{_ok(result.published)} calibration on {result.n_trades} trades, written to {result.path}")
    out(f"  {result.verdict}")
    return result
