"""The DuckDB journal: every scan, order, fill and trade."""

from gammaride.journal.store import Journal, default_journal_path

__all__ = ["Journal", "default_journal_path"]
