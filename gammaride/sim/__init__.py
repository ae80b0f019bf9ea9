"""Simulation: bar loaders, fast replay, the offline Alpaca-compatible server, sample data."""

from gammaride.sim.data import load_bars, sample_bars, sample_paths

__all__ = ["load_bars", "sample_bars", "sample_paths"]
