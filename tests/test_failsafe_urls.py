"""Keys never leave this machine: every URL the broker or data clients accept is read the
way the HTTP client will read it, and refused before any request when it could reach
another host. No test here opens a connection to anything but loopback."""

from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.error import HTTPError

import pandas as pd
import pytest
from requests import PreparedRequest
from urllib3.util import parse_url

from gammaride import cli
from gammaride.config import ET
from gammaride.errors import BrokerError, ConfigError
from gammaride.keys import Keys, safe_url
from gammaride.scanner.broker import AlpacaBroker

KEY_ID, SECRET = "PKREALKEYREALKEY1234", "s" * 40

HOSTILE = [
    ("http://evil.com\\@127.0.0.1:1", "backslash"),
    ("http://127.0.0.1:1\\@evil.com", "backslash"),
    ("http://evil.com\\.127.0.0.1:1", "backslash"),
    ("http://user:pw@127.0.0.1:1", "user name"),
    ("http://127.0.0.1:1@evil.com", "user name"),
    ("http://127.0.0.1%2f@evil.com", "user name"),
    ("http://evil.com#@127.0.0.1:1", "user name"),
    ("http://evil.com?@127.0.0.1:1", "user name"),
    ("http://127.0.0.1:1/#frag", "query or fragment"),
    ("http://127.0.0.1:1?x=1", "query or fragment"),
    ("http://127.0.0.1:1 @evil.com", "space or control"),
    ("http://127.0.0.1:1\t@evil.com", "space or control"),
    ("http://evil.com\n127.0.0.1", "space or control"),
    ("http://\x00127.0.0.1:1", "space or control"),
    (" http://127.0.0.1:1", "space or control"),
    ("http://１２７.０.０.１:1", "non-ASCII"),
    ("http://ⓔvil.com", "non-ASCII"),
    ("http://127.0.0.1%2eevil.com", "not of the form"),
    ("http:/127.0.0.1:1", "not of the form"),
    ("//127.0.0.1:1", "not of the form"),
    ("127.0.0.1:1", "not of the form"),
    ("http://127.0.0.1:abc", "not of the form"),
    ("ftp://127.0.0.1:21", "scheme 'ftp'"),
    ("file://localhost/etc", "scheme 'file'"),
    ("gopher://127.0.0.1:70", "scheme 'gopher'"),
    ("http://127.0.0.1:0", "port 0"),
    ("http://127.0.0.1:65536", "port 65536"),
    ("http://evil.com:80", "host evil.com"),
    ("http://203.0.113.9:8080", "host 203.0.113.9"),
    ("http://127.0.0.1.evil.com", "host 127.0.0.1.evil.com"),
    ("http://localhost.evil.com", "host localhost.evil.com"),
    ("http://localhost.", "host localhost."),
    ("http://127.1:1", "host 127.1"),
    ("http://2130706433:1", "host 2130706433"),
    ("http://0x7f000001:1", "host 0x7f000001"),
    ("http://0.0.0.0:1", "host 0.0.0.0"),
    ("http://[::ffff:203.0.113.9]:1", "host [::ffff:203.0.113.9]"),
    ("https://paper-api.alpaca.markets", "host paper-api.alpaca.markets"),
    ("", "empty"),
]


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connect is recorded; one to a non-loopback address fails the test
    before it leaves the machine."""
    seen: list[object] = []
    real_connect = socket.socket.connect

    def guarded(sock, address):  # noqa: ANN001
        seen.append(address)
        host = address[0] if isinstance(address, tuple) else ""
        try:
            loopback = ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise AssertionError(f"a test tried to connect to {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return seen


@pytest.fixture
def real_keys(monkeypatch):
    for name in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALPACA_API_KEY", KEY_ID)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET)


@pytest.mark.parametrize(("url", "reason"), HOSTILE)
def test_a_hostile_url_is_refused_with_the_reason(url, reason):
    with pytest.raises(ConfigError) as err:
        safe_url(url)
    message = str(err.value)
    assert reason in message and "only an offline server on this machine" in message
    assert "\n" not in message and "pw" not in message  # one line; a password is never echoed


@pytest.mark.parametrize(("url", "reason"), HOSTILE)
@pytest.mark.parametrize("command", ["check", "scan"])
def test_check_and_scan_refuse_a_hostile_url_before_any_request(
    url, reason, command, tmp_path, capsys, no_network, real_keys
):
    argv = [command, "--url", url, "--journal", str(tmp_path / "j.duckdb")]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == ConfigError.exit_code
    assert out == "" and err.count("\n") == 1 and reason in err
    assert no_network == []  # refused before any connection at all
    assert not (tmp_path / "j.duckdb").exists()
    assert SECRET not in err and KEY_ID not in err


@pytest.mark.parametrize(("url", "reason"), HOSTILE)
def test_the_broker_itself_refuses_a_hostile_url(url, reason, no_network):
    if "paper-api.alpaca.markets" in url:
        assert AlpacaBroker(Keys(KEY_ID, SECRET), url=url).url == url  # Alpaca's own host
        return
    with pytest.raises(ConfigError, match="broker URL"):
        AlpacaBroker(Keys(KEY_ID, SECRET), url=url)
    assert no_network == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://127.0.0.1:8765/", "http://127.0.0.1:8765"),
        ("HTTP://LocalHost:1", "http://localhost:1"),
        ("http://[::1]:5", "http://[::1]:5"),
        ("http://127.5.6.7:80/base", "http://127.5.6.7:80/base"),
    ],
)
def test_an_accepted_url_is_rebuilt_and_the_http_client_connects_to_loopback(url, expected):
    rebuilt = safe_url(url)
    assert rebuilt == expected
    prepared = PreparedRequest()
    prepared.prepare_url(rebuilt + "/v2/account", None)
    host = parse_url(prepared.url).host.strip("[]")
    assert host == "localhost" or ipaddress.ip_address(host).is_loopback


def test_alpaca_hosts_are_allowed_to_the_broker_only_over_https():
    assert safe_url("https://api.alpaca.markets", alpaca=True) == "https://api.alpaca.markets"
    with pytest.raises(ConfigError, match="host api.alpaca.markets"):
        safe_url("http://api.alpaca.markets", alpaca=True)
    with pytest.raises(ConfigError, match="host api.alpaca.markets.evil.com"):
        safe_url("https://api.alpaca.markets.evil.com", alpaca=True)


class _Recorder(BaseHTTPRequestHandler):
    """A loopback server that redirects every request (when ``target`` is set) and records
    the key headers it received."""

    target: str | None = None
    seen: list[str | None]

    def _reply(self) -> None:
        type(self).seen.append(self.headers.get("APCA-API-SECRET-KEY"))
        if self.target:
            self.send_response(302)
            self.send_header("Location", self.target + self.path)
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _reply

    def log_message(self, *args):  # noqa: ANN002
        pass


def _serve(target: str | None) -> tuple[ThreadingHTTPServer, type[_Recorder]]:
    handler = type("Handler", (_Recorder,), {"target": target, "seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, handler


def test_a_redirect_is_not_followed_with_the_keys(no_network):
    """A server on loopback that redirects elsewhere never gets the keys forwarded: both the
    broker's clients and the stepped clock of ``--url`` refuse redirects."""
    from gammaride.connection import _remote_stepped

    elsewhere, elsewhere_seen = _serve(None)
    redirector, redirector_seen = _serve(f"http://127.0.0.1:{elsewhere.server_address[1]}")
    try:
        url = f"http://127.0.0.1:{redirector.server_address[1]}"
        broker = AlpacaBroker(Keys(KEY_ID, SECRET), url=url, timeout=2.0, retry_wait=0.01, read_attempts=1)
        with pytest.raises(BrokerError, match="account failed"):
            broker.account()
        with pytest.raises(HTTPError, match="redirect refused"):
            _remote_stepped(url, Keys(KEY_ID, SECRET)).sleep_until(pd.Timestamp("2013-10-07 09:31", tz=ET))
        assert redirector_seen.seen and set(redirector_seen.seen) == {SECRET}
        assert elsewhere_seen.seen == []  # the redirect target never saw a request
    finally:
        for httpd in (elsewhere, redirector):
            httpd.shutdown()
            httpd.server_close()


def test_serve_warns_when_listening_beyond_loopback(capsys):
    from gammaride.commands.serve import network_warning

    assert network_warning("127.0.0.1") is None
    assert network_warning("localhost") is None
    assert network_warning("::1") is None
    for host in ("0.0.0.0", "::", "192.168.1.5"):
        assert "reachable from the network" in network_warning(host)
    # the warning comes first, before the server is built (an invalid port stops it here)
    code = cli.main(["serve", "--host", "0.0.0.0", "--port", "70000"])
    err = capsys.readouterr().err.splitlines()
    assert code == ConfigError.exit_code
    assert "reachable from the network" in err[0] and "--port 70000" in err[1]
