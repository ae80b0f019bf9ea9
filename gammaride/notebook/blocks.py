"""The notebook's building blocks (seed Part K): ``check_conditions``, ``calculate_setup``
and ``submit_order`` on a ``gammaride.connection.connect()``, each returning the plain
mapping DESIGN.md promises, so a Colab cell can print or inspect it.

    conn = connect()                      # keys from env/Colab secrets; none: offline server
    cond = check_conditions(conn)
    setup = calculate_setup(conn, cond)
    order = submit_order(conn, cond, setup, dry_run=True)
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from gammaride.config import ET
from gammaride.connection import Connection
from gammaride.errors import BrokerError
from gammaride.journal import Journal
from gammaride.rules import setup as rules
from gammaride.rules.contracts import choose_contract, marketable_limit
from gammaride.rules.gamma import gate_block
from gammaride.rules.setup import ExitPolicy
from gammaride.scanner.broker import OrderSpec
from gammaride.scanner.gamma_source import GammaSource
from gammaride.scanner.orders import (
    cancel_and_settle,
    client_order_id,
    order_row,
    submit_idempotent,
    wait_for_fill,
)


def check_conditions(
    conn: Connection, journal: Journal | None = None, iv_percentile: float | None = None
) -> dict[str, Any]:
    """The entry gates now: ``in_window``, ``vol_spike``, ``direction``, ``bars`` (last 20),
    ``avg_volume``, ``current_volume``, ``iv_percentile`` (0-1), plus ``signal``,
    ``skip_reason``, ``atr``, ``price``, ``decision_time``, ``iv_source``."""
    from gammaride.rules.signals import compute_signals

    journal = journal or conn.journal or Journal(":memory:")
    market = conn.market(journal, iv_percentile)
    gamma_source = GammaSource(conn.broker, conn.settings, on_error=market.on_error)
    mc = conn.broker.clock()
    conn.clock.sync(mc.timestamp)
    now = mc.timestamp
    bars = market.fetch_bars(now)
    if bars.empty:
        return {"in_window": False, "vol_spike": False, "direction": None, "bars": bars,
                "avg_volume": float("nan"), "current_volume": float("nan"),
                "iv_percentile": float("nan"), "signal": False, "skip_reason": "no data",
                "market_open": mc.is_open, "now": now}
    price = float(bars["close"].iloc[-1])
    info: dict = {}
    chain = market.chain(now, price, info)
    iv, ivp, source = market.iv_now(now, price, chain)
    gamma = gamma_source.measure(now, price)  # dealer gamma: regime, net exposure, zero-gamma level
    last = compute_signals(bars.iloc[-400:], conn.settings, ivp).iloc[-1]
    text = {k: (last[k] if isinstance(last[k], str) else None) for k in ("direction", "skip_reason")}
    age = (now - (bars.index[-1] + pd.Timedelta(minutes=1))).total_seconds() / 60
    stale = age > conn.settings.stale_after_minutes
    gated = gate_block(conn.settings.gamma_gate, gamma) if last["signal"] else None
    return {
        "in_window": bool(last["in_window"]),
        "vol_spike": bool(last["vol_spike"]),
        "direction": text["direction"],
        "bars": bars.iloc[-20:],
        "avg_volume": float(last["avg_volume"]),
        "current_volume": float(last["volume"]),
        "price_change": float(last["price_change"]),
        "stale": stale,
        "iv_percentile": float(ivp) if ivp is not None else float("nan"),
        "iv": float(iv),
        "iv_source": source,
        "atr": float(last["atr"]),
        "price": price,
        "decision_time": bars.index[-1] + pd.Timedelta(minutes=1),
        "signal": bool(last["signal"]) and mc.is_open and not stale and not gated,
        "skip_reason": ("market closed" if not mc.is_open else
                        f"stale data ({age:.1f} min old)" if stale else gated or text["skip_reason"]),
        "market_open": mc.is_open,
        "now": now,
        "chain": chain,
        "gamma": gamma,
    }


def calculate_setup(
    conn: Connection, conditions: dict[str, Any], policy: ExitPolicy | None = None,
    equity: float | None = None,
) -> dict[str, Any]:
    """``entry``, ``tp``, ``sl``, ``atr``, ``contracts``, ``iv_multiplier`` (0.8/1.0/1.5),
    ``phase``, ``tp_mult``, ``sl_mult`` for the conditions' direction, sized as the
    scanner sizes (:func:`gammaride.rules.setup.calculate_setup`): capped by
    ``max_contracts`` and by what the options buying power pays for the contract
    ``submit_order`` would buy, at its marketable limit (``contract``, ``premium``,
    ``buying_power``, ``affordable``, ``bp_capped``). ``contracts`` is 0 when the buying
    power cannot pay for one contract."""
    s = conn.settings
    direction = conditions.get("direction") or "call"
    buying_power = None
    if equity is None:
        try:
            acct = conn.broker.account()
            equity, buying_power = acct.equity, acct.options_buying_power
        except BrokerError:
            equity = s.starting_equity
    contract, premium = _contract_and_limit(conn, conditions, direction)
    setup = rules.calculate_setup(direction, float(conditions["price"]), float(conditions["atr"]),
                        conditions.get("iv_percentile"), equity, s, policy,
                        buying_power=buying_power, premium=premium)
    return {**setup.as_dict(), "contract": contract}


def _contract_and_limit(conn: Connection, conditions: dict[str, Any], direction: str) -> tuple[str | None, float | None]:
    """The contract ``submit_order`` would buy and its marketable limit (None, None without one)."""
    chain = conditions.get("chain")
    if chain is None or "decision_time" not in conditions:
        return None, None
    choice, _ = choose_contract(chain, direction, float(conditions["price"]), conditions["decision_time"],
                                conn.settings)
    if choice is None:
        return None, None
    return choice.symbol, float(marketable_limit("buy", choice.bid, choice.ask, root=conn.settings.symbol))


_sim_counter = 0


def submit_order(
    conn: Connection, conditions: dict[str, Any], setup: dict[str, Any], dry_run: bool = True,
    journal: Journal | None = None,
) -> dict[str, Any]:
    """Buy the chosen contract with a marketable DAY limit order (idempotent client id).

    Returns ``status`` ('paper'|'live'|'error'), ``order_id`` (broker id, or
    ``PAPER_SIM_###`` when nothing was sent), ``timestamp``, ``contracts``, and
    ``contract``/``message``/``trade_id``. ``dry_run`` (the default) sends nothing.

    With a ``journal``, a filled entry is journaled as an open trade with its TP, SL and
    hard stop, so the next scanner run adopts the position and exits it by the rules
    (gammaride is the OCO: Alpaca has no brackets for options).
    """
    global _sim_counter
    now = datetime.now(timezone.utc)
    status = "live" if conn.mode == "live" else "paper"
    chain = conditions.get("chain")
    direction = setup.get("direction") or conditions.get("direction")
    if direction not in ("call", "put"):
        return {"status": "error", "order_id": None, "timestamp": now, "contracts": 0,
                "message": "no direction: there is no signal to trade"}
    if int(setup.get("contracts") or 0) < 1:
        return {"status": "error", "order_id": None, "timestamp": now, "contracts": 0,
                "message": "no contracts: the options buying power cannot pay for one (Block 4)"}
    choice, why = (choose_contract(chain, direction, setup["entry"], conditions["decision_time"], conn.settings)
                   if chain is not None else (None, "no option chain"))
    if choice is None:
        return {"status": "error", "order_id": None, "timestamp": now, "contracts": 0, "message": why}
    if dry_run:
        _sim_counter += 1
        return {"status": "paper", "order_id": f"PAPER_SIM_{_sim_counter:03d}", "timestamp": now,
                "contracts": int(setup["contracts"]), "contract": choice.symbol,
                "message": f"dry run: would buy {setup['contracts']} {choice.symbol} at ${choice.ask:.2f}"}
    cid = client_order_id(conn.settings.symbol, conditions["decision_time"], direction)
    spec = OrderSpec(choice.symbol, int(setup["contracts"]), "buy", "limit",
                     limit_price=marketable_limit("buy", choice.bid, choice.ask, root=conn.settings.symbol), client_order_id=cid)
    try:
        order = submit_idempotent(conn.broker, spec)
        order = wait_for_fill(conn.broker, order, conn.clock, conn.settings.entry_timeout_seconds)
        if not order.is_filled:
            # an unfilled entry left working could fill later with nothing journaling or
            # watching it: cancel, and keep what filled before the cancel took
            order = cancel_and_settle(conn.broker, order, clock=conn.clock)
    except BrokerError as exc:
        return {"status": "error", "order_id": None, "timestamp": now, "contracts": 0, "message": str(exc)}
    trade_id = None
    if journal is not None and order.filled_qty:
        trade_id = _journal_entry(conn, journal, conditions, setup, choice, order)
    return {"status": status, "order_id": order.id, "timestamp": order.submitted_at or now,
            "contracts": int(order.filled_qty or 0), "contract": choice.symbol, "order_status": order.status,
            "message": f"{order.status}: {order.filled_qty:g} of {order.qty:g} {choice.symbol}",
            "trade_id": trade_id}


def _journal_entry(conn: Connection, journal: Journal, conditions: dict[str, Any], setup: dict[str, Any],
                   choice: Any, order: Any) -> int:
    """The filled entry as an open trade (in a run of its own) that a scanner adopts."""
    s = conn.settings
    decision = pd.Timestamp(conditions["decision_time"]).tz_convert(ET)
    hard_stop = decision.normalize() + pd.Timedelta(minutes=int(choice.hard_stop_min))
    with journal.transaction():
        run_id = journal.start_run(conn.mode, s.symbol, instrument="options", source="submit_order block",
                                   phase=setup.get("phase"), settings=s.as_dict())
        trade_id = journal.next_trade_id()
        journal.write_trade({
            "trade_id": trade_id, "run_id": run_id, "symbol": s.symbol, "instrument": "options",
            "contract_symbol": choice.symbol, "direction": setup["direction"], "status": "open",
            "entry_time": decision, "entry_price": float(setup["entry"]), "hard_stop_time": hard_stop,
            "atr": float(setup["atr"]), "tp": float(setup["tp"]), "sl": float(setup["sl"]),
            "tp_mult": float(setup["tp_mult"]), "sl_mult": float(setup["sl_mult"]),
            "phase": setup.get("phase"), "atr_bucket": setup.get("atr_bucket"),
            "iv_percentile": conditions.get("iv_percentile"), "contracts": int(order.filled_qty),
            "entry_premium": float(order.filled_avg_price), "client_order_id": order.client_order_id,
        })
        journal.write_order(order_row(order, run_id, trade_id, "entry"))
        journal.write_fill({"order_id": order.id, "run_id": run_id, "trade_id": trade_id,
                            "symbol": order.symbol, "side": order.side, "qty": float(order.filled_qty),
                            "price": float(order.filled_avg_price),
                            "filled_at": order.filled_at or conn.clock.now()})
        journal.finish_run(run_id, "completed", {"entries": 1, "trade_id": trade_id})
    return trade_id


def live_confirmed(interactive: bool, env: dict[str, str] | None = None, ask=input) -> bool:
    """Live trading needs an explicit yes: typed, or GAMMARIDE_LIVE_CONFIRM=yes when no one
    is at the keyboard."""
    env = os.environ if env is None else env
    if interactive:
        answer = ask("Trade REAL money on the live account? Type 'yes' to continue: ")
        return answer.strip().lower() == "yes"
    return env.get("GAMMARIDE_LIVE_CONFIRM", "").strip().lower() == "yes"
