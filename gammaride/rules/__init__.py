"""The strategy's rules, shared by the scanner, replay and calibration: the session and
its hedging windows (``session``), the entry gates (``signals``), sizing and exit levels
(``setup``), exits (``exits``), risk limits (``risk``), IV percentile (``ivrank``),
dealer gamma (``gamma``), contract choice and price increments (``contracts``), costs
(``costs``) and Black-Scholes (``blackscholes``). Imports nothing of gammaride but
``config``, ``errors`` and ``text``."""
