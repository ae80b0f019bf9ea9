"""The position manager: gammaride is its own OCO for options.

Alpaca takes no bracket orders for options, so the scanner watches each open position:
the underlying against TP/SL, the max-hold clock and the hard stop. Exit *decisions*
come from :func:`gammaride.rules.exits.evaluate_exits`, the code replay uses: on the
complete 1-minute bars at every scan, and on the latest trade as a one-price bar
between scans. Orders go out idempotently (a retry can never buy or sell twice).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gammaride.config import ET
from gammaride.errors import BrokerAuthError, BrokerError
from gammaride.rules.contracts import parse_occ, premium_at
from gammaride.rules.exits import (
    EXIT_HARD_STOP,
    EXIT_MANUAL,
    EXIT_SL,
    EXIT_TIME,
    evaluate_exits,
    excursions,
)
from gammaride.scanner.broker import Broker, OrderInfo, OrderSpec, PositionInfo
from gammaride.scanner.clock import Clock
from gammaride.scanner.execution import slippage_per_contract
from gammaride.scanner.retry import is_transient, with_retries
from gammaride.text import signed_usd

MINUTE = pd.Timedelta(minutes=1)
CLIENT_PREFIX = "gr-"
# exits the broker makes itself (issue: Alpaca liquidates, exercises and expires options)
EXIT_LIQUIDATION = "broker_liquidation"
EXIT_EXERCISED = "exercised"
EXIT_EXPIRED = "expired"
# Alpaca's option events in the account activities: exercise, assignment, expiry
OPTION_EVENTS = ("OPEXC", "OPASN", "OPEXP")
# Alpaca liquidates expiring positions within the last hour before the close (15:45 ET
# for broad-based ETFs, 15:30 others, earlier when buying power cannot cover exercise): a
# sell not sent by gammaride in that hour of the expiry day is the broker's liquidation
LIQUIDATION_WINDOW = pd.Timedelta(hours=1)
# a position missing at the broker with no order or activity to explain it is booked
# 'manual' only once it has been missing this long (position lists can lag fills)
MISSING_GRACE = pd.Timedelta(seconds=60)


def client_order_id(symbol: str, decision_time: pd.Timestamp, direction: str) -> str:
    """``gr-SPY-201310081002-C``: one id per (symbol, decision minute, direction), so a
    retried submission is refused as a duplicate instead of buying twice."""
    t = pd.Timestamp(decision_time).tz_convert(ET)
    return f"{CLIENT_PREFIX}{symbol.upper()}-{t:%Y%m%d%H%M}-{'C' if direction == 'call' else 'P'}"


def is_ours(client_id: str | None) -> bool:
    return bool(client_id) and str(client_id).startswith(CLIENT_PREFIX)


@dataclass
class Position:
    """One open trade the manager watches. Times are tz-aware ET."""

    trade_id: int
    run_id: int
    symbol: str  # underlying
    instrument: str  # options | shares
    contract_symbol: str  # what is held: the OCC symbol, or the underlying for shares
    direction: str
    qty: float
    entry_time: pd.Timestamp  # the decision time (end of the decision bar)
    entry_price: float  # underlying at decision
    atr: float
    tp: float
    sl: float
    tp_mult: float
    sl_mult: float
    hold_until: pd.Timestamp
    hard_stop: pd.Timestamp
    entry_premium: float = float("nan")
    delta: float = float("nan")
    entry_bid: float = float("nan")
    client_order_id: str = ""
    backstop_id: str | None = None
    bracket_id: str | None = None
    entry_order_id: str | None = None  # set while the entry order is not final (no backstop yet)
    missing_since: pd.Timestamp | None = None  # when the broker first showed less than qty
    adopted: bool = False
    exit_attempts: int = 0
    backstops: int = 0  # backstop orders placed so far: each new one needs a new client id
    # exit fills booked before the position was flat (a partial exit or backstop fill)
    closed_qty: float = 0.0
    closed_value: float = 0.0  # sum of qty x price of those fills
    path: dict[int, tuple] = field(default_factory=dict)  # minute -> (bar_time, o, h, l, c)

    @property
    def sign(self) -> int:
        return 1 if self.direction == "call" else -1

    @property
    def limit(self) -> pd.Timestamp:
        """When the position's clock runs out: max hold or hard stop, whichever is first."""
        return min(self.hold_until, self.hard_stop)

    @property
    def end_reason(self) -> str:
        return EXIT_TIME if self.hold_until <= self.hard_stop else EXIT_HARD_STOP


@dataclass(frozen=True)
class ExitDecision:
    reason: str
    price: float  # underlying
    time: pd.Timestamp  # bar end, or the time of the price check
    from_bars: bool


def held_bars(pos: Position, bars: pd.DataFrame) -> pd.DataFrame:
    """Complete bars after the decision that end by the position's limit (replay's valid bars)."""
    start = bars.index
    keep = (start >= pos.entry_time) & (start + MINUTE <= pos.limit)
    return bars[np.asarray(keep)].iloc[: int((pos.hold_until - pos.entry_time) / MINUTE)]


def check_bars(pos: Position, bars: pd.DataFrame, now: pd.Timestamp, grace_minutes: float = 3.0) -> ExitDecision | None:
    """Exit decision from complete bars, exactly as replay takes it; None while holding.

    Final (time or hard stop) once the bar ending at the limit is in; if data stops
    arriving, ``grace_minutes`` after the limit the last known close ends the trade.
    """
    held = held_bars(pos, bars)
    if held.empty:
        if now >= pos.limit + pd.Timedelta(minutes=grace_minutes):
            last = bars[bars.index + MINUTE <= pos.limit]
            price = float(last["close"].iloc[-1]) if len(last) else pos.entry_price
            return ExitDecision(pos.end_reason, price, pos.limit, True)
        return None
    last_end = held.index[-1] + MINUTE
    final = bool(last_end >= pos.limit) or now >= pos.limit + pd.Timedelta(minutes=grace_minutes)
    a = held[["open", "high", "low", "close"]].to_numpy(dtype=float).T[:, None, :]
    ex = evaluate_exits(
        np.array([pos.sign]), np.array([pos.tp]), np.array([pos.sl]),
        a[0], a[1], a[2], a[3], np.array([len(held)]), pos.end_reason, final=final,
    )
    if ex.reason[0] is None:
        return None
    j = int(ex.bar[0])
    return ExitDecision(str(ex.reason[0]), float(ex.price[0]), held.index[j] + MINUTE, True)


