"""Exit evaluation over the bars after an entry. Pure and vectorized over many entries.

Rules (DESIGN.md): from the first bar after the entry decision, a bar reaching the SL
exits at the SL (at its open if it opens beyond); else a bar reaching the TP exits at
the TP (likewise); a bar touching both counts as the SL; otherwise the close of the
last evaluable bar: the max-hold bar ('time') or the bar ending at the hard stop
('hard_stop'). Replay, the live position manager and calibration all call this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXIT_TP = "tp"
EXIT_SL = "sl"
EXIT_TIME = "time"
EXIT_HARD_STOP = "hard_stop"
EXIT_MANUAL = "manual"
EXIT_REASONS = (EXIT_TP, EXIT_SL, EXIT_TIME, EXIT_HARD_STOP, EXIT_MANUAL)


@dataclass(frozen=True)
class ExitResult:
    """Per entry: index of the exit bar in the path (-1: not exited yet), price, reason."""

    bar: np.ndarray
    price: np.ndarray
    reason: np.ndarray


def evaluate_exits(
    sign: np.ndarray,
    tp: np.ndarray,
    sl: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    n_valid: np.ndarray,
    end_reason: np.ndarray | str = EXIT_TIME,
    final: bool = True,
) -> ExitResult:
    """Exit of each of ``n`` entries over paths of ``m`` bars.

    ``sign``: +1 long the underlying (call), -1 short (put); ``tp``/``sl``: price levels,
    shape (n,). ``open_``/``high``/``low``/``close``: shape (n, m), bar ``j`` is the
    ``j+1``-th bar after the decision. ``n_valid``: how many leading bars are evaluable.
    ``end_reason``: reason when neither level is hit by the last evaluable bar.
    ``final``: False for a live check of a position whose clock has not run out; entries
    without a TP/SL hit then come back with bar -1 and reason None.
    """
    sign = np.asarray(sign, dtype=float).reshape(-1, 1)
    n, m = np.shape(high)
    # Mirror puts so every entry is a long: then "SL hit" is low <= sl, "TP hit" high >= tp.
    s_open = sign * open_
    s_high = np.where(sign > 0, high, -np.asarray(low)) if n else np.empty((0, m))
    s_low = np.where(sign > 0, low, -np.asarray(high)) if n else np.empty((0, m))
    s_tp = (sign[:, 0] * np.asarray(tp, dtype=float)).reshape(-1, 1)
    s_sl = (sign[:, 0] * np.asarray(sl, dtype=float)).reshape(-1, 1)
    valid = np.arange(m)[None, :] < np.asarray(n_valid).reshape(-1, 1)

    with np.errstate(invalid="ignore"):
        sl_hit = (s_low <= s_sl) & valid
        tp_hit = (s_high >= s_tp) & valid
    any_hit = sl_hit | tp_hit
    has_hit = any_hit.any(axis=1)
    first = np.where(has_hit, any_hit.argmax(axis=1), -1)
    rows = np.arange(n)
    j = np.maximum(first, 0)
    at_sl = has_hit & sl_hit[rows, j]
    o = s_open[rows, j] if m else np.zeros(n)
    s_price = np.where(at_sl, np.minimum(o, s_sl[:, 0]), np.maximum(o, s_tp[:, 0]))

    reason = np.where(has_hit, np.where(at_sl, EXIT_SL, EXIT_TP), None).astype(object)
    bar = first.copy()
    price = np.where(has_hit, sign[:, 0] * s_price, np.nan)
    if final:
        last = np.asarray(n_valid).astype(np.int64) - 1
        timed = ~has_hit & (last >= 0)
        bar[timed] = last[timed]
        price[timed] = np.asarray(close)[rows[timed], last[timed]]
        ends = np.broadcast_to(np.asarray(end_reason, dtype=object), (n,))
        reason[timed] = ends[timed]
    return ExitResult(bar=bar, price=price, reason=reason)


def excursions(
    sign: np.ndarray,
    entry: np.ndarray,
    atr: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    n_bars: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Max favourable and max adverse excursion (both >= 0) in ATRs over the first
    ``n_bars`` bars of each path (the bars the position was held)."""
    sign = np.asarray(sign, dtype=float)
    n, m = np.shape(high)
    held = np.arange(m)[None, :] < np.asarray(n_bars).reshape(-1, 1)
    up = np.where(held, high, -np.inf).max(axis=1, initial=-np.inf) - entry
    down = entry - np.where(held, low, np.inf).min(axis=1, initial=np.inf)
    fav = np.where(sign > 0, up, down)
    adv = np.where(sign > 0, down, up)
    return np.maximum(fav, 0) / atr, np.maximum(adv, 0) / atr


def outlier_prints(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    atr: np.ndarray,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Bars whose high (or low) is a bad print: more than ``threshold`` ATRs beyond the
    bar's own open/close and beyond the open/close of the bars before and after it.

    ``atr`` is the ATR known before each bar (the bar's own true range would excuse its
    print). Neighbours are compared by their bodies, not their extremes, so a bad print
    reported in two consecutive bars is caught in both. Returns (bad high, bad low) masks;
    bars without an ATR yet are never flagged.
    """
    o = np.asarray(open_, dtype=float)
    body_hi = np.maximum(o, np.asarray(close, dtype=float))
    body_lo = np.minimum(o, np.asarray(close, dtype=float))
    pad_hi = np.r_[np.nan, body_hi, np.nan]
    pad_lo = np.r_[np.nan, body_lo, np.nan]
    top = np.fmax(body_hi, np.fmax(pad_hi[:-2], pad_hi[2:]))
    bottom = np.fmin(body_lo, np.fmin(pad_lo[:-2], pad_lo[2:]))
    limit = threshold * np.asarray(atr, dtype=float)
    with np.errstate(invalid="ignore"):
        bad_high = (np.asarray(high, dtype=float) - top) > limit
        bad_low = (bottom - np.asarray(low, dtype=float)) > limit
    return bad_high, bad_low


def without_outliers(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
    bad_high: np.ndarray, bad_low: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """High and low for touch tests: a bad extreme falls back to the bar's open/close
    (the true extreme of that minute is unknown; its body is what is known to have traded)."""
    body_hi = np.maximum(open_, close)
    body_lo = np.minimum(open_, close)
    return np.where(bad_high, body_hi, high), np.where(bad_low, body_lo, low)
