"""The report's charts as small inline SVG strings (matplotlib, Agg, no pyplot).

No pyplot, so rendering a report never touches a notebook's global figure state.
Each chart comes in two layouts: ``wide`` fills a desktop page and ``narrow`` a phone
(text stays at least 11 px on a 390 px screen); the page shows one by its width.
Text stays text (``svg.fonttype: none``), metadata is stripped, long series are
thinned to their per-bin extremes and dense scatters become a density image, so the
SVG stays small whatever the number of trades.
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from gammaride.reports import stats

MAX_LINE_POINTS = 1200
MAX_SCATTER_POINTS = 1500
WIN_COLOR = "#1a7f37"
LOSS_COLOR = "#cf222e"
LINE_COLOR = "#0969da"
DD_COLOR = "#cf222e"
ZERO_COLOR = "#8c959f"
# figure size in inches per layout; fonts are in points (1 pt = 1 SVG unit)
LAYOUTS = {"wide": 9.6, "narrow": 4.2}
_RC = {
    "svg.fonttype": "none",
    "font.size": 10,
    "legend.fontsize": 10,
    "font.family": "sans-serif",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
}


def _figure(width: float, height: float, nrows: int = 1, sharex: bool = False):
    """A figure with a column of ``nrows`` axes; ``_svg`` sets its margins (see ``_fit``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    axes = fig.subplots(nrows, 1, sharex=sharex) if nrows > 1 else [fig.subplots()]
    return fig, axes


@functools.lru_cache(maxsize=4096)
def _text_size(text: str, size: float) -> tuple[float, float]:
    """(width, height) in points of one line of text in the charts' font, as matplotlib
    measures it when it lays out the figure (the line height is that of "lp")."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    prop = FontProperties(family="sans-serif", size=size)
    w, _, _ = text_to_path.get_text_width_height_descent(text, prop, ismath=False)
    _, h, _ = text_to_path.get_text_width_height_descent("lp", prop, ismath=False)
    return w, h


def _tick_labels(axis: Any) -> tuple[list[str], list[float], str]:
    """The major tick labels the axis will draw inside its view, with their positions as
    fractions of the axis length, and the offset or scale it prints at its end ("1e6")."""
    locs = np.asarray(axis.get_majorticklocs(), dtype=float)
    formatter = axis.get_major_formatter()
    labels = formatter.format_ticks(locs)  # all of them: fixed labels go by index
    lo, hi = axis.get_view_interval()
    span = (hi - lo) or 1.0
    tol = abs(span) * 1e-9
    lo_, hi_ = min(lo, hi) - tol, max(lo, hi) + tol
    shown = [(t, (v - lo) / span) for v, t in zip(locs, labels, strict=True) if lo_ <= v <= hi_ and t]
    return [t for t, _ in shown], [f for _, f in shown], formatter.get_offset()


def _fit(fig: Any) -> None:
    """Margins that hold each axis's tick labels and axis labels, measured once per chart.

    Instead of constrained layout (which lays every tick out twice before the real draw,
    most of a chart's rendering time), the figure's column of axes gets its margins from
    the measured width of the tick labels it will show: the same room, one cheap pass.
    """
    from matplotlib import rcParams

    axes = fig.axes
    fw, fh = (float(v) * 72 for v in fig.get_size_inches())  # points
    pad = 3.0  # constrained layout's default padding around the figure, in points
    tick_size = _font_points(rcParams["ytick.labelsize"])
    _, line = _text_size("0", tick_size)
    y_room = rcParams["ytick.major.size"] + rcParams["ytick.major.pad"]
    x_room = rcParams["xtick.major.size"] + rcParams["xtick.major.pad"]
    left = 0.0
    above = []  # room above each axes: a y offset such as "1e6" sits over its top end
    for ax in axes:
        labels, _, offset = _tick_labels(ax.yaxis)
        above.append(line + pad if offset else 0.0)
        need = max((_text_size(t, tick_size)[0] for t in labels), default=0.0) + y_room
        label = ax.yaxis.label
        if label.get_visible() and label.get_text():
            need += _text_size(label.get_text(), label.get_size())[1] + ax.yaxis.labelpad
        left = max(left, need)
    bottom_ax = axes[-1]
    labels, fracs, _ = _tick_labels(bottom_ax.xaxis)
    ticks = bottom_ax.xaxis.majorTicks
    rotation = math.radians(ticks[0].label1.get_rotation()) if labels else 0.0
    widths = [_text_size(t, tick_size)[0] for t in labels]
    tall = max((w * math.sin(rotation) + line * math.cos(rotation) for w in widths), default=0.0)
    bottom = tall + x_room
    xlabel = bottom_ax.xaxis.label
    if xlabel.get_visible() and xlabel.get_text():
        bottom += _text_size(xlabel.get_text(), xlabel.get_size())[1] + bottom_ax.xaxis.labelpad
    left, right, bottom, top = pad + left, pad, pad + bottom, pad + max(line / 2, above[0])
    for _ in range(2):  # x tick labels may stick out past the axes' ends
        length = fw - left - right
        for w, f in zip(widths, fracs, strict=True):
            if rotation:  # right-aligned at the tick, reaching left and down
                left = max(left, pad + w * math.cos(rotation) + line * math.sin(rotation) - f * length)
            else:
                left = max(left, pad + w / 2 - f * length)
                right = max(right, pad + w / 2 - (1 - f) * length)
    gap = 2 * line + max(above[1:], default=0.0)  # the half labels at the ends, some air
    height = (fh - top - bottom - (len(axes) - 1) * gap) / len(axes)
    fig.subplots_adjust(left=left / fw, right=1 - right / fw, bottom=bottom / fh, top=1 - top / fh,
                        hspace=gap / height)


def _font_points(size: Any) -> float:
    from matplotlib.font_manager import FontProperties

    return float(FontProperties(size=size).get_size_in_points())


def _svg(fig: Any, name: str, title: str) -> str:
    """The figure as an ``<svg>`` element sized by its container, with an accessible title."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    _fit(fig)
    buf = io.StringIO()
    # A fixed salt makes the hashed ids, and so the SVG, the same for the same data.
    with rc_context({"svg.hashsalt": name}):
        FigureCanvasSVG(fig).print_svg(buf, metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r"\n\s*", "\n", text)
    # matplotlib numbers its element ids per figure (figure_1, axes_1, ...): prefix them so
    # the charts of one page never share an id, and keep references pointing at their own.
    text = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{name}-\1)", text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{name}-\1"', text)
    # matplotlib's SVG carries a "*{...}" rule; inline, it would reach the whole page.
    text = text.replace('<style type="text/css">*{', f'<style type="text/css">#chart-{name} *{{')
    # Width from CSS, height from the viewBox's aspect ratio.
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)
    title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace(
        "<svg", f'<svg class="chart" role="img" aria-label="{title}" id="chart-{name}"', 1
    ).replace(">", f"><title>{title}</title>", 1)


