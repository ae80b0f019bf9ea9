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
