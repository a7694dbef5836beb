"""Model-free PPO on LunarLander-v3 with the RL Zoo's own settings, on the dream agent's real-step budget.

    python -m benchmarks.worlds_model_free                     # 3 seeds x 150,000 real steps, about 10 min on 2 cores
    python -m benchmarks.worlds_model_free --steps 300000 --seeds 0

`python -m apps.worlds run` trains its model-free baseline with the dream agent's PPO settings (`--agent.*`), as the
issue asks ("the same SB3 algorithm"). Those are sized for 64 dream envs (256 steps per env, batches of 1,024) and
give a real-env PPO only a few updates, so this script adds the fairer peer: the rl-baselines3-zoo LunarLander
hyperparameters (16 envs, 1,024 steps per env and update, batch 64, 4 epochs, gamma 0.999, GAE 0.98, entropy
0.01, lr 3e-4, 64x64 nets). Budgets are whole updates of 16,384 steps that fit under --steps (150,000 -> 147,456).
Evaluation as in the app: 20 real episodes, deterministic policy, episode seeds 1,000,000 + i.
Results: benchmarks/results/worlds-model-free-<date>.json / .md. Not part of `make bench` (not a speed ratio).
"""

from __future__ import annotations

import time
from datetime import date

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from apps.worlds.agents import evaluate, make_agent
from apps.worlds.config import AgentConfig
from apps.worlds.loop import FINAL_SEED
from apps.worlds.spaces import make_env
from benchmarks.harness import RESULTS, machine
from shared.atomic import atomic_write_json, atomic_write_text
from shared.cli import OneLineParser, run_main
from shared.errors import ConfigError
from shared.runtime import set_cpu_threads

ENV, N_ENVS = "LunarLander-v3", 16
ZOO = AgentConfig(
    algo="ppo",
    learning_rate=3e-4,
    gamma=0.999,
    net=(64, 64),
    n_steps=1024,
    batch_size=64,
    n_epochs=4,
    gae_lambda=0.98,
    ent_coef=0.01,
)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m benchmarks.worlds_model_free", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=150_000, help="real-step budget per seed (whole updates under it)")
    p.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated")
    args = p.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise ConfigError("--seeds takes comma-separated integers, e.g. --seeds 0,1,2") from None
    per_update = N_ENVS * ZOO.n_steps
    steps = args.steps // per_update * per_update
    if steps < per_update or not seeds:
        raise ConfigError(f"--steps must be at least one update ({per_update:,} steps) and --seeds non-empty")
    set_cpu_threads()
    rows = []
    for seed in seeds:
        t = time.perf_counter()
        venv = VecMonitor(DummyVecEnv([lambda: make_env(ENV) for _ in range(N_ENVS)]))
        agent = make_agent(ZOO, venv, seed)
        agent.learn(steps)
        returns = evaluate(agent, make_env(ENV), 20, seed=FINAL_SEED)
        row = {"seed": seed, "real_steps": int(agent.num_timesteps), "return_mean": float(returns.mean())}
        row |= {"return_std": float(returns.std()), "time_s": time.perf_counter() - t}
        rows.append(row)
        print({k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    means = np.array([r["return_mean"] for r in rows])
    stem = f"worlds-model-free-{date.today().isoformat()}"
    atomic_write_json(RESULTS / f"{stem}.json", {"machine": machine(), "env": ENV, "agent": vars(ZOO), "rows": rows})
    lines = [
        f"# Model-free PPO on {ENV}, RL Zoo settings ({date.today().isoformat()}, {machine()['name']})",
        "",
        f"`python -m benchmarks.worlds_model_free --steps {args.steps} --seeds {args.seeds}`: {N_ENVS} envs, "
        f"{steps:,} real steps per seed; 20 evaluation episodes, deterministic policy.",
        "",
        "| seed | real steps | return (mean +- sd over 20 episodes) | time (s) |",
        "|---|---|---|---|",
        *(
            f"| {r['seed']} | {r['real_steps']:,} | {r['return_mean']:.1f} +- {r['return_std']:.1f} | "
            f"{r['time_s']:.0f} |"
            for r in rows
        ),
        "",
        f"Mean over seeds: {means.mean():.1f} (sd {means.std():.1f}).",
    ]
    atomic_write_text(RESULTS / f"{stem}.md", "\n".join(lines) + "\n")
    print(f"wrote {RESULTS / stem}.json and .md")
    return 0


if __name__ == "__main__":
    run_main(main)
