"""Trade setup: exit levels (Phase 1 or 2), IV multiplier and position size. Pure, vectorized."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gammaride.config import Settings

PHASE1_SOURCE = "Phase 1 defaults"


@dataclass(frozen=True)
class ExitPolicy:
    """TP/SL multipliers (in ATRs) by ATR bucket.

    ``edges`` are ascending ATR values between buckets (``len(edges) + 1`` buckets);
    bucket ``i`` holds ``edges[i-1] <= atr < edges[i]``. Phase 1 is one bucket.
    """

    phase: int
    edges: tuple[float, ...]
    tp_mults: tuple[float, ...]
    sl_mults: tuple[float, ...]
    labels: tuple[str, ...]
    source: str = PHASE1_SOURCE
    fitted_at: str | None = None
    n_trades: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        k = len(self.edges) + 1
        if not (len(self.tp_mults) == len(self.sl_mults) == len(self.labels) == k):
            raise ValueError(
                f"ExitPolicy needs {k} multipliers and labels for {len(self.edges)} edges; "
                f"got tp={len(self.tp_mults)}, sl={len(self.sl_mults)}, labels={len(self.labels)}"
            )
        if list(self.edges) != sorted(self.edges):
            raise ValueError(f"ExitPolicy edges {self.edges} must be ascending")

    @classmethod
    def phase1(cls, settings: Settings) -> ExitPolicy:
        return cls(1, (), (settings.tp_mult,), (settings.sl_mult,), ("all",))

    def bucket_index(self, atr: np.ndarray | float) -> np.ndarray:
        return np.searchsorted(np.asarray(self.edges, dtype=float), np.asarray(atr, dtype=float), side="right")

    def lookup(self, atr: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tp_mult, sl_mult, bucket label) for each ATR."""
        i = self.bucket_index(atr)
        return (
            np.asarray(self.tp_mults, dtype=float)[i],
            np.asarray(self.sl_mults, dtype=float)[i],
            np.asarray(self.labels, dtype=object)[i],
        )

    def describe(self) -> str:
        if self.phase == 1:
            return f"Phase 1 exits: TP {self.tp_mults[0]:g} ATR, SL {self.sl_mults[0]:g} ATR"
        parts = ", ".join(
            f"{lab} {tp:g}/{sl:g}" for lab, tp, sl in zip(self.labels, self.tp_mults, self.sl_mults, strict=True)
        )
        fitted = f", fitted {self.fitted_at}" if self.fitted_at else ""
        n = f" from {self.n_trades} trades" if self.n_trades else ""
        return f"Phase 2 exits ({self.source}{fitted}{n}): {parts}"


def direction_sign(direction: np.ndarray | str) -> np.ndarray:
    """+1 for 'call' (long the underlying), -1 for 'put', 0 otherwise."""
    d = np.asarray(direction, dtype=object)
    return np.where(d == "call", 1, np.where(d == "put", -1, 0))


def exit_levels(
    direction: np.ndarray | str,
    entry: np.ndarray | float,
    atr: np.ndarray | float,
    tp_mult: np.ndarray | float,
    sl_mult: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray]:
    """Call: TP = entry + tp*ATR, SL = entry - sl*ATR. Put mirrored."""
    sign = direction_sign(direction)
    entry = np.asarray(entry, dtype=float)
    atr = np.asarray(atr, dtype=float)
    tp = entry + sign * np.asarray(tp_mult, dtype=float) * atr
    sl = entry - sign * np.asarray(sl_mult, dtype=float) * atr
    return tp, sl


def iv_multiplier(iv_percentile: np.ndarray | float, settings: Settings) -> np.ndarray:
    """0.8 below 0.30, 1.0 for 0.30-0.50, 1.5 above 0.50 (defaults). Unknown IV: 1.0."""
    iv = np.asarray(iv_percentile, dtype=float)
    return np.where(
        ~np.isfinite(iv),
        settings.iv_mult_mid,
        np.where(
            iv < settings.iv_threshold,
            settings.iv_mult_low,
            np.where(iv > settings.iv_band_high, settings.iv_mult_high, settings.iv_mult_mid),
        ),
    )


def position_size(
    equity: np.ndarray | float,
    atr: np.ndarray | float,
    iv_mult: np.ndarray | float,
    settings: Settings,
    buying_power: float | None = None,
    premium: float | None = None,
) -> np.ndarray:
    """``max(1, floor((equity * 1%) / (ATR * 100) * iv_mult))``, capped by max_contracts
    and, when given, by what the options buying power pays for at ``premium`` a share.
    Returns 0 only when buying power cannot pay for one contract.
    """
    base = np.asarray(equity, dtype=float) * settings.risk_per_trade / (np.asarray(atr, dtype=float) * 100.0)
    raw = np.floor(base * np.asarray(iv_mult, dtype=float))
    contracts = np.minimum(np.maximum(1, np.where(np.isnan(raw), 1.0, raw)), settings.max_contracts)
    if buying_power is not None and premium is not None and premium > 0:
        affordable = np.floor(buying_power / (premium * 100.0))
        contracts = np.minimum(contracts, np.maximum(affordable, 0))
    return contracts.astype(np.int64)
