"""The report's dealer-gamma section: does the premise hold on the trader's own trades?

Win rate and expectancy by gamma regime and by the distance to the zero-gamma level
(each trade takes the measure of the scan that entered it), the difference between
the regimes with its interval, how many trades it would take to tell them apart, and
a chart of the latest measured session's net exposure against price.

``section`` reads the journal (inside the report's run filter, the registered
``_report_runs`` view) and returns plain data; ``install`` adds the section's template
and its chart filter to the report's Jinja environment.
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from gammaride.journal import Journal
from gammaride.reports import stats
from gammaride.rules.gamma import REGIME_LONG, REGIME_SHORT, compact_usd

PARTIAL = "gamma.html.j2"
REGIMES = (REGIME_SHORT, REGIME_LONG, "unknown")
# distance of the entry price above the zero-gamma level, in % of price
DISTANCE_EDGES = (-1.0, 0.0, 1.0)
DISTANCE_LABELS = ("more than 1% below", "0-1% below", "0-1% above", "more than 1% above", "unknown")
# R per trade has an SD of about 1.4 on real SPY sessions (DESIGN, statistics facts)
ASSUMED_SD_R = 1.4
REFERENCE_EFFECT_R = 0.25
Z_POWER80 = 0.8416212335729143


def section(journal: Journal, closed: pd.DataFrame, min_n: int = 10) -> dict[str, Any]:
    """The section's data. ``closed``: the report's closed trades (``trade_id``,
    ``pnl_usd``, ``r_multiple``); call while ``_report_runs`` is registered."""
    counts = journal.con.execute(
        """
        SELECT count(*) FILTER (WHERE in_window),
               count(*) FILTER (WHERE in_window AND gex_net IS NOT NULL),
               count(*) FILTER (WHERE gamma_reason LIKE 'replay:%')
        FROM scans WHERE run_id IN (SELECT run_id FROM _report_runs)
        """
    ).fetchone()
    trades = _with_measure(journal, closed)
    by_regime = stats.breakdown(trades, "regime", order=REGIMES, min_n=min_n)
    by_distance = stats.breakdown(trades, "distance", order=DISTANCE_LABELS, min_n=min_n)
    return {
        "in_window_scans": int(counts[0] or 0),
        "measured_scans": int(counts[1] or 0),
        "replay_scans": int(counts[2] or 0),
        "trades": int(len(trades)),
        "measured_trades": int((trades["regime"] != "unknown").sum()) if len(trades) else 0,
        "by_regime": by_regime,
        "by_distance": by_distance,
        "difference": regime_difference(trades),
        "latest": _latest_session(journal),
    }


def regime_difference(trades: pd.DataFrame) -> dict[str, Any]:
    """Expectancy in R, short minus long regime, with a 95% (Welch) interval, and the
    trades per regime a two-sided 5% test at 80% power needs to detect it (and to
    detect a reference difference of 0.25 R)."""
    r = trades["r_multiple"].to_numpy(dtype=float) if len(trades) else np.array([])
    reg = trades["regime"].to_numpy(dtype=object) if len(trades) else np.array([], dtype=object)
    short, long_ = r[(reg == REGIME_SHORT) & np.isfinite(r)], r[(reg == REGIME_LONG) & np.isfinite(r)]
    out: dict[str, Any] = {"n_short": len(short), "n_long": len(long_), "diff": math.nan,
                           "lo": math.nan, "hi": math.nan}
    if len(short) and len(long_):
        out["diff"] = float(short.mean() - long_.mean())
    if len(short) >= 2 and len(long_) >= 2:
        se = math.sqrt(short.var(ddof=1) / len(short) + long_.var(ddof=1) / len(long_))
        out["lo"], out["hi"] = out["diff"] - stats.Z95 * se, out["diff"] + stats.Z95 * se
        pooled = math.sqrt(((len(short) - 1) * short.var(ddof=1) + (len(long_) - 1) * long_.var(ddof=1))
                           / (len(short) + len(long_) - 2))
        out["sd"], out["sd_source"] = pooled, "measured on these trades"
    else:
        out["sd"], out["sd_source"] = ASSUMED_SD_R, "assumed (about 1.4 R on real SPY sessions)"
    out["needed_observed"] = trades_per_group(out["diff"], out["sd"])
    out["reference_effect"] = REFERENCE_EFFECT_R
    out["needed_reference"] = trades_per_group(REFERENCE_EFFECT_R, out["sd"])
    return out


def trades_per_group(effect: float, sd: float, z_alpha: float = stats.Z95, z_power: float = Z_POWER80) -> float:
    """Trades in each of two groups to detect a mean difference ``effect`` (two-sided
    5%, 80% power, normal approximation); NaN when there is no effect to detect."""
    if not (math.isfinite(effect) and math.isfinite(sd)) or effect == 0 or sd <= 0:
        return math.nan
    return float(math.ceil(2.0 * ((z_alpha + z_power) * sd / effect) ** 2))


def distance_label(distance_pct: float) -> str:
    if distance_pct is None or not math.isfinite(distance_pct):
        return DISTANCE_LABELS[-1]
    return DISTANCE_LABELS[int(np.searchsorted(DISTANCE_EDGES, distance_pct, side="right"))]


def _with_measure(journal: Journal, closed: pd.DataFrame) -> pd.DataFrame:
    """The closed trades with the regime and distance of the scan that entered them."""
    base = closed[["trade_id", "pnl_usd", "r_multiple"]].copy() if len(closed) else \
        pd.DataFrame({"trade_id": [], "pnl_usd": [], "r_multiple": []})
    scans = journal.query(
        """
        SELECT trade_id, any_value(gamma_regime) AS regime,
               any_value((price - zero_gamma) / price * 100) AS distance_pct
        FROM scans WHERE trade_id IS NOT NULL AND run_id IN (SELECT run_id FROM _report_runs)
        GROUP BY trade_id
        """
    )
    out = base.merge(scans, on="trade_id", how="left") if len(base) else \
        base.assign(regime=pd.Series(dtype=object), distance_pct=pd.Series(dtype=float))
    out["regime"] = out["regime"].astype(object).where(out["regime"].notna(), "unknown")
    out["distance"] = [distance_label(d) for d in out["distance_pct"].to_numpy(dtype=float)]
    return out


def _latest_session(journal: Journal) -> dict[str, Any] | None:
    frame = journal.query(
        """
        WITH measured AS (
            SELECT decision_time, price, gex_net, zero_gamma, gamma_regime
            FROM scans WHERE gex_net IS NOT NULL AND decision_time IS NOT NULL
              AND run_id IN (SELECT run_id FROM _report_runs)
        )
        SELECT strftime(decision_time, '%H:%M') AS at, strftime(decision_time, '%Y-%m-%d') AS session,
               price, gex_net, zero_gamma, gamma_regime
        FROM measured
        WHERE CAST(decision_time AS DATE) = (SELECT max(CAST(decision_time AS DATE)) FROM measured)
        ORDER BY decision_time
        """
    )
    if frame.empty:
        return None
    return {
        "session": str(frame["session"].iloc[0]),
        "times": frame["at"].astype(str).tolist(),
        "price": _floats(frame["price"]),
        "net": _floats(frame["gex_net"]),
        "zero_gamma": _floats(frame["zero_gamma"]),
        "short": (frame["gamma_regime"].astype(object) == REGIME_SHORT).tolist(),
        "scans": len(frame),
        "short_scans": int((frame["gamma_regime"].astype(object) == REGIME_SHORT).sum()),
    }


def _floats(series: pd.Series) -> list[float]:
    return [float(x) for x in series.to_numpy(dtype=float, na_value=np.nan)]


# --------------------------------------------------------------------- rendering
def exposure_chart(latest: dict[str, Any] | None, layout: str = "wide") -> str | None:
    """Price with the zero-gamma level (top, short-gamma scans shaded) and the net
    exposure per 1% move (bottom) through the latest measured session, in the report's
    desktop (``wide``) or phone (``narrow``) layout."""
    if not latest or not latest["times"]:
        return None
    from matplotlib import rc_context
    from matplotlib.ticker import FuncFormatter

    from gammaride.reports import charts

    x = np.arange(len(latest["times"]), dtype=float)
    price = np.asarray(latest["price"], dtype=float)
    zero = np.asarray(latest["zero_gamma"], dtype=float)
    net = np.asarray(latest["net"], dtype=float)
    short = np.asarray(latest["short"], dtype=bool)
    with rc_context(charts._RC):
        fig, (ax_p, ax_g) = charts._figure(charts.LAYOUTS[layout], 4.6 if layout == "wide" else 5.4,
                                           nrows=2, sharex=True)
        ax_p.plot(x, np.round(price, 4), color=charts.LINE_COLOR, linewidth=1.4, label="price")
        if np.isfinite(zero).any():
            ax_p.plot(x, np.round(zero, 4), color="#57606a", linestyle="--", linewidth=1,
                      label="zero-gamma level")
        lo, hi = np.nanmin(np.r_[price, zero]), np.nanmax(np.r_[price, zero])
        ax_p.fill_between(x, lo, hi, where=short, color=charts.LOSS_COLOR, alpha=0.12, linewidth=0,
                          step="mid", label="dealers short gamma")
        ax_p.set_ylabel("price ($)")
        ax_p.legend(loc="best", frameon=False)
        ax_g.bar(x, np.round(net / 1e6, 3), width=0.9,
                 color=np.where(net < 0, charts.LOSS_COLOR, charts.WIN_COLOR))
        ax_g.axhline(0, color="#57606a", linewidth=0.8)
        ax_g.set_ylabel("net gamma ($M per 1%)")
        step = max(1, len(x) // (8 if layout == "wide" else 4))
        ax_g.set_xticks(x[::step])
        ax_g.set_xticklabels(latest["times"][::step])
        ax_g.set_xlabel(f"decision time, {latest['session']} (ET)")
        ax_g.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        name = "gamma" if layout == "wide" else "gamma-narrow"
        return charts._svg(fig, name, f"Net dealer gamma exposure against price on {latest['session']}")


def install(env) -> None:
    """Add the section's template and filters to the report's Jinja environment."""
    from markupsafe import Markup

    env.loader.mapping[PARTIAL] = (
        resources.files("gammaride.reports").joinpath("templates", PARTIAL).read_text(encoding="utf-8")
    )

    def chart(latest):
        wide = exposure_chart(latest)
        if not wide:
            return None
        narrow = exposure_chart(latest, "narrow")  # the page shows the layout that fits
        return Markup(f'<div class="chart-wrap"><div class="wide">{wide}</div>'
                      f'<div class="narrow">{narrow}</div></div>')

    env.filters.update(gamma_chart=chart, gex=compact_usd)
