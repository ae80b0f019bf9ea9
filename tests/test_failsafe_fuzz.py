"""Seeded fuzzing of the two files a trader hands gammaride: a bars file and a journal.

Every mutation below makes the file wrong on purpose; each run of the command must end
with a nonzero exit code, exactly one line on stderr, no traceback, and the journal
byte for byte as it was. The runs call ``cli.main`` in-process (hundreds of them in a few
seconds); a handful go through the real ``gammaride`` entry point in a subprocess."""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from gammaride import cli
from gammaride.data.bars import load_bars, sample_paths

SEED = 20261201
BARS_MUTATIONS = 300
JOURNAL_MUTATIONS = 100

JUNK_TIMES = [
    "", " ", "nan", "NaT", "03", "0", "-1", "1e400", "2262-04-12 09:31:00", "0001-01-01 09:31",
    "9999-12-31", "07.10.2013 09:31", "10/07/2013 09:31", "Oct 7 2013 09:31", "2013-13-07 09:31",
    "2013-10-32 09:31", "2013-10-07 25:61", "２０１３-10-07 09:31:00", "2013-10-07\u00a009:31",
    "\x00\x00", "\ufeff", "2013-10-07T09:31:00+99:00", "2013-W41-1", "1381152660", "'2013-10-07'",
    "2013-10-05 09:31:00", "2013-12-25 09:31:00-05:00", "2013-10-07 09:31:00 EST",
]
JUNK_NUMBERS = ["", "nan", "inf", "-inf", "-1", "0", "1,5", "x", "9" * 400, "1e400", "--3", "0x1F",
                "１６７", "\x00", "1.2.3", "NULL", "None", "-0.0001"]


def _bars_mutation(rng: random.Random, lines: list[str]) -> tuple[str, list[str]]:
    """One mutation that makes the file invalid; returns its name and the new lines."""
    out = list(lines)
    i = rng.randrange(2, len(out))  # a data row (not the header, not the first bar)
    cells = out[i].split(",")
    kind = rng.choice(["time", "price", "volume", "fields", "header", "duplicate", "order",
                       "weekend", "bytes", "quote"])
    if kind == "time":
        cells[0] = rng.choice(JUNK_TIMES)
    elif kind == "price":
        cells[rng.randrange(1, 5)] = rng.choice(JUNK_NUMBERS[:-1])
    elif kind == "volume":
        cells[5] = rng.choice([v for v in JUNK_NUMBERS if v not in ("0", "-0.0001")] + ["-5"])
    elif kind == "fields":
        cells = cells + ["1"] * rng.randint(1, 4)
    elif kind == "header":
        header = out[0].split(",")
        header[rng.randrange(len(header))] = rng.choice(["", "time", "Open Price", "vol", "x"])
        out[0] = ",".join(header)
        return kind, out
    elif kind == "duplicate":
        out.insert(i, out[i])
        return kind, out
    elif kind == "order":  # high below low
        cells[2], cells[3] = str(float(cells[3]) - 1), str(float(cells[2]) + 1)
    elif kind == "weekend":
        day = rng.choice(["2013-10-05", "2013-10-06", "2013-12-25", "2013-07-04"])
        out[1:] = [line.replace("2013-10-07", day) for line in out[1:]]
        return kind, out
    elif kind == "bytes":
        junk = "".join(chr(rng.choice([0, 1, 7, 0xFFFD, 0x202E, rng.randrange(0x80, 0x2FFF)]))
                       for _ in range(rng.randint(1, 6)))
        pos = rng.randrange(0, len(cells[0]) + 1)
        cells[0] = cells[0][:pos] + junk + cells[0][pos:]
    elif kind == "quote":
        cells[rng.randrange(0, 6)] = '"' + rng.choice(JUNK_TIMES + JUNK_NUMBERS)
    out[i] = ",".join(cells)
    return kind, out


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_refused(what: str, code: int, out: str, err: str) -> None:
    assert code != 0, f"{what}: accepted"
    assert "Traceback" not in out + err, f"{what}: traceback\n{err}"
    assert err.count("\n") == 1 and err.endswith("\n"), f"{what}: not one line on stderr\n{err!r}"
    assert err.startswith("gammaride ") and ": error: " in err, f"{what}: {err!r}"
    assert "unexpected" not in err, f"{what}: an unclassified failure: {err}"


@pytest.fixture(scope="module")
def bars_lines() -> list[str]:
    buf = io.StringIO()
    load_bars(sample_paths()[1]).reset_index().to_csv(buf, index=False)
    return buf.getvalue().splitlines()


@pytest.fixture(scope="module")
def journal(tmp_path_factory, bars_lines) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    bars = folder / "spy.csv"
    bars.write_text("\n".join(bars_lines) + "\n")
    path = folder / "j.duckdb"
    code, _, err = _run(["replay", str(bars), "--journal", str(path), "--quiet", "--iv-gate", "off"])
    assert code == 0, err
    return path


