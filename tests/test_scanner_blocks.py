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


def test_block_4_sizes_against_the_options_buying_power_as_the_scanner_does():
    """Cash mostly spent on shares: the sizing rule gives 10 contracts, the options buying
    power pays for fewer at the marketable limit; Block 4 says so and Block 5 buys those."""
    from gammaride.keys import Keys
    from gammaride.notebook.colab import print_setup
    from gammaride.offline import OfflineAlpaca
    from gammaride.rules import setup as rules
    from gammaride.scanner.broker import OrderSpec

    s = Settings.load(env={})
    with OfflineAlpaca(start="2013-10-07 10:08:05", speed=0, seed=7) as srv, \
            connect(Keys(srv.key_id, srv.secret_key), url=srv.url, speed=0, settings=s) as conn:
        cond = check_conditions(conn, iv_percentile=0.5)
        free = calculate_setup(conn, cond)
        assert free["contracts"] == 10 and not free["bp_capped"] and free["contract"]
        cost = free["premium"] * 100.0
        price = float(cond["price"])
        shares = int((conn.broker.account().options_buying_power - 3 * cost) // price)  # 3 to 7 contracts left
        conn.broker.submit_order(OrderSpec("SPY", shares, "buy", "market", client_order_id="by-hand"))
        acct = conn.broker.account()
        setup = calculate_setup(conn, cond)
        scanner_rule = rules.calculate_setup(cond["direction"], cond["price"], cond["atr"], 0.5, acct.equity, s,
                                             buying_power=acct.options_buying_power, premium=setup["premium"])
        out: list[str] = []
        print_setup(setup, cond, out.append)
        sent = submit_order(conn, cond, setup, dry_run=False)
    n = int(acct.options_buying_power // (setup["premium"] * 100.0))
    assert 3 <= n < 10 and setup["contracts"] == n == setup["affordable"] == scanner_rule.contracts
    assert setup["bp_capped"] and setup["sized_contracts"] >= 10 and setup["buying_power"] == acct.options_buying_power
    assert f"✓ capped by options buying power ${acct.options_buying_power:,.2f}: {n} x {setup['contract']} " \
           f"at ${setup['premium']:.2f}" in out
    assert sent["status"] == "paper" and sent["contracts"] == n and sent["contract"] == setup["contract"]


def test_block_5_sends_nothing_when_the_buying_power_pays_for_no_contract():
    with connect(offline=True, speed=0, start="2013-10-07 10:08:05", settings=Settings.load(env={})) as conn:
        cond = check_conditions(conn, iv_percentile=0.5)
        setup = {**calculate_setup(conn, cond), "contracts": 0}
        order = submit_order(conn, cond, setup, dry_run=False)
        assert order["status"] == "error" and "buying power cannot pay for one" in order["message"]
        assert conn.server.orders_received() == []
