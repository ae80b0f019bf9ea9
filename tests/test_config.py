import pytest

from gammaride.config import Settings
from gammaride.errors import ConfigError


def test_defaults_are_the_seed_rules():
    s = Settings.load(env={})
    assert (s.vol_lookback, s.vol_threshold, s.iv_threshold, s.direction_lookback) == (20, 2.0, 0.30, 5)
    assert (s.atr_period, s.tp_mult, s.sl_mult, s.max_hold_minutes) == (14, 2.0, 1.0, 20)
    assert (s.max_open_positions, s.max_trades_per_day, s.daily_loss_limit) == (1, 10, 0.03)
    assert (s.am_start, s.am_end, s.pm_start, s.pm_end, s.hard_stop) == ("09:35", "10:30", "15:00", "15:55", "15:55")


def test_debug_lowers_the_volume_threshold_to_1_5():
    assert Settings.load(env={}).volume_threshold == 2.0
    assert Settings.load(env={}, debug=True).volume_threshold == 1.5


def test_toml_then_environment_then_overrides(tmp_path):
    cfg = tmp_path / "g.toml"
    cfg.write_text('[gammaride]\nvol_threshold = 2.5\nmax_contracts = 3\nsymbol = "qqq"\n')
    s = Settings.load(cfg, env={"GAMMARIDE_MAX_CONTRACTS": "4", "GAMMARIDE_DEBUG": "yes"})
    assert (s.vol_threshold, s.max_contracts, s.symbol, s.debug) == (2.5, 4, "QQQ", True)
    assert Settings.load(cfg, env={}, max_contracts=7).max_contracts == 7


@pytest.mark.parametrize(
    "override, message",
    [
        ({"vol_threshold": 0.5}, "vol_threshold=0.5 is out of range; valid range is [1.0, 20.0]"),
        ({"iv_threshold": float("nan")}, "iv_threshold=nan is out of range"),
        ({"am_start": "9h35"}, "am_start='9h35' is not a HH:MM time"),
        ({"feed": "nasdaq"}, "feed='nasdaq' is not allowed; choose one of iex, sip"),
        ({"max_contracts": "two"}, "max_contracts='two' is not a whole number"),
        ({"vol_treshold": 2.0}, "unknown setting 'vol_treshold'. Did you mean 'vol_threshold'?"),
    ],
)
def test_bad_values_name_the_field_the_value_and_the_fix(override, message):
    with pytest.raises(ConfigError) as err:
        Settings.load(env={}, **override)
    assert message in str(err.value)


def test_bad_environment_value_is_rejected():
    with pytest.raises(ConfigError, match="max_hold_minutes=0 is out of range"):
        Settings.load(env={"GAMMARIDE_MAX_HOLD_MINUTES": "0"})


@pytest.mark.parametrize("text, message", [
    ("gammaride = 5\n", "put every setting inside the [gammaride] table (found gammaride = 5 outside it)"),
    ("max_contracts = 3\n[gammaride]\nvol_threshold = 2.5\n", "(found max_contracts outside it)"),
])
def test_settings_outside_the_table_are_refused(tmp_path, text, message):
    cfg = tmp_path / "g.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        Settings.load(cfg, env={})
    assert message in str(err.value)


@pytest.mark.parametrize("symbol", ["", "  ", "SPY QQQ", "12"])
def test_symbol_must_be_a_ticker(symbol):
    with pytest.raises(ConfigError, match="is not a ticker"):
        Settings.load(env={}, symbol=symbol)


def test_unreadable_toml(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("vol_threshold = = 2")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        Settings.load(bad, env={})
