"""The entry rules on named real bars, checked against hand computations and an
independent implementation read straight from the raw Lean files."""

import csv
import io
import zipfile

import numpy as np
import pandas as pd
import pytest
import ta

from gammaride.config import ET
from gammaride.data.bars import sample_paths
from gammaride.rules.signals import SKIP_CODES, compute_signals, wilder_atr


def _raw_regular_bars():
    """(label 'YYYYMMDD HH:MM', close, volume) straight from the zips, no pandas."""
    out = []
    for path in sample_paths():
        with zipfile.ZipFile(path) as zf:
            rows = csv.reader(io.StringIO(zf.read(zf.namelist()[0]).decode()))
            for ms, _o, _h, _l, c, v in rows:
                if 34_200_000 <= int(ms) < 57_600_000:
                    m = int(ms) // 60_000
                    out.append((f"{path.name[:8]} {m // 60:02d}:{m % 60:02d}", int(c) / 1e4, int(v)))
    return out


def test_named_bar_2013_10_07_10_07_is_a_call_signal(sample, settings):
    sig = compute_signals(sample, settings, 0.39)
    row = sig.loc[pd.Timestamp("2013-10-07 10:07", tz=ET)]
    # hand check: volume 728,321; the 20 bars 09:47-10:06 sum to 6,805,968
    assert row.decision_time == pd.Timestamp("2013-10-07 10:08", tz=ET)
    assert row.volume == 728_321
    assert row.avg_volume == pytest.approx(340_298.4)
    assert row.vol_ratio == pytest.approx(2.14024221, rel=1e-8)
    assert row.price_change == pytest.approx(167.96 - 167.67)
    assert (row.in_window, row.window, row.vol_spike, row.direction) == (True, "am", True, "call")
    assert row.signal and pd.isna(row.skip_reason)


def test_lookbacks_cross_sessions(sample, settings):
    sig = compute_signals(sample, settings, 0.5)
    first_of_day = pd.Timestamp("2013-10-07 09:30", tz=ET)
    prev = sample.loc[:first_of_day].iloc[-21:-1]
    assert prev.index[0].date().isoformat() == "2013-10-04"
    assert sig.loc[first_of_day, "avg_volume"] == pytest.approx(prev["volume"].mean())


def test_every_bar_matches_an_independent_implementation(sample, settings):
    raw = _raw_regular_bars()
    sig = compute_signals(sample, settings, 0.5)
    assert len(raw) == len(sig) == 2730
    vols = [v for _, _, v in raw]
    closes = [c for _, c, _ in raw]
    for i in range(20, len(raw)):
        avg = sum(vols[i - 20 : i]) / 20
        assert sig["vol_ratio"].iat[i] == pytest.approx(vols[i] / avg, rel=1e-12)
        change = closes[i] - closes[i - 5]
        want = None if vols[i] / avg < 2.0 or change == 0 else ("call" if change > 0 else "put")
        got = sig["direction"].iat[i]
        assert (None if pd.isna(got) else got) == want, raw[i][0]


def test_time_gate_uses_the_decision_time(sample, settings):
    sig = compute_signals(sample, settings, 0.5).loc["2013-10-08"]
    window = sig.set_index(sig.decision_time.dt.strftime("%H:%M"))["window"]
    assert pd.isna(window["09:34"]) and window["09:35"] == "am"  # bar 09:34 decides at 09:35
    assert window["10:29"] == "am" and pd.isna(window["10:30"])
    assert pd.isna(window["14:59"]) and window["15:00"] == "pm"
    assert window["15:54"] == "pm" and pd.isna(window["15:55"])
    assert int(sig.in_window.sum()) == 55 + 55


def test_early_close_drops_the_pm_window(sample, settings):
    # 2013-11-29 closed at 13:00: re-date a real session onto it
    day = sample.loc["2013-10-08"].copy()
    day.index = day.index + (pd.Timestamp("2013-11-29") - pd.Timestamp("2013-10-08"))
    day = day.loc[: pd.Timestamp("2013-11-29 12:59", tz=ET)]
    sig = compute_signals(day, settings, 0.5)
    assert set(sig.loc[sig.in_window, "window"]) == {"am"}
    assert int(sig.in_window.sum()) == 55


