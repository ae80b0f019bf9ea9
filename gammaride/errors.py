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
    """The broker refused or failed a request. ``status`` is the HTTP status (None when
    no answer came); ``kind`` is http | timeout | network | malformed."""

    exit_code = 6
    status: int | None = None
    kind: str = "http"

    @property
    def unreachable(self) -> bool:
        """No answer from the broker at all (timeout, refused or dropped connection)."""
        return self.kind in ("timeout", "network")


class BrokerTransientError(BrokerError):
    """Worth trying again: no answer, a malformed one, 5xx, 408 or 429."""


class BrokerRejectedError(BrokerError):
    """A definite refusal of this request (4xx other than auth, 408 and 429)."""


class BrokerAuthError(BrokerError):
    """The broker refused the keys (401, or 403 on the account or clock): nothing will work."""


def broker_error(text: str, status: int | None, kind: str, auth_403: bool = False) -> BrokerError:
    """The typed :class:`BrokerError` for an answer (``status``) or its absence (``kind``).
    ``auth_403``: a 403 on this request means the keys were refused (account, clock)."""
    if status == 401 or (status == 403 and auth_403):
        cls: type[BrokerError] = BrokerAuthError
    elif status is None or status >= 500 or status in (408, 429):
        cls = BrokerTransientError
    else:
        cls = BrokerRejectedError
    err = cls(text)
    err.status = status
    err.kind = kind
    return err


class CredentialsError(GammarideError):
    """API keys are missing, empty or still placeholders."""

    exit_code = 7


class OutputError(GammarideError, OSError):
    """An output file (report, calibration) cannot be written where asked."""

    exit_code = 8
