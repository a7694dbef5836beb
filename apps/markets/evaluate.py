"""Held-out evaluation of scenario generators: stylized facts, memorisation, risk figures, stress and backtests.

Every generator is fitted on the days before the split and judged on the days after it:
- stylized facts of paths started at the end of the training data and as long as the test period, against the
  real test period (per asset, averaged, and for the portfolio), plus a discriminative score on short windows;
- memorisation: nearest-neighbour distances of generated windows to training windows vs real held-out ones;
- risk: portfolio VaR/ES at 95 / 97.5 / 99% over 1 and 10 days from the last date of the data;
- stress: scenarios started from the market state on chosen dates, against what followed;
- a rolling 1-day VaR/ES backtest over the test period (classical models refitted on a rolling window on the
  portfolio series; deep generators trained once on the training period, their state updated daily).
Shapes: returns (T, A), paths (P, L, A), portfolio paths (P, L). Weights (A,) apply to simple returns (daily
rebalanced to constant weights) and the portfolio log return is log(1 + sum_a w_a (e^{r_a} - 1)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from apps.markets import stylized
from apps.markets.backtest import backtest_summary, var_es_from_samples
from apps.markets.memorisation import memorisation, windows
from shared.errors import DataError

LEVELS = {"95": 0.05, "975": 0.025, "99": 0.01}
HORIZONS = (1, 10)
HEADLINE = ("emd_1", "emd_20", "acf_abs", "acf_sq", "leverage", "cross_corr_l1", "discriminative")


def portfolio(r: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Portfolio log returns (...,) of asset log returns (..., A)."""
    simple = np.expm1(r) @ w
    if np.any(simple <= -1):
        raise DataError("a portfolio loses everything on some day (long/short weights too large); scale them down")
    return np.log1p(simple)


def discriminative(real: np.ndarray, paths: np.ndarray, length: int, seeds: int = 5) -> float:
    """Mean over `seeds` of the discriminative score of real non-overlapping windows vs generated ones."""
    real_w = windows(real, length)
    gen_w = np.concatenate([windows(p, length) for p in paths])
    return float(np.mean([stylized.discriminative_score(real_w, gen_w, seed=s) for s in range(seeds)]))


