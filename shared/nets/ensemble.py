"""Ensembles of MLPs evaluated as one batched computation: E independent members, one `baddbmm` per layer.

A probabilistic ensemble (Chua et al. 2018, PETS) needs E small MLPs run on the same or on different inputs. Looping
over E `nn.Linear` stacks costs E kernel launches per layer and, on the CPU, E Python round trips; stacking the
weights into (E, in, out) tensors runs all members in one batched matmul per layer, which is what makes a batched
dream environment cheap to step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from shared.errors import ConfigError
from shared.nets.mlp import make_activation


class EnsembleLinear(nn.Module):
    """E independent affine maps: x (E, B, in) -> (E, B, out). Each member is initialised like nn.Linear."""

    def __init__(self, members: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.members, self.in_dim, self.out_dim = int(members), int(in_dim), int(out_dim)
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default (kaiming_uniform with a=sqrt(5)) bound, per member
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)  # (E, B, out)


class EnsembleMLP(nn.Module):
    """E MLPs of the same shape: x (E, B, in_dim) -> (E, B, out_dim); a (B, in_dim) input is shared by all members.

    Args:
        members: ensemble size E (>= 1).
        in_dim, out_dim, hidden, act: as in `shared.nets.mlp.MLP`; the last layer is linear.
    """

    def __init__(
        self, members: int, in_dim: int, out_dim: int, hidden: Sequence[int] = (200, 200), act: str = "silu"
    ) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if members < 1 or in_dim < 1 or out_dim < 1 or any(h < 1 for h in hidden):
            raise ConfigError(
                f"EnsembleMLP sizes must be positive (members={members}, in_dim={in_dim}, out_dim={out_dim}, "
                f"hidden={hidden}); fix the sizes"
            )
        self.members, self.in_dim, self.out_dim = int(members), int(in_dim), int(out_dim)
        widths = (self.in_dim, *hidden, self.out_dim)
        self.layers = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.act = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"EnsembleMLP expects inputs with last dimension {self.in_dim}, got {tuple(x.shape)}")
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members, -1, -1)  # (E, B, in): every member sees the same batch
        if x.dim() != 3 or x.shape[0] != self.members:
            raise ValueError(f"EnsembleMLP expects (B, in) or ({self.members}, B, in) inputs, got {tuple(x.shape)}")
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x
