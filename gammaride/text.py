"""How money is written everywhere gammaride prints it: -$415.25, +$90.00."""

from __future__ import annotations

import math
from typing import Any

MISSING = "–"


def is_missing(x: Any) -> bool:
    """None or a non-finite float: printed as a dash."""
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def usd(x: Any, digits: int = 2) -> str:
    """``-$1,234.50``; a dash when the value is missing."""
    if is_missing(x):
        return MISSING
    return f"{'-' if x < 0 else ''}${abs(x):,.{digits}f}"


def signed_usd(x: Any, digits: int = 2) -> str:
    """``+$90.00`` / ``-$50.00`` / ``$0.00``: for P&L."""
    if is_missing(x):
        return MISSING
    return ("+" if x > 0 else "") + usd(x, digits)
