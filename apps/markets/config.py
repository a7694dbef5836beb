"""The markets app's configs; `python -m apps.markets <command> --help` is derived from them."""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import ConfigError


@dataclass
class BacktestConfig:
    """Rolling out-of-sample 1-day VaR/ES backtest of the classical baselines on one return series."""

    run_name: str = "backtest"
    """Run folder runs/markets/<run-name>/ (re-running overwrites its backtest outputs)."""
    runs_dir: str = "runs"
    """Root folder of all runs."""
    universe: str = "sp500-index"
    """Bundled data when no --tickers are given (or offline): sp500-index, nasdaq-index, sp500-20."""
    tickers: tuple[str, ...] = ()
    """Tickers of the portfolio, comma-separated (default: the whole universe)."""
    weights: tuple[float, ...] = ()
    """Portfolio weights matching --tickers, summing to 1 (default: equal weights)."""
    start: str = ""
    """First date of the data, YYYY-MM-DD (default: all history)."""
    end: str = ""
    """Last date of the data, YYYY-MM-DD (default: all history)."""
    source: str = "auto"
    """Where prices come from: auto (cache, then yfinance, then bundled), bundled, or yfinance."""
    alpha: float = 0.025
    """Tail probability of the VaR/ES (0.025 = 97.5% VaR)."""
    window: int = 1000
    """Rolling estimation window in trading days."""
    refit_every: int = 20
    """Refit the models every this many days (the GARCH filter still updates daily)."""
    models: tuple[str, ...] = ("hs", "garch-n", "garch-t", "fhs")
    """Baselines to backtest: hs, garch-n, garch-t, fhs."""

    def __post_init__(self):
        from apps.markets.baselines import MODELS

        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models:
            raise ConfigError(f"unknown baseline {(unknown or ['(none)'])[0]!r}; choose from {', '.join(MODELS)}")
        if not 0 < self.alpha < 0.5:
            raise ConfigError(f"--alpha must be in (0, 0.5) (e.g. 0.025 for 97.5% VaR), got {self.alpha}")
        if self.window < 100 or self.refit_every < 1:
            raise ConfigError(f"--window must be >= 100 and --refit-every >= 1, got {self.window}, {self.refit_every}")
        if self.weights and len(self.weights) != len(self.tickers):
            raise ConfigError(
                f"{len(self.weights)} weights for {len(self.tickers)} tickers; give one weight per ticker"
            )
        if self.weights and abs(sum(self.weights) - 1.0) > 1e-6:
            raise ConfigError(f"weights sum to {sum(self.weights):.6g}, not 1; rescale them")
