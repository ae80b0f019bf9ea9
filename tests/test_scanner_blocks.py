"""The notebook blocks return the mappings DESIGN.md promises, against the offline server."""

from __future__ import annotations

import pandas as pd

from gammaride.config import Settings
from gammaride.connection import connect
from gammaride.notebook.blocks import (
    calculate_setup,
    check_conditions,
    live_confirmed,
    submit_order,
)


def test_blocks_on_a_real_signal_then_a_real_paper_order():
    with connect(offline=True, speed=0, start="2013-10-07 10:08:05", settings=Settings.load(env={})) as conn:
        cond = check_conditions(conn, iv_percentile=0.5)
        assert {"in_window", "vol_spike", "direction", "bars", "avg_volume", "current_volume",
                "iv_percentile"} <= set(cond)
        assert cond["in_window"] and cond["vol_spike"] and cond["direction"] == "call" and cond["signal"]
        assert len(cond["bars"]) == 20 and cond["bars"].index[-1] == pd.Timestamp("2013-10-07 10:07", tz="America/New_York")
        assert cond["current_volume"] > 2 * cond["avg_volume"] and cond["iv_percentile"] == 0.5
        setup = calculate_setup(conn, cond)
        assert setup["tp"] == setup["entry"] + 2 * setup["atr"] and setup["sl"] == setup["entry"] - setup["atr"]
        assert setup["iv_multiplier"] == 1.0 and setup["phase"] == 1 and setup["contracts"] == 10
        assert (setup["tp_mult"], setup["sl_mult"]) == (2.0, 1.0)
        dry = submit_order(conn, cond, setup)
        assert dry["status"] == "paper" and dry["order_id"].startswith("PAPER_SIM_") and dry["contracts"] == 10
        assert conn.server.orders_received() == []
        sent = submit_order(conn, cond, setup, dry_run=False)
        assert sent["status"] == "paper" and sent["contracts"] == 10 and not sent["order_id"].startswith("PAPER")
        again = submit_order(conn, cond, setup, dry_run=False)  # same decision: same client id
        assert again["order_id"] == sent["order_id"]
        assert len(conn.server.broker.positions) == 1


def test_live_confirmation():
    assert live_confirmed(True, ask=lambda prompt: "yes")
    assert not live_confirmed(True, ask=lambda prompt: "y")
    assert live_confirmed(False, env={"GAMMARIDE_LIVE_CONFIRM": "yes"})
    assert not live_confirmed(False, env={})