def _rounded(values: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(values, dtype=float), 4)


def thin(y: Sequence[float] | np.ndarray, max_points: int = MAX_LINE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) with at most about ``max_points`` points that keep each bin's min and max,
    so a thinned equity curve still shows every peak and every trough. x is 1-based."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    x = np.arange(1, n + 1, dtype=float)
    if n <= max_points:
        return x, y
    bins = max_points // 2
    edges = np.linspace(0, n, bins + 1).astype(int)
    keep = {0, n - 1}
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b > a:
            seg = y[a:b]
            keep.add(a + int(seg.argmin()))
            keep.add(a + int(seg.argmax()))
    idx = np.array(sorted(keep))
    return x[idx], y[idx]


def _tick_format(ax: Any) -> Any:
    """Tick labels with as many decimals as the axis span needs, and never "-0"."""

    def fmt(v: float, _pos: Any) -> str:
        lo, hi = ax.get_ylim()
        span = abs(hi - lo)
        digits = 0 if span >= 8 else 1 if span >= 0.8 else 2
        return f"{round(v, digits) + 0.0:,.{digits}f}"

    return fmt


def _session_axis(ax: Any, sessions: list[str], width: float) -> None:
    """Ticks at session starts labelled by date, thinned to what the width can hold."""
    from matplotlib.ticker import FixedLocator, NullFormatter

    n = len(sessions)
    room = max(2, int(width / 1.1))  # a "2013-10-07" label needs about an inch
    step = max(1, math.ceil(n / room))
    ticks = list(range(0, n, step))
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels([sessions[i] for i in ticks])
    if n <= 80:  # a small tick at every session boundary while they stay apart
        ax.xaxis.set_minor_locator(FixedLocator(range(n + 1)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(0, n)


def equity_chart(equity: dict[str, Any], layout: str = "wide", prefix: str = "") -> str | None:
    """Cumulative P&L in $ and in R over the sessions, each with its drawdown from the
    running peak shaded. Sessions sit side by side (nights and gaps between sessions take
    no room); each trade is drawn at its exit time within its session."""
    n = len(equity["usd"])
    if n == 0:
        return None
    from matplotlib import rc_context
    from matplotlib.ticker import FuncFormatter

    width = LAYOUTS[layout]
    sessions = list(equity.get("sessions") or [])
    xs = np.asarray(equity.get("x") or np.arange(1, n + 1), dtype=float)
    with rc_context(_RC):
        fig, (ax_usd, ax_r) = _figure(width, 4.6 if layout == "wide" else 5.6, nrows=2, sharex=True)
        for ax, key, unit in ((ax_usd, "usd", "$"), (ax_r, "r", "R")):
            y = np.asarray(equity[key], dtype=float)
            peak = y + np.asarray(equity[f"dd_{key}"], dtype=float)
            idx, yt = thin(y, MAX_LINE_POINTS if layout == "wide" else MAX_LINE_POINTS // 2)
            keep = (idx - 1).astype(int)
            x, pt = xs[keep], peak[keep]  # the peak at the same kept trades as the curve
            x0 = float(np.floor(x[0]))  # the curve starts at 0 when its first session opens
            ax.fill_between(np.r_[x0, x], np.r_[0, pt], np.r_[0, yt], color=DD_COLOR, alpha=0.18,
                            linewidth=0, label="drawdown from peak")
            ax.plot(np.r_[x0, x], np.r_[0, yt], color=LINE_COLOR, linewidth=1.4,
                    label="cumulative P&L")
            ax.axhline(0, color="#57606a", linewidth=0.8)
            ax.set_ylabel(f"cumulative ({unit})")
            ax.yaxis.set_major_formatter(FuncFormatter(_tick_format(ax)))
        ax_usd.legend(loc="upper left", frameon=False)
        if sessions:
            _session_axis(ax_r, sessions, width)
            ax_r.set_xlabel(f"session (trading days with trades: {len(sessions)})")
            for label in ax_r.get_xticklabels():
                label.set_rotation(30 if layout == "narrow" else 0)
                label.set_horizontalalignment("right" if layout == "narrow" else "center")
        else:
            ax_r.set_xlabel("trade number (in order of exit)")
        return _svg(fig, f"{prefix}equity-{layout}", "Equity curve in dollars and R by session, with drawdown")


def r_histogram(r_values: Sequence[float], layout: str = "wide", prefix: str = "") -> str | None:
    """R-multiples in 0.25 R bins centred on the exact outcomes (-1 R at the stop, +2 R at
    the target), losses red, gains green, the mean marked."""
    r = np.asarray(r_values, dtype=float)
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return None
    from matplotlib import rc_context

    centres, counts = stats.histogram(r, 0.25)
    with rc_context(_RC):
        fig, (ax,) = _figure(LAYOUTS[layout], 3.2 if layout == "wide" else 3.8)
        colors = [WIN_COLOR if c > 0 else LOSS_COLOR if c < 0 else ZERO_COLOR for c in centres]
        ax.bar(_rounded(centres), counts, width=0.25, align="center", color=colors,
               edgecolor="white", linewidth=0.5)
        mean = float(r.mean())
        ax.axvline(mean, color="#24292f", linestyle="--", linewidth=1,
                   label=f"mean {mean + 0.0:+.2f} R")
        ax.axvline(0, color="#57606a", linewidth=0.8)
        ax.set_xlabel("R-multiple (1 R = entry-to-stop distance)")
        ax.set_ylabel("trades")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.legend(loc="upper right", frameon=False)
        return _svg(fig, f"{prefix}rhist-{layout}", "Histogram of R-multiples")


def excursion_chart(exc: dict[str, Any], layout: str = "wide", prefix: str = "") -> str | None:
    """Maximum favourable against maximum adverse excursion, in ATRs, with TP and SL lines.

    A trade above a TP line reached its target at some point; right of an SL line it
    touched its stop. Beyond ``MAX_SCATTER_POINTS`` trades the dots become a density image.
    """
    mfe = np.asarray(exc["mfe"], dtype=float)
    mae = np.asarray(exc["mae"], dtype=float)
    ok = np.isfinite(mfe) & np.isfinite(mae)
    if not ok.any():
        return None
    win = np.asarray(exc["win"], dtype=bool)[ok]
    mfe, mae = mfe[ok], mae[ok]
    from matplotlib import rc_context

    with rc_context(_RC):
        fig, (ax,) = _figure(LAYOUTS[layout] * 0.75 if layout == "wide" else LAYOUTS[layout], 4.6)
        levels = exc.get("levels", [])
        # Limits from the bulk of the trades and the exit lines; outliers are pinned to
        # the edge (hollow markers) rather than stretching the axes or vanishing.
        x_top = 1.1 * max(float(np.quantile(mae, 0.98)), *(lv["sl"] * 1.4 for lv in levels), 0.5)
        y_top = 1.1 * max(float(np.quantile(mfe, 0.98)), *(lv["tp"] * 1.25 for lv in levels), 0.5)
        out = (mae > x_top) | (mfe > y_top)
        mae, mfe = np.minimum(mae, x_top), np.minimum(mfe, y_top)
        if len(mfe) <= MAX_SCATTER_POINTS:
            for sel, color, marker, label in ((win, WIN_COLOR, "o", "win"),
                                              (~win, LOSS_COLOR, "s", "loss")):
                ax.scatter(_rounded(mae[sel & ~out]), _rounded(mfe[sel & ~out]), s=12, color=color,
                           alpha=0.75, linewidths=0, marker=marker, label=label)
                if (sel & out).any():
                    ax.scatter(_rounded(mae[sel & out]), _rounded(mfe[sel & out]), s=16,
                               facecolors="none", edgecolors=color, marker=marker, clip_on=False,
                               label=f"{label}, off scale")
        else:
            counts, _, _ = np.histogram2d(mae, mfe, bins=48, range=[[0, x_top], [0, y_top]])
            img = ax.imshow(np.log1p(counts.T), origin="lower", extent=(0, x_top, 0, y_top),
                            cmap="Blues", aspect="auto", interpolation="nearest")
            img.set_rasterized(True)
            ax.plot([], [], "s", color="#4a90d9", label=f"trade density ({len(mfe):,} trades)")
        for i, lv in enumerate(levels):
            ax.axhline(lv["tp"], color=WIN_COLOR, linestyle="--", linewidth=1,
                       label=f"TP {lv['tp']:g} ATR" if i < 4 else None)
            ax.axvline(lv["sl"], color=LOSS_COLOR, linestyle="--", linewidth=1,
                       label=f"SL {lv['sl']:g} ATR" if i < 4 else None)
        ax.set_xlim(0, x_top)
        ax.set_ylim(0, y_top)
        ax.set_xlabel("max adverse excursion (ATRs against)")
        ax.set_ylabel("max favourable excursion (ATRs)")
        ax.legend(loc="upper right", frameon=True, framealpha=0.85)
        return _svg(fig, f"{prefix}mfemae-{layout}", "Maximum favourable against maximum adverse excursion")