def test_mutated_bars_files_are_refused_in_one_line(bars_lines, journal, tmp_path):
    rng = random.Random(SEED)
    before = _digest(journal)
    seen = set()
    for n in range(BARS_MUTATIONS):
        kind, lines = _bars_mutation(rng, bars_lines)
        seen.add(kind)
        path = tmp_path / f"m{n}.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        code, out, err = _run(["replay", str(path), "--journal", str(journal), "--quiet"])
        _assert_refused(f"mutation {n} ({kind})", code, out, err)
        assert code == 3, f"mutation {n} ({kind}): {err}"
    assert _digest(journal) == before
    assert len(seen) == 10  # every kind of mutation was tried


def _journal_mutation(rng: random.Random, source: Path, target: Path, cache: dict | None = None) -> str:
    """One damage done to a copy of ``source`` at ``target``; returns its kind. Damage done
    through SQL is made once per (kind, table, column) and copied after (``cache``)."""
    kind = rng.choice(["truncate", "header", "drop_table", "drop_column", "newer"])
    if kind in ("truncate", "header"):
        shutil.copyfile(source, target)
        with open(target, "r+b") as fh:
            if kind == "truncate":
                fh.truncate(rng.randrange(1, target.stat().st_size * 3 // 5))
            else:  # the main header: checksum, magic bytes and version
                fh.seek(rng.randrange(0, 64))
                fh.write(bytes(rng.randrange(256) for _ in range(rng.randint(4, 32))))
        return kind
    table, column = rng.choice(_SCHEMA)
    key = (kind, table, column if kind == "drop_column" else None)
    if cache is not None and key in cache:
        shutil.copyfile(cache[key], target)
        return kind
    shutil.copyfile(source, target)
    con = duckdb.connect(str(target))
    if kind == "drop_table":
        con.execute(f"DROP TABLE {table}")
    elif kind == "drop_column":
        try:
            con.execute(f'ALTER TABLE {table} DROP COLUMN "{column}"')
        except duckdb.Error:  # a key column: drop the table instead
            con.execute(f"DROP TABLE {table}")
    else:
        con.execute("INSERT INTO schema_migrations VALUES ('m999_from_the_future', now())")
    con.execute("CHECKPOINT")
    con.close()
    if cache is not None:
        cache[key] = target.with_name(f"cache{len(cache)}.duckdb")
        shutil.copyfile(target, cache[key])
    return kind


def _schema() -> list[tuple[str, str]]:
    from gammaride.journal.store import _expected_schema

    return sorted((t, c) for t, c in _expected_schema() if t != "schema_migrations")


# a fixed sample of (table, column): the SQL damage is made at most once per entry
_SCHEMA = random.Random(SEED).sample(_schema(), 16)


def test_mutated_journals_are_refused_in_one_line_and_left_as_they_were(journal, bars_lines, tmp_path):
    rng = random.Random(SEED + 1)
    bars = tmp_path / "spy.csv"
    bars.write_text("\n".join(bars_lines) + "\n")
    commands = [
        ["journal"],
        ["report", "--out", str(tmp_path / "r.html")],
        ["calibrate", "--out", str(tmp_path / "c.json"), "--min-trades", "10"],
        ["replay", str(bars), "--quiet", "--iv-gate", "off"],
    ]
    kinds, cache = set(), {}
    for n in range(JOURNAL_MUTATIONS):
        path = tmp_path / f"m{n}.duckdb"
        kind = _journal_mutation(rng, journal, path, cache)
        kinds.add(kind)
        before = _digest(path)
        argv = [*rng.choice(commands), "--journal", str(path)]
        code, out, err = _run(argv)
        _assert_refused(f"journal mutation {n} ({kind}, {argv[0]})", code, out, err)
        # a truncation that spares every block calibrate reads leaves it "too few trades" (5)
        assert code == 4 or (argv[0] == "calibrate" and code == 5), f"journal mutation {n} ({kind}): {err}"
        assert _digest(path) == before, f"journal mutation {n} ({kind}, {argv[0]}) changed the file"
        assert not Path(str(path) + ".wal").exists()
        path.unlink()
    assert kinds == {"truncate", "header", "drop_table", "drop_column", "newer"}
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "c.json").exists()


def test_the_real_entry_point_prints_one_line(bars_lines, journal, tmp_path):
    """A few runs through the installed ``gammaride`` script, in a subprocess."""
    rng = random.Random(SEED + 2)
    exe = Path(sys.executable).with_name("gammaride")
    before = _digest(journal)
    damaged = tmp_path / "damaged.duckdb"
    _journal_mutation(random.Random(3), journal, damaged)
    runs = []
    for n in range(1):
        _, lines = _bars_mutation(rng, bars_lines)
        path = tmp_path / f"s{n}.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        runs.append([str(exe), "replay", str(path), "--journal", str(journal), "--quiet"])
    runs.append([str(exe), "journal", "--journal", str(damaged)])
    for argv in runs:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        _assert_refused(" ".join(argv[1:3]), done.returncode, done.stdout, done.stderr)
    assert _digest(journal) == before
