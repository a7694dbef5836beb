"""`python -m apps.markets <command>`: market data, classical risk baselines and their backtests.

    python -m apps.markets backtest                              # S&P 500 index, 97.5% VaR, 1000-day window
    python -m apps.markets backtest --tickers AAPL,MSFT,JPM --weights 0.4,0.4,0.2 --alpha 0.01

Scenario generators (deep and classical) and the scenario report are in progress (issue 5).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from apps.markets.backtest import backtest_summary
from apps.markets.baselines import rolling_var_es
from apps.markets.config import BacktestConfig
from apps.markets.data import align, load_prices, log_returns
from shared.atomic import atomic_path
from shared.cli import parse_config, run_main
from shared.report import figures
from shared.report.page import Page
from shared.runs import RunDir

APP = "markets"
COMMANDS = {"backtest": BacktestConfig}


def portfolio_log_returns(cfg: BacktestConfig) -> pd.Series:
    """Daily log returns of the (constant-weight, daily rebalanced) portfolio."""
    prices = load_prices(
        list(cfg.tickers) or None, cfg.start or None, cfg.end or None, universe=cfg.universe, source=cfg.source
    )
    prices, _ = align(prices)
    r = log_returns(prices)  # (T, A)
    w = np.asarray(cfg.weights or [1.0 / r.shape[1]] * r.shape[1])
    simple = np.expm1(r.to_numpy()) @ w  # portfolio simple return
    return pd.Series(np.log1p(simple), index=r.index, name="portfolio")


def backtest(cfg: BacktestConfig) -> dict:
    run = RunDir.open(APP, cfg.run_name, cfg.runs_dir)
    run.save_config(cfg)
    r = portfolio_log_returns(cfg)
    bars = []  # created at the first refit, so that errors before it print alone

    def progress(done, total):
        if not bars:
            bars.append(tqdm(total=total, desc="refits", file=sys.stderr, mininterval=1.0))
        bars[0].update(done - bars[0].n)

    frame = rolling_var_es(r, cfg.alpha, cfg.window, cfg.refit_every, cfg.models, progress=progress)
    for b in bars:
        b.close()
    with atomic_path(run.path / "backtest.csv") as tmp:
        frame.to_csv(tmp, index_label="date")
    rows, metrics = [], {"backtest_days": len(frame), "alpha": cfg.alpha}
    for m in cfg.models:
        s = backtest_summary(
            frame["ret"].to_numpy(), frame[f"{m}_var"].to_numpy(), frame[f"{m}_es"].to_numpy(), cfg.alpha
        )
        rows.append({"model": m, **s})
        metrics.update({f"{m.replace('-', '_')}_{k}": v for k, v in s.items()})
    run.write_metrics({k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in metrics.items()})
    report(run, cfg, frame, rows).save(run.report_path)
    print(f"wrote {run.report_path}, {run.metrics_path} and {run.path / 'backtest.csv'}", file=sys.stderr)
    return metrics


def report(run: RunDir, cfg: BacktestConfig, frame: pd.DataFrame, rows: list[dict]) -> Page:
    who = ", ".join(cfg.tickers) if cfg.tickers else cfg.universe
    page = Page(
        "Market risk: VaR/ES backtest of classical baselines",
        subtitle=f"{who}, {100 * (1 - cfg.alpha):g}% 1-day VaR, {len(frame)} out-of-sample days "
        f"({frame.index[0]:%Y-%m-%d} to {frame.index[-1]:%Y-%m-%d})",
    )
    page.text(
        f"Each model is refitted on the last {cfg.window} trading days every {cfg.refit_every} days and "
        "forecasts the next day's VaR and ES. A hit is a day whose loss exceeds the VaR. Kupiec tests the "
        "number of hits, Christoffersen their independence (no clustering), and Acerbi-Szekely Z2 the ES "
        "(reject when Z2 is below its simulated 5% critical value)."
    )
    page.section("Backtests")
    cols = [
        "model",
        "hits",
        "expected_hits",
        "kupiec_p",
        "christoffersen_p",
        "cc_p",
        "z2",
        "z2_crit",
        "pass_kupiec",
        "pass_christoffersen",
        "pass_z2",
    ]
    page.table(rows, columns=cols, caption="p-values above 0.05 pass; Z2 above its critical value passes")
    page.section("Returns and VaR")
    series = {"loss (-return)": (frame.index, -frame["ret"].to_numpy())}
    series.update({f"{m} VaR": (frame.index, frame[f"{m}_var"].to_numpy()) for m in cfg.models})
    page.figure(
        figures.line_plot(
            series, xlabel="date", ylabel="daily loss (log return)", title="Daily losses and 1-day VaR forecasts"
        )
    )
    page.provenance(config=cfg)
    return page


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        usage = ", ".join(COMMANDS)
        if argv and argv[0] in ("-h", "--help"):
            print(__doc__)
            return 0
        from shared.errors import ConfigError

        raise ConfigError(f"give a command: one of {usage} (e.g. python -m apps.markets backtest --help)")
    cfg = parse_config(
        COMMANDS[argv[0]], argv[1:], prog=f"python -m apps.markets {argv[0]}", description=COMMANDS[argv[0]].__doc__
    )
    backtest(cfg)
    return 0


if __name__ == "__main__":
    run_main(main)
