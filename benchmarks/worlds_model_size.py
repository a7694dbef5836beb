"""Accuracy of a LunarLander-v3 world model against its width: the check behind the preset's 5 x (128, 128, 128).

    python -m benchmarks.worlds_model_size                       # 128 and 200 wide, 3 seeds, about 4 min on 2 cores
    python -m benchmarks.worlds_model_size --widths 64,128,200 --seeds 0

A narrower ensemble steps the dream faster (`benchmarks/worlds.py`); this says what it costs in accuracy. Data:
30,000 random-policy steps to fit (seed 0) and 10,000 more, from other episodes, held out (seed 1). Each width is
fitted by the app's own `fit_model` with the LunarLander preset's schedule (only `--model.hidden` changes), per seed.
Scores on the held-out data (`apps.worlds.loop`): one-step `model_errors` (next-state RMSE in units of the sd of
the training state changes, reward RMSE, termination accuracy) and the open-loop error of the ensemble mean
replaying each held-out episode's actions from its first state (`open_loop`), RMSE over the 8 dimensions in units
of each dimension's sd over the held-out states, 10 and 50 steps ahead, averaged over the episodes that last 50.
Not part of `make bench` (it is not a speed ratio). Results: benchmarks/results/worlds-model-size-<date>.json / .md.
"""

from __future__ import annotations

import time
from datetime import date

import numpy as np

from apps.worlds.config import for_env
from apps.worlds.data import collect
from apps.worlds.loop import fit_model, model_errors, open_loop
from apps.worlds.spaces import make_env, spec_of
from benchmarks.harness import RESULTS, machine
from shared.atomic import atomic_write_json, atomic_write_text
from shared.cli import OneLineParser, run_main
from shared.config import replace
from shared.errors import ConfigError
from shared.runtime import set_cpu_threads

ENV, TRAIN_STEPS, HELD_OUT_STEPS, HORIZONS = "LunarLander-v3", 30_000, 10_000, (10, 50)


def open_loop_errors(model, held) -> dict[str, float]:
    """Mean open-loop error h steps ahead over the held-out episodes that last at least max(HORIZONS) steps."""
    ends = np.flatnonzero(held.terminated | held.truncated)
    starts = np.r_[0, ends[:-1] + 1]
    sd = held.obs.std(0) + 1e-6  # pooled: the leg-contact flags are constant within many episodes
    errs: dict[int, list[float]] = {h: [] for h in HORIZONS}
    for s, e in zip(starts, ends):
        if e - s < max(HORIZONS):
            continue
        real = np.vstack([held.obs[s : e + 1], held.next_obs[e][None]])
        pred = open_loop(model, real[0], held.actions[s : e + 1])
        err = np.sqrt((((pred - real) / sd) ** 2).mean(axis=1))
        for h in HORIZONS:
            errs[h].append(float(err[h]))
    return {f"open_loop_h{h}": float(np.mean(v)) for h, v in errs.items()} | {"episodes": len(errs[HORIZONS[0]])}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m benchmarks.worlds_model_size", description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", default="128,200", help="hidden widths to compare (3 layers each), comma-separated")
    p.add_argument("--seeds", default="0,1,2", help="fitting seeds, comma-separated")
    args = p.parse_args(argv)
    try:
        widths = [int(w) for w in args.widths.split(",")]
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise ConfigError("--widths and --seeds take comma-separated integers, e.g. --widths 128,200") from None
    if not widths or min(widths) < 1 or not seeds:
        raise ConfigError("give at least one positive width and one seed")
    set_cpu_threads()
    env = make_env(ENV)
    spec = spec_of(env, ENV)
    train, held = collect(env, TRAIN_STEPS, seed=0), collect(env, HELD_OUT_STEPS, seed=1)
    base = for_env(ENV)
    rows = []
    for width in widths:
        for seed in seeds:
            cfg = replace(base, model=replace(base.model, hidden=(width,) * 3))
            t = time.perf_counter()
            model, _ = fit_model(spec, cfg, train, seed, None, None)
            row = {"width": width, "seed": seed, "fit_s": time.perf_counter() - t}
            row |= model_errors(model, held) | open_loop_errors(model, held)
            rows.append(row)
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    keys = ("state_nrmse", "reward_rmse", "done_accuracy", "open_loop_h10", "open_loop_h50", "fit_s")
    means = {w: {k: float(np.mean([r[k] for r in rows if r["width"] == w])) for k in keys} for w in widths}
    stem = f"worlds-model-size-{date.today().isoformat()}"
    atomic_write_json(RESULTS / f"{stem}.json", {"machine": machine(), "env": ENV, "rows": rows, "means": means})
    lines = [
        f"# {ENV} world model accuracy by width ({date.today().isoformat()}, {machine()['name']})",
        "",
        f"5 members x 3 hidden layers, fitted with the preset's schedule on {TRAIN_STEPS:,} random steps, scored on "
        f"{HELD_OUT_STEPS:,} held-out ones; means over seeds {', '.join(map(str, seeds))}.",
        "",
        "| width | one-step state nRMSE | reward RMSE | termination accuracy | open-loop 10 | open-loop 50 | fit (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for w, m in means.items():
        lines.append(f"| {w} | " + " | ".join(f"{m[k]:.4f}" if k != "fit_s" else f"{m[k]:.0f}" for k in keys) + " |")
    atomic_write_text(RESULTS / f"{stem}.md", "\n".join(lines) + "\n")
    print(f"wrote {RESULTS / stem}.json and .md")
    return 0


if __name__ == "__main__":
    run_main(main)
