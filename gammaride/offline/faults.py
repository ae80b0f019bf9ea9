"""Fault injection: per-request chances of 429, 500, 503, a slow answer, malformed JSON
or a dropped connection, globally or per endpoint, drawn from a seeded generator.

Spec strings are comma-separated ``[endpoint:]kind=probability`` items plus an optional
``slow_seconds=N``, e.g. ``"429=0.05,500=0.05,timeout=0.02,orders:429=0.1"``. An
endpoint's own rate for a kind replaces the global rate for that kind.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from gammaride.errors import ConfigError

FAULT_KINDS = ("429", "500", "503", "timeout", "malformed", "drop")
ENDPOINTS = (
    "account", "clock", "calendar", "positions", "orders",
    "contracts", "bars", "trades", "snapshots",
)
# 429/500/503 answer before the request runs; the other kinds run it first, so a client
# sees the ambiguity of a real network fault (was my order placed?).
BEFORE = frozenset({"429", "500", "503"})


MAX_SLOW_SECONDS = 600.0  # a slow reply longer than this is a hung server, not a fault


@dataclass(frozen=True)
class FaultSpec:
    """Fault probabilities: ``rates`` apply to every endpoint unless ``per_endpoint`` overrides."""

    rates: dict[str, float] = field(default_factory=dict)
    per_endpoint: dict[str, dict[str, float]] = field(default_factory=dict)
    slow_seconds: float = 3.0

    def __post_init__(self) -> None:
        for where, rates in [("global", self.rates), *self.per_endpoint.items()]:
            if where != "global" and where not in ENDPOINTS:
                raise ConfigError(
                    f"unknown fault endpoint {where!r}; use one of {', '.join(ENDPOINTS)}"
                )
            for kind, p in rates.items():
                if kind not in FAULT_KINDS:
                    raise ConfigError(f"unknown fault kind {kind!r}; use one of {', '.join(FAULT_KINDS)}")
                if not 0.0 <= float(p) <= 1.0:  # also refuses NaN
                    raise ConfigError(f"fault probability {kind}={p!r} is outside 0..1")
        for endpoint in ("global", *ENDPOINTS):
            total = sum(self.for_endpoint(endpoint).values())
            if total > 1.0 + 1e-12:
                raise ConfigError(
                    f"fault probabilities for {endpoint} add up to {total:.3f} > 1; lower them"
                )
        if not 0 <= self.slow_seconds <= MAX_SLOW_SECONDS:  # also refuses NaN and inf
            raise ConfigError(
                f"slow_seconds={self.slow_seconds!r} is outside 0..{MAX_SLOW_SECONDS:g}; "
                "give the seconds a slow reply waits, e.g. slow_seconds=5"
            )

    def for_endpoint(self, endpoint: str) -> dict[str, float]:
        return {**self.rates, **self.per_endpoint.get(endpoint, {})}

    @classmethod
    def parse(cls, spec: str | FaultSpec | None) -> FaultSpec | None:
        """Read a spec string (None or '' = no faults)."""
        if spec is None or isinstance(spec, FaultSpec):
            return spec
        rates: dict[str, float] = {}
        per: dict[str, dict[str, float]] = {}
        slow = 3.0
        for item in (s.strip() for s in str(spec).split(",")):
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(
                    f"fault item {item!r} has no '='; write kind=probability, e.g. 429=0.05"
                )
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"fault item {item!r}: {value!r} is not a number") from None
            key = key.strip()
            if key == "slow_seconds":
                slow = number
                continue
            endpoint, colon, kind = key.rpartition(":")
            (per.setdefault(endpoint, {}) if colon else rates)[kind] = number
        if not rates and not per:
            return None if slow == 3.0 else cls(slow_seconds=slow)
        return cls(rates=rates, per_endpoint=per, slow_seconds=slow)


class FaultInjector:
    """Draws one uniform number per request and maps it onto the endpoint's fault rates."""

    def __init__(self, spec: FaultSpec | str | None, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.spec = FaultSpec.parse(spec)

    def set(self, spec: FaultSpec | str | None) -> None:
        parsed = FaultSpec.parse(spec)
        with self._lock:
            self.spec = parsed

    def draw(self, endpoint: str) -> str | None:
        with self._lock:
            spec = self.spec
            if spec is None:
                return None
            u = self._rng.random()
        acc = 0.0
        for kind, p in spec.for_endpoint(endpoint).items():
            acc += p
            if u < acc:
                return kind
        return None
