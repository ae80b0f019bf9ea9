"""calibration.json: atomic writes, and every hostile file falls back to Phase 1 with a
warning, both in ``load_exit_policy`` (what the scanner calls) and in ``gammaride replay``."""

from __future__ import annotations

import json
import math
import os

import pytest

from gammaride.calibration import SCHEMA_VERSION, load_exit_policy, write_calibration
from gammaride.cli import main
from gammaride.data.bars import sample_paths
from gammaride.journal import Journal
from gammaride.rules.setup import ExitPolicy

ONE_SESSION = next(p for p in sample_paths() if p.name == "20131007_trade.zip")  # 8 trades


def valid_document(**changes) -> dict:
    doc = {
        "schema": "gammaride.calibration",
        "schema_version": SCHEMA_VERSION,
        "published": True,
        "forced": False,
        "fitted_at": "2026-11-24T05:40:12+00:00",
        "n_trades": 812,
        "edges": [0.06, 0.08],
        "buckets": [
            {"label": "low", "phase": 2, "n": 300, "tp_mult": 2.5, "sl_mult": 0.8},
            {"label": "mid", "phase": 1, "n": 12, "tp_mult": 2.0, "sl_mult": 1.0},
            {"label": "high", "phase": 2, "n": 500, "tp_mult": 1.5, "sl_mult": 1.2},
        ],
    }
    doc.update(changes)
    return doc


def _bucket(doc: dict, k: int, **changes) -> dict:
    doc["buckets"][k].update(changes)
    return doc


def test_valid_file_gives_phase2(tmp_path, settings):
    path = write_calibration(tmp_path / "calibration.json", valid_document())
    policy, message = load_exit_policy(path, settings)
    assert policy == ExitPolicy(
        2,
        (0.06, 0.08),
        (2.5, 2.0, 1.5),
        (0.8, 1.0, 1.2),
        ("low", "mid", "high"),
        source=str(path),
        fitted_at="2026-11-24T05:40:12+00:00",
        n_trades=812,
    )
    assert message == (
        f"Phase 2 exits from {path} (fitted 2026-11-24 05:40 UTC, 812 trades): "
        "low 2.5/0.8, mid 2.0/1.0, high 1.5/1.2"
    )


def test_phase1_buckets_follow_the_settings_in_force(tmp_path, settings):
    path = write_calibration(tmp_path / "c.json", valid_document())
    policy, _ = load_exit_policy(path, settings.replace(tp_mult=2.2, sl_mult=0.9))
    assert policy.tp_mults == (2.5, 2.2, 1.5) and policy.sl_mults == (0.8, 0.9, 1.2)


def test_missing_file_is_phase1_without_warning(tmp_path, settings):
    policy, message = load_exit_policy(tmp_path / "nope.json", settings)
    assert policy == ExitPolicy.phase1(settings)
    assert message == f"Phase 1 exits (no calibration file at {tmp_path / 'nope.json'})"


def _text(doc) -> str:
    return json.dumps(doc, allow_nan=True)


