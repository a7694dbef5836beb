"""Dream steps: `DreamVecEnv` (one batched ensemble step for all N environments) against the real environment
vectorised at the same batch size.

ours: a LunarLander-v3 world model (the ensemble, the reward net and the termination classifier), normalised on
2,000 real random-policy steps (weights are not trained: the cost of a step does not depend on their values),
stepping N = 64 (the LunarLander preset's dream batch), 512 and (the preset's model compiled in bf16 only, to keep
the run short) 1024 environments at a time with uniformly random actions, auto-reset included; steps/s = N x
steps / time. Two model sizes: the LunarLander preset's 5 x (128, 128, 128) ensemble (`for_env("LunarLander-v3")`;
as accurate as 200 wide on held-out LunarLander transitions, `benchmarks/worlds_model_size.py`) and the generic
default 5 x (200, 200, 200).
peer: `gymnasium.vector.SyncVectorEnv` of N real LunarLander-v3 envs (Box2D physics, one Python env after another:
the usual way to vectorise on one CPU) under the same random actions, with its autoreset. Both on the CPU with the
threads the harness has; 200 vector steps after 20 warm-up steps, ours and the peer timed alternately 3 times
(the machine's speed drifts between minutes), medians. ratio = peer time / our time for the same number of steps
(= our steps/s over the real env's).
Variants: eager float32; --dream.compile (the whole dream step, `DreamCore.advance_given`: ensemble, reward and
termination nets, guards and auto-reset, as one `torch.compile` graph, compiled during the warm-up, not timed);
and compiled with --dream.precision bfloat16 (the nets under bf16 autocast, the state float32), which uses the
CPU's bf16 matrix instructions (AVX512-BF16 / AMX) where it has them.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

from apps.worlds.config import DreamConfig, ModelConfig, for_env
from apps.worlds.data import collect
from apps.worlds.envs import DreamVecEnv
from apps.worlds.model import WorldModel
from apps.worlds.spaces import make_env, spec_of

ENV, STEPS, REPEATS = "LunarLander-v3", 200, 3
BATCHES = (64, 512, 1024)  # the LunarLander preset's dream batch, and larger ones
VARIANTS = ((False, "float32"), (True, "float32"), (True, "bfloat16"))  # (--dream.compile, --dream.precision)
LARGEST_ONLY = ("LunarLander preset", True, "bfloat16")  # at the largest batch only the fastest variant (time)


def run() -> list[dict]:
    env = make_env(ENV)
    spec = spec_of(env, ENV)
    data = collect(env, 2000, seed=0)
    models = {"LunarLander preset": for_env(ENV).model, "generic default": ModelConfig()}
    rows = []
    for n in BATCHES:
        real = gym.vector.SyncVectorEnv([lambda: gym.make(ENV) for _ in range(n)])
        real.reset(seed=0)
        for label, mcfg in models.items():
            model = WorldModel(spec, mcfg)
            x, y, _ = model.tensors(data)
            model.set_normalizer(x, y)
            for compiled, precision in VARIANTS:
                if n == BATCHES[-1] and (label, compiled, precision) != LARGEST_ONLY:
                    continue
                rows.append(_row(model.eval(), label, data.obs, real, n, compiled, precision))
        real.close()
    return rows


def _row(model: WorldModel, label: str, starts, real, n: int, compiled: bool, precision: str) -> dict:
    cfg = DreamConfig(n_envs=n, horizon=1000, compile=compiled, precision=precision)
    dream = DreamVecEnv(model, starts, cfg, seed=0)
    dream.reset()
    actions = np.random.default_rng(0).integers(model.spec.n_actions, size=(STEPS, n))
    for a in actions[:20]:  # warm-up of both (and the compile)
        dream.step(a)
        real.step(a)
    t_ours, t_peer = [], []
    for _ in range(REPEATS):  # alternate, so that both see the same machine
        for env, times in ((dream, t_ours), (real, t_peer)):
            t = time.perf_counter()
            for a in actions:
                env.step(a)
            times.append(time.perf_counter() - t)
    t_ours, t_peer = float(np.median(t_ours)), float(np.median(t_peer))
    steps = n * STEPS
    hidden = ", ".join(str(h) for h in model.cfg.hidden)
    variant = (" compiled" if compiled else "") + (" bf16" if precision == "bfloat16" else "")
    return {
        "name": f"worlds: DreamVecEnv{variant} steps/s ({ENV}, {label} model, {n} envs)",
        "sizes": (
            f"{n} envs x {STEPS} steps, random actions; model {model.cfg.members} x ({hidden}) {model.cfg.act} ensemble"
            f"{', one torch.compile graph (--dream.compile)' if compiled else ', eager'}"
            f"{', bf16 autocast (--dream.precision bfloat16)' if precision == 'bfloat16' else ''}; "
            f"ours {steps / t_ours:,.0f} steps/s, real {steps / t_peer:,.0f} steps/s, CPU"
        ),
        "ours_s": t_ours,
        "peer": f"gymnasium SyncVectorEnv of {n} real {ENV}",
        "peer_s": t_peer,
        "ratio": t_peer / t_ours,
    }
