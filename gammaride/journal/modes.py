"""The modes a run is journaled under, one home for the list (light: no DuckDB)."""

RUN_MODES = ("replay", "offline", "paper", "live")
