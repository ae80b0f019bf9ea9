"""gammaride: a 0DTE dealer-gamma scanner for Alpaca that journals every decision,
calibrates its own exits from the journal and reports the truth about the strategy."""

__version__ = "0.1.0"
