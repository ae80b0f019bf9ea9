"""The offline Alpaca-compatible server: the subset of Alpaca's REST API that gammaride
uses, over a replayed market, for tests, rehearsal and the demo.

    with OfflineAlpaca(speed=0) as srv:
        client = TradingClient(srv.key_id, srv.secret_key, url_override=srv.url)
"""

from gammaride.offline.app import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, OfflineAlpaca
from gammaride.offline.faults import FaultSpec
from gammaride.offline.options import black_scholes, occ_symbol, parse_occ, spread_quote

__all__ = [
    "DEFAULT_KEY_ID",
    "DEFAULT_SECRET_KEY",
    "FaultSpec",
    "OfflineAlpaca",
    "black_scholes",
    "occ_symbol",
    "parse_occ",
    "spread_quote",
]
