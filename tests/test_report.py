"""The report's numbers on a small hand-made journal, its rendering, and the CLI."""

import json
import math
import re

import pandas as pd
import pytest

from gammaride.cli import main
from gammaride.config import ET
from gammaride.errors import ConfigError
from gammaride.journal import Journal
from gammaride.reports import ReportFilters, build_report_data, render_report, show, write_report


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=ET)


# Closed trades in exit order: P&L 100, -50, 30, -10, 40 ($) and 2, -1, 0.6, -0.2, 0.8 (R).
TRADES = [
    # id, run, day+time, side, pnl, r, reason, hold, atr, iv, mfe, mae, status
    (1, 1, "2026-01-05 09:40", "call", 100.0, 2.0, "tp", 5, 0.30, 0.40, 2.1, 0.3, "closed"),
    (2, 1, "2026-01-05 15:10", "put", -50.0, -1.0, "sl", 3, 0.50, 0.60, 0.4, 1.0, "closed"),
    (3, 1, "2026-01-06 09:50", "call", 30.0, 0.6, "time", 20, 0.70, 0.35, 0.9, 0.5, "closed"),
    (4, 1, "2026-01-06 15:20", "put", -10.0, -0.2, "hard_stop", 10, 0.90, 0.20, 0.3, 0.6, "closed"),
    (5, 2, "2026-01-07 10:00", "call", 40.0, 0.8, "tp", 8, 1.10, 0.45, 2.0, 0.1, "closed"),
    (6, 2, "2026-01-07 10:15", "put", None, None, None, None, 1.20, 0.50, None, None, "open"),
]
HOSTILE = "<script>alert('x')</script>"


def _trades_frame() -> pd.DataFrame:
    rows = []
    for tid, run, at, side, pnl, r, reason, hold, atr, iv, mfe, mae, status in TRADES:
        entry = ts(at)
        rows.append({
            "trade_id": tid, "run_id": run, "symbol": "SPY", "instrument": "options",
            "direction": side, "status": status, "entry_time": entry, "entry_price": 500.0,
            "exit_time": entry + pd.Timedelta(minutes=hold) if hold else pd.NaT,
            "exit_price": 501.0 if hold else None, "exit_reason": reason, "atr": atr,
            "tp_mult": 2.0, "sl_mult": 1.0, "phase": 1, "atr_bucket": "all",
            "iv_percentile": iv, "contracts": 2, "pnl_usd": pnl, "r_multiple": r,
            "mfe_atr": mfe, "mae_atr": mae,
        })
    return pd.DataFrame(rows)


def _scan(run, no, at, *, in_window=True, spike=False, signal=False, skip=None, trade=None, window=None):
    return {
        "run_id": run, "scan_no": no, "decision_time": ts(at), "symbol": "SPY",
        "in_window": in_window, "window": window if in_window else None, "vol_spike": spike,
        "signal": signal, "skip_reason": skip, "trade_id": trade, "vol_ratio": 1.0,
    }


def _scans_frame(paper_reason: str = "order rejected by the broker") -> pd.DataFrame:
    d1, d2, d3 = "2026-01-05", "2026-01-06", "2026-01-07"
    rows = [
        _scan(1, 1, f"{d1} 09:31", in_window=False, skip="outside window"),
        _scan(1, 2, f"{d1} 09:32", in_window=False, skip="outside window"),
        _scan(1, 3, f"{d1} 09:36", skip="warming up (needs 20 bars of history)", window="am"),
        _scan(1, 4, f"{d1} 09:37", skip="volume 0.7x < 2.0x", window="am"),
        _scan(1, 5, f"{d1} 09:38", skip="volume 1.2x < 2.0x", window="am"),
        _scan(1, 6, f"{d1} 09:39", spike=True, skip="IV percentile 0.25 < 0.30", window="am"),
        _scan(1, 7, f"{d1} 09:39", spike=True, skip="no direction (5-bar change +0.00)", window="am"),
        _scan(1, 8, f"{d1} 09:40", spike=True, signal=True, trade=1, window="am"),
        _scan(1, 9, f"{d1} 09:41", spike=True, signal=True, skip="position open", window="am"),
        _scan(1, 10, f"{d1} 15:10", spike=True, signal=True, trade=2, window="pm"),
        _scan(1, 11, f"{d2} 09:50", spike=True, signal=True, trade=3, window="am"),
        _scan(1, 12, f"{d2} 15:20", spike=True, signal=True, trade=4, window="pm"),
        _scan(2, 1, f"{d3} 09:31", in_window=False, skip="outside window"),
        _scan(2, 2, f"{d3} 10:00", spike=True, signal=True, trade=5, window="am"),
        _scan(2, 3, f"{d3} 10:15", spike=True, signal=True, trade=6, window="am"),
        _scan(2, 4, f"{d3} 10:20", spike=True, signal=True, skip=paper_reason, window="am"),
    ]
    return pd.DataFrame(rows)