def test_skip_reasons_name_the_failed_gate(sample, settings):
    sig = compute_signals(sample, settings, 0.2)
    reasons = sig.set_index(sig.decision_time.dt.strftime("%Y-%m-%d %H:%M"))["skip_reason"]
    assert reasons["2013-10-07 12:00"] == "outside window"
    assert reasons["2013-10-04 09:35"] == "warming up (needs 20 bars of history)"
    assert reasons["2013-10-07 10:08"] == "IV percentile 0.20 < 0.30"
    ratio = sig.set_index(sig.decision_time.dt.strftime("%Y-%m-%d %H:%M")).loc["2013-10-07 09:40", "vol_ratio"]
    assert reasons["2013-10-07 09:40"] == f"volume {np.floor(ratio * 10) / 10:.1f}x < 2.0x"


def test_skip_codes_name_the_failed_gate(sample, settings):
    sig = compute_signals(sample, settings, 0.2)
    codes = sig.set_index(sig.decision_time.dt.strftime("%Y-%m-%d %H:%M"))["skip_code"]
    assert codes["2013-10-07 12:00"] == "window"
    assert codes["2013-10-04 09:35"] == "warmup"
    assert codes["2013-10-07 10:08"] == "iv"
    assert codes["2013-10-07 09:40"] == "volume"
    assert set(sig.skip_code.dropna()) <= set(SKIP_CODES)
    passed = compute_signals(sample, settings, 0.5)
    assert (passed.skip_code.isna() == passed.signal).all() and (passed.skip_reason.isna() == passed.signal).all()


def test_printed_thresholds_come_from_the_settings(sample, settings):
    strict = settings.replace(vol_threshold=3.0, iv_threshold=0.5, vol_lookback=30)
    reasons = set(compute_signals(sample, strict, 0.4).skip_reason.dropna())
    assert "warming up (needs 30 bars of history)" in reasons
    assert "IV percentile 0.40 < 0.50" in reasons
    assert any(r.startswith("volume ") and r.endswith("x < 3.0x") for r in reasons)


def test_volume_ratio_just_below_threshold_never_prints_as_the_threshold(settings):
    from gammaride.rules.signals import _volume_reason

    assert _volume_reason(1.96, 2.0) == "volume 1.9x < 2.0x"


def test_iv_gate_off_and_debug_threshold(sample, settings):
    off = compute_signals(sample, settings, None)
    low = compute_signals(sample, settings, 0.1)
    assert off.signal.sum() > 0 and low.signal.sum() == 0
    debug = compute_signals(sample, settings.replace(debug=True), None)
    assert debug.signal.sum() > off.signal.sum()
    assert (debug.vol_spike == (debug.vol_ratio >= 1.5)).all()


def test_atr_matches_the_ta_package_to_1e_9(sample):
    ours = wilder_atr(sample.high, sample.low, sample.close, 14)
    theirs = ta.volatility.AverageTrueRange(sample.high, sample.low, sample.close, window=14).average_true_range()
    assert np.isnan(ours[:13]).all()
    np.testing.assert_allclose(ours[13:], theirs.to_numpy()[13:], rtol=0, atol=1e-9)


def test_atr_first_value_is_the_mean_of_the_first_14_true_ranges():
    high = np.arange(20, dtype=float) + 2
    low = np.arange(20, dtype=float)
    close = low + 1
    atr = wilder_atr(high, low, close, 14)
    assert atr[13] == pytest.approx(2.0)
    assert atr[14] == pytest.approx((2.0 * 13 + 2.0) / 14)


def test_live_window_of_200_bars_agrees_with_full_history(sample, settings):
    full = compute_signals(sample, settings, 0.5)
    for end in (600, 1500, 2729):
        window = compute_signals(sample.iloc[end - 199 : end + 1], settings, 0.5).iloc[-1]
        row = full.iloc[end]
        assert window.atr == pytest.approx(row.atr, abs=1e-6)
        assert (window.vol_ratio, window.direction, window.signal) == (row.vol_ratio, row.direction, row.signal)
