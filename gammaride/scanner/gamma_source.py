"""Where a scan's dealer-gamma measure comes from: the chain and the open interest,
fetched through the broker, joined, and measured by :mod:`gammaride.rules.gamma`.

Requests: one chain snapshot request per scan (one page up to 1,000 contracts), and
the option contracts endpoint once a session for open interest (Alpaca publishes it
once a day). The cached open interest covers a strike band twice as wide as the
chain's; it is fetched again only when the chain lists a strike or an expiration
outside what it holds, at most once every ``REFETCH_MINUTES``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from gammaride.config import ET, Settings
from gammaride.errors import BrokerError
from gammaride.rules.contracts import parse_occ
from gammaride.rules.gamma import GAMMA_COLUMNS, GammaExposure, measure, missing
from gammaride.scanner.record import short_error

REFETCH_MINUTES = 15


@dataclass
class _OpenInterest:
    session: pd.Timestamp  # naive session date
    frame: pd.DataFrame  # symbol, open_interest, open_interest_date
    strike_lo: float
    strike_hi: float
    fetched_at: pd.Timestamp


class GammaSource:
    """Measures dealer gamma for one underlying at each scan, through ``broker``.

    ``on_error(context, exc)`` is told of broker failures (the scanner journals them);
    a failure never raises: the measure comes back missing, with the reason.
    """

    def __init__(self, broker, settings: Settings, on_error: Callable[[str, Exception], None] | None = None):
        self.broker = broker
        self.settings = settings
        self.on_error = on_error or (lambda context, exc: None)
        self.oi_fetches = 0
        self.chain_requests = 0
        self._oi: _OpenInterest | None = None

    def measure(self, now: pd.Timestamp, spot: float) -> GammaExposure:
        s = self.settings
        if not (math.isfinite(spot) and spot > 0):
            return missing(spot, f"no underlying price ({spot!r})")
        today = pd.Timestamp(now.tz_convert(ET).date())
        last = today + pd.Timedelta(days=s.gamma_expiry_days)
        r = s.gamma_strike_range
        try:
            self.chain_requests += 1
            chain = self.broker.gamma_chain(s.symbol, today.date(), last.date(),
                                            math.floor(spot * (1 - r)), math.ceil(spot * (1 + r)))
        except BrokerError as exc:
            self.on_error("gamma chain", exc)
            return missing(spot, f"option chain unavailable ({short_error(exc)})")
        if chain.empty:
            return missing(spot, "the option chain is empty in range")
        try:
            oi = self._open_interest(now, today, last, spot, chain)
        except BrokerError as exc:
            self.on_error("open interest", exc)
            return missing(spot, f"open interest unavailable ({short_error(exc)})")
        try:
            contracts = chain.merge(oi[["symbol", "open_interest"]], on="symbol", how="left")
            return measure(contracts[GAMMA_COLUMNS], spot, now, grid_range=r)
        except Exception as exc:  # noqa: BLE001 - a malformed reply costs the measure, not the scan
            self.on_error("gamma measure", exc)
            return missing(spot, f"measure failed ({short_error(exc)})")

    def _open_interest(self, now, today, last, spot, chain) -> pd.DataFrame:
        held = self._oi
        if held is not None and held.session == today:
            outside = chain["strike"].min() < held.strike_lo or chain["strike"].max() > held.strike_hi
            if not outside or now - held.fetched_at < pd.Timedelta(minutes=REFETCH_MINUTES):
                return held.frame
        r = 2 * self.settings.gamma_strike_range
        lo, hi = math.floor(spot * (1 - r)), math.ceil(spot * (1 + r))
        self.oi_fetches += 1
        frame = self.broker.open_interest(self.settings.symbol, today.date(), last.date(), lo, hi)
        if len(frame):  # the band the broker actually lists
            listed = [parse_occ(sym)[3] for sym in frame["symbol"]]
            lo, hi = min(listed), max(listed)
        self._oi = _OpenInterest(today, frame, lo, hi, now)
        return frame
