"""On start: make the journal and the broker agree before the first scan.

A run may have stopped anywhere: between an order and its journal row, with a position
open, with an exit working. :func:`reconcile` books what journaled order intents became
at the broker, adopts the open positions gammaride opened (by client id and open trade)
into a :class:`~gammaride.scanner.positions.PositionManager`, books trades the broker
closed while no scanner ran, and leaves every other position alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gammaride.config import ET
from gammaride.errors import BrokerAuthError, BrokerError
from gammaride.rules.contracts import premium_at
from gammaride.scanner.orders import (
    cancel_and_settle,
    is_backstop_of,
    is_exit_of,
    is_ours,
    order_row,
    repriced_client_id,
)
from gammaride.scanner.positions import MINUTE, Position, PositionManager
from gammaride.scanner.record import short_error

ENTRY_PURPOSES = ("entry", "entry_reprice")


def reconcile(pm: PositionManager) -> None:
    """Book entry intents, adopt gammaride's open positions (and manage them to their
    exit), report shares an exercise delivered, book trades closed while no run watched."""
    if pm.dry_run:
        return
    try:
        pm.clock.sync(pm.broker.clock().timestamp)
        book_entry_intents(pm)
        held = pm.broker.positions()
        # the newest 500 orders: an adoptable position was opened today, by a recent order
        orders = pm.broker.orders("all")
    except BrokerAuthError:
        raise  # bad keys: nothing will work
    except BrokerError as exc:
        pm.record.error("reconcile", exc)
        pm.out(f"Could not reconcile with the broker ({short_error(exc)}); continuing without adopting.")
        return
    open_trades = pm.journal.open_trades()
    ours: dict[str, list] = {}
    for o in orders:
        if is_ours(o.client_order_id):
            ours.setdefault(o.symbol, []).append(o)
    others = []
    for p in held:
        mine = ours.get(p.symbol, [])
        trade = open_trades[(open_trades["contract_symbol"] == p.symbol) & (open_trades["run_mode"] == pm.mode)]
        if not mine or trade.empty:
            if mine:  # a gammaride client id, but neither a trade nor an intent in this journal
                pm.out(f"  ✗ {p.symbol} x{abs(p.qty):g} was opened by gammaride order {mine[0].client_order_id}, "
                       "which this journal does not know (another journal or mode?); left alone")
            others.append(p.symbol)
            continue
        _adopt(pm, position_from_trade(trade.iloc[-1], abs(p.qty), pm.settings.max_hold_minutes), mine)
    pm.report_exercised_shares(held)
    if others:
        pm.out(f"Leaving {len(others)} position(s) not opened by gammaride alone: {', '.join(others)}")
    _close_orphans(pm, open_trades, {p.symbol for p in held})


def _adopt(pm: PositionManager, pos: Position, mine: list) -> None:
    """Manage ``pos`` from now on: its backstop and exit orders at the broker, its path so far."""
    for o in mine:
        if is_backstop_of(o.client_order_id, pos.client_order_id):
            pos.backstops += 1
            if not o.is_done:
                pos.backstop_id = o.id
        if is_exit_of(o.client_order_id, pos.client_order_id):
            pos.exit_attempts += 1  # the next exit needs a client id not used yet
            if not o.is_done:  # an exit the stopped run left working: settle it first
                pm.partial_exit(pos, cancel_and_settle(pm.broker, o, clock=pm.clock), "exit")
        if o.client_order_id == pos.client_order_id and o.order_class == "bracket":
            pos.bracket_id = o.id  # its TP/SL legs must be cancelled before a time exit
    for r in pm.journal.trade_paths([pos.trade_id]).itertuples():
        pos.path[int(r.minute)] = (pd.Timestamp(r.bar_time).tz_convert(ET), r.open, r.high, r.low, r.close)
    pm.open.append(pos)
    pm.stats.adopted += 1
    pm.out(f"Adopted open position {pos.contract_symbol} x{pos.qty:g} (trade {pos.trade_id}, "
           f"TP ${pos.tp:.2f} SL ${pos.sl:.2f}, limit {pos.limit:%H:%M})")
    if pm.backstop and pos.instrument == "options" and pos.backstop_id is None:
        # none rests (never placed, or a DAY stop expired overnight): place a new one, from
        # the bid now (the bid at entry is not journaled; the price paid is above the bid
        # by the spread, and a stop estimated from it would fire on the spread)
        _entry_bid_from_now(pm, pos)
        pm.place_backstop(pos)


def _entry_bid_from_now(pm: PositionManager, pos: Position) -> None:
    """``pos.entry_bid``: the contract's bid now, moved back by delta to the underlying's
    price at entry, so the backstop sits where the SL would put the premium from here."""
    try:
        bid = pm.broker.option_quote(pos.contract_symbol).bid
    except BrokerError:
        return
    price = pm.price_now()
    if np.isfinite(bid) and bid > 0 and np.isfinite(price):
        pos.entry_bid = premium_at(bid, pos.delta, pos.sign, pos.entry_price - price, pos.symbol)


def book_entry_intents(pm: PositionManager) -> None:
    """Entries journaled as intents whose trade was never written (the run stopped
    between an order and its journal row): ask the broker what became of each price step
    of the entry (the first order and its reprices); what filled becomes the open trade,
    with the broker's prices and quantities; an entry nothing of which filled is void."""
    intents = pm.journal.intents(pm.mode, open_only=True)
    intents = intents[intents["purpose"].isin(ENTRY_PURPOSES)] if len(intents) else intents
    entries: dict[str, list] = {}
    for it in intents.itertuples():  # the reprices of an entry (<id>-r<k>) go with its first order
        cid = str(it.client_order_id)
        root = repriced_client_id(cid) if it.purpose == "entry_reprice" else cid
        entries.setdefault(root, []).append(it)
    for cid, steps in entries.items():
        _book_entry(pm, cid, steps)


