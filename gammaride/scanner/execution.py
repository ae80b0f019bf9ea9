"""Getting an option order filled on quotes that may not be tradable.

On the free data plan option quotes come from the indicative feed: modified, not the
NBBO. A limit at the quoted ask may never fill. :func:`fill_marketable` sends a
marketable limit priced from a fresh quote, and while it does not fill, cancels it and
sends the rest at a worse price, step by step, never further past the quote than
``max_slippage_per_contract`` and never from a quote older than
``max_quote_age_seconds``. Every order it sent comes back with the quote it priced from,
so each fill's slippage can be journaled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gammaride.config import Settings
from gammaride.errors import BrokerError
from gammaride.rules.contracts import marketable_limit, to_tick
from gammaride.scanner.broker import Broker, OptionQuote, OrderInfo, OrderSpec
from gammaride.scanner.clock import Clock
from gammaride.scanner.orders import (
    cancel_and_settle,
    reprice_client_id,
    submit_idempotent,
    wait_for_fill,
)


@dataclass
class Execution:
    """What :func:`fill_marketable` did: the orders sent (final states), the quote each
    was priced from, and why it stopped short when it did."""

    orders: list[OrderInfo] = field(default_factory=list)
    quotes: dict[str, float] = field(default_factory=dict)  # order id -> quote priced from
    reason: str | None = None

    @property
    def filled_qty(self) -> float:
        return float(sum(o.filled_qty for o in self.orders))

    @property
    def avg_price(self) -> float:
        q = self.filled_qty
        if q <= 0:
            return math.nan
        return float(sum(o.filled_qty * o.filled_avg_price for o in self.orders if o.filled_qty > 0) / q)


def step_limit(side: str, quote: OptionQuote, step: int, settings: Settings, root: str) -> float:
    """The limit of price step ``step`` (0 = first): the marketable limit, then a further
    ``max_slippage / reprice_steps`` per step, capped at the quote plus ``max_slippage``."""
    budget = settings.max_slippage_per_contract / 100.0
    steps = max(1, settings.reprice_steps)
    extra = budget * min(step, steps) / steps
    limit = marketable_limit(side, quote.bid, quote.ask, root=root, extra=extra)
    if side == "buy":
        return min(limit, max(to_tick(quote.ask + budget, root, up=False), to_tick(quote.ask, root, up=True)))
    return max(limit, min(to_tick(max(quote.bid - budget, 0.0), root, up=True), to_tick(quote.bid, root, up=False)))


def quote_problem(side: str, quote: OptionQuote, now: pd.Timestamp, settings: Settings) -> str | None:
    """Why this quote cannot price an order, or None."""
    ref = quote.ask if side == "buy" else quote.bid
    if not (np.isfinite(ref) and ref > 0):
        return f"one-sided quote for {quote.symbol} (no {'ask' if side == 'buy' else 'bid'})"
    if quote.time is None:
        return f"quote for {quote.symbol} has no time"
    age = (now - quote.time).total_seconds()
    if age > settings.max_quote_age_seconds:
        return f"quote for {quote.symbol} is {age:.0f}s old (max_quote_age_seconds {settings.max_quote_age_seconds:g})"
    return None


def fill_marketable(
    broker: Broker,
    clock: Clock,
    settings: Settings,
    *,
    contract: str,
    root: str,
    side: str,
    qty: float,
    client_order_id: str,
    quote: Callable[[], OptionQuote] | None = None,
    first_quote: OptionQuote | None = None,
    submit: Callable[[OrderSpec, int], OrderInfo] | None = None,
) -> Execution:
    """Fill ``qty`` of ``contract`` with marketable limits that reprice within the budget.

    Price step k sends the quantity still open under ``client_order_id`` (k = 0) or
    ``<id>-r<k>``, rests ``reprice_seconds``, then cancels (keeping what filled). A
    refusal of the first order is raised (the caller journals it); later failures end
    the execution with a reason. ``first_quote`` prices step 0 when the caller already
    holds a fresh quote. ``submit(spec, step)`` sends one order (default: idempotently,
    straight to the broker; the scanner journals an intent first).
    """
    get_quote = quote or (lambda: broker.option_quote(contract))
    send = submit or (lambda spec, step: submit_idempotent(broker, spec))
    out = Execution()
    remaining = float(qty)
    for k in range(settings.reprice_steps + 1):
        try:
            q = first_quote if (k == 0 and first_quote is not None) else get_quote()
        except BrokerError as exc:
            out.reason = f"no quote for {contract} ({str(exc).splitlines()[0][:120]})"
            break
        problem = quote_problem(side, q, clock.now(), settings)
        if problem:
            out.reason = problem
            break
        limit = step_limit(side, q, k, settings, root)
        cid = reprice_client_id(client_order_id, k)
        spec = OrderSpec(contract, remaining, side, "limit", limit_price=limit, client_order_id=cid)
        try:
            sent = send(spec, k)
        except Exception as exc:  # the first refusal is the caller's; a later one ends the walk
            if k == 0:
                raise
            out.reason = f"reprice {k} not sent ({str(exc).splitlines()[0][:120]})"
            break
        done = wait_for_fill(broker, sent, clock, settings.reprice_seconds)
        if not done.is_filled:
            done = cancel_and_settle(broker, done, clock=clock)
        out.orders.append(done)
        out.quotes[done.id] = q.ask if side == "buy" else q.bid
        remaining = float(qty) - out.filled_qty
        if remaining <= 1e-9:
            out.reason = None
            return out
        if not done.is_done:
            out.reason = f"order {done.id} still {done.status} after its cancel"
            return out
    else:
        out.reason = (f"not filled within {settings.reprice_steps + 1} price steps of "
                      f"{settings.reprice_seconds:g}s (up to ${settings.max_slippage_per_contract:g}/contract past the quote)")
    return out