def make_journal(path, *, paper_symbol: str = "SPY", paper_reason: str = "order rejected by the broker",
                 contract: str = "SPY260107P00500000", error: str = "timeout talking to the broker") -> str:
    with Journal(path) as j:
        j.start_run("replay", "SPY", phase=1, exit_policy="Phase 1 exits: TP 2 ATR, SL 1 ATR",
                    started_at=ts("2026-01-08 18:00"))
        j.start_run("paper", paper_symbol, started_at=ts("2026-01-07 09:30"))
        trades = _trades_frame()
        trades.loc[trades["run_id"] == 2, "contract_symbol"] = contract
        trades.loc[trades["run_id"] == 2, "symbol"] = paper_symbol
        j.write_trades(trades)
        j.write_scans(_scans_frame(paper_reason))
        at = ts("2026-01-07 10:00")
        for oid, tid, purpose, status in [("o1", 5, "entry", "filled"), ("o2", 5, "exit", "filled"),
                                           ("o3", 6, "entry", "filled"), ("o4", None, "entry", "rejected")]:
            j.write_order({"order_id": oid, "run_id": 2, "trade_id": tid, "symbol": contract,
                           "purpose": purpose, "status": status, "submitted_at": at})
            if status == "filled":
                j.write_fill({"order_id": oid, "run_id": 2, "trade_id": tid, "qty": 2, "price": 1.5,
                              "filled_at": at})
        j.write_error(2, "scan", error, scan_no=4, occurred_at=ts("2026-01-07 10:20"))
    return str(path)


@pytest.fixture
def journal_path(tmp_path):
    return make_journal(tmp_path / "j.duckdb")


def funnel(data):
    return {s["key"]: s["n"] for s in data["funnel"]["stages"]}


def test_fills_and_backtest_are_summarized_apart(journal_path):
    data = build_report_data(journal_path)
    # replay (run 1): trades 1-4, P&L 100, -50, 30, -10 ($) and 2, -1, 0.6, -0.2 (R)
    b = data["backtest"]["summary"]
    assert (b["n"], b["wins"], b["losses"], b["open"]) == (4, 2, 2, 0)
    assert b["win_rate"] == pytest.approx(0.5)
    assert (b["win_lo"], b["win_hi"]) == pytest.approx((0.150039, 0.849961), abs=1e-6)
    assert b["exp_r"] == pytest.approx(1.4 / 4, rel=1e-12)
    assert b["exp_usd"] == pytest.approx(70 / 4, rel=1e-12)
    assert b["total_usd"] == pytest.approx(70.0) and b["total_gross_usd"] == pytest.approx(70.0)
    # equity $ 100, 50, 80, 70 -> deepest fall 50; in R 2, 1, 1.6, 1.4 -> 1
    assert b["max_dd_usd"] == pytest.approx(50.0) and b["max_dd_r"] == pytest.approx(1.0)
    assert b["avg_hold_min"] == pytest.approx((5 + 3 + 20 + 10) / 4)
    assert b["sessions"] == 2 and b["trades_per_day"] == pytest.approx(2.0)
    assert data["backtest"]["sources"] == [{"source": "delta_estimate", "n": 4, "mark": "estimated"}]
    assert not data["backtest"]["measured"]
    # paper (run 2): trade 5 closed (+40, journaled before the cost model: gross = net), 6 open
    f = data["fills"]["summary"]
    assert (f["n"], f["open"], f["total_usd"], f["total_gross_usd"]) == (1, 1, 40.0, 40.0)
    assert f["sessions"] == 1 and data["fills"]["measured"]
    h = data["headline"]
    assert h["n"] == 1  # the headline is about real fills
    assert (h["calibration_n"], h["calibration_needed"], h["calibration_ready"]) == (5, 50, False)
    assert h["phase"] == 1 and h["break_even"][0]["rate"] == pytest.approx(1 / 3)
    assert h["target_win_rate"] == 0.35
    assert data["period"] == {"first": "2026-01-05", "last": "2026-01-07"}
    assert data["runs"]["by_mode"] == {"paper": 1, "replay": 1}
    eq = data["backtest"]["equity"]
    assert eq["usd"] == pytest.approx([100, 50, 80, 70])
    assert eq["dd_usd"] == pytest.approx([0, 50, 20, 30])
    assert eq["sessions"] == ["2026-01-05", "2026-01-06"]
    # each trade at its exit time within its session: 09:45 is 15 of 390 minutes in
    assert eq["x"] == pytest.approx([15 / 390, 343 / 390, 1 + 40 / 390, 1 + 360 / 390])


