"""The simulated brokerage: orders, fills, positions, cash and the account.

Fills happen against the replayed market: option orders at the simulated bid/ask
(buy at the ask, sell at the bid), share orders at the interpolated last price when
they are marketable on arrival and otherwise against complete 1-minute bars whose
high/low touch the level. Resting orders are re-checked minute by minute every time
the clock has moved (the server calls ``sync(now)`` on every request).

The broker rules of Alpaca that gammaride depends on are enforced: options take only
``simple`` orders, DAY, whole contracts; expiring 0DTE contracts refuse orders after
the cut-off (15:30 ET for SPY/QQQ/IWM, 15:15 for others, earlier on early-close days)
and are liquidated by the broker at 15:45 ET (broad-based ETFs) or 15:30 (others),
likewise shifted; whatever is still held at the close is settled as Alpaca does:
ITM contracts (>= $0.01) are exercised into shares (physical settlement), the rest
expire, each recorded as an account activity (OPEXC/OPASN + OPTRD, OPEXP); a stop sell
while a buy limit on the same symbol is open is refused (wash-trade protection, 403);
``client_order_id`` is unique.
"""

from __future__ import annotations

import math
import random
import uuid

from gammaride.config import NS_MIN
from gammaride.errors import ConfigError
from gammaride.offline.market import Schedule, Tape, rfc3339, to_et
from gammaride.offline.options import Contract, OptionBook, contract_id, contract_of
from gammaride.offline.orders import (
    ApiError,
    Fill,
    Order,
    SimPosition,
    check_tick,
    decimal_str,
    invalid,
    parse_price,
    unprocessable,
)
from gammaride.offline.params import BrokerBehaviour, SimAccount

# Alpaca's own rules, not the scanner's settings: expiring positions are liquidated from
# 15:45 ET for broad-based ETFs and from 15:30 for other underlyings (on a 16:00 close);
# expiry-day orders are refused from 15:30 ET for broad-based ETFs and from 15:15 for
# others. An early close moves both as much.
BROAD_BASED_ETFS = frozenset({"SPY", "QQQ", "IWM"})
_LIQUIDATION_BEFORE_CLOSE_NS = {True: 15 * NS_MIN, False: 30 * NS_MIN}
_CUTOFF_BEFORE_CLOSE_NS = {True: 30 * NS_MIN, False: 45 * NS_MIN}
# an ITM contract is exercised when it is in the money by at least this much at the close
_EXERCISE_THRESHOLD = 0.01


