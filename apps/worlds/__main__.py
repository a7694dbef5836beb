"""`python -m apps.worlds <command>`: world models of Gymnasium environments, and SB3 agents trained in their dreams.

    python -m apps.worlds run --env CartPole-v1        # the whole loop, 3 seeds + model-free baseline (make worlds)
    python -m apps.worlds run --env Pendulum-v1        # Box actions: SAC, reward learned
    python -m apps.worlds run --env MountainCarContinuous-v0 --seeds 0   # any env with a flat Box observation
    python -m apps.worlds run --env CarRacing-v3 --preset tiny   # pixels: VAE + MDN-RNN + agent in the latent dream

Step by step (one seed, files at the run root runs/worlds/<run-name>/):

    python -m apps.worlds collect --env CartPole-v1    # real steps: random policy, or the run's agent once trained
    python -m apps.worlds fit                          # the probabilistic ensemble -> model.safetensors/.json
    python -m apps.worlds dream                        # step the batched dream: steps/s, samples/dream.csv
    python -m apps.worlds train                        # an SB3 agent trained only in the dream -> agent.zip
    python -m apps.worlds evaluate                     # real-environment returns -> metrics.json
    python -m apps.worlds report                       # report.html

Every command takes the same options (`python -m apps.worlds run --help`); defaults depend on --env (tuned for
CartPole-v1, Pendulum-v1, LunarLander-v3) and on --preset tiny|default. The dream is also a Gymnasium env:
`import apps.worlds; gymnasium.make("genlab/Dream-CartPole-v1", model="runs/worlds/<run>/model")`.
"""

from __future__ import annotations

import json
import time
from multiprocessing import get_context

import gymnasium as gym
import numpy as np
import pandas as pd
from stable_baselines3.common.vec_env import VecMonitor

from apps.worlds import loop
from apps.worlds.agents import evaluate, load_policy, make_agent, policy_fn, save_agent, set_threads
from apps.worlds.config import WorldsConfig, for_env
from apps.worlds.data import Transitions, collect
from apps.worlds.envs import DreamVecEnv, load_starts, save_starts, start_states
from apps.worlds.model import WorldModel
from apps.worlds.pixels import PixelConfig, run_pixels
from apps.worlds.pixels import preset as pixel_preset
from apps.worlds.report import build_report
from apps.worlds.spaces import make_env, spec_of
from shared.atomic import atomic_path
from shared.cli import command_parser, early_options, parse_config, run_main, say, split_command
from shared.config import replace
from shared.errors import ConfigError, DataError
from shared.runs import RunDir

APP = "worlds"


def open_run(cfg: WorldsConfig) -> RunDir:
    run = RunDir.for_config(APP, cfg)
    set_threads()
    return run


def _env_and_spec(cfg: WorldsConfig):
    env = make_env(cfg.env)
    return env, spec_of(env, cfg.env)


# ---------------------------------------------------------------------------------------------------- step by step


def cmd_collect(cfg: WorldsConfig) -> None:
    """Collect real steps into data.npz: --initial-steps with the random policy the first time, then
    --steps-per-round with the run's agent (if one was trained) each time; never beyond --real-step-cap."""
    run = open_run(cfg)
    env, spec = _env_and_spec(cfg)
    path = run.path / "data.npz"
    data = Transitions.load(path) if path.is_file() else None
    have = 0 if data is None else len(data)
    want = min(cfg.initial_steps if data is None else cfg.steps_per_round, cfg.real_step_cap - have)
    if want <= 0:
        raise ConfigError(f"the run already has {have} real steps (--real-step-cap {cfg.real_step_cap}); raise the cap")
    policy = None
    if (run.path / "agent.safetensors").is_file():
        model = WorldModel.load(run.path / "model", expect=spec)
        venv = DreamVecEnv(model, load_starts(run.path / "model"), cfg.dream)
        policy = policy_fn(load_policy(make_agent(cfg.agent, venv, cfg.seeds[0]), run.path / "agent"))
    new = collect(env, want, seed=cfg.seeds[0] * 7919 + have, policy=policy)
    data = new if data is None else data.concat(new)
    data.save(path)
    who = "the agent" if policy else "the random policy"
    say(f"collected {want} real steps with {who}; {path} holds {len(data)} ({len(new.episode_returns)} episodes)")


def cmd_fit(cfg: WorldsConfig) -> None:
    """Fit the probabilistic ensemble to data.npz (warm-started from the run's model if there is one)."""
    run = open_run(cfg)
    _, spec = _env_and_spec(cfg)
    data = Transitions.load(run.path / "data.npz")
    warm = WorldModel.load(run.path / "model", expect=spec) if (run.path / "model.json").is_file() else None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    model, errors = loop.fit_model(spec, cfg, data, cfg.seeds[0], run.path / f"fit-{stamp}", warm)
    model.save(run.path / "model")
    save_starts(run.path / "model", start_states(data, cfg.dream.start))
    run.write_metrics({f"model_{k}": v for k, v in errors.items()})
    say(f"fitted on {len(data)} transitions: " + ", ".join(f"{k} {v:.4f}" for k, v in errors.items()))


