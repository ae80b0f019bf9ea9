"""Trade setup: exit levels (Phase 1 or 2), IV multiplier and position size, and the one
:func:`calculate_setup` that puts them together for the scanner, the notebook and replay.
Pure. Exit levels and the policy lookup are vectorized (replay takes every signal at
once); sizing is per trade, since each trade's equity follows from the trades before it."""

from __future__ import annotations

import dataclasses
import math
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


def iv_multiplier(iv_percentile: np.ndarray | float | None, settings: Settings) -> np.ndarray | float:
    """0.8 below 0.30, 1.0 for 0.30-0.50, 1.5 above 0.50 (defaults). Unknown IV: 1.0.
    One IV gives a float, an array of them an array."""
    if np.ndim(iv_percentile):
        return np.array([iv_multiplier(v, settings) for v in np.asarray(iv_percentile, dtype=float).ravel()])
    iv = float("nan") if iv_percentile is None else float(iv_percentile)
    if not math.isfinite(iv):
        return settings.iv_mult_mid
    if iv < settings.iv_threshold:
        return settings.iv_mult_low
    return settings.iv_mult_high if iv > settings.iv_band_high else settings.iv_mult_mid


def uncapped_size(equity: float, atr: float, iv_mult: float, settings: Settings) -> float:
    """The sizing rule alone: ``max(1, floor((equity * 1%) / (ATR * 100) * iv_mult))``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        base = np.float64(equity) * settings.risk_per_trade / (np.float64(atr) * 100.0)
        raw = np.floor(base * np.float64(iv_mult))
    return 1.0 if np.isnan(raw) else float(max(1.0, raw))


def capped_size(sized: float, settings: Settings, buying_power: float | None = None,
                premium: float | None = None) -> int:
    """``sized`` capped by max_contracts and, when given, by the buying power at ``premium``;
    0 only when the buying power cannot pay for one contract."""
    contracts = min(sized, settings.max_contracts)
    if buying_power is not None and premium is not None and premium > 0:
        contracts = min(contracts, affordable_contracts(buying_power, premium))
    return int(contracts)


def position_size(equity: float, atr: float, iv_mult: float, settings: Settings,
                  buying_power: float | None = None, premium: float | None = None) -> int:
    """``max(1, floor((equity * 1%) / (ATR * 100) * iv_mult))``, capped by max_contracts
    and, when given, by what the options buying power pays for at ``premium`` a share.
    Returns 0 only when buying power cannot pay for one contract.
    """
    return capped_size(uncapped_size(equity, atr, iv_mult, settings), settings, buying_power, premium)


def affordable_contracts(buying_power: float, premium: float) -> int:
    """Whole contracts ``buying_power`` pays for at ``premium`` a share (100 shares each)."""
    return int(max(np.floor(buying_power / (premium * 100.0)), 0))


@dataclass(frozen=True)
class ExitPlan:
    """One trade's TP and SL levels (underlying prices) and the multipliers behind them."""

    tp: float
    sl: float
    tp_mult: float
    sl_mult: float
    atr_bucket: str
    phase: int


def exit_plan(direction: str, entry: float, atr: float, policy: ExitPolicy) -> ExitPlan:
    """TP/SL of one trade from the exit policy's multipliers for its ATR bucket."""
    tp_mult, sl_mult, bucket = (np.asarray(v, dtype=object).reshape(-1)[0] for v in policy.lookup(atr))
    tp, sl = exit_levels(direction, entry, atr, tp_mult, sl_mult)
    return ExitPlan(float(tp), float(sl), float(tp_mult), float(sl_mult), str(bucket), policy.phase)


@dataclass(frozen=True)
class Setup(ExitPlan):
    """One trade's setup: its exit plan (levels from the exit policy) and its size.

    ``sized_contracts`` is the sizing rule alone; ``contracts`` is what is bought, after
    ``max_contracts`` (``capped``) and, when a premium was given, after what the buying
    power pays for (``affordable``; ``bp_capped``). ``contracts`` is 0 only when the
    buying power cannot pay for one contract.
    """

    direction: str
    entry: float  # the underlying at the decision
    atr: float
    iv_multiplier: float
    equity: float
    sized_contracts: int
    max_contracts: int
    contracts: int
    capped: bool  # max_contracts cut the size
    buying_power: float | None = None
    premium: float | None = None  # the price a share the contracts are bought at
    affordable: int | None = None  # contracts the buying power pays for at ``premium``

    @property
    def bp_capped(self) -> bool:
        """The buying power, not the rule or max_contracts, set the size."""
        return self.affordable is not None and self.affordable < min(self.sized_contracts, self.max_contracts)

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "bp_capped": self.bp_capped}


def calculate_setup(
    direction: str,
    entry: float,
    atr: float,
    iv_percentile: float | None,
    equity: float,
    settings: Settings,
    policy: ExitPolicy | None = None,
    *,
    buying_power: float | None = None,
    premium: float | None = None,
    plan: ExitPlan | None = None,
) -> Setup:
    """The setup of a ``direction`` trade decided at ``entry`` with this ``atr``: TP/SL
    from ``policy`` (Phase 1 by default), contracts from 1% of ``equity`` per ATR move
    times the IV multiplier, capped by ``max_contracts`` and, with a ``premium`` (a
    share), by what ``buying_power`` pays for. Pure: the scanner, the notebook and
    replay size with it. ``plan``: the levels when the caller holds them already (replay
    works them out for every signal at once with :func:`exit_levels`)."""
    plan = plan or exit_plan(direction, entry, atr, policy or ExitPolicy.phase1(settings))
    mult = float(iv_multiplier(iv_percentile, settings))
    sized = uncapped_size(equity, atr, mult, settings)
    # an unknown buying power (missing from the account) caps nothing
    priced = (buying_power is not None and premium is not None and bool(np.isfinite(buying_power))
              and bool(np.isfinite(premium)) and premium > 0)
    return Setup(
        **vars(plan), direction=str(direction), entry=float(entry), atr=float(atr),
        iv_multiplier=mult, equity=float(equity),
        sized_contracts=int(min(sized, np.iinfo(np.int32).max)), max_contracts=int(settings.max_contracts),
        contracts=capped_size(sized, settings, buying_power if priced else None, premium if priced else None),
        capped=sized > settings.max_contracts,
        buying_power=float(buying_power) if buying_power is not None else None,
        premium=float(premium) if premium is not None else None,
        affordable=affordable_contracts(buying_power, premium) if priced else None,
    )