class SimBroker:
    """SimAccount state and order handling of the offline server (not thread-safe: the server
    holds one lock around every request)."""

    def __init__(
        self,
        tape: Tape,
        book: OptionBook,
        schedule: Schedule,
        now_ns: int,
        account: SimAccount | None = None,
        behaviour: BrokerBehaviour | None = None,
        seed: int = 0,
        options_level: int = 3,
    ) -> None:
        account, behaviour = account or SimAccount(), behaviour or BrokerBehaviour()
        equity = account.equity
        if not (isinstance(equity, (int, float)) and math.isfinite(equity) and equity > 0):
            raise ConfigError(f"starting equity {equity!r} must be a positive number of dollars")
        self.tape = tape
        self.book = book
        self.schedule = schedule
        self.options_level = int(options_level)
        # Alpaca takes single-leg option stop orders since 2026-08; False rehearses before
        self.option_stops = bool(behaviour.option_stops)
        # Alpaca cancels asynchronously: True makes a cancel request leave the order
        # pending_cancel (still fillable, qty still reserved) until the clock next moves
        self.async_cancels = bool(behaviour.async_cancels)
        # at most this many contracts of an option limit/stop order fill per check (a thin
        # book): orders go partially_filled first; None fills whole orders
        self.partial_fill_max = int(behaviour.partial_fill_max) if behaviour.partial_fill_max else None
        # Alpaca "may" liquidate expiring positions before the close; False rehearses the
        # day it does not (the contract is then exercised or expires after the close)
        self.liquidation = bool(behaviour.liquidation)
        # account activities (GET /v2/account/activities), oldest first, Alpaca's fields
        self.activities: list[dict] = []
        self.cash = float(equity)
        # a margin account: shares may use `margin` x cash, options only cash (Alpaca's
        # options_buying_power differs from buying_power on margin accounts)
        self.margin = 2.0
        self.last_equity = float(equity)
        self.positions: dict[str, SimPosition] = {}
        self.orders: dict[str, Order] = {}
        self.by_client_id: dict[str, Order] = {}
        self.fills: list[Fill] = []
        # Open orders only: the per-minute processing walks this, not the whole history.
        self._working: list[Order] = []
        self._rng = random.Random(seed)
        self._last_ns = now_ns
        self.account_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self.created_ns = now_ns

    # ------------------------------------------------------------------ prices
    def option_quote(self, contract: Contract, now_ns: int) -> dict[str, float]:
        return self.book.price(contract, now_ns, self.tape.price_at(now_ns))

    def mark(self, symbol: str, now_ns: int) -> float:
        c = contract_of(symbol)
        if c is not None:
            return self.option_quote(c, now_ns)["mid"]
        return self.tape.price_at(now_ns)

    # ------------------------------------------------------------------ account
    def equity(self, now_ns: int) -> float:
        value = self.cash
        for p in self.positions.values():
            mult = 100.0 if p.asset_class == "us_option" else 1.0
            value += p.qty * self.mark(p.symbol, now_ns) * mult
        return value

    def _reserved(self, now_ns: int) -> float:
        """Cash held back for open buy orders (options at limit or ask; shares at limit or last)."""
        total = 0.0
        for o in self.working():
            if o.side != "buy" or o.status == "held":
                continue
            if o.is_option:
                px = o.limit_price or self.option_quote(contract_of(o.symbol), now_ns)["ask"]
                total += px * (o.qty - o.filled_qty) * 100.0
            elif not self._closes_short(o):
                total += (o.limit_price or self.tape.price_at(now_ns)) * (o.qty - o.filled_qty)
        return total

    def _closes_short(self, o: Order) -> bool:
        p = self.positions.get(o.symbol)
        return p is not None and p.qty < 0

    def account_json(self, now_ns: int) -> dict:
        long_mv = short_mv = 0.0
        for p in self.positions.values():
            mult = 100.0 if p.asset_class == "us_option" else 1.0
            mv = p.qty * self.mark(p.symbol, now_ns) * mult
            if mv >= 0:
                long_mv += mv
            else:
                short_mv += mv
        equity = self.cash + long_mv + short_mv
        options_bp = max(0.0, self.cash - self._reserved(now_ns))
        buying_power = self.margin * options_bp
        day = to_et(now_ns).strftime("%Y-%m-%d")
        return {
            "id": self.account_id,
            "admin_configurations": {},
            "user_configurations": None,
            "account_number": "PAOFFLINE01",
            "status": "ACTIVE",
            "crypto_status": "INACTIVE",
            "currency": "USD",
            "buying_power": decimal_str(round(buying_power, 2)),
            "regt_buying_power": decimal_str(round(buying_power, 2)),
            "effective_buying_power": decimal_str(round(buying_power, 2)),
            "non_marginable_buying_power": decimal_str(round(options_bp, 2)),
            "options_buying_power": decimal_str(round(options_bp, 2)),
            "bod_dtbp": "0",
            "cash": decimal_str(round(self.cash, 2)),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "portfolio_value": decimal_str(round(equity, 2)),
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": rfc3339(self.created_ns),
            "trade_suspended_by_user": False,
            "multiplier": decimal_str(self.margin),
            "shorting_enabled": True,
            "equity": decimal_str(round(equity, 2)),
            "last_equity": decimal_str(round(self.last_equity, 2)),
            "long_market_value": decimal_str(round(long_mv, 2)),
            "short_market_value": decimal_str(round(short_mv, 2)),
            "position_market_value": decimal_str(round(long_mv - short_mv, 2)),
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "balance_asof": day,
            "crypto_tier": 0,
            "options_approved_level": self.options_level,
            "options_trading_level": self.options_level,
            "intraday_adjustments": "0",
            "pending_reg_taf_fees": "0",
        }

    def position_json(self, p: SimPosition, now_ns: int) -> dict:
        option = p.asset_class == "us_option"
        mult = 100.0 if option else 1.0
        price = self.mark(p.symbol, now_ns)
        last = self._lastday_price(p.symbol, now_ns)
        mv = p.qty * price * mult
        cost = p.qty * p.avg_entry_price * mult
        upl = mv - cost
        intraday = (price - last) * p.qty * mult
        held, brackets = 0.0, set()
        for o in self.working():
            if o.symbol != p.symbol or o.status == "held" or (o.side == "sell") != (p.qty > 0):
                continue
            if o.parent is not None:  # the two legs of a bracket are OCO: they hold the qty once
                if id(o.parent) in brackets:
                    continue
                brackets.add(id(o.parent))
            held += o.qty - o.filled_qty
        return {
            "asset_id": contract_id(p.symbol),
            "symbol": p.symbol,
            "exchange": "" if option else "ARCA",
            "asset_class": p.asset_class,
            "asset_marginable": not option,
            "avg_entry_price": decimal_str(round(p.avg_entry_price, 4)),
            "qty": decimal_str(p.qty),
            "side": "long" if p.qty > 0 else "short",
            "market_value": decimal_str(round(mv, 2)),
            "cost_basis": decimal_str(round(cost, 2)),
            "unrealized_pl": decimal_str(round(upl, 2)),
            "unrealized_plpc": decimal_str(round(upl / abs(cost), 6) if cost else 0.0),
            "unrealized_intraday_pl": decimal_str(round(intraday, 2)),
            "unrealized_intraday_plpc": decimal_str(round(intraday / abs(last * p.qty * mult), 6) if last else 0.0),
            "current_price": decimal_str(round(price, 4)),
            "lastday_price": decimal_str(round(last, 4)),
            "change_today": decimal_str(round((price - last) / last, 6) if last else 0.0),
            "qty_available": decimal_str(max(0.0, abs(p.qty) - held)),
        }

    def _lastday_price(self, symbol: str, now_ns: int) -> float:
        i = self.schedule.index_at_or_after(now_ns)
        prev_close = int(self.schedule.closes[i - 1]) if i > 0 else now_ns
        c = contract_of(symbol)
        if c is None:
            last = self.tape.last_close_before(prev_close)
            return last if last is not None else self.tape.price_at(now_ns)
        return self.book.price(c, prev_close, self.tape.price_at(prev_close))["mid"]

    # ------------------------------------------------------------------ orders
    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def submit(self, body: object, now_ns: int) -> Order:
        """Validate an order request like Alpaca does, register it and fill what is marketable."""
        if not isinstance(body, dict):
            raise ApiError(400, "request body format is invalid", 40010000)
        client_id = str(body.get("client_order_id") or self._new_id())
        if len(client_id) > 128:
            raise invalid("client_order_id must be no more than 128 characters")
        if client_id in self.by_client_id:
            raise invalid("client_order_id must be unique")
        symbol = str(body.get("symbol") or "").upper()
        if not symbol:
            raise invalid("symbol is required")
        side = body.get("side")
        if side not in ("buy", "sell"):
            raise invalid(f"invalid side: {side!r}")
        otype = body.get("type") or body.get("order_type")
        if otype not in ("market", "limit", "stop", "stop_limit", "trailing_stop"):
            raise invalid(f"invalid order type: {otype!r}")
        tif = body.get("time_in_force")
        if tif not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
            raise invalid(f"invalid time_in_force: {tif!r}")
        if body.get("notional") not in (None, ""):
            raise invalid("notional orders are not supported by the offline server; send qty")
        try:
            qty = float(body.get("qty"))
        except (TypeError, ValueError):
            raise invalid("qty is required") from None
        if not (math.isfinite(qty) and qty > 0):
            raise invalid(f"qty must be > 0 (got {body.get('qty')!r})")
        order_class = body.get("order_class") or "simple"
        if order_class not in ("simple", "bracket", "oco", "oto", "mleg"):
            raise invalid(f"invalid order_class: {order_class!r}")
        if otype in ("stop_limit", "trailing_stop"):
            raise invalid(f"{otype} orders are not supported by the offline server")
        if body.get("extended_hours"):
            raise invalid("extended hours orders are not supported by the offline server")
        limit = parse_price(body, "limit_price", required=otype == "limit")
        stop = parse_price(body, "stop_price", required=otype == "stop")

        contract = contract_of(symbol)
        if contract is not None:
            order = self._option_order(client_id, contract, side, qty, otype, tif, order_class, limit, stop, now_ns)
        else:
            order = self._share_order(client_id, symbol, side, qty, otype, tif, order_class, limit, stop, body, now_ns)
        self._register(order)
        for leg in order.legs:
            self._register(leg)
        self._try_fill_on_arrival(order, now_ns)
        return order

    def _register(self, order: Order) -> None:
        self.orders[order.id] = order
        self.by_client_id[order.client_order_id] = order
        if order.is_open:
            self._working.append(order)

    def working(self) -> list[Order]:
        """Open orders in submission order (a fresh list: callers may change statuses)."""
        self._working = [o for o in self._working if o.is_open]
        return list(self._working)

    def _option_order(self, client_id, contract, side, qty, otype, tif, order_class, limit, stop, now_ns) -> Order:
        if order_class != "simple":
            # Alpaca: options take only simple (and multi-leg) orders; no bracket/OCO/OTO.
            raise unprocessable("order_class provided not supported for options trading")
        if tif not in ("day", "gtc"):
            raise unprocessable("order_time_in_force provided not supported for options trading")
        if otype == "stop" and not self.option_stops:
            raise unprocessable("order type stop is not supported for options trading")
        if not float(qty).is_integer():
            raise invalid("qty must be a whole number of contracts for options")
        if not self.book.is_known(contract, now_ns):
            raise invalid(f'asset "{contract.symbol}" not found or not tradable')
        for px, name in ((limit, "limit_price"), (stop, "stop_price")):
            check_tick(contract.root, px, name)
        self._check_cutoff(contract, now_ns)
        self._check_wash_trade(contract.symbol, side, otype)
        pos = self.positions.get(contract.symbol)
        held = pos.qty if pos else 0.0
        if side == "sell":
            pending = sum(o.qty - o.filled_qty for o in self.working()
                          if o.symbol == contract.symbol and o.side == "sell")
            available = max(0.0, held - pending)
            if qty > available:
                # Uncovered option shorts need level 4; the offline account is level 3.
                raise ApiError(
                    403,
                    f"insufficient qty available for order (requested: {decimal_str(qty)}, available: {decimal_str(available)})",
                    40310000,
                )
            intent = "sell_to_close"
        else:
            price = limit or self.option_quote(contract, now_ns)["ask"]
            cost = price * qty * 100.0
            if cost > self.cash - self._reserved(now_ns) + 1e-9:
                raise ApiError(403, "insufficient options buying power", 40310000)
            intent = "buy_to_close" if held < 0 else "buy_to_open"
        return Order(
            id=self._new_id(), client_order_id=client_id, symbol=contract.symbol,
            asset_class="us_option", side=side, qty=qty, type=otype, time_in_force=tif,
            order_class="simple", created_ns=now_ns, limit_price=limit, stop_price=stop,
            position_intent=intent, active_from_ns=now_ns,
        )

    def cutoff_ns(self, contract: Contract) -> int | None:
        """Order cut-off on the expiration day (None when the date is not a session)."""
        i = self.schedule.position_of_date(contract.expiration)
        if i < 0:
            return None
        return int(self.schedule.closes[i]) - _CUTOFF_BEFORE_CLOSE_NS[contract.root.upper() in BROAD_BASED_ETFS]

    def _check_cutoff(self, contract: Contract, now_ns: int) -> None:
        cutoff = self.cutoff_ns(contract)
        if cutoff is not None and now_ns >= cutoff:
            at = to_et(cutoff).strftime("%H:%M")
            raise unprocessable(
                f"orders for {contract.symbol} expiring today are not accepted after {at} ET "
                "(expiry-day cut-off); trade a later expiration"
            )

    def _check_wash_trade(self, symbol: str, side: str, otype: str) -> None:
        """Alpaca refuses a stop sell while a buy limit on the same symbol is open: the two
        could trade with each other (wash-trade protection)."""
        if side != "sell" or otype != "stop":
            return
        if any(o.symbol == symbol and o.side == "buy" and o.type == "limit" and o.status != "held"
               for o in self.working()):
            raise ApiError(403, "potential wash trade detected. use complex orders", 40310000)

    def _share_order(self, client_id, symbol, side, qty, otype, tif, order_class, limit, stop, body, now_ns) -> Order:
        if symbol != self.tape.symbol:
            raise invalid(f'asset "{symbol}" not found (the offline server replays {self.tape.symbol} only)')
        if not float(qty).is_integer():
            raise invalid("fractional orders are not supported by the offline server")
        if tif not in ("day", "gtc"):
            raise invalid(f"time_in_force {tif} is not supported by the offline server; use day or gtc")
        if order_class in ("oco", "oto", "mleg"):
            raise invalid(f"order_class {order_class} is not supported by the offline server for shares")
        if order_class == "simple":
            self._check_wash_trade(symbol, side, otype)
        cost = (limit or self.tape.price_at(now_ns)) * qty
        pos = self.positions.get(symbol)
        if side == "buy" and not (pos and pos.qty < 0) and cost > self.margin * (self.cash - self._reserved(now_ns)) + 1e-9:
            raise ApiError(403, "insufficient buying power", 40310000)
        held = pos.qty if pos else 0.0
        if side == "buy":
            intent = "buy_to_close" if held < 0 else "buy_to_open"
        else:
            intent = "sell_to_close" if held > 0 else "sell_to_open"
        order = Order(
            id=self._new_id(), client_order_id=client_id, symbol=symbol, asset_class="us_equity",
            side=side, qty=qty, type=otype, time_in_force=tif, order_class=order_class,
            created_ns=now_ns, limit_price=limit, stop_price=stop, position_intent=intent,
            active_from_ns=-(-now_ns // NS_MIN) * NS_MIN,
        )
        if order_class == "bracket":
            order.legs = self._bracket_legs(order, body, now_ns)
        return order

    def _bracket_legs(self, parent: Order, body: dict, now_ns: int) -> list[Order]:
        if parent.type not in ("market", "limit"):
            raise invalid("bracket orders must be market or limit orders")
        tp = body.get("take_profit") if isinstance(body.get("take_profit"), dict) else None
        sl = body.get("stop_loss") if isinstance(body.get("stop_loss"), dict) else None
        if tp is None:
            raise invalid("bracket orders require take_profit.limit_price")
        if sl is None:
            raise invalid("bracket orders require stop_loss.stop_price")
        tp_price = parse_price(tp, "limit_price", required=True)
        sl_price = parse_price(sl, "stop_price", required=True)
        if sl.get("limit_price") not in (None, ""):
            raise invalid("stop_loss.limit_price (stop-limit legs) is not supported by the offline server")
        base = parent.limit_price or self.tape.price_at(now_ns)
        sign = 1 if parent.side == "buy" else -1
        if sign * (tp_price - base) < 0.01 - 1e-9:
            op = ">=" if sign > 0 else "<="
            raise unprocessable(f"take_profit.limit_price must be {op} base_price {'+' if sign > 0 else '-'} 0.01")
        if sign * (base - sl_price) < 0.01 - 1e-9:
            op = "<=" if sign > 0 else ">="
            raise unprocessable(f"stop_loss.stop_price must be {op} base_price {'-' if sign > 0 else '+'} 0.01")
        exit_side = "sell" if parent.side == "buy" else "buy"
        legs = []
        for otype, limit, stop in (("limit", tp_price, None), ("stop", None, sl_price)):
            legs.append(Order(
                id=self._new_id(), client_order_id=self._new_id(), symbol=parent.symbol,
                asset_class="us_equity", side=exit_side, qty=parent.qty, type=otype,
                time_in_force=parent.time_in_force, order_class="bracket", created_ns=now_ns,
                limit_price=limit, stop_price=stop, status="held", parent=parent,
                position_intent="sell_to_close" if exit_side == "sell" else "buy_to_close",
            ))
        return legs

    # ------------------------------------------------------------------ fills
    def _try_fill_on_arrival(self, order: Order, now_ns: int) -> None:
        if not self.schedule.is_open(now_ns):
            return  # queued for the next open, as Alpaca does outside market hours
        if order.is_option:
            self._check_option_order(order, now_ns)
            return
        price = self.tape.price_at(now_ns)
        fill = None
        if order.type == "market":
            fill = price
        elif order.type == "limit":
            if (order.side == "buy" and price <= order.limit_price) or (
                order.side == "sell" and price >= order.limit_price
            ):
                fill = price
        elif order.type == "stop":
            if (order.side == "sell" and price <= order.stop_price) or (
                order.side == "buy" and price >= order.stop_price
            ):
                fill = price
        if fill is not None:
            self._fill(order, round(fill, 4), now_ns)

    def _check_option_order(self, order: Order, t_ns: int) -> None:
        q = self.option_quote(contract_of(order.symbol), t_ns)
        bid, ask = q["bid"], q["ask"]
        buy = order.side == "buy"
        if order.type == "market":
            px = ask if buy else bid
        elif order.type == "limit":
            px = ask if (buy and ask <= order.limit_price) else bid if (not buy and bid >= order.limit_price) else None
        else:  # stop: triggers on the quote, then fills as a market order
            px = ask if (buy and ask >= order.stop_price) else bid if (not buy and bid <= order.stop_price) else None
        if px is not None and not (not buy and px <= 0):
            self._fill(order, px, t_ns)

    def _check_share_order_on_bar(self, order: Order, j: int, t_ns: int) -> bool:
        tape = self.tape
        o, h, lo = tape.open[j], tape.high[j], tape.low[j]
        buy = order.side == "buy"
        px = None
        if order.type == "market":
            px = o
        elif order.type == "limit":
            lim = order.limit_price
            if buy and lo <= lim:
                px = min(lim, o)
            elif not buy and h >= lim:
                px = max(lim, o)
        elif order.type == "stop":
            stop = order.stop_price
            if not buy and lo <= stop:
                px = min(stop, o)
            elif buy and h >= stop:
                px = max(stop, o)
        if px is None:
            return False
        self._fill(order, round(float(px), 4), t_ns)
        return True

    def _fill(self, order: Order, price: float, t_ns: int) -> None:
        qty = order.qty - order.filled_qty
        if self.partial_fill_max and order.is_option and order.type != "market":
            qty = min(qty, float(self.partial_fill_max))
        before = order.filled_qty
        order.filled_qty = before + qty
        order.filled_avg_price = price if not before else (order.filled_avg_price * before + price * qty) / order.filled_qty
        order.updated_ns = t_ns
        self.fills.append(Fill(order.id, order.symbol, order.side, qty, price, t_ns))
        self._activity(t_ns, {
            "activity_type": "FILL", "cum_qty": decimal_str(order.filled_qty),
            "leaves_qty": decimal_str(max(0.0, order.qty - order.filled_qty)), "price": decimal_str(price),
            "qty": decimal_str(qty), "side": order.side, "symbol": order.symbol,
            "transaction_time": rfc3339(t_ns), "order_id": order.id,
            "type": "fill" if order.filled_qty >= order.qty - 1e-9 else "partial_fill",
        })
        self._apply(order.symbol, order.asset_class, order.side, qty, price)
        if order.filled_qty < order.qty - 1e-9:
            order.status = "partially_filled"
            return
        order.filled_ns = t_ns
        order.status = "filled"
        for leg in order.legs:  # bracket: the exit legs go live from the next bar
            leg.status = "new"
            leg.updated_ns = t_ns
            leg.active_from_ns = -(-t_ns // NS_MIN) * NS_MIN
        if order.parent is not None:  # OCO: the sibling leg is canceled
            for sib in order.parent.legs:
                if sib is not order and sib.is_open:
                    self._cancel(sib, t_ns)

    def _apply(self, symbol: str, asset_class: str, side: str, qty: float, price: float) -> None:
        mult = 100.0 if asset_class == "us_option" else 1.0
        signed = qty if side == "buy" else -qty
        self.cash -= signed * price * mult
        pos = self.positions.get(symbol)
        if pos is None:
            self.positions[symbol] = SimPosition(symbol, asset_class, signed, price)
            return
        new_qty = pos.qty + signed
        if abs(new_qty) < 1e-9:
            del self.positions[symbol]
        elif pos.qty * signed > 0:  # adding to the position
            pos.avg_entry_price = (pos.avg_entry_price * abs(pos.qty) + price * qty) / abs(new_qty)
            pos.qty = new_qty
        elif pos.qty * new_qty < 0:  # crossed through flat: the remainder opens at this price
            pos.qty, pos.avg_entry_price = new_qty, price
        else:
            pos.qty = new_qty

    def _cancel(self, order: Order, t_ns: int) -> None:
        order.status = "canceled"
        order.canceled_ns = t_ns
        order.updated_ns = t_ns
        for leg in order.legs:
            if leg.is_open:
                self._cancel(leg, t_ns)

    def cancel(self, order_id: str, now_ns: int) -> None:
        order = self.orders.get(order_id)
        if order is None:
            raise ApiError(404, "order not found", 40410000)
        if not order.is_open:
            raise unprocessable(f'order is already in "{order.status}" state')
        if self.async_cancels:
            for o in (order.parent.legs if order.parent is not None else [order]):
                if o.status == "held":  # a leg not yet live has nothing to wait for
                    self._cancel(o, now_ns)
                elif o.is_open:
                    o.status = "pending_cancel"
                    o.updated_ns = now_ns
            return
        if order.parent is not None:  # canceling one leg of a bracket cancels both
            for sib in order.parent.legs:
                if sib.is_open:
                    self._cancel(sib, now_ns)
        else:
            self._cancel(order, now_ns)

    def cancel_all(self, now_ns: int) -> list[Order]:
        out = []
        for o in self.working():
            if o.is_open and o.parent is None:
                self._cancel(o, now_ns)
                out.append(o)
        return out

    def close_position(self, symbol: str, qty: float | None, now_ns: int) -> Order:
        symbol = symbol.upper()
        pos = self.positions.get(symbol)
        if pos is None:
            raise ApiError(404, f"position not found: {symbol}", 40410000)
        # Orders working against the position would oversell it; Alpaca also cancels them.
        for o in self.working():
            if o.is_open and o.symbol == symbol and o.parent is None:
                self._cancel(o, now_ns)
            elif o.is_open and o.symbol == symbol:
                self.cancel(o.id, now_ns)
        amount = abs(pos.qty) if qty is None else float(qty)
        if not 0 < amount <= abs(pos.qty) + 1e-9:
            raise invalid(f"qty {qty!r} must be > 0 and <= the position's {abs(pos.qty):g}")
        side = "sell" if pos.qty > 0 else "buy"
        order = Order(
            id=self._new_id(), client_order_id=self._new_id(), symbol=symbol,
            asset_class=pos.asset_class, side=side, qty=amount, type="market",
            time_in_force="day", order_class="simple", created_ns=now_ns,
            position_intent="sell_to_close" if side == "sell" else "buy_to_close",
            active_from_ns=-(-now_ns // NS_MIN) * NS_MIN,
        )
        self._register(order)
        self._try_fill_on_arrival(order, now_ns)
        return order

    # ------------------------------------------------------------------ time
    def _has_work(self) -> bool:
        return bool(self.positions) or bool(self.working())

    def sync(self, now_ns: int) -> None:
        """Process everything between the last sync and ``now``, minute by minute."""
        last = self._last_ns
        if now_ns <= last:
            return
        if self._has_work():
            m = (last // NS_MIN + 1) * NS_MIN
            sched = self.schedule
            while m <= now_ns:
                if not sched.is_open(m - 1) and not sched.is_open(m):
                    # Nothing happens while the market is closed: jump to the next open.
                    i = sched.index_at_or_after(m)
                    if i >= len(sched.opens):
                        break
                    m = max(m, int(sched.opens[i]))
                    continue
                self._step_minute(m)
                m += NS_MIN
                if not self._has_work():
                    break
            if self.schedule.is_open(now_ns):
                for o in self.working():
                    if o.is_option and o.status != "held":
                        self._check_option_order(o, now_ns)
        # what was still pending_cancel when the clock moved is canceled now (fills first)
        for o in self.working():
            if o.status == "pending_cancel":
                self._cancel(o, now_ns)
        # last_equity is the equity at the latest close passed (Alpaca's "last_equity").
        i_last = self.schedule.index_at_or_after(last)
        i_now = self.schedule.index_at_or_after(now_ns)
        if i_now > i_last and not self._has_work():
            self.last_equity = self.cash
        self._last_ns = now_ns

    def _step_minute(self, m: int) -> None:
        """Events at the minute boundary ``m``: the bar [m-1min, m) is complete."""
        open_now = self.schedule.is_open(m - 1)  # the minute that just ended was in session
        j = self.tape.bar_starting(m - NS_MIN)
        for o in self.working():
            if not o.is_open or o.status == "held":
                continue
            if o.is_option:
                if self.schedule.is_open(m):
                    self._check_option_order(o, m)
            elif j >= 0 and open_now and o.active_from_ns <= m - NS_MIN:
                if o.parent is not None and o.parent.order_class == "bracket":
                    continue  # legs go together below (stop first, like the replay rules)
                self._check_share_order_on_bar(o, j, m)
        if j >= 0 and open_now:
            parents = {id(o.parent): o.parent for o in self.working() if o.parent is not None}
            for parent in parents.values():
                live = [leg for leg in parent.legs if leg.is_open and leg.active_from_ns <= m - NS_MIN]
                for leg in sorted(live, key=lambda leg: leg.type != "stop"):
                    if leg.is_open and self._check_share_order_on_bar(leg, j, m):
                        break
        i = self.schedule.index_at_or_after(m - 1)
        if i < len(self.schedule.closes):
            close = int(self.schedule.closes[i])
            if self.liquidation:
                for etf in (True, False):
                    if m == close - _LIQUIDATION_BEFORE_CLOSE_NS[etf]:
                        self._liquidate_expiring(self.schedule.dates[i], m, etf)
            if m == close:
                self._end_of_session(self.schedule.dates[i], m)

    def _liquidate_expiring(self, date: str, t_ns: int, broad_etf: bool) -> None:
        for pos in list(self.positions.values()):
            c = contract_of(pos.symbol)
            if c is None or c.expiration != date or (c.root.upper() in BROAD_BASED_ETFS) != broad_etf:
                continue
            for o in self.working():
                if o.is_open and o.symbol == pos.symbol:
                    self._cancel(o, t_ns)
            side = "sell" if pos.qty > 0 else "buy"
            order = Order(
                id=self._new_id(), client_order_id=f"liquidation-{self._new_id()[:8]}",
                symbol=pos.symbol, asset_class="us_option", side=side, qty=abs(pos.qty),
                type="market", time_in_force="day", order_class="simple", created_ns=t_ns,
                position_intent="sell_to_close" if side == "sell" else "buy_to_close",
            )
            self._register(order)
            q = self.option_quote(c, t_ns)
            self._fill(order, q["bid"] if side == "sell" else q["ask"], t_ns)

    def _end_of_session(self, date: str, t_ns: int) -> None:
        for o in self.working():
            if o.time_in_force == "day":
                o.status = "expired"
                o.expired_ns = t_ns
                o.updated_ns = t_ns
        # Anything still held in today's expiration is settled as Alpaca does: exercised
        # (long) or assigned (short) into shares when ITM by >= $0.01, else expired.
        spot = self.tape.price_at(t_ns)
        for pos in list(self.positions.values()):
            c = contract_of(pos.symbol)
            if c is not None and c.expiration <= date:
                self._settle(pos, c, spot, date, t_ns)
        self.last_equity = self.equity(t_ns)

    def _settle(self, pos: SimPosition, c: Contract, spot: float, date: str, t_ns: int) -> None:
        """Physical settlement of one expiring option position at the close."""
        itm = (spot - c.strike) if c.right == "C" else (c.strike - spot)
        del self.positions[pos.symbol]
        contracts = abs(pos.qty)
        long = pos.qty > 0
        if itm < _EXERCISE_THRESHOLD or c.root != self.tape.symbol:
            self._activity(t_ns, {"activity_type": "OPEXP", "date": date, "net_amount": "0",
                                  "description": "Option Expiry", "symbol": c.symbol,
                                  "qty": decimal_str(-pos.qty), "status": "executed"})
            return
        # a long call (short put) buys the shares at the strike; a long put (short call) sells them
        buys = (c.right == "C") == long
        shares = contracts * 100.0
        self._activity(t_ns, {"activity_type": "OPEXC" if long else "OPASN", "date": date, "net_amount": "0",
                              "description": "Option Exercise" if long else "Option Assignment",
                              "symbol": c.symbol, "qty": decimal_str(-pos.qty), "status": "executed"})
        self._apply(c.root, "us_equity", "buy" if buys else "sell", shares, c.strike)
        self._activity(t_ns, {"activity_type": "OPTRD", "date": date,
                              "net_amount": decimal_str(round((-1 if buys else 1) * shares * c.strike, 2)),
                              "description": "Option Trade", "symbol": c.root,
                              "qty": decimal_str(shares if buys else -shares), "price": decimal_str(c.strike),
                              "status": "executed"})

    def _activity(self, t_ns: int, fields: dict) -> None:
        """Record an account activity; ``id`` is Alpaca's ``<time>::<uuid>`` (a page token)."""
        stamp = to_et(t_ns).tz_convert("UTC").strftime("%Y%m%d%H%M%S%f")[:17]
        self.activities.append({"id": f"{stamp}::{self._new_id()}", **fields, "_ns": t_ns})

    def activities_json(self, types: set[str] | None, after_ns: int | None, until_ns: int | None,
                        date: str | None, descending: bool, page_size: int, page_token: str | None) -> list[dict]:
        """GET /v2/account/activities: newest first unless ``descending`` is False."""
        rows = [a for a in self.activities
                if (types is None or a["activity_type"] in types)
                and (after_ns is None or a["_ns"] > after_ns)
                and (until_ns is None or a["_ns"] <= until_ns)
                and (date is None or to_et(a["_ns"]).strftime("%Y-%m-%d") == date)]
        if descending:
            rows = rows[::-1]
        if page_token:
            ids = [a["id"] for a in rows]
            rows = rows[ids.index(page_token) + 1:] if page_token in ids else []
        return [{k: v for k, v in a.items() if k != "_ns"} for a in rows[:page_size]]
