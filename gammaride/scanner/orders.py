"""Orders that are never sent twice, and their journal bookkeeping.

Every order carries a client id derived from its decision (``gr-SPY-201310081002-C``,
``-x<n>`` for exits, ``-bs<n>`` for backstops, ``-r<k>`` for reprices), so a retried
submission is found at the broker instead of sent again. :class:`OrderDesk` journals
each order as an intent before it goes out, and its orders and fills after.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gammaride.config import ET
from gammaride.errors import BrokerError
from gammaride.scanner.broker import Broker, OrderInfo, OrderSpec
from gammaride.scanner.clock import Clock
from gammaride.scanner.record import RunRecord, short_error
from gammaride.scanner.retry import is_transient, with_retries

if TYPE_CHECKING:  # only for the annotations: positions.py imports this module
    from gammaride.scanner.positions import Position

CLIENT_PREFIX = "gr-"


def client_order_id(symbol: str, decision_time: pd.Timestamp, direction: str) -> str:
    """``gr-SPY-201310081002-C``: one id per (symbol, decision minute, direction), so a
    retried submission is refused as a duplicate instead of buying twice."""
    t = pd.Timestamp(decision_time).tz_convert(ET)
    return f"{CLIENT_PREFIX}{symbol.upper()}-{t:%Y%m%d%H%M}-{'C' if direction == 'call' else 'P'}"


def is_ours(client_id: str | None) -> bool:
    return bool(client_id) and str(client_id).startswith(CLIENT_PREFIX)


def backstop_client_id(entry_client_id: str, n: int) -> str:
    """The n-th backstop's client id (1: ``-bs``, then ``-bs2``...): a re-placed backstop
    needs a new id, or the idempotent submit would return the old, done order."""
    return f"{entry_client_id}-bs" + ("" if n <= 1 else str(n))


def reprice_client_id(entry_client_id: str, step: int) -> str:
    """Price step ``step`` of an order (0: the order itself, then ``-r1``, ``-r2``...)."""
    return entry_client_id if step == 0 else f"{entry_client_id}-r{step}"


def repriced_client_id(reprice_id: str) -> str:
    """The client id of the order a ``-r<k>`` reprice repriced."""
    root, _, step = reprice_id.rpartition("-r")
    return root if root and step.isdigit() else reprice_id


def _suffix(client_id: str | None, entry_client_id: str) -> str:
    cid = str(client_id or "")
    return cid[len(entry_client_id):] if cid.startswith(entry_client_id) else ""


def is_exit_of(client_id: str | None, entry_client_id: str) -> bool:
    rest = _suffix(client_id, entry_client_id)
    return rest.startswith("-x") and rest[2:].isdigit()


def is_backstop_of(client_id: str | None, entry_client_id: str) -> bool:
    rest = _suffix(client_id, entry_client_id)
    return rest.startswith("-bs") and rest[3:].isdigit() or rest == "-bs"


def order_row(o: OrderInfo, run_id, trade_id, purpose: str) -> dict:
    return {"order_id": o.id, "client_order_id": o.client_order_id, "run_id": run_id, "trade_id": trade_id,
            "symbol": o.symbol, "side": o.side, "qty": o.qty, "order_type": o.type,
            "order_class": o.order_class, "limit_price": o.limit_price, "stop_price": o.stop_price,
            "purpose": purpose, "status": o.status, "submitted_at": o.submitted_at,
            "updated_at": o.filled_at or o.submitted_at, "message": None}


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


def slippage_per_contract(side: str, fill_price: float, quote_price: float) -> float:
    """USD per contract paid past the quote (+ is worse for us): a buy above the ask, a
    sell below the bid."""
    if not (np.isfinite(fill_price) and np.isfinite(quote_price)):
        return math.nan
    return round((fill_price - quote_price if side == "buy" else quote_price - fill_price) * 100.0, 6)


class JournalRefusal(Exception):
    """An order not sent because the journal could not record it first."""


class OrderDesk:
    """Sends a run's orders and journals them: the intent before the order, the order and
    its fills (with the quote each limit priced from) after. ``dry_run``: orders are
    simulated rows (``PAPER_SIM_<run>_<n>``), nothing is sent."""

    def __init__(self, broker: Broker, clock: Clock, record: RunRecord, *, dry_run: bool = False):
        self.broker = broker
        self.clock = clock
        self.record = record
        self.dry_run = dry_run
        self.quotes: dict[str, float] = {}  # order id -> the quote its limit priced from
        self._simulated = 0

    def submit(self, spec: OrderSpec, purpose: str, pos: Position, detail: dict | None = None) -> OrderInfo:
        """Journal the order as an intent, then send it (idempotently). An entry whose
        intent cannot be journaled is not sent (no journal, no trade); an exit or backstop
        still goes out, since the position must be protected and closed regardless."""
        cid, rec = spec.client_order_id, self.record
        row = {"client_order_id": cid, "run_id": rec.run_id, "trade_id": pos.trade_id, "purpose": purpose,
               "symbol": spec.symbol, "underlying": pos.symbol, "side": spec.side, "qty": spec.qty,
               "decision_time": pos.entry_time, "direction": pos.direction, "detail": detail,
               "created_at": self.clock.now()}
        ok = rec.write(f"{purpose} order intent", rec.journal.write_intent, row)
        if not ok and purpose == "entry":
            raise JournalRefusal(f"entry {cid} not sent: its intent could not be journaled")
        try:
            sent = submit_idempotent(self.broker, spec)
        except BrokerError:
            if ok:
                rec.write("order intent", rec.journal.update_intents, "rejected", client_order_id=cid)
            raise
        if ok:
            rec.write("order intent", rec.journal.update_intents, "sent", client_order_id=cid, order_id=sent.id)
        return sent

    def journal_order(self, order: OrderInfo | dict, trade_id: int | None, purpose: str) -> None:
        row = order if isinstance(order, dict) else order_row(order, self.record.run_id, trade_id, purpose)
        if row:
            self.record.journal.write_order({**row, "trade_id": trade_id})

    def journal_fill(self, order: dict | OrderInfo, trade_id, price, qty, at=None) -> None:
        if not order or not np.isfinite(price) or not qty:
            return
        oid = order["order_id"] if isinstance(order, dict) else order.id
        side = order["side"] if isinstance(order, dict) else order.side
        sym = order["symbol"] if isinstance(order, dict) else order.symbol
        quote = self.quotes.get(oid)  # the quote its limit priced from, when one did
        self.record.journal.write_fill({
            "order_id": oid, "run_id": self.record.run_id, "trade_id": trade_id, "symbol": sym, "side": side,
            "qty": float(qty), "price": float(price), "filled_at": at or self.clock.now(), "quote_price": quote,
            "slippage": slippage_per_contract(side, float(price), quote) if quote else None})

    def journal_rejected(self, spec: OrderSpec, pos: Position, purpose: str, exc: BaseException) -> None:
        row = {"order_id": f"REJECTED-{spec.client_order_id}", "client_order_id": spec.client_order_id,
               "run_id": self.record.run_id, "trade_id": pos.trade_id if purpose != "entry" else None,
               "symbol": spec.symbol, "side": spec.side, "qty": spec.qty, "order_type": spec.type,
               "order_class": spec.order_class, "limit_price": spec.limit_price, "stop_price": spec.stop_price,
               "purpose": purpose, "status": "rejected", "submitted_at": self.clock.now(),
               "message": short_error(exc)}
        self.record.write("rejected order", self.record.journal.write_order, row)
        self.record.error(f"{purpose} order", exc)

    def simulated(self, pos: Position, side: str, qty: float, price: float, purpose: str) -> dict:
        """A dry run's order row: what would have been sent."""
        self._simulated += 1
        return {"order_id": f"PAPER_SIM_{self.record.run_id:03d}_{self._simulated:03d}",
                "client_order_id": pos.client_order_id + ("" if purpose == "entry" else "-x1"),
                "run_id": self.record.run_id, "symbol": pos.contract_symbol, "side": side, "qty": qty,
                "order_type": "limit", "order_class": "simple", "limit_price": price, "purpose": purpose,
                "status": "simulated", "submitted_at": self.clock.now(), "updated_at": self.clock.now()}
