"""The history cache: Parquet files of bars, one per symbol, timeframe and month.

Layout under the cache folder (``history/`` next to the journal unless ``--cache DIR``)::

    stocks/SPY/1Min/2024-02.parquet     minute bars of SPY in February 2024
    stocks/SPY/1Day/2024-02.parquet     its daily bars
    options/SPY/2024-02.parquet         minute bars of the SPY contracts replay priced that month
                                        (each on the session it was bought)

Each file carries its own record in the Parquet metadata: the feed it holds (``sip`` or
``iex`` for stocks, ``opra``/``indicative`` for options), the time its data runs
``through`` and whether the month is ``complete``; an option file also lists every
contract and session asked for (``SPY240205C00404000@2024-02-05``), so a contract that
never traded that session is not asked for again. Files
are written to a temporary name and renamed, so an interrupted fetch leaves whole
months only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gammaride.config import ET
from gammaride.errors import BarsFileError
from gammaride.outputs import write_atomic

TIMEFRAMES = ("1Min", "1Day")
BAR_COLUMNS = ["open", "high", "low", "close", "volume"]
_META_KEY = b"gammaride"


@dataclass(frozen=True)
class MonthRecord:
    feed: str
    through: pd.Timestamp  # data runs through this time (exclusive), UTC
    complete: bool
    contracts: frozenset[str] = frozenset()


def month_key(ts: pd.Timestamp) -> str:
    return f"{ts.year:04d}-{ts.month:02d}"


def months_between(start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
    """The months (YYYY-MM) the dates ``start`` .. ``end`` touch."""
    return [month_key(p.to_timestamp()) for p in pd.period_range(start, end, freq="M")]


def month_bounds(month: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First instant of the month and of the next one, New York time."""
    first = pd.Timestamp(f"{month}-01").tz_localize(ET)
    return first, (first + pd.offsets.MonthBegin(1)).tz_localize(None).tz_localize(ET)


class BarCache:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"BarCache({self.root})"

    # ------------------------------------------------------------------ paths
    def stock_path(self, symbol: str, timeframe: str, month: str) -> Path:
        return self.root / "stocks" / symbol.upper() / timeframe / f"{month}.parquet"

    def option_path(self, underlying: str, month: str) -> Path:
        return self.root / "options" / underlying.upper() / f"{month}.parquet"

    # ------------------------------------------------------------------ records
    def record(self, path: Path) -> MonthRecord | None:
        """What a cached file holds, from its metadata alone; None when absent or unreadable."""
        if not path.exists():
            return None
        import pyarrow.parquet as pq

        try:
            meta = json.loads(pq.read_schema(path).metadata[_META_KEY])
        except Exception:  # a foreign or damaged file: fetch it again
            return None
        return MonthRecord(
            feed=meta["feed"], through=pd.Timestamp(meta["through"]), complete=bool(meta["complete"]),
            contracts=frozenset(meta.get("contracts", ())),
        )

    def covers(self, path: Path, feed: str, needed_until: pd.Timestamp) -> bool:
        """The file holds ``feed`` data through ``needed_until`` (or the whole month)."""
        rec = self.record(path)
        return rec is not None and rec.feed == feed and (rec.complete or rec.through >= needed_until)

    # ------------------------------------------------------------------ writes
    def write(self, path: Path, frame: pd.DataFrame, record: MonthRecord) -> None:
        """Write ``frame`` (a ``timestamp`` index or column in UTC, bar columns) atomically."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(frame.reset_index(drop=False) if frame.index.name else frame,
                                     preserve_index=False)
        meta = {"feed": record.feed, "through": record.through.isoformat(),
                "complete": record.complete, "contracts": sorted(record.contracts)}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               _META_KEY: json.dumps(meta).encode()})
        write_atomic(path, write_with=lambda tmp: pq.write_table(table, tmp), what="bar cache")

    # ------------------------------------------------------------------ reads
    def read_stock(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Cached bars of the months ``start`` .. ``end`` touch, bars starting before ``end``
        + 1 day; ``timestamp`` index in New York time (bar start). Regular hours are the
        caller's business (:func:`gammaride.data.bars.regular_hours`)."""
        frames = []
        for month in months_between(start, end):
            path = self.stock_path(symbol, timeframe, month)
            if path.exists():
                frames.append(_read(path))
        if not frames:
            return _empty()
        bars = pd.concat(frames).sort_index()
        bars = bars[~bars.index.duplicated(keep="last")]
        lo = pd.Timestamp(start).tz_localize(ET) if pd.Timestamp(start).tz is None else pd.Timestamp(start)
        hi = (pd.Timestamp(end).tz_localize(ET) if pd.Timestamp(end).tz is None else pd.Timestamp(end)) + pd.Timedelta(days=1)
        return bars[(bars.index >= lo) & (bars.index < hi)]

    def read_options(self, underlying: str, months: list[str]) -> pd.DataFrame:
        """Cached option bars of those months: columns ``symbol`` + bar columns, time index."""
        frames = [_read(p) for m in sorted(set(months)) if (p := self.option_path(underlying, m)).exists()]
        if not frames:
            return _empty(with_symbol=True)
        return pd.concat(frames).sort_index(kind="stable")


def _read(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        raise BarsFileError(path, f"cached file cannot be read ({exc})", "delete it; the next fetch writes it again") from None
    index = pd.DatetimeIndex(frame.pop("timestamp"))
    index = (index.tz_localize("UTC") if index.tz is None else index).tz_convert(ET).as_unit("ns")
    frame.index = index.rename("timestamp")
    for col in BAR_COLUMNS:
        frame[col] = frame[col].astype(np.float64)
    return frame


def _empty(with_symbol: bool = False) -> pd.DataFrame:
    cols = (["symbol"] if with_symbol else []) + BAR_COLUMNS
    frame = pd.DataFrame({c: pd.Series(dtype=object if c == "symbol" else float) for c in cols})
    frame.index = pd.DatetimeIndex([], tz=ET, name="timestamp").as_unit("ns")
    return frame
