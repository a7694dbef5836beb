"""Valid unique molecules per second: the molecules app's sampler against a straightforward batched PyTorch loop
over the same trained language model.

model: the LM that `make molecules` trained (runs/molecules/default/models/lm: a 2-layer LSTM, 256 wide, SMILES);
where there is none, a short training of the same architecture (`apps.molecules train --models lm`, LM_STEPS steps
on 50,000 prepared MOSES molecules, under runs/molecules/bench) so the samples are mostly valid. Training is not timed.
ours: `apps.molecules.generate.sample_lm` (batched incremental decoding with the LSTM state, the fused
temperature / top-k / Gumbel-max sampler of `shared.kernels.categorical` (its PyTorch reference on the CPU), stop
as soon as every row has emitted EOS), then decoding and RDKit validity and uniqueness (`valid_unique`).
peer: the loop most people write first (nanoGPT's `generate`): the same net with its recurrent state, softmax of
logits / temperature and `torch.multinomial` per step, for all max_len steps, then the same decoding and the same
validity and uniqueness check. N_MOLECULES in batches of 1,000 at temperature 1, 1 warm-up and the median of 3.
ratio = our valid-unique rate over the peer's (the peer's count of valid unique molecules in its own run).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import torch

from apps.molecules.conditioning import unconditional
from apps.molecules.generate import decode, sample_lm, valid_unique
from apps.molecules.models import Bundle
from benchmarks.harness import median_time

ROOT = Path(__file__).resolve().parents[1]
TRAINED, BENCH_RUN = ROOT / "runs/molecules/default/models/lm", ROOT / "runs/molecules/bench/models/lm"
N_MOLECULES, BATCH, LM_STEPS = 5_000, 1_000, 600


def trained_lm() -> Bundle:
    """The default run's LM, else a short training of one (prepares the MOSES data first if needed)."""
    for folder in (TRAINED, BENCH_RUN):
        if (folder / "model.json").is_file():
            return Bundle.load(folder)
    print(f"benchmarks.molecules: no trained LM at {TRAINED}; training one for {LM_STEPS} steps", file=sys.stderr)
    cmd = [sys.executable, "-m", "apps.molecules"]
    subprocess.run([*cmd, "prepare"], check=True, cwd=ROOT)
    train = ["train", "--run-name", "bench", "--models", "lm", "--data.n-train", "50000", "--data.n-props", "2000"]
    subprocess.run([*cmd, *train, "--lm-train.steps", str(LM_STEPS)], check=True, cwd=ROOT)
    return Bundle.load(BENCH_RUN)


@torch.no_grad()
def peer_sample(bundle: Bundle, n: int, generator: torch.Generator, temperature: float = 1.0) -> list[str]:
    """The straightforward loop: softmax + multinomial for max_len - 1 steps with the recurrent state, no early stop."""
    model, out = bundle.model, []
    for start in range(0, n, BATCH):
        m = min(BATCH, n - start)
        tok = torch.full((m, 1), model.bos_id, dtype=torch.long)  # (m, 1)
        cond = unconditional(m)  # (m, 8) zeros: every property hidden, as sample_lm's default
        seq, state = [tok], None
        for _ in range(bundle.max_len - 1):
            logits, state = model.net(tok, cond, state)  # (m, 1, V)
            probs = torch.softmax(logits[:, -1] / temperature, dim=-1)
            tok = torch.multinomial(probs, 1, generator=generator)  # (m, 1)
            seq.append(tok)
        out += decode(bundle, torch.cat(seq, dim=1))
    return out


def run() -> list[dict]:
    bundle = trained_lm()
    g = torch.Generator()
    counts = {}

    def ours():
        g.manual_seed(0)
        counts["ours"] = len(valid_unique(sample_lm(bundle, N_MOLECULES, batch_size=BATCH, generator=g)))

    def peer():
        g.manual_seed(0)
        counts["peer"] = len(valid_unique(peer_sample(bundle, N_MOLECULES, g)))

    t0 = time.perf_counter()
    t_ours = median_time(ours, repeats=3)
    t_peer = median_time(peer, repeats=3)
    rate_ours, rate_peer = counts["ours"] / t_ours, counts["peer"] / t_peer
    return [
        {
            "name": "molecules: valid unique molecules/s",
            "sizes": f"{N_MOLECULES} samples, batches of {BATCH}, LSTM LM (max_len {bundle.max_len}), temperature 1",
            "ours_s": t_ours,
            "peer": "batched softmax + multinomial loop, same model",
            "peer_s": t_peer,
            "ratio": rate_ours / rate_peer,
            "ours_valid_unique_per_s": rate_ours,
            "peer_valid_unique_per_s": rate_peer,
            "ours_valid_unique": counts["ours"],
            "peer_valid_unique": counts["peer"],
            "wall_s": time.perf_counter() - t0,
        }
    ]
