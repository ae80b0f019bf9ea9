"""Bar loaders: CSV, Parquet, Lean minute zips and the eqker CSV layout.

Every loader returns the same frame: a tz-aware ``DatetimeIndex`` named ``timestamp``
in America/New_York labelling each bar by its **start**, float columns ``open high
low close volume``, regular hours only (09:30 <= start < 16:00), sorted, unique.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from gammaride.config import ET
from gammaride.errors import BarsFileError
from gammaride.rules.session import regular_hours

COLUMNS = ["open", "high", "low", "close", "volume"]
_LEAN_NAME = re.compile(r"(\d{8})_(?:[a-z0-9]+_minute_)?trade", re.IGNORECASE)


def load_bars(paths: str | Path | Iterable[str | Path], label: str | None = None) -> pd.DataFrame:
    """Load one or more bars files into one normalized frame.

    ``label`` forces the bar labelling of CSV/Parquet files ('start' or 'end'). By
    default bars are labelled by their start, except the eqker layout: a ``datetime``
    column in newest-first order, which labels bars by their end.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [str(p) for p in paths]
    frames = [_load_one(Path(p), label) for p in paths]
    if not frames:
        raise BarsFileError("(no files)", "no bars files were given", "pass at least one file")
    if len(frames) == 1:
        return frames[0]
    bars = pd.concat(frames)
    # each bar's file, as an index into ``paths``
    src = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
    order = np.argsort(bars.index.asi8, kind="stable")
    bars, src = bars.iloc[order], src[order]
    dup = bars.index.duplicated()
    if dup.any():
        i = int(np.argmax(dup))
        raise BarsFileError(
            paths[src[i]],
            f"bar {bars.index[i]} also appears in {paths[src[i - 1]]}",
            "pass each session once (remove the overlapping file)",
        )
    return bars


def _load_one(path: Path, label: str | None) -> pd.DataFrame:
    if not path.exists():
        raise BarsFileError(path, "file does not exist", "check the path")
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return _load_lean_zip(path)
    if suffix in {".parquet", ".pq"}:
        try:
            raw = pd.read_parquet(path)
        except ImportError:
            raise BarsFileError(path, "reading Parquet needs pyarrow", "pip install pyarrow, or pass CSV") from None
        except Exception as exc:  # pyarrow raises many types
            raise BarsFileError(path, f"cannot read Parquet ({exc})", "write it with DataFrame.to_parquet") from None
        if "timestamp" not in raw.columns and raw.index.name == "timestamp":
            raw = raw.reset_index()
        return _normalize(raw, path, time_col="timestamp", label=label or "start", first_row=1)
    if suffix in {".csv", ".txt", ""}:
        try:
            raw = _read_csv(path, index_col=False)
        except pd.errors.EmptyDataError:
            raise BarsFileError(path, "file is empty", "export bars with a header row timestamp,open,high,low,close,volume") from None
        except Exception as exc:  # noqa: BLE001 - the tokenizer, the decoder and the OS raise many types
            raise BarsFileError(path, f"cannot parse CSV ({_one_line(exc)})", "write a comma-separated file with a header row") from None
        raw.columns = [str(c).strip().lower() for c in raw.columns]
        if "datetime" in raw.columns and "timestamp" not in raw.columns:
            # eqker (Alpha Vantage) writes newest first and labels bars by their end
            eqker = len(raw) > 1 and str(raw["datetime"].iloc[0]) > str(raw["datetime"].iloc[-1])
            return _normalize(raw, path, time_col="datetime", label=label or ("end" if eqker else "start"),
                              first_row=2)
        return _normalize(raw, path, time_col="timestamp", label=label or "start", first_row=2)
    raise BarsFileError(
        path, f"unknown file type '{suffix}'", "use .csv, .parquet or a Lean minute _trade.zip"
    )


