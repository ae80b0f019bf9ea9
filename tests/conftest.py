from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from gammaride.config import Settings
from gammaride.data.bars import sample_bars
from gammaride.journal import Journal

SHARED_MARKET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "market"
AFTERNOON = "pm_afternoon"  # the session-scoped recorded afternoon (its tests share a worker)


def pytest_configure(config):
    """Once, before the parallel workers start: compile gammaride's bytecode. Where
    ``PYTHONDONTWRITEBYTECODE`` is set (as on this project's CI machines), nothing else
    writes it for an editable install, and every worker and every ``gammaride`` subprocess
    the tests start would compile the whole package again (about 0.4 s of CPU each)."""
    if hasattr(config, "workerinput"):  # a worker: the controller has compiled it
        return
    import compileall

    import gammaride

    compileall.compile_dir(Path(gammaride.__file__).parent, quiet=1)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under parallel workers (``-n auto --dist loadgroup``) the tests that share a
    module-scoped fixture (a recorded scanner session, the demo, a rendered report) run
    on one worker, so that fixture is built once, and so do the tests of every module that
    reads the session-scoped recorded afternoon; every other test goes to any worker.
    First among the hooks: xdist's own reads the groups when it runs, and this file is
    registered before it (so, without ``tryfirst``, called after it)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs if info is not None else {}
        if AFTERNOON in defs:  # one recorded afternoon for every module that reads it
            item.add_marker(pytest.mark.xdist_group(AFTERNOON))
        elif any(d and d[-1].scope == "module" for d in defs.values()):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


def pytest_collection_finish(session):
    """A group that did not reach the scheduler is said out loud (each module-scoped
    fixture is then built once per worker): xdist marks a grouped test by its node id."""
    if not session.config.getoption("loadgroup", default=False):
        return
    lost = [item.nodeid for item in session.items
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if lost:
        session.config.issue_config_time_warning(pytest.PytestConfigWarning(
            f"--dist loadgroup did not group {len(lost)} tests such as {lost[0]}: xdist did not mark "
            "their node ids (pytest 9.2 and pytest-xdist 3.8, pytest-xdist issue 1386: install "
            "pytest<9.2; or a grouping hook that ran after xdist's)"), stacklevel=2)


@pytest.fixture(scope="session", autouse=True)
def _calendar_cache(tmp_path_factory):
    """The exchange-calendar cache in the run's temporary folder, not the user's home; one
    folder for all parallel workers (the table is written atomically)."""
    folder = tmp_path_factory.getbasetemp().parent / "gammaride-cache"
    before = os.environ.get("GAMMARIDE_CACHE_DIR")
    os.environ["GAMMARIDE_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("GAMMARIDE_CACHE_DIR", None)
    else:
        os.environ["GAMMARIDE_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def sample() -> pd.DataFrame:
    """The seven bundled real SPY sessions."""
    return sample_bars()


@pytest.fixture
def bars(sample) -> pd.DataFrame:
    """The bars an offline server replays: the bundled sample."""
    return sample


@pytest.fixture
def settings() -> Settings:
    return Settings.load(env={})


def shared_file(relative: str) -> Path:
    """A file of the shared market data, or skip when the checkout has none beside it."""
    path = SHARED_MARKET / relative
    if not path.exists():
        pytest.skip(f"shared market data not present ({relative})")
    return path


def _tmpfs(path, options: str):
    """Mount a tmpfs at ``path`` (root only); yield it, unmount after; skip elsewhere."""
    import subprocess

    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@pytest.fixture
def full_disk(tmp_path):
    """A tiny tmpfs (one 4 KiB page, nothing else fits): a real full disk."""
    yield from _tmpfs(tmp_path / "full", "size=4k")


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only file system: nothing can be created in it, not even by root."""
    yield from _tmpfs(tmp_path / "ro", "ro,size=4k")


@dataclass(frozen=True)
class Afternoon:
    """A recorded 55-scan offline afternoon: the scanner (its run id, outcomes and counters),
    the lines it printed, the server's request log and orders, and the closed journal file."""

    scanner: object
    lines: list
    log: list
    server_orders: list
    journal_path: Path

    def journal(self, folder: Path) -> Journal:
        """The afternoon's journal as a private copy in ``folder`` (a test may write to it)."""
        copy = folder / self.journal_path.name
        shutil.copyfile(self.journal_path, copy)
        return Journal(copy)


@pytest.fixture(scope="session")
def pm_afternoon(tmp_path_factory) -> Afternoon:
    """The 2013-10-10 afternoon (a 2% gap up) scanned 55 times from 14:59:30 on the bundled
    sample, recorded once for the run: every module that checks that afternoon reads it
    instead of scanning it again. The debug block is on at the standard volume bar (debug
    lowers it to 1.5x by default), so it only prints: the decisions are those of debug off."""
    from gammaride.offline import OfflineAlpaca
    from tests.support import offline_scanner

    path = tmp_path_factory.mktemp("afternoon") / "pm.duckdb"
    with OfflineAlpaca(start="2013-10-10 14:59:30", speed=0, seed=7) as srv:
        journal = Journal(path)
        sc, lines = offline_scanner(srv, journal, Settings.load(env={}, debug=True, debug_vol_threshold=2.0),
                                     iv_percentile=0.5)
        sc.run(55)
        log, orders = list(srv.request_log), list(srv.broker.orders.values())
    journal.close()
    return Afternoon(sc, lines, log, orders, path)