def test_power_line_uses_the_trades_own_spread(journal_path):
    p = build_report_data(journal_path)["backtest"]["power"]
    r = pd.Series([2.0, -1.0, 0.6, -0.2])
    assert p["n"] == 4 and p["sd"] == pytest.approx(r.std())
    assert p["needed"] > (2.8 * r.std() / 0.1) ** 2  # about 1,200 trades for +0.1 R
    html = render_report(build_report_data(journal_path))
    assert "Detecting +0.1 R per trade needs about" in html and f"{int(p['needed']):,} trades" in html


def test_funnel_counts_and_skip_reasons(journal_path):
    data = build_report_data(journal_path)
    # replay: 12 scans, 10 in window, 7 past the volume gate (warm-up excluded), 6 past IV,
    # 5 signals, 4 simulated entries; paper: 4 scans, 3 in window, all 3 signals,
    # 3 entry orders (the exit order does not count), 2 of them filled.
    assert funnel(data) == {
        "scans": 16, "in_window": 13, "volume": 10, "iv_ok": 9, "direction": 8, "orders": 7, "fills": 6,
    }
    assert data["funnel"]["entered"] == 6
    stages = data["funnel"]["stages"]
    assert stages[1]["of_scans"] == pytest.approx(13 / 16)
    assert stages[2]["of_previous"] == pytest.approx(10 / 13)
    skips = {s["reason"]: s for s in data["skip_reasons"]}
    assert skips["outside window"]["n"] == 3
    assert skips["volume"]["n"] == 2 and skips["volume"]["variants"] == 2
    assert skips["warming up"]["example"] == "warming up (needs 20 bars of history)"
    assert [s["reason"] for s in data["skip_reasons"]][:2] == ["outside window", "volume"]
    assert sum(s["n"] for s in data["skip_reasons"]) == 10
    assert skips["outside window"]["share"] == pytest.approx(3 / 16)


def test_filters_by_source_and_since(journal_path):
    paper = build_report_data(journal_path, ReportFilters(source="paper"))
    assert funnel(paper) == {
        "scans": 4, "in_window": 3, "volume": 3, "iv_ok": 3, "direction": 3, "orders": 3, "fills": 2,
    }
    assert paper["headline"]["n"] == 1 and paper["headline"]["open"] == 1
    assert paper["backtest"]["summary"]["n"] == 0
    assert paper["runs"]["by_mode"] == {"paper": 1}

    since = build_report_data(journal_path, ReportFilters(since="2026-01-06"))
    assert since["backtest"]["summary"]["n"] == 2 and since["fills"]["summary"]["n"] == 1  # 3, 4 | 5
    assert since["backtest"]["summary"]["total_usd"] == pytest.approx(20.0)
    assert funnel(since)["scans"] == 6
    assert funnel(since)["orders"] == 2 + 3  # replay trades 3 and 4, the three paper entries
    assert since["period"]["first"] == "2026-01-06"

    live = build_report_data(journal_path, ReportFilters(source="live"))
    assert live["headline"]["n"] == 0 and funnel(live)["scans"] == 0


