"""Render the report data into one self-contained HTML page, write it, or show it inline.

Jinja2 with autoescape always on (the template's ``.j2`` name would otherwise switch it
off): journal text such as a symbol or a skip reason can never become markup. The only
unescaped content is the SVG the charts module builds from numbers.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from gammaride.journal import Journal
from gammaride.outputs import write_atomic
from gammaride.reports import charts
from gammaride.reports import gamma as gamma_section
from gammaride.reports.data import ReportFilters, build_report_data
from gammaride.text import is_missing as _missing
from gammaride.text import signed_usd, usd

TEMPLATE = "report.html.j2"


def _clean(x: Any, digits: int) -> Any:
    """Rounded as printed, so a tiny loss never shows as "-0.00"."""
    return x if _missing(x) else round(float(x), digits) + 0.0


def _pct(x: Any, digits: int = 1) -> str:
    return "–" if _missing(x) else f"{_clean(x * 100, digits):.{digits}f}%"


def _r(x: Any, digits: int = 2) -> str:
    return "–" if _missing(x) else f"{_clean(x, digits):+.{digits}f} R"


def _num(x: Any, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    if isinstance(x, float) and math.isnan(x):
        return "–"
    return f"{_clean(x, digits):,.{digits}f}"


def _signed(x: Any, digits: int = 2) -> str:
    return "–" if _missing(x) else f"{_clean(x, digits):+,.{digits}f}"


def _money(x: Any) -> str:
    return usd(_clean(x, 2))


def _signed_money(x: Any) -> str:
    return signed_usd(_clean(x, 2))


def _count(x: Any) -> str:
    return "–" if _missing(x) else f"{int(x):,}"


def _tone(x: Any) -> str:
    """'pos' or 'neg' for a value as printed (a rounded zero is neither)."""
    if _missing(x):
        return ""
    v = _clean(x, 2)
    return "pos" if v > 0 else "neg" if v < 0 else ""


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    source = resources.files("gammaride.reports").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        loader=jinja2.DictLoader({TEMPLATE: source}),
    )
    env.filters.update(
        pct=_pct, usd=_money, signed_usd=_signed_money, r=_r, num=_num, signed=_signed,
        count=_count, missing=_missing, tone=_tone,
    )
    gamma_section.install(env)
    return env


def _block_charts(block: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Each chart of a block in both layouts, as markup (``None`` where there is no data)."""
    out = {}
    for key, make, arg in (("equity", charts.equity_chart, block["equity"]),
                           ("rhist", charts.r_histogram, block["r_values"]),
                           ("excursions", charts.excursion_chart, block["excursions"])):
        layouts = {layout: make(arg, layout, prefix) for layout in charts.LAYOUTS}
        out[key] = {k: Markup(v) for k, v in layouts.items()} if layouts["wide"] else None
    return out


def render_report(data: dict[str, Any], fragment: bool = False, generated: datetime | None = None) -> str:
    """The report page for ``build_report_data``'s dict. ``fragment``: a ``<div>`` for
    notebook output instead of a whole document."""
    generated = generated or datetime.now(timezone.utc)
    return _environment().get_template(TEMPLATE).render(
        d=data,
        h=data["headline"],
        charts={"fills": _block_charts(data["fills"], "fills-"),
                "backtest": _block_charts(data["backtest"], "backtest-")},
        fragment=fragment,
        generated=generated.strftime("%Y-%m-%d %H:%M UTC"),
    )


def headline_text(data: dict[str, Any]) -> str:
    """Lines for a terminal: paper and live fills, then the backtest, each counted once."""
    parts = []
    for key, name in (("fills", "paper/live fills"), ("backtest", "backtest (simulated)")):
        h = data[key]["summary"]
        if h["n"] == 0:
            continue
        mark = "measured" if data[key]["measured"] else "estimated"
        parts.append(
            f"{name}: {h['n']:,} trades, win rate {_pct(h['win_rate'])} "
            f"(95% CI {_pct(h['win_lo'])}-{_pct(h['win_hi'])}), expectancy {_r(h['exp_r'])} "
            f"(95% CI {_signed(h['exp_r_lo'])} to {_signed(h['exp_r_hi'])}) / "
            f"{_signed_money(h['exp_usd'])} per trade, net P&L {_signed_money(h['total_usd'])} "
            f"(gross {_signed_money(h['total_gross_usd'])}, {mark})"
        )
    if not parts:
        scans = data["funnel"]["stages"][0]["n"]
        return f"no closed trades yet; {scans:,} scans journaled"
    return "\n".join(parts)


def write_report(
    journal: Journal | str | os.PathLike,
    out: str | os.PathLike = "report.html",
    filters: ReportFilters | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Build, render and write the report; returns (the path written, the report data).

    The file is written whole or not at all (a temporary file renamed over it), so a
    browser tab reloading it never sees half a page.
    """
    data = build_report_data(journal, filters)
    html = render_report(data)
    out = write_atomic(out, html, what="report")
    return out, data


def show(journal: Journal | str | os.PathLike, filters: ReportFilters | None = None) -> Any:
    """The report for a notebook cell (Colab, Jupyter): an ``IPython.display.HTML``
    object, or the HTML string where IPython is not installed."""
    html = render_report(build_report_data(journal, filters), fragment=True)
    try:
        from IPython.display import HTML
    except ImportError:
        return html
    return HTML(html)
