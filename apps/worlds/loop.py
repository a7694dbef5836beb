"""The model-based loop, one seed at a time: collect real data -> fit the world model -> train the agent only in the
dream -> evaluate in the real environment -> repeat; plus the model-free baseline on the same real-step budget.

Layout of one seed (resumable at round granularity: a finished round is never redone):

    runs/worlds/<run>/seed-<s>/data.npz                 every real transition collected so far
                              round-<r>/model.*          world model (+ .starts.npy, the real states dreams start from)
                              round-<r>/agent.*          SB3 agent (.zip) and its policy weights (.safetensors)
                              round-<r>/result.json      real steps so far, evaluation returns, model errors, timings
                              final.json                 the final agent's evaluation on fresh episode seeds
                              fit-<r>/                   the model fit's checkpoints and train.jsonl
    runs/worlds/<run>/baseline-<s>.json                 model-free agent: learning curve and final evaluation

Real steps are counted by collection only (evaluation episodes are not training data, as in the zoo's figures).
Per-round evaluations use episode seeds 10_000 + 100 r + i and decide early stopping (`early_stop`, at
`target_return`); the reported figure is a separate evaluation of the final agent on seeds 1_000_000 + i, never used
for any decision.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from apps.worlds.agents import evaluate, load_policy, make_agent, policy_fn, resolve_algo, save_agent
from apps.worlds.config import WorldsConfig
from apps.worlds.data import Transitions, collect
from apps.worlds.envs import DreamVecEnv, load_starts, save_starts, start_states
from apps.worlds.model import BootstrapBatches, WorldModel, holdout_split
from apps.worlds.spaces import EnvSpec, make_env, spec_of
from shared.atomic import atomic_write_json
from shared.cli import say
from shared.config import replace
from shared.runs import RunDir
from shared.runtime import seed_everything
from shared.training import fit

FINAL_SEED = 1_000_000


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


# ---------------------------------------------------------------------------------------------------- pieces


def fit_model(
    spec: EnvSpec, cfg: WorldsConfig, data: Transitions, seed: int, fit_dir: Path | None, warm: WorldModel | None
) -> tuple[WorldModel, dict]:
    """Fit the ensemble to `data` (warm-started from `warm`); returns the model and holdout errors."""
    seed_everything(seed)  # the initial weights come from the global stream
    model = WorldModel(spec, cfg.model)
    if warm is not None:
        model.load_state_dict(warm.state_dict())
    x, y, b = model.tensors(data)
    train_idx, hold_idx = holdout_split(len(x), cfg.holdout, seed)
    model.set_normalizer(x[train_idx], y[train_idx])
    tc = replace(cfg.model_train, seed=seed, progress=False, device="cpu", resume="latest")
    batches = BootstrapBatches(x[train_idx], y[train_idx], b[train_idx], cfg.model.members, tc.batch_size, seed)
    model = fit(model, batches, tc, run_dir=fit_dir, desc="world model").model.eval()
    errors = {}
    if len(hold_idx):
        errors = model_errors(model, data.subset(hold_idx))
    return model, errors


def model_errors(model: WorldModel, data: Transitions) -> dict:
    """One-step errors of the ensemble mean on `data`: next-state RMSE in units of the per-dimension sd of the
    training transitions' state changes (about 1 = no better than predicting the mean change), reward RMSE,
    termination accuracy."""
    obs, act = torch.as_tensor(data.obs), torch.as_tensor(data.actions)
    nxt, rew, p_done = model.mean_step(obs, act)
    true = torch.as_tensor(data.next_obs)
    delta_sd = model.ensemble.y_std  # sd of the training transitions' changes (stable on small holdouts)
    done_pred = p_done > 0.5
    return {
        "state_nrmse": float((((nxt - true) / delta_sd) ** 2).mean().sqrt()),
        "reward_rmse": float(((rew - torch.as_tensor(data.rewards)) ** 2).mean().sqrt()),
        "done_accuracy": float((done_pred.numpy() == data.terminated).mean()),
    }


def open_loop(model: WorldModel, obs0: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """The ensemble mean rolled open-loop from obs0 (d,) under actions (T, ...) -> predicted obs (T + 1, d)."""
    out = [torch.as_tensor(obs0, dtype=torch.float32)[None]]
    low = torch.tensor(model.spec.obs_low, dtype=torch.float32)
    high = torch.tensor(model.spec.obs_high, dtype=torch.float32)
    for a in actions:
        nxt, _, _ = model.mean_step(out[-1], torch.as_tensor(np.asarray(a))[None])
        out.append(torch.maximum(torch.minimum(nxt, high), low))
    return torch.cat(out).numpy()


def trajectory_check(model: WorldModel, env, agent, seed: int, horizon: int = 200) -> dict:
    """One real episode with the agent; the model replays its actions from the same start. Returns both
    trajectories and the multi-step error per step: RMSE over dims, each in units of its sd over the model's
    training states (not this episode's: a dimension constant in one episode, such as LunarLander's leg flags
    before touchdown, would blow up the ratio)."""
    obs, _ = env.reset(seed=seed)
    real, actions = [obs], []
    for _ in range(horizon):
        a, _ = agent.predict(obs, deterministic=True)
        obs, _, term, trunc, _ = env.step(a)
        actions.append(a)
        real.append(obs)
        if term or trunc:
            break
    real = np.asarray(real, np.float32)
    pred = open_loop(model, real[0], np.asarray(actions))
    sd = model.ensemble.x_std[: model.spec.obs_dim].numpy()
    err = np.sqrt((((pred - real) / sd) ** 2).mean(axis=1))
    at = {f"h{h}": float(err[h]) for h in (1, 10, 50) if h < len(err)}
    return {"real": real.tolist(), "model": pred.tolist(), "error": err.tolist(), **at}


# ---------------------------------------------------------------------------------------------------- one seed


def stops_early(cfg: WorldsConfig, res: dict) -> bool:
    """Whether a round's result `res` ends its seed's loop: --early-stop on and its evaluation at the target."""
    return cfg.early_stop and res["eval_mean"] >= cfg.target_return


def run_seed(cfg: WorldsConfig, seed: int, run: RunDir) -> dict:
    """The whole loop for one seed; returns the final evaluation (also written to seed-<s>/final.json)."""
    torch.set_num_threads(1)
    folder = run.path / f"seed-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    if (done := _json(folder / "final.json")) is not None:
        return done
    env = make_env(cfg.env)
    spec = spec_of(env, cfg.env)
    data_path = folder / "data.npz"
    data = Transitions.load(data_path) if data_path.is_file() else None
    model = agent = None
    rounds: list[dict] = []
    for r in range(cfg.rounds):
        rdir = folder / f"round-{r}"
        if (res := _json(rdir / "result.json")) is not None:  # finished earlier: reload and move on
            model = WorldModel.load(rdir / "model", expect=spec)
            venv = DreamVecEnv(model, load_starts(rdir / "model"), cfg.dream, seed=seed)
            agent = load_policy(make_agent(cfg.agent, VecMonitor(venv), seed), rdir / "agent")
            rounds.append(res)
            if stops_early(cfg, res):
                break
            continue
        t0 = time.perf_counter()
        # 1. real data: random policy first, then the current agent (stochastic, for exploration). `expected` is
        # what the data holds after this round's collection, so a round interrupted after collecting does not
        # collect again when resumed.
        expected = min(cfg.real_step_cap, cfg.initial_steps + r * cfg.steps_per_round)
        if r > 0 and expected <= rounds[-1]["real_steps"]:
            say(f"[{cfg.env} seed {seed}] real-step cap {cfg.real_step_cap} reached; stopping after round {r - 1}")
            break
        have = 0 if data is None else len(data)
        if expected > have:
            new = collect(
                env, expected - have, seed=seed * 7919 + r, policy=None if agent is None else policy_fn(agent)
            )
            data = new if data is None else data.concat(new)
            data.save(data_path)
        t1 = time.perf_counter()
        # 2. the world model, warm-started from the previous round
        model, errors = fit_model(spec, cfg, data, seed * 1000 + r, rdir.parent / f"fit-{r}", model)
        starts = start_states(data, cfg.dream.start)
        rdir.mkdir(exist_ok=True)
        model.save(rdir / "model")
        save_starts(rdir / "model", starts)
        t2 = time.perf_counter()
        # 3. the agent, only in the dream
        venv = VecMonitor(DreamVecEnv(model, starts, cfg.dream, seed=seed * 1000 + r))
        if agent is None:
            agent = make_agent(cfg.agent, venv, seed)
        else:
            agent.set_env(venv)
        agent.learn(cfg.agent.dream_steps, reset_num_timesteps=False)
        dream_returns = [ep["r"] for ep in agent.ep_info_buffer]
        save_agent(agent, rdir / "agent")
        t3 = time.perf_counter()
        # 4. the real environment
        returns = evaluate(agent, env, cfg.eval_episodes, seed=10_000 + 100 * r)
        res = {
            "round": r,
            "real_steps": len(data),
            "eval_mean": float(returns.mean()),
            "eval_std": float(returns.std()),
            "collect_returns": data.episode_returns[-20:],
            "dream_return": float(np.mean(dream_returns)) if dream_returns else float("nan"),
            "dream_steps": cfg.agent.dream_steps,
            **{f"model_{k}": v for k, v in errors.items()},
            "time_collect_s": t1 - t0,
            "time_fit_s": t2 - t1,
            "time_agent_s": t3 - t2,
            "time_eval_s": time.perf_counter() - t3,
        }
        atomic_write_json(rdir / "result.json", res)
        rounds.append(res)
        say(
            f"[{cfg.env} seed {seed}] round {r}: {len(data)} real steps, real return {res['eval_mean']:.1f} "
            f"+- {res['eval_std']:.1f} (dream {res['dream_return']:.1f}), model state nRMSE "
            f"{errors.get('state_nrmse', float('nan')):.3f}, {time.perf_counter() - t0:.0f}s"
        )
        if stops_early(cfg, res):
            break
    if agent is None or model is None:
        raise RuntimeError("the loop ran no round")
    final = evaluate(agent, env, cfg.eval_episodes, seed=FINAL_SEED)
    out = {
        "seed": seed,
        "algo": resolve_algo(cfg.agent, env.action_space),
        "real_steps": rounds[-1]["real_steps"],
        "rounds": len(rounds),
        "return_mean": float(final.mean()),
        "return_std": float(final.std()),
        "returns": final.tolist(),
        "curve": [[x["real_steps"], x["eval_mean"], x["eval_std"]] for x in rounds],
        "trajectory": trajectory_check(model, env, agent, seed=FINAL_SEED),
        "model_state_nrmse": rounds[-1].get("model_state_nrmse", float("nan")),
        "model_reward_rmse": rounds[-1].get("model_reward_rmse", float("nan")),
        "dream_time_s": float(sum(x["time_agent_s"] for x in rounds)),
        "dream_steps": int(sum(x["dream_steps"] for x in rounds)),
    }
    atomic_write_json(folder / "final.json", out)
    return out


# ---------------------------------------------------------------------------------------------------- baseline


class _Curve(BaseCallback):
    """Evaluate the model-free agent in the real environment `points` times during training."""

    def __init__(self, env, every: int, episodes: int):
        super().__init__()
        self.env, self.every, self.episodes, self.next = env, every, episodes, every
        self.curve: list[list[float]] = []

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next:
            self.next += self.every
            r = evaluate(self.model, self.env, self.episodes, seed=20_000 + len(self.curve) * 100)
            self.curve.append([int(self.num_timesteps), float(r.mean()), float(r.std())])
        return True


def run_baseline(cfg: WorldsConfig, seed: int, run: RunDir, steps: int) -> dict:
    """The same algorithm trained model-free on the real environment for `steps` real steps."""
    torch.set_num_threads(1)
    path = run.path / f"baseline-{seed}.json"
    if (done := _json(path)) is not None and done.get("real_steps") == steps:
        return done
    t0 = time.perf_counter()
    eval_env = make_env(cfg.env)
    algo = resolve_algo(cfg.agent, eval_env.action_space)
    n_envs = 8 if algo == "ppo" else 1
    venv = VecMonitor(DummyVecEnv([lambda: make_env(cfg.env) for _ in range(n_envs)]))
    agent = make_agent(cfg.agent, venv, seed)
    cb = _Curve(eval_env, every=max(steps // 5, 1), episodes=5)
    agent.learn(steps, callback=cb)
    final = evaluate(agent, eval_env, cfg.eval_episodes, seed=FINAL_SEED)
    out = {
        "seed": seed,
        "algo": algo,
        "real_steps": steps,
        "return_mean": float(final.mean()),
        "return_std": float(final.std()),
        "returns": final.tolist(),
        "curve": cb.curve,
        "time_s": time.perf_counter() - t0,
    }
    atomic_write_json(path, out)
    say(f"[{cfg.env} baseline seed {seed}] model-free {algo} on {steps} real steps: {out['return_mean']:.1f}")
    return out


def run_task(args: tuple) -> tuple[str, dict]:
    """("seed" | "baseline", cfg, seed, run folder, baseline steps) -> (kind, result); a worker-process entry."""
    kind, cfg, seed, root, steps = args
    torch.set_num_threads(1)
    run = RunDir(Path(root))
    if kind == "seed":
        return kind, run_seed(cfg, seed, run)
    return kind, run_baseline(cfg, seed, run, steps)


# ---------------------------------------------------------------------------------------------------- summary


def summarise(cfg: WorldsConfig, seeds: list[dict], baselines: list[dict]) -> dict:
    """The flat metrics.json entries of a run."""
    means = np.array([s["return_mean"] for s in seeds])
    steps = np.array([s["real_steps"] for s in seeds])
    m = {
        "env": cfg.env,
        "algo": seeds[0]["algo"],
        "seeds": len(seeds),
        "real_return": float(means.mean()),
        "real_return_std_seeds": float(means.std()),
        "real_return_min_seed": float(means.min()),
        "real_return_std_episodes": float(np.mean([s["return_std"] for s in seeds])),
        "real_steps_max": int(steps.max()),
        "real_steps_mean": float(steps.mean()),
        "real_step_cap": cfg.real_step_cap,
        "target_return": cfg.target_return,
        "seeds_at_target": int((means >= cfg.target_return).sum()),
        "eval_episodes": cfg.eval_episodes,
        "model_state_nrmse": float(np.mean([s["model_state_nrmse"] for s in seeds])),
        "model_reward_rmse": float(np.mean([s["model_reward_rmse"] for s in seeds])),
        "model_h10_error": float(np.mean([s["trajectory"].get("h10", np.nan) for s in seeds])),
        "model_h50_error": float(np.mean([s["trajectory"].get("h50", np.nan) for s in seeds])),
        "dream_steps_per_s_in_training": float(
            sum(s["dream_steps"] for s in seeds) / max(sum(s["dream_time_s"] for s in seeds), 1e-9)
        ),
        "zoo_return": cfg.zoo_return,
        "zoo_steps": cfg.zoo_steps,
    }
    if cfg.zoo_steps:
        m["real_steps_ratio_to_zoo"] = float(steps.max() / cfg.zoo_steps)
    if baselines:
        b = np.array([x["return_mean"] for x in baselines])
        m.update(
            baseline_return=float(b.mean()),
            baseline_return_std_seeds=float(b.std()),
            baseline_steps=int(baselines[0]["real_steps"]),
        )
    return m