def test_filters_reject_bad_values():
    with pytest.raises(ConfigError, match="'demo'"):
        ReportFilters(source="demo")
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        ReportFilters(since="Jan 5")


def test_breakdowns_with_too_few_trades_say_so(journal_path):
    data = build_report_data(journal_path, ReportFilters(min_group_trades=3))
    by = {b["key"]: {r["label"]: r for r in b["rows"]} for b in data["backtest"]["breakdowns"]}
    assert by["direction"]["call"]["n"] == 2 and not by["direction"]["call"]["enough"]
    assert by["direction"]["put"]["n"] == 2
    assert by["window"]["AM"]["n"] == 2 and by["window"]["PM"]["n"] == 2
    assert by["weekday"]["Mon"]["n"] == 2 and by["weekday"]["Fri"]["n"] == 0
    assert [r["n"] for r in by["iv"].values()] == [1, 2, 1]
    # ATR terciles of 0.3, 0.5, 0.7, 0.9 are 0.5 and 0.7: 0.3 | 0.5 | 0.7 0.9
    assert [r["n"] for r in by["atr"].values()] == [1, 1, 2]
    html = render_report(data)
    assert "0 of 2 won: too few trades for a rate" in html  # the puts, -50 and -10
    assert "1 of 2 won: too few trades for a rate" in html  # Monday, +100 and -50


def test_exit_reasons_and_latest_trades(journal_path):
    data = build_report_data(journal_path)
    reasons = {r["label"]: r for r in data["backtest"]["exit_reasons"]}
    assert reasons["tp"]["n"] == 1 and reasons["tp"]["share"] == pytest.approx(0.25)
    assert reasons["sl"]["exp_r"] == pytest.approx(-1.0)
    assert reasons["hard_stop"]["n"] == 1 and "manual" not in reasons
    latest = data["latest_trades"]
    assert [t["trade_id"] for t in latest["rows"]] == [6, 5, 4, 3, 2, 1]
    assert (latest["shown"], latest["total"]) == (6, 6)
    assert latest["rows"][0]["status"] == "open" and latest["rows"][0]["exit_at"] is None
    assert [t["mark"] for t in latest["rows"]] == ["measured"] * 2 + ["estimated"] * 4
    assert data["errors"]["n"] == 1 and data["errors"]["latest"][0]["message"] == "timeout talking to the broker"
    assert data["quality"]["runs_with_errors"] == 1
    short = build_report_data(journal_path, ReportFilters(latest_trades=2))
    assert "2 of 6 trades shown" in render_report(short)


def test_report_renders_every_section_and_no_remote_assets(journal_path):
    html = render_report(build_report_data(journal_path))
    for section in ("period", "headline", "backtest", "quality", "funnel", "calibration", "trades",
                    "errors", "runs", "backtest-equity", "backtest-breakdowns", "backtest-exits",
                    "backtest-r-histogram", "backtest-excursions", "fills-power"):
        assert f'id="{section}"' in html, section
    assert html.count("<svg") == 12  # equity, R and excursions of both blocks, in two layouts
    assert re.search(r"""(src|href)=["']?(https?:)?//""", html) is None
    assert "@import" not in html and "<script" not in html
    assert "Content-Security-Policy" in html
    assert "No calibration yet" in html
    assert "50.0%" in html and "95% CI 15.0% to 85.0% (Wilson)" in html
    assert "break-even 33% at TP 2.0 : SL 1.0 ATR" in html and "target 35%" in html
    assert '<span class="mark estimated">estimated</span> from 4 delta estimate' in html
    assert '<span class="mark measured">measured</span> from broker fills' in html
    assert "-0.00" not in html


def test_no_minus_zero_and_dollar_precision():
    from gammaride.reports.render import _environment

    f = _environment().filters
    assert f["signed_usd"](-0.001) == "$0.00" and f["usd"](-0.004) == "$0.00"
    assert f["r"](-0.001) == "+0.00 R" and f["num"](-0.004) == "0.00" and f["pct"](-0.0001) == "0.0%"
    assert f["signed_usd"](-2.934) == "-$2.93" and f["signed_usd"](38.825) == "+$38.83"
    assert f["tone"](-0.001) == "" and f["tone"](-0.01) == "neg"


