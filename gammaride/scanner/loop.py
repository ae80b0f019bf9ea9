"""The live scan loop: ``step(now)`` plus sleeping.

``Scanner.run(scans)`` is ``for i in range(scans)``: sleep to the next minute boundary
plus ``scan_offset_seconds`` of the broker's clock, run one :meth:`Scanner.step`, and
while a position is open check it every ``monitor_seconds`` until the next scan. A
step never raises: market closed, no data, stale data and broker errors become the
scan's skip reason, a journal row and a printed line. Each scan is committed in its own
transaction, so a killed process loses nothing it already printed. Exits, reconciling
with the broker and the order bookkeeping live in
:class:`gammaride.scanner.positions.PositionManager`; bars, calendar, chain and IV in
:class:`gammaride.scanner.market.MarketData`; what is printed in
:mod:`gammaride.scanner.printer`.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from gammaride.config import ET, Settings
from gammaride.errors import BrokerAuthError, BrokerError, JournalError
from gammaride.journal import Journal
from gammaride.rules.contracts import (
    ContractChoice,
    choose_contract,
    hard_stop_minute,
    marketable_limit,
)
from gammaride.rules.exits import EXIT_MANUAL
from gammaride.rules.gamma import gate_block
from gammaride.rules.risk import DayRisk, entry_block
from gammaride.rules.session import session_close_minutes
from gammaride.rules.setup import ExitPolicy, exit_levels, iv_multiplier, position_size
from gammaride.rules.signals import (
    SKIP_DATA,
    SKIP_ERROR,
    SKIP_GAMMA,
    SKIP_MARKET,
    SKIP_ORDER,
    SKIP_RISK,
    compute_signals,
)
from gammaride.scanner import printer
from gammaride.scanner.broker import Broker, MarketClock, OrderSpec
from gammaride.scanner.clock import Clock, next_scan_time
from gammaride.scanner.execution import fill_marketable
from gammaride.scanner.gamma_source import GammaSource
from gammaride.scanner.market import WINDOW, MarketData
from gammaride.scanner.positions import (
    MINUTE,
    ExitDecision,
    JournalRefusal,
    Position,
    PositionManager,
    cancel_and_settle,
    client_order_id,
    order_row,
    short_error,
    wait_for_fill,
)
from gammaride.scanner.retry import with_retries

SKIP_CLOSED = "market closed"
SKIP_NO_DATA = "no data"
SKIP_STALE = "stale data"
SKIP_DECIDED = "bar already decided"


@dataclass
class ScanOutcome:
    scan_no: int
    now: pd.Timestamp | None
    row: dict
    line: str
    jitter_s: float = float("nan")
    seconds: float = 0.0  # wall time the scan took


@dataclass
class RunStats:
    scans: int = 0
    in_window: int = 0
    signals: int = 0
    entries: int = 0
    exits: dict = field(default_factory=dict)
    pnl_usd: float = 0.0
    errors: int = 0
    adopted: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Scanner(PositionManager):
    """One run of the scanner against one broker, writing one journal run.

    ``iv_percentile``: a fixed IV percentile (tests, ``--iv-percentile``); None means
    today's ATM IV against the recorded history, or the realized-volatility proxy.
    ``dry_run``: decide and journal, send no order (order ids ``PAPER_SIM_###``).
    """

    def __init__(
        self,
        broker: Broker,
        journal: Journal,
        settings: Settings,
        clock: Clock,
        *,
        mode: str = "paper",
        policy: ExitPolicy | None = None,
        policy_message: str | None = None,
        dry_run: bool = False,
        iv_percentile: float | None = None,
        backstop: bool = True,
        flatten_at_end: bool = True,
        out: Callable[[str], None] | None = None,
        source: str | None = None,
        exit_timeout_seconds: float = 10.0,
        daily_fallback: Callable[[str], pd.Series] | None = None,
    ):
        self.broker = broker
        self.journal = journal
        self.settings = settings
        self.clock = clock
        self.mode = mode
        self.policy = policy or ExitPolicy.phase1(settings)
        self.policy_message = policy_message or self.policy.describe()
        self.dry_run = dry_run
        self.iv_fixed = iv_percentile
        self.backstop = backstop and not dry_run and settings.instrument == "options"
        self.flatten_at_end = flatten_at_end
        self.out = out or (lambda s: print(s, flush=True))
        self.source = source
        self.exit_timeout = exit_timeout_seconds
        self.symbol = settings.symbol
        self.run_id: int | None = None
        self.scan_no = 0
        self.positions: list[Position] = []
        self.tracking: list[Position] = []  # closed trades whose 20-minute path is still filling
        self.stats = RunStats()
        self.risk: DayRisk | None = None
        self.outcomes: list[ScanOutcome] = []
        self._sim_orders = 0
        self._pending_paths: list[pd.DataFrame] = []
        self._pending_iv: tuple | None = None
        self._in_step = False
        self._stop_requested = False
        self._last_decided: pd.Timestamp | None = None  # the newest decision bar end acted on
        self._fill_quotes: dict[str, float] = {}  # order id -> the quote its limit priced from
        self._feed_said: str | None = None  # the option feed the output last named
        # the first failed journal write: from then on no new entries (no journal, no trade)
        self.journal_failure: str | None = None
        self.failure: str | None = None  # why the run failed, when it did (its status says so)
        self.gamma = GammaSource(broker, settings, on_error=self._error)  # dealer gamma each scan
        # bars, calendar, chain, IV; daily_fallback: daily closes when the broker serves none
        self.market = MarketData(broker, settings, lambda *a, **k: self.journal.iv_history(*a, **k),
                                 iv_fixed=iv_percentile, daily_fallback=daily_fallback, on_error=self._error)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> int:
        s = self.settings
        try:
            self.run_id = self.journal.start_run(
                self.mode, self.symbol, instrument=s.instrument, source=self.source,
                phase=self.policy.phase, exit_policy=self.policy.describe(),
                iv_source="constant" if self.iv_fixed is not None else "auto",
                # the dry-run flag becomes runs.dry_run (and stays in settings_json): reports,
                # limits and calibration can tell simulated trades from the account's own
                settings={**s.as_dict(), "dry_run": bool(self.dry_run)},
            )
        except Exception as exc:  # noqa: BLE001 - no journal, no trade: nothing was sent yet
            raise JournalError(f"cannot start a run in journal {self.journal.path} ({short_error(exc)}); free "
                               "its disk or pass another --journal PATH") from None
        self.out(f"gammaride scan · run {self.run_id} · {self.mode}{' · DRY RUN (no orders)' if self.dry_run else ''}"
                 f" · {self.symbol} {s.instrument} · {getattr(self.broker, 'key_id_masked', '')}".rstrip(" ·"))
        self.out(self.policy_message)
        try:
            self.reconcile()
        except BaseException as exc:  # a run that could not start is not 'completed'
            self._fail(exc)
            self.finish("failed")
            raise
        return self.run_id

    def run(self, scans: int | None = None) -> RunStats:
        """``for i in range(scans)``: sleep to the scan time, step, watch positions; after
        the last scan, manage what is still open to its exit. Bad keys stop it at once."""
        scans = self.settings.scans if scans is None else scans
        if self.run_id is None:
            self.start()
        status = "completed"
        previous = self._trap_ctrl_c()
        try:
            now = self._broker_now()
            for _ in range(scans):
                target = next_scan_time(now, self.settings.scan_offset_seconds)
                self.wait_until(target)
                self._in_step = True
                outcome = self.step_at(target)
                self._in_step = False
                if self._stop_requested:
                    raise KeyboardInterrupt
                now = outcome.now if outcome.now is not None else self.clock.now()
            if self.flatten_at_end:
                self.manage_to_exit()
        except KeyboardInterrupt:
            status = "interrupted"
            self.out("Interrupted (Ctrl-C).")
        except BaseException as exc:
            status = "failed"
            self._fail(exc)
            raise
        finally:
            self._in_step = False
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            if status == "completed":
                status = self._completed_status()
            self.finish(status)
        return self.stats

    def _fail(self, exc: BaseException) -> None:
        self.failure = self.failure or short_error(exc)
        if isinstance(exc, BrokerAuthError):
            self.out(f"✗ Error: the broker refused the keys ({short_error(exc)}); check ALPACA_API_KEY and "
                     "ALPACA_SECRET_KEY are this account's (paper keys for paper, live keys for --live)")
        else:
            self.out(f"✗ Error: the run stopped ({short_error(exc)})")

    def _completed_status(self) -> str:
        """'completed', or 'failed' (with the reason in ``failure``) when the journal
        failed or every scan failed."""
        if self.journal_failure:
            self.failure = f"journal writes failed ({self.journal_failure}); no entries were made after that"
            return "failed"
        if self.outcomes and all(str(o.row.get("skip_reason") or "").startswith("error") for o in self.outcomes):
            self.failure = f"all {len(self.outcomes)} scans failed (last: {self.outcomes[-1].row.get('skip_reason')})"
            return "failed"
        return "completed"

    def manage_to_exit(self) -> None:
        """After the last scan: keep managing open positions to their exit (TP, SL, max
        hold, hard stop) on the same rules, printing as it goes; Ctrl-C still flattens."""
        if not self.positions:
            return
        self.out(f"Last scan done; managing {len(self.positions)} open position(s) to their exit "
                 f"(limit {max(p.limit for p in self.positions).tz_convert(ET):%H:%M} ET; Ctrl-C flattens)")
        now = self.clock.now()
        while self.positions:
            target = next_scan_time(now, self.settings.scan_offset_seconds)
            self.wait_until(target)
            if not self.positions:
                break
            self._in_step = True
            try:
                mc = self.broker.clock()
                self.clock.sync(mc.timestamp)
                now = mc.timestamp
                if not mc.is_open:
                    self.out("  [WARNING] the market closed with positions open; flattening what can be")
                    return
                bars = self.fetch_bars(now)
                self._manage(bars, now)
                if self._pending_paths:
                    paths, self._pending_paths = self._pending_paths, []
                    self._safe_journal(lambda p=paths: self._tx(self.journal.write_paths, pd.concat(p, ignore_index=True)),
                                       "write path")
            except BrokerAuthError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed check is retried a minute later
                self._error("manage", exc)
                now = self.clock.now()
            finally:
                self._in_step = False
            if any(now >= p.limit + pd.Timedelta(minutes=5) for p in self.positions):
                self.out("  [WARNING] position(s) still open 5 minutes past their limit; flattening")
                return
            if self._stop_requested:
                raise KeyboardInterrupt
            if self.positions:
                p = self.positions[0]
                self.out(f"  [HOLD] {now.tz_convert(ET):%H:%M:%S} · trade {p.trade_id} {p.contract_symbol} open · "
                         f"{self.symbol} ${self._last_price():.2f} · TP ${p.tp:.2f} SL ${p.sl:.2f} · "
                         f"limit {p.limit.tz_convert(ET):%H:%M}")

    def _last_price(self) -> float:
        return self.market.last_price()

    @property
    def _last_bars(self) -> pd.DataFrame | None:
        return self.market.last_bars

    def _trap_ctrl_c(self):
        """Ctrl-C during a scan lets the scan finish (its orders and journal rows belong
        together) and stops right after it; between scans it stops at once."""
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self._in_step and not self._stop_requested:
                self._stop_requested = True
                return
            raise KeyboardInterrupt

        return signal.signal(signal.SIGINT, handler)

    def finish(self, status: str = "completed") -> None:
        if self._pending_paths:
            paths, self._pending_paths = self._pending_paths, []
            self._safe_journal(lambda: self._tx(self.journal.write_paths, pd.concat(paths, ignore_index=True)),
                               "write path")
        if self.flatten_at_end and self.positions:
            self.out(f"Flattening {len(self.positions)} open position(s) this run manages.")
            for pos in list(self.positions):
                self._flatten(pos)
        summary = self.stats.as_dict()
        summary["dry_run"] = bool(self.dry_run)
        summary["open_positions"] = [p.contract_symbol for p in self.positions]
        jit = [o.jitter_s for o in self.outcomes if np.isfinite(o.jitter_s)]
        if jit:
            summary["jitter_median_s"] = float(np.median(jit))
            summary["jitter_max_s"] = float(np.max(np.abs(jit)))
        if self.failure:
            summary["failure"] = self.failure
        self._safe_journal(lambda: self.journal.finish_run(self.run_id, status, summary), "finish run")
        if status == "failed" and self.failure:
            self.out(f"✗ Run {self.run_id} failed: {self.failure}")
        self.out(printer.summary_line(self.run_id, status, self.stats.as_dict(), summary["open_positions"]))

    def _flatten(self, pos: Position, attempts: int = 3) -> None:
        """Close one position at the end of the run, a few tries; if it stays open, say so
        plainly, and whether a stop still protects it at the broker."""
        for i in range(attempts):
            try:
                if self._close(pos, ExitDecision(EXIT_MANUAL, self._price_now(), self.clock.now(), False)):
                    return
            except Exception as exc:  # noqa: BLE001 - report it and try again
                self._error(f"flatten trade {pos.trade_id}", exc)
            if pos not in self.positions:
                return
            if i + 1 < attempts:
                try:
                    self.clock.sleep_until(self.clock.now() + pd.Timedelta(seconds=1))
                except Exception:  # noqa: BLE001 - a failed pause only shortens the wait
                    pass
        guard = (f"its backstop stop {pos.backstop_id} still rests at the broker" if pos.backstop_id
                 else "it has NO stop at the broker: close it yourself")
        self.out(f"  [WARNING] trade {pos.trade_id}: {pos.contract_symbol} x{pos.qty:g} is STILL OPEN after "
                 f"{attempts} exit attempts; {guard}")

    # ------------------------------------------------------------------ time
    def _broker_now(self, attempts: int = 5) -> pd.Timestamp:
        """The broker's time, retried: without it there is nothing to align scans to."""
        try:
            mc = with_retries(self.broker.clock, attempts=attempts, retry_if=lambda e: not isinstance(e, BrokerAuthError),
                              on_error=lambda e: self._error("clock", e), pause=lambda i: time.sleep(0.2 * (i + 1)))
        except BrokerAuthError:
            raise
        except BrokerError as last:
            try:
                return self.clock.now()
            except RuntimeError:
                raise BrokerError(
                    f"cannot read the broker clock ({short_error(last)}); check the connection and run again"
                ) from None
        self.clock.sync(mc.timestamp)
        return mc.timestamp

    def wait_until(self, target: pd.Timestamp) -> None:
        """Sleep to ``target``; while positions are open, check them every monitor_seconds
        and wake at each position's limit (the bar ending there decides a time exit)."""
        while True:
            now = self.clock.now()
            if now >= target:
                return
            if not self.positions:
                self.clock.sleep_until(target)
                return
            wake = now + pd.Timedelta(seconds=self.settings.monitor_seconds)
            for p in self.positions:
                edge = p.limit + pd.Timedelta(seconds=1)
                if now < edge < wake:
                    wake = edge
            self.clock.sleep_until(min(wake, target))
            if self.clock.now() < target:
                self._in_step = True  # an exit in flight finishes before Ctrl-C stops the run
                self.monitor()
                self._in_step = False
                if self._stop_requested:
                    raise KeyboardInterrupt

    def step_at(self, target: pd.Timestamp) -> ScanOutcome:
        t0 = time.perf_counter()
        mc: MarketClock | None = None
        clock_error: BrokerError | None = None
        try:
            mc = self.broker.clock()
            self.clock.sync(mc.timestamp)
        except BrokerAuthError:
            raise  # bad keys: nothing will work, stop the run at once
        except BrokerError as exc:
            clock_error = exc
            self._error("clock", exc, scan_no=self.scan_no + 1)  # the scan about to run
        now = mc.timestamp if mc is not None else self.clock.now()
        outcome = self.step(now, mc, clock_error)
        outcome.jitter_s = (now - target).total_seconds()
        outcome.seconds = time.perf_counter() - t0
        return outcome

    # ------------------------------------------------------------------ one scan
    def step(self, now: pd.Timestamp, market: MarketClock | None = None,
             clock_error: BrokerError | None = None) -> ScanOutcome:
        """One scan at broker time ``now``. Never raises; always journals and prints."""
        self.scan_no += 1
        self.stats.scans += 1
        row: dict = {
            "run_id": self.run_id, "scan_no": self.scan_no, "symbol": self.symbol,
            "scanned_at": datetime.now(timezone.utc), "signal": False,
            "gamma_gate": self.settings.gamma_gate,
        }
        info: dict = {}
        try:
            if market is None and clock_error is not None:
                row["skip_reason"] = ("error: broker unreachable (" if getattr(clock_error, "unreachable", False)
                                      else "error: broker clock unavailable (") + short_error(clock_error) + ")"
                row["skip_code"] = SKIP_ERROR
            else:
                self._scan(now, market, row, info)
        except Exception as exc:  # noqa: BLE001 - no exception escapes a scan
            unreachable = isinstance(exc, BrokerError) and exc.unreachable
            row["skip_reason"] = f"error: {'broker unreachable (' if unreachable else ''}{short_error(exc)}" + \
                (")" if unreachable else "")
            row["skip_code"] = SKIP_ERROR
            self._error("scan", exc)
        if "sig" in info and "gamma" not in info:  # after the decision: no order waits for it
            self._measure_gamma(now, float(info["sig"]["price"]), row, info)
        if row.get("in_window"):
            self.stats.in_window += 1
        if row.get("signal"):
            self.stats.signals += 1
        self._safe_journal(lambda: self._write_scan(row), "write scan")
        try:
            line = printer.scan_line(self.scan_no, now, row, info, dry_run=self.dry_run)
            self.out(line)
            if row.get("option_feed") and row["option_feed"] != self._feed_said:
                self._feed_said = row["option_feed"]
                self.out(printer.feed_note(self._feed_said))
            if self.settings.debug:
                self.out(printer.debug_block(row, info, self.settings))
            if self.journal_failure:
                self.out(f"✗ Error: journal write failed ({self.journal_failure}): no new entries; open "
                         "positions are still managed to their exit")
            if self.scan_no % 10 == 0:
                r = self.risk
                self.out(printer.heartbeat(self.scan_no, now, open_positions=len(self.positions),
                                           entries=self.stats.entries, trades_today=r.trades if r else 0,
                                           pnl_today=r.realized_pnl if r else 0.0, errors=self.stats.errors))
        except Exception as exc:  # noqa: BLE001 - printing must not end the run either
            line = f"[SCAN {self.scan_no}] (line unavailable: {short_error(exc)})"
            self._error("print", exc)
        outcome = ScanOutcome(self.scan_no, now, row, line)
        self.outcomes.append(outcome)
        return outcome

    def _measure_gamma(self, now: pd.Timestamp, price: float, row: dict, info: dict) -> None:
        """Dealer gamma into the scan's row (never raises: a failure is its reason)."""
        info["gamma"] = self.gamma.measure(now, price)
        row.update(info["gamma"].row())

    def _write_scan(self, row: dict) -> None:
        """The scan row, the IV it observed and new path bars: one commit per scan."""
        paths, self._pending_paths = self._pending_paths, []
        iv, self._pending_iv = self._pending_iv, None
        with self.journal.transaction():
            self.journal.write_scan(row)
            if paths:
                self.journal.write_paths(pd.concat(paths, ignore_index=True))
            if iv is not None:
                # only a real chain seen by a real run builds the IV history the gate ranks against
                source = "offline" if (self.mode == "offline" or self.dry_run) else "snapshot"
                now_, r = iv
                self.journal.record_iv(now_, self.symbol, r.iv, source, r.contract, r.expiry, r.strike, r.dte_class)

    def _scan(self, now: pd.Timestamp, market: MarketClock | None, row: dict, info: dict) -> None:
        if market is None:
            row["skip_reason"], row["skip_code"] = "error: broker clock unavailable", SKIP_ERROR
            return
        if not market.is_open:
            row["skip_reason"] = f"{SKIP_CLOSED} (opens {market.next_open:%Y-%m-%d %H:%M} ET)"
            row["skip_code"] = SKIP_MARKET
            self._watch_broker()  # what the broker does at and after the close (exercise, expiry)
            return
        self._new_day(now)
        bars = self.fetch_bars(now)
        if bars.empty:
            row["skip_reason"], row["skip_code"] = SKIP_NO_DATA, SKIP_DATA
            return
        last_end = bars.index[-1] + MINUTE
        age = (now - last_end).total_seconds() / 60.0
        row["decision_time"] = last_end
        if age > self.settings.stale_after_minutes:
            row["skip_reason"] = f"{SKIP_STALE} (latest complete bar ended {age:.1f} min ago)"
            row["skip_code"] = SKIP_DATA
            self._manage(bars, now)  # time exits still apply
            return
        # exits first: flat at a bar's end, that bar's decision may enter again (as replay)
        self._manage(bars, now)
        if self._last_decided is not None and last_end <= self._last_decided:
            # the next bar is late: this bar was decided (and maybe traded) by an earlier scan
            row["skip_reason"], row["skip_code"] = SKIP_DECIDED, SKIP_DATA
            return
        self._last_decided = last_end
        price = float(bars["close"].iloc[-1])
        chain = self.chain(now, price, info)
        row["option_feed"] = getattr(self.broker, "option_feed_used", None)
        iv, ivp, src = self.iv_now(now, price, chain, info)
        row.update(iv=iv, iv_source=src, iv_contract=info.get("iv_contract"))
        if self.settings.gamma_gate != "off":  # the gate needs the measure before an entry
            self._measure_gamma(now, price, row, info)
        sig = compute_signals(bars.iloc[-WINDOW:], self.settings, ivp).iloc[-1]
        info["sig"] = sig
        info["bars"] = bars
        for k in ("in_window", "window", "volume", "avg_volume", "vol_ratio", "vol_spike", "price",
                  "price_change", "direction", "atr", "iv_percentile", "signal", "skip_reason", "skip_code"):
            row[k] = _plain(sig[k])
        if info.get("iv_missing") and str(row.get("skip_reason") or "").startswith("no IV data"):
            row["skip_reason"] = f"no IV: {info['iv_missing']}"  # the gate had no like-for-like IV
        if not sig["signal"]:
            return
        gated = gate_block(self.settings.gamma_gate, info.get("gamma"))
        if gated:
            row.update(signal=False, skip_reason=gated, skip_code=SKIP_GAMMA)
            return
        tp_mult, sl_mult, bucket = (np.asarray(v, dtype=object).reshape(-1)[0] for v in self.policy.lookup(sig["atr"]))
        tp, sl = exit_levels(sig["direction"], sig["price"], sig["atr"], tp_mult, sl_mult)
        info.update(tp=float(tp), sl=float(sl), tp_mult=float(tp_mult), sl_mult=float(sl_mult), bucket=str(bucket))
        block = entry_block(self.settings, self.risk, len(self.positions))
        if self.journal_failure and not self.dry_run:
            block = "journal failing: no new entries"
        if block:
            row["skip_reason"], row["skip_code"] = block, SKIP_RISK
            return
        trade_id, why = self._enter(now, last_end, sig, chain, info)
        if trade_id is None:
            row["skip_reason"], row["skip_code"] = why, SKIP_ORDER
        else:
            row["trade_id"] = trade_id
            row["skip_reason"] = None
            info["submitted"] = True

    # ------------------------------------------------------------------ data
    def fetch_bars(self, now: pd.Timestamp) -> pd.DataFrame:
        """Complete regular-hours bars (see :meth:`MarketData.fetch_bars`)."""
        return self.market.fetch_bars(now)

    def chain(self, now: pd.Timestamp, price: float, info: dict) -> pd.DataFrame | None:
        return self.market.chain(now, price, info)

    def iv_now(self, now: pd.Timestamp, price: float, chain: pd.DataFrame | None,
               info: dict | None = None) -> tuple[float, float | None, str]:
        """(ATM IV, percentile, source) from :meth:`MarketData.iv_now`; a finite IV is
        recorded with its series, committed with this scan's row."""
        info = {} if info is None else info
        try:
            return self.market.iv_now(now, price, chain, info)
        finally:
            reading = info.pop("iv_reading", None)
            if reading is not None and np.isfinite(reading.iv):
                self._pending_iv = (now, reading)

    # ------------------------------------------------------------------ day and risk
    def _new_day(self, now: pd.Timestamp) -> None:
        today = pd.Timestamp(now.date())
        if self.risk is not None and self.risk.session == today:
            return
        start_equity = self.settings.starting_equity
        try:
            acct = self.broker.account()
            start_equity = acct.last_equity if np.isfinite(acct.last_equity) else acct.equity
        except BrokerError as exc:
            self._error("account", exc)
        self.risk = DayRisk(today, start_equity)
        # trades already made today (earlier runs) count against today's limits
        self.risk.trades, self.risk.realized_pnl = self.journal.trades_today(self.mode, today.date(), self.dry_run)

    # ------------------------------------------------------------------ entries
    def _enter(self, now, decision_time, sig, chain, info) -> tuple[int | None, str | None]:
        s = self.settings
        direction = str(sig["direction"])
        atr, entry = float(sig["atr"]), float(sig["price"])
        ivp = float(sig["iv_percentile"])
        iv_mult = float(iv_multiplier(ivp, s))
        try:
            acct = self.broker.account()
            equity, bp = acct.equity, acct.options_buying_power
        except BrokerError as exc:
            self._error("account", exc)
            return None, f"error: account unavailable ({short_error(exc)})"
        cid = client_order_id(self.symbol, decision_time, direction)
        if self._already_entered(cid):
            return None, f"{SKIP_DECIDED} (entry {cid} already journaled)"
        today = pd.Timestamp(decision_time.date())
        if s.instrument == "shares":
            choice = None
            close_min = int(session_close_minutes(pd.DatetimeIndex([today]))[0])
            stop_min = hard_stop_minute(s, self.symbol, close_min, same_day=False)
            qty = int(position_size(equity, atr, iv_mult, s)) * 100 * s.replay_delta
            qty = int(max(1, min(qty, acct.buying_power // max(entry, 0.01))))
            premium = float("nan")
        else:
            if chain is None:
                return None, f"error: option chain unavailable ({info.get('chain_error', '')})"
            choice, why = choose_contract(chain, direction, entry, decision_time, s, self.symbol)
            if choice is None:
                return None, f"no contract: {why}"
            stop_min = choice.hard_stop_min
            # the order goes in at ask + pad: size against that, not the ask
            limit = marketable_limit("buy", choice.bid, choice.ask, root=self.symbol)
            qty = int(position_size(equity, atr, iv_mult, s, buying_power=bp, premium=limit))
            if qty < 1:
                return None, f"buying power ${bp:,.0f} cannot pay one contract at ${limit:.2f}"
            premium = choice.ask
        hold_until = decision_time + s.max_hold_minutes * MINUTE
        hard_stop = today.tz_localize(ET) + stop_min * MINUTE
        if hard_stop <= now:
            return None, "past the hard stop"
        trade_id = self.journal.next_trade_id()
        pos = Position(
            trade_id=trade_id, run_id=self.run_id, symbol=self.symbol, instrument=s.instrument,
            contract_symbol=choice.symbol if choice else self.symbol, direction=direction, qty=qty,
            entry_time=decision_time, entry_price=entry, atr=atr, tp=info["tp"], sl=info["sl"],
            tp_mult=info["tp_mult"], sl_mult=info["sl_mult"], hold_until=hold_until, hard_stop=hard_stop,
            entry_premium=premium, delta=choice.delta if choice else 1.0, client_order_id=cid,
            entry_bid=choice.bid if choice else float("nan"),
        )
        self.out(f"  ✓ SIGNAL - Submitting order... {direction.upper()} "
                 f"{pos.qty:g} x {pos.contract_symbol}{' (dry run)' if self.dry_run else ''}")
        # the trade as journaled; also the entry intent's detail, from which a restart
        # books the trade if this process stops between the order and the trade row
        trade = {
            "trade_id": trade_id, "run_id": self.run_id, "symbol": self.symbol, "instrument": s.instrument,
            "contract_symbol": pos.contract_symbol, "direction": direction, "status": "open",
            "entry_time": decision_time, "entry_price": entry, "hard_stop_time": hard_stop, "atr": atr,
            "tp": pos.tp, "sl": pos.sl, "tp_mult": pos.tp_mult, "sl_mult": pos.sl_mult,
            "phase": self.policy.phase, "atr_bucket": info["bucket"], "iv_percentile": ivp,
            "client_order_id": cid,
        }
        orders, fill_price, filled_qty, why = self._send_entry(pos, choice, now, trade)
        if filled_qty <= 0:
            return None, why
        pos.qty = filled_qty
        pos.entry_premium = fill_price  # option premium, or the share price in shares mode
        info["contract"] = pos.contract_symbol
        info["contracts"] = filled_qty
        trade.update(contracts=int(filled_qty),  # contracts, or shares in shares mode
                     entry_premium=fill_price if s.instrument == "options" else None)
        # managed first (backstop, flatten at the end), journaled second: a failed journal
        # write must not leave a filled position that nothing watches
        self.positions.append(pos)
        self.risk.trades += 1
        self.stats.entries += 1
        if self.backstop and pos.entry_order_id is None:
            self._place_backstop(pos)  # else once the entry order is final (wash-trade rule)

        def write() -> None:
            with self.journal.transaction():
                self.journal.write_trade(trade)
                for order, price, qty, at in orders:  # one per price step of the entry
                    self._journal_order(order, trade_id, "bracket" if s.instrument == "shares" else "entry")
                    self._journal_fill(order, trade_id, price, qty, at)
                    if not self.dry_run:
                        self.journal.update_intents("booked", client_order_id=order["client_order_id"])

        self._safe_journal(write, "write trade")
        return trade_id, None

    def _already_entered(self, cid: str) -> bool:
        """Whether an entry with this client id was made already: the broker would answer
        its resubmission with the old order, which must not become a second trade. In this
        run, or journaled by a run of this mode whose order the broker still knows (a fresh
        offline server knows none, so a rehearsal can run the same day again)."""
        if any(p.client_order_id == cid for p in self.positions + self.tracking):
            return True
        if self.dry_run:
            return False  # nothing is sent, so nothing can come back as a phantom fill
        try:
            if not self.journal.knows_order(cid, self.mode):  # as a trade or an order intent
                return False
        except Exception:  # noqa: BLE001 - unreadable journal: ask the broker alone
            pass
        try:
            return self.broker.order_by_client_id(cid) is not None
        except BrokerError:
            return True  # cannot tell: refusing loses one entry, a phantom trade is worse

    def _send_entry(self, pos: Position, choice: ContractChoice | None, now,
                    trade: dict | None = None) -> tuple[list, float, float, str | None]:
        """([(order row, fill price, filled qty, fill time)...], average fill price, filled
        qty, reason when nothing filled). Each order is journaled as an intent (with
        ``trade``, the setup) before it is sent."""
        s = self.settings
        side = "buy" if (pos.instrument == "options" or pos.direction == "call") else "sell"
        if self.dry_run:
            price = choice.ask if choice else pos.entry_price
            order = self._sim_order(pos, "buy" if choice else side, pos.qty, price, "entry")
            return [(order, price, pos.qty, None)], price, pos.qty, None
        if pos.instrument == "options":
            return self._send_option_entry(pos, trade)
        spec = OrderSpec(pos.symbol, pos.qty, side, "market", client_order_id=pos.client_order_id,
                         order_class="bracket", take_profit=pos.tp, stop_loss=pos.sl)
        try:
            sent = self._submit(spec, "entry", pos, detail=trade)
        except JournalRefusal as exc:
            return [], float("nan"), 0.0, f"error: {exc}"
        except BrokerError as exc:
            self._journal_rejected(spec, pos, "entry", exc)
            return [], float("nan"), 0.0, f"entry rejected: {short_error(exc)}"
        filled = wait_for_fill(self.broker, sent, self.clock, s.entry_timeout_seconds)
        if not filled.is_filled:
            filled = cancel_and_settle(self.broker, filled, clock=self.clock)
        pos.bracket_id = filled.id
        # a cancel still pending: the entry is not final, and its backstop waits for it
        pos.entry_order_id = None if filled.is_done else filled.id
        order = order_row(filled, self.run_id, None, "bracket")
        if filled.filled_qty <= 0:
            cid = pos.client_order_id
            self._safe_journal(lambda: self._tx(self._void_entry, order, cid), "entry order")
            return [], float("nan"), 0.0, (
                f"entry not filled within {s.entry_timeout_seconds:g}s (cancelled)"
            )
        return ([(order, float(filled.filled_avg_price), float(filled.filled_qty), filled.filled_at)],
                float(filled.filled_avg_price), float(filled.filled_qty), None)

    def _send_option_entry(self, pos: Position, trade: dict | None) -> tuple[list, float, float, str | None]:
        """A marketable limit from a fresh quote, repriced within the slippage budget. Each
        price step is journaled as an intent before it is sent (the first as the entry, the
        reprices as ``entry_reprice``)."""
        def submit(spec: OrderSpec, step: int):
            return self._submit(spec, "entry" if step == 0 else "entry_reprice", pos, detail=trade)

        try:
            ex = fill_marketable(self.broker, self.clock, self.settings, contract=pos.contract_symbol,
                                 root=self.symbol, side="buy", qty=pos.qty, client_order_id=pos.client_order_id,
                                 submit=submit)
        except JournalRefusal as exc:
            return [], float("nan"), 0.0, f"error: {exc}"
        except BrokerError as exc:
            spec = OrderSpec(pos.contract_symbol, pos.qty, "buy", "limit", client_order_id=pos.client_order_id)
            self._journal_rejected(spec, pos, "entry", exc)
            return [], float("nan"), 0.0, f"entry rejected: {short_error(exc)}"
        self._fill_quotes.update(ex.quotes)
        # a cancel still pending: the entry is not final, and its backstop waits for it
        pos.entry_order_id = next((o.id for o in ex.orders if not o.is_done), None)
        rows = [(order_row(o, self.run_id, None, "entry"), float(o.filled_avg_price), float(o.filled_qty), o.filled_at)
                for o in ex.orders]
        if ex.filled_qty <= 0:
            for row, *_ in rows:
                self._safe_journal(lambda r=row: self._tx(self._void_entry, r, r["client_order_id"]), "entry order")
            return [], float("nan"), 0.0, f"entry not filled: {ex.reason} (cancelled)"
        return rows, ex.avg_price, ex.filled_qty, None


    def _void_entry(self, order: dict, cid: str) -> None:
        self.journal.write_order(order)
        self.journal.update_intents("void", client_order_id=cid)

# ---------------------------------------------------------------------- helpers


def _plain(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


