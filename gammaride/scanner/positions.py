"""The position manager: gammaride is its own OCO for options.

Alpaca takes no bracket orders for options, so the scanner watches each open position:
the underlying against TP/SL, the max-hold clock and the hard stop. Exit *decisions*
come from :func:`gammaride.scanner.exits.evaluate_exits`, the code replay uses: on the
complete 1-minute bars at every scan, and on the latest trade as a one-price bar
between scans. Orders go out idempotently (a retry can never buy or sell twice).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gammaride.errors import BrokerError
from gammaride.journal.store import DRY_RUN_SQL
from gammaride.scanner.broker import Broker, OrderInfo, OrderSpec
from gammaride.scanner.clock import Clock
from gammaride.scanner.contracts import premium_at
from gammaride.scanner.execution import slippage_per_contract
from gammaride.scanner.exits import (
    EXIT_HARD_STOP,
    EXIT_MANUAL,
    EXIT_SL,
    EXIT_TIME,
    evaluate_exits,
    excursions,
)
from gammaride.text import signed_usd

ET = "America/New_York"
MINUTE = pd.Timedelta(minutes=1)
CLIENT_PREFIX = "gr-"
# A dry run is a run whose settings_json carries "dry_run": true; its simulated trades
# must not count against a real account's limits.


def client_order_id(symbol: str, decision_time: pd.Timestamp, direction: str) -> str:
    """``gr-SPY-201310081002-C``: one id per (symbol, decision minute, direction), so a
    retried submission is refused as a duplicate instead of buying twice."""
    t = pd.Timestamp(decision_time).tz_convert("America/New_York")
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
    last = BrokerError(f"order {spec.client_order_id} not submitted: no attempt made")
    for _ in range(attempts):
        try:
            return broker.submit_order(spec)
        except BrokerError as exc:
            last = exc
            try:
                found = broker.order_by_client_id(spec.client_order_id) if spec.client_order_id else None
            except BrokerError:
                found = None
            if found is not None:
                return found
            status = getattr(exc, "status", None)
            if status is not None and 400 <= status < 500 and status not in (408, 429) and found is None:
                if "client_order_id" not in str(exc).lower():
                    raise
    raise last


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
    for _ in range(attempts):
        try:
            broker.cancel_order(order.id)
            break
        except BrokerError as exc:
            if getattr(exc, "status", None) == 422:  # already filled or done
                break
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
            o = submit_idempotent(self.broker, spec)
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
            filled = self._send_exit(pos)
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

    def _send_exit(self, pos: Position) -> OrderInfo | None:
        pos.exit_attempts += 1
        cid = f"{pos.client_order_id}-x{pos.exit_attempts}"
        side = "sell" if (pos.instrument == "options" or pos.direction == "call") else "buy"
        if pos.instrument == "options":
            from gammaride.scanner.execution import fill_marketable

            ex = fill_marketable(self.broker, self.clock, self.settings, contract=pos.contract_symbol,
                                 root=pos.symbol, side="sell", qty=pos.qty, client_order_id=cid)
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
        sent = submit_idempotent(self.broker, spec)
        done = wait_for_fill(self.broker, sent, self.clock, self.exit_timeout)
        if not done.is_filled:
            done = cancel_and_settle(self.broker, done, clock=self.clock)
        if done.filled_qty < pos.qty:
            self._partial_exit(pos, done, "exit")
            self.out(f"  [EXIT] trade {pos.trade_id}: exit order {done.status}; retrying at the next check")
            return None
        return done

    def _quote(self, pos: Position) -> tuple[float, float]:
        from gammaride.scanner.contracts import parse_occ

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
        """Adopt open positions opened by gammaride (client id prefix, open trade in the
        journal) and manage them to their exit; leave every other position alone."""
        if self.dry_run:
            return
        try:
            held = self.broker.positions()
            # the newest 500 orders: an adoptable position was opened today, by a recent order
            orders = self.broker.orders("all") if held else []
        except BrokerError as exc:
            self._error("reconcile", exc)
            self.out(f"Could not reconcile with the broker ({short_error(exc)}); continuing without adopting.")
            return
        open_trades = self.journal.query(
            "SELECT t.* FROM trades t JOIN runs r USING (run_id) "
            f"WHERE t.status = 'open' AND t.client_order_id IS NOT NULL AND NOT {DRY_RUN_SQL} ORDER BY t.trade_id")
        ours: dict[str, list[OrderInfo]] = {}
        for o in orders:
            if is_ours(o.client_order_id):
                ours.setdefault(o.symbol, []).append(o)
        others = []
        for p in held:
            mine = ours.get(p.symbol, [])
            trade = open_trades[open_trades["contract_symbol"] == p.symbol]
            if not mine or trade.empty:
                others.append(p.symbol)
                continue
            pos = _position_from_trade(trade.iloc[-1], abs(p.qty), self.settings.max_hold_minutes)
            for o in mine:
                if _is_backstop_of(o.client_order_id, pos.client_order_id):
                    pos.backstops += 1
                    if not o.is_done:
                        pos.backstop_id = o.id
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
        if others:
            self.out(f"Leaving {len(others)} position(s) not opened by gammaride alone: {', '.join(others)}")
        self._close_orphans(open_trades, {p.symbol for p in held})

    def _close_orphans(self, open_trades: pd.DataFrame, held: set[str]) -> None:
        """Open trades of this mode with no position left at the broker were closed while
        no scanner ran (the backstop, the broker's expiry liquidation, a manual close):
        book them from the backstop's fill when there is one, else as 'manual'."""
        modes = self.journal.query(f"SELECT run_id, mode, {DRY_RUN_SQL} AS dry FROM runs r")
        mine = set(modes.loc[(modes["mode"] == self.mode) & ~modes["dry"].astype(bool), "run_id"])
        for t in open_trades.itertuples():
            if t.run_id not in mine or t.contract_symbol in held or not is_ours(t.client_order_id):
                continue
            bs = self._filled_backstop(t.client_order_id)
            filled = bs is not None
            premium = bs.filled_avg_price if filled else float("nan")
            pnl = (premium - t.entry_premium) * t.contracts * 100.0 if filled else None
            values = dict(status="closed", exit_reason=EXIT_SL if filled else EXIT_MANUAL,
                          exit_time=bs.filled_at if filled else None, exit_premium=premium, pnl_usd=pnl)
            self._safe_journal(lambda v=values, i=t.trade_id: self._tx(self.journal.update_trade, i, **v),
                               "close orphan")
            self.out(f"Trade {t.trade_id} ({t.contract_symbol}) has no position at the broker any more; "
                     f"booked as {'closed by its backstop stop' if filled else 'closed outside gammaride (manual)'}")

    def _filled_backstop(self, entry_client_id: str, most: int = 10) -> OrderInfo | None:
        """The backstop (first, or a re-placed one) that filled, if any."""
        for n in range(1, most + 1):
            try:
                bs = self.broker.order_by_client_id(backstop_client_id(entry_client_id, n))
            except BrokerError:
                return None
            if bs is None:
                return None
            if bs.is_filled:
                return bs
        return None

    def _tx(self, fn, *args, **kwargs) -> None:
        with self.journal.transaction():
            fn(*args, **kwargs)

    def _safe_journal(self, fn, what: str) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a journal hiccup must not kill the run
            self.stats.errors += 1
            print(f"  [JOURNAL] {what} failed: {short_error(exc)}", file=sys.stderr)

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
