"""The one schema of ``calibration.json`` (pydantic): the writer validates against it before
a byte reaches the disk, and the loader parses with it. Fields the readers rely on are
typed strictly (a string where a number belongs is refused, not coerced); fields added
later pass through (``extra="allow"``) so an older reader still opens a newer minor file.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
)

from gammaride.calibration.document import SCHEMA

__all__ = ["BucketDocument", "CalibrationDocument", "ValidationError", "describe_error"]


def _finite(value: Any) -> Any:
    """Numbers must be real numbers (not bools, not strings) and finite."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("not a finite number")
    return float(value)


Finite = Annotated[float | None, BeforeValidator(_finite)]  # a finite number, or absent


class BucketDocument(BaseModel):
    model_config = ConfigDict(extra="allow")

    label: str | None = None
    phase: StrictInt
    n: StrictInt | None = None
    atr_from: Finite = None
    atr_to: Finite = None
    tp_mult: Finite = None
    sl_mult: Finite = None
    fitted_tp: Finite = None
    fitted_sl: Finite = None
    in_sample: dict | None = None
    out_of_sample: dict | None = None


class CalibrationDocument(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_name: str = Field(alias="schema")
    schema_version: StrictInt
    published: StrictBool
    forced: StrictBool = False
    verdict: str | None = None
    fitted_at: str | None = None
    symbol: str | None = None
    objective: str = "atr"
    n_trades: StrictInt | None = None
    edges: list[float] = Field(default_factory=list)
    buckets: list[BucketDocument] = Field(default_factory=list)
    overall: dict | None = None
    settings: dict | None = None

    @field_validator("schema_name")
    @classmethod
    def _ours(cls, value: str) -> str:
        if value != SCHEMA:
            raise ValueError(f'not a gammaride calibration (no "schema": "{SCHEMA}")')
        return value

    @field_validator("edges", mode="before")
    @classmethod
    def _edges(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError("not a list of ATR edges")
        return [_finite(v) for v in value]


def describe_error(exc: ValidationError, doc: Any) -> str:
    """The first problem of a document, in words: 'bucket low has tp_mult '2.5', not a
    finite number' rather than pydantic's location syntax."""
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ())]
    value = err.get("input")
    why = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if len(loc) >= 3 and loc[0] == "buckets":
        k = int(loc[1])
        label = None
        try:
            label = doc["buckets"][k].get("label")
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
        name = label or f"{k + 1}"
        if loc[2] in ("tp_mult", "sl_mult"):
            why = "not a finite number"
        return f"bucket {name} has {loc[2]} {value!r}, {why}"
    if loc and loc[0] == "schema":
        return f"is {why}"
    return f"has {'.'.join(loc) or 'a value'} {value!r}: {why}"