def _book_entry(pm: PositionManager, cid: str, steps: list) -> None:
    """One entry's price steps: the fills become its trade (or the intents are void)."""
    journal, first = pm.journal, steps[0]
    run_id, trade_id = int(first.run_id), int(first.trade_id)
    filled, unfilled = [], []
    for it in steps:
        found = pm.broker.order_by_client_id(str(it.client_order_id))
        if found is not None and not found.is_done:
            found = cancel_and_settle(pm.broker, found, clock=pm.clock)
        (filled if found is not None and found.filled_qty > 0 else unfilled).append((it, found))
    for it, found in unfilled:
        pm.record.write("order intent", journal.update_intents, "void", client_order_id=str(it.client_order_id),
                        order_id=found.id if found else None)
        if found is not None:
            pm.record.write("entry order", pm.orders.journal_order, order_row(found, run_id, None, it.purpose),
                            None, it.purpose)
    if not filled:
        return
    if journal.has_trade(cid):
        for it, _ in filled:
            pm.record.write("order intent", journal.update_intents, "booked", client_order_id=str(it.client_order_id))
        return
    qty = sum(float(o.filled_qty) for _, o in filled)
    premium = (float(filled[0][1].filled_avg_price) if len(filled) == 1 else
               sum(float(o.filled_qty) * float(o.filled_avg_price) for _, o in filled) / qty)
    trade = {**(first.detail or {}), "contracts": int(qty), "status": "open", "client_order_id": cid,
             "trade_id": trade_id, "run_id": run_id}
    if trade.get("instrument", "options") == "options":
        trade["entry_premium"] = premium

    def write() -> None:
        with journal.transaction():
            journal.write_trade(trade)
            for it, o in filled:
                journal.write_order(order_row(o, run_id, trade_id, it.purpose))
                journal.write_fill({"order_id": o.id, "run_id": run_id, "trade_id": trade_id, "symbol": o.symbol,
                                    "side": o.side, "qty": float(o.filled_qty), "price": float(o.filled_avg_price),
                                    "filled_at": o.filled_at or pm.clock.now()})
                journal.update_intents("booked", client_order_id=str(it.client_order_id), order_id=o.id)

    if pm.record.safe(write, "book entry from its intent"):
        symbol = filled[0][1].symbol
        steps_text = f" in {len(filled)} price steps" if len(filled) > 1 else ""
        pm.out(f"Booked entry {cid} from the broker's record: {symbol} x{qty:g} at ${premium:.2f}{steps_text} "
               "(the run that sent it stopped before journaling the trade)")


def _close_orphans(pm: PositionManager, open_trades: pd.DataFrame, held: set[str]) -> None:
    """Open trades of this mode with no position left at the broker were closed while
    no scanner ran: book each from the broker's own record."""
    for t in open_trades.itertuples():
        if t.run_mode != pm.mode or t.contract_symbol in held or not is_ours(t.client_order_id):
            continue
        if any(p.trade_id == t.trade_id for p in pm.open):
            continue
        pos = position_from_trade(pd.Series(t._asdict()), float(t.contracts or 0), pm.settings.max_hold_minutes)
        pm.settle_vanished(pos, restart=True)


def position_from_trade(t: pd.Series, qty: float, max_hold: int) -> Position:
    """An open journaled trade as a position to manage (adopted)."""
    entry_time = pd.Timestamp(t["entry_time"]).tz_convert(ET)
    return Position(
        trade_id=int(t["trade_id"]), run_id=int(t["run_id"]), symbol=str(t["symbol"]),
        instrument=str(t["instrument"] or "options"), contract_symbol=str(t["contract_symbol"]),
        direction=str(t["direction"]), qty=qty, entry_time=entry_time, entry_price=float(t["entry_price"]),
        atr=float(t["atr"]), tp=float(t["tp"]), sl=float(t["sl"]), tp_mult=float(t["tp_mult"]),
        sl_mult=float(t["sl_mult"]), hold_until=entry_time + max_hold * MINUTE,
        hard_stop=pd.Timestamp(t["hard_stop_time"]).tz_convert(ET),
        entry_premium=float(t["entry_premium"]) if pd.notna(t["entry_premium"]) else float("nan"),
        client_order_id=str(t["client_order_id"]), adopted=True,
    )
