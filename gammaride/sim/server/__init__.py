"""The offline Alpaca-compatible server: the subset of Alpaca's REST API that gammaride
uses, over a replayed market, for tests, rehearsal and the demo.

    with OfflineAlpaca(speed=0) as srv:
        client = TradingClient(srv.key_id, srv.secret_key, url_override=srv.url)
"""

from gammaride.sim.server.app import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, OfflineAlpaca
from gammaride.sim.server.faults import FaultSpec
from gammaride.sim.server.options import black_scholes, occ_symbol, parse_occ, spread_quote

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
