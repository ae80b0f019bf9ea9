"""Reading the timestamps of a year of bars (252 sessions x 390 = 98,280 rows, UTC offsets
that change from -05:00 to -04:00 and back): the one ISO 8601 parse of
``gammaride.data.bars._parse_times`` against the former two-pass parse (``format="mixed"``,
then again through UTC when offsets differ). Both run in this process; figures are medians.

    python benchmarks/bars_times.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gammaride.data.bars import _parse_times


def year_of_times() -> pd.Series:
    import exchange_calendars as xc

    sessions = xc.get_calendar("XNYS").sessions_in_range("2023-01-03", "2023-12-29")
    index = pd.DatetimeIndex(np.concatenate([
        pd.date_range(f"{s.date()} 09:30", periods=390, freq="min", tz="America/New_York").as_unit("ns").asi8
        for s in sessions
    ])).tz_localize("UTC").tz_convert("America/New_York")
    return pd.Series(index.strftime("%Y-%m-%d %H:%M:%S%z").str.replace(r"(\d\d)$", r":\1", regex=True),
                     dtype="str")


def former(column: pd.Series) -> pd.DatetimeIndex:
    """The two-pass parse it replaces."""
    try:
        parsed = pd.to_datetime(column, errors="coerce", utc=False, format="mixed")
    except ValueError:
        parsed = pd.to_datetime(column, errors="coerce", utc=True, format="mixed")
    return pd.DatetimeIndex(parsed).tz_convert("America/New_York")


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    column = year_of_times()
    rows = np.arange(2, len(column) + 2)
    new = _parse_times(column, Path("year.csv"), rows)
    assert (new == former(column)).all()
    t_new = median_seconds(lambda: _parse_times(column, Path("year.csv"), rows), args.repeats)
    t_old = median_seconds(lambda: former(column), args.repeats)
    print(f"{len(column):,} timestamps: one ISO parse {t_new:.3f} s, former two-pass {t_old:.3f} s, "
          f"{t_old / t_new:.1f}x faster")


if __name__ == "__main__":
    main()
