"""A plain multilayer perceptron, the workhorse for vector data (latents, tabular features, low-dimensional toys).

`MLP(in_dim, out_dim, hidden)` maps (B, in_dim) -> (B, out_dim) through Linear -> [LayerNorm] -> activation ->
[Dropout] blocks and a final Linear with no activation, so the output can be read as logits, means or scores by
whichever family wraps it. Activations are chosen by name from a small registry so that configs stay plain data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from shared.errors import ConfigError

# Activation name -> constructor. Names (not classes) keep configs JSON-serialisable.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module from its name (one of `ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; use one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """(B, in_dim) -> (B, out_dim) with hidden layers `hidden`; the last layer is linear (raw outputs).

    Args:
        in_dim, out_dim: input and output widths (positive).
        hidden: widths of the hidden layers; an empty tuple gives a single Linear.
        act: activation name, one of `ACTIVATIONS`.
        dropout: dropout probability after each hidden activation, in [0, 1).
        layer_norm: put a LayerNorm between each hidden Linear and its activation (helps deep/wide nets train).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (256, 256),
        act: str = "silu",
        dropout: float = 0.0,
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if in_dim < 1 or out_dim < 1 or any(h < 1 for h in hidden):
            raise ConfigError(
                f"MLP widths must be positive (in_dim={in_dim}, out_dim={out_dim}, hidden={hidden}); fix the sizes"
            )
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"MLP dropout={dropout} is outside [0, 1); use e.g. 0.0 or 0.1")
        make_activation(act)  # validate the name early, before building layers
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        layers: list[nn.Module] = []
        width = self.in_dim
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if layer_norm:
                layers.append(nn.LayerNorm(h))
            layers.append(make_activation(act))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, self.out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_dim) -> (B, out_dim). Extra leading dimensions (..., in_dim) are also accepted."""
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"MLP expects inputs with last dimension {self.in_dim}, got shape {tuple(x.shape)}")
        return self.net(x)
