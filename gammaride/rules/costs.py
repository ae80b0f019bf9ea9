"""The cost of an option round trip: fees, the bid-ask spread and slippage. One model for
replay and for the report, so every P&L shown is net and its gross stands beside it.

- **Fees**: what the broker passes through per contract and per side (regulatory and
  clearing fees; Alpaca charges no commission on options). Setting
  ``option_fee_per_contract`` (default $0.03).
- **Spread**: a buy pays half the bid-ask spread above the mid, a sell receives half
  below it. The width comes from a quote where one is known, else the setting
  ``option_spread`` ($ per share, default $0.03: near-the-money SPY 0DTE options quote
  one to three cents wide).
- **Slippage**: a further ``option_slippage`` per share and per side (default $0.01),
  the price a marketable order gives up beyond the quote.

A premium never goes below zero: a sell of an option whose mid is under the half spread
plus slippage receives nothing, and its spread and slippage are cut to what it had.
Pure functions over arrays; amounts in dollars, premiums per share (x100 per contract).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gammaride.config import Settings

MULTIPLIER = 100.0  # shares per equity option contract


@dataclass(frozen=True)
class CostModel:
    fee_per_contract: float = 0.03  # $ per contract per side
    spread: float = 0.03  # $ per share, full bid-ask width, where no quote is known
    slippage: float = 0.01  # $ per share per side

    def __post_init__(self) -> None:
        for name in ("fee_per_contract", "spread", "slippage"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"cost {name}={value!r} must be a finite number >= 0")

    @classmethod
    def from_settings(cls, settings: Settings) -> CostModel:
        return cls(
            fee_per_contract=settings.option_fee_per_contract,
            spread=settings.option_spread,
            slippage=settings.option_slippage,
        )

    def describe(self) -> str:
        return (
            f"fees ${self.fee_per_contract:.2f}/contract/side, spread ${self.spread:.2f}/share, "
            f"slippage ${self.slippage:.2f}/share/side"
        )


@dataclass(frozen=True)
class RoundTrip:
    """Per trade: premiums paid and received (per share) and the dollar breakdown.
    ``net_usd == gross_usd - fees_usd - spread_usd - slippage_usd`` holds exactly."""

    entry_premium: np.ndarray
    exit_premium: np.ndarray
    gross_usd: np.ndarray
    fees_usd: np.ndarray
    spread_usd: np.ndarray
    slippage_usd: np.ndarray
    net_usd: np.ndarray


def round_trip(
    entry_mid: np.ndarray,
    exit_mid: np.ndarray,
    contracts: np.ndarray,
    model: CostModel,
    spread: np.ndarray | float | None = None,
) -> RoundTrip:
    """Buy at the entry mid plus half the spread plus slippage, sell at the exit mid minus
    the same (never below zero); gross is the mid-to-mid P&L. ``spread``: quoted widths
    per trade where known (NaN falls back to the model's)."""
    entry_mid = np.asarray(entry_mid, dtype=float)
    exit_mid = np.asarray(exit_mid, dtype=float)
    n = np.asarray(contracts, dtype=float)
    width = np.full(entry_mid.shape, model.spread) if spread is None else np.asarray(spread, dtype=float)
    width = np.where(np.isfinite(width), width, model.spread)
    half, slip = width / 2.0, model.slippage
    entry_premium = entry_mid + half + slip
    # the exit side gives up at most the whole mid; what it gives up splits pro rata
    exit_cost = np.minimum(half + slip, np.maximum(exit_mid, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        exit_share = np.where(half + slip > 0, exit_cost / (half + slip), 0.0)
    exit_premium = exit_mid - exit_cost
    size = MULTIPLIER * n
    spread_usd = (half + half * exit_share) * size
    slippage_usd = (slip + slip * exit_share) * size
    fees_usd = 2.0 * model.fee_per_contract * n
    gross_usd = (exit_mid - entry_mid) * size
    return _trip(entry_premium, exit_premium, gross_usd, fees_usd, spread_usd, slippage_usd)


def estimated_costs(gross_usd: np.ndarray, contracts: np.ndarray, model: CostModel) -> RoundTrip:
    """Costs of a round trip whose P&L is only estimated (no premiums known): the model's
    full spread, slippage on both sides and fees, taken from the estimated gross."""
    gross_usd = np.asarray(gross_usd, dtype=float)
    n = np.asarray(contracts, dtype=float)
    size = MULTIPLIER * n
    spread_usd = model.spread * size
    slippage_usd = 2.0 * model.slippage * size
    fees_usd = 2.0 * model.fee_per_contract * n
    nan = np.full(gross_usd.shape, np.nan)
    return _trip(nan, nan, gross_usd, fees_usd, spread_usd, slippage_usd)


def _trip(entry_premium, exit_premium, gross_usd, fees_usd, spread_usd, slippage_usd) -> RoundTrip:
    """A round trip whose net is its gross less each cost: the one place that subtracts."""
    return RoundTrip(
        entry_premium=entry_premium,
        exit_premium=exit_premium,
        gross_usd=gross_usd,
        fees_usd=fees_usd,
        spread_usd=spread_usd,
        slippage_usd=slippage_usd,
        net_usd=gross_usd - fees_usd - spread_usd - slippage_usd,
    )
