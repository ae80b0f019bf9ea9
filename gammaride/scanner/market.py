"""Market data for a scan: minute bars, the session calendar, the option chain and IV.

:class:`MarketData` takes its dependencies explicitly (the broker, the settings, a
reader of the recorded IV history, an error callback) and holds only caches: the last
bars fetched, the sessions per day and the daily closes for the realized-volatility
proxy. The scanner holds one; nothing here writes the journal.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from gammaride.config import Settings
from gammaride.errors import BrokerError
from gammaride.rules import ivrank
from gammaride.rules.contracts import IVReading, atm_reading
from gammaride.scanner.broker import Broker

MINUTE = pd.Timedelta(minutes=1)
# Bars kept for a decision: enough that Wilder's ATR has forgotten its seed (1e-6 agreement).
WINDOW = 400

IVHistory = Callable[..., pd.Series]  # (symbol, before=, dte_class=) -> recorded ATM IVs


class MarketData:
    """Bars, calendar, chain and IV for one symbol from one broker.

    ``iv_history(symbol, before=now, dte_class=...)``: the recorded ATM IVs the
    percentile ranks against. ``iv_fixed``: a fixed IV percentile (wins for the gate).
    ``daily_fallback(symbol)``: daily closes when the broker serves none.
    ``on_error(context, exc)``: how a failed call is reported.
    """

    def __init__(
        self,
        broker: Broker,
        settings: Settings,
        iv_history: IVHistory,
        *,
        iv_fixed: float | None = None,
        daily_fallback: Callable[[str], pd.Series] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
    ):
        self.broker = broker
        self.settings = settings
        self.symbol = settings.symbol
        self.iv_history = iv_history
        self.iv_fixed = iv_fixed
        self.daily_fallback = daily_fallback
        self.on_error = on_error or (lambda context, exc: None)
        self.last_bars: pd.DataFrame | None = None
        self._daily: tuple[object, pd.Series] | None = None
        self._sessions: dict = {}

    # ------------------------------------------------------------------ bars
    def fetch_bars(self, now: pd.Timestamp) -> pd.DataFrame:
        """Complete regular-hours bars back far enough for >= min_bars of history.

        After the first full fetch only the bars since the last one held are asked for
        (the last held bar again, in case it was revised): a scan moves a few bars of
        JSON instead of hundreds. A gap of more than 30 minutes refetches everything.
        """
        held = self.last_bars
        if held is not None and len(held) >= self.settings.min_bars and \
                now - held.index[-1] <= pd.Timedelta(minutes=30):
            new = self.broker.bars(self.symbol, held.index[-1], now)
            new = new[new.index + MINUTE <= now]
            bars = pd.concat([held[held.index < new.index[0]], new]) if len(new) else held
            bars = bars.iloc[-(WINDOW + 100):]
        else:
            bars = self.broker.bars(self.symbol, self.history_start(now), now)
            bars = bars[bars.index + MINUTE <= now]
        self.last_bars = bars
        return bars

    def last_price(self) -> float:
        """The close of the newest bar held, NaN before any."""
        bars = self.last_bars
        return float(bars["close"].iloc[-1]) if bars is not None and len(bars) else float("nan")

    # ------------------------------------------------------------------ calendar
    def history_start(self, now: pd.Timestamp) -> pd.Timestamp:
        """Today's open, or an earlier session's when today has fewer than min_bars + margin."""
        today = pd.Timestamp(now.date())
        sessions = self.session_list(today)
        need = self.settings.min_bars + 10
        have = 0
        for day, open_, close in reversed(sessions):
            if day > today:
                continue
            end = min(close, now)
            have += max(0, int((end - open_).total_seconds() // 60))
            if have >= need:
                return open_
        return now - pd.Timedelta(days=5)

    def session_list(self, today: pd.Timestamp) -> list:
        """[(day, open, close)] of the sessions in the 10 days up to ``today`` (cached)."""
        if today not in self._sessions:
            try:
                days = self.broker.calendar((today - pd.Timedelta(days=10)).date(), today.date())
                self._sessions[today] = [(d.date, d.open, d.close) for d in days]
            except BrokerError as exc:
                self.on_error("calendar", exc)
                return []
        return self._sessions[today]

    # ------------------------------------------------------------------ options
    def chain(self, now: pd.Timestamp, price: float, info: dict) -> pd.DataFrame | None:
        """Today's and the next session's expiries near the money; None (with
        ``info['chain_error']``) when the broker cannot serve it."""
        today = now.date()
        try:
            # today's and the next session's expiries (5 days spans a long weekend), strikes
            # within 1.5% of the money: the contracts a 20-minute ride can use
            chain = self.broker.option_chain(
                self.symbol, today, (pd.Timestamp(today) + pd.Timedelta(days=5)).date(),
                strike_gte=math.floor(price * 0.985), strike_lte=math.ceil(price * 1.015),
            )
        except BrokerError as exc:
            info["chain_error"] = str(exc)
            self.on_error("option chain", exc)
            return None
        return chain

    def iv_now(self, now: pd.Timestamp, price: float, chain: pd.DataFrame | None,
               info: dict | None = None) -> tuple[float, float | None, str]:
        """(ATM IV, percentile, source); ``info['iv_reading']`` is the reading with its
        series (contract, expiry, strike, days-to-expiry class). The percentile ranks
        today's ATM IV among recorded ATM IVs of the same days-to-expiry class; with that
        history but no IV today, the percentile is missing (a skip reason), never taken
        from another expiry. A fixed override wins for the gate."""
        info = {} if info is None else info
        reading = atm_reading(chain, price, now.normalize().tz_localize(None)) if chain is not None \
            else IVReading(float("nan"), reason="no option chain")
        iv = reading.iv
        info["iv_contract"] = reading.contract
        info["iv_reading"] = reading
        if self.iv_fixed is not None:
            return iv, float(self.iv_fixed), ivrank.SOURCE_CONSTANT
        history = self.iv_history(self.symbol, before=now, dte_class=reading.dte_class or "0dte")
        if len(history) >= self.settings.iv_history_sessions:
            if not np.isfinite(iv):
                info["iv_missing"] = reading.reason
                return iv, float("nan"), ivrank.SOURCE_NONE
            return iv, ivrank.percentile_from_history(iv, history.to_numpy()), ivrank.SOURCE_HISTORY
        ivp = self.proxy(now, price)
        return iv, ivp, ivrank.SOURCE_PROXY if np.isfinite(ivp) else ivrank.SOURCE_NONE

    def proxy(self, now: pd.Timestamp, price: float) -> float:
        """The realized-volatility percentile standing in for IV (earlier closes only)."""
        today = pd.Timestamp(now.date())
        if self._daily is None or self._daily[0] != today:
            try:
                closes = self.broker.daily_closes(self.symbol, now - pd.Timedelta(days=550), now)
            except BrokerError as exc:
                if self.daily_fallback is None:
                    self.on_error("daily bars", exc)
                    return float("nan")
                closes = self.daily_fallback(self.symbol)
            self._daily = (today, closes[closes.index < today])
        closes = self._daily[1]
        # today's close is a placeholder: the proxy for today uses only earlier closes
        closes = pd.concat([closes, pd.Series([price], index=pd.DatetimeIndex([today]))])
        pct = ivrank.realized_vol_percentile(closes)
        return float(pct.get(today, float("nan")))
