"""Domain exceptions. The library raises these; only the CLI turns them into exit codes."""

from __future__ import annotations


class GammarideError(Exception):
    """Base class: every message says what was wrong and how to fix it."""

    exit_code = 1


class ConfigError(GammarideError, ValueError):
    """A setting has a value outside its valid range, or a config file is unreadable."""

    exit_code = 2


class BarsFileError(GammarideError, ValueError):
    """A bars file cannot be used; the message names the file, the row and the fix."""

    exit_code = 3

    def __init__(self, path: object, message: str, fix: str, row: int | None = None):
        self.path = str(path)
        self.row = row
        self.fix = fix
        where = f"{self.path}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {message}. Fix: {fix}")


class JournalError(GammarideError):
    """The journal cannot be opened or written."""

    exit_code = 4


class JournalVersionError(JournalError):
    """The journal was written by a newer gammaride."""


class CalibrationError(GammarideError):
    """Calibration cannot run (for example too few trades)."""

    exit_code = 5


class BrokerError(GammarideError):
    """The broker refused or failed a request."""

    exit_code = 6


class CredentialsError(GammarideError):
    """API keys are missing, empty or still placeholders."""

    exit_code = 7


class OutputError(GammarideError, OSError):
    """An output file (report, calibration) cannot be written where asked."""

    exit_code = 8
