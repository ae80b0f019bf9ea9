"""Order, position and error records of the offline broker, in Alpaca's JSON shapes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gammaride.offline.market import rfc3339
from gammaride.offline.options import contract_id

# pending_cancel: asked to cancel, not yet done (async_cancels) - it can still fill, and
# its quantity stays reserved
OPEN_STATUSES = frozenset({"new", "accepted", "held", "partially_filled", "pending_new", "pending_cancel"})


class ApiError(Exception):
    """An HTTP error answer shaped like Alpaca's: status code and JSON body."""

    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict = {"code": code, "message": message} if code is not None else {"message": message}


def invalid(message: str) -> ApiError:
    return ApiError(422, message, 40010001)


def unprocessable(message: str) -> ApiError:
    return ApiError(422, message, 42210000)


def decimal_str(x: float | None) -> str | None:
    """Money and quantities as Alpaca sends them: decimal strings."""
    if x is None:
        return None
    x = round(float(x), 6)
    return str(int(x)) if x.is_integer() else repr(x)


def check_tick(root: str, price: float | None, name: str) -> None:
    """Alpaca's option price increments (one rule: gammaride.rules.contracts)."""
    from gammaride.rules.contracts import on_tick, price_increment

    if price is not None and not on_tick(price, root):
        tick = price_increment(root, price)
        raise ApiError(422, f"invalid {name} {decimal_str(price)}: {root} options at this price trade in "
                       f"${tick:.2f} increments", 42210000)


def parse_price(body: dict, key: str, required: bool) -> float | None:
    raw = body.get(key)
    if raw is None or raw == "":
        if required:
            raise invalid(f"{key} is required")
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise invalid(f"invalid {key}: {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise invalid(f"{key} must be > 0")
    return value


@dataclass
class Order:
    id: str
    client_order_id: str
    symbol: str
    asset_class: str  # 'us_equity' | 'us_option'
    side: str
    qty: float
    type: str
    time_in_force: str
    order_class: str
    created_ns: int
    limit_price: float | None = None
    stop_price: float | None = None
    status: str = "new"
    updated_ns: int = 0
    filled_ns: int | None = None
    canceled_ns: int | None = None
    expired_ns: int | None = None
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    position_intent: str | None = None
    legs: list[Order] = field(default_factory=list)
    parent: Order | None = None
    # Share orders fill against bars starting at or after this time (no look-back fills).
    active_from_ns: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_option(self) -> bool:
        return self.asset_class == "us_option"

    def to_json(self, nested: bool = False) -> dict:
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": rfc3339(self.created_ns),
            "updated_at": rfc3339(self.updated_ns or self.created_ns),
            "submitted_at": rfc3339(self.created_ns),
            "filled_at": rfc3339(self.filled_ns),
            "expired_at": rfc3339(self.expired_ns),
            "canceled_at": rfc3339(self.canceled_ns),
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": contract_id(self.symbol),
            "symbol": self.symbol,
            "asset_class": self.asset_class,
            "notional": None,
            "qty": decimal_str(self.qty),
            "filled_qty": decimal_str(self.filled_qty),
            "filled_avg_price": decimal_str(self.filled_avg_price),
            "order_class": self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": self.position_intent,
            "time_in_force": self.time_in_force,
            "limit_price": decimal_str(self.limit_price),
            "stop_price": decimal_str(self.stop_price),
            "status": self.status,
            "extended_hours": False,
            "legs": [leg.to_json() for leg in self.legs] if (nested and self.legs) else None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
            "expires_at": None,
        }


@dataclass
class SimPosition:
    symbol: str
    asset_class: str
    qty: float  # signed: negative is short
    avg_entry_price: float


@dataclass
class Fill:
    """One execution, for the request log and tests."""

    order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    time_ns: int
