"""Dream steps: `DreamVecEnv` (one batched ensemble step for all N environments) against the real environment
vectorised at the same batch size.

ours: a LunarLander-v3 world model of the default size (5 members x 3 hidden layers of 200, SiLU, plus the reward
net and the termination classifier), normalised on 2,000 real random-policy steps (weights are not trained: the
cost of a step does not depend on their values), stepping N = 64 (the LunarLander preset's dream batch) and N = 512
environments at a time with uniformly random actions, auto-reset included; steps/s = N x steps / time.
peer: `gymnasium.vector.SyncVectorEnv` of N real LunarLander-v3 envs (Box2D physics, one Python env after another:
the usual way to vectorise on one CPU) under the same random actions, with its autoreset. Both on the CPU with the
threads the harness has; 200 vector steps after 20 warm-up steps, median of 3. ratio = peer time / our time for
the same number of steps (= our steps/s over the real env's).
compiled: the same dream with --dream.compile, the ensemble, reward and termination nets as one `torch.compile`
graph (`WorldModel.compile_transition`; compiled during the warm-up, not timed): the issue's "one compiled graph"
option for the batched ensemble step, measured beside the eager step in the same run.
bf16: the compiled dream with --dream.precision bfloat16 (the nets under bf16 autocast, the state float32), which
uses the CPU's AMX matrix units where it has them.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from apps.worlds.config import DreamConfig, ModelConfig
from apps.worlds.data import collect
from apps.worlds.envs import DreamVecEnv
from apps.worlds.model import WorldModel
from apps.worlds.spaces import make_env, spec_of
from benchmarks.harness import median_time

ENV, STEPS = "LunarLander-v3", 200
BATCHES = (64, 512)  # the LunarLander preset's dream batch, and a larger one


VARIANTS = ((False, "float32"), (True, "float32"), (True, "bfloat16"))  # (--dream.compile, --dream.precision)


def run() -> list[dict]:
    return [_row(n, compiled, precision) for n in BATCHES for compiled, precision in VARIANTS]


def _row(N_ENVS: int, compiled: bool = False, precision: str = "float32") -> dict:
    env = make_env(ENV)
    spec = spec_of(env, ENV)
    data = collect(env, 2000, seed=0)
    model = WorldModel(spec, ModelConfig())
    x, y, _ = model.tensors(data)
    model.set_normalizer(x, y)
    cfg = DreamConfig(n_envs=N_ENVS, horizon=1000, compile=compiled, precision=precision)
    dream = DreamVecEnv(model.eval(), data.obs, cfg, seed=0)
    dream.reset()
    rng = np.random.default_rng(0)
    actions = rng.integers(spec.n_actions, size=(STEPS, N_ENVS))

    def ours():
        for a in actions:
            dream.step(a)

    real = gym.vector.SyncVectorEnv([lambda: gym.make(ENV) for _ in range(N_ENVS)])
    real.reset(seed=0)

    def peer():
        for a in actions:
            real.step(a)

    for a in actions[:20]:  # warm-up of both
        dream.step(a)
        real.step(a)
    t_ours, t_peer = median_time(ours, repeats=3, warmup=0), median_time(peer, repeats=3, warmup=0)
    real.close()
    n = N_ENVS * STEPS
    bf16 = precision == "bfloat16"
    return {
        "name": f"worlds: DreamVecEnv{' compiled' if compiled else ''}{' bf16' if bf16 else ''} steps/s ({ENV}, "
        f"{N_ENVS} envs)",
        "sizes": (
            f"{N_ENVS} envs x {STEPS} steps, random actions; model 5 x (200, 200, 200) SiLU ensemble"
            f"{', one torch.compile graph (--dream.compile)' if compiled else ', eager'}"
            f"{', bf16 autocast (--dream.precision bfloat16)' if bf16 else ''}; "
            f"ours {n / t_ours:,.0f} steps/s, real {n / t_peer:,.0f} steps/s, CPU"
        ),
        "ours_s": t_ours,
        "peer": f"gymnasium SyncVectorEnv of {N_ENVS} real {ENV}",
        "peer_s": t_peer,
        "ratio": t_peer / t_ours,
    }