def check_price(pos: Position, price: float, at: pd.Timestamp) -> ExitDecision | None:
    """TP/SL on one trade price, as a one-price bar through the same rule code. Time
    exits are left to :func:`check_bars`, which sees the bar that ends at the limit."""
    p = np.array([[float(price)]])
    ex = evaluate_exits(
        np.array([pos.sign]), np.array([pos.tp]), np.array([pos.sl]), p, p, p, p,
        np.array([1]), final=False,
    )
    if ex.reason[0] is None:
        return None
    return ExitDecision(str(ex.reason[0]), float(price), pd.Timestamp(at), False)


def record_path(pos: Position, bars: pd.DataFrame, max_hold: int) -> pd.DataFrame:
    """New trade_paths rows (minute 1..max_hold after the decision, past the exit too)."""
    start = bars.index
    keep = (start >= pos.entry_time) & (start < pos.entry_time + max_hold * MINUTE)
    rows = []
    for ts, o, h, lo, c in bars[np.asarray(keep)][["open", "high", "low", "close"]].itertuples():
        minute = int((ts - pos.entry_time) / MINUTE) + 1
        if minute not in pos.path:
            pos.path[minute] = (ts, o, h, lo, c)
            rows.append((pos.trade_id, minute, ts, o, h, lo, c))
    return pd.DataFrame(rows, columns=["trade_id", "minute", "bar_time", "open", "high", "low", "close"])


def trade_metrics(pos: Position, exit_price: float, exit_time: pd.Timestamp) -> dict:
    """r_multiple in underlying ATR terms (like replay) and MFE/MAE over the held bars."""
    move = pos.sign * (exit_price - pos.entry_price)
    held = [v for m, v in sorted(pos.path.items()) if v[0] + MINUTE <= exit_time]
    if held:
        hi = np.array([[v[2] for v in held]])
        lo = np.array([[v[3] for v in held]])
        mfe, mae = excursions(np.array([pos.sign]), np.array([pos.entry_price]), np.array([pos.atr]),
                              hi, lo, np.array([len(held)]))
        mfe_v, mae_v = float(mfe[0]), float(mae[0])
    else:
        mfe_v = mae_v = float("nan")
    return {
        "r_multiple": move / (pos.sl_mult * pos.atr) if pos.sl_mult * pos.atr > 0 else float("nan"),
        "mfe_atr": mfe_v,
        "mae_atr": mae_v,
    }


# --- orders ----------------------------------------------------------------------------
def submit_idempotent(broker: Broker, spec: OrderSpec, attempts: int = 3) -> OrderInfo:
    """Submit; on any failure look the client id up before trying again, so an order the
    broker did take (reply lost, timeout) is found instead of sent twice. A definite
    refusal (4xx other than 408/429, and not a duplicate id) is raised at once."""

    def lookup(_: BrokerError) -> OrderInfo | None:
        try:
            return broker.order_by_client_id(spec.client_order_id) if spec.client_order_id else None
        except BrokerError:
            return None

    def again(exc: BrokerError) -> bool:  # a duplicate id is retried: the lookup finds the order
        return is_transient(exc) or "client_order_id" in str(exc).lower()

    return with_retries(lambda: broker.submit_order(spec), attempts=attempts, retry_if=again, recover=lookup)


def wait_for_fill(broker: Broker, order: OrderInfo, clock: Clock, timeout_s: float, poll_s: float = 1.0) -> OrderInfo:
    """Poll until filled, finished or ``timeout_s`` market seconds pass. Polling, not a
    stream: ``TradingStream.run()`` cannot run inside Colab's event loop."""
    deadline = clock.now() + pd.Timedelta(seconds=timeout_s)
    while not order.is_done:
        if clock.now() >= deadline:
            break
        clock.sleep_until(clock.now() + pd.Timedelta(seconds=poll_s))
        try:
            order = broker.get_order(order.id)
        except BrokerError:
            continue  # a failed poll is not a failed order: poll again
    return order


def cancel_and_settle(broker: Broker, order: OrderInfo, attempts: int = 3, clock: Clock | None = None,
                      timeout_s: float = 5.0, poll_s: float = 0.25) -> OrderInfo:
    """Cancel and return the order's final state (it may have filled meanwhile).

    Alpaca cancels asynchronously (``pending_cancel``): until the order is done it can
    still fill and its quantity is still reserved, so this polls until it is done or
    ``timeout_s`` seconds (of ``clock``, else wall time) pass."""
    try:  # a 422 means already filled or done: nothing left to cancel
        with_retries(lambda: broker.cancel_order(order.id), attempts=attempts,
                     recover=lambda exc: True if getattr(exc, "status", None) == 422 else None)
    except BrokerError:
        pass  # the order's own state, polled below, says what happened
    latest = order
    deadline = (clock.now() if clock else pd.Timestamp.now(tz="UTC")) + pd.Timedelta(seconds=timeout_s)
    failures = 0
    while True:
        try:
            latest = broker.get_order(order.id)
        except BrokerError:
            failures += 1
            if failures >= attempts:
                return latest
        if latest.is_done:
            return latest
        now = clock.now() if clock else pd.Timestamp.now(tz="UTC")
        if now >= deadline:
            return latest
        if clock is not None:
            clock.sleep_until(now + pd.Timedelta(seconds=poll_s))
        else:
            time.sleep(poll_s)


def backstop_client_id(entry_client_id: str, n: int) -> str:
    """The n-th backstop's client id (1: ``-bs``, then ``-bs2``...): a re-placed backstop
    needs a new id, or the idempotent submit would return the old, done order."""
    return f"{entry_client_id}-bs" + ("" if n <= 1 else str(n))


