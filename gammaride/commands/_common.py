"""Pieces every command shares: the journal and calibration paths, settings, the exit policy.

Light at import (``--help`` imports it): the journal, DuckDB and the rules load inside the
functions that use them."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gammaride.config import MAX_SPEED, Settings
from gammaride.errors import ConfigError, OutputError
from gammaride.outputs import check_target

if TYPE_CHECKING:
    from gammaride.journal import Journal
    from gammaride.rules.setup import ExitPolicy


def add_journal_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--journal",
        default=None,
        metavar="PATH",
        help="DuckDB journal (default: $GAMMARIDE_JOURNAL or ./gammaride.duckdb)",
    )


def journal_path(args: argparse.Namespace) -> Path:
    """``--journal PATH``, else ``$GAMMARIDE_JOURNAL`` or ``./gammaride.duckdb``; an empty
    ``--journal ''`` is a mistake (an unset variable in a script), not the default."""
    from gammaride.journal import default_journal_path

    given = getattr(args, "journal", None)
    if given is None:
        return default_journal_path()
    if not str(given).strip():
        raise ConfigError("--journal is empty; give a file such as gammaride.duckdb, or leave it out")
    return Path(given)


def check_speed(speed: float) -> float:
    """``--speed``: finite, 0 (stepped clock) up to a million times real time."""
    if not (math.isfinite(speed) and 0 <= speed <= MAX_SPEED):
        raise ConfigError(f"--speed {speed!r} is not in 0..{MAX_SPEED:g}; give e.g. 60 (0 = stepped clock)")
    return speed


def check_offline_arguments(args: argparse.Namespace) -> None:
    """``--speed``, ``--url``, ``--start`` and ``--faults`` checked before anything is opened
    or started."""
    from gammaride.keys import safe_url
    from gammaride.offline.faults import FaultSpec
    from gammaride.offline.market import to_ns

    check_speed(args.speed)
    if getattr(args, "url", None) is not None:
        safe_url(args.url)
    if getattr(args, "start", None) is not None:
        to_ns(args.start)
    FaultSpec.parse(getattr(args, "faults", None))


def check_seed(seed: int) -> int:
    if seed < 0:
        raise ConfigError(f"--seed {seed} is negative; give a whole number >= 0, e.g. --seed 7")
    return seed


def open_journal(args: argparse.Namespace, read_only: bool = False) -> Journal:
    from gammaride.journal import Journal

    return Journal(journal_path(args), read_only=read_only)


def calibration_path(args: argparse.Namespace, journal: str | os.PathLike | None = None) -> Path:
    """``--calibration PATH``, else ``calibration.json`` next to the journal."""
    if getattr(args, "calibration", None):
        return Path(args.calibration)
    from gammaride.calibration.document import calibration_path_for

    return calibration_path_for(journal if journal is not None else journal_path(args))


def load_policy(path: Path, settings: Settings) -> tuple[ExitPolicy, str]:
    """The published calibration (Phase 2) or Phase 1, with a line saying which and why."""
    from gammaride.rules.setup import ExitPolicy

    try:
        from gammaride.calibration import load_exit_policy
    except ImportError:
        policy = ExitPolicy.phase1(settings)
        return policy, policy.describe()
    return load_exit_policy(path, settings)


def output_path(out: str | os.PathLike | None, file_name: str) -> Path | None:
    """``--out``: a file path, or a folder to write ``file_name`` into; refused before any
    work when it is a symbolic link, a device or otherwise not a regular file."""
    if out is None:
        return None
    if not str(out).strip():
        raise OutputError(f"--out is empty; give a file name such as {file_name} or a folder")
    path = Path(out)
    path = path / file_name if path.is_dir() else path
    return check_target(path, "--out")


def load_settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return Settings.load(getattr(args, "config", None), **overrides)
