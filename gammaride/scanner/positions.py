"""The position manager: gammaride is its own OCO for options.

Alpaca takes no bracket orders for options, so :class:`PositionManager` watches each
open position: the underlying against TP/SL, the max-hold clock and the hard stop. Exit
*decisions* come from :func:`gammaride.rules.exits.evaluate_exits`, the code replay
uses: on the complete 1-minute bars at every scan, and on the latest trade as a
one-price bar between scans. Orders go out through :class:`OrderDesk` (journaled first,
never sent twice); what the broker closed on its own is read by
:class:`gammaride.scanner.settlement.BrokerHistory`; adopting positions on a restart is
:func:`gammaride.scanner.reconcile.reconcile`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gammaride.config import Settings
from gammaride.errors import BrokerError
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
from gammaride.scanner.execution import fill_marketable
from gammaride.scanner.market import MarketData
from gammaride.scanner.orders import (
    OrderDesk,
    backstop_client_id,
    cancel_and_settle,
    is_backstop_of,
    order_row,
    wait_for_fill,
)
from gammaride.scanner.record import RunRecord, short_error
from gammaride.scanner.settlement import BrokerHistory, OptionEvent
from gammaride.text import signed_usd

MINUTE = pd.Timedelta(minutes=1)
# exits the broker makes itself (issue: Alpaca liquidates, exercises and expires options)
EXIT_LIQUIDATION = "broker_liquidation"
EXIT_EXERCISED = "exercised"
EXIT_EXPIRED = "expired"
# a position missing at the broker with no order or activity to explain it is booked
# 'manual' only once it has been missing this long (position lists can lag fills)
MISSING_GRACE = pd.Timedelta(seconds=60)


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


def client_side(pos: Position, decision: ExitDecision | None) -> ExitDecision | None:
    """The exits gammaride makes itself: all of them for options; for shares only the
    clock (time, hard stop), since the broker's bracket legs own TP and SL."""
    if decision is None or pos.instrument != "shares" or decision.reason in (EXIT_TIME, EXIT_HARD_STOP):
        return decision
    return None


