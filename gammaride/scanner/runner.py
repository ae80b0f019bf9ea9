"""Running a scanner on the clock: ``for i in range(scans)``, then the open positions.

:class:`Runner` sleeps to each minute boundary plus ``scan_offset_seconds`` of the
broker's clock, runs one scan (:meth:`Scanner.step_at`), and while a position is open
checks it every ``monitor_seconds`` until the next scan. Every 10th scan it prints a
heartbeat. After the last scan it keeps managing open positions to their exit by the
same rules. Ctrl-C during a scan lets the scan finish and stops right after it; the run
then flattens what it opened. Bad keys stop the run at once.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import TYPE_CHECKING

import pandas as pd

from gammaride.config import ET
from gammaride.errors import BrokerAuthError, BrokerError
from gammaride.scanner import printer
from gammaride.scanner.clock import next_scan_time
from gammaride.scanner.record import RunStats, short_error
from gammaride.scanner.retry import with_retries

if TYPE_CHECKING:  # only for the annotation: loop.py imports this module
    from gammaride.scanner.loop import Scanner


class Runner:
    """Runs one :class:`~gammaride.scanner.loop.Scanner`'s scans on the broker's clock."""

    def __init__(self, scanner: Scanner):
        self.scanner = scanner
        self.positions = scanner.positions
        self.broker = scanner.broker
        self.clock = scanner.clock
        self.settings = scanner.settings
        self.record = scanner.record
        self.out = scanner.out
        self._in_step = False  # a scan or an exit is in flight: Ctrl-C waits for it
        self._stop_requested = False

    def run(self, scans: int | None = None) -> RunStats:
        """``for i in range(scans)``: sleep to the scan time, step, watch positions; after
        the last scan, manage what is still open to its exit. Bad keys stop it at once."""
        sc = self.scanner
        scans = self.settings.scans if scans is None else scans
        if sc.run_id is None:
            sc.start()
        status = "completed"
        previous = self._trap_ctrl_c()
        try:
            now = self.broker_now()
            for _ in range(scans):
                target = next_scan_time(now, self.settings.scan_offset_seconds)
                self.wait_until(target)
                self._in_step = True
                outcome = sc.step_at(target)
                self._in_step = False
                self._heartbeat(outcome.scan_no, outcome.now)
                if self._stop_requested:
                    raise KeyboardInterrupt
                now = outcome.now if outcome.now is not None else self.clock.now()
            if sc.flatten_at_end:
                self.manage_to_exit()
        except KeyboardInterrupt:
            status = "interrupted"
            self.out("Interrupted (Ctrl-C).")
        except BaseException as exc:
            status = "failed"
            sc.fail(exc)
            raise
        finally:
            self._in_step = False
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            if status == "completed":
                status = sc.completed_status()
            sc.finish(status)
        return sc.stats

    def _heartbeat(self, scan_no: int, now: pd.Timestamp | None) -> None:
        """``[SCAN n] ✓ Still running...`` every 10th scan, with the run's state."""
        if scan_no % 10 or now is None:
            return
        risk, stats = self.scanner.risk, self.record.stats
        try:
            self.out(printer.heartbeat(scan_no, now, open_positions=len(self.positions.open),
                                       entries=stats.entries, trades_today=risk.trades if risk else 0,
                                       pnl_today=risk.realized_pnl if risk else 0.0, errors=stats.errors))
        except Exception as exc:  # noqa: BLE001 - printing must not end the run
            self.record.error("print", exc)

    def broker_now(self, attempts: int = 5) -> pd.Timestamp:
        """The broker's time, retried: without it there is nothing to align scans to."""
        try:
            mc = with_retries(self.broker.clock, attempts=attempts,
                              retry_if=lambda e: not isinstance(e, BrokerAuthError),
                              on_error=lambda e: self.record.error("clock", e),
                              pause=lambda i: time.sleep(0.2 * (i + 1)))
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
            if not self.positions.open:
                self.clock.sleep_until(target)
                return
            wake = now + pd.Timedelta(seconds=self.settings.monitor_seconds)
            for p in self.positions.open:
                edge = p.limit + pd.Timedelta(seconds=1)
                if now < edge < wake:
                    wake = edge
            self.clock.sleep_until(min(wake, target))
            if self.clock.now() < target:
                self._in_step = True  # an exit in flight finishes before Ctrl-C stops the run
                self.positions.monitor()
                self._in_step = False
                if self._stop_requested:
                    raise KeyboardInterrupt

    def manage_to_exit(self) -> None:
        """After the last scan: keep managing open positions to their exit (TP, SL, max
        hold, hard stop) on the same rules, printing as it goes; Ctrl-C still flattens."""
        pm = self.positions
        if not pm.open:
            return
        self.out(f"Last scan done; managing {len(pm.open)} open position(s) to their exit "
                 f"(limit {max(p.limit for p in pm.open).tz_convert(ET):%H:%M} ET; Ctrl-C flattens)")
        now = self.clock.now()
        while pm.open:
            target = next_scan_time(now, self.settings.scan_offset_seconds)
            self.wait_until(target)
            if not pm.open:
                break
            self._in_step = True
            try:
                mc = self.broker.clock()
                self.clock.sync(mc.timestamp)
                now = mc.timestamp
                if not mc.is_open:
                    self.out("  [WARNING] the market closed with positions open; flattening what can be")
                    return
                pm.manage(self.scanner.market.fetch_bars(now), now)
                paths = pm.take_paths()
                if paths is not None:
                    self.record.write("write path", self.record.journal.write_paths, paths)
            except BrokerAuthError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed check is retried a minute later
                self.record.error("manage", exc)
                now = self.clock.now()
            finally:
                self._in_step = False
            if any(now >= p.limit + pd.Timedelta(minutes=5) for p in pm.open):
                self.out("  [WARNING] position(s) still open 5 minutes past their limit; flattening")
                return
            if self._stop_requested:
                raise KeyboardInterrupt
            if pm.open:
                p = pm.open[0]
                self.out(f"  [HOLD] {now.tz_convert(ET):%H:%M:%S} · trade {p.trade_id} {p.contract_symbol} open · "
                         f"{self.settings.symbol} ${self.scanner.market.last_price():.2f} · TP ${p.tp:.2f} "
                         f"SL ${p.sl:.2f} · limit {p.limit.tz_convert(ET):%H:%M}")

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