def _read_csv(source, **kwargs) -> pd.DataFrame:  # noqa: ANN001 - a path or a buffer
    """``pd.read_csv`` without its warnings on stderr: what it warns about (mixed column
    types, bad lines) is checked and refused with a message afterwards."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.read_csv(source, **kwargs)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _load_lean_zip(path: Path) -> pd.DataFrame:
    match = _LEAN_NAME.search(path.name)
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.lower().endswith(".csv")]
            if not names:
                raise BarsFileError(path, "zip holds no CSV", "pass a Lean minute _trade.zip")
            inner = names[0]
            match = match or _LEAN_NAME.search(inner)
            payload = zf.read(inner)
    except BarsFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError, ValueError) as exc:
        raise BarsFileError(path, f"not a valid zip file ({_one_line(exc)})", "re-download the Lean minute zip") from None
    if not match:
        raise BarsFileError(
            path, "cannot tell the session date", "keep Lean's file name YYYYMMDD_trade.zip"
        )
    day = pd.Timestamp(match.group(1))
    try:
        raw = _read_csv(io.BytesIO(payload), header=None, names=["ms", *COLUMNS])
    except Exception as exc:  # noqa: BLE001
        raise BarsFileError(path, f"cannot parse {inner} ({_one_line(exc)})", "pass an unmodified Lean minute zip") from None
    ms = pd.to_numeric(raw["ms"], errors="coerce")
    bad_ms = ms.isna() | (ms < 0) | (ms >= 86_400_000) | (ms != ms.round())
    if bad_ms.any():
        row = int(bad_ms.to_numpy().argmax()) + 1
        raise BarsFileError(path, f"{_cell(raw['ms'].iloc[row - 1])} is not milliseconds since midnight", "pass an unmodified Lean minute zip", row)
    naive = day + pd.to_timedelta(ms.to_numpy(dtype=np.int64), unit="ms")
    frame = raw[COLUMNS].copy()
    for col in ("open", "high", "low", "close"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce") / 10000.0
    frame.insert(0, "timestamp", naive)
    return _normalize(frame, path, time_col="timestamp", label="start", first_row=1, tz_naive=True)


def _normalize(
    raw: pd.DataFrame,
    path: Path,
    time_col: str,
    label: str,
    first_row: int,
    tz_naive: bool = False,
) -> pd.DataFrame:
    """Validate, convert to ET bar-start labels, keep regular hours, sort."""
    if label not in {"start", "end"}:
        raise BarsFileError(path, f"label '{label}' is not 'start' or 'end'", "use start or end")
    missing = [c for c in [time_col, *COLUMNS] if c not in raw.columns]
    if missing:
        raise BarsFileError(
            path,
            f"missing column(s) {', '.join(missing)} (found {', '.join(map(str, raw.columns))})",
            "provide the header timestamp,open,high,low,close,volume",
        )
    if raw.empty:
        raise BarsFileError(path, "file has no rows", "export at least one bar")
    rows = np.arange(first_row, first_row + len(raw))
    ts = _parse_times(raw[time_col], path, rows)
    if label == "end":
        ts = ts - pd.Timedelta(minutes=1)

    values = {}
    for col in COLUMNS:
        num = pd.to_numeric(raw[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(num)
        if bad.any():
            i = int(np.argmax(bad))
            what = "volume" if col == "volume" else "price"
            raise BarsFileError(
                path,
                f"{col} is missing or not a number ({_cell(raw[col].iloc[i])}) at {ts[i]}",
                f"drop or repair that bar; every {what} must be a finite number",
                int(rows[i]),
            )
        values[col] = num
    checks = [
        (values["high"] < values["low"], "high {h} is below low {l}", "swap or correct high/low"),
        (
            np.minimum.reduce([values["open"], values["high"], values["low"], values["close"]]) <= 0,
            "a price is zero or negative",
            "prices must be positive",
        ),
        (values["volume"] < 0, "volume {v} is negative", "volume must be >= 0"),
        (
            (np.maximum(values["open"], values["close"]) > values["high"])
            | (np.minimum(values["open"], values["close"]) < values["low"]),
            "open {o} or close {c} lies outside low {l} .. high {h}",
            "correct the bar: open and close must lie within [low, high]",
        ),
    ]
    for mask, message, fix in checks:
        if mask.any():
            i = int(np.argmax(mask))
            text = message.format(h=values["high"][i], l=values["low"][i], v=values["volume"][i],
                                  o=values["open"][i], c=values["close"][i])
            raise BarsFileError(path, f"{text} at {ts[i]}", fix, int(rows[i]))

    frame = pd.DataFrame(values, index=pd.DatetimeIndex(ts, name="timestamp"))
    order = np.argsort(frame.index.asi8, kind="stable")
    if (np.diff(order) != 1).any():
        frame, rows = frame.iloc[order], rows[order]
    dup = frame.index.duplicated()
    if dup.any():
        i = int(np.argmax(dup))
        raise BarsFileError(
            path,
            f"duplicate timestamp {frame.index[i]} (also at row {rows[i - 1]})",
            "keep one bar per minute",
            int(rows[i]),
        )
    _refuse_closed_days(frame, path, rows)
    kept = regular_hours(frame)
    if kept.empty:
        raise BarsFileError(
            path,
            f"no bar falls in regular hours (09:30-16:00 New York); the file spans "
            f"{frame.index[0]} .. {frame.index[-1]}",
            "check the timestamps: naive times are New York bar starts, or give a UTC offset",
        )
    return kept


# a UTC offset or Z at the end of an ISO time: such a string is an instant, not New York time
_OFFSET_AT_END = r"(?:[Zz]|[+-]\d\d(?::?\d\d)?)\s*$"
# the span nanosecond timestamps hold, with a day to spare for time zones
_FIRST, _LAST = pd.Timestamp("1678-01-01", tz="UTC"), pd.Timestamp("2261-12-31", tz="UTC")
_ISO_FIX = ("write ISO timestamps such as 2024-03-01 09:31:00 or 2024-03-01T09:31:00-05:00 "
            "(naive means America/New_York; years 1678-2261)")


def _cell(value: object) -> str:
    """A cell for a message: short, one line; an overflowing number says so."""
    if isinstance(value, (float, np.floating)) and np.isinf(value):
        return "a number too large to hold"
    text = repr(value if not isinstance(value, np.generic) else value.item())
    return text if len(text) <= 40 else text[:40] + "..."


def _parse_times(column: pd.Series, path: Path, rows: np.ndarray) -> pd.DatetimeIndex:
    """One ISO 8601 parse to UTC, then New York time. Naive strings are New York wall
    times; offsets may differ row to row (-05:00 and -04:00 across a DST change). Anything
    else (``07.10.2013``, full-width digits, years pandas cannot hold) is refused, not guessed."""
    if pd.api.types.is_datetime64_any_dtype(column):
        ts = pd.DatetimeIndex(column)
        first, last = (_FIRST, _LAST) if ts.tz is not None else (_FIRST.tz_localize(None), _LAST.tz_localize(None))
        _refuse_missing(ts.isna() | (ts < first) | (ts > last), column, path, rows)
        if ts.tz is not None:
            return ts.tz_convert(ET).as_unit("ns")
        return _localize(ts, path).as_unit("ns")
    text = column.astype("str").str.strip()
    aware = _all_with_offsets(text)
    if aware is not None:
        _refuse_missing((aware < _FIRST) | (aware > _LAST), column, path, rows)
        return aware.tz_convert(ET)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "Discarding nonzero nanoseconds"
        parsed = pd.DatetimeIndex(pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce"))
    _refuse_missing(parsed.isna() | (parsed < _FIRST) | (parsed > _LAST), column, path, rows)
    aware = _has_offset(text)
    if aware.all():
        return parsed.tz_convert(ET).as_unit("ns")
    if aware.any():
        i, j = int(np.argmin(aware)), int(np.argmax(aware))
        raise BarsFileError(
            path,
            f"timestamp {column.iloc[i]!r} has no UTC offset but {column.iloc[j]!r} (row {rows[j]}) has one",
            "write every timestamp the same way: all with an offset, or all naive New York times",
            int(rows[i]),
        )
    return _localize(parsed.tz_localize(None), path).as_unit("ns")


def _all_with_offsets(text: pd.Series) -> pd.DatetimeIndex | None:
    """The times in UTC when every string is an ISO 8601 time with a UTC offset or Z (as
    Alpaca exports them), read by Arrow's parser in one vectorized pass; else None, and
    the general parse below reads (or refuses) them. Arrow reads the same instants pandas
    does and refuses a naive time, a missing value and anything pandas refuses."""
    try:
        utc = pa.array(text.array).cast(pa.timestamp("ns", tz="UTC"))
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if utc.null_count:
        return None
    return pd.DatetimeIndex(utc.cast(pa.int64()).to_numpy().view("datetime64[ns]")).tz_localize("UTC")


def _has_offset(text: pd.Series) -> np.ndarray:
    """Per row: does the string end in a UTC offset or Z? The regex runs on the distinct
    six-character tails only (a few thousand at most), not on every row."""
    tail = text.str[-6:]
    shapes = pd.Series(tail.unique(), dtype="str")
    return tail.isin(shapes[shapes.str.contains(_OFFSET_AT_END, regex=True)]).to_numpy(dtype=bool)


def _refuse_missing(bad: np.ndarray, column: pd.Series, path: Path, rows: np.ndarray) -> None:
    bad = np.asarray(bad)
    if bad.any():
        i = int(bad.argmax())
        raise BarsFileError(path, f"timestamp {_cell(column.iloc[i])} cannot be read", _ISO_FIX, int(rows[i]))


def _localize(naive: pd.DatetimeIndex, path: Path) -> pd.DatetimeIndex:
    try:
        return naive.tz_localize(ET, ambiguous="raise", nonexistent="raise")
    except Exception as exc:  # noqa: BLE001 - pytz/zoneinfo raise several types
        text = " ".join(str(exc).split())
        raise BarsFileError(
            path, f"a naive timestamp is not a valid New York time ({text})", "write timestamps with a UTC offset"
        ) from None


def _refuse_closed_days(frame: pd.DataFrame, path: Path, rows: np.ndarray) -> None:
    """Bars on a weekend or an exchange holiday are not a session: refuse the file (a
    day/month swap such as 07.10.2013 read the other way often lands on one)."""
    from gammaride.rules.session import trading_day_mask

    days = frame.index.tz_localize(None).normalize()
    unique, first = np.unique(days.asi8, return_index=True)
    closed = ~trading_day_mask(pd.DatetimeIndex(unique))
    if closed.any():
        k = int(np.argmax(closed))
        day = pd.Timestamp(unique[k])
        what = "a weekend" if day.weekday() >= 5 else "an exchange holiday"
        raise BarsFileError(
            path,
            f"bar at {frame.index[first[k]]} falls on {day:%A %Y-%m-%d}, {what} (the market was closed)",
            "check the dates (day and month swapped?) or drop that day's bars",
            int(rows[first[k]]),
        )


def sample_paths() -> list[Path]:
    """The bundled Lean SPY sessions (Apache-2.0, see data/sample/NOTICE)."""
    folder = Path(__file__).with_name("sample")
    return sorted(folder.glob("*_trade.zip"))


def sample_bars() -> pd.DataFrame:
    """Seven real SPY sessions of 1-minute bars, 390 regular-hours bars each."""
    return load_bars(sample_paths())


def load_daily(path: str | Path | None = None) -> pd.Series:
    """Daily closes (DatetimeIndex of session dates) for the realized-volatility IV proxy.

    With no path: the bundled Lean SPY daily history (1998-2021). Accepts the Lean
    daily zip layout or a CSV with ``date``/``datetime`` and ``close`` columns.
    """
    path = Path(path) if path is not None else Path(__file__).with_name("sample") / "spy_daily.zip"
    if not path.exists():
        raise BarsFileError(path, "daily file does not exist", "check the path")
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                raw = _read_csv(io.BytesIO(zf.read(zf.namelist()[0])), header=None, dtype={0: str},
                                names=["date", "open", "high", "low", "close", "volume"])
            dates = pd.to_datetime(raw["date"].str.slice(0, 8), format="%Y%m%d")
            closes = pd.to_numeric(raw["close"]).to_numpy(dtype=float) / 10000.0
        except Exception as exc:  # noqa: BLE001 - zip, tokenizer and date errors of many types
            raise BarsFileError(path, f"cannot read a Lean daily zip ({_one_line(exc)})",
                                "pass an unmodified Lean daily zip, or a CSV with date,close") from None
    else:
        try:
            raw = _read_csv(path, index_col=False)
        except Exception as exc:  # noqa: BLE001
            raise BarsFileError(path, f"cannot parse CSV ({_one_line(exc)})", "write date,close with a header row") from None
        raw.columns = [str(c).strip().lower() for c in raw.columns]
        col = "date" if "date" in raw.columns else "datetime"
        if col not in raw.columns or "close" not in raw.columns:
            raise BarsFileError(path, "daily file needs date and close columns", "export date,close")
        dates = pd.to_datetime(raw[col].astype("str"), errors="coerce", format="ISO8601")
        closes = pd.to_numeric(raw["close"], errors="coerce").to_numpy(dtype=float)
        for bad, what in ((dates.isna().to_numpy(), col), (~np.isfinite(closes), "close")):
            if bad.any():
                i = int(np.argmax(bad))
                raise BarsFileError(path, f"{what} {_cell(raw[what].iloc[i])} cannot be read",
                                    "write ISO dates and numeric closes", i + 2)
        dates = dates.dt.normalize()
    series = pd.Series(closes, index=pd.DatetimeIndex(dates, name="date"), name="close")
    series = series[np.isfinite(series.to_numpy()) & (series.to_numpy() > 0)]
    return series[~series.index.duplicated(keep="last")].sort_index()
