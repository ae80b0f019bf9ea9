"""Fault injection of the offline Alpaca server: rates, reproducibility, and what clients see."""

from __future__ import annotations

import collections
import math

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from gammaride.errors import ConfigError
from gammaride.offline import FaultSpec, OfflineAlpaca


@pytest.fixture
def bars(sample):
    return sample  # the session-wide bundled sample


def _auth(s):
    return {"APCA-API-KEY-ID": s.key_id, "APCA-API-SECRET-KEY": s.secret_key}


def _trading(s, retries=3):
    tc = TradingClient(s.key_id, s.secret_key, paper=True, url_override=s.url)
    tc._retry, tc._retry_wait = retries, 0  # alpaca-py waits 3 s between retries by default
    return tc


def test_spec_parsing_and_errors():
    spec = FaultSpec.parse("429=0.05, 500=0.05,timeout=0.02,orders:429=0.1,orders:drop=0.2,slow_seconds=0.5")
    assert spec.rates == {"429": 0.05, "500": 0.05, "timeout": 0.02}
    assert spec.for_endpoint("orders") == {"429": 0.1, "500": 0.05, "timeout": 0.02, "drop": 0.2}
    assert spec.for_endpoint("bars") == spec.rates
    assert spec.slow_seconds == 0.5
    assert FaultSpec.parse("") is None and FaultSpec.parse(None) is None
    for bad, words in [("429", "no '='"), ("418=0.1", "unknown fault kind"), ("429=x", "not a number"),
                       ("nowhere:429=0.1", "unknown fault endpoint"), ("429=0.7,500=0.6", "add up to")]:
        with pytest.raises(ConfigError, match=words):
            FaultSpec.parse(bad)


def test_observed_rates_match_the_spec_over_1000_requests(bars):
    rates = {"429": 0.10, "500": 0.05, "503": 0.05, "malformed": 0.05, "drop": 0.05, "timeout": 0.05}
    spec = ",".join(f"{k}={v}" for k, v in rates.items()) + ",slow_seconds=0"
    n = 1000
    with OfflineAlpaca(bars=bars, speed=0, faults=spec, seed=7) as s:
        seen = collections.Counter()
        with requests.Session() as http:
            for _ in range(n):
                try:
                    r = http.get(f"{s.url}/v2/clock", headers=_auth(s), timeout=5)
                except requests.ConnectionError:
                    seen["drop"] += 1
                    continue
                if r.status_code != 200:
                    seen[str(r.status_code)] += 1
                    if r.status_code == 429:
                        assert r.headers["X-RateLimit-Remaining"] == "0"
                        assert r.headers["X-RateLimit-Limit"] == "200" and int(r.headers["X-RateLimit-Reset"]) > 0
                    continue
                try:
                    r.json()
                    seen["ok"] += 1
                except ValueError:
                    seen["malformed"] += 1
        logged = collections.Counter(e["fault"] for e in s.request_log)
        assert len(s.request_log) == n
    for kind, p in rates.items():
        tol = 4 * math.sqrt(n * p * (1 - p))  # four binomial standard deviations
        assert abs(logged[kind] - n * p) <= tol, (kind, logged[kind])
        if kind != "timeout":  # slow_seconds=0: a "timeout" answers normally
            assert seen[kind] == logged[kind]
    assert seen["ok"] == logged[None] + logged["timeout"]


def test_same_seed_same_faults_and_sim_endpoints_never_fault(bars):
    def kinds(seed):
        with OfflineAlpaca(bars=bars, speed=0, faults="500=0.3", seed=seed) as s:
            with requests.Session() as http:
                for _ in range(60):
                    http.get(f"{s.url}/v2/account", headers=_auth(s), timeout=5)
                    assert http.get(f"{s.url}/_sim/clock", headers=_auth(s), timeout=5).status_code == 200
            return [e["fault"] for e in s.request_log if e["path"] == "/v2/account"], \
                [e["fault"] for e in s.request_log if e["path"] == "/_sim/clock"]
    a, sim_a = kinds(1)
    b, _ = kinds(1)
    c, _ = kinds(2)
    assert a == b and a != c
    assert 5 < a.count("500") < 35
    assert set(sim_a) == {None}


def test_per_endpoint_faults_only_hit_that_endpoint(bars):
    with OfflineAlpaca(bars=bars, speed=0, faults="orders:503=1.0", seed=0) as s:
        tc = _trading(s)
        assert float(tc.get_account().equity) == 100_000.0
        with pytest.raises(APIError) as err:
            tc.get_orders()
        assert err.value.status_code == 503
        s.set_faults(None)
        assert tc.get_orders() == []


def test_429_is_retried_by_alpaca_py_and_gives_up_after_its_attempts(bars):
    with OfflineAlpaca(bars=bars, speed=0, faults="account:429=0.3", seed=3) as s:
        tc = _trading(s)
        for _ in range(30):
            assert float(tc.get_account().equity) == 100_000.0
        statuses = [e["status"] for e in s.request_log]
        assert statuses.count(429) >= 3 and statuses.count(200) == 30
        # each 429 cost exactly one extra request: alpaca-py retried it and then succeeded
        assert len(statuses) == 30 + statuses.count(429)
        assert all(e["fault"] == "429" for e in s.request_log if e["status"] == 429)

        s.set_faults("account:429=1")
        before = len(s.request_log)
        with pytest.raises(APIError) as err:
            tc.get_account()
        assert err.value.status_code == 429
        assert len(s.request_log) - before == 4  # the first try and alpaca-py's three retries


def test_drop_after_an_order_is_placed_then_idempotent_resubmit(bars):
    with OfflineAlpaca(bars=bars, start="2013-10-07 10:00", speed=0, faults="orders:drop=1", seed=0) as s:
        tc = _trading(s)
        req = MarketOrderRequest(symbol="SPY", qty=3, side=OrderSide.BUY,
                                 time_in_force=TimeInForce.DAY, client_order_id="idem-1")
        with pytest.raises(requests.ConnectionError):
            tc.submit_order(req)
        s.set_faults(None)
        # The connection dropped after the order was placed: a blind retry is refused...
        with pytest.raises(APIError) as err:
            tc.submit_order(req)
        assert err.value.status_code == 422 and "client_order_id must be unique" in str(err.value)
        # ...and the client finds its order by the id it chose.
        assert tc.get_order_by_client_id("idem-1").status == "filled"
        assert [p.qty for p in tc.get_all_positions()] == ["3"]
        assert [b["client_order_id"] for b in s.orders_received()] == ["idem-1", "idem-1"]
        assert [e["fault"] for e in s.request_log] == ["drop", None, None, None]


def test_malformed_and_slow_answers(bars):
    with OfflineAlpaca(bars=bars, speed=0, faults="timeout=1,slow_seconds=0.6", seed=0) as s:
        with pytest.raises(requests.ReadTimeout):
            requests.get(f"{s.url}/v2/clock", headers=_auth(s), timeout=0.2)
        assert requests.get(f"{s.url}/v2/clock", headers=_auth(s), timeout=3).status_code == 200
        s.set_faults("malformed=1")
        with pytest.raises(requests.JSONDecodeError):
            _trading(s).get_account()
        assert isinstance(s.request_log[-1]["response"], str) and s.request_log[-1]["fault"] == "malformed"
