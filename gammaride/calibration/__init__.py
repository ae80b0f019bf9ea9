"""Calibration: Phase 2 exit multipliers per ATR bucket, learned from the journal.

``calibrate(journal, settings)`` re-simulates every closed trade's recorded path under a
grid of TP/SL multipliers, fits the outcome surface per ATR bucket, validates the result
session by session out of sample with an anytime-valid confidence sequence, journals the
look and writes ``calibration.json``. ``load_exit_policy(path, settings)`` is what scan and
replay call: Phase 2 from a valid published file, otherwise Phase 1. Names load lazily, so
importing the loader does not import the fitting code.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "SCHEMA_VERSION": "document",
    "FILE_NAME": "document",
    "SL_GRID": "document",
    "TP_GRID": "document",
    "calibration_path_for": "document",
    "load_exit_policy": "policy",
    "write_calibration": "policy",
    "simulate_grid": "grid",
    "trade_paths_from_frames": "grid",
    "BucketReport": "pipeline",
    "CalibrationResult": "pipeline",
    "calibrate": "pipeline",
    "calibrate_paths": "pipeline",
    "parse_edges": "pipeline",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
