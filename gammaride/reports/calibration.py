"""The calibration panel's data, read defensively from ``calibration.json``.

The file is parsed with the calibration package's one schema
(:class:`gammaride.calibration.schema.CalibrationDocument`), never the fitting code. The
report must never fail because of this file: a missing, unreadable, oversized or
malformed file becomes a status and a message the panel shows instead. Which exits
scan and replay use now is decided by :func:`gammaride.calibration.load_exit_policy`
(the one reader of that question); this module only gathers what the panel shows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gammaride.calibration.document import SCHEMA
from gammaride.calibration.schema import (
    BucketDocument,
    CalibrationDocument,
    ValidationError,
    describe_error,
)
from gammaride.config import Settings

MAX_BYTES = 2_000_000
MAX_BUCKETS = 50


class _Bad(Exception):
    pass


def read_calibration(path: Path | None, settings: Settings | None = None) -> dict[str, Any]:
    """``{"status": "missing"|"invalid"|"ok", "message", "active_phase", "active_text", ...}``.

    Never raises. ``active_*`` say which exits scan and replay use with this file.
    """
    settings = settings or Settings()
    out: dict[str, Any] = {"path": path.name if path else None, **_active(path, settings)}
    try:
        if path is None or not path.exists():
            return {**out, "status": "missing", "message": "no calibration yet"}
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise _Bad(f"is {size:,} bytes, far larger than a calibration file")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject)
        except ValueError as exc:
            raise _Bad(f"is not valid JSON ({str(exc)[:160]})") from None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise _Bad(f'is not a gammaride calibration file (no "schema": "{SCHEMA}")')
        try:
            model = CalibrationDocument.model_validate(doc)
        except ValidationError as exc:
            raise _Bad(describe_error(exc, doc)) from None
        return {**out, **_parse(model, settings), "status": "ok", "message": None}
    except _Bad as bad:
        return {**out, "status": "invalid", "message": f"{out['path']} {bad}"}
    except (OSError, UnicodeDecodeError, RecursionError, TypeError, AttributeError) as exc:
        return {**out, "status": "invalid",
                "message": f"{out['path']} cannot be read ({type(exc).__name__}: {str(exc)[:160]})"}


def _active(path: Path | None, settings: Settings) -> dict[str, Any]:
    try:
        from gammaride.calibration import load_exit_policy

        if path is None:
            raise FileNotFoundError
        policy, line = load_exit_policy(path, settings)
        if policy.phase == 2:
            exits = list(zip(policy.labels, policy.tp_mults, policy.sl_mults, strict=True))
            parts = ", ".join(f"{lab} {tp:g}/{sl:g}" for lab, tp, sl in exits)
            text = f"Phase 2 exits, TP/SL in ATRs by bucket: {parts}"
        else:
            exits = [("Phase 1", settings.tp_mult, settings.sl_mult)]
            text = policy.describe()
        return {"active_phase": policy.phase, "active_text": text, "active_line": line,
                "break_even": [_break_even(*e) for e in exits]}
    except Exception:  # the report shows Phase 1 rather than fail on a hostile file
        text = f"Phase 1 exits: TP {settings.tp_mult:g} ATR, SL {settings.sl_mult:g} ATR"
        return {"active_phase": 1, "active_text": text, "active_line": text,
                "break_even": [_break_even("Phase 1", settings.tp_mult, settings.sl_mult)]}


def _break_even(label: str, tp: float, sl: float) -> dict[str, Any]:
    """The win rate at which exits of ``tp`` and ``sl`` ATRs break even: a win earns
    tp/sl R and a loss costs 1 R, so p * tp/sl = (1 - p), p = sl / (tp + sl)."""
    tp, sl = float(tp), float(sl)
    return {"label": str(label), "tp": tp, "sl": sl, "rate": sl / (tp + sl) if tp + sl > 0 else math.nan}


def _parse(doc: CalibrationDocument, settings: Settings) -> dict[str, Any]:
    edges = list(doc.edges)
    if edges != sorted(edges) or any(e <= 0 for e in edges):
        edges = []
    own = doc.settings or {}
    tp1 = _num(own.get("tp_mult")) or settings.tp_mult
    sl1 = _num(own.get("sl_mult")) or settings.sl_mult
    buckets = [_bucket(b, i, tp1, sl1) for i, b in enumerate(doc.buckets[:MAX_BUCKETS])]
    overall = doc.overall or {}
    return {
        "published": doc.published,
        "forced": doc.forced,
        "verdict": _text(doc.verdict),
        "fitted_at": _text(doc.fitted_at),
        "n_trades": _count(doc.n_trades),
        "unit": _text((doc.model_extra or {}).get("outcome_unit")) or "ATR per trade",
        "edges": edges,
        "buckets": buckets,
        "overall": {
            "in_sample": _pair(overall.get("in_sample")),
            "out_of_sample": _oos(overall.get("out_of_sample")),
        },
    }


def _bucket(b: BucketDocument, i: int, tp1: float, sl1: float) -> dict[str, Any]:
    lo, hi = b.atr_from, b.atr_to
    if lo is None and hi is None:
        atr_range = "all ATRs"
    elif lo is None:
        atr_range = f"ATR < ${hi:.3g}"
    elif hi is None:
        atr_range = f"ATR >= ${lo:.3g}"
    else:
        atr_range = f"${lo:.3g} to ${hi:.3g}"
    return {
        "label": _text(b.label) or f"bucket {i + 1}",
        "range": atr_range,
        "n": _count(b.n),
        "phase": b.phase if b.phase in (1, 2) else None,
        "tp1": tp1,
        "sl1": sl1,
        "tp2": b.tp_mult,
        "sl2": b.sl_mult,
        "in_sample": _pair(b.in_sample),
        "out_of_sample": _oos(b.out_of_sample),
    }


def _pair(d: Any) -> dict[str, float | None]:
    d = d if isinstance(d, dict) else {}
    return {"phase1": _num(d.get("phase1")), "phase2": _num(d.get("phase2"))}


def _oos(d: Any) -> dict[str, Any]:
    d = d if isinstance(d, dict) else {}
    ci = d.get("ci95")
    ci = [float(v) for v in ci] if isinstance(ci, list) and len(ci) == 2 and all(_num(v) is not None for v in ci) else None
    return {**_pair(d), "n": _count(d.get("n")), "improvement": _num(d.get("improvement")), "ci95": ci}


def _reject(token: str) -> float:
    raise ValueError(f"holds {token}, which is not a number")


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:600]
