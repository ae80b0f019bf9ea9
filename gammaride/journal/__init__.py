"""The DuckDB journal: every scan, order, fill and trade.

``Journal`` and ``default_journal_path`` load DuckDB and pandas on first use, so that
``gammaride.journal.modes`` (the run modes a command line offers) stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gammaride.journal.store import Journal, default_journal_path

__all__ = ["Journal", "default_journal_path"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gammaride.journal import store

        return getattr(store, name)
    raise AttributeError(f"module 'gammaride.journal' has no attribute {name!r}")
