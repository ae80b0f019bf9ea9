"""A trade's identity, and the rule that counts each trade once.

A trade is the same trade when it has the same symbol, the same entry decision minute,
the same direction and the same kind: a **fill** (paper or live: orders a broker
filled) or a **simulation** (replay, and offline runs against the offline server).
Replaying the same sessions twice journals every simulated trade twice; a paper fill
at a minute that was also replayed is a different trade (one real, one simulated).

:func:`count_once` is the one implementation of the rule. The report, ``gammaride
journal`` and calibration all read trades through it (calibration through
:meth:`gammaride.journal.Journal.trades`).

Which row stands for a trade journaled twice: trades a later replay superseded
(``trades.superseded_by``, set by ``gammaride replay --replace``) never count; among
the rest, the row of the latest run counts (the newest code and settings).
"""

from __future__ import annotations

import pandas as pd

FILL_MODES = ("paper", "live")
SIMULATION_MODES = ("replay", "offline")
KINDS = ("fill", "simulation")
IDENTITY = ("symbol", "decision_minute", "direction", "kind")
"""The columns that name a trade."""
MARKET = ("symbol", "decision_minute", "direction")
"""The columns that name a market moment: a fill and a simulation of it share them."""
COUNTS = ("trade", "minute", "none")
KIND_SQL = "CASE WHEN r.mode IN ('paper', 'live') THEN 'fill' ELSE 'simulation' END"
""":func:`kind_of` in SQL, over ``runs r``."""

# The cost model's source of a trade's prices, and what a trader may read into it.
PNL_SOURCES = {
    "fills": "measured",          # broker fills (paper, live, the offline server)
    "option_bars": "estimated",   # the contract's historical minute bars
    "black_scholes": "estimated", # modelled option prices
    "delta_estimate": "estimated",  # the underlying's move times a delta
}


def kind_of(mode: str) -> str:
    """'fill' for paper and live runs, 'simulation' for replay and offline runs."""
    if mode in FILL_MODES:
        return "fill"
    if mode in SIMULATION_MODES:
        return "simulation"
    raise ValueError(f"run mode {mode!r} is not replay, offline, paper or live")


def pnl_source_of(pnl_source: object, mode: str) -> str:
    """The trade's P&L source; rows written before the cost model say it by their mode
    (replay: 'delta_estimate', others: 'fills'), as the m005 backfill does."""
    if isinstance(pnl_source, str) and pnl_source:
        return pnl_source
    return "delta_estimate" if mode == "replay" else "fills"


def with_identity(trades: pd.DataFrame) -> pd.DataFrame:
    """``trades`` (with ``mode``, ``symbol``, ``entry_time``, ``direction``) plus ``kind``,
    ``decision_minute``, ``identity`` (one printable key) and ``pnl_source`` filled in."""
    out = trades.copy()
    modes = out["mode"].astype(object)
    out["kind"] = [kind_of(str(m)) for m in modes]
    entry = pd.to_datetime(out["entry_time"])
    out["decision_minute"] = entry.dt.floor("min")
    out["identity"] = [
        f"{sym} {minute:%Y-%m-%d %H:%M} {side} {kind}"
        for sym, minute, side, kind in zip(
            out["symbol"], out["decision_minute"], out["direction"], out["kind"], strict=True
        )
    ]
    sources = out["pnl_source"] if "pnl_source" in out.columns else pd.Series(None, index=out.index)
    if "pnl_usd" in out.columns:
        # a row written before the cost model has no costs in it: its gross is its net
        gross = out["gross_pnl_usd"] if "gross_pnl_usd" in out.columns else pd.Series(None, index=out.index)
        out["gross_pnl_usd"] = gross.astype(float).where(sources.notna(), out["pnl_usd"].astype(float))
    out["pnl_source"] = [pnl_source_of(s, str(m)) for s, m in zip(sources, modes, strict=True)]
    return out


def count_once(trades: pd.DataFrame, per: str = "trade") -> pd.DataFrame:
    """Each trade once, in the input order.

    ``per="trade"``: one row per :data:`IDENTITY` (a fill and a simulation of the same
    minute both stay). ``per="minute"``: one row per :data:`MARKET` moment, the fill
    preferred over the simulation (for work on the underlying's path, such as
    calibration). ``per="none"``: every row, superseded ones included.
    Superseded rows never count; of the rest the latest run's row does.
    """
    if per not in COUNTS:
        raise ValueError(f"count per {per!r} is not one of {', '.join(COUNTS)}")
    if "kind" not in trades.columns:
        trades = with_identity(trades)
    if per == "none" or trades.empty:
        return trades
    live = trades
    if "superseded_by" in trades.columns:
        live = trades[trades["superseded_by"].isna()]
    keys = list(IDENTITY if per == "trade" else MARKET)
    # latest run first (fills before simulations for a market moment), then keep the first
    rank = live.assign(_fill=(live["kind"] == "fill").astype(int))
    rank = rank.sort_values(["_fill", "run_id", "trade_id"], ascending=False, kind="stable")
    kept = rank.drop_duplicates(keys, keep="first").index
    return trades.loc[trades.index.isin(kept)]


def quality(trades: pd.DataFrame) -> dict[str, int]:
    """How many rows of ``trades`` do not count: ``superseded`` by a later replay, and
    ``duplicates`` (the same trade journaled again)."""
    if trades.empty:
        return {"superseded": 0, "duplicates": 0}
    superseded = int(trades["superseded_by"].notna().sum()) if "superseded_by" in trades else 0
    counted = len(count_once(trades))
    return {"superseded": superseded, "duplicates": len(trades) - superseded - counted}
