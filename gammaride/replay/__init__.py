"""Replay: the scanner's rules over recorded bars (``engine``), with option prices from
bars, Black-Scholes or a delta estimate (``pricing``)."""
