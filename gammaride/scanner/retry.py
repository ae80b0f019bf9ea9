"""The one retry rule of the scanner's broker calls.

A call is tried up to ``attempts`` times. After each failure ``on_error`` hears of it,
``recover`` may find what the failed call was for (an order the broker did take although
the reply was lost), and only a failure ``retry_if`` accepts is tried again, after
``pause``. By default a failure is retried when it is transient: no answer, a malformed
one, 5xx, 408 or 429; a definite refusal (other 4xx, bad keys) is raised at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from gammaride.errors import BrokerError

T = TypeVar("T")


def is_transient(exc: BrokerError) -> bool:
    """Worth another try: no answer or a malformed one, 5xx, 408 or 429."""
    status = getattr(exc, "status", None)
    return status is None or status >= 500 or status in (408, 429)


def with_retries(
    call: Callable[[], T],
    *,
    attempts: int = 3,
    retry_if: Callable[[BrokerError], bool] = is_transient,
    recover: Callable[[BrokerError], T | None] | None = None,
    on_error: Callable[[BrokerError], None] | None = None,
    pause: Callable[[int], None] | None = None,
) -> T:
    """``call()``, retried by the rule above; the last failure is raised."""
    last: BrokerError | None = None
    for i in range(max(1, int(attempts))):
        try:
            return call()
        except BrokerError as exc:
            last = exc
            if on_error is not None:
                on_error(exc)
            if recover is not None:
                found = recover(exc)
                if found is not None:
                    return found
            if not retry_if(exc) or i == attempts - 1:
                raise
            if pause is not None:
                pause(i)
    raise last  # type: ignore[misc] - attempts >= 1: the loop returned or raised