class PositionManager:
    """Gammaride's own OCO for every open position of one run.

    ``open``: the positions it manages; ``tracking``: closed trades whose 20-minute path
    is still filling. At a scan :meth:`manage` records paths and decides exits on the
    complete bars; between scans :meth:`monitor` checks the latest trade and the clock.
    Every check first asks the broker what it closed itself (backstop, bracket leg,
    liquidation, exercise, expiry). ``on_exit(pnl)`` hears of every booked exit (the
    day's risk limits); ``out`` prints. ``dry_run``: simulated orders, nothing sent.
    """

    def __init__(
        self,
        broker: Broker,
        record: RunRecord,
        orders: OrderDesk,
        settings: Settings,
        clock: Clock,
        market: MarketData,
        *,
        mode: str,
        out: Callable[[str], None],
        dry_run: bool = False,
        backstop: bool = True,
        exit_timeout_seconds: float = 10.0,
        on_exit: Callable[[float], None] | None = None,
    ):
        self.broker, self.clock, self.market = broker, clock, market
        self.record, self.journal, self.orders = record, record.journal, orders
        self.settings, self.symbol = settings, settings.symbol
        self.mode, self.out, self.dry_run = mode, out, dry_run
        # a resting stop per option position, protection if this process dies
        self.backstop = backstop and not dry_run and settings.instrument == "options"
        self.exit_timeout = exit_timeout_seconds
        self.on_exit = on_exit or (lambda pnl: None)
        self.open: list[Position] = []
        self.tracking: list[Position] = []
        self.pending_paths: list[pd.DataFrame] = []  # new path rows, committed with the next scan row
        self._shares_reported: set[tuple[str, float]] = set()
        self.history = BrokerHistory(broker, record.journal, settings.symbol, mode)

    @property
    def stats(self):
        return self.record.stats

    def knows(self, client_id: str) -> bool:
        """Whether this run holds or tracks the trade entered under ``client_id``."""
        return any(p.client_order_id == client_id for p in self.open + self.tracking)

    def take_paths(self) -> pd.DataFrame | None:
        """The path rows recorded since the last call (None when there are none)."""
        paths, self.pending_paths = self.pending_paths, []
        return pd.concat(paths, ignore_index=True) if paths else None

    def price_now(self) -> float:
        """The underlying's latest trade, else the last bar's close."""
        try:
            return self.broker.latest_trade(self.symbol).price
        except BrokerError:
            bars = self.market.last_bars
            return float(bars["close"].iloc[-1]) if bars is not None and len(bars) else float("nan")

    def place_backstop(self, pos: Position) -> None:
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
            o = self.orders.submit(spec, "backstop", pos)
            pos.backstop_id = o.id
            self.record.write("backstop", self.orders.journal_order, o, pos.trade_id, "backstop")
        except BrokerError as exc:
            self.out(f"  backstop stop not accepted ({short_error(exc)}); the SL is watched client-side")
            self.orders.journal_rejected(spec, pos, "backstop", exc)

    # ------------------------------------------------------------------ checks
    def manage(self, bars: pd.DataFrame, now: pd.Timestamp) -> None:
        """At a scan: record paths, then decide exits on the complete bars."""
        for pos in list(self.open) + list(self.tracking):
            rows = record_path(pos, bars, self.settings.max_hold_minutes)
            if len(rows):
                self.pending_paths.append(rows)  # committed with this scan's row
        self.tracking = [p for p in self.tracking
                         if len(p.path) < self.settings.max_hold_minutes
                         and now < p.hold_until + pd.Timedelta(minutes=5)]
        self.watch_broker()
        for pos in list(self.open):
            if self._closed_at_broker(pos):
                continue
            decision = client_side(pos, check_bars(pos, bars, now)) or self._hard_stop_now(pos, now, None)
            if decision is not None:
                self.close(pos, decision)

    def monitor(self) -> None:
        """Between scans: the latest trade as a one-price bar, and the clock. Never raises."""
        if not self.open:
            return
        try:
            self._monitor()
        except Exception as exc:  # noqa: BLE001 - a failed check is retried at the next tick
            self.record.error("monitor", exc)

    def _monitor(self) -> None:
        now = self.clock.now()
        for pos in [p for p in self.open if p.bracket_id]:
            self._closed_at_broker(pos)  # a bracket leg may have filled since the last look
        self.watch_broker()
        if not self.open:
            return
        try:
            trade = self.broker.latest_trade(self.symbol)
        except BrokerError as exc:
            self.record.error("monitor", exc)
            trade = None
        timed_out = any(now >= p.limit for p in self.open)
        hit = trade is not None and any(client_side(p, check_price(p, trade.price, now)) for p in self.open)
        if not (timed_out or hit):
            return
        # complete bars decide first (what replay sees); the trade price only if they do not
        try:
            bars = self.market.fetch_bars(now)
        except BrokerError as exc:
            self.record.error("monitor bars", exc)
            bars = None
        for pos in list(self.open):
            if self._closed_at_broker(pos):
                continue
            decision = client_side(pos, check_bars(pos, bars, now)) if bars is not None and len(bars) else None
            if decision is None and trade is not None:
                decision = client_side(pos, check_price(pos, trade.price, now))
            if decision is None:
                decision = self._hard_stop_now(pos, now, trade)
            if decision is not None:
                if bars is not None:
                    rows = record_path(pos, bars, self.settings.max_hold_minutes)
                    if len(rows):
                        self.record.write("write path", self.journal.write_paths, rows)
                self.close(pos, decision)

    def _hard_stop_now(self, pos: Position, now: pd.Timestamp, trade) -> ExitDecision | None:
        """At the hard stop the clock rules: exit at the last trade price rather than wait
        for a bar that may come late (the contract's cutoff does not wait)."""
        if now < pos.hard_stop:
            return None
        price = trade.price if trade is not None else self.price_now()
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
        price = leg.filled_avg_price if pos.instrument == "shares" else self.price_now()
        at = leg.filled_at or self.clock.now()
        self.out(f"  [EXIT] trade {pos.trade_id} closed at the broker by its {'backstop' if pos.backstop_id else 'bracket'} order")
        self.book_exit(pos, ExitDecision(reason, price, at, False), leg, "backstop" if pos.backstop_id else "bracket")
        return True

    def entry_final(self, pos: Position) -> None:
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
            self.record.write("entry quantity", self.journal.update_trade, pos.trade_id, contracts=int(o.filled_qty))
        if self.backstop and pos.instrument == "options" and pos.backstop_id is None:
            self.place_backstop(pos)

    # ------------------------------------------------------------------ exits
    def close(self, pos: Position, decision: ExitDecision) -> bool:
        """Cancel the backstop, sell with a marketable order, journal fill and reason.
        True once the position is booked closed; False leaves it open (retried at the
        next check), with a backstop resting again when one had been cancelled."""
        if self.dry_run:
            premium = self._sim_exit_premium(pos, decision.price)
            order = self.orders.simulated(pos, "sell", pos.qty, premium, "exit")
            self.book_exit(pos, decision, None, "exit", sim_row=order, premium=premium)
            return True
        had_backstop = False
        try:
            if pos.backstop_id:
                bs = cancel_and_settle(self.broker, self.broker.get_order(pos.backstop_id), clock=self.clock)
                if bs.is_filled:
                    self.book_exit(pos, ExitDecision(EXIT_SL, decision.price, decision.time, False), bs, "backstop")
                    return True
                if bs.is_done:
                    self.partial_exit(pos, bs, "backstop")  # a part it sold before the cancel
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
                        self.book_exit(pos, ExitDecision("tp" if lg.type == "limit" else EXIT_SL,
                                                         decision.price, decision.time, False), lg, "bracket")
                        return True
                pos.bracket_id = None
            filled = self._send_exit(pos, decision)
        except BrokerError as exc:
            self.record.error(f"exit trade {pos.trade_id}", exc)
            self.out(f"  [EXIT] trade {pos.trade_id}: {short_error(exc)}; retrying at the next check")
            filled = None
        if filled is None:
            if had_backstop and self.backstop and pos.qty > 0:
                self.place_backstop(pos)  # protected again while the exit is retried
            return False
        self.book_exit(pos, decision, filled, "exit")
        return True

    def flatten(self, pos: Position, attempts: int = 3) -> None:
        """Close one position at the end of the run, a few tries; if it stays open, say so
        plainly, and whether a stop still protects it at the broker."""
        for i in range(attempts):
            try:
                if self.close(pos, ExitDecision(EXIT_MANUAL, self.price_now(), self.clock.now(), False)):
                    return
            except Exception as exc:  # noqa: BLE001 - report it and try again
                self.record.error(f"flatten trade {pos.trade_id}", exc)
            if pos not in self.open:
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

    def partial_exit(self, pos: Position, order: OrderInfo, purpose: str) -> None:
        """Journal a done order that sold part of the position and keep its money for the
        trade's P&L; the rest of the position stays open."""
        self.record.write(f"{purpose} order", self.orders.journal_order, order, pos.trade_id, purpose)
        q = float(order.filled_qty or 0.0)
        if q <= 0 or not np.isfinite(order.filled_avg_price):
            return
        q = min(q, pos.qty)
        pos.qty -= q
        pos.closed_qty += q
        pos.closed_value += q * float(order.filled_avg_price)
        self.record.write(f"{purpose} fill", self.orders.journal_fill, order, pos.trade_id,
                          float(order.filled_avg_price), q, order.filled_at)

    def _send_exit(self, pos: Position, decision: ExitDecision | None = None) -> OrderInfo | None:
        pos.exit_attempts += 1
        cid = f"{pos.client_order_id}-x{pos.exit_attempts}"
        side = "sell" if (pos.instrument == "options" or pos.direction == "call") else "buy"
        detail = None if decision is None else {"reason": decision.reason, "price": decision.price,
                                                "time": decision.time.isoformat()}
        if pos.instrument == "options":
            ex = fill_marketable(self.broker, self.clock, self.settings, contract=pos.contract_symbol,
                                 root=pos.symbol, side="sell", qty=pos.qty, client_order_id=cid,
                                 submit=lambda spec, step: self.orders.submit(spec, "exit", pos, detail=detail))
            self.orders.quotes.update(ex.quotes)
            if ex.orders:
                *earlier, done = ex.orders
                for o in earlier:  # price steps that sold part of the position
                    self.partial_exit(pos, o, "exit")
                if done.filled_qty < pos.qty:
                    self.partial_exit(pos, done, "exit")
                    self.out(f"  [EXIT] trade {pos.trade_id}: {ex.reason}; retrying at the next check")
                    return None
                return done
            # no quote to price from (one-sided, stale, missing): an exit must still go out
            self.out(f"  [EXIT] trade {pos.trade_id}: {ex.reason}; selling at market")
            spec = OrderSpec(pos.contract_symbol, pos.qty, "sell", "market", client_order_id=cid)
        else:
            spec = OrderSpec(pos.symbol, pos.qty, side, "market", client_order_id=cid)
        sent = self.orders.submit(spec, "exit", pos, detail=detail)
        done = wait_for_fill(self.broker, sent, self.clock, self.exit_timeout)
        if not done.is_filled:
            done = cancel_and_settle(self.broker, done, clock=self.clock)
        if done.filled_qty < pos.qty:
            self.partial_exit(pos, done, "exit")
            self.out(f"  [EXIT] trade {pos.trade_id}: exit order {done.status}; retrying at the next check")
            return None
        return done

    def _sim_exit_premium(self, pos: Position, price: float) -> float:
        """A dry run's exit premium: the contract's bid now, else the delta estimate."""
        if pos.instrument != "options":
            return price
        try:
            _, exp, _, strike = parse_occ(pos.contract_symbol)
            chain = self.broker.option_chain(self.symbol, exp.date(), exp.date(), strike, strike)
            row = chain[chain["symbol"] == pos.contract_symbol]
            if not row.empty and np.isfinite(float(row["bid"].iloc[0])):
                return float(row["bid"].iloc[0])
        except BrokerError:
            pass
        return premium_at(pos.entry_premium, pos.delta, pos.sign, price - pos.entry_price)

    def book_exit(self, pos: Position, decision: ExitDecision, order: OrderInfo | None, purpose: str,
                  sim_row: dict | None = None, premium: float | None = None) -> None:
        """The trade closed: its exit, P&L and metrics, the order and fill, one commit."""
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
                    self.orders.journal_order(order, pos.trade_id, purpose)
                    self.orders.journal_fill(order_row(order, self.record.run_id, pos.trade_id, purpose),
                                             pos.trade_id, fill_premium, min(order.filled_qty, fill_qty),
                                             order.filled_at)
                elif sim_row is not None:  # dry run: the simulated exit order
                    self.journal.write_order({**sim_row, "trade_id": pos.trade_id})
                    self.orders.journal_fill(sim_row, pos.trade_id, fill_premium, fill_qty)

        self.record.safe(write, "write exit")
        if pos in self.open:
            self.open.remove(pos)
        self.tracking.append(pos)
        self.stats.exits[decision.reason] = self.stats.exits.get(decision.reason, 0) + 1
        self.stats.pnl_usd += pnl
        self.on_exit(pnl)
        self.out(f"  [EXIT] trade {pos.trade_id} {pos.contract_symbol} {decision.reason.upper()} · "
                 f"{self.symbol} ${decision.price:.2f} at {decision.time:%H:%M:%S} · P&L {signed_usd(pnl)}")

    def book_manual(self, pos: Position) -> None:
        """A trade closed outside gammaride with no record of how: closed, no P&L."""
        values = dict(status="closed", exit_reason=EXIT_MANUAL, exit_time=None, exit_premium=float("nan"),
                      pnl_usd=None)
        self.record.write("close orphan", self.journal.update_trade, pos.trade_id, **values)
        if pos in self.open:
            self.open.remove(pos)
        self.stats.exits[EXIT_MANUAL] = self.stats.exits.get(EXIT_MANUAL, 0) + 1

    # ------------------------------------------------------------------ what the broker did on its own
    def watch_broker(self) -> None:
        """Every poll: a position that shrank or vanished at the broker was closed there
        (backstop, bracket leg, the broker's liquidation, exercise, expiry, a manual close):
        book it from the broker's record and send no more orders for it. Never raises."""
        if self.dry_run or not self.open:
            return
        try:
            held = {p.symbol: p for p in self.broker.positions()}
        except BrokerError as exc:
            self.record.error("positions", exc)
            return
        for pos in list(self.open):
            if pos.entry_order_id is not None:
                self.entry_final(pos)
            at = held.get(pos.contract_symbol)
            if at is not None and abs(at.qty) >= pos.qty - 1e-9:
                pos.missing_since = None
                continue
            try:
                if self._closed_at_broker(pos):
                    continue
                self.settle_vanished(pos, restart=False)
            except BrokerError as exc:
                self.record.error(f"settle trade {pos.trade_id}", exc)

    def settle_vanished(self, pos: Position, restart: bool) -> None:
        """Book a position the broker no longer holds from what the broker recorded: our
        own exit or backstop orders (journaled intents), the broker's liquidating sell, its
        exercise/assignment/expiry activity; else a close outside gammaride ('manual')."""
        filled = self.history.our_fills(pos) if restart else []
        if filled:
            last, detail = filled[-1]
            by_backstop = is_backstop_of(last.client_order_id, pos.client_order_id)
            reason = detail.get("reason") or (EXIT_SL if by_backstop else EXIT_MANUAL)
            price = float(detail.get("price") or self.history.underlying_at(last.filled_at, self.price_now))
            for o, _ in filled[:-1]:
                self.partial_exit(pos, o, "exit")
            pos.qty = float(last.filled_qty)
            self.out(f"Trade {pos.trade_id} ({pos.contract_symbol}) was closed by its "
                     f"{'backstop stop' if reason == EXIT_SL else 'exit order'} {last.client_order_id} "
                     f"at ${last.filled_avg_price:.2f}; booked {reason}")
            self.book_exit(pos, ExitDecision(reason, price, last.filled_at or self.clock.now(), False), last,
                           "backstop" if by_backstop else "exit")
            return
        liq = self.history.liquidation(pos)
        if liq is not None:
            self.broker_event("liquidation", pos, liq.filled_qty, liq.filled_avg_price, liq.filled_at,
                              f"order {liq.id} sold {pos.contract_symbol} before expiry")
            self.out(f"  ✗ [BROKER] trade {pos.trade_id}: the broker liquidated {pos.contract_symbol} "
                     f"x{liq.filled_qty:g} at ${liq.filled_avg_price:.2f} ({liq.filled_at:%H:%M:%S}); booked "
                     f"{EXIT_LIQUIDATION}")
            self.book_exit(pos, ExitDecision(EXIT_LIQUIDATION, self.history.underlying_at(liq.filled_at, self.price_now),
                                             liq.filled_at or self.clock.now(), False), liq, "liquidation")
            return
        event = self.history.option_event(pos)
        if event is not None:
            self._book_option_event(pos, event)
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
        self.book_manual(pos)

    def _book_option_event(self, pos: Position, event: OptionEvent) -> None:
        """Exercise, assignment or expiry: booked at intrinsic value (0 when expired); the
        shares an exercise delivered are reported, never adopted."""
        close = self.history.underlying_at(event.at, self.price_now)
        _, _, right, k = parse_occ(pos.contract_symbol)
        if event.kind == "OPEXP":
            reason, premium = EXIT_EXPIRED, 0.0
            text = "expired worthless"
        else:
            reason = EXIT_EXERCISED
            # the contract became shares at the strike: its value at the close is intrinsic
            premium = max(0.0, (close - k) if right == "call" else (k - close)) if np.isfinite(close) else float("nan")
            text = (f"was exercised into {event.shares:+g} shares of {pos.symbol} at ${event.strike:.2f} "
                    f"(booked at intrinsic value ${premium:.2f} = close ${close:.2f} vs strike ${k:g})")
        self.broker_event(event.kind, pos, pos.qty, premium, event.at, text)
        self.out(f"  ✗ [BROKER] trade {pos.trade_id}: {pos.contract_symbol} {text}; booked {reason}")
        self.book_exit(pos, ExitDecision(reason, close, event.at, False), None, "settlement", premium=premium)
        if event.kind != "OPEXP":
            try:
                self.report_shares(self.broker.positions(), {pos.symbol})
            except BrokerError as exc:
                self.record.error("positions", exc)

    def report_exercised_shares(self, held: list[PositionInfo]) -> None:
        """At start: share positions that recent exercises or assignments delivered."""
        if not any(p.asset_class == "us_equity" for p in held):
            return
        try:
            delivered = self.history.delivered_underlyings(self.clock.now() - pd.Timedelta(days=7))
        except BrokerError as exc:
            self.record.error("account activities", exc)
            return
        self.report_shares(held, delivered)

    def report_shares(self, held: list[PositionInfo], underlyings: set[str]) -> None:
        """A share position in an underlying gammaride trades options on, with no order of
        ours behind it, came from an exercise or assignment: say so loudly (printed line,
        journal errors, broker_events), once per run, and never adopt it."""
        if self.settings.instrument != "options":
            return
        for p in held:
            if p.asset_class != "us_equity" or p.symbol not in underlyings or (p.symbol, p.qty) in self._shares_reported:
                continue
            self._shares_reported.add((p.symbol, p.qty))
            text = (f"{p.qty:+g} shares of {p.symbol} (avg ${p.avg_entry_price:.2f}) are held at the broker, most "
                    "likely from an exercised or assigned contract; gammaride does not manage shares: close "
                    "them yourself")
            self.out(f"  ✗ [BROKER] {text}")
            self.record.error("shares from exercise", text)
            self.broker_event("shares", None, p.qty, p.avg_entry_price, self.clock.now(), text, symbol=p.symbol)

    def broker_event(self, kind: str, pos: Position | None, qty, price, at, message: str,
                     symbol: str | None = None) -> None:
        row = {"run_id": self.record.run_id, "occurred_at": at or self.clock.now(), "activity_type": kind,
               "symbol": symbol or (pos.contract_symbol if pos else None), "qty": qty, "price": price,
               "trade_id": pos.trade_id if pos else None, "message": message}
        self.record.write("broker event", self.journal.write_broker_event, row)
