import zipfile

import numpy as np
import pandas as pd
import pytest

from gammaride.cli import main
from gammaride.config import Settings
from gammaride.data.bars import load_bars, load_daily, sample_paths
from gammaride.errors import BarsFileError
from gammaride.journal import Journal
from gammaride.rules.signals import compute_signals

from .conftest import shared_file

GOOD = "timestamp,open,high,low,close,volume\n2024-03-01 09:30,10,11,9,10.5,100\n2024-03-01 09:31,10.5,11,10,10.8,120\n"


def test_sample_is_seven_full_regular_sessions(sample):
    per_day = sample.groupby(sample.index.date).size()
    assert len(per_day) == 7 and (per_day == 390).all()
    assert str(sample.index.tz) == "America/New_York"
    assert sample.index[0] == pd.Timestamp("2013-10-04 09:30", tz="America/New_York")
    assert sample.index.is_monotonic_increasing and sample.index.is_unique


def test_lean_zip_is_bar_start_prices_divided_by_10000(sample):
    # 20131007 row "36420000,1678100,1679700,1678100,1679600,728321" is the 10:07 bar
    bar = sample.loc[pd.Timestamp("2013-10-07 10:07", tz="America/New_York")]
    assert bar.tolist() == [167.81, 167.97, 167.81, 167.96, 728321.0]


def test_pre_and_post_market_bars_are_dropped(sample):
    minutes = sample.index.hour * 60 + sample.index.minute
    assert minutes.min() == 9 * 60 + 30 and minutes.max() == 15 * 60 + 59


def test_csv_naive_times_are_new_york_bar_starts(tmp_path):
    f = tmp_path / "bars.csv"
    f.write_text(GOOD)
    bars = load_bars(f)
    assert bars.index[0] == pd.Timestamp("2024-03-01 09:30", tz="America/New_York")
    assert bars["close"].tolist() == [10.5, 10.8]


def test_csv_with_utc_offsets_is_converted(tmp_path):
    f = tmp_path / "bars.csv"
    f.write_text("timestamp,open,high,low,close,volume\n2024-03-01T14:30:00Z,10,11,9,10.5,100\n")
    assert load_bars(f).index[0] == pd.Timestamp("2024-03-01 09:30", tz="America/New_York")


def test_unsorted_csv_is_sorted(tmp_path):
    f = tmp_path / "bars.csv"
    lines = GOOD.strip().split("\n")
    f.write_text("\n".join([lines[0], lines[2], lines[1]]))
    assert load_bars(f).index.is_monotonic_increasing


def test_parquet_round_trip(tmp_path, sample):
    f = tmp_path / "bars.parquet"
    day = sample.loc["2013-10-07"]
    day.reset_index().to_parquet(f)
    pd.testing.assert_frame_equal(load_bars(f), day, check_freq=False)


def test_eqker_newest_first_end_labels_match_a_normalized_copy(tmp_path):
    raw = shared_file("eqker/SPY_1min.csv")
    assert not raw.read_bytes().endswith(b"\n")  # the real file, as shipped
    bars = load_bars(raw)
    assert len(bars) == 1950
    # eqker's first bar of a day is labelled 09:31 (its end): it becomes the 09:30 bar
    assert bars.index[0] == pd.Timestamp("2019-02-11 09:30", tz="America/New_York")
    normalized = tmp_path / "spy_start.csv"
    bars.reset_index().assign(timestamp=lambda d: d.timestamp.dt.tz_localize(None)).to_csv(normalized, index=False)
    pd.testing.assert_frame_equal(load_bars(normalized), bars, check_freq=False)
    settings = Settings.load(env={})
    pd.testing.assert_frame_equal(
        compute_signals(load_bars(normalized), settings, 0.5), compute_signals(bars, settings, 0.5)
    )


def test_datetime_column_oldest_first_is_bar_start(tmp_path):
    f = tmp_path / "yf.csv"
    f.write_text(GOOD.replace("timestamp", "Datetime"))
    assert load_bars(f).index[0] == pd.Timestamp("2024-03-01 09:30", tz="America/New_York")
    ends = load_bars(f, label="end")  # the bar ending 09:30 started pre-market: dropped
    assert list(ends.index) == [pd.Timestamp("2024-03-01 09:30", tz="America/New_York")]


def test_offsets_across_a_dst_change_are_read(tmp_path):
    f = tmp_path / "dst.csv"
    f.write_text("timestamp,open,high,low,close,volume\n2024-03-08T09:30:00-05:00,10,11,9,10.5,100\n"
                 "2024-03-11T09:30:00-04:00,10,11,9,10.5,100\n")
    bars = load_bars(f)
    assert [t.strftime("%Y-%m-%d %H:%M") for t in bars.index] == ["2024-03-08 09:30", "2024-03-11 09:30"]


