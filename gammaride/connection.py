"""A connection to trade against: Alpaca (paper or live) with keys, an offline server run
elsewhere (``--url``), or the offline Alpaca server started in this process. Commands and
the notebook both start here.

    with connect(offline=True, speed=0) as conn:
        scanner = conn.scanner(journal)
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gammaride.config import Settings
from gammaride.errors import ConfigError
from gammaride.journal import Journal
from gammaride.keys import Keys, find_keys, safe_url
from gammaride.scanner.broker import AlpacaBroker
from gammaride.scanner.clock import Clock, ScaledClock, SteppedClock, WallClock
from gammaride.scanner.loop import Scanner
from gammaride.scanner.market import MarketData
from gammaride.scanner.record import short_error

OFFLINE_START = "2013-10-07 09:30"


@dataclass
class Connection:
    """A broker, the clock to sleep against, and (offline) the server this process runs."""

    broker: AlpacaBroker
    clock: Clock
    mode: str  # offline | paper | live
    settings: Settings
    server: Any = None
    journal: Journal | None = None
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scanner(self, journal: Journal, **kwargs: Any) -> Scanner:
        if self.mode == "offline":
            kwargs.setdefault("daily_fallback", _bundled_daily)
        return Scanner(self.broker, journal, self.settings, self.clock, mode=self.mode, **kwargs)

    def market(self, journal: Journal, iv_percentile: float | None = None) -> MarketData:
        """Bars, calendar, chain and IV as the scanner sees them, without a scanner: IV
        ranks against ``journal``'s history, and failed broker calls are journaled there."""
        return MarketData(self.broker, self.settings, journal.iv_history, iv_fixed=iv_percentile,
                          daily_fallback=_bundled_daily if self.mode == "offline" else None,
                          on_error=_journal_errors(journal))


def _journal_errors(journal: Journal):
    """``on_error(context, exc)`` that journals a failed broker call outside any run."""

    def on_error(context: str, exc: BaseException) -> None:
        try:
            with journal.transaction():
                journal.write_error(None, context, exc, 0)
        except Exception as err:  # noqa: BLE001 - a failed error row must not stop the block
            print(f"  [JOURNAL] write error failed: {short_error(err)}", file=sys.stderr)

    return on_error


def _bundled_daily(symbol: str) -> pd.Series:
    from gammaride.data.bars import load_daily

    return load_daily() if symbol.upper() == "SPY" else pd.Series(dtype=float)


def connect(
    keys: Keys | None = None,
    *,
    settings: Settings | None = None,
    offline: bool = False,
    live: bool = False,
    url: str | None = None,
    speed: float = 60.0,
    start: str | None = None,
    bars: pd.DataFrame | None = None,
    faults: str | None = None,
    timeout: float = 10.0,
    env: dict[str, str] | None = None,
) -> Connection:
    """A broker to scan against.

    - ``offline`` or no keys anywhere: starts the offline Alpaca server in this process
      (bundled real SPY bars, simulated clock at ``speed``; 0 = stepped clock).
    - ``url`` with keys: an offline server run elsewhere (``gammaride serve``).
    - keys: Alpaca, paper unless ``live``.
    """
    settings = settings or Settings.load()
    if url is not None:  # '' too: an empty --url is a mistake, not "no URL"
        # an offline server on this machine: the requests carry the Alpaca keys from the
        # environment, which must not go to any other host
        url = safe_url(url)
    if keys is None and not offline:
        keys = find_keys(env)
    if url and keys is None:  # also with offline: --url names the offline server to use
        from gammaride.offline import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY

        keys = Keys(DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, "offline server")  # 'gammaride serve' prints these
    if (offline or keys is None) and not url:
        from gammaride.offline import OfflineAlpaca

        if live:
            if keys is None and not offline:
                raise ConfigError("--live needs Alpaca keys and none were found: set ALPACA_API_KEY and "
                                  "ALPACA_SECRET_KEY (the live account's), or drop --live")
            raise ConfigError("--live cannot run against the offline server; drop --offline or --live")
        srv = OfflineAlpaca(bars=bars, start=start or OFFLINE_START, speed=speed, faults=faults,
                            symbol=settings.symbol).start()
        broker = AlpacaBroker(Keys(srv.key_id, srv.secret_key, "offline server"), url=srv.url,
                              feed=settings.feed, option_feed=settings.option_feed, timeout=min(timeout, 2.0), retry_wait=0.05)
        clock: Clock = SteppedClock(srv.advance_to) if speed == 0 else ScaledClock(speed)
        note = ("OFFLINE: no Alpaca keys found, running against the built-in offline server"
                if not offline else "OFFLINE: running against the built-in offline server")
        return Connection(broker, clock, "offline", settings, server=srv,
                          notes=[f"{note} ({srv.url}, market time {srv.now():%Y-%m-%d %H:%M} ET, "
                                 f"{'stepped clock' if speed == 0 else f'{speed:g}x speed'}); no real orders"])
    if url:
        broker = AlpacaBroker(keys, url=url, feed=settings.feed, option_feed=settings.option_feed, timeout=min(timeout, 2.0), retry_wait=0.05)
        clock = _remote_stepped(url, keys) if speed == 0 else ScaledClock(speed)
        return Connection(broker, clock, "offline", settings,
                          notes=[f"OFFLINE: running against the server at {url}; no real orders"])
    broker = AlpacaBroker(keys, paper=not live, feed=settings.feed, option_feed=settings.option_feed, timeout=timeout)
    return Connection(broker, WallClock(), "live" if live else "paper", settings)


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would resend the key headers to wherever it points: refuse it."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        raise urllib.error.HTTPError(req.full_url, code, f"redirect refused ({msg})", headers, fp)


_NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects)


def _remote_stepped(url: str, keys: Keys) -> SteppedClock:
    """Advance an out-of-process offline server's clock with ``POST /_sim/clock``."""

    def advance_to(ts: pd.Timestamp) -> None:
        req = urllib.request.Request(
            f"{url}/_sim/clock", data=json.dumps({"to": pd.Timestamp(ts).isoformat()}).encode(),
            headers={"Content-Type": "application/json", "APCA-API-KEY-ID": keys.key_id,
                     "APCA-API-SECRET-KEY": keys.secret}, method="POST",
        )
        with _NO_REDIRECTS.open(req, timeout=5) as resp:  # loopback only
            resp.read()

    return SteppedClock(advance_to)
