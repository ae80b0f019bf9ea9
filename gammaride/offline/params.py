"""What the offline server is built from, beyond the bars and the clock, in five groups:
the option chain it lists, the account it starts with, the broker behaviours and the
market-data plan it rehearses, and how clients reach it. Each group checks its own
values, so a bad one fails with its fix before a socket is opened (docs/server.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gammaride.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_KEY_ID = "PKTEST00000000000000"
DEFAULT_SECRET_KEY = "offline-secret-0000000000000000000000000"
CONTRACT_SETS = ("none", "otm", "all")


@dataclass(frozen=True, eq=False)
class OptionChain:
    """The listed chain and how it is priced: Black-Scholes at ``iv`` (a constant or a
    ``pd.Series`` of IV indexed by time) and ``rate``; strikes every ``strike_step``
    dollars, ``strikes_each_side`` of the money, ``expirations`` daily expirations."""

    iv: float | pd.Series = 0.20
    rate: float = 0.0
    strike_step: float = 1.0
    strikes_each_side: int = 10
    expirations: int = 5

    def __post_init__(self) -> None:
        if not (self.strike_step > 0 and self.strikes_each_side >= 0 and self.expirations >= 1):
            raise ConfigError(
                f"option chain of strike_step={self.strike_step!r}, strikes_each_side={self.strikes_each_side!r}, "
                f"expirations={self.expirations!r}: give a positive step, >= 0 strikes and >= 1 expiration"
            )


@dataclass(frozen=True)
class SimAccount:
    """The account at the start: ``equity`` in cash, and ``foreign_holdings``, positions
    held outside gammaride, each ``{"symbol", "asset_class", "qty", "price"}`` in any asset
    class (listed by /v2/positions with a filled buy in /v2/orders)."""

    equity: float = 100_000.0
    foreign_holdings: tuple[dict, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "foreign_holdings", tuple(_holding(h) for h in self.foreign_holdings))


@dataclass(frozen=True)
class BrokerBehaviour:
    """Alpaca behaviours to rehearse: single-leg option stops taken (``option_stops``, since
    2026-08); cancels that leave an order ``pending_cancel`` until the clock moves
    (``async_cancels``); at most ``partial_fill_max`` contracts of an option limit or stop
    filled per check (None: whole orders); expiring positions liquidated before the close
    (``liquidation``)."""

    option_stops: bool = True
    async_cancels: bool = False
    partial_fill_max: int | None = None
    liquidation: bool = True


@dataclass(frozen=True)
class DataPlan:
    """The market-data plan and how its option snapshots look: ``subscription`` "basic"
    (free: IEX, indicative option quotes, no SIP of the last 15 minutes, no OPRA) or "plus"
    (SIP and OPRA in real time); ``missing_iv`` contracts ("none", "otm", "all") without IV
    and greeks; ``one_sided`` contracts quoted without a bid; quotes stamped
    ``quote_age_seconds`` old; indicative quotes ``indicative_skew`` dollars inside the
    market that fills, each side."""

    subscription: str = "basic"
    missing_iv: str = "none"
    one_sided: str = "none"
    quote_age_seconds: float = 0.0
    indicative_skew: float = 0.0

    def __post_init__(self) -> None:
        for name, options in (("subscription", ("basic", "plus")), ("missing_iv", CONTRACT_SETS),
                              ("one_sided", CONTRACT_SETS)):
            if getattr(self, name) not in options:
                raise ConfigError(f"{name}={getattr(self, name)!r}: give one of {', '.join(options)}")
        if not self.quote_age_seconds >= 0:
            raise ConfigError(f"quote_age_seconds={self.quote_age_seconds!r}: give seconds >= 0")
        if not self.indicative_skew >= 0:
            raise ConfigError(f"indicative_skew={self.indicative_skew!r}: give dollars >= 0")

    @property
    def quote_age_ns(self) -> int:
        return int(float(self.quote_age_seconds) * 1e9)


@dataclass(frozen=True)
class Access:
    """The keys the server accepts and the address it listens on (port 0: any free port).
    The secret is left out of the repr."""

    key_id: str = DEFAULT_KEY_ID
    secret_key: str = field(default=DEFAULT_SECRET_KEY, repr=False)
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        if not self.key_id or not self.secret_key:
            raise ConfigError("key_id and secret_key must be non-empty strings")


def _holding(h: dict) -> dict:
    try:
        return {"symbol": str(h["symbol"]).upper(), "asset_class": str(h["asset_class"]),
                "qty": float(h["qty"]), "price": float(h["price"])}
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"foreign holding {h!r}: give symbol, asset_class, qty and price, e.g. "
            '{"symbol": "912797LB1", "asset_class": "treasury", "qty": 10, "price": 98.5}'
        ) from None
