"""Pieces every command shares: the journal and calibration paths, settings, the exit policy."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from gammaride.config import Settings
from gammaride.errors import OutputError
from gammaride.journal import Journal, default_journal_path
from gammaride.outputs import check_target
from gammaride.scanner.setup import ExitPolicy

CALIBRATION_FILE = "calibration.json"


def add_journal_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--journal",
        default=None,
        metavar="PATH",
        help="DuckDB journal (default: $GAMMARIDE_JOURNAL or ./gammaride.duckdb)",
    )


def journal_path(args: argparse.Namespace) -> Path:
    return Path(args.journal) if getattr(args, "journal", None) else default_journal_path()


def open_journal(args: argparse.Namespace, read_only: bool = False) -> Journal:
    return Journal(journal_path(args), read_only=read_only)


def calibration_path(args: argparse.Namespace, journal: str | os.PathLike | None = None) -> Path:
    """``--calibration PATH``, else ``calibration.json`` next to the journal."""
    if getattr(args, "calibration", None):
        return Path(args.calibration)
    base = Path(journal) if journal is not None else journal_path(args)
    if str(base) == ":memory:":
        return Path(CALIBRATION_FILE)
    return base.parent / CALIBRATION_FILE


def load_policy(path: Path, settings: Settings) -> tuple[ExitPolicy, str]:
    """The published calibration (Phase 2) or Phase 1, with a line saying which and why."""
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
