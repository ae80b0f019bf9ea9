"""Bars: the bundled sample sessions and CSV/Lean loaders (``bars``), the Parquet cache of
Alpaca's history (``cache``) and the paced fetcher that fills it (``fetch``)."""