class PositionManager:
    """Gammaride's own OCO for every open position, and the journal bookkeeping of orders.

    Mixed into :class:`gammaride.scanner.loop.Scanner`, which owns the state these
    methods use: ``broker``, ``journal``, ``clock``, ``settings``, ``run_id``,
    ``positions`` (open), ``tracking`` (closed, path still filling), ``stats``, ``risk``.
    """

    def _price_now(self) -> float:
        try:
            return self.broker.latest_trade(self.symbol).price
        except BrokerError:
            bars = self._last_bars
            return float(bars["close"].iloc[-1]) if bars is not None and len(bars) else float("nan")

    def _place_backstop(self, pos: Position) -> None:
        """A resting stop at the SL premium estimate, protection if this process dies.

        The estimate starts from the bid at entry (what selling would fetch), not the
        price paid: a stop below the ask by only delta x SL distance fires on the spread.
        """
        ref = pos.entry_bid if np.isfinite(pos.entry_bid) else pos.entry_premium
        stop = premium_at(ref, pos.delta, pos.sign, pos.sl - pos.entry_price, pos.symbol)
        pos.backstops += 1
        spec = OrderSpec(pos.contract_symbol, pos.qty, "sell", "stop", stop_price=stop,
                         client_order_id=backstop_client_id(pos.client_order_id, pos.backstops))
        try:
            o = self._submit(spec, "backstop", pos)
            pos.backstop_id = o.id
            self._safe_journal(lambda: self._tx(self._journal_order, o, pos.trade_id, "backstop"), "backstop")
        except BrokerError as exc:
            self.out(f"  backstop stop not accepted ({short_error(exc)}); the SL is watched client-side")
            self._journal_rejected(spec, pos, "backstop", exc)

    def _manage(self, bars: pd.DataFrame, now: pd.Timestamp) -> None:
        """At a scan: record paths, then decide exits on the complete bars."""
        for pos in list(self.positions) + list(self.tracking):
            rows = record_path(pos, bars, self.settings.max_hold_minutes)
            if len(rows):
                self._pending_paths.append(rows)  # committed with this scan's row
        self.tracking = [p for p in self.tracking
                         if len(p.path) < self.settings.max_hold_minutes
                         and now < p.hold_until + pd.Timedelta(minutes=5)]
        self._watch_broker()
        for pos in list(self.positions):
            if self._closed_at_broker(pos):
                continue
            decision = _client_side(pos, check_bars(pos, bars, now)) or self._hard_stop_now(pos, now, None)
            if decision is not None:
                self._close(pos, decision)

    def monitor(self) -> None:
        """Between scans: the latest trade as a one-price bar, and the clock. Never raises."""
        if not self.positions:
            return
        try:
            self._monitor()
        except Exception as exc:  # noqa: BLE001 - a failed check is retried at the next tick
            self._error("monitor", exc)

    def _monitor(self) -> None:
        now = self.clock.now()
        for pos in [p for p in self.positions if p.bracket_id]:
            self._closed_at_broker(pos)  # a bracket leg may have filled since the last look
        self._watch_broker()
        if not self.positions:
            return
        try:
            trade = self.broker.latest_trade(self.symbol)
        except BrokerError as exc:
            self._error("monitor", exc)
            trade = None
        timed_out = any(now >= p.limit for p in self.positions)
        hit = trade is not None and any(_client_side(p, check_price(p, trade.price, now)) for p in self.positions)
        if not (timed_out or hit):
            return
        # complete bars decide first (what replay sees); the trade price only if they do not
        try:
            bars = self.fetch_bars(now)
        except BrokerError as exc:
            self._error("monitor bars", exc)
            bars = None
        for pos in list(self.positions):
            if self._closed_at_broker(pos):
                continue
            decision = _client_side(pos, check_bars(pos, bars, now)) if bars is not None and len(bars) else None
            if decision is None and trade is not None:
                decision = _client_side(pos, check_price(pos, trade.price, now))
            if decision is None:
                decision = self._hard_stop_now(pos, now, trade)
            if decision is not None:
                if bars is not None:
                    rows = record_path(pos, bars, self.settings.max_hold_minutes)
                    if len(rows):
                        self._safe_journal(lambda r=rows: self._tx(self.journal.write_paths, r), "write path")
                self._close(pos, decision)

    def _hard_stop_now(self, pos: Position, now: pd.Timestamp, trade) -> ExitDecision | None:
        """At the hard stop the clock rules: exit at the last trade price rather than wait
        for a bar that may come late (the contract's cutoff does not wait)."""
        if now < pos.hard_stop:
            return None
        price = trade.price if trade is not None else self._price_now()
        return ExitDecision(EXIT_HARD_STOP, float(price), now, False)

    def _closed_at_broker(self, pos: Position) -> bool:
        """The backstop (options) or a bracket leg (shares) may have closed the position."""
        if self.dry_run:
            return False
        leg: OrderInfo | None = None
        try:
            if pos.backstop_id:
                o = self.broker.get_order(pos.backstop_id)
                leg = o if o.is_filled else None
                reason = EXIT_SL
            elif pos.bracket_id:
                parent = self.broker.get_order(pos.bracket_id)
                for lg in parent.legs:
                    if lg.is_filled:
                        leg = lg
                        reason = "tp" if lg.type == "limit" else EXIT_SL
        except BrokerError:
            return False
        if leg is None:
            return False
        # a share leg's fill is the underlying's exit price; an option stop's is a premium
        price = leg.filled_avg_price if pos.instrument == "shares" else self._price_now()
        at = leg.filled_at or self.clock.now()
        self.out(f"  [EXIT] trade {pos.trade_id} closed at the broker by its {'backstop' if pos.backstop_id else 'bracket'} order")
        self._book_exit(pos, ExitDecision(reason, price, at, False), leg, "backstop" if pos.backstop_id else "bracket")
        return True

    def _close(self, pos: Position, decision: ExitDecision) -> bool:
        """Cancel the backstop, sell with a marketable order, journal fill and reason.
        True once the position is booked closed; False leaves it open (retried at the
        next check), with a backstop resting again when one had been cancelled."""
        if self.dry_run:
            premium = self._sim_exit_premium(pos, decision.price)
            order = self._sim_order(pos, "sell", pos.qty, premium, "exit")
            self._book_exit(pos, decision, None, "exit", sim_row=order, premium=premium)
            return True
        had_backstop = False
        try:
            if pos.backstop_id:
                bs = cancel_and_settle(self.broker, self.broker.get_order(pos.backstop_id), clock=self.clock)
                if bs.is_filled:
                    self._book_exit(pos, ExitDecision(EXIT_SL, decision.price, decision.time, False), bs, "backstop")
                    return True
                if bs.is_done:
                    self._partial_exit(pos, bs, "backstop")  # a part it sold before the cancel
                    pos.backstop_id = None
                    had_backstop = True
                else:  # still working: selling now would be refused for the reserved qty
                    self.out(f"  [EXIT] trade {pos.trade_id}: backstop cancel still pending; retrying at the next check")
                    return False
            if pos.bracket_id:
                parent = cancel_and_settle(self.broker, self.broker.get_order(pos.bracket_id), clock=self.clock)
                for lg in parent.legs:
                    if not lg.is_done:
                        lg = cancel_and_settle(self.broker, lg, clock=self.clock)
                    if lg.is_filled:  # a leg that filled while being cancelled closed the position
                        self._book_exit(pos, ExitDecision("tp" if lg.type == "limit" else EXIT_SL,
                                                          decision.price, decision.time, False), lg, "bracket")
                        return True
                pos.bracket_id = None
            filled = self._send_exit(pos, decision)
        except BrokerError as exc:
            self._error(f"exit trade {pos.trade_id}", exc)
            self.out(f"  [EXIT] trade {pos.trade_id}: {short_error(exc)}; retrying at the next check")
            filled = None
        if filled is None:
            if had_backstop and self.backstop and pos.qty > 0:
                self._place_backstop(pos)  # protected again while the exit is retried
            return False
        self._book_exit(pos, decision, filled, "exit")
        return True

    def _partial_exit(self, pos: Position, order: OrderInfo, purpose: str) -> None:
        """Journal a done order that sold part of the position and keep its money for the
        trade's P&L; the rest of the position stays open."""
        self._safe_journal(lambda: self._tx(self._journal_order, order, pos.trade_id, purpose), f"{purpose} order")
        q = float(order.filled_qty or 0.0)
        if q <= 0 or not np.isfinite(order.filled_avg_price):
            return
        q = min(q, pos.qty)
        pos.qty -= q
        pos.closed_qty += q
        pos.closed_value += q * float(order.filled_avg_price)
        self._safe_journal(lambda: self._tx(self._journal_fill, order, pos.trade_id, float(order.filled_avg_price),
                                            q, order.filled_at), f"{purpose} fill")

    def _send_exit(self, pos: Position, decision: ExitDecision | None = None) -> OrderInfo | None:
        pos.exit_attempts += 1
        cid = f"{pos.client_order_id}-x{pos.exit_attempts}"
        side = "sell" if (pos.instrument == "options" or pos.direction == "call") else "buy"
        detail = None if decision is None else {"reason": decision.reason, "price": decision.price,
                                                "time": decision.time.isoformat()}
        if pos.instrument == "options":
            from gammaride.scanner.execution import fill_marketable

            ex = fill_marketable(self.broker, self.clock, self.settings, contract=pos.contract_symbol,
                                 root=pos.symbol, side="sell", qty=pos.qty, client_order_id=cid,
                                 submit=lambda spec, step: self._submit(spec, "exit", pos, detail=detail))
            self._fill_quotes.update(ex.quotes)
            if ex.orders:
                *earlier, done = ex.orders
                for o in earlier:  # price steps that sold part of the position
                    self._partial_exit(pos, o, "exit")
                if done.filled_qty < pos.qty:
                    self._partial_exit(pos, done, "exit")
                    self.out(f"  [EXIT] trade {pos.trade_id}: {ex.reason}; retrying at the next check")
                    return None
                return done
            # no quote to price from (one-sided, stale, missing): an exit must still go out
            self.out(f"  [EXIT] trade {pos.trade_id}: {ex.reason}; selling at market")
            spec = OrderSpec(pos.contract_symbol, pos.qty, "sell", "market", client_order_id=cid)
        else:
            spec = OrderSpec(pos.symbol, pos.qty, side, "market", client_order_id=cid)
        sent = self._submit(spec, "exit", pos, detail=detail)
        done = wait_for_fill(self.broker, sent, self.clock, self.exit_timeout)
        if not done.is_filled:
            done = cancel_and_settle(self.broker, done, clock=self.clock)
        if done.filled_qty < pos.qty:
            self._partial_exit(pos, done, "exit")
            self.out(f"  [EXIT] trade {pos.trade_id}: exit order {done.status}; retrying at the next check")
            return None
        return done

    def _quote(self, pos: Position) -> tuple[float, float]:
        _, exp, _, strike = parse_occ(pos.contract_symbol)
        chain = self.broker.option_chain(self.symbol, exp.date(), exp.date(), strike, strike)
        row = chain[chain["symbol"] == pos.contract_symbol]
        if row.empty:
            return float("nan"), float("nan")
        return float(row["bid"].iloc[0]), float(row["ask"].iloc[0])

    def _book_exit(self, pos: Position, decision: ExitDecision, order: OrderInfo | None, purpose: str,
                   sim_row: dict | None = None, premium: float | None = None) -> None:
        if premium is None:
            premium = float(order.filled_avg_price) if order is not None else float("nan")
        fill_premium, fill_qty = premium, pos.qty
        if pos.closed_qty > 0:  # earlier partial exits: the trade's P&L is over every contract
            pos.qty += pos.closed_qty
            premium = (pos.closed_value + premium * fill_qty) / pos.qty
            pos.closed_qty = pos.closed_value = 0.0
        if pos.instrument == "options":
            pnl = (premium - pos.entry_premium) * pos.qty * 100.0
            exit_premium = premium
        else:
            pnl = pos.sign * (premium - pos.entry_premium) * pos.qty if np.isfinite(pos.entry_premium) else \
                pos.sign * (decision.price - pos.entry_price) * pos.qty
            exit_premium = None
        metrics = trade_metrics(pos, decision.price, decision.time)
        values = dict(status="closed", exit_time=decision.time, exit_price=decision.price,
                      exit_reason=decision.reason, exit_premium=exit_premium, pnl_usd=pnl, **metrics)

        def write() -> None:
            with self.journal.transaction():
                self.journal.update_trade(pos.trade_id, **values)
                if not self.dry_run:  # every order of the trade is accounted for now
                    self.journal.update_intents("booked", trade_id=pos.trade_id, only_open=True)
                if order is not None:
                    self._journal_order(order, pos.trade_id, purpose)
                    self._journal_fill(order_row(order, self.run_id, pos.trade_id, purpose), pos.trade_id,
                                       fill_premium, min(order.filled_qty, fill_qty), order.filled_at)
                elif sim_row is not None:  # dry run: the simulated exit order
                    self.journal.write_order({**sim_row, "trade_id": pos.trade_id})
                    self._journal_fill(sim_row, pos.trade_id, fill_premium, fill_qty)

        self._safe_journal(write, "write exit")
        if pos in self.positions:
            self.positions.remove(pos)
        self.tracking.append(pos)
        self.stats.exits[decision.reason] = self.stats.exits.get(decision.reason, 0) + 1
        self.stats.pnl_usd += pnl
        if self.risk is not None and self.risk.record_exit(pnl, self.settings):
            self.out(f"  [KILL SWITCH] daily loss ${-self.risk.realized_pnl:,.2f} reached the limit; no new entries today")
            self._safe_journal(lambda: self._tx(self.journal.write_error, self.run_id, "kill switch",
                                                f"daily loss limit hit: P&L {self.risk.realized_pnl:.2f}",
                                                self.scan_no), "kill switch")
        self.out(f"  [EXIT] trade {pos.trade_id} {pos.contract_symbol} {decision.reason.upper()} · "
                 f"{self.symbol} ${decision.price:.2f} at {decision.time:%H:%M:%S} · P&L {signed_usd(pnl)}")

    def reconcile(self) -> None:
        """At start: book what journaled order intents became at the broker (an entry that
        filled before its trade was journaled, an exit that filled before it was booked),
        adopt open positions opened by gammaride (client id prefix, open trade in the
        journal) and manage them to their exit; leave every other position alone."""
        if self.dry_run:
            return
        try:
            self.clock.sync(self.broker.clock().timestamp)
            self._book_entry_intents()
            held = self.broker.positions()
            # the newest 500 orders: an adoptable position was opened today, by a recent order
            orders = self.broker.orders("all")
        except BrokerAuthError:
            raise  # bad keys: nothing will work
        except BrokerError as exc:
            self._error("reconcile", exc)
            self.out(f"Could not reconcile with the broker ({short_error(exc)}); continuing without adopting.")
            return
        open_trades = self.journal.open_trades()
        ours: dict[str, list[OrderInfo]] = {}
        for o in orders:
            if is_ours(o.client_order_id):
                ours.setdefault(o.symbol, []).append(o)
        others = []
        for p in held:
            mine = ours.get(p.symbol, [])
            trade = open_trades[(open_trades["contract_symbol"] == p.symbol) & (open_trades["run_mode"] == self.mode)]
            if not mine or trade.empty:
                if mine:  # a gammaride client id, but neither a trade nor an intent in this journal
                    self.out(f"  ✗ {p.symbol} x{abs(p.qty):g} was opened by gammaride order {mine[0].client_order_id}, "
                             "which this journal does not know (another journal or mode?); left alone")
                others.append(p.symbol)
                continue
            pos = _position_from_trade(trade.iloc[-1], abs(p.qty), self.settings.max_hold_minutes)
            for o in mine:
                if _is_backstop_of(o.client_order_id, pos.client_order_id):
                    pos.backstops += 1
                    if not o.is_done:
                        pos.backstop_id = o.id
                if _is_exit_of(o.client_order_id, pos.client_order_id):
                    pos.exit_attempts += 1  # the next exit needs a client id not used yet
                    if not o.is_done:  # an exit the stopped run left working: settle it first
                        self._partial_exit(pos, cancel_and_settle(self.broker, o, clock=self.clock), "exit")
                if o.client_order_id == pos.client_order_id and o.order_class == "bracket":
                    pos.bracket_id = o.id  # its TP/SL legs must be cancelled before a time exit
            done = self.journal.trade_paths([pos.trade_id])
            for r in done.itertuples():
                pos.path[int(r.minute)] = (pd.Timestamp(r.bar_time).tz_convert(ET), r.open, r.high, r.low, r.close)
            self.positions.append(pos)
            self.stats.adopted += 1
            self.out(f"Adopted open position {p.symbol} x{abs(p.qty):g} (trade {pos.trade_id}, "
                     f"TP ${pos.tp:.2f} SL ${pos.sl:.2f}, limit {pos.limit:%H:%M})")
            if self.backstop and pos.instrument == "options" and pos.backstop_id is None:
                # none rests (never placed, or a DAY stop expired overnight): place a new one
                self._place_backstop(pos)
        self._report_exercised_shares(held)
        if others:
            self.out(f"Leaving {len(others)} position(s) not opened by gammaride alone: {', '.join(others)}")
        self._close_orphans(open_trades, {p.symbol for p in held})

    def _book_entry_intents(self) -> None:
        """Entries journaled as intents whose trade was never written (the run stopped
        between the order and its journal row): ask the broker what became of each; a fill
        becomes the open trade, with the broker's price and quantity; the rest are void."""
        for it in self.journal.intents(self.mode, purpose="entry", open_only=True).itertuples():
            cid = str(it.client_order_id)
            found = self.broker.order_by_client_id(cid)
            if found is not None and not found.is_done:
                found = cancel_and_settle(self.broker, found, clock=self.clock)
            if found is None or not (found.filled_qty > 0):
                self._safe_journal(lambda c=cid, o=found: self._tx(
                    self.journal.update_intents, "void", client_order_id=c, order_id=o.id if o else None),
                    "order intent")
                if found is not None:
                    self._safe_journal(lambda o=found, t=it: self._tx(
                        self._journal_order, order_row(o, int(t.run_id), None, "entry"), None, "entry"), "entry order")
                continue
            if self.journal.has_trade(cid):
                self._safe_journal(lambda c=cid: self._tx(self.journal.update_intents, "booked", client_order_id=c),
                                   "order intent")
                continue
            trade = {**it.detail, "contracts": int(found.filled_qty), "status": "open", "client_order_id": cid,
                     "trade_id": int(it.trade_id), "run_id": int(it.run_id)}
            if trade.get("instrument", "options") == "options":
                trade["entry_premium"] = float(found.filled_avg_price)

            def write(trade=trade, found=found, it=it, cid=cid) -> None:
                with self.journal.transaction():
                    self.journal.write_trade(trade)
                    self.journal.write_order({**order_row(found, int(it.run_id), int(it.trade_id), it.purpose)})
                    self.journal.write_fill({"order_id": found.id, "run_id": int(it.run_id),
                                             "trade_id": int(it.trade_id), "symbol": found.symbol, "side": found.side,
                                             "qty": float(found.filled_qty), "price": float(found.filled_avg_price),
                                             "filled_at": found.filled_at or self.clock.now()})
                    self.journal.update_intents("booked", client_order_id=cid, order_id=found.id)

            if self._safe_journal(write, "book entry from its intent"):
                self.out(f"Booked entry {cid} from the broker's record: {found.symbol} x{found.filled_qty:g} at "
                         f"${found.filled_avg_price:.2f} (the run that sent it stopped before journaling the trade)")

    def _close_orphans(self, open_trades: pd.DataFrame, held: set[str]) -> None:
        """Open trades of this mode with no position left at the broker were closed while
        no scanner ran: book each from the broker's own record (settle_vanished)."""
        for t in open_trades.itertuples():
            if t.run_mode != self.mode or t.contract_symbol in held or not is_ours(t.client_order_id):
                continue
            if any(p.trade_id == t.trade_id for p in self.positions):
                continue
            pos = _position_from_trade(pd.Series(t._asdict()), float(t.contracts or 0), self.settings.max_hold_minutes)
            self._settle_vanished(pos, restart=True)

    # --- what the broker did on its own ---------------------------------------------
    def _watch_broker(self) -> None:
        """Every poll: a position that shrank or vanished at the broker was closed there
        (backstop, bracket leg, the broker's liquidation, exercise, expiry, a manual close):
        book it from the broker's record and send no more orders for it. Never raises."""
        if self.dry_run or not self.positions:
            return
        try:
            held = {p.symbol: p for p in self.broker.positions()}
        except BrokerError as exc:
            self._error("positions", exc)
            return
        for pos in list(self.positions):
            if pos.entry_order_id is not None:
                self._entry_final(pos)
            at = held.get(pos.contract_symbol)
            if at is not None and abs(at.qty) >= pos.qty - 1e-9:
                pos.missing_since = None
                continue
            try:
                if self._closed_at_broker(pos):
                    continue
                self._settle_vanished(pos, restart=False)
            except BrokerError as exc:
                self._error(f"settle trade {pos.trade_id}", exc)

    def _settle_vanished(self, pos: Position, restart: bool) -> None:
        """Book a position the broker no longer holds from what the broker recorded: our
        own exit or backstop orders (journaled intents), the broker's liquidating sell, its
        exercise/assignment/expiry activity; else a close outside gammaride ('manual')."""
        filled = self._our_fills(pos) if restart else []
        if filled:
            qty = sum(o.filled_qty for o, _ in filled)
            premium = sum(o.filled_qty * o.filled_avg_price for o, _ in filled) / qty
            last, detail = filled[-1]
            reason = detail.get("reason") or (EXIT_SL if _is_backstop_of(last.client_order_id, pos.client_order_id)
                                              else EXIT_MANUAL)
            price = float(detail.get("price") or self._underlying_at(last.filled_at))
            for o, _ in filled[:-1]:
                self._partial_exit(pos, o, "exit")
            pos.qty = float(last.filled_qty)
            self.out(f"Trade {pos.trade_id} ({pos.contract_symbol}) was closed by its "
                     f"{'backstop stop' if reason == EXIT_SL else 'exit order'} {last.client_order_id} "
                     f"at ${last.filled_avg_price:.2f}; booked {reason}")
            self._book_exit(pos, ExitDecision(reason, price, last.filled_at or self.clock.now(), False), last,
                            "backstop" if _is_backstop_of(last.client_order_id, pos.client_order_id) else "exit")
            return
        liq = self._liquidation(pos)
        if liq is not None:
            self._broker_event("liquidation", pos, liq.filled_qty, liq.filled_avg_price, liq.filled_at,
                               f"order {liq.id} sold {pos.contract_symbol} before expiry")
            self.out(f"  ✗ [BROKER] trade {pos.trade_id}: the broker liquidated {pos.contract_symbol} "
                     f"x{liq.filled_qty:g} at ${liq.filled_avg_price:.2f} ({liq.filled_at:%H:%M:%S}); booked "
                     f"{EXIT_LIQUIDATION}")
            self._book_exit(pos, ExitDecision(EXIT_LIQUIDATION, self._underlying_at(liq.filled_at),
                                              liq.filled_at or self.clock.now(), False), liq, "liquidation")
            return
        event = self._option_event(pos)
        if event is not None:
            kind, at, shares, strike = event
            close = self._underlying_at(at)
            _, _, right, k = parse_occ(pos.contract_symbol)
            if kind == "OPEXP":
                reason, premium = EXIT_EXPIRED, 0.0
                text = "expired worthless"
            else:
                reason = EXIT_EXERCISED
                # the contract became shares at the strike: its value at the close is intrinsic
                premium = max(0.0, (close - k) if right == "call" else (k - close)) if np.isfinite(close) else float("nan")
                text = (f"was exercised into {shares:+g} shares of {pos.symbol} at ${strike:.2f} "
                        f"(booked at intrinsic value ${premium:.2f} = close ${close:.2f} vs strike ${k:g})")
            self._broker_event(kind, pos, pos.qty, premium, at, text)
            self.out(f"  ✗ [BROKER] trade {pos.trade_id}: {pos.contract_symbol} {text}; booked {reason}")
            self._book_exit(pos, ExitDecision(reason, close, at, False), None, "settlement", premium=premium)
            if kind != "OPEXP":
                try:
                    self._report_shares(self.broker.positions(), {pos.symbol})
                except BrokerError as exc:
                    self._error("positions", exc)
            return
        if not restart:
            # nothing explains it yet: a position list can lag a fill by a moment, so the
            # trade stays managed until the absence has lasted MISSING_GRACE
            now = self.clock.now()
            pos.missing_since = pos.missing_since or now
            if now - pos.missing_since < MISSING_GRACE:
                return
        self.out(f"Trade {pos.trade_id} ({pos.contract_symbol}) has no position at the broker any more and no "
                 "order or activity there explains it; booked as closed outside gammaride (manual)")
        values = dict(status="closed", exit_reason=EXIT_MANUAL, exit_time=None, exit_premium=float("nan"),
                      pnl_usd=None)
        self._safe_journal(lambda: self._tx(self.journal.update_trade, pos.trade_id, **values), "close orphan")
        if pos in self.positions:
            self.positions.remove(pos)
        self.stats.exits[EXIT_MANUAL] = self.stats.exits.get(EXIT_MANUAL, 0) + 1

    def _our_fills(self, pos: Position) -> list[tuple[OrderInfo, dict]]:
        """Filled exit and backstop orders of the trade (journaled intents, plus backstops
        found by their client ids), oldest first, with each intent's detail."""
        intents = self.journal.intents(self.mode, trade_id=pos.trade_id)
        wanted = {str(r.client_order_id): r.detail for r in intents.itertuples() if r.purpose in ("exit", "backstop")}
        for n in range(1, 11):  # backstops journaled before order intents existed
            wanted.setdefault(backstop_client_id(pos.client_order_id, n), {})
        out = []
        for cid, detail in wanted.items():
            o = self.broker.order_by_client_id(cid)
            if o is not None and o.filled_qty > 0 and np.isfinite(o.filled_avg_price):
                out.append((o, detail))
        return sorted(out, key=lambda x: x[0].filled_at or pd.Timestamp.max.tz_localize("UTC"))

    def _liquidation(self, pos: Position) -> OrderInfo | None:
        """The broker's own sell of the contract on its expiry day, in the last hour."""
        if pos.instrument != "options":
            return None
        _, exp, _, _ = parse_occ(pos.contract_symbol)
        orders = self.broker.orders("closed", after=pos.entry_time - MINUTE)
        for o in orders:
            if o.symbol != pos.contract_symbol or is_ours(o.client_order_id) or o.side != "sell" or not o.filled_qty:
                continue
            at = o.filled_at
            if at is None or at.date() != exp.date():
                continue
            close = self._session_close(at)
            if close is not None and at >= close - LIQUIDATION_WINDOW:
                return o
        return None

    def _option_event(self, pos: Position) -> tuple[str, pd.Timestamp, float, float] | None:
        """(OPEXC | OPASN | OPEXP, when, shares delivered, strike) for the contract, if any."""
        if pos.instrument != "options":
            return None
        acts = self.broker.account_activities(OPTION_EVENTS + ("OPTRD",), after=pos.entry_time - MINUTE)
        for a in acts:
            if a.get("activity_type") in OPTION_EVENTS and a.get("symbol") == pos.contract_symbol:
                kind = str(a["activity_type"])
                _, exp, _, strike = parse_occ(pos.contract_symbol)
                at = self._session_close(exp) or pd.Timestamp(exp).tz_localize(ET) + pd.Timedelta(hours=16)
                shares = sum(float(t.get("qty") or 0) for t in acts if t.get("activity_type") == "OPTRD"
                             and t.get("symbol") == pos.symbol and t.get("date") == a.get("date"))
                return kind, at, shares, float(strike)
        return None

    def _report_exercised_shares(self, held: list[PositionInfo]) -> None:
        """At start: share positions that recent exercises or assignments delivered."""
        if not any(p.asset_class == "us_equity" for p in held):
            return
        try:
            acts = self.broker.account_activities(("OPTRD",), after=self.clock.now() - pd.Timedelta(days=7))
        except BrokerError as exc:
            self._error("account activities", exc)
            return
        self._report_shares(held, {str(a.get("symbol")) for a in acts})

    def _report_shares(self, held: list[PositionInfo], underlyings: set[str]) -> None:
        """A share position in an underlying gammaride trades options on, with no order of
        ours behind it, came from an exercise or assignment: say so loudly (printed line,
        journal errors, broker_events), once per run, and never adopt it."""
        if self.settings.instrument != "options":
            return
        seen = getattr(self, "_shares_reported", set())
        for p in held:
            if p.asset_class != "us_equity" or p.symbol not in underlyings or (p.symbol, p.qty) in seen:
                continue
            seen.add((p.symbol, p.qty))
            text = (f"{p.qty:+g} shares of {p.symbol} (avg ${p.avg_entry_price:.2f}) are held at the broker, most "
                    "likely from an exercised or assigned contract; gammaride does not manage shares: close "
                    "them yourself")
            self.out(f"  ✗ [BROKER] {text}")
            self._error("shares from exercise", text)
            self._broker_event("shares", None, p.qty, p.avg_entry_price, self.clock.now(), text, symbol=p.symbol)
        self._shares_reported = seen

    def _broker_event(self, kind: str, pos: Position | None, qty, price, at, message: str,
                      symbol: str | None = None) -> None:
        row = {"run_id": self.run_id, "occurred_at": at or self.clock.now(), "activity_type": kind,
               "symbol": symbol or (pos.contract_symbol if pos else None), "qty": qty, "price": price,
               "trade_id": pos.trade_id if pos else None, "message": message}
        self._safe_journal(lambda: self._tx(self.journal.write_broker_event, row), "broker event")

    def _session_close(self, when) -> pd.Timestamp | None:
        """The close of the session on ``when``'s date (early closes included)."""
        day = pd.Timestamp(when).tz_localize(None).normalize() if pd.Timestamp(when).tz is None else \
            pd.Timestamp(when).tz_convert(ET).tz_localize(None).normalize()
        try:
            days = self.broker.calendar(day.date(), day.date())
        except BrokerError:
            return None
        return days[0].close if days else None

    def _underlying_at(self, when: pd.Timestamp | None) -> float:
        """The underlying's last 1-minute close at or before ``when`` (else the latest price)."""
        if when is None:
            return self._price_now()
        try:
            bars = self.broker.bars(self.symbol, when - pd.Timedelta(minutes=30), when)
            bars = bars[bars.index + MINUTE <= when + MINUTE]
            if len(bars):
                return float(bars["close"].iloc[-1])
        except BrokerError:
            pass
        return self._price_now()

    def _entry_final(self, pos: Position) -> None:
        """Once the entry order is final (filled, or cancelled after a partial fill), the
        backstop can go out: a stop sell beside an open buy limit is refused (wash trade)."""
        try:
            o = self.broker.get_order(pos.entry_order_id)
        except BrokerError:
            return
        if not o.is_done:
            return
        pos.entry_order_id = None
        if o.filled_qty > pos.qty:  # the rest of a partial fill came in while the cancel was pending
            pos.qty = float(o.filled_qty)
            self._safe_journal(lambda: self._tx(self.journal.update_trade, pos.trade_id, contracts=int(o.filled_qty)),
                               "entry quantity")
        if self.backstop and pos.instrument == "options" and pos.backstop_id is None:
            self._place_backstop(pos)

    # --- orders ---------------------------------------------------------------------
    def _submit(self, spec: OrderSpec, purpose: str, pos: Position, detail: dict | None = None) -> OrderInfo:
        """Journal the order as an intent, then send it (idempotently). An entry whose
        intent cannot be journaled is not sent (no journal, no trade); an exit or backstop
        still goes out, since the position must be protected and closed regardless."""
        cid = spec.client_order_id
        row = {"client_order_id": cid, "run_id": self.run_id, "trade_id": pos.trade_id, "purpose": purpose,
               "symbol": spec.symbol, "underlying": pos.symbol, "side": spec.side, "qty": spec.qty,
               "decision_time": pos.entry_time, "direction": pos.direction, "detail": detail,
               "created_at": self.clock.now()}
        ok = self._safe_journal(lambda: self._tx(self.journal.write_intent, row), f"{purpose} order intent")
        if not ok and purpose == "entry":
            raise JournalRefusal(f"entry {cid} not sent: its intent could not be journaled")
        try:
            sent = submit_idempotent(self.broker, spec)
        except BrokerError:
            if ok:
                self._safe_journal(lambda: self._tx(self.journal.update_intents, "rejected", client_order_id=cid),
                                   "order intent")
            raise
        if ok:
            self._safe_journal(lambda: self._tx(self.journal.update_intents, "sent", client_order_id=cid,
                                                order_id=sent.id), "order intent")
        return sent

    def _tx(self, fn, *args, **kwargs) -> None:
        with self.journal.transaction():
            fn(*args, **kwargs)

    def _safe_journal(self, fn, what: str) -> bool:
        """Run a journal write; False when it failed. A failed write must not kill the run
        (open positions are still managed to their exit), but from then on the run makes
        no new entries, says so at every scan and ends failed (no journal, no trade)."""
        try:
            fn()
            return True
        except Exception as exc:  # noqa: BLE001 - a journal failure must not kill the run
            self.stats.errors += 1
            if self.journal_failure is None:
                self.journal_failure = f"{what} failed: {short_error(exc)}"
            print(f"  [JOURNAL] {what} failed: {short_error(exc)}", file=sys.stderr)
            return False

    def _error(self, context: str, exc: BaseException | str, scan_no: int | None = None) -> None:
        self.stats.errors += 1
        n = self.scan_no if scan_no is None else scan_no
        self._safe_journal(
            lambda: self._tx(self.journal.write_error, self.run_id, context, exc, n), "write error"
        )
        if self.settings.debug:
            self.out(f"  [ERROR] {context}: {short_error(exc)}")

    def _journal_order(self, order: OrderInfo | dict, trade_id: int | None, purpose: str) -> None:
        row = order if isinstance(order, dict) else order_row(order, self.run_id, trade_id, purpose)
        if row:
            self.journal.write_order({**row, "trade_id": trade_id})

    def _journal_fill(self, order: dict | OrderInfo, trade_id, price, qty, at=None) -> None:
        if not order or not np.isfinite(price) or not qty:
            return
        oid = order["order_id"] if isinstance(order, dict) else order.id
        side = order["side"] if isinstance(order, dict) else order.side
        sym = order["symbol"] if isinstance(order, dict) else order.symbol
        quote = self._fill_quotes.get(oid)  # the quote its limit priced from, when one did
        self.journal.write_fill({"order_id": oid, "run_id": self.run_id, "trade_id": trade_id, "symbol": sym,
                                 "side": side, "qty": float(qty), "price": float(price),
                                 "filled_at": at or self.clock.now(), "quote_price": quote,
                                 "slippage": slippage_per_contract(side, float(price), quote) if quote else None})

    def _journal_rejected(self, spec: OrderSpec, pos: Position, purpose: str, exc: BaseException) -> None:
        row = {"order_id": f"REJECTED-{spec.client_order_id}", "client_order_id": spec.client_order_id,
               "run_id": self.run_id, "trade_id": pos.trade_id if purpose != "entry" else None,
               "symbol": spec.symbol, "side": spec.side, "qty": spec.qty, "order_type": spec.type,
               "order_class": spec.order_class, "limit_price": spec.limit_price, "stop_price": spec.stop_price,
               "purpose": purpose, "status": "rejected", "submitted_at": self.clock.now(),
               "message": short_error(exc)}
        self._safe_journal(lambda: self._tx(self.journal.write_order, row), "rejected order")
        self._error(f"{purpose} order", exc)

    def _sim_order(self, pos: Position, side: str, qty: float, price: float, purpose: str) -> dict:
        self._sim_orders += 1
        return {"order_id": f"PAPER_SIM_{self.run_id:03d}_{self._sim_orders:03d}",
                "client_order_id": pos.client_order_id + ("" if purpose == "entry" else "-x1"),
                "run_id": self.run_id, "symbol": pos.contract_symbol, "side": side, "qty": qty,
                "order_type": "limit", "order_class": "simple", "limit_price": price, "purpose": purpose,
                "status": "simulated", "submitted_at": self.clock.now(), "updated_at": self.clock.now()}

    def _sim_exit_premium(self, pos: Position, price: float) -> float:
        if pos.instrument != "options":
            return price
        try:
            bid, _ = self._quote(pos)
            if np.isfinite(bid):
                return bid
        except BrokerError:
            pass
        return premium_at(pos.entry_premium, pos.delta, pos.sign, price - pos.entry_price)


