"""Helpers the tests share (not fixtures, which live in ``conftest.py``): gammaride's own
broker client and scanner on an offline server whose clock the scanner steps."""

from __future__ import annotations

from gammaride.config import Settings
from gammaride.journal import Journal
from gammaride.keys import Keys
from gammaride.offline import OfflineAlpaca
from gammaride.scanner.broker import AlpacaBroker
from gammaride.scanner.clock import SteppedClock
from gammaride.scanner.loop import Scanner


def offline_broker(srv: OfflineAlpaca, cls: type[AlpacaBroker] = AlpacaBroker, timeout: float = 2.0,
                   **kw) -> AlpacaBroker:
    """gammaride's broker client on ``srv``; short waits between retries (it answers at once)."""
    return cls(Keys(srv.key_id, srv.secret_key), url=srv.url, timeout=timeout, retry_wait=0.01, **kw)


def offline_scanner(srv: OfflineAlpaca, journal: Journal, settings: Settings | None = None,
                    broker: AlpacaBroker | None = None, **kw) -> tuple[Scanner, list[str]]:
    """A scanner in offline mode on ``srv`` that steps its clock, and the lines it prints."""
    lines: list[str] = []
    kw.setdefault("mode", "offline")
    kw.setdefault("out", lines.append)
    sc = Scanner(broker or offline_broker(srv), journal, settings or Settings.load(env={}),
                 SteppedClock(srv.advance_to), **kw)
    return sc, lines