def held_out_scores(train, test, paths_by_name: dict, w: np.ndarray, length: int, seed: int = 0) -> list[dict]:
    """One row per generator: per-asset stylized scores (mean over assets), portfolio scores (`port_` prefix),
    the discriminative score and the memorisation ratio. A "real (held-out)" row gives the test period's own facts
    where they are facts (kurtosis, tail index) rather than distances."""
    rows = stylized.stylized_facts_table(test, paths_by_name, max_lag=min(250, len(test) // 4))
    port_real = portfolio(test, w)
    port_rows = stylized.stylized_facts_table(
        port_real, {k: portfolio(p, w) for k, p in paths_by_name.items()}, max_lag=min(250, len(test) // 4)
    )
    for row, prow, paths in zip(rows, port_rows, paths_by_name.values()):
        row["discriminative"] = discriminative(test, paths, length)
        for k, v in prow.items():
            if k not in ("name", "discriminative"):
                row[f"port_{k}"] = v
        m = memorisation(train, test, paths, length=length, seed=seed)
        row["memorisation_ratio"], row["copy_rate"] = m["ratio"], m["copy_rate"]
    real = {"name": "real (held-out)"}
    real["excess_kurtosis"] = float(np.mean(stylized.excess_kurtosis(test)))
    real["hill_tail_index"] = float(np.mean([stylized.hill_tail_index(test[:, a]) for a in range(test.shape[1])]))
    real["port_excess_kurtosis"] = float(stylized.excess_kurtosis(port_real))
    real["port_hill_tail_index"] = float(stylized.hill_tail_index(port_real))
    return rows + [real]


def wins_against(rows: list[dict], baseline: str) -> dict[str, int]:
    """For each generator, on how many HEADLINE scores (lower is better) it beats `baseline`."""
    by = {r["name"]: r for r in rows}
    if baseline not in by:
        return {}
    base = by[baseline]
    return {
        name: int(sum(r[k] < base[k] for k in HEADLINE if k in r and k in base))
        for name, r in by.items()
        if name not in (baseline, "real (held-out)")
    }


def risk_table(models: dict, history: np.ndarray, w: np.ndarray, n: int, seed: int = 0) -> list[dict]:
    """Portfolio VaR/ES (positive losses, log-return units) at each level in LEVELS and horizon in HORIZONS, from
    `n` scenarios started after the last day of `history`."""
    rows = []
    for name, model in models.items():
        paths = portfolio(model.simulate(n, max(HORIZONS), seed=seed, history=history), w)  # (n, 10)
        row = {"name": name}
        for h in HORIZONS:
            total = paths[:, :h].sum(axis=1)
            for level, a in LEVELS.items():
                var, es = var_es_from_samples(total, a)
                row[f"var_{level}_{h}d"], row[f"es_{level}_{h}d"] = float(var), float(es)
        rows.append(row)
    return rows


def stress_table(models: dict, returns: pd.DataFrame, w: np.ndarray, dates, horizon: int, n: int, seed: int = 0):
    """Stress scenarios from the state on each date: per generator the 5% / 50% quantile of the `horizon`-day
    portfolio return, the 99% VaR, and what really happened (when the data go that far)."""
    rows = []
    for d in dates:
        d = pd.Timestamp(d)
        hist = returns.loc[:d]
        if len(hist) < 300 or hist.index[-1] < d - pd.Timedelta(days=7):
            continue  # the date is outside the data
        after = returns.loc[d:].iloc[1 : horizon + 1]
        realised = float(portfolio(after.to_numpy(), w).sum()) if len(after) == horizon else float("nan")
        for name, model in models.items():
            total = portfolio(model.simulate(n, horizon, seed=seed, history=hist.to_numpy()), w).sum(axis=1)
            var, es = var_es_from_samples(total, 0.01)
            rows.append(
                {
                    "date": f"{hist.index[-1]:%Y-%m-%d}",
                    "name": name,
                    "q05": float(np.quantile(total, 0.05)),
                    "median": float(np.median(total)),
                    "var_99": float(var),
                    "es_99": float(es),
                    "realised": realised,
                    "realised_quantile": float(np.mean(total <= realised)) if np.isfinite(realised) else float("nan"),
                }
            )
    return rows


def backtest_rows(frame: pd.DataFrame, names, alpha: float) -> list[dict]:
    """Backtest statistics of each `<name>_var` / `<name>_es` column pair of `frame` against its `ret`."""
    rows = []
    for m in names:
        var, es = frame[f"{m}_var"].to_numpy(), frame[f"{m}_es"].to_numpy()
        if np.any(es <= 0):  # a generator whose 1-day ES is a gain on some day fails the backtest outright
            rows.append({"name": m, "error": f"ES <= 0 on {int(np.sum(es <= 0))} days"})
            continue
        rows.append({"name": m, **backtest_summary(frame["ret"].to_numpy(), var, es, alpha)})
    return rows


def backtest_metrics(rows: list[dict]) -> dict:
    """`backtest_rows` flattened for metrics.json: {<model>_<statistic>: value}. A row that failed outright
    ({"name", "error"}) keeps its reason in the report and gives `<model>_failed` = True here."""
    out = {}
    for row in rows:
        name = row["name"].replace("-", "_")
        if "error" in row:
            out[f"{name}_failed"] = True
            continue
        out.update({f"{name}_{k}": v if isinstance(v, bool) else float(v) for k, v in row.items() if k != "name"})
    return out


def deep_one_day(model, returns: np.ndarray, start: int, w: np.ndarray, alpha: float, samples: int, seed: int):
    """1-day portfolio VaR/ES (T - start,) each from `samples` draws given the real state the day before."""
    draws = portfolio(model.one_day(returns, start, n_samples=samples, seed=seed), w)  # (T - start, samples)
    return var_es_from_samples(draws, alpha)
