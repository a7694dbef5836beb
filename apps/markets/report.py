"""The scenario report (one self-contained HTML file) and the standalone backtest report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from apps.markets import evaluate as ev
from apps.markets.config import DEEP
from shared.report import figures as shared_figures
from shared.report.page import Page

FACT_COLUMNS = [
    "name",
    *ev.HEADLINE,
    "acf_id",
    "emd_5",
    "emd_100",
    "excess_kurtosis",
    "hill_tail_index",
    "port_emd_1",
    "port_emd_20",
    "port_acf_abs",
    "port_leverage",
    "memorisation_ratio",
    "copy_rate",
]


BACKTEST_COLUMNS = [
    "name",
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


def backtest_section(page: Page, rows: list[dict], frame: pd.DataFrame, names: list[str]) -> None:
    """The backtest table and the plot of daily losses against each model's 1-day VaR (`<name>_var` columns)."""
    page.table(
        rows,
        columns=BACKTEST_COLUMNS,
        caption="Kupiec (number of hits), Christoffersen (independence) and conditional coverage p-values pass "
        "above 0.05; Acerbi-Szekely Z2 passes above its simulated 5% critical value",
    )
    series = {"loss (-return)": (frame.index, -frame["ret"].to_numpy())}
    series.update({f"{n} VaR": (frame.index, frame[f"{n}_var"].to_numpy()) for n in names})
    page.figure(
        shared_figures.line_plot(
            series, xlabel="date", ylabel="daily loss (log return)", title="Daily losses and 1-day VaR forecasts"
        )
    )


def _pct(rows: list[dict], keys) -> list[dict]:
    return [{k: (100 * v if k in keys and isinstance(v, float) else v) for k, v in r.items()} for r in rows]


