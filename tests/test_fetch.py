"""gammaride fetch through the real alpaca-py clients against the offline server's history."""

import json

import pandas as pd
import pytest

from gammaride.cli import main
from gammaride.data.cache import BarCache
from gammaride.data.fetch import Fetcher, RateLimiter
from gammaride.errors import BrokerError
from gammaride.offline import OfflineAlpaca
from gammaride.offline.history import History

NOW = "2026-11-30 12:00"


@pytest.fixture(scope="module")
def server():
    # three simulated years, minute bars on every 10th session: small and fast
    with OfflineAlpaca(start=NOW, speed=0, history=History(start="2022-01-03", end="2024-12-31", every=10)) as srv:
        yield srv


def _fetcher(server, root, **kw):
    return Fetcher(BarCache(root), server.key_id, server.secret_key, url=server.url, sleep=lambda s: None, **kw)


class _Interrupt:
    """A limiter clock that presses Ctrl-C at the n-th request."""

    def __init__(self, n):
        self.n = n
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return float(self.calls)


def test_a_multi_year_fetch_is_interrupted_resumes_and_then_sends_nothing(server, tmp_path):
    months = pd.period_range("2022-01", "2024-12", freq="M")
    first = _fetcher(server, tmp_path, limiter=RateLimiter(clock=_Interrupt(12)))
    with pytest.raises(KeyboardInterrupt):
        first.fetch_stock("SPY", "2022-01-01", "2024-12-31")
    done = sorted(p.stem for p in (tmp_path / "stocks" / "SPY" / "1Min").glob("*.parquet"))
    assert 0 < len(done) < len(months)  # whole months only, no partial file left behind
    assert not list(tmp_path.rglob("*.part"))

    second = _fetcher(server, tmp_path)
    stats = second.fetch_stock("SPY", "2022-01-01", "2024-12-31")
    fetched = [m.split()[1] for m in stats.months_fetched if m.startswith("1Min")]
    assert sorted(set(fetched) & set(done)) == []  # nothing fetched twice
    # one clock request, then one request per missing minute month (a month is one page)
    assert stats.requests == 1 + len(fetched)

    third = _fetcher(server, tmp_path)
    before = len(server.request_log)
    assert third.fetch_stock("SPY", "2022-01-01", "2024-12-31").requests == 0
    assert len(server.request_log) == before

    cache = BarCache(tmp_path)
    minutes = cache.read_stock("SPY", "1Min", pd.Timestamp("2022-01-01"), pd.Timestamp("2024-12-31"))
    served = server.history.minute_bars(0, 2**62)
    assert len(minutes) == len(served["start"])
    assert (minutes["close"].to_numpy() == served["close"]).all()
    daily = cache.read_stock("SPY", "1Day", pd.Timestamp("2022-01-01"), pd.Timestamp("2024-12-31"))
    assert len(daily) == len(server.history.dates)
    rec = cache.record(cache.stock_path("SPY", "1Min", "2023-06"))
    assert rec.feed == "sip" and rec.complete


def test_pages_are_followed_and_429_backs_off(tmp_path):
    hist = History(start="2024-01-02", end="2024-03-28", every=1, max_page=2000)
    with OfflineAlpaca(start=NOW, speed=0, history=hist, faults="bars:429=0.3", seed=3) as srv:
        slept = []
        f = Fetcher(BarCache(tmp_path), srv.key_id, srv.secret_key, url=srv.url, sleep=slept.append)
        stats = f.fetch_stock("SPY", "2024-01-01", "2024-03-31")
        pages = [e for e in srv.request_log if e["path"] == "/v2/stocks/bars" and e["status"] == 200]
        answered = [e["status"] for e in srv.request_log]
    assert stats.retries_429 == answered.count(429) > 0
    assert set(slept) <= {2.0, 4.0, 8.0, 16.0} and sum(slept) == stats.backoff_seconds
    minutes = BarCache(tmp_path).read_stock("SPY", "1Min", pd.Timestamp("2024-01-01"), pd.Timestamp("2024-03-31"))
    assert len(minutes) == len(hist.minute_bars(0, 2**62)["start"]) > 20_000
    assert sum(1 for e in pages if e["query"].get("page_token")) >= 9  # every page followed
    assert stats.requests == len(answered)


def test_rate_limiter_waits_for_the_oldest_request_to_leave_the_minute():
    t = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        t[0] += s

    lim = RateLimiter(per_minute=3, clock=lambda: t[0], sleep=sleep)
    for step in (0.0, 1.0, 1.0):
        t[0] += step
        lim.acquire()
    lim.acquire()
    assert slept == [60.0 - 2.0] and lim.waited == pytest.approx(58.0)


def test_recent_sip_is_refused_with_403(server, tmp_path):
    # a clock 30 minutes ahead of the server's: the last minutes asked for are recent SIP there
    ahead = pd.Timestamp(NOW, tz="America/New_York") + pd.Timedelta(minutes=30)
    with pytest.raises(BrokerError, match="403.*subscription does not permit querying recent SIP data"):
        _fetcher(server, tmp_path, now=ahead).fetch_stock("SPY", "2026-11-01", "2026-11-30")
    assert server.request_log[-1]["status"] == 403
    assert not (tmp_path / "stocks" / "SPY" / "1Min" / "2026-11.parquet").exists()


def test_fetch_command_reports_requests_and_then_that_nothing_was_sent(server, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    args = ["fetch", "SPY", "--start", "2024-01-01", "--end", "2024-02-29", "--url", server.url,
            "--journal", str(tmp_path / "j.duckdb"), "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["requests"] == 1 + 1 + 2 and out["cache"] == str(tmp_path / "history")
    assert main(args[:-1]) == 0
    assert "no request sent" in capsys.readouterr().out
