"""The gate funnel and the outlier-prints mark count each market minute's scan once: the
same replay journaled twice (with or without --replace) reads as it did once."""

import pytest

from gammaride.config import Settings
from gammaride.data.bars import sample_bars
from gammaride.journal import Journal
from gammaride.replay.engine import run_replay
from gammaride.reports import build_report_data


def _bars_with_a_bad_print():
    bars = sample_bars().loc["2013-10-07":"2013-10-08"].copy()
    bad = bars.index[200]  # 12:50 on the first session, well past warm-up
    bars.loc[bad, "high"] = bars.loc[bad, "high"] + 20.0
    return bars


def _report(path, replays: int, replace: bool = False) -> dict:
    settings = Settings.load(env={})
    bars = _bars_with_a_bad_print()
    with Journal(path) as j:
        for _ in range(replays):
            run_id, _result = run_replay(j, bars, settings)
            if replace:  # what `gammaride replay --replace` does after journaling the run
                j.supersede(run_id, "SPY", sorted({t.date() for t in bars.index}))
        return build_report_data(j)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("scans_once")
    return {
        "once": _report(root / "once.duckdb", 1),
        "twice": _report(root / "twice.duckdb", 2),
        "replaced": _report(root / "replaced.duckdb", 2, replace=True),
    }


def _funnel(data: dict) -> dict:
    return {s["key"]: s["n"] for s in data["funnel"]["stages"]}


def test_the_same_replay_twice_gives_the_funnel_of_once(reports):
    once = reports["once"]
    assert _funnel(once)["scans"] > 0 and _funnel(once)["fills"] > 0
    for again in ("twice", "replaced"):
        assert _funnel(reports[again]) == _funnel(once)
        assert reports[again]["funnel"]["entered"] == once["funnel"]["entered"]
        assert reports[again]["skip_reasons"] == once["skip_reasons"]


def test_outlier_prints_of_a_repeated_replay_count_once(reports):
    assert reports["once"]["quality"]["outlier_prints"] >= 1
    for again in ("twice", "replaced"):
        assert reports[again]["quality"]["outlier_prints"] == reports["once"]["quality"]["outlier_prints"]