def build_report(cfg, run, result: dict, r: pd.DataFrame, w: np.ndarray) -> Page:
    from apps.markets import figures

    who = ", ".join(result["assets"]) if len(result["assets"]) <= 6 else f"{len(result['assets'])} assets"
    page = Page(
        "Market scenarios: deep generators against classical baselines",
        subtitle=f"{who}; trained before {result['split']} ({result['train_days']} days), "
        f"evaluated on the {result['test_days']} days after; scenarios from {result['last_date']}",
    )
    wins = result["wins_vs_garch_t"]
    if wins:
        best = max(wins, key=wins.get)
        page.callout(
            f"Best generator against GARCH(1,1)-t on the 7 headline scores (EMD 1/20-day, ACF |r| and r^2, leverage, "
            f"cross-correlation, discriminative): {best} wins {wins[best]} of 7. "
            + "; ".join(f"{k}: {v}/7" for k, v in wins.items())
        )
    page.text(
        "Deep generators (cvae, cgan) are autoregressive on a volatility state, so paths are contiguous and can start "
        "from the market on any date. Classical baselines: CCC-GARCH(1,1) with Student-t innovations, filtered "
        "historical simulation (GARCH filter + jointly bootstrapped residual vectors), the stationary block "
        "bootstrap and i.i.d. historical simulation. Lower scores are better; the memorisation ratio should be near "
        "1 (below 1: generated windows are closer to the training data than new real data is)."
    )
    paths = dict(np.load(run.path / "eval_paths.npz"))
    dashed = {n for n in paths if n not in DEEP}  # classical baselines drawn dashed
    port_paths = {n: ev.portfolio(p, w) for n, p in paths.items()}
    test = r[r.index >= pd.Timestamp(result["split"])]
    te = test.to_numpy()

    page.section("Portfolio value: generated futures of the held-out period")
    hist_value = 100 * np.exp(np.cumsum(ev.portfolio(r[r.index < pd.Timestamp(result["split"])].to_numpy(), w)))
    history = pd.Series(hist_value[-250:] / hist_value[-1] * 100, index=np.arange(-249, 1))
    realised = pd.Series(100 * np.exp(np.cumsum(ev.portfolio(te, w))), index=np.arange(1, len(te) + 1))
    page.figure(
        figures.fan_chart(port_paths, start_value=100.0, history=history, realised=realised),
        caption="Portfolio value from the last training day: generated quantile bands vs what happened (dashed)",
    )

    page.section("Stylized facts on the held-out period")
    page.table(
        result["facts"],
        columns=[c for c in FACT_COLUMNS if any(c in row for row in result["facts"])],
        caption="Scores are distances to the real held-out period (lower is better); excess kurtosis and Hill "
        "tail index are the generated values (the real row gives the target); port_ = equal-weight portfolio",
    )
    page.figure(
        figures.return_distributions(
            {n: p.ravel() for n, p in port_paths.items()}, ev.portfolio(te, w), title="Portfolio daily returns"
        ),
        caption="Daily portfolio returns: density (log scale) and the left tail",
    )
    page.figure(
        figures.acf_panels(te, paths, max_lag=min(250, len(te) // 4), dashed=dashed),
        caption="Autocorrelation of r, |r| and r^2 (mean over assets): volatility clustering",
    )
    page.figure(
        figures.leverage_panel(te, paths, max_lag=60, dashed=dashed),
        caption="Leverage effect: corr(r_t, r_{t+k}^2), mean over assets",
    )
    page.figure(
        figures.correlation_heatmaps(te, paths, list(result["assets"])),
        caption="Cross-asset correlation of daily returns",
    )

    page.section("Risk: portfolio VaR and ES from the last date")
    risk_keys = {k for row in result["risk"] for k in row if k != "name"}
    page.table(_pct(result["risk"], risk_keys), caption="Losses in percent of portfolio value (log-return units)")
    page.figure(figures.var_es_chart(result["risk"], dashed=dashed), caption="VaR and ES by level and horizon")

    page.section(f"Backtest: 1-day {100 * (1 - cfg.backtest_alpha):g}% VaR/ES over the held-out period")
    frame = pd.read_csv(run.path / "backtest.csv", index_col=0, parse_dates=True)
    backtest_section(page, result["backtest"], frame, [c[:-4] for c in frame.columns if c.endswith("_var")])

    if result["stress"]:
        page.section("Stress scenarios")
        page.text(
            f"Each generator starts from the market state on the date and simulates {cfg.stress_horizon} days; "
            "realised is what the portfolio did, and its quantile under the generated distribution says how "
            "extreme the generator thought it (near 0: the generator did not see it coming)."
        )
        page.table(
            _pct(result["stress"], {"q05", "median", "var_99", "es_99", "realised"}),
            caption=f"{cfg.stress_horizon}-day portfolio log return, percent",
        )
    page.provenance(config=cfg)
    return page


def backtest_report(cfg, frame: pd.DataFrame, rows: list[dict]) -> Page:
    who = ", ".join(cfg.tickers) if cfg.tickers else cfg.universe
    page = Page(
        "Market risk: rolling VaR/ES backtest",
        subtitle=f"{who}, {100 * (1 - cfg.alpha):g}% 1-day VaR, {len(frame)} out-of-sample days "
        f"({frame.index[0]:%Y-%m-%d} to {frame.index[-1]:%Y-%m-%d})",
    )
    page.text(
        f"Classical models are refitted on the last {cfg.window} trading days every {cfg.refit_every} days; deep "
        f"generators are retrained on all earlier days every {cfg.deep_refit_every} days. Each forecasts the next "
        "day's VaR and ES. A hit is a day whose loss exceeds the VaR. Kupiec tests the number of hits, "
        "Christoffersen their independence (no clustering), and Acerbi-Szekely Z2 the ES (reject when Z2 is below "
        "its simulated 5% critical value)."
    )
    page.section("Backtests")
    backtest_section(page, rows, frame, list(cfg.models))
    page.provenance(config=cfg)
    return page
