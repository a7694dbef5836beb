"""markets: multi-asset scenario generation for risk (issue 5, in progress).

Landed: the data layer (data.py), stylized-fact scores (stylized.py), VaR/ES backtests (backtest.py), classical
baselines with a rolling out-of-sample backtest (baselines.py) and the `backtest` command (__main__.py). The deep
scenario generators, the held-out evaluation and the scenario report come next.
"""