def test_hostile_text_appears_as_text(tmp_path):
    path = make_journal(tmp_path / "x.duckdb", paper_symbol=HOSTILE, paper_reason=HOSTILE,
                        contract=HOSTILE, error=HOSTILE)
    (tmp_path / "calibration.json").write_text(json.dumps({
        "schema": "gammaride.calibration", "schema_version": 1, "published": False, "verdict": HOSTILE,
        "buckets": [{"label": HOSTILE, "phase": 2, "tp_mult": 2.0, "sl_mult": 1.0}],
    }))
    data = build_report_data(path)
    assert HOSTILE in [s["example"] for s in data["skip_reasons"]]
    html = render_report(data)
    assert "<script" not in html
    assert html.count("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") >= 5


def test_empty_journal_renders_a_useful_page(tmp_path):
    Journal(tmp_path / "empty.duckdb").close()
    data = build_report_data(tmp_path / "empty.duckdb")
    assert data["headline"]["n"] == 0 and funnel(data)["scans"] == 0
    assert math.isnan(data["headline"]["win_rate"])
    html = render_report(data)
    assert "no trades yet" in html and "No scans journaled" in html and "No simulated trades" in html
    assert "<svg" not in html


def test_scans_without_trades_show_the_funnel(tmp_path):
    with Journal(tmp_path / "s.duckdb") as j:
        j.start_run("paper", "SPY")
        scans = _scans_frame()
        j.write_scans(scans[(scans["run_id"] == 1) & scans["trade_id"].isna()])
        data = build_report_data(j)
    assert data["headline"]["n"] == 0
    assert funnel(data)["scans"] == 8 and funnel(data)["orders"] == 0
    html = render_report(data)
    assert "no trades yet" in html and 'id="funnel-volume"' in html


def test_calibration_panel_states(journal_path, tmp_path):
    cal = tmp_path / "calibration.json"
    for content, expect in [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "not a gammaride calibration"),
        ('{"schema": "gammaride.calibration", "edges": NaN}', "NaN"),
        # the calibration package's one schema: a string where a number belongs is refused
        ('{"schema": "gammaride.calibration", "schema_version": 1, "published": true, "edges": [], '
         '"buckets": [{"label": "low", "phase": 2, "tp_mult": "2.5"}]}', "bucket low has tp_mult '2.5'"),
        ("x" * 2_100_000, "far larger"),
    ]:
        cal.write_text(content)
        data = build_report_data(journal_path)
        assert data["calibration"]["status"] == "invalid"
        assert expect in data["calibration"]["message"]
        assert data["headline"]["phase"] == 1
        assert "could not be used" in render_report(data)

    doc = {
        "schema": "gammaride.calibration", "schema_version": 1, "published": True, "forced": False,
        "verdict": "PUBLISHED: Phase 2 beat Phase 1 out of sample.", "fitted_at": "2026-01-09T00:00:00+00:00",
        "n_trades": 60, "edges": [0.6, 1.0],
        "buckets": [
            {"label": "low", "atr_from": None, "atr_to": 0.6, "n": 20, "phase": 2, "tp_mult": 2.5,
             "sl_mult": 0.8, "out_of_sample": {"n": 8, "phase1": 0.1, "phase2": 0.3, "improvement": 0.2,
                                               "ci95": [0.05, 0.35]}},
            {"label": "mid", "atr_from": 0.6, "atr_to": 1.0, "n": 20, "phase": 1},
            {"label": "high", "atr_from": 1.0, "atr_to": None, "n": 20, "phase": 2, "tp_mult": 1.5,
             "sl_mult": 1.2},
        ],
        "overall": {"out_of_sample": {"n": 24, "phase1": 0.1, "phase2": 0.2, "improvement": 0.1,
                                      "ci95": [0.02, 0.18]}},
    }
    cal.write_text(json.dumps(doc))
    data = build_report_data(journal_path)
    c = data["calibration"]
    assert c["status"] == "ok" and c["published"] and c["edges"] == [0.6, 1.0]
    assert [b["range"] for b in c["buckets"]] == ["ATR < $0.6", "$0.6 to $1", "ATR >= $1"]
    assert c["buckets"][0]["out_of_sample"]["ci95"] == [0.05, 0.35]
    atr = next(b for b in data["backtest"]["breakdowns"] if b["key"] == "atr")
    assert [r["n"] for r in atr["rows"]] == [2, 2, 0]  # 0.3 0.5 | 0.7 0.9 | (1.1 is a fill)
    assert data["headline"]["phase"] == 2
    assert [round(b["rate"], 4) for b in data["headline"]["break_even"]] == [0.2424, 0.3333, 0.4444]
    html = render_report(data)
    assert "PUBLISHED: Phase 2 beat Phase 1 out of sample." in html and "keeps Phase 1" in html

    other = tmp_path / "elsewhere.json"
    other.write_text(json.dumps({**doc, "verdict": "from elsewhere"}))
    data = build_report_data(journal_path, ReportFilters(calibration=other))
    assert data["calibration"]["verdict"] == "from elsewhere"