def test_early_close_drops_bars_after_the_close(tmp_path):
    f = tmp_path / "halfday.csv"
    f.write_text("timestamp,open,high,low,close,volume\n2023-11-24 12:59,10,11,9,10.5,100\n"
                 "2023-11-24 13:00,10,11,9,10.5,100\n2023-11-27 09:30,10,11,9,10.5,100\n")
    assert [t.strftime("%m-%d %H:%M") for t in load_bars(f).index] == ["11-24 12:59", "11-27 09:30"]


BAD_CASES = [
    ("nan_price", GOOD.replace("10.8", ""), "row 3: close is missing or not a number", "finite number"),
    ("high_below_low", GOOD.replace("10.5,11,10,10.8", "10.5,9.5,10,10.2"), "row 3: high 9.5 is below low 10.0", "swap or correct"),
    ("negative_volume", GOOD.replace(",120", ",-5"), "row 3: volume -5.0 is negative", "volume must be >= 0"),
    ("duplicate", GOOD + "2024-03-01 09:31,10.5,11,10,10.8,120\n", "row 4: duplicate timestamp 2024-03-01 09:31:00-05:00 (also at row 3)", "one bar per minute"),
    ("missing_column", GOOD.replace(",volume", "").replace(",100", "").replace(",120", ""), "missing column(s) volume", "timestamp,open,high,low,close,volume"),
    ("bad_time", GOOD.replace("2024-03-01 09:31", "yesterday"), "row 3: timestamp 'yesterday' cannot be read", "ISO timestamps"),
    ("empty", "", "file is empty", "header row"),
    ("close_above_high", GOOD.replace("10.5,11,10,10.8", "10.5,11,10,11.8"), "row 3: open 10.5 or close 11.8 lies outside low 10.0 .. high 11.0", "within [low, high]"),
    ("extra_field", GOOD.replace(",120", ",120,7"), "Expected 6 fields in line 3, saw 7", "comma-separated"),
    ("no_regular_hours", GOOD.replace("09:3", "08:3"), "no bar falls in regular hours", "naive times are New York bar starts"),
]


@pytest.mark.parametrize("name, text, message, fix", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_bars_name_the_file_the_row_and_the_fix(tmp_path, name, text, message, fix):
    f = tmp_path / f"{name}.csv"
    f.write_text(text)
    with pytest.raises(BarsFileError) as err:
        load_bars(f)
    assert str(f) in str(err.value) and message in str(err.value) and fix in str(err.value)


@pytest.mark.parametrize("name, text, message, fix", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_bars_leave_the_journal_unchanged(tmp_path, capsys, name, text, message, fix):
    journal = tmp_path / "j.duckdb"
    assert main(["replay", str(sample_paths()[0]), "--journal", str(journal), "--quiet"]) == 0
    with Journal(journal) as j:
        before = {t: j.query(f"SELECT count(*) AS n FROM {t}").n[0] for t in ("runs", "scans", "trades", "trade_paths")}
    bad = tmp_path / f"{name}.csv"
    bad.write_text(text)
    # a good file and a bad one: nothing of either may reach the journal
    assert main(["replay", str(sample_paths()[1]), str(bad), "--journal", str(journal), "--quiet"]) == 3
    assert message in capsys.readouterr().err
    with Journal(journal) as j:
        after = {t: j.query(f"SELECT count(*) AS n FROM {t}").n[0] for t in before}
    assert after == before


def test_overlapping_files_are_rejected(tmp_path):
    with pytest.raises(BarsFileError, match="also appears in"):
        load_bars([sample_paths()[0], sample_paths()[0]])


def test_corrupt_zip(tmp_path):
    f = tmp_path / "20240102_trade.zip"
    f.write_bytes(b"not a zip")
    with pytest.raises(BarsFileError, match="not a valid zip file"):
        load_bars(f)


def test_lean_zip_with_bad_price_names_the_row(tmp_path):
    f = tmp_path / "20240102_trade.zip"
    with zipfile.ZipFile(f, "w") as zf:
        zf.writestr("20240102_spy_minute_trade.csv", "34200000,1000000,1010000,990000,1000000,5\n34260000,1000000,990000,1000000,1000000,5\n")
    with pytest.raises(BarsFileError, match=r"row 2: high 99.0 is below low 100.0"):
        load_bars(f)


@pytest.mark.parametrize("text, message", [
    ("date,close\n2024-01-02,abc\n", "close 'abc' cannot be read"),
    ("date,close\nyesterday,470.1\n", "date 'yesterday' cannot be read"),
    ("day,price\n2024-01-02,470.1\n", "needs date and close columns"),
])
def test_bad_daily_file_is_a_clear_error(tmp_path, text, message):
    f = tmp_path / "daily.csv"
    f.write_text(text)
    with pytest.raises(BarsFileError, match=message):
        load_daily(f)


def test_unknown_extension(tmp_path):
    f = tmp_path / "bars.xlsx"
    f.write_text("x")
    with pytest.raises(BarsFileError, match="unknown file type '.xlsx'"):
        load_bars(f)


def test_volume_values_are_floats(sample):
    assert sample.dtypes.tolist() == [np.float64] * 5
