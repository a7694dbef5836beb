"""markets: multi-asset scenario generation for risk (issue 5, in progress).

Landed so far: the data layer (bundled real prices, yfinance adapter with a Parquet cache), stylized-fact scores
and VaR/ES backtests. Generators, the CLI and the report come next.
"""