def _dream(cfg: WorldsConfig, run: RunDir, spec) -> DreamVecEnv:
    model = WorldModel.load(run.path / "model", expect=spec)
    return DreamVecEnv(model, load_starts(run.path / "model"), cfg.dream, seed=cfg.seeds[0])


def cmd_dream(cfg: WorldsConfig) -> None:
    """Step the dream with the run's agent (random actions before one is trained): dream returns, steps per
    second of the batched dream against the real environment at the same batch size, samples/dream.csv."""
    run = open_run(cfg)
    env, spec = _env_and_spec(cfg)
    venv = VecMonitor(_dream(cfg, run, spec))
    agent = None
    if (run.path / "agent.safetensors").is_file():
        agent = load_policy(make_agent(cfg.agent, venv, cfg.seeds[0]), run.path / "agent")
    obs, rows, steps = venv.reset(), [], max(cfg.dream.horizon, 200)
    rng = np.random.default_rng(cfg.seeds[0])
    returns: list[float] = []
    t0 = time.perf_counter()
    for t in range(steps):
        if agent is not None:
            actions, _ = agent.predict(obs, deterministic=True)
        elif spec.action_kind == "discrete":
            actions = rng.integers(spec.n_actions, size=venv.num_envs)
        else:
            actions = rng.uniform(spec.act_low, spec.act_high, (venv.num_envs, spec.act_dim)).astype(np.float32)
        obs, reward, done, infos = venv.step(actions)
        returns += [i["episode"]["r"] for i in infos if "episode" in i]
        rows.append([t, *obs[0].tolist(), float(reward[0]), bool(done[0])])
    rate = steps * venv.num_envs / (time.perf_counter() - t0)
    cols = ["t", *[f"obs_{i}" for i in range(spec.obs_dim)], "reward", "done"]
    with atomic_path(run.samples / "dream.csv") as tmp:
        pd.DataFrame(rows, columns=cols).to_csv(tmp, index=False)
    run.write_metrics({"dream_steps_per_s": rate, "dream_return": float(np.mean(returns)) if returns else float("nan")})
    say(
        f"{steps} x {venv.num_envs} dream steps at {rate:,.0f} steps/s"
        + (f"; dream return {np.mean(returns):.1f} over {len(returns)} episodes" if returns else "")
        + f"; trajectory of env 0 in {run.samples / 'dream.csv'}"
    )


def cmd_train(cfg: WorldsConfig) -> None:
    """Train (or continue training) an SB3 agent only in the dream for --agent.dream-steps steps."""
    run = open_run(cfg)
    _, spec = _env_and_spec(cfg)
    venv = VecMonitor(_dream(cfg, run, spec))
    agent = make_agent(cfg.agent, venv, cfg.seeds[0])
    if (run.path / "agent.safetensors").is_file():
        load_policy(agent, run.path / "agent")
    agent.learn(cfg.agent.dream_steps)
    save_agent(agent, run.path / "agent")
    rets = [ep["r"] for ep in agent.ep_info_buffer]
    say(f"trained {cfg.agent.dream_steps} dream steps; dream return {np.mean(rets) if rets else float('nan'):.1f}")


def cmd_evaluate(cfg: WorldsConfig) -> None:
    """Real-environment evaluation: the run's agent (step-by-step commands), or the summary of a `run`."""
    run = open_run(cfg)
    finals = sorted(run.path.glob("seed-*/final.json"))
    if finals:
        seeds = [json.loads(p.read_text()) for p in finals]
        bases = [json.loads(p.read_text()) for p in sorted(run.path.glob("baseline-*.json"))]
        m = run.write_metrics(loop.summarise(cfg, seeds, bases))
        say(f"{cfg.env}: real return {m['real_return']:.1f} over {len(seeds)} seeds")
        return
    env, spec = _env_and_spec(cfg)
    venv = _dream(cfg, run, spec)
    agent = load_policy(make_agent(cfg.agent, venv, cfg.seeds[0]), run.path / "agent")
    returns = evaluate(agent, env, cfg.eval_episodes, seed=loop.FINAL_SEED)
    data = Transitions.load(run.path / "data.npz")
    run.write_metrics(
        {
            "env": cfg.env,
            "real_return": float(returns.mean()),
            "real_return_std_episodes": float(returns.std()),
            "real_steps_max": len(data),
            "eval_episodes": cfg.eval_episodes,
        }
    )
    say(f"real return {returns.mean():.1f} +- {returns.std():.1f} over {cfg.eval_episodes} episodes")


