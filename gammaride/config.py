"""Settings: every number of the strategy with its default, validated.

Precedence (later wins): defaults < TOML file < ``GAMMARIDE_*`` environment variables
< explicit keyword overrides. A TOML file may hold the keys at top level or under a
``[gammaride]`` table.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

from gammaride.errors import ConfigError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ENV_PREFIX = "GAMMARIDE_"
ET = "America/New_York"  # market time: every bar, decision and session date
# nanoseconds, the unit of every epoch time held as an integer
NS_SEC = 1_000_000_000
NS_MIN = 60 * NS_SEC
NS_DAY = 86_400 * NS_SEC
MAX_SPEED = 1e6  # market seconds per real second of a simulated clock: a year of sessions in under a minute
# GAMMARIDE_* variables that are not settings (the notebook's CI run, where the browser
# test keeps its screenshots, where the exchange calendar's table is cached)
OTHER_ENV = frozenset({
    "GAMMARIDE_JOURNAL", "GAMMARIDE_LIVE_CONFIRM", "GAMMARIDE_TRACEBACK",
    "GAMMARIDE_NOTEBOOK_CI", "GAMMARIDE_SCREENSHOTS", "GAMMARIDE_CACHE_DIR",
})


def _num(lo: float, hi: float, doc: str) -> dict:
    return {"range": (lo, hi), "doc": doc}


def _clock(doc: str) -> dict:
    return {"clock": True, "doc": doc}


def _choice(options: tuple[str, ...], doc: str) -> dict:
    return {"choices": options, "doc": doc}


@dataclass(frozen=True)
class Settings:
    """The seed's rules as data. Nothing in the engine hard-codes these numbers."""

    symbol: str = field(default="SPY", metadata={"doc": "underlying symbol"})
    # time gate (decision time, America/New_York)
    am_start: str = field(default="09:35", metadata=_clock("AM hedging window start"))
    am_end: str = field(default="10:30", metadata=_clock("AM hedging window end (exclusive)"))
    pm_start: str = field(default="15:00", metadata=_clock("PM hedging window start"))
    pm_end: str = field(default="15:55", metadata=_clock("PM hedging window end (exclusive)"))
    # volume gate
    vol_lookback: int = field(default=20, metadata=_num(2, 390, "bars in the volume average"))
    vol_threshold: float = field(default=2.0, metadata=_num(1.0, 20.0, "volume spike ratio"))
    debug_vol_threshold: float = field(default=1.5, metadata=_num(1.0, 20.0, "volume spike ratio with debug on"))
    debug: bool = field(default=False, metadata={"doc": "verbose scans, lower volume bar"})
    # IV gate and sizing multipliers
    iv_threshold: float = field(default=0.30, metadata=_num(0.0, 1.0, "minimum IV percentile"))
    iv_band_high: float = field(default=0.50, metadata=_num(0.0, 1.0, "IV percentile above which size is raised"))
    iv_mult_low: float = field(default=0.8, metadata=_num(0.0, 5.0, "size multiplier, low IV"))
    iv_mult_mid: float = field(default=1.0, metadata=_num(0.0, 5.0, "size multiplier, mid IV"))
    iv_mult_high: float = field(default=1.5, metadata=_num(0.0, 5.0, "size multiplier, high IV"))
    iv_history_sessions: int = field(default=20, metadata=_num(2, 2520, "recorded sessions before IV history replaces the proxy"))
    # direction and ATR
    direction_lookback: int = field(default=5, metadata=_num(1, 390, "bars for price change"))
    atr_period: int = field(default=14, metadata=_num(2, 390, "Wilder ATR period"))
    # 200 bars: Wilder's ATR has forgotten its seed to 1e-6, so live agrees with replay
    min_bars: int = field(default=200, metadata=_num(200, 10000, "bars fetched live"))
    # exits
    tp_mult: float = field(default=2.0, metadata=_num(0.1, 10.0, "Phase 1 TP in ATRs"))
    sl_mult: float = field(default=1.0, metadata=_num(0.1, 10.0, "Phase 1 SL in ATRs"))
    max_hold_minutes: int = field(default=20, metadata=_num(1, 390, "max hold"))
    hard_stop: str = field(default="15:55", metadata=_clock("latest exit time of day"))
    close_buffer_minutes: int = field(default=5, metadata=_num(0, 120, "hard stop before the session close"))
    cutoff_buffer_minutes: int = field(default=5, metadata=_num(0, 120, "hard stop before the contract's broker cut-off"))
    index_etf_cutoff: str = field(default="15:30", metadata=_clock("expiry-day order cut-off for SPY/QQQ/IWM"))
    other_cutoff: str = field(default="15:15", metadata=_clock("expiry-day cut-off, others"))
    index_etfs: tuple[str, ...] = field(default=("SPY", "QQQ", "IWM"), metadata={"doc": ""})
    # sizing and risk
    starting_equity: float = field(default=100_000.0, metadata=_num(1.0, 1e10, "replay/offline account equity"))
    risk_per_trade: float = field(default=0.01, metadata=_num(0.0001, 0.2, "equity risked per ATR"))
    max_contracts: int = field(default=10, metadata=_num(1, 10000, "contracts per trade"))
    max_open_positions: int = field(default=1, metadata=_num(1, 100, "open positions"))
    max_trades_per_day: int = field(default=10, metadata=_num(1, 1000, "entries per day"))
    daily_loss_limit: float = field(default=0.03, metadata=_num(0.001, 1.0, "kill switch, fraction of start-of-day equity"))
    replay_delta: float = field(default=0.5, metadata=_num(0.01, 1.0, "option delta assumed for replay dollar P&L"))
    # costs of an option round trip (gammaride.rules.costs) and replay of real history
    option_fee_per_contract: float = field(default=0.03, metadata=_num(0.0, 10.0, "regulatory/clearing fees passed through, $ per contract per side"))
    option_spread: float = field(default=0.03, metadata=_num(0.0, 10.0, "option bid-ask width where no quote is known, $ per share"))
    option_slippage: float = field(default=0.01, metadata=_num(0.0, 10.0, "fill beyond the half spread, $ per share per side"))
    option_strike_step: float = field(default=1.0, metadata=_num(0.01, 100.0, "strike grid of the replayed option chain"))
    option_bar_max_age_minutes: int = field(default=3, metadata=_num(0, 30, "oldest option bar that prices a minute without its own bar"))
    outlier_atr: float = field(default=5.0, metadata=_num(1.0, 1000.0, "ATRs beyond its body and its neighbours' that make a print an outlier"))
    # live scanner
    scans: int = field(default=55, metadata=_num(1, 10000, "scans per run"))
    scan_offset_seconds: float = field(default=5.0, metadata=_num(0.0, 50.0, "seconds after the minute each scan starts"))
    stale_after_minutes: int = field(default=3, metadata=_num(1, 60, "bar age that is stale"))
    feed: str = field(default="iex", metadata=_choice(("iex", "sip"), "stock data feed"))
    option_feed: str = field(default="auto", metadata=_choice(("auto", "opra", "indicative"), "option quotes: auto = OPRA when the account has it, else indicative"))
    # marketable limits: the price steps an entry or exit may walk past the quote
    max_slippage_per_contract: float = field(default=10.0, metadata=_num(0.0, 1000.0, "USD per contract a limit may go past the quote"))
    reprice_steps: int = field(default=3, metadata=_num(0, 20, "reprices after the first limit"))
    reprice_seconds: float = field(default=5.0, metadata=_num(0.5, 120.0, "seconds each limit price rests before a reprice"))
    max_quote_age_seconds: float = field(default=15.0, metadata=_num(1.0, 3600.0, "an older option quote is not priced from"))
    instrument: str = field(default="options", metadata=_choice(("options", "shares"), "what to trade"))
    max_spread_pct: float = field(default=0.15, metadata=_num(0.0, 5.0, "widest option spread, fraction of mid"))
    entry_timeout_seconds: float = field(default=30.0, metadata=_num(1.0, 600.0, "cancel an unfilled entry after"))
    monitor_seconds: float = field(default=5.0, metadata=_num(0.5, 60.0, "exit checks between scans while a position is open"))

    # dealer gamma (measured at every scan; the gate is off until the journal says it helps)
    gamma_gate: str = field(default="off", metadata=_choice(("off", "short_only"), "enter only when dealers are short gamma"))
    gamma_expiry_days: int = field(default=7, metadata=_num(0, 60, "expirations within this many days enter the gamma measure"))
    gamma_strike_range: float = field(default=0.05, metadata=_num(0.005, 0.5, "strikes within this fraction of spot enter the gamma measure"))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _validate(f, getattr(self, f.name))
        if not _to_time(self.am_start) < _to_time(self.am_end):
            raise ConfigError(
                f"am_start {self.am_start} must be before am_end {self.am_end}; fix the window"
            )
        if not _to_time(self.pm_start) < _to_time(self.pm_end):
            raise ConfigError(
                f"pm_start {self.pm_start} must be before pm_end {self.pm_end}; fix the window"
            )
        if self.iv_band_high < self.iv_threshold:
            raise ConfigError(
                f"iv_band_high {self.iv_band_high} is below iv_threshold {self.iv_threshold}; "
                "set iv_band_high >= iv_threshold"
            )
        symbol = str(self.symbol).strip().upper()
        if not re.fullmatch(r"[A-Z][A-Z.]{0,5}", symbol):
            raise ConfigError(f"setting symbol={self.symbol!r} is not a ticker; write e.g. 'SPY'")
        object.__setattr__(self, "symbol", symbol)

    # derived values -------------------------------------------------------------
    @property
    def volume_threshold(self) -> float:
        """The volume-spike ratio in force: 1.5 with debug on, else 2.0 (defaults)."""
        return self.debug_vol_threshold if self.debug else self.vol_threshold

    @property
    def warmup_bars(self) -> int:
        """Bars of history the first decision needs (volume average and ATR)."""
        return max(self.vol_lookback, self.atr_period, self.direction_lookback)

    def clock(self, name: str) -> time:
        return _to_time(getattr(self, name))

    def replace(self, **changes: Any) -> Settings:
        _check_names(changes)
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in changes.items()})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = None,
        env: dict[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Defaults, then the TOML file (if any), then ``GAMMARIDE_*`` variables, then overrides."""
        values: dict[str, Any] = {}
        if path is not None:
            values.update(_read_toml(Path(path)))
        env = os.environ if env is None else env
        for key, raw in env.items():
            if key.upper().startswith(ENV_PREFIX) and key.upper() not in OTHER_ENV:
                values[_env_name(key)] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        _check_names(values)
        return cls(**{k: _coerce(k, v) for k, v in values.items()})


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _env_name(key: str) -> str:
    """The setting a ``GAMMARIDE_*`` variable names; a misspelt one is refused the way a
    misspelt TOML key is, with the closest variable name."""
    name = key[len(ENV_PREFIX) :].lower()
    if name in _FIELDS:
        return name
    names = [ENV_PREFIX + n.upper() for n in _FIELDS] + sorted(OTHER_ENV)
    close = difflib.get_close_matches(key.upper(), names, n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    raise ConfigError(f"unknown environment variable {key}.{hint} (unset it or fix its name)")


def _check_names(values: dict[str, Any]) -> None:
    for name in values:
        if name not in _FIELDS:
            close = difflib.get_close_matches(name, list(_FIELDS), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown setting '{name}'.{hint}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory; give the path of a .toml file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror}); check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}); fix the syntax") from None
    if "gammaride" not in data:
        return dict(data)
    table = data["gammaride"]
    outside = [k for k in data if k != "gammaride"]
    if not isinstance(table, dict) or outside:
        raise ConfigError(
            f"config file {path}: put every setting inside the [gammaride] table "
            f"(found {'gammaride = ' + repr(table) if not isinstance(table, dict) else ', '.join(outside)} outside it)"
        )
    return dict(table)


_KIND_WORDS = {int: "a whole number", float: "a finite number", bool: "true or false",
               tuple: "a comma-separated list", str: "text"}


def _coerce(name: str, value: Any) -> Any:
    """Turn TOML/env text into the field's type, with an error naming the field."""
    f = _FIELDS[name]
    kind = type(f.default)
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"setting {name}={value!r} is a true/false value; give {_KIND_WORDS[kind]}")
    if isinstance(value, kind):
        return value
    try:
        if kind is bool:
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError
        if kind is int:
            as_float = float(value)
            if not math.isfinite(as_float) or as_float != int(as_float):
                raise ValueError
            return int(as_float)
        if kind is float:
            return float(value)
        if kind is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(v).strip().upper() for v in items if str(v).strip())
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"setting {name}={value!r} is not {_KIND_WORDS[kind]}; give {_KIND_WORDS[kind]}"
        ) from None


def _validate(f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    if "range" in meta:
        lo, hi = meta["range"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"setting {f.name}={value!r} must be a number in [{lo}, {hi}]")
        if not (lo <= value <= hi):  # also rejects NaN
            raise ConfigError(
                f"setting {f.name}={value!r} is out of range; valid range is [{lo}, {hi}]"
            )
    if meta.get("clock"):
        _to_time(value, name=f.name)
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(
            f"setting {f.name}={value!r} is not allowed; choose one of {', '.join(meta['choices'])}"
        )


def _to_time(text: str, name: str = "time") -> time:
    try:
        hh, mm = str(text).split(":")
        return time(int(hh), int(mm))
    except (ValueError, TypeError):
        raise ConfigError(f"setting {name}={text!r} is not a HH:MM time; write e.g. '09:35'") from None
