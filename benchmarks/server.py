"""Offline Alpaca server latency and throughput on loopback.

1. Per endpoint: 300 sequential requests over one keep-alive ``requests.Session``;
   median and p99 latency, and the ratio of the median to the cheapest route
   (``GET /_sim/clock``, the baseline: HTTP + auth + routing, no market work).
2. Paced load: 200 requests/s for 5 s from a thread pool, a mix of the scanner's
   calls; achieved rate, median and p99 latency. Then the same mix unpaced (the ceiling).

Run: python benchmarks/server.py
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from gammaride.offline import OfflineAlpaca
from gammaride.rules.contracts import occ_symbol

N = 300
RATE = 200
SECONDS = 5.0


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    with OfflineAlpaca(start="2013-10-07 10:00", speed=60) as srv:
        h = {"APCA-API-KEY-ID": srv.key_id, "APCA-API-SECRET-KEY": srv.secret_key}
        opt = occ_symbol("SPY", "2013-10-08", "call", 168)
        endpoints = {
            "GET /_sim/clock (baseline)": ("GET", "/_sim/clock", {}),
            "GET /v2/clock": ("GET", "/v2/clock", {}),
            "GET /v2/account": ("GET", "/v2/account", {}),
            "GET /v2/positions": ("GET", "/v2/positions", {}),
            "GET /v2/orders": ("GET", "/v2/orders", {"params": {"status": "all", "limit": "50"}}),
            "GET /v2/stocks/bars (200 bars)": ("GET", "/v2/stocks/bars",
                                               {"params": {"symbols": "SPY", "timeframe": "1Min", "limit": "200",
                                                           "start": "2013-10-04T18:00:00Z"}}),
            "GET /v2/stocks/SPY/trades/latest": ("GET", "/v2/stocks/SPY/trades/latest", {}),
            "GET option chain (42 contracts)": ("GET", "/v1beta1/options/snapshots/SPY",
                                                {"params": {"expiration_date": "2013-10-07"}}),
            "GET /v2/options/contracts": ("GET", "/v2/options/contracts", {"params": {"limit": "100"}}),
        }
        with requests.Session() as http:
            # A position and some order history, so account/positions/orders do real work.
            http.post(f"{srv.url}/v2/orders", headers=h, json={
                "symbol": opt, "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"})
            for _ in range(20):
                http.post(f"{srv.url}/v2/orders", headers=h, json={
                    "symbol": "SPY", "qty": "1", "side": "buy", "type": "limit", "limit_price": "100",
                    "time_in_force": "day"})
            print(f"{'endpoint':40s} {'median ms':>10s} {'p99 ms':>8s} {'x baseline':>11s}")
            base = None
            for name, (method, path, kw) in endpoints.items():
                times = []
                for _ in range(N):
                    t0 = time.perf_counter()
                    r = http.request(method, srv.url + path, headers=h, timeout=5, **kw)
                    times.append((time.perf_counter() - t0) * 1e3)
                    assert r.status_code == 200, r.text
                med = statistics.median(times)
                base = base or med
                print(f"{name:40s} {med:10.2f} {_pct(times, 0.99):8.2f} {med / base:11.2f}")
            t0 = time.perf_counter()
            for i in range(N):
                r = http.post(f"{srv.url}/v2/orders", headers=h, json={
                    "symbol": "SPY", "qty": "1", "side": "buy" if i % 2 else "sell", "type": "market",
                    "time_in_force": "day"})
                assert r.status_code == 200, r.text
            per = (time.perf_counter() - t0) / N * 1e3
            print(f"{'POST /v2/orders (share market, mean)':40s} {per:10.2f}")

        # Paced load: the scanner's mix at RATE requests/s from 4 client threads.
        mix = [endpoints[k] for k in ("GET /v2/clock", "GET /v2/account", "GET /v2/positions",
                                      "GET /v2/stocks/bars (200 bars)", "GET /v2/stocks/SPY/trades/latest")]
        local = threading.local()
        latencies: list[float] = []
        lock = threading.Lock()

        def one(i: int, due: float) -> None:
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            if not hasattr(local, "s"):
                local.s = requests.Session()
            method, path, kw = mix[i % len(mix)]
            t = time.perf_counter()
            r = local.s.request(method, srv.url + path, headers=h, timeout=5, **kw)
            dt = (time.perf_counter() - t) * 1e3
            assert r.status_code == 200
            with lock:
                latencies.append(dt)

        total = int(RATE * SECONDS)
        start = time.perf_counter() + 0.1
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda i: one(i, start + i / RATE), range(total)))
        elapsed = time.perf_counter() - start
        print(f"\npaced load: {total} requests in {elapsed:.2f} s = {total / elapsed:.0f} req/s "
              f"(target {RATE}); median {statistics.median(latencies):.2f} ms, "
              f"p99 {_pct(latencies, 0.99):.2f} ms")

        # Unpaced: how far above the target the same mix goes with 4 threads.
        def flat_out(i: int) -> None:
            one(i, 0.0)

        latencies.clear()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(flat_out, range(2000)))
        wall = time.perf_counter() - t0
        print(f"flat out:   2000 requests in {wall:.2f} s = {2000 / wall:.0f} req/s; "
              f"median {statistics.median(latencies):.2f} ms, p99 {_pct(latencies, 0.99):.2f} ms")
        assert srv.errors == []


if __name__ == "__main__":
    main()
