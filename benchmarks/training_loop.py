"""The shared training loop against a bare PyTorch loop (same model, data, optimiser and steps).

What it shows: the bookkeeping of `shared.training.fit` (step-indexed batches, per-objective optimisers, gradient
clipping, logging; no checkpoints inside the timed window) costs little next to the model itself. A ratio near
1.0 is the target; below ~0.9 the loop would be adding real overhead.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.harness import median_time
from shared.training import StepBatches, TrainConfig, fit

STEPS, BATCH, WIDTH = 200, 256, 256


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, WIDTH), nn.SiLU(), nn.Linear(WIDTH, WIDTH), nn.SiLU(), nn.Linear(WIDTH, 1)
        )

    def forward(self, batch, objective="loss"):
        x, y = batch
        return ((self.net(x) - y) ** 2).mean()


def run() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20_000, 64, generator=g)
    y = x[:, :8].sum(1, keepdim=True)

    def ours():
        torch.manual_seed(0)
        fit(
            Regressor(),
            StepBatches((x, y), BATCH),
            TrainConfig(steps=STEPS, batch_size=BATCH, progress=False, checkpoint_every=10**9, device="cpu"),
        )

    def bare():
        torch.manual_seed(0)
        m = Regressor()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        for _ in range(STEPS):
            idx = torch.randint(len(x), (BATCH,))
            loss = m((x[idx], y[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()

    t_ours, t_bare = median_time(ours, repeats=5), median_time(bare, repeats=5)
    return [
        {
            "name": "training loop: fit() vs bare PyTorch loop",
            "sizes": f"MLP 64-{WIDTH}-{WIDTH}-1, batch {BATCH}, {STEPS} steps, CPU",
            "ours_s": t_ours,
            "peer": "bare loop",
            "peer_s": t_bare,
            "ratio": t_bare / t_ours,
        }
    ]
