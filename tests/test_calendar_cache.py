"""The exchange calendar is built once and read from a small cache after that."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from gammaride.rules import session


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GAMMARIDE_CACHE_DIR", str(tmp_path))
    session.session_table.cache_clear()
    yield tmp_path
    session.session_table.cache_clear()


def test_first_use_builds_the_table_and_writes_the_cache(fresh_cache):
    closes = session.session_close_minutes(pd.DatetimeIndex(["2013-11-29", "2013-12-02", "2023-07-03"]))
    assert list(closes) == [13 * 60, 16 * 60, 13 * 60]  # Black Friday and July 3rd close at 13:00
    assert [p.suffix for p in fresh_cache.iterdir()] == [".npz"]


def test_a_fresh_process_reads_the_cache_without_exchange_calendars(fresh_cache):
    session.session_table()  # build and write it here
    probe = ("import sys, pandas as pd\n"
             "from gammaride.rules.session import is_session, next_session, session_close_minutes\n"
             "print(session_close_minutes(pd.DatetimeIndex(['2013-11-29']))[0], is_session('2013-11-28'),\n"
             "      next_session('2013-11-27').date(), 'exchange_calendars' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         timeout=120).stdout.split()
    assert out == ["780", "False", "2013-11-29", "False"]  # Thanksgiving is no session


def test_an_unreadable_cache_is_rebuilt(fresh_cache):
    session.session_table()
    (cached,) = fresh_cache.iterdir()
    cached.write_bytes(b"not a table")
    session.session_table.cache_clear()
    assert session.session_close_minutes(pd.DatetimeIndex(["2013-12-24"]))[0] == 13 * 60
    assert cached.stat().st_size > 1000


def test_dates_outside_the_calendar_fall_back_to_weekdays_and_16_00(fresh_cache):
    assert session.session_close_minutes(pd.DatetimeIndex(["1985-07-03"]))[0] == 16 * 60
    assert session.is_session("1985-07-06") is False  # a Saturday
    assert session.next_session("2150-01-02") == pd.Timestamp("2150-01-05")


def test_next_session_is_a_nanosecond_timestamp_like_the_rest_of_pandas(fresh_cache):
    # callers index with asi8, which counts in the timestamp's own unit
    for day in ("2013-11-27", "2150-01-02"):
        assert session.next_session(day).unit == "ns"