HOSTILE = {
    "truncated": (_text(valid_document())[:150], "not valid JSON, perhaps truncated"),
    "empty": ("", "is empty"),
    "not-json": ("calibrated!", "not valid JSON"),
    "json-list": ("[1, 2, 3]", "not a gammaride calibration"),
    "other-schema": (_text(valid_document(schema="something.else")), "not a gammaride calibration"),
    "no-version": (_text(valid_document(schema_version="1")), "invalid schema_version"),
    "newer-version": (_text(valid_document(schema_version=SCHEMA_VERSION + 1)), "newer than this"),
    "nan-multiplier": (_text(_bucket(valid_document(), 0, tp_mult=math.nan)), "NaN"),
    "null-multiplier": (_text(_bucket(valid_document(), 2, sl_mult=None)), "not a finite number"),
    "string-multiplier": (
        _text(_bucket(valid_document(), 0, tp_mult="2.5")),
        "not a finite number",
    ),
    "huge-tp": (_text(_bucket(valid_document(), 0, tp_mult=25.0)), "absurd tp_mult 25.0"),
    "zero-sl": (_text(_bucket(valid_document(), 2, sl_mult=0.0)), "absurd sl_mult 0.0"),
    "negative-sl": (_text(_bucket(valid_document(), 2, sl_mult=-1.0)), "absurd sl_mult -1.0"),
    "other-symbol": (_text(valid_document(symbol="QQQ")), "was fitted on QQQ trades, not SPY"),
    "other-max-hold": (
        _text(valid_document(settings={"tp_mult": 2.0, "sl_mult": 1.0, "max_hold_minutes": 30})),
        "30-minute max hold",
    ),
    "edges-descending": (_text(valid_document(edges=[0.08, 0.06])), "ascending"),
    "edges-nan": (_text(valid_document(edges=[math.nan, 0.08])), "NaN"),
    "bucket-count": (_text(valid_document(edges=[0.06])), "3 buckets for 1 edges"),
    "bad-phase": (_text(_bucket(valid_document(), 1, phase=3)), "phase 3"),
    "no-fitted-at": (_text(valid_document(fitted_at="yesterday")), "fitted_at"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_falls_back_to_phase1(tmp_path, settings, case):
    text, problem = HOSTILE[case]
    path = tmp_path / "calibration.json"
    path.write_text(text, encoding="utf-8")
    policy, message = load_exit_policy(path, settings)
    assert policy == ExitPolicy.phase1(settings)
    assert message.startswith(f"WARNING: calibration file {path} ")
    assert problem in message
    assert "using Phase 1 exits. Fix: " in message


def test_an_unpublished_verdict_is_phase1_without_a_warning(tmp_path, settings):
    path = tmp_path / "calibration.json"
    path.write_text(_text(valid_document(published=False)), encoding="utf-8")
    policy, message = load_exit_policy(path, settings)
    assert policy == ExitPolicy.phase1(settings)
    assert message.startswith(f"Phase 1 exits: {path} was not published: out-of-sample validation")
    assert "WARNING" not in message and "Next: keep trading Phase 1" in message


def test_unreadable_files_fall_back_too(tmp_path, settings):
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    a_dir = tmp_path / "a_dir.json"
    a_dir.mkdir()
    for path in (binary, a_dir):
        policy, message = load_exit_policy(path, settings)
        assert policy.phase == 1 and message.startswith("WARNING:") and str(path) in message


# replay falls back too ----------------------------------------------------------------


def _replay(tmp_path, calibration, capsys):
    journal = tmp_path / "j.duckdb"
    code = main(
        [
            "replay",
            str(ONE_SESSION),
            "--journal",
            str(journal),
            "--calibration",
            str(calibration),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    with Journal(journal, read_only=True) as j:
        trades = j.trades()
    assert len(trades) == 8
    return out, trades


@pytest.mark.parametrize(
    "case",
    [
        "truncated",
        "not-json",
        "other-schema",
        "newer-version",
        "nan-multiplier",
        "huge-tp",
        "zero-sl",
    ],
)
def test_replay_falls_back_to_phase1_on_a_hostile_file(tmp_path, capsys, case):
    path = tmp_path / "bad.json"
    path.write_text(HOSTILE[case][0], encoding="utf-8")
    out, trades = _replay(tmp_path, path, capsys)
    assert f"WARNING: calibration file {path} " in out and HOSTILE[case][1] in out
    assert set(trades["phase"]) == {1} and set(trades["atr_bucket"]) == {"all"}
    assert set(trades["tp_mult"]) == {2.0} and set(trades["sl_mult"]) == {1.0}


def test_replay_uses_a_valid_file_and_journals_phase_bucket_multipliers(tmp_path, capsys):
    path = write_calibration(tmp_path / "good.json", valid_document())
    out, trades = _replay(tmp_path, path, capsys)
    assert f"Phase 2 exits from {path} (fitted 2026-11-24 05:40 UTC, 812 trades)" in out
    assert set(trades["phase"]) == {2}
    expect = {"low": (2.5, 0.8), "mid": (2.0, 1.0), "high": (1.5, 1.2)}
    for row in trades.itertuples():
        bucket = "low" if row.atr < 0.06 else ("mid" if row.atr < 0.08 else "high")
        assert row.atr_bucket == bucket
        assert (row.tp_mult, row.sl_mult) == expect[bucket]
    assert set(trades["atr_bucket"]) == {"low", "mid", "high"}


# atomic writes ------------------------------------------------------------------------


def test_write_is_atomic(tmp_path, monkeypatch):
    path = write_calibration(tmp_path / "calibration.json", valid_document())
    before = path.read_text()
    assert json.loads(before)["n_trades"] == 812
    with pytest.raises(ValueError):  # NaN is refused before anything touches the disk
        write_calibration(path, valid_document(n_trades=math.nan))

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_calibration(path, valid_document(n_trades=1))
    assert path.read_text() == before  # the old calibration is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibration.json"]  # no temp left


# the scanner loads the same way --------------------------------------------------------


@pytest.mark.parametrize("case", ["truncated", "valid"])
def test_scanner_falls_back_or_uses_phase2(tmp_path, capsys, monkeypatch, case):
    for var in (
        "ALPACA_API_KEY",
        "ALPACA_SECRET_KEY",
        "APCA_API_KEY_ID",
        "APCA_API_SECRET_KEY",
        "GAMMARIDE_JOURNAL",
    ):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "calibration.json"
    if case == "valid":
        write_calibration(path, valid_document())
    else:
        path.write_text(HOSTILE[case][0], encoding="utf-8")
    journal = tmp_path / "scan.duckdb"
    code = main(
        [
            "scan",
            "--scans",
            "3",
            "--speed",
            "0",
            "--start",
            "2013-10-07 10:06:30",
            "--journal",
            str(journal),
            "--iv-percentile",
            "0.5",
            "--dry-run",
            "--calibration",
            str(path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    with Journal(journal, read_only=True) as j:
        trades = j.trades(closed_only=False, dry_runs=True)
    assert len(trades) == 1  # the 10:08 spike, ATR about $0.09: the 'high' bucket
    row = trades.iloc[0]
    if case == "valid":
        assert f"Phase 2 exits from {path} (fitted 2026-11-24 05:40 UTC, 812 trades)" in out
        assert (row["phase"], row["atr_bucket"], row["tp_mult"], row["sl_mult"]) == (
            2,
            "high",
            1.5,
            1.2,
        )
    else:
        assert f"WARNING: calibration file {path} is not valid JSON" in out
        assert (row["phase"], row["atr_bucket"], row["tp_mult"], row["sl_mult"]) == (
            1,
            "all",
            2.0,
            1.0,
        )


def test_one_schema_for_writer_and_loader(tmp_path, settings):
    from pydantic import ValidationError

    from gammaride.calibration.schema import CalibrationDocument

    model = CalibrationDocument.model_validate(valid_document())
    assert model.published and [b.tp_mult for b in model.buckets] == [2.5, 2.0, 1.5]
    with pytest.raises(ValidationError):
        CalibrationDocument.model_validate(_bucket(valid_document(), 0, tp_mult="2.5"))


def test_loading_the_policy_does_not_import_the_fitting_code(tmp_path):
    import subprocess
    import sys

    path = write_calibration(tmp_path / "calibration.json", valid_document())
    code = (
        "import sys\n"
        "from gammaride.calibration import load_exit_policy\n"
        "from gammaride.config import Settings\n"
        f"policy, _ = load_exit_policy({str(path)!r}, Settings.load(env={{}}))\n"
        "assert policy.phase == 2\n"
        "heavy = [m for m in ('gammaride.calibration.fit', 'gammaride.calibration.pipeline', "
        "'statsmodels', 'sklearn', 'pandas') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
