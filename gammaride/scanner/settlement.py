"""What the broker recorded about a position gammaride no longer sees.

Alpaca closes positions on its own: a resting backstop fills, it liquidates expiring
contracts in the last hour, it exercises ITM contracts into shares after the close and
lets the rest expire. :class:`BrokerHistory` reads the broker's own record of each
(orders, account activities, the calendar, the underlying's bars); it books nothing:
:class:`gammaride.scanner.positions.PositionManager` books what it finds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gammaride.config import ET
from gammaride.errors import BrokerError
from gammaride.journal import Journal
from gammaride.rules.contracts import parse_occ
from gammaride.scanner.broker import Broker, OrderInfo
from gammaride.scanner.orders import backstop_client_id, is_ours

if TYPE_CHECKING:  # only for the annotations: positions.py imports this module
    from gammaride.scanner.positions import Position

MINUTE = pd.Timedelta(minutes=1)
# Alpaca's option events in the account activities: exercise, assignment, expiry
OPTION_EVENTS = ("OPEXC", "OPASN", "OPEXP")
# Alpaca liquidates expiring positions within the last hour before the close (15:45 ET
# for broad-based ETFs, 15:30 others, earlier when buying power cannot cover exercise): a
# sell not sent by gammaride in that hour of the expiry day is the broker's liquidation
LIQUIDATION_WINDOW = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class OptionEvent:
    """An exercise (OPEXC), assignment (OPASN) or expiry (OPEXP) of a held contract."""

    kind: str
    at: pd.Timestamp  # the session close of the expiry day
    shares: float  # shares of the underlying delivered (OPTRD the same day)
    strike: float


class BrokerHistory:
    """The broker's record for one underlying; ``mode`` picks the journal's intents."""

    def __init__(self, broker: Broker, journal: Journal, symbol: str, mode: str):
        self.broker = broker
        self.journal = journal
        self.symbol = symbol
        self.mode = mode

    def our_fills(self, pos: Position) -> list[tuple[OrderInfo, dict]]:
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

    def liquidation(self, pos: Position) -> OrderInfo | None:
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
            close = self.session_close(at)
            if close is not None and at >= close - LIQUIDATION_WINDOW:
                return o
        return None

    def option_event(self, pos: Position) -> OptionEvent | None:
        """The contract's exercise, assignment or expiry, if the broker recorded one."""
        if pos.instrument != "options":
            return None
        acts = self.broker.account_activities(OPTION_EVENTS + ("OPTRD",), after=pos.entry_time - MINUTE)
        for a in acts:
            if a.get("activity_type") in OPTION_EVENTS and a.get("symbol") == pos.contract_symbol:
                _, exp, _, strike = parse_occ(pos.contract_symbol)
                at = self.session_close(exp) or pd.Timestamp(exp).tz_localize(ET) + pd.Timedelta(hours=16)
                shares = sum(float(t.get("qty") or 0) for t in acts if t.get("activity_type") == "OPTRD"
                             and t.get("symbol") == pos.symbol and t.get("date") == a.get("date"))
                return OptionEvent(str(a["activity_type"]), at, shares, float(strike))
        return None

    def delivered_underlyings(self, after: pd.Timestamp) -> set[str]:
        """Symbols whose shares option trades (exercise, assignment) delivered since ``after``."""
        return {str(a.get("symbol")) for a in self.broker.account_activities(("OPTRD",), after=after)}

    def session_close(self, when) -> pd.Timestamp | None:
        """The close of the session on ``when``'s date (early closes included)."""
        when = pd.Timestamp(when)
        day = (when if when.tz is None else when.tz_convert(ET).tz_localize(None)).normalize()
        try:
            days = self.broker.calendar(day.date(), day.date())
        except BrokerError:
            return None
        return days[0].close if days else None

    def underlying_at(self, when: pd.Timestamp | None, latest: Callable[[], float]) -> float:
        """The underlying's last 1-minute close at or before ``when`` (else ``latest()``)."""
        if when is None:
            return latest()
        try:
            bars = self.broker.bars(self.symbol, when - pd.Timedelta(minutes=30), when)
            bars = bars[bars.index + MINUTE <= when + MINUTE]
            if len(bars):
                return float(bars["close"].iloc[-1])
        except BrokerError:
            pass
        return latest()
