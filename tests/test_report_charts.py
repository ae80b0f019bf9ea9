import re

import numpy as np
import pandas as pd

from gammaride.reports import charts, stats


def test_thin_keeps_ends_and_every_extreme():
    rng = np.random.default_rng(1)
    y = np.cumsum(rng.normal(size=20_000))
    x, yt = charts.thin(y, max_points=400)
    assert len(x) <= 402
    assert x[0] == 1 and x[-1] == len(y)
    assert yt.max() == y.max() and yt.min() == y.min()
    np.testing.assert_array_equal(yt, y[(x - 1).astype(int)])
    short = np.array([1.0, -2.0, 3.0])
    x, yt = charts.thin(short)
    assert x.tolist() == [1, 2, 3] and yt.tolist() == short.tolist()


def _root(svg: str) -> str:
    return svg[: svg.index(">") + 1]


def test_charts_are_small_labelled_inline_svg():
    rng = np.random.default_rng(2)
    n = 10_000
    r = np.where(rng.random(n) < 0.45, 2.0, -1.0)
    equity, dd = stats.drawdown(r * 40)
    eq_r, dd_r = stats.drawdown(r)
    sessions = [f"{d:%Y-%m-%d}" for d in pd.bdate_range("2026-01-01", periods=500)]
    x = np.sort(np.random.default_rng(4).uniform(0, 500, n))
    svg = charts.equity_chart({"usd": equity.tolist(), "dd_usd": dd.tolist(), "r": eq_r.tolist(),
                               "dd_r": dd_r.tolist(), "x": x.tolist(), "sessions": sessions})
    root = _root(svg)
    assert root.startswith("<svg") and "viewBox" in root and " width=" not in root
    assert "<title>Equity curve in dollars and R by session, with drawdown</title>" in svg
    assert "cumulative ($)" in svg and "cumulative (R)" in svg
    assert "session (trading days with trades: 500)" in svg
    shown = re.findall(r">(20\d\d-\d\d-\d\d)<", svg)  # session labels, thinned to fit
    assert 3 <= len(shown) <= 9 and shown[0] == "2026-01-01"
    assert not re.search(r">[-−]0(\.0+)?<", svg)  # no "-0" tick label
    narrow = charts.equity_chart({"usd": [1.0, -1.0], "dd_usd": [0.0, 2.0], "r": [1.0, -1.0],
                                  "dd_r": [0.0, 2.0], "x": [0.1, 1.5], "sessions": ["a", "b"]}, "narrow")
    assert 'id="chart-equity-narrow"' in narrow
    labels = re.findall(r"<text[^>]*>([^<]*)<", narrow)
    assert "-0" not in labels and "0.0" in labels and "-1.0" in labels
    assert "<metadata" not in svg and "<?xml" not in svg
    assert len(svg) < 200_000  # thinned: 10,000 trades draw about 1,200 points per line

    hist = charts.r_histogram(r.tolist())
    assert "R-multiple" in hist and "trades" in hist and len(hist) < 60_000
    assert 'id="chart-rhist-wide"' in hist


def test_excursion_chart_switches_to_density_for_many_trades():
    rng = np.random.default_rng(3)

    def exc(n):
        return {"mfe": rng.uniform(0, 3, n).tolist(), "mae": rng.uniform(0, 1.5, n).tolist(),
                "win": (rng.random(n) < 0.5).tolist(), "levels": [{"tp": 2.0, "sl": 1.0}]}

    few = charts.excursion_chart(exc(200))
    many = charts.excursion_chart(exc(5_000))
    assert "<image" not in few and "<image" in many
    assert "TP 2 ATR" in few and "SL 1 ATR" in many
    assert "(ATRs" in few
    assert len(many) < 120_000
    hist = charts.r_histogram([1.0, -1.0, 2.0])
    page = few + hist
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)) > 20  # the charts of one page must not share element ids
    refs = re.findall(r'(?:url\(#|href="#)([^)"]+)', page)
    assert refs and set(refs) <= set(ids)  # clip paths and markers still resolve


def test_no_trades_means_no_chart():
    assert charts.equity_chart({"usd": [], "dd_usd": [], "r": [], "dd_r": []}) is None
    assert charts.r_histogram([]) is None
    assert charts.excursion_chart({"mfe": [np.nan], "mae": [np.nan], "win": [False], "levels": []}) is None


def test_measured_margins_hold_every_label_and_waste_little_room():
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    sessions = [f"{d:%Y-%m-%d}" for d in pd.bdate_range("2026-01-01", periods=40)]
    for layout, rotation in (("wide", 0), ("narrow", 30)):
        with rc_context(charts._RC):
            fig, (top, bottom) = charts._figure(charts.LAYOUTS[layout], 4.6, nrows=2, sharex=True)
            top.plot([0, 40], [-175_000, 1_250_000])  # wide dollar tick labels
            top.set_ylabel("cumulative ($)")
            bottom.plot([0, 40], [-3.0, 2.0])
            bottom.set_ylabel("cumulative (R)")
            charts._session_axis(bottom, sessions, charts.LAYOUTS[layout])
            for label in bottom.get_xticklabels():
                label.set_rotation(rotation)
                label.set_horizontalalignment("right" if rotation else "center")
            bottom.set_xlabel("session (trading days with trades: 40)")
            charts._fit(fig)
            renderer = FigureCanvasAgg(fig).get_renderer()
            page = fig.bbox
            boxes = [ax.get_tightbbox(renderer) for ax in (top, bottom)]
        for box in boxes:  # nothing drawn outside the figure: no clipped label
            assert box.x0 >= page.x0 and box.y0 >= page.y0, (layout, box, page)
            assert box.x1 <= page.x1 + 0.5 and box.y1 <= page.y1 + 0.5, (layout, box, page)
        assert boxes[0].y0 > boxes[1].y1  # the stacked axes' labels never meet
        near = 0.1 * fig.dpi  # and no more room than they need: within 0.1 inch of each edge
        assert min(b.x0 for b in boxes) - page.x0 < near and page.x1 - max(b.x1 for b in boxes) < near
        assert boxes[1].y0 - page.y0 < near and page.y1 - boxes[0].y1 < near, (layout, boxes)
