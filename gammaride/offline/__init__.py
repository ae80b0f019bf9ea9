"""The offline Alpaca-compatible server: the subset of Alpaca's REST API that gammaride
uses, over a replayed market, for tests, rehearsal and the demo.

    with OfflineAlpaca(speed=0) as srv:
        client = TradingClient(srv.key_id, srv.secret_key, url_override=srv.url)

    OfflineAlpaca(start="2013-10-08 15:00", speed=0, chain=OptionChain(iv=0.3),
                  behaviour=BrokerBehaviour(liquidation=False), data=DataPlan(subscription="plus"))
"""

from gammaride.offline.app import OfflineAlpaca
from gammaride.offline.faults import FaultSpec
from gammaride.offline.options import spread_quote
from gammaride.offline.params import (
    DEFAULT_KEY_ID,
    DEFAULT_SECRET_KEY,
    Access,
    BrokerBehaviour,
    DataPlan,
    OptionChain,
    SimAccount,
)

__all__ = [
    "DEFAULT_KEY_ID",
    "DEFAULT_SECRET_KEY",
    "Access",
    "SimAccount",
    "BrokerBehaviour",
    "DataPlan",
    "FaultSpec",
    "OfflineAlpaca",
    "OptionChain",
    "spread_quote",
]
