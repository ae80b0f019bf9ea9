"""Every calibrate run is a look at the journal; the publish decision pays for all of them.

A look is journaled in the ``calibrations`` table. Looks whose scored sequences extend one
another (the same objective and settings, each earlier sequence a prefix of the later:
the normal case of rerunning as trades accumulate) form one *chain* and share one
confidence sequence, which is valid at every length at once. A look whose sequence does
not extend an earlier chain (trades replayed into the past, other settings, the other
objective) starts a new chain. Chain ``c`` publishes only when its lower bound, one-sided
at level ``ALPHA / (c (c + 1))``, clears zero; these levels sum to ``ALPHA``, so by the
union bound the chance that any look ever publishes on a journal without an edge stays at
or below ``ALPHA`` (alpha spending over recorded looks).
Looks that could not test (too few scored sessions) spend nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

ALPHA = 0.05


@dataclass(frozen=True)
class Look:
    """One calibrate run as journaled."""

    look: int  # 1 = the first look at this journal
    chain: int | None  # None: it could not test, so it spent nothing
    alpha: float | None  # the chain's one-sided level (of the lower bound) when it tested
    sequence_key: str  # objective and settings that define the scored sequence
    sessions: int  # scored sessions
    digest: str | None  # digest of the whole scored sequence
    published: bool = False
    forced: bool = False
    objective: str = "atr"
    symbol: str | None = None
    trades: int | None = None
    scored_trades: int | None = None
    statistic: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    verdict: str | None = None


def chain_alpha(chain: int, alpha: float = ALPHA) -> float:
    """Level of chain ``chain`` (1, 2, ...): alpha / (chain (chain + 1)); they sum to alpha."""
    return alpha / (chain * (chain + 1))


def sequence_digests(labels: Sequence[Any], sums: np.ndarray, counts: np.ndarray) -> list[str]:
    """Digest of each prefix of the scored sequence (session label, sum, count)."""
    out, h = [], ""
    for label, s, c in zip(labels, sums, counts, strict=True):
        h = hashlib.sha256(f"{h}|{label}|{float(s):.9e}|{int(c)}".encode()).hexdigest()[:20]
        out.append(h)
    return out


def place_look(
    prior: Iterable[Look], key: str, digests: Sequence[str], can_test: bool, alpha: float = ALPHA
) -> tuple[int, int | None, float | None]:
    """(look number, chain, level) for a new look given the journal's earlier looks."""
    prior = sorted(prior, key=lambda x: x.look)
    number = (prior[-1].look + 1) if prior else 1
    if not can_test:
        return number, None, None
    latest: dict[int, Look] = {}
    for p in prior:
        if p.chain is not None:
            latest[p.chain] = p
    for chain in sorted(latest):
        p = latest[chain]
        if (
            p.sequence_key == key
            and p.digest is not None
            and 0 < p.sessions <= len(digests)
            and digests[p.sessions - 1] == p.digest
        ):
            return number, chain, chain_alpha(chain, alpha)
    chain = max(latest, default=0) + 1
    return number, chain, chain_alpha(chain, alpha)


def read_looks(journal: Any, symbol: str) -> list[Look]:
    """The journal's earlier looks for ``symbol``, oldest first."""
    rows = journal.query(
        "SELECT look, chain, alpha_spent, sequence_key, sessions, sequence_digest, published, "
        "forced, objective FROM calibrations WHERE symbol = ? ORDER BY look",
        [symbol],
    )
    return [
        Look(
            look=int(r.look),
            chain=None if _missing(r.chain) else int(r.chain),
            alpha=None if _missing(r.alpha_spent) else float(r.alpha_spent),
            sequence_key=str(r.sequence_key),
            sessions=0 if _missing(r.sessions) else int(r.sessions),
            digest=None if _missing(r.sequence_digest) else str(r.sequence_digest),
            published=bool(r.published),
            forced=bool(r.forced) if not _missing(r.forced) else False,
            objective=str(r.objective),
        )
        for r in rows.itertuples()
    ]


def record_look(journal: Any, look: Look, out_path: str | None, detail: dict | None = None) -> None:
    """Journal one look (its own transaction)."""
    with journal.transaction():
        next_id = journal.con.execute(
            "SELECT coalesce(max(calibration_id), 0) + 1 FROM calibrations"
        ).fetchone()[0]
        journal.con.execute(
            "INSERT INTO calibrations (calibration_id, run_at, look, symbol, objective, trades, "
            "scored_trades, sessions, statistic, ci_low, ci_high, alpha_spent, chain, "
            "sequence_key, sequence_digest, verdict, published, forced, out_path, detail_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                int(next_id), datetime.now(timezone.utc), look.look, look.symbol, look.objective,
                look.trades, look.scored_trades, look.sessions, look.statistic, look.ci_low,
                look.ci_high, look.alpha, look.chain, look.sequence_key, look.digest,
                look.verdict, look.published, look.forced, out_path,
                json.dumps({**asdict(look), **(detail or {})}, default=str, allow_nan=False),
            ],
        )


def _missing(value: Any) -> bool:
    try:
        return value is None or bool(value != value)
    except TypeError:  # pandas' NA
        return True
