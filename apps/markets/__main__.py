"""`python -m apps.markets <command>`: multi-asset scenario generation, held-out evaluation, risk and reports.

    python -m apps.markets all                                   # train, generate, evaluate, report (make markets)
    python -m apps.markets data --tickers AAPL,MSFT,JPM          # load, align and cache prices; summary
    python -m apps.markets train                                 # fit the deep generators on the training years
    python -m apps.markets generate --scenarios 5000             # scenarios/<generator>.parquet from the last date
    python -m apps.markets evaluate                              # held-out stylized facts, memorisation, VaR/ES
    python -m apps.markets report                                # report.html from the evaluation
    python -m apps.markets backtest --models fhs,cvae            # rolling 1-day VaR/ES backtest of one series

Every command takes the same options (see `python -m apps.markets all --help`); outputs go to
runs/markets/<run-name>/.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from apps.markets import evaluate as ev
from apps.markets.baselines import MODELS as BASELINE_MODELS
from apps.markets.baselines import rolling_var_es
from apps.markets.classical import make_classical
from apps.markets.config import DEEP, BacktestConfig, MarketsConfig
from apps.markets.data import align, load_prices, log_returns
from apps.markets.deep import DeepEnsemble, DeepGenerator
from shared.atomic import atomic_path, atomic_write_json
from shared.cli import parse_config, run_main, say, split_command
from shared.errors import ConfigError, DataError
from shared.runs import RunDir

APP = "markets"


# ---------------------------------------------------------------- data


def load_returns(cfg) -> tuple[pd.DataFrame, np.ndarray]:
    """Aligned daily log returns (T, A) of the configured tickers / universe, and the weights (A,)."""
    prices = load_prices(
        list(cfg.tickers) or None, cfg.start or None, cfg.end or None, universe=cfg.universe, source=cfg.source
    )
    prices, dropped = align(prices)
    if dropped:
        say(f"aligned the assets on common trading days: dropped {dropped} days where some asset had no price")
    r = log_returns(prices)
    w = np.asarray(cfg.weights or [1.0 / r.shape[1]] * r.shape[1], dtype=float)
    return r, w


def split(cfg: MarketsConfig, r: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = pd.Timestamp(cfg.split)
    train, test = r[r.index < cut], r[r.index >= cut]
    if len(train) < 500 or len(test) < 4 * cfg.window:
        raise DataError(
            f"--split {cfg.split} leaves {len(train)} training and {len(test)} test days ({r.index[0]:%Y-%m-%d} to "
            f"{r.index[-1]:%Y-%m-%d}); need >= 500 and >= {4 * cfg.window}: move --split or widen --start/--end"
        )
    return train, test


def data(cfg: MarketsConfig) -> dict:
    run = RunDir.open(APP, cfg.run_name, cfg.runs_dir)
    run.save_config(cfg)
    r, w = load_returns(cfg)
    with atomic_path(run.path / "returns.parquet") as tmp:
        r.to_parquet(tmp)
    summary = {
        "assets": list(r.columns),
        "days": len(r),
        "first": f"{r.index[0]:%Y-%m-%d}",
        "last": f"{r.index[-1]:%Y-%m-%d}",
        "weights": w.tolist(),
        "annual_vol": (r.std() * np.sqrt(252)).round(4).to_dict(),
    }
    atomic_write_json(run.path / "data.json", summary)
    say(
        f"{len(r.columns)} assets, {len(r)} days {summary['first']} to {summary['last']}: "
        f"{run.path / 'returns.parquet'}"
    )
    return summary


# ---------------------------------------------------------------- generators


def deep_generator(cfg, name: str, train: pd.DataFrame, run: RunDir) -> DeepGenerator:
    """The fitted deep generator of the run: loaded from generators/<name>.safetensors, or trained (resumably)."""
    path = run.path / "generators" / f"{name}.safetensors"
    if path.is_file():
        return DeepGenerator.load(path, name, cfg.deep, train.shape[1])
    g = DeepGenerator(name, cfg.deep, cfg.train, run_dir=run.sub(f"train-{name}"))
    say(f"training {name} on {len(train)} days x {train.shape[1]} assets ({g.train_config.steps} steps)")
    g.fit(train.to_numpy())
    path.parent.mkdir(parents=True, exist_ok=True)
    g.save(path)
    return g


def generators(cfg: MarketsConfig, train: pd.DataFrame, run: RunDir, deep_only: bool = False) -> dict:
    out = {}
    for name in cfg.generators:
        if name in DEEP:
            out[name] = deep_generator(cfg, name, train, run)
        elif not deep_only:
            say(f"fitting {name}")
            out[name] = make_classical(name).fit(train.to_numpy())
    return out


def open_run(cfg: MarketsConfig):
    """The run folder (config saved), all returns (T, A), the weights (A,), and the train / test split."""
    run = RunDir.open(APP, cfg.run_name, cfg.runs_dir)
    run.save_config(cfg)
    r, w = load_returns(cfg)
    return run, r, w, *split(cfg, r)


def train_cmd(cfg: MarketsConfig) -> dict:
    run, _, _, train, _ = open_run(cfg)
    models = generators(cfg, train, run, deep_only=True)
    if not models:
        raise ConfigError("no deep generator in --generators; add cvae or cgan")
    return {"trained": list(models)}


def generate(cfg: MarketsConfig) -> dict:
    """Scenarios from the last date of the data: scenarios/<generator>.parquet (scenario, date, asset, return).
    Models are fitted on the training years, and their state is filtered through all the data."""
    run, r, _, train, _ = open_run(cfg)
    dates = pd.bdate_range(r.index[-1] + pd.offsets.BDay(1), periods=cfg.horizon)
    out = {}
    for name, model in generators(cfg, train, run).items():
        paths = model.simulate(cfg.scenarios, cfg.horizon, seed=cfg.seed, history=r.to_numpy())  # (S, H, A)
        frame = pd.DataFrame(
            {
                "scenario": np.repeat(np.arange(cfg.scenarios, dtype=np.int32), cfg.horizon * r.shape[1]),
                "date": np.tile(np.repeat(dates.to_numpy(), r.shape[1]), cfg.scenarios),
                "asset": pd.Categorical(np.tile(r.columns.to_numpy(), cfg.scenarios * cfg.horizon)),
                "return": paths.astype(np.float32).ravel(),
            }
        )
        path = run.path / "scenarios" / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp, index=False)
        out[name] = str(path)
        say(f"{name}: {cfg.scenarios} scenarios x {cfg.horizon} days -> {path}")
    return out


# ---------------------------------------------------------------- evaluation


def evaluate(cfg: MarketsConfig) -> dict:
    run, r, w, train, test = open_run(cfg)
    models = generators(cfg, train, run)
    tr, te = train.to_numpy(), test.to_numpy()

    paths = {}
    for name, model in tqdm(models.items(), desc="held-out paths", file=sys.stderr):
        paths[name] = model.simulate(cfg.eval_paths, len(te), seed=cfg.seed)
    say("scoring stylized facts and memorisation")
    facts = ev.held_out_scores(tr, te, paths, w, cfg.window, seed=cfg.seed)
    wins = ev.wins_against(facts, "garch-t")
    say("risk figures and stress scenarios")
    risk = ev.risk_table(models, r.to_numpy(), w, cfg.scenarios, seed=cfg.seed)
    stress = ev.stress_table(models, r, w, cfg.stress_dates, cfg.stress_horizon, cfg.scenarios, seed=cfg.seed)
    frame = backtest_frame(cfg, r, w, models, len(train))
    names = [c[:-4] for c in frame.columns if c.endswith("_var")]
    backtests = ev.backtest_rows(frame, names, cfg.backtest_alpha)

    with atomic_path(run.path / "backtest.csv") as tmp:
        frame.to_csv(tmp, index_label="date")
    np.savez_compressed(run.path / "eval_paths.npz", **{k: v[: min(len(v), 50)] for k, v in paths.items()})
    result = {
        "facts": facts,
        "wins_vs_garch_t": wins,
        "risk": risk,
        "stress": stress,
        "backtest": backtests,
        "train_days": len(train),
        "test_days": len(test),
        "assets": list(r.columns),
        "weights": w.tolist(),
        "split": cfg.split,
        "last_date": f"{r.index[-1]:%Y-%m-%d}",
    }
    atomic_write_json(run.path / "evaluation.json", result)
    run.write_metrics(flat_metrics(result))
    say(f"wrote {run.metrics_path} and {run.path / 'evaluation.json'}")
    return result


def backtest_frame(cfg: MarketsConfig, r: pd.DataFrame, w: np.ndarray, models: dict, start: int) -> pd.DataFrame:
    """1-day portfolio VaR/ES over the test period: classical baselines refitted on a rolling 1000-day window of
    the portfolio series (every 20 days); deep generators from their training-period fit, state updated daily."""
    port = pd.Series(ev.portfolio(r.to_numpy(), w), index=r.index)
    window = min(1000, start)
    classical = [m for m in ("hs", "garch-t", "fhs") if m in models]
    frame = rolling_var_es(port.iloc[start - window :], cfg.backtest_alpha, window, 20, classical or ("hs",))
    for name, model in models.items():
        if name in DEEP:
            var, es = ev.deep_one_day(
                model, r.to_numpy(), start, w, cfg.backtest_alpha, cfg.backtest_samples, seed=cfg.seed
            )
            frame[f"{name}_var"], frame[f"{name}_es"] = var, es
    return frame


def flat_metrics(result: dict) -> dict:
    m = {"train_days": result["train_days"], "test_days": result["test_days"]}
    for row in result["facts"]:
        for k, v in row.items():
            if k != "name" and isinstance(v, float) and np.isfinite(v):
                m[f"{row['name']}_{k}"] = v
    for name, n in result["wins_vs_garch_t"].items():
        m[f"{name}_wins_vs_garch_t"] = n
    for row in result["risk"]:
        m.update({f"{row['name']}_{k}": float(v) for k, v in row.items() if k != "name"})
    m.update(ev.backtest_metrics(result["backtest"]))
    return {k.replace("-", "_").replace(" ", "_").replace("(", "").replace(")", ""): v for k, v in m.items()}


def report_cmd(cfg: MarketsConfig) -> dict:
    from apps.markets.report import build_report

    run = RunDir.open(APP, cfg.run_name, cfg.runs_dir)
    path = run.path / "evaluation.json"
    if not path.is_file():
        raise ConfigError(f"{path} is missing; run `python -m apps.markets evaluate` first")
    result = json.loads(path.read_text())
    r, w = load_returns(cfg)
    page = build_report(cfg, run, result, r, w)
    page.save(run.report_path)
    say(f"wrote {run.report_path}")
    return {"report": str(run.report_path)}


def all_cmd(cfg: MarketsConfig) -> dict:
    data(cfg)
    train_cmd(cfg) if any(g in DEEP for g in cfg.generators) else None
    generate(cfg)
    evaluate(cfg)
    return report_cmd(cfg)


# ---------------------------------------------------------------- standalone backtest


def backtest(cfg: BacktestConfig) -> dict:
    from apps.markets.report import backtest_report

    run = RunDir.open(APP, cfg.run_name, cfg.runs_dir)
    run.save_config(cfg)
    r, w = load_returns(cfg)
    port = pd.Series(ev.portfolio(r.to_numpy(), w), index=r.index, name="portfolio")
    bars = []  # created at the first refit, so that errors before it print alone

    def progress(done, total):
        if not bars:
            bars.append(tqdm(total=total, desc="refits", file=sys.stderr, mininterval=1.0))
        bars[0].update(done - bars[0].n)

    classical = [m for m in cfg.models if m in BASELINE_MODELS] or ["hs"]
    frame = rolling_var_es(port, cfg.alpha, cfg.window, cfg.refit_every, classical, progress=progress)
    for b in bars:
        b.close()
    for name in (m for m in cfg.models if m in DEEP):
        frame[f"{name}_var"], frame[f"{name}_es"] = deep_rolling(cfg, name, r, w, run)
    with atomic_path(run.path / "backtest.csv") as tmp:
        frame.to_csv(tmp, index_label="date")
    rows = ev.backtest_rows(frame, list(cfg.models), cfg.alpha)
    metrics = {"backtest_days": len(frame), "alpha": cfg.alpha, **ev.backtest_metrics(rows)}
    run.write_metrics(metrics, merge=False)  # a re-run with other --models leaves no stale figures
    backtest_report(cfg, frame, rows).save(run.report_path)
    say(f"wrote {run.report_path}, {run.metrics_path} and {run.path / 'backtest.csv'}")
    return metrics


def deep_rolling(cfg: BacktestConfig, name: str, r: pd.DataFrame, w: np.ndarray, run: RunDir):
    """Out-of-sample 1-day VaR/ES of a deep generator: an ensemble of `cfg.ensemble` retrained on all days before
    each block of `deep_refit_every` days (the first block starts after `window` days), its state updated daily."""
    x = r.to_numpy()
    var, es = [], []
    blocks = list(range(cfg.window, len(x), cfg.deep_refit_every))
    for b, t0 in enumerate(tqdm(blocks, desc=f"{name} refits", file=sys.stderr)):
        t1 = min(t0 + cfg.deep_refit_every, len(x))
        dirs = [run.sub(f"train-{name}-{b}-{i}") for i in range(cfg.ensemble)]  # member i's checkpoints
        g = DeepEnsemble.fit(name, cfg.deep, cfg.train, x[:t0], cfg.ensemble, run_dirs=dirs)
        v, e = ev.deep_one_day(g, x[:t1], t0, w, cfg.alpha, cfg.samples, seed=cfg.seed + b)
        var.append(v)
        es.append(e)
    return np.concatenate(var), np.concatenate(es)


COMMANDS = {
    "all": (MarketsConfig, all_cmd),
    "data": (MarketsConfig, data),
    "train": (MarketsConfig, train_cmd),
    "generate": (MarketsConfig, generate),
    "evaluate": (MarketsConfig, evaluate),
    "report": (MarketsConfig, report_cmd),
    "backtest": (BacktestConfig, backtest),
}


def main(argv=None) -> int:
    got = split_command(argv, COMMANDS, "apps.markets", __doc__, "all")
    if got is None:
        return 0
    command, rest = got
    cls, fn = COMMANDS[command]
    cfg = parse_config(cls, rest, prog=f"python -m apps.markets {command}", description=fn.__doc__ or cls.__doc__)
    fn(cfg)
    return 0


if __name__ == "__main__":
    run_main(main)
