from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gammaride.config import Settings
from gammaride.sim.data import sample_bars

SHARED_MARKET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "market"


@pytest.fixture(scope="session")
def sample() -> pd.DataFrame:
    """The seven bundled real SPY sessions."""
    return sample_bars()


@pytest.fixture
def settings() -> Settings:
    return Settings.load(env={})


def shared_file(relative: str) -> Path:
    """A file of the shared market data, or skip when the checkout has none beside it."""
    path = SHARED_MARKET / relative
    if not path.exists():
        pytest.skip(f"shared market data not present ({relative})")
    return path


@pytest.fixture
def full_disk(tmp_path):
    """A tiny tmpfs (one 4 KiB page, nothing else fits): a real full disk. Needs root to
    mount; skipped elsewhere."""
    import subprocess

    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)
