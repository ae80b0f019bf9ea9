"""Keys, clocks, the position manager's rule checks and the risk limits, without a server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gammaride.config import ET
from gammaride.errors import BrokerError, CredentialsError
from gammaride.keys import Keys, find_keys, mask
from gammaride.rules.risk import DayRisk, entry_block
from gammaride.scanner.clock import ScaledClock, SteppedClock, next_scan_time
from gammaride.scanner.orders import client_order_id, is_ours
from gammaride.scanner.positions import (
    Position,
    check_bars,
    check_price,
    record_path,
    trade_metrics,
)

SECRET = "s3cretValueThatMustNeverShow0123456789ab"


@pytest.mark.parametrize("value", ["", "   ", "PASTE_HERE", "paste-your-key", "YOUR_API_KEY", "<key>", "xxxx", "..."])
def test_placeholders_and_empty_keys_are_refused(value):
    with pytest.raises(CredentialsError):
        find_keys({"ALPACA_API_KEY": value, "ALPACA_SECRET_KEY": SECRET}, colab=False)


def test_keys_from_either_variable_pair_and_the_secret_never_shows():
    k = find_keys({"APCA_API_KEY_ID": "PKABCDEFGH12345678", "APCA_API_SECRET_KEY": SECRET}, colab=False)
    assert k.key_id == "PKABCDEFGH12345678" and k.source == "$APCA_API_KEY_ID"
    assert SECRET not in repr(k) and SECRET not in str(k) and "PKAB...5678" in str(k)
    assert find_keys({}, colab=False) is None
    own = find_keys({"ALPACA_API_KEY": "PKOWN0000000000001", "ALPACA_SECRET_KEY": SECRET,
                     "APCA_API_KEY_ID": "PKSDK", "APCA_API_SECRET_KEY": SECRET}, colab=False)
    assert own.key_id == "PKOWN0000000000001"
    with pytest.raises(CredentialsError, match="ALPACA_SECRET_KEY is empty"):
        find_keys({"ALPACA_API_KEY": "PKOWN0000000000001"}, colab=False)
    with pytest.raises(CredentialsError) as info:
        Keys("PKOWN0000000000001", "PASTE_YOUR_SECRET_HERE")
    assert "PASTE_YOUR_SECRET_HERE" not in str(info.value)
    assert mask("PK12") == "PK***" and mask(None) == "(none)"


def test_next_scan_time_is_the_minute_boundary_plus_offset():
    t = pd.Timestamp("2013-10-07 09:37:02.5", tz=ET)
    assert next_scan_time(t, 5) == pd.Timestamp("2013-10-07 09:37:05", tz=ET)
    assert next_scan_time(pd.Timestamp("2013-10-07 09:37:05", tz=ET), 5) == pd.Timestamp("2013-10-07 09:38:05", tz=ET)
    assert next_scan_time(pd.Timestamp("2013-10-07 09:37:59.9", tz=ET), 5) == pd.Timestamp("2013-10-07 09:38:05", tz=ET)


def test_scaled_clock_sleeps_delta_over_speed_and_stepped_clock_advances():
    slept: list[float] = []
    c = ScaledClock(60.0, sleep=slept.append)
    c.sync(pd.Timestamp("2013-10-07 09:37:00", tz=ET))
    c.sleep_until(pd.Timestamp("2013-10-07 09:38:00", tz=ET))
    assert slept and slept[0] == pytest.approx(1.0, abs=0.01)
    moved: list[pd.Timestamp] = []
    s = SteppedClock(moved.append)
    s.sync(pd.Timestamp("2013-10-07 09:37:00", tz=ET))
    s.sleep_until(pd.Timestamp("2013-10-07 09:38:05", tz=ET))
    s.sleep_until(pd.Timestamp("2013-10-07 09:38:00", tz=ET))  # the past: no move
    assert moved == [pd.Timestamp("2013-10-07 09:38:05", tz=ET)] and s.now() == moved[0]
    with pytest.raises(ValueError, match="SteppedClock"):
        ScaledClock(0)


def _pos(direction="call", entry=100.0, atr=0.5, hold=20, stop="15:55") -> Position:
    t = pd.Timestamp("2013-10-07 10:00", tz=ET)
    sign = 1 if direction == "call" else -1
    return Position(1, 1, "SPY", "options", "SPY131007C00100000", direction, 2, t, entry, atr,
                    entry + sign * 2 * atr, entry - sign * atr, 2.0, 1.0, t + pd.Timedelta(minutes=hold),
                    pd.Timestamp(f"2013-10-07 {stop}", tz=ET), entry_premium=1.0)


def _bars(rows, start="2013-10-07 10:00") -> pd.DataFrame:
    idx = pd.date_range(start, periods=len(rows), freq="min", tz=ET)
    return pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=idx).assign(volume=1.0)


def test_check_bars_is_replays_rule_sl_first_and_time_at_the_20th_bar():
    pos = _pos()
    flat = [(100, 100.2, 99.8, 100)] * 20
    now = pd.Timestamp("2013-10-07 10:20:01", tz=ET)
    assert check_bars(pos, _bars(flat[:19]), pd.Timestamp("2013-10-07 10:19:01", tz=ET)) is None
    d = check_bars(pos, _bars(flat), now)
    assert (d.reason, d.price, d.time) == ("time", 100, pd.Timestamp("2013-10-07 10:20", tz=ET))
    both = [(100, 101.5, 99.0, 100)]  # touches TP 101 and SL 99.5: the SL
    d = check_bars(pos, _bars(both), now)
    assert (d.reason, d.price) == ("sl", 99.5)
    gap = [(98.0, 98.5, 97.0, 98.0)]  # opens beyond the SL: exits at the open
    assert check_bars(pos, _bars(gap), now).price == 98.0
    # the bar before the decision never counts
    assert check_bars(pos, _bars([(100, 105, 95, 100)], start="2013-10-07 09:59"), now) is None


def test_hard_stop_ends_the_clock_earlier_than_max_hold():
    pos = _pos(stop="10:05")
    d = check_bars(pos, _bars([(100, 100.2, 99.8, 100.1)] * 10), pd.Timestamp("2013-10-07 10:06", tz=ET))
    assert (d.reason, d.time) == ("hard_stop", pd.Timestamp("2013-10-07 10:05", tz=ET))


def test_check_price_one_price_bar_for_puts_and_calls():
    at = pd.Timestamp("2013-10-07 10:03:30", tz=ET)
    assert check_price(_pos(), 100.9, at) is None
    assert check_price(_pos(), 101.0, at).reason == "tp"
    assert check_price(_pos(), 99.4, at).reason == "sl"
    put = _pos("put")
    assert check_price(put, 98.9, at).reason == "tp" and check_price(put, 100.6, at).reason == "sl"


def test_paths_metrics_and_client_ids():
    pos = _pos()
    rows = record_path(pos, _bars([(100, 100.5, 99.8, 100.2)] * 25), 20)
    assert list(rows["minute"]) == list(range(1, 21))
    assert record_path(pos, _bars([(100, 100.5, 99.8, 100.2)] * 25), 20).empty  # nothing twice
    m = trade_metrics(pos, 101.0, pd.Timestamp("2013-10-07 10:03", tz=ET))
    assert m["r_multiple"] == pytest.approx(2.0)
    assert m["mfe_atr"] == pytest.approx(1.0) and m["mae_atr"] == pytest.approx(0.4)
    cid = client_order_id("spy", pd.Timestamp("2013-10-07 14:02", tz="UTC"), "put")
    assert cid == "gr-SPY-201310071002-P" and is_ours(cid) and not is_ours("other-1")


def test_risk_limits_and_kill_switch(settings):
    r = DayRisk(pd.Timestamp("2013-10-07"), 100_000.0)
    assert entry_block(settings, r, open_positions=0) is None
    assert entry_block(settings, r, open_positions=1) == "position open"
    r.trades = 10
    assert "max trades per day (10)" in entry_block(settings, r, 0)
    r.trades = 0
    assert r.record_exit(-2_000.0, settings) is False
    assert r.record_exit(-1_000.0, settings) is True and r.killed
    assert "daily loss limit" in entry_block(settings, r, 0)
    assert np.isfinite(r.loss_limit_usd(settings))


def test_one_retry_rule_transient_failures_are_retried_refusals_and_bad_keys_are_not():
    from gammaride.errors import (
        BrokerAuthError,
        BrokerRejectedError,
        BrokerTransientError,
        broker_error,
    )
    from gammaride.scanner.retry import with_retries

    assert isinstance(broker_error("x", 401, "http"), BrokerAuthError)
    assert isinstance(broker_error("x", 403, "http", auth_403=True), BrokerAuthError)
    assert isinstance(broker_error("x", 403, "http"), BrokerRejectedError)  # e.g. a wash trade
    assert isinstance(broker_error("x", None, "timeout"), BrokerTransientError)
    assert broker_error("x", None, "network").unreachable and not broker_error("x", 503, "http").unreachable
    for status, kind, calls_made in [(503, "http", 3), (429, "http", 3), (None, "timeout", 3),
                                     (422, "http", 1), (401, "http", 1)]:
        calls, paused = [], []

        def fail(status=status, kind=kind, calls=calls):
            calls.append(1)
            raise broker_error("submit failed", status, kind)

        with pytest.raises(BrokerError):
            with_retries(fail, attempts=3, pause=paused.append)
        assert len(calls) == calls_made and paused == list(range(calls_made - 1))
    # a failure whose purpose is found meanwhile (the order the broker did take) is recovered
    assert with_retries(lambda: (_ for _ in ()).throw(broker_error("x", None, "timeout")),
                        recover=lambda exc: "found") == "found"
