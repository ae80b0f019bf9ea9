"""Alpaca API keys: where they come from, refusing placeholders, never showing the secret.

Keys are looked up in ``ALPACA_API_KEY`` / ``ALPACA_SECRET_KEY``, then the SDK's
``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``, then Colab secrets. Empty values and
placeholders (``PASTE_HERE``, ``your_key`` ...) are refused before any request is sent.
The secret lives only inside :class:`Keys`; its ``repr`` and ``str`` mask it, and only the
key id is ever shown, masked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gammaride.errors import CredentialsError

KEY_VARS = (("ALPACA_API_KEY", "ALPACA_SECRET_KEY"), ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY"))
# Words people leave in a template cell instead of a key.
_PLACEHOLDER = re.compile(
    r"(paste|your[_ -]?(api[_ -]?)?(key|secret)|placeholder|change[_ -]?me|<.*>|^x+$|"
    r"^(insert|replace|todo|none|null|key|secret|test|dummy)$|^\*+$|\.\.\.)",
    re.IGNORECASE,
)


def mask(key_id: str | None) -> str:
    """``PKAB...WXYZ``: enough to tell keys apart, not enough to use one."""
    if not key_id:
        return "(none)"
    if len(key_id) <= 8:
        return key_id[:2] + "***"
    return f"{key_id[:4]}...{key_id[-4:]}"


def check_value(name: str, value: str | None) -> str:
    """The value stripped, or :class:`CredentialsError` naming the variable and the fix."""
    text = (value or "").strip()
    if not text:
        raise CredentialsError(
            f"{name} is empty; set it to your Alpaca paper key (Colab: add it under Secrets, "
            f"or export {name}=...)"
        )
    if _PLACEHOLDER.search(text):
        # Show a masked id so the user sees which value is wrong; never any of a secret.
        shown = "value hidden" if "SECRET" in name.upper() else mask(text)
        raise CredentialsError(
            f"{name} is still a placeholder ({shown}); paste the real key from the Alpaca "
            "dashboard (Paper Trading > API Keys)"
        )
    return text


@dataclass(frozen=True)
class Keys:
    """An API key pair. The secret never appears in ``repr``/``str``."""

    key_id: str
    secret: str = field(repr=False)
    source: str = "environment"

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_id", check_value("API key id", self.key_id))
        object.__setattr__(self, "secret", check_value("API secret key", self.secret))

    @property
    def masked(self) -> str:
        return mask(self.key_id)

    def __str__(self) -> str:
        return f"Keys({self.masked}, secret hidden, from {self.source})"

    __repr__ = __str__


def _colab_secret(name: str) -> str | None:
    try:  # only inside Colab
        from google.colab import userdata  # type: ignore[import-not-found]
    except Exception:
        return None
    try:
        return userdata.get(name)
    except Exception:  # secret missing or notebook access not granted
        return None


def find_keys(env: Mapping[str, str] | None = None, colab: bool = True) -> Keys | None:
    """The first key pair set anywhere, checked; ``None`` when no variable is set at all.

    A pair that is set but empty or a placeholder raises :class:`CredentialsError`:
    silently falling back to offline mode would hide the mistake.
    """
    env = os.environ if env is None else env
    for id_var, secret_var in KEY_VARS:
        key_id, secret = env.get(id_var), env.get(secret_var)
        if key_id is not None or secret is not None:
            return Keys(
                check_value(id_var, key_id), check_value(secret_var, secret), source=f"${id_var}"
            )
    if colab:
        key_id, secret = _colab_secret("ALPACA_API_KEY"), _colab_secret("ALPACA_SECRET_KEY")
        if key_id is not None or secret is not None:
            return Keys(
                check_value("ALPACA_API_KEY", key_id),
                check_value("ALPACA_SECRET_KEY", secret),
                source="Colab secrets",
            )
    return None


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every given secret replaced, for messages built from server replies."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


# --- where the keys may be sent ---------------------------------------------------------
# Alpaca's own API hosts (over https only); every other host must be this machine.
ALPACA_HOSTS = frozenset({"api.alpaca.markets", "paper-api.alpaca.markets", "data.alpaca.markets"})
# The only shape a base URL may have: scheme://host[:port][/path], ASCII, nothing else. A
# URL outside it (user names, backslashes, spaces, %-escapes, queries, non-ASCII host names
# that IDNA would rewrite) is read differently by different parsers.
_URL_SHAPE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>(?:/[A-Za-z0-9._~-]*)*)",
    re.ASCII,
)


def _url_refusal(url: str) -> str | None:
    """Why ``url`` cannot be a base URL, in words; ``None`` when its shape is fine."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        return "it contains a space or control character"
    if "\\" in url:
        return "it contains a backslash, which HTTP clients read as the end of the host"
    if "@" in url:
        return "it contains a user name or password (an '@'), which hides the real host"
    if not url.isascii():
        return "it contains non-ASCII characters, which HTTP clients rewrite into another host name"
    if "?" in url or "#" in url:
        return "it has a query or fragment; give only scheme://host:port"
    m = _URL_SHAPE.fullmatch(url)
    if m is None:
        return "it is not of the form http://127.0.0.1:PORT"
    if m["scheme"].lower() not in ("http", "https"):
        return f"the scheme {m['scheme']!r} is not http or https"
    return None


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _client_host(url: str) -> str | None:
    """The host requests (and urllib3 under it) would connect to for ``url``."""
    from requests import PreparedRequest
    from urllib3.util import parse_url

    try:
        prepared = PreparedRequest()
        prepared.prepare_url(url, None)
        hosts = {parse_url(prepared.url).host, parse_url(url).host}
    except Exception:  # noqa: BLE001 - any parse failure is a refusal
        return None
    return hosts.pop().lower() if len(hosts) == 1 and None not in hosts else None


def safe_url(url: object, *, what: str = "--url", alpaca: bool = False) -> str:
    """``url`` rebuilt from its parsed parts when every request to it stays on this machine
    (or, with ``alpaca``, goes to Alpaca's own hosts over https); otherwise
    :class:`ConfigError` before anything is sent. Every request carries the API keys."""
    from gammaride.errors import ConfigError

    text = url if isinstance(url, str) else ""
    reason = _url_refusal(text) if text else "it is empty"
    shown = repr(re.sub(r"//.*@", "//***@", text))  # a user name part may hold a password
    where = "this machine (127.0.0.1, ::1 or localhost)" + (" or Alpaca's API hosts" if alpaca else "")
    fix = (f"only an offline server on {where} is allowed, since every request carries your "
           "Alpaca keys; pass the URL 'gammaride serve' prints")
    if reason is None:
        m = _URL_SHAPE.fullmatch(text)
        assert m is not None
        scheme, host, port, path = m["scheme"].lower(), m["host"].lower(), m["port"], m["path"]
        if port is not None and not 0 < int(port) <= 65535:
            reason = f"port {port} is not a TCP port"
        elif _client_host(text) != host:  # the HTTP client would read another host
            reason = "the HTTP client reads a different host from it"
        elif not (_is_loopback(host) or (alpaca and scheme == "https" and host in ALPACA_HOSTS)):
            reason = f"the host {host} is not this machine"
        else:
            return f"{scheme}://{host}" + (f":{int(port)}" if port else "") + path.rstrip("/")
    raise ConfigError(f"{what} {shown}: refused, {reason}; {fix}")
