"""History for replay: what the cache holds for a span (fetching what it lacks first),
as the bars frame replay takes and the daily closes the IV proxy needs."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from gammaride.data.fetch import FIRST_SIP_DAY, Fetcher, check_span, check_symbol
from gammaride.errors import ConfigError

# daily closes before the span: 252 sessions of the IV proxy's lookback + its 20-day window
DAILY_WARMUP = pd.Timedelta(days=400)


@dataclass(frozen=True)
class CachedHistory:
    bars: pd.DataFrame  # regular-hours minute bars, New York bar starts
    daily: pd.Series  # closes by session date (naive)
    requests: int  # sent to fill the cache (0: replayed from the cache alone)


def load_history(fetcher: Fetcher, symbol: str, start, end) -> CachedHistory:
    from gammaride.data.bars import regular_hours

    symbol = check_symbol(symbol)
    start, end = check_span(start, end, FIRST_SIP_DAY)
    before = fetcher.stats.requests
    fetcher.fetch_stock(symbol, start, end)
    warm = max(start - DAILY_WARMUP, FIRST_SIP_DAY)
    if warm < start:
        fetcher.fetch_stock(symbol, warm, start - pd.Timedelta(days=1), timeframes=("1Day",))
    minutes = fetcher.cache.read_stock(symbol, "1Min", start, end)
    bars = regular_hours(minutes[["open", "high", "low", "close", "volume"]])
    if bars.empty:
        raise ConfigError(
            f"the history cache holds no {symbol} minute bars in regular hours for {start:%Y-%m-%d} .. "
            f"{end:%Y-%m-%d}; check the symbol and span (gammaride fetch {symbol} --start ... --end ...)"
        )
    days = fetcher.cache.read_stock(symbol, "1Day", warm, end)
    daily = pd.Series(days["close"].to_numpy(), index=days.index.tz_localize(None).normalize(), name="close")
    return CachedHistory(bars=bars, daily=daily[~daily.index.duplicated(keep="last")],
                   requests=fetcher.stats.requests - before)
