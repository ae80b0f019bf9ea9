"""``calibration.json``: written atomically by calibrate, read defensively by scan and replay.

Loading never raises. A missing file means Phase 1; a file that is truncated, not JSON,
of another schema or a newer version, or that holds NaN, absurd multipliers or an
unpublished verdict also means Phase 1, with a ``WARNING:`` line that names the file,
what is wrong and the fix.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gammaride.calibration.document import (
    FILE_NAME,
    SCHEMA,
    SCHEMA_VERSION,
    SL_GRID,
    TP_GRID,
    bucket_labels,
)
from gammaride.config import Settings
from gammaride.outputs import write_atomic
from gammaride.rules.setup import ExitPolicy

__all__ = ["FILE_NAME", "SCHEMA", "SCHEMA_VERSION", "load_exit_policy", "write_calibration"]
_EPS = 1e-9


def write_calibration(path: str | os.PathLike, document: Mapping[str, Any]) -> Path:
    """Write ``document`` as JSON to ``path`` atomically: a temporary file in the same
    directory, flushed to disk, then renamed over the old file. A reader never sees half
    a file, and a crash mid-write leaves the previous calibration in place."""
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    return write_atomic(path, text, what="calibration file")


class _Invalid(Exception):
    """What is wrong with a calibration file, and the fix."""

    def __init__(self, problem: str, fix: str):
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


class _Unpublished(_Invalid):
    """A sound file whose verdict was 'not published': Phase 1 by design, not a fault."""


_RERUN = "rerun 'gammaride calibrate' to write a fresh file, or delete it to use Phase 1"


def load_exit_policy(path: str | os.PathLike, settings: Settings) -> tuple[ExitPolicy, str]:
    """The published calibration as a Phase 2 :class:`ExitPolicy`, or Phase 1, and a line
    saying which and why. Never raises: any problem means Phase 1 with a ``WARNING:``; a
    sound file whose verdict was "not published" means Phase 1 with that verdict."""
    phase1 = ExitPolicy.phase1(settings)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return phase1, f"Phase 1 exits (no calibration file at {path})"
    except (OSError, UnicodeDecodeError) as exc:
        return phase1, _warning(
            path, f"cannot be read ({exc})", "check the file's permissions, or " + _RERUN
        )
    try:
        policy = _parse(text, path, settings)
    except _Unpublished as verdict:
        return phase1, f"Phase 1 exits: {path} {verdict.problem}. Next: {verdict.fix}"
    except _Invalid as bad:
        return phase1, _warning(path, bad.problem, bad.fix)
    except Exception as exc:  # a hostile file must never stop the scanner
        return phase1, _warning(
            path, f"could not be interpreted ({type(exc).__name__}: {exc})", _RERUN
        )
    when = _when(policy.fitted_at)
    parts = ", ".join(
        f"{lab} {tp:.1f}/{sl:.1f}"
        for lab, tp, sl in zip(policy.labels, policy.tp_mults, policy.sl_mults, strict=True)
    )
    return policy, f"Phase 2 exits from {path} (fitted {when}, {policy.n_trades} trades): {parts}"


def _warning(path: Path, problem: str, fix: str) -> str:
    return f"WARNING: calibration file {path} {problem}; using Phase 1 exits. Fix: {fix}"


def _parse(text: str, path: Path, settings: Settings) -> ExitPolicy:
    if not text.strip():
        raise _Invalid("is empty", _RERUN)
    try:
        # NaN/Infinity tokens are not JSON: reject them instead of reading them as floats.
        doc = json.loads(text, parse_constant=_reject_constant)
    except _Invalid:
        raise
    except json.JSONDecodeError as exc:
        raise _Invalid(f"is not valid JSON, perhaps truncated ({exc})", _RERUN) from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise _Invalid(f'is not a gammaride calibration (no "schema": "{SCHEMA}")', _RERUN)
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _Invalid(f"has an invalid schema_version {version!r}", _RERUN)
    if version > SCHEMA_VERSION:
        raise _Invalid(
            f"has schema_version {version}, newer than this gammaride reads ({SCHEMA_VERSION})",
            "upgrade gammaride (pip install -U gammaride), or rerun 'gammaride calibrate' with this version",
        )
    from gammaride.calibration.schema import CalibrationDocument, ValidationError, describe_error

    if not isinstance(doc.get("edges"), list) or not isinstance(doc.get("buckets"), list):
        if doc.get("published") is True:
            raise _Invalid("lacks the 'edges' and 'buckets' lists", _RERUN)
    try:
        model = CalibrationDocument.model_validate(doc)
    except ValidationError as exc:
        raise _Invalid(describe_error(exc, doc), _RERUN) from None
    fitted_for = model.symbol
    if fitted_for is not None and str(fitted_for).upper() != settings.symbol:
        raise _Invalid(
            f"was fitted on {fitted_for} trades, not {settings.symbol} (its ATR edges are in "
            f"{fitted_for} dollars)",
            f"calibrate a {settings.symbol} journal, or pass --calibration for a {settings.symbol} file",
        )
    hold = (model.settings or {}).get("max_hold_minutes")
    if hold is not None and hold != settings.max_hold_minutes:
        raise _Invalid(
            f"was fitted with a {hold}-minute max hold, not the {settings.max_hold_minutes} minutes in force",
            "rerun 'gammaride calibrate' with the settings you trade",
        )
    if not model.published:
        raise _Unpublished(
            f"was not published: out-of-sample validation did not show Phase 2 beating Phase 1"
            f"{_evidence(doc)}",
            "keep trading Phase 1 and rerun 'gammaride calibrate' with more trades; "
            "'--force' publishes anyway (not advised)",
        )
    edges, buckets = model.edges, model.buckets
    if len(buckets) != len(edges) + 1:
        raise _Invalid(
            f"has {len(buckets)} buckets for {len(edges)} edges (needs edges + 1)", _RERUN
        )
    if not all(e > 0 for e in edges) or edges != sorted(edges) or len(set(edges)) != len(edges):
        raise _Invalid(
            f"has bucket edges {edges!r}: they must be positive, finite and ascending", _RERUN
        )
    labels = bucket_labels(len(buckets))
    tps, sls = [], []
    for k, bucket in enumerate(buckets):
        if bucket.phase == 1:
            # buckets without enough trades follow the Phase 1 settings in force now
            tps.append(settings.tp_mult)
            sls.append(settings.sl_mult)
            continue
        if bucket.phase != 2:
            raise _Invalid(f"bucket {k + 1} has phase {bucket.phase!r} (1 or 2 expected)", _RERUN)
        name = bucket.label or labels[k]
        for what, value, grid in (
            ("tp_mult", bucket.tp_mult, TP_GRID),
            ("sl_mult", bucket.sl_mult, SL_GRID),
        ):
            if value is None:
                raise _Invalid(f"bucket {name} has {what} {value!r}, not a finite number", _RERUN)
            if not (grid[0] - _EPS <= value <= grid[-1] + _EPS):
                raise _Invalid(
                    f"bucket {name} has an absurd {what} {value!r} (calibration chooses "
                    f"{grid[0]:g}-{grid[-1]:g} ATR)",
                    _RERUN,
                )
        tps.append(float(bucket.tp_mult))
        sls.append(float(bucket.sl_mult))
    n_trades = model.n_trades
    if n_trades is None or n_trades < 0:
        raise _Invalid(f"has n_trades {n_trades!r}, not a count", _RERUN)
    fitted_at = model.fitted_at
    if not isinstance(fitted_at, str) or _parse_time(fitted_at) is None:
        raise _Invalid(f"has fitted_at {fitted_at!r}, not an ISO time", _RERUN)
    return ExitPolicy(
        phase=2,
        edges=tuple(float(e) for e in edges),
        tp_mults=tuple(tps),
        sl_mults=tuple(sls),
        labels=labels,
        source=str(path),
        fitted_at=fitted_at,
        n_trades=n_trades,
    )


def _evidence(doc: dict) -> str:
    """' (improvement +0.010 ATR per trade, 95% interval [-0.050, +0.070])' when recorded."""
    try:
        oos = doc["overall"]["out_of_sample"]
        lo, hi = oos["ci95"]
        return f" (improvement {oos['improvement']:+.3f} ATR per trade, 95% interval [{lo:+.3f}, {hi:+.3f}])"
    except (KeyError, TypeError, ValueError):
        return ""


def _reject_constant(token: str) -> float:
    raise _Invalid(f"holds {token}, which is not a number", _RERUN)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse_time(text: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _when(fitted_at: str | None) -> str:
    t = _parse_time(fitted_at or "")
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if t else "at an unknown time"
