"""Exponential moving average of model weights (Polyak averaging), kept as a full copy of the model.

Samplers use the EMA copy: diffusion models and GANs produce noticeably better samples from it. Decay follows
the usual warm-up `min(decay, (1 + n) / (10 + n))` so early averages are not dominated by the random init.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """`ema = EMA(model, decay)`; call `ema.update(model)` after each optimiser step; `ema.model` samples."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - d)  # e <- d * e + (1 - d) * p
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)