def test_write_report_and_show(journal_path, tmp_path):
    out, data = write_report(journal_path, tmp_path / "sub" / "r.html")
    assert out.exists() and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert data["backtest"]["summary"]["n"] == 4 and data["fills"]["summary"]["n"] == 1
    assert [p.name for p in out.parent.iterdir()] == ["r.html"]  # no temporary file left
    shown = show(journal_path)
    html = shown if isinstance(shown, str) else shown.data
    assert html.lstrip().startswith('<div class="gammaride-report">') and "<html" not in html


def test_cli_report_writes_the_file_and_prints_a_headline(journal_path, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", "--journal", journal_path, "--out", str(out), "--source", "replay"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"wrote {out}"
    assert printed[1].startswith("backtest (simulated): 4 trades, win rate 50.0% (95% CI 15.0%-85.0%)")
    assert "expectancy +0.35 R (95% CI -0.90 to +1.60) / +$17.50 per trade" in printed[1]
    assert "net P&L +$70.00 (gross +$70.00, estimated)" in printed[1]
    assert 'id="funnel"' in out.read_text(encoding="utf-8")
    # the report only reads: the journal is unchanged
    with Journal(journal_path, read_only=True) as j:
        assert j.summary()["trades"] == 5 and j.summary()["scans"] == 16


def test_cli_report_json(journal_path, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", "--journal", journal_path, "--out", str(out), "--json", "--source", "live"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["path"] == str(out) and out.exists()
    assert printed["headline"]["n"] == 0 and printed["headline"]["win_rate"] is None
    assert printed["funnel"]["scans"] == 0 and printed["backtest"]["n"] == 0
    assert printed["power"]["fills"]["needed"] is None and printed["quality"]["duplicates"] == 0
    assert main(["report", "--journal", journal_path, "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["backtest"]["n"] == 4 and printed["headline"]["n"] == 1
    assert printed["headline"]["break_even"][0]["rate"] == pytest.approx(1 / 3)
    assert printed["power"]["backtest"]["needed"] > 1000


def test_cli_report_errors(tmp_path, capsys):
    assert main(["report", "--journal", str(tmp_path / "missing.duckdb")]) == 4
    assert "does not exist" in capsys.readouterr().err
    path = make_journal(tmp_path / "j.duckdb")
    assert main(["report", "--journal", path, "--since", "yesterday"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_cli_report_help_has_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    help_text = capsys.readouterr().out
    assert "Example: gammaride report" in help_text and "--since" in help_text


def test_sessions_replayed_twice_count_once(tmp_path):
    from gammaride.config import Settings
    from gammaride.data.bars import sample_bars
    from gammaride.replay.engine import run_replay

    with Journal(tmp_path / "twice.duckdb") as j:
        for _ in range(2):
            run_replay(j, sample_bars().loc["2013-10-07":"2013-10-08"], Settings.load(env={}))
        n = len(j.trades())
        data = build_report_data(j)
    b, h = data["backtest"]["summary"], data["headline"]
    assert (b["n"], h["calibration_n"], data["quality"]["duplicates"]) == (n, n, n)
    html = render_report(data)
    assert f"<b>{n}</b> trades journaled again, counted once" in html
