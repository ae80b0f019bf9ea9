"""Dealer gamma end to end: the real alpaca-py clients against the offline server over
loopback, the scan loop journaling the measure, the gate, Block 3, replay and the report."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest

from gammaride.cli import main
from gammaride.config import Settings
from gammaride.connection import connect
from gammaride.journal import Journal
from gammaride.notebook.blocks import check_conditions
from gammaride.notebook.colab import print_conditions
from gammaride.offline import OfflineAlpaca
from gammaride.replay.engine import IVChoice, run_replay
from gammaride.reports.data import build_report_data
from gammaride.reports.render import render_report
from gammaride.rules.contracts import parse_occ
from gammaride.rules.gamma import REPLAY_REASON
from tests.support import offline_broker, offline_scanner

GAMMA = ["gex_net", "gex_calls", "gex_puts", "gex_0dte", "zero_gamma", "call_wall", "put_wall",
         "gamma_regime", "gamma_contracts", "gamma_bs_count"]


def session(tmp_path, start, scans, name="j", faults=None, **settings):
    settings = Settings.load(env={}, **settings)
    with OfflineAlpaca(start=start, speed=0, seed=7, faults=faults) as srv:
        journal = Journal(tmp_path / f"{name}.duckdb")
        sc, lines = offline_scanner(srv, journal, settings, iv_percentile=0.5)
        sc.run(scans)
        log = list(srv.request_log)
    scans_ = journal.query("SELECT * FROM scans WHERE run_id = ? ORDER BY scan_no", [sc.run_id])
    return sc, journal, lines, log, scans_


@pytest.fixture(scope="module")
def pm(tmp_path_factory, pm_afternoon):
    """A 55-scan afternoon (2013-10-10, a 2% gap up) with the debug block on (at the standard
    volume bar: the first entry is at the second scan)."""
    sc = pm_afternoon.scanner
    journal = pm_afternoon.journal(tmp_path_factory.mktemp("gamma"))
    scans = journal.query("SELECT * FROM scans WHERE run_id = ? ORDER BY scan_no", [sc.run_id])
    yield sc, journal, pm_afternoon.lines, pm_afternoon.log, scans
    journal.close()


def test_a_55_scan_session_journals_the_measure_on_every_in_window_scan(pm):
    sc, _, _, _, scans = pm
    inside = scans[scans["in_window"].fillna(False).astype(bool)]
    assert len(scans) == 55 and len(inside) == 55
    assert inside[GAMMA].notna().all().all()
    assert (inside["gamma_contracts"] > 100).all() and (inside["gamma_bs_count"] == 0).all()  # the chain has gamma
    assert (inside["gex_net"] - inside["gex_calls"] - inside["gex_puts"]).abs().max() < 1e-3
    assert (inside["gamma_gate"] == "off").all() and inside["gamma_reason"].isna().all()
    # the session opened 2% above the previous close, where the open interest is centred:
    # dealers long gamma all afternoon, the zero-gamma level near that close
    assert (inside["gamma_regime"] == "long").all() and (inside["gex_net"] > 0).all()
    assert inside["zero_gamma"].between(164.0, 166.5).all() and (inside["price"] > inside["zero_gamma"]).all()
    assert sc.stats.entries > 0  # the gate is off: measuring changes no decision


def test_scan_lines_unchanged_and_the_debug_block_prints_regime_net_and_distance(pm):
    _, _, lines, _, scans = pm
    scan_lines = [ln for ln in lines if re.match(r"\[SCAN \d+\] \d\d:", ln)]  # not the heartbeats
    seed = re.compile(r"\[SCAN \d+\] \d\d:\d\d:05 - Time: IN \| Volume: \d+\.\dx \| Direction: (CALL|PUT|NONE)"
                      r"( \| ATR: \$\d+\.\d\d \| TP: \$\d+\.\d\d \| SL: \$\d+\.\d\d)?"
                      r" \| (✓ SUBMITTED|Status: SKIPPED \(.+\))$")
    assert len(scan_lines) == 55 and all(seed.match(ln) for ln in scan_lines)
    assert scan_lines[1].endswith("✓ SUBMITTED") and not any("gamma" in ln for ln in scan_lines)
    blocks = [ln for ln in "\n".join(lines).splitlines() if ln.startswith("    dealer gamma: ")]
    assert len(blocks) == 55
    first = scans.iloc[0]
    assert blocks[0].startswith(
        f"    dealer gamma: LONG · net +${first['gex_net'] / 1e6:.0f}M per 1% (calls +$")
    distance = (first["price"] - first["zero_gamma"]) / first["price"] * 100
    assert f"zero-gamma ${first['zero_gamma']:.2f}, spot {distance:.2f}% above" in blocks[0]
    assert blocks[0].endswith("· gate off")


def test_open_interest_is_fetched_once_and_chain_requests_stay_far_below_the_rate_limit(pm):
    sc, _, _, log, _ = pm
    contracts = [e for e in log if e["path"].startswith("/v2/options/contracts")]
    chains = [e for e in log if e["path"].startswith("/v1beta1/options/snapshots/SPY")]
    assert len(contracts) == 1 and sc.gamma.oi_fetches == 1
    assert sc.gamma.chain_requests == 55
    gamma_chains = [e for e in chains if e["query"].get("expiration_date_lte") == "2013-10-17"]  # 7 days
    assert len(gamma_chains) == 55  # one a scan: a page holds 1,000 contracts
    assert len(log) / 55 < 200 / 4  # every request of the run, per scan minute


def test_offline_contracts_carry_open_interest_dated_the_previous_session():
    with OfflineAlpaca(start="2013-10-09 10:00", speed=0, seed=7) as srv:
        broker = offline_broker(srv)
        oi = broker.open_interest("SPY", dt.date(2013, 10, 9), dt.date(2013, 10, 16), 150, 190)
        prev_close = srv.tape.last_close_before(int(pd.Timestamp("2013-10-09 09:30", tz="America/New_York").value))
    assert len(oi) == 5 * 21 * 2 and oi["open_interest"].gt(0).all()
    assert (oi["open_interest_date"] == pd.Timestamp("2013-10-08")).all()
    parts = pd.DataFrame([parse_occ(s) for s in oi["symbol"]], columns=["root", "exp", "type", "strike"])
    by_strike = oi["open_interest"].groupby(parts["strike"]).sum()
    atm = round(prev_close)
    assert by_strike[atm] > 3 * by_strike[atm + 8] and by_strike[atm] > 3 * by_strike[atm - 8]  # near the money
    for k in (160.0, 165.0, 170.0):  # round strikes stand above both neighbours
        assert by_strike[k] > by_strike[k - 1] and by_strike[k] > by_strike[k + 1]
    calls = oi["open_interest"][(parts["type"] == "call").to_numpy()].groupby(parts["strike"]).sum()
    puts = oi["open_interest"][(parts["type"] == "put").to_numpy()].groupby(parts["strike"]).sum()
    assert calls[atm + 3] > puts[atm + 3] and puts[atm - 3] > calls[atm - 3]  # puts below, calls above


def test_gate_short_only_blocks_entries_while_dealers_are_long_gamma(tmp_path):
    _, journal, _, _, scans = session(tmp_path, "2013-10-10 14:59:30", 3, gamma_gate="short_only")
    assert (scans["gamma_gate"] == "short_only").all() and (scans["gamma_regime"] == "long").all()
    blocked = scans[scans["skip_reason"].fillna("").str.startswith("gamma gate short_only: dealers long gamma")]
    assert len(blocked) >= 1 and not blocked["signal"].any()
    assert journal.query("SELECT count(*) AS n FROM trades")["n"].iloc[0] == 0


def test_gate_short_only_enters_while_dealers_are_short_gamma(tmp_path):
    _, _, _, _, scans = session(tmp_path, "2013-10-07 10:06:30", 3, gamma_gate="short_only")
    entered = scans[scans["trade_id"].notna()]
    assert len(entered) == 1 and (entered["gamma_regime"] == "short").all() and entered["signal"].all()


def test_open_interest_failure_is_a_reason_in_the_row_and_the_scans_go_on(tmp_path):
    _, journal, lines, _, scans = session(tmp_path, "2013-10-10 14:59:30", 3, faults="contracts:500=1")
    assert len([ln for ln in lines if re.match(r"\[SCAN \d+\] \d\d:", ln)]) == 3
    assert scans["gex_net"].isna().all() and scans["gamma_regime"].isna().all()
    assert scans["gamma_reason"].str.startswith("open interest unavailable (").all()
    assert scans["trade_id"].notna().any()  # the gate is off: entries go on
    errors = journal.query("SELECT context FROM errors")
    assert (errors["context"] == "open interest").sum() == 3


def test_block_3_prints_the_regime_net_exposure_and_distance(capsys):
    with connect(offline=True, speed=0, start="2013-10-07 10:08:05", settings=Settings.load(env={})) as conn:
        cond = check_conditions(conn, iv_percentile=0.5)
        printed: list[str] = []
        print_conditions(cond, conn.settings, out=printed.append)
    g = cond["gamma"]
    assert g.regime == "short" and g.net < 0 and g.zero_gamma > cond["price"]
    line = [ln for ln in printed if "dealer gamma" in ln]
    assert line == [f"· {g.describe()} (gamma gate off)"] and "spot " in line[0] and "% below" in line[0]
    assert cond["signal"]  # the gate is off


def test_replay_leaves_the_measure_empty_and_says_why(tmp_path, sample, capsys):
    journal_path = tmp_path / "r.duckdb"
    assert main(["replay", "--journal", str(journal_path), "--iv-percentile", "0.4", "--quiet"]) == 0
    assert f"Dealer gamma: not measured ({REPLAY_REASON}); the gamma columns stay empty" in capsys.readouterr().out
    with Journal(journal_path, read_only=True) as j:
        scans = j.query("SELECT gex_net, zero_gamma, gamma_regime, gamma_reason, gamma_gate FROM scans")
    assert len(scans) > 2000 and scans[["gex_net", "zero_gamma", "gamma_regime"]].isna().all().all()
    assert (scans["gamma_reason"] == REPLAY_REASON).all() and (scans["gamma_gate"] == "off").all()
    assert REPLAY_REASON == "replay: historical open interest is not available from Alpaca"


def test_report_shows_the_regime_section_and_the_latest_sessions_chart(pm, sample):
    _, journal, _, _, _ = pm
    day = sample[sample.index.normalize() == pd.Timestamp("2013-10-08", tz="America/New_York")]
    run_replay(journal, day, Settings.load(env={}), iv=IVChoice("constant", 0.5))
    data = build_report_data(journal)
    g = data["gamma"]
    assert g["measured_scans"] == 55 and g["replay_scans"] == len(day)
    regimes = {row["label"]: row for row in g["by_regime"]}
    assert set(regimes) == {"short", "long", "unknown"}
    offline = journal.query("SELECT count(*) AS n FROM trades t JOIN runs r USING (run_id) "
                            "WHERE r.mode = 'offline' AND t.status = 'closed'")["n"].iloc[0]
    assert regimes["long"]["n"] == offline and regimes["short"]["n"] == 0
    assert regimes["unknown"]["n"] == g["trades"] - offline > 0  # the replayed trades
    assert sum(row["n"] for row in g["by_distance"]) == g["trades"]
    assert g["difference"]["needed_reference"] == 493  # 2 * ((1.96 + 0.84) * 1.4 / 0.25)^2, rounded up
    assert g["latest"]["session"] == "2013-10-10" and g["latest"]["scans"] == 55
    html = render_report(data)
    section = html[html.index('<section id="gamma">'):]
    section = section[:section.index("</section>")]
    assert 'id="chart-gamma"' in section and "Latest measured session: 2013-10-10" in section
    assert "historical open interest is not available from Alpaca" in section
    assert "493 in each for a difference of 0.25 R" in section
