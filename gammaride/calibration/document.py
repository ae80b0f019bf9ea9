"""What ``calibration.json`` is: its name, where it lives, its schema and the grid it speaks of.

Light on purpose (numpy and the standard library only): the scanner's loader, the report
and the writer all take these from here without importing the fitting code.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SCHEMA = "gammaride.calibration"
SCHEMA_VERSION = 1
FILE_NAME = "calibration.json"

TP_GRID = np.round(np.arange(0.5, 4.0 + 1e-9, 0.1), 1)
SL_GRID = np.round(np.arange(0.3, 2.0 + 1e-9, 0.1), 1)


def calibration_path_for(journal: str | os.PathLike) -> Path:
    """``calibration.json`` next to the journal (in the working folder for ``:memory:``)."""
    if str(journal) == ":memory:":
        return Path(FILE_NAME)
    return Path(journal).parent / FILE_NAME


def bucket_labels(n_buckets: int) -> tuple[str, ...]:
    """Names of ATR buckets, lowest first: all; low/high; low/mid/high; b1, b2, ..."""
    named = {1: ("all",), 2: ("low", "high"), 3: ("low", "mid", "high")}
    return named.get(n_buckets, tuple(f"b{i + 1}" for i in range(n_buckets)))
