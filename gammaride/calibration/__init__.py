"""Calibration: Phase 2 exit multipliers per ATR bucket, learned from the journal.

``calibrate(journal, settings)`` re-simulates every closed trade's recorded path under a
grid of TP/SL multipliers, fits the outcome surface per ATR bucket, validates the result
out of sample and writes ``calibration.json``. ``load_exit_policy(path, settings)`` is
what scan and replay call: Phase 2 from a valid published file, otherwise Phase 1.
"""

from gammaride.calibration.grid import SL_GRID, TP_GRID, simulate_grid, trade_paths_from_frames
from gammaride.calibration.pipeline import (
    BucketReport,
    CalibrationResult,
    calibrate,
    calibrate_paths,
    parse_edges,
)
from gammaride.calibration.policy import SCHEMA_VERSION, load_exit_policy, write_calibration

__all__ = [
    "SCHEMA_VERSION",
    "SL_GRID",
    "TP_GRID",
    "BucketReport",
    "CalibrationResult",
    "calibrate",
    "calibrate_paths",
    "load_exit_policy",
    "parse_edges",
    "simulate_grid",
    "trade_paths_from_frames",
    "write_calibration",
]