def cmd_report(cfg: WorldsConfig) -> None:
    """Write report.html from what the run holds."""
    run = open_run(cfg)
    if not run.metrics_path.is_file():
        raise DataError(f"{run.path} has no metrics.json yet; run `python -m apps.worlds run --env {cfg.env}` first")
    say(f"report: {build_report(run, cfg)}")


# ---------------------------------------------------------------------------------------------------- the loop


def cmd_run(cfg: WorldsConfig) -> None:
    """The whole loop for every seed (collect -> fit -> train in the dream -> evaluate, repeated), the model-free
    baseline on the same real-step budget, metrics.json and report.html."""
    run = open_run(cfg)
    _env_and_spec(cfg)  # fail early on an unknown id or an unsupported space
    t0 = time.perf_counter()
    tasks = [("seed", cfg, s, run.path, 0) for s in cfg.seeds]
    if cfg.baseline:
        tasks += [("baseline", cfg, s, run.path, cfg.real_step_cap) for s in cfg.seeds]
    if cfg.workers > 1 and len(tasks) > 1:
        with get_context("spawn").Pool(min(cfg.workers, len(tasks))) as pool:
            results = pool.map(loop.run_task, tasks, chunksize=1)
    else:
        results = [loop.run_task(t) for t in tasks]
    seeds = [r for k, r in results if k == "seed"]
    bases = [r for k, r in results if k == "baseline"]
    m = run.write_metrics({**loop.summarise(cfg, seeds, bases), "wall_s": time.perf_counter() - t0})
    say(
        f"{cfg.env}: dream-trained {m['algo']} real return {m['real_return']:.1f} (min seed "
        f"{m['real_return_min_seed']:.1f}) with <= {m['real_steps_max']} real steps; "
        + (f"model-free {m['baseline_return']:.1f} with {m['baseline_steps']}; " if bases else "")
        + f"report: {build_report(run, cfg)}"
    )


def cmd_pixels(cfg: PixelConfig, run_name: str, runs_dir: str, seed: int) -> None:
    """The World Models pipeline for an image-observation environment (CarRacing-v3): collect random rollouts,
    fit the VAE and the MDN-RNN, train the agent in the latent dream, evaluate it in the real environment."""
    run = RunDir.open(APP, run_name, runs_dir)
    set_threads()
    t0 = time.perf_counter()
    out = run_pixels(cfg, run.path / "pixels", seed)
    flat = {f"pixels_{k}": v for k, v in out.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    run.write_metrics({"env": cfg.env, "pixels_preset": cfg.preset, **flat, "wall_s": time.perf_counter() - t0})
    say(
        f"{cfg.env}: dream-trained agent real return {out.get('real_return_mean', float('nan')):.1f} with "
        f"{out.get('real_steps', 0)} real steps; report: {build_report(run, for_env(cfg.env))}"
    )


def _is_pixel_env(env_id: str) -> bool:
    space = make_env(env_id).observation_space
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3


def _pixel_main(command: str, argv: list[str], preset_name: str, env_id: str) -> None:
    if command not in ("run", "report"):
        raise ConfigError(
            f"{env_id} has image observations: use `python -m apps.worlds run --env {env_id}` (the World Models "
            f"pipeline runs every step); `{command}` is for vector-observation environments"
        )
    known = early_options(argv, run_name=env_id.lower(), runs_dir="runs", seed="0")
    parser = command_parser("apps.worlds", command, cmd_pixels)
    parser.add_argument("--run-name", default=env_id.lower(), help="run directory runs/worlds/<run-name>/")
    parser.add_argument("--runs-dir", default="runs", help="parent folder of the run directories")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rollouts, the models and the agent")
    cfg = parse_config(PixelConfig, argv, defaults=replace(pixel_preset(preset_name), env=env_id), parser=parser)
    if command == "report":
        run = RunDir.open(APP, known.run_name, known.runs_dir)
        say(f"report: {build_report(run, for_env(env_id))}")
        return
    cmd_pixels(cfg, known.run_name, known.runs_dir, int(known.seed))


COMMANDS = {
    "run": cmd_run,
    "collect": cmd_collect,
    "fit": cmd_fit,
    "dream": cmd_dream,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "report": cmd_report,
}


def main(argv=None) -> int:
    got = split_command(argv, COMMANDS, "apps.worlds", __doc__, "run")
    if got is None:
        return 0
    command, rest = got
    fn = COMMANDS[command]
    known = early_options(rest, preset="default", env="CartPole-v1")
    if _is_pixel_env(known.env):
        _pixel_main(command, rest, known.preset, known.env)
        return 0
    parser = command_parser("apps.worlds", command, fn)
    cfg = parse_config(WorldsConfig, rest, defaults=for_env(known.env, known.preset), parser=parser)
    fn(cfg)
    return 0


if __name__ == "__main__":
    run_main(main)
