"""Sending an entry and knowing whether a decision was entered already.

:class:`EntryDesk` sends the order of a decided trade: for options a marketable limit
repriced within the slippage budget (:func:`~gammaride.scanner.execution.fill_marketable`),
for shares a market bracket; in a dry run a simulated order. Every order is journaled as
an intent (with the trade as its detail, from which a restart books the trade) before it
is sent; an entry nothing of which filled is void.
"""

from __future__ import annotations

from gammaride.config import Settings
from gammaride.errors import BrokerError
from gammaride.rules.contracts import ContractChoice
from gammaride.scanner.broker import Broker, OrderSpec
from gammaride.scanner.clock import Clock
from gammaride.scanner.execution import fill_marketable
from gammaride.scanner.orders import (
    JournalRefusal,
    OrderDesk,
    cancel_and_settle,
    order_row,
    wait_for_fill,
)
from gammaride.scanner.positions import Position, PositionManager
from gammaride.scanner.record import RunRecord, short_error

# ([(order row, fill price, filled qty, fill time)...], average fill price, filled qty,
# the reason when nothing filled)
Sent = tuple[list, float, float, str | None]


class EntryDesk:
    """Entries of one run. ``positions``: the run's manager (what it holds or tracks)."""

    def __init__(self, broker: Broker, clock: Clock, settings: Settings, record: RunRecord, orders: OrderDesk,
                 positions: PositionManager, *, mode: str, dry_run: bool = False):
        self.broker, self.clock, self.settings = broker, clock, settings
        self.record, self.journal, self.orders = record, record.journal, orders
        self.positions, self.mode, self.dry_run = positions, mode, dry_run

    def already_entered(self, cid: str) -> bool:
        """Whether an entry with this client id was made already: the broker would answer
        its resubmission with the old order, which must not become a second trade. In this
        run, or journaled by a run of this mode whose order the broker still knows (a fresh
        offline server knows none, so a rehearsal can run the same day again)."""
        if self.positions.knows(cid):
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

    def send(self, pos: Position, choice: ContractChoice | None, trade: dict | None = None) -> Sent:
        """Buy ``pos`` (``choice``: the contract; None in shares mode). Each order is
        journaled as an intent (with ``trade``, the setup) before it is sent."""
        side = "buy" if (pos.instrument == "options" or pos.direction == "call") else "sell"
        if self.dry_run:
            price = choice.ask if choice else pos.entry_price
            order = self.orders.simulated(pos, "buy" if choice else side, pos.qty, price, "entry")
            return [(order, price, pos.qty, None)], price, pos.qty, None
        if pos.instrument == "options":
            return self._send_option(pos, trade)
        return self._send_bracket(pos, side, trade)

    def _send_bracket(self, pos: Position, side: str, trade: dict | None) -> Sent:
        """Shares: a market order with the broker's TP/SL legs."""
        s = self.settings
        spec = OrderSpec(pos.symbol, pos.qty, side, "market", client_order_id=pos.client_order_id,
                         order_class="bracket", take_profit=pos.tp, stop_loss=pos.sl)
        try:
            sent = self.orders.submit(spec, "entry", pos, detail=trade)
        except JournalRefusal as exc:
            return [], float("nan"), 0.0, f"error: {exc}"
        except BrokerError as exc:
            self.orders.journal_rejected(spec, pos, "entry", exc)
            return [], float("nan"), 0.0, f"entry rejected: {short_error(exc)}"
        filled = wait_for_fill(self.broker, sent, self.clock, s.entry_timeout_seconds)
        if not filled.is_filled:
            filled = cancel_and_settle(self.broker, filled, clock=self.clock)
        pos.bracket_id = filled.id
        # a cancel still pending: the entry is not final, and its backstop waits for it
        pos.entry_order_id = None if filled.is_done else filled.id
        order = order_row(filled, self.record.run_id, None, "bracket")
        if filled.filled_qty <= 0:
            self.record.write("entry order", self._void, order, pos.client_order_id)
            return [], float("nan"), 0.0, f"entry not filled within {s.entry_timeout_seconds:g}s (cancelled)"
        return ([(order, float(filled.filled_avg_price), float(filled.filled_qty), filled.filled_at)],
                float(filled.filled_avg_price), float(filled.filled_qty), None)

    def _send_option(self, pos: Position, trade: dict | None) -> Sent:
        """A marketable limit from a fresh quote, repriced within the slippage budget. Each
        price step is journaled as an intent before it is sent (the first as the entry, the
        reprices as ``entry_reprice``)."""
        def submit(spec: OrderSpec, step: int):
            return self.orders.submit(spec, "entry" if step == 0 else "entry_reprice", pos, detail=trade)

        try:
            ex = fill_marketable(self.broker, self.clock, self.settings, contract=pos.contract_symbol,
                                 root=pos.symbol, side="buy", qty=pos.qty, client_order_id=pos.client_order_id,
                                 submit=submit)
        except JournalRefusal as exc:
            return [], float("nan"), 0.0, f"error: {exc}"
        except BrokerError as exc:
            spec = OrderSpec(pos.contract_symbol, pos.qty, "buy", "limit", client_order_id=pos.client_order_id)
            self.orders.journal_rejected(spec, pos, "entry", exc)
            return [], float("nan"), 0.0, f"entry rejected: {short_error(exc)}"
        self.orders.quotes.update(ex.quotes)
        # a cancel still pending: the entry is not final, and its backstop waits for it
        pos.entry_order_id = next((o.id for o in ex.orders if not o.is_done), None)
        rows = [(order_row(o, self.record.run_id, None, "entry"), float(o.filled_avg_price), float(o.filled_qty),
                 o.filled_at) for o in ex.orders]
        if ex.filled_qty <= 0:
            for row, *_ in rows:
                self.record.write("entry order", self._void, row, row["client_order_id"])
            return [], float("nan"), 0.0, f"entry not filled: {ex.reason} (cancelled)"
        return rows, ex.avg_price, ex.filled_qty, None

    def _void(self, order: dict, cid: str) -> None:
        self.journal.write_order(order)
        self.journal.update_intents("void", client_order_id=cid)