class JournalRefusal(Exception):
    """An order not sent because the journal could not record it first."""


def _is_exit_of(client_id: str | None, entry_client_id: str) -> bool:
    rest = str(client_id or "")[len(entry_client_id):] if str(client_id or "").startswith(entry_client_id) else ""
    return rest.startswith("-x") and rest[2:].isdigit()


def _is_backstop_of(client_id: str | None, entry_client_id: str) -> bool:
    rest = str(client_id or "")[len(entry_client_id):] if str(client_id or "").startswith(entry_client_id) else ""
    return rest.startswith("-bs") and rest[3:].isdigit() or rest == "-bs"


def _client_side(pos: Position, decision: ExitDecision | None) -> ExitDecision | None:
    """The exits gammaride makes itself: all of them for options; for shares only the
    clock (time, hard stop), since the broker's bracket legs own TP and SL."""
    if decision is None or pos.instrument != "shares" or decision.reason in (EXIT_TIME, EXIT_HARD_STOP):
        return decision
    return None


def short_error(exc: BaseException | str) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def order_row(o: OrderInfo, run_id, trade_id, purpose: str) -> dict:
    return {"order_id": o.id, "client_order_id": o.client_order_id, "run_id": run_id, "trade_id": trade_id,
            "symbol": o.symbol, "side": o.side, "qty": o.qty, "order_type": o.type,
            "order_class": o.order_class, "limit_price": o.limit_price, "stop_price": o.stop_price,
            "purpose": purpose, "status": o.status, "submitted_at": o.submitted_at,
            "updated_at": o.filled_at or o.submitted_at, "message": None}


def _position_from_trade(t: pd.Series, qty: float, max_hold: int) -> Position:
    entry_time = pd.Timestamp(t["entry_time"]).tz_convert(ET)
    hold_until = entry_time + max_hold * MINUTE
    return Position(
        trade_id=int(t["trade_id"]), run_id=int(t["run_id"]), symbol=str(t["symbol"]),
        instrument=str(t["instrument"] or "options"), contract_symbol=str(t["contract_symbol"]),
        direction=str(t["direction"]), qty=qty, entry_time=entry_time, entry_price=float(t["entry_price"]),
        atr=float(t["atr"]), tp=float(t["tp"]), sl=float(t["sl"]), tp_mult=float(t["tp_mult"]),
        sl_mult=float(t["sl_mult"]), hold_until=hold_until,
        hard_stop=pd.Timestamp(t["hard_stop_time"]).tz_convert(ET),
        entry_premium=float(t["entry_premium"]) if pd.notna(t["entry_premium"]) else float("nan"),
        client_order_id=str(t["client_order_id"]), adopted=True,
    )
