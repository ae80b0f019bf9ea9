"""One scan: ``Scanner.step(now)`` decides, enters and journals at broker time ``now``.

A step never raises: market closed, no data, stale data and broker errors become the
scan's skip reason, a journal row and a printed line. Each scan is committed in its own
transaction, so a killed process loses nothing it already printed. The Scanner holds
its parts, each with explicit dependencies: bars, calendar, chain and IV in
:class:`~gammaride.scanner.market.MarketData`; orders and their journal rows in
:class:`~gammaride.scanner.orders.OrderDesk`; sending an entry in
:class:`~gammaride.scanner.entries.EntryDesk`; exits, backstops and what the broker did
in :class:`~gammaride.scanner.positions.PositionManager`; adoption on start in
:func:`~gammaride.scanner.reconcile.reconcile`; what is printed in
:mod:`gammaride.scanner.printer`. Sleeping to each minute, Ctrl-C, the heartbeat and
managing positions after the last scan are :class:`~gammaride.scanner.runner.Runner`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from gammaride.config import ET, Settings
from gammaride.errors import BrokerAuthError, BrokerError, JournalError
from gammaride.journal import Journal
from gammaride.rules.contracts import (
    choose_contract,
    hard_stop_minute,
    marketable_limit,
)
from gammaride.rules.gamma import gate_block
from gammaride.rules.risk import DayRisk, entry_block
from gammaride.rules.session import session_close_minutes
from gammaride.rules.setup import ExitPolicy, calculate_setup, exit_plan
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
from gammaride.scanner.broker import Broker, MarketClock
from gammaride.scanner.clock import Clock
from gammaride.scanner.entries import EntryDesk
from gammaride.scanner.gamma_source import GammaSource
from gammaride.scanner.market import WINDOW, MarketData
from gammaride.scanner.orders import (
    OrderDesk,
    client_order_id,
)
from gammaride.scanner.positions import MINUTE, Position, PositionManager
from gammaride.scanner.reconcile import reconcile
from gammaride.scanner.record import RunRecord, RunStats, short_error
from gammaride.scanner.runner import Runner

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


class Scanner:
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
        self.flatten_at_end = flatten_at_end
        self.out = out or (lambda s: print(s, flush=True))
        self.source = source
        self.symbol = settings.symbol
        self.risk: DayRisk | None = None
        self.outcomes: list[ScanOutcome] = []
        self.failure: str | None = None  # why the run failed, when it did (its status says so)
        self._pending_iv: tuple | None = None
        self._last_decided: pd.Timestamp | None = None  # the newest decision bar end acted on
        self._feed_said: str | None = None  # the option feed the output last named
        # the run's journal rows and counts; orders journaled before they are sent
        self.record = RunRecord(journal, out=self.out, debug=settings.debug)
        self.stats: RunStats = self.record.stats
        self.orders = OrderDesk(broker, clock, self.record, dry_run=dry_run)
        self.gamma = GammaSource(broker, settings, on_error=self.record.error)  # dealer gamma each scan
        # bars, calendar, chain, IV; daily_fallback: daily closes when the broker serves none
        self.market = MarketData(broker, settings, lambda *a, **k: self.journal.iv_history(*a, **k),
                                 iv_fixed=iv_percentile, daily_fallback=daily_fallback, on_error=self.record.error)
        self.positions = PositionManager(
            broker, self.record, self.orders, settings, clock, self.market, mode=mode, out=self.out,
            dry_run=dry_run, backstop=backstop, exit_timeout_seconds=exit_timeout_seconds, on_exit=self._booked)
        self.entries = EntryDesk(broker, clock, settings, self.record, self.orders, self.positions,
                                 mode=mode, dry_run=dry_run)

    @property
    def run_id(self) -> int | None:
        return self.record.run_id

    @run_id.setter
    def run_id(self, value: int | None) -> None:
        self.record.run_id = value

    @property
    def scan_no(self) -> int:
        return self.record.scan_no

    @property
    def journal_failure(self) -> str | None:
        """The first failed journal write: from then on no new entries (no journal, no trade)."""
        return self.record.failure

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
            reconcile(self.positions)
        except BaseException as exc:  # a run that could not start is not 'completed'
            self.fail(exc)
            self.finish("failed")
            raise
        return self.run_id

    def run(self, scans: int | None = None) -> RunStats:
        """``scans`` scans on the minute, then the open positions to their exit (see
        :class:`~gammaride.scanner.runner.Runner`)."""
        return Runner(self).run(scans)

    def fail(self, exc: BaseException) -> None:
        """Say why the run stopped (bad keys with the fix) and remember it."""
        self.failure = self.failure or short_error(exc)
        if isinstance(exc, BrokerAuthError):
            self.out(f"✗ Error: the broker refused the keys ({short_error(exc)}); check ALPACA_API_KEY and "
                     "ALPACA_SECRET_KEY are this account's (paper keys for paper, live keys for --live)")
        else:
            self.out(f"✗ Error: the run stopped ({short_error(exc)})")

    def completed_status(self) -> str:
        """'completed', or 'failed' (with the reason in ``failure``) when the journal
        failed or every scan failed."""
        if self.journal_failure:
            self.failure = f"journal writes failed ({self.journal_failure}); no entries were made after that"
            return "failed"
        if self.outcomes and all(str(o.row.get("skip_reason") or "").startswith("error") for o in self.outcomes):
            self.failure = f"all {len(self.outcomes)} scans failed (last: {self.outcomes[-1].row.get('skip_reason')})"
            return "failed"
        return "completed"

    def finish(self, status: str = "completed") -> None:
        """Commit what is pending, flatten what this run still holds (``flatten_at_end``),
        journal the run's end and print its summary."""
        paths = self.positions.take_paths()
        if paths is not None:
            self.record.write("write path", self.journal.write_paths, paths)
        if self.flatten_at_end and self.positions.open:
            self.out(f"Flattening {len(self.positions.open)} open position(s) this run manages.")
            for pos in list(self.positions.open):
                self.positions.flatten(pos)
        summary = self.stats.as_dict()
        summary["dry_run"] = bool(self.dry_run)
        summary["open_positions"] = [p.contract_symbol for p in self.positions.open]
        jit = [o.jitter_s for o in self.outcomes if np.isfinite(o.jitter_s)]
        if jit:
            summary["jitter_median_s"] = float(np.median(jit))
            summary["jitter_max_s"] = float(np.max(np.abs(jit)))
        if self.failure:
            summary["failure"] = self.failure
        self.record.safe(lambda: self.journal.finish_run(self.run_id, status, summary), "finish run")
        if status == "failed" and self.failure:
            self.out(f"✗ Run {self.run_id} failed: {self.failure}")
        self.out(printer.summary_line(self.run_id, status, self.stats.as_dict(), summary["open_positions"]))

    def _booked(self, pnl: float) -> None:
        """An exit was booked: it counts against the day's loss limit."""
        if self.risk is not None and self.risk.record_exit(pnl, self.settings):
            self.out(f"  [KILL SWITCH] daily loss ${-self.risk.realized_pnl:,.2f} reached the limit; no new entries today")
            self.record.write("kill switch", self.journal.write_error, self.run_id, "kill switch",
                              f"daily loss limit hit: P&L {self.risk.realized_pnl:.2f}", self.scan_no)

    def step_at(self, target: pd.Timestamp) -> ScanOutcome:
        """The scan due at ``target``: the broker's clock, then :meth:`step`."""
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
            self.record.error("clock", exc, scan_no=self.scan_no + 1)  # the scan about to run
        now = mc.timestamp if mc is not None else self.clock.now()
        outcome = self.step(now, mc, clock_error)
        outcome.jitter_s = (now - target).total_seconds()
        outcome.seconds = time.perf_counter() - t0
        return outcome

    # ------------------------------------------------------------------ one scan
    def step(self, now: pd.Timestamp, market: MarketClock | None = None,
             clock_error: BrokerError | None = None) -> ScanOutcome:
        """One scan at broker time ``now``. Never raises; always journals and prints."""
        self.record.scan_no += 1
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
            self.record.error("scan", exc)
        if "sig" in info and "gamma" not in info:  # after the decision: no order waits for it
            self._measure_gamma(now, float(info["sig"]["price"]), row, info)
        if row.get("in_window"):
            self.stats.in_window += 1
        if row.get("signal"):
            self.stats.signals += 1
        self.record.safe(lambda: self._write_scan(row), "write scan")
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
        except Exception as exc:  # noqa: BLE001 - printing must not end the run either
            line = f"[SCAN {self.scan_no}] (line unavailable: {short_error(exc)})"
            self.record.error("print", exc)
        outcome = ScanOutcome(self.scan_no, now, row, line)
        self.outcomes.append(outcome)
        return outcome

    def _measure_gamma(self, now: pd.Timestamp, price: float, row: dict, info: dict) -> None:
        """Dealer gamma into the scan's row (never raises: a failure is its reason)."""
        info["gamma"] = self.gamma.measure(now, price)
        row.update(info["gamma"].row())

    def _write_scan(self, row: dict) -> None:
        """The scan row, the IV it observed and new path bars: one commit per scan."""
        paths = self.positions.take_paths()
        iv, self._pending_iv = self._pending_iv, None
        with self.journal.transaction():
            self.journal.write_scan(row)
            if paths is not None:
                self.journal.write_paths(paths)
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
            self.positions.watch_broker()  # what the broker does at and after the close (exercise, expiry)
            return
        self._new_day(now)
        bars = self.market.fetch_bars(now)
        if bars.empty:
            row["skip_reason"], row["skip_code"] = SKIP_NO_DATA, SKIP_DATA
            return
        last_end = bars.index[-1] + MINUTE
        age = (now - last_end).total_seconds() / 60.0
        row["decision_time"] = last_end
        if age > self.settings.stale_after_minutes:
            row["skip_reason"] = f"{SKIP_STALE} (latest complete bar ended {age:.1f} min ago)"
            row["skip_code"] = SKIP_DATA
            self.positions.manage(bars, now)  # time exits still apply
            return
        # exits first: flat at a bar's end, that bar's decision may enter again (as replay)
        self.positions.manage(bars, now)
        if self._last_decided is not None and last_end <= self._last_decided:
            # the next bar is late: this bar was decided (and maybe traded) by an earlier scan
            row["skip_reason"], row["skip_code"] = SKIP_DECIDED, SKIP_DATA
            return
        self._last_decided = last_end
        price = float(bars["close"].iloc[-1])
        chain = self.market.chain(now, price, info)
        row["option_feed"] = getattr(self.broker, "option_feed_used", None)
        iv, ivp, src = self._iv_now(now, price, chain, info)
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
        plan = exit_plan(str(sig["direction"]), float(sig["price"]), float(sig["atr"]), self.policy)
        info.update(tp=plan.tp, sl=plan.sl, tp_mult=plan.tp_mult, sl_mult=plan.sl_mult, bucket=plan.atr_bucket)
        block = entry_block(self.settings, self.risk, len(self.positions.open))
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
    def _iv_now(self, now: pd.Timestamp, price: float, chain: pd.DataFrame | None,
                info: dict) -> tuple[float, float | None, str]:
        """(ATM IV, percentile, source) from :meth:`MarketData.iv_now`; a finite IV is
        recorded with its series, committed with this scan's row."""
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
            self.record.error("account", exc)
        self.risk = DayRisk(today, start_equity)
        # trades already made today (earlier runs) count against today's limits
        self.risk.trades, self.risk.realized_pnl = self.journal.trades_today(self.mode, today.date(), self.dry_run)

    # ------------------------------------------------------------------ entries
    def _enter(self, now, decision_time, sig, chain, info) -> tuple[int | None, str | None]:
        s = self.settings
        direction = str(sig["direction"])
        atr, entry = float(sig["atr"]), float(sig["price"])
        ivp = float(sig["iv_percentile"])
        try:
            acct = self.broker.account()
            equity, bp = acct.equity, acct.options_buying_power
        except BrokerError as exc:
            self.record.error("account", exc)
            return None, f"error: account unavailable ({short_error(exc)})"
        cid = client_order_id(self.symbol, decision_time, direction)
        if self.entries.already_entered(cid):
            return None, f"{SKIP_DECIDED} (entry {cid} already journaled)"
        today = pd.Timestamp(decision_time.date())
        if s.instrument == "shares":
            choice = None
            close_min = int(session_close_minutes(pd.DatetimeIndex([today]))[0])
            stop_min = hard_stop_minute(s, self.symbol, close_min, same_day=False)
            setup = calculate_setup(direction, entry, atr, ivp, equity, s, self.policy)
            qty = setup.contracts * 100 * s.replay_delta  # the shares that move like the contracts
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
            setup = calculate_setup(direction, entry, atr, ivp, equity, s, self.policy, buying_power=bp, premium=limit)
            qty = setup.contracts
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
            entry_time=decision_time, entry_price=entry, atr=atr, tp=setup.tp, sl=setup.sl,
            tp_mult=setup.tp_mult, sl_mult=setup.sl_mult, hold_until=hold_until, hard_stop=hard_stop,
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
            "phase": setup.phase, "atr_bucket": setup.atr_bucket, "iv_percentile": ivp,
            "client_order_id": cid,
        }
        orders, fill_price, filled_qty, why = self.entries.send(pos, choice, trade)
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
        self.positions.open.append(pos)
        self.risk.trades += 1
        self.stats.entries += 1
        if self.positions.backstop and pos.entry_order_id is None:
            self.positions.place_backstop(pos)  # else once the entry order is final (wash-trade rule)

        def write() -> None:
            with self.journal.transaction():
                self.journal.write_trade(trade)
                for order, price, qty, at in orders:  # one per price step of the entry
                    self.orders.journal_order(order, trade_id, "bracket" if s.instrument == "shares" else "entry")
                    self.orders.journal_fill(order, trade_id, price, qty, at)
                    if not self.dry_run:
                        self.journal.update_intents("booked", client_order_id=order["client_order_id"])

        self.record.safe(write, "write trade")
        return trade_id, None


# ---------------------------------------------------------------------- helpers


def _plain(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


