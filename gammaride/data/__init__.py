"""Bars from Alpaca's history: the Parquet cache and the paced fetcher that fills it."""

from gammaride.data.cache import BarCache
from gammaride.data.fetch import Fetcher, RateLimiter

__all__ = ["BarCache", "Fetcher", "RateLimiter"]
