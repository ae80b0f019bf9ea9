"""HTTP handling of the offline Alpaca server: routing, auth, faults, the request log.

Standard library only (``http.server.ThreadingHTTPServer``, HTTP/1.1 keep-alive). One
lock serializes the simulation: every request first brings the broker up to the
simulated now, then answers from that state.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from gammaride.errors import ConfigError
from gammaride.keys import mask
from gammaride.offline.broker import SimBroker
from gammaride.offline.faults import BEFORE, FaultInjector, FaultSpec
from gammaride.offline.market import SimClock, Tape, schedule, to_et
from gammaride.offline.options import OptionBook
from gammaride.offline.orders import ApiError
from gammaride.offline.params import Access, BrokerBehaviour, DataPlan, OptionChain, SimAccount
from gammaride.offline.routes import Request, find_route

if TYPE_CHECKING:
    from gammaride.offline.history import History



@lru_cache(maxsize=1)
def _sample_bars() -> pd.DataFrame:
    from gammaride.data.bars import sample_bars

    return sample_bars()


@lru_cache(maxsize=1)
def _sample_daily() -> pd.Series:
    from gammaride.data.bars import load_daily

    return load_daily()


class OfflineAlpaca:
    """A local Alpaca-compatible server over a replayed market (see docs/server.md).

    Use it as a context manager (serves from a background thread) or call
    ``serve_forever()`` in the foreground. Pass ``url`` as ``url_override`` to alpaca-py's
    TradingClient, StockHistoricalDataClient and OptionHistoricalDataClient.
    """

    def __init__(
        self,
        bars: pd.DataFrame | None = None,
        start: object = "2013-10-07 09:30",
        speed: float = 60.0,
        *,
        symbol: str = "SPY",
        daily: pd.Series | str | None = "sample",
        history: History | None = None,
        seed: int = 0,
        faults: FaultSpec | str | None = None,
        chain: OptionChain | None = None,
        account: SimAccount | None = None,
        behaviour: BrokerBehaviour | None = None,
        data: DataPlan | None = None,
        access: Access | None = None,
        max_log: int = 100_000,
    ) -> None:
        """``bars``, ``start`` and ``speed``: what is replayed from when, how fast (0: a
        stepped clock); the groups (gammaride.offline.params) default to Alpaca's free plan
        on a $100,000 account with the behaviours of today."""
        account, access = account or SimAccount(), access or Access()
        self.key_id, self.secret_key = access.key_id, access.secret_key
        self.clock = SimClock(start, speed)
        if isinstance(daily, str):
            if daily != "sample":
                raise ConfigError(f"daily={daily!r}: give a Series of daily closes, 'sample' or None")
            daily = _sample_daily() if symbol.upper() == "SPY" else None
        self.tape = Tape(_sample_bars() if bars is None else bars, symbol, daily)
        self.schedule = schedule()
        self.book = OptionBook(symbol, self.schedule, chain or OptionChain())
        self.broker = SimBroker(self.tape, self.book, self.schedule, self.clock.now_ns(), account,
                                behaviour or BrokerBehaviour(), seed)
        self.faults = FaultInjector(faults, seed=seed)
        self.history = history  # years of bars to fetch (gammaride.offline.history)
        self.data = data or DataPlan()
        now = self.clock.now_ns()
        self.foreign_holdings = [{**h, "created_ns": now} for h in account.foreign_holdings]
        self.request_log: list[dict] = []
        self.max_log = int(max_log)  # oldest entries go first, so a long rehearsal stays small
        self.errors: list[str] = []  # tracebacks of server bugs (tests assert it stays empty)
        self._orders_received: list[dict] = []
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._httpd = ThreadingHTTPServer((access.host, int(access.port)), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.app = self  # type: ignore[attr-defined]
        self.host, self.port = self._httpd.server_address[:2]

    # -------------------------------------------------------------- public API
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def now(self) -> pd.Timestamp:
        """The simulated time, tz-aware America/New_York."""
        return self.clock.now()

    def advance(self, seconds: float) -> pd.Timestamp:
        with self._lock:
            self.broker.sync(self.clock.advance(seconds))
            return self.clock.now()

    def advance_to(self, ts: object) -> pd.Timestamp:
        """Move the clock forward to ``ts`` (never backwards) and process what happened meanwhile."""
        with self._lock:
            self.broker.sync(self.clock.advance_to(ts))
            return self.clock.now()

    def orders_received(self) -> list[dict]:
        """Every order POST body received, in arrival order (rejected ones included)."""
        with self._lock:
            return [dict(b) if isinstance(b, dict) else b for b in self._orders_received]

    def set_faults(self, spec: FaultSpec | str | None) -> None:
        self.faults.set(spec)

    def start(self) -> OfflineAlpaca:
        """Serve from a background thread; a running clock starts now."""
        if self._thread is None:
            self.clock.run()
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                name=f"offline-alpaca-{self.port}", daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (Ctrl-C); a running clock starts now."""
        self.clock.run()
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        finally:
            self._httpd.server_close()

    def __enter__(self) -> OfflineAlpaca:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------- requests
    def handle(
        self, method: str, raw_path: str, headers, body_bytes: bytes
    ) -> tuple[int, dict[str, str], bytes | None, str | None, float]:
        """Answer one request: (status, headers, body bytes | None to drop, fault, delay)."""
        parts = urlsplit(raw_path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = None
        body_error = False
        if body_bytes:
            try:
                body = json.loads(body_bytes)
            except ValueError:
                body, body_error = body_bytes.decode("utf-8", "replace"), True
        entry = {
            "method": method, "path": path, "query": query, "body": body,
            "status": None, "response": None, "fault": None,
            "key_id": mask(headers["APCA-API-KEY-ID"]) if headers.get("APCA-API-KEY-ID") else None,
        }
        extra: dict[str, str] = {}
        delay = 0.0
        with self._lock:
            now = self.clock.now_ns()
            entry["time"] = to_et(now)
            self.broker.sync(now)
            route, params = find_route(method, path)
            if method == "POST" and path == "/v2/orders":
                self._orders_received.append(body)
            fault = None
            if (headers.get("APCA-API-KEY-ID") != self.key_id
                    or headers.get("APCA-API-SECRET-KEY") != self.secret_key):
                status, payload = 401, {"code": 40110000, "message": "request is not authorized"}
            elif route is None:
                status, payload = 404, {"message": "Not Found"}
            else:
                if route.endpoint is not None:
                    fault = self.faults.draw(route.endpoint)
                if fault in BEFORE:
                    status, payload, extra = _fault_answer(fault)
                elif body_error:
                    status, payload = 400, {"code": 40010000, "message": "request body format is invalid"}
                else:
                    try:
                        status, payload = route.handler(Request(self, params, query, body, now))
                    except ApiError as err:
                        status, payload = err.status, err.body
                if fault == "timeout":
                    delay = self.faults.spec.slow_seconds if self.faults.spec else 0.0
            entry["fault"] = fault
            entry["status"] = status
            entry["response"] = payload
            self.request_log.append(entry)
            if len(self.request_log) > self.max_log:
                del self.request_log[: len(self.request_log) - self.max_log]
        if status == 204:
            data = b""
        else:
            data = json.dumps(payload, separators=(",", ":")).encode()
        if fault == "malformed":
            data = data[: max(1, len(data) // 2)]
            entry["response"] = data.decode("utf-8", "replace")
        if fault == "drop":
            entry["status"] = None
            entry["response"] = None
            return status, extra, None, fault, delay
        return status, extra, data, fault, delay


def _fault_answer(kind: str) -> tuple[int, dict, dict]:
    if kind == "429":
        reset = str(int(time.time()) + 60)
        headers = {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
        return 429, {"code": 42910000, "message": "rate limit exceeded"}, headers
    if kind == "500":
        return 500, {"code": 50010000, "message": "internal server error occurred"}, {}
    return 503, {"message": "service unavailable"}, {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gammaride-offline-alpaca"
    sys_version = ""
    # Small JSON answers on keep-alive sockets: Nagle + delayed ACK would add ~40 ms each.
    disable_nagle_algorithm = True
    timeout = 120

    def log_message(self, format: str, *args: object) -> None:  # the request log is the log
        pass

    def _serve(self) -> None:
        app: OfflineAlpaca = self.server.app  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, extra, data, _fault, delay = app.handle(self.command, self.path, self.headers, body)
        except Exception as exc:  # a server bug: answer 500 and keep the traceback for the log
            app.errors.append(traceback.format_exc())
            status, extra, delay = 500, {}, 0.0
            data = json.dumps({"message": f"offline server error: {exc!r}"}).encode()
        if delay:
            time.sleep(delay)
        if data is None:  # dropped: close the socket without an answer
            self.close_connection = True
            return
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            if data:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout)
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve


__all__ = ["OfflineAlpaca"]
