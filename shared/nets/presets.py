"""Size presets for every network kind, and `build_net` to make one from a kind, a preset name and overrides.

`PRESETS[kind][name]` holds constructor keyword arguments (sizes only); the data-dependent dimensions (vocab_size,
in_channels, image_size, out_dim, ...) come from the caller as overrides. Three names exist for every kind, as in
DiT's `DiT_models` or minGPT's `gpt-nano`: "tiny" for unit tests (a few thousand to ~50k parameters, fast on a
CPU), "small" for CPU demos (minutes on a laptop) and "base" for GPU runs. Configs store only (kind, preset,
overrides), which are plain JSON, so a checkpoint can rebuild its network with `build_net`.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from shared.errors import ConfigError
from shared.nets.conv import ConvDecoder, ConvEncoder
from shared.nets.mlp import MLP
from shared.nets.sequence import LSTMLM, SequenceEncoder, TransformerLM
from shared.nets.unet import UNet

# kind -> the class `build_net` constructs.
NET_CLASSES: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "conv_encoder": ConvEncoder,
    "conv_decoder": ConvDecoder,
    "unet": UNet,
    "lstm": LSTMLM,
    "transformer": TransformerLM,
    "sequence_encoder": SequenceEncoder,
}

# kind -> preset name -> constructor keyword arguments.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "mlp": {
        "tiny": {"hidden": (32, 32)},
        "small": {"hidden": (256, 256)},
        "base": {"hidden": (512, 512, 512), "layer_norm": True},
    },
    "conv_encoder": {
        "tiny": {"channels": (8, 16)},
        "small": {"channels": (32, 64)},
        "base": {"channels": (64, 128, 256)},
    },
    "conv_decoder": {
        "tiny": {"channels": (16, 8)},
        "small": {"channels": (64, 32)},
        "base": {"channels": (256, 128, 64)},
    },
    "unet": {
        # tiny: ~40k parameters. small: the 8x8-digits setting measured on one CPU core (~0.64M parameters
        # with 10 classes). base: a DDPM-CIFAR-like net for 32 / 64 px on a GPU (H, W divisible by 8).
        "tiny": {"base_channels": 8, "channel_mult": (1, 2), "num_res_blocks": 1},
        "small": {"base_channels": 32, "channel_mult": (1, 2), "num_res_blocks": 1},
        "base": {
            "base_channels": 64,
            "channel_mult": (1, 2, 2, 2),
            "num_res_blocks": 2,
            "attention_levels": (2,),
            "dropout": 0.1,
        },
    },
    "lstm": {
        "tiny": {"d_model": 32, "n_layers": 1},
        "small": {"d_model": 256, "n_layers": 2},
        "base": {"d_model": 512, "n_layers": 3, "dropout": 0.1},
    },
    "transformer": {
        "tiny": {"d_model": 32, "n_layers": 2, "n_heads": 2, "max_len": 64},
        "small": {"d_model": 256, "n_layers": 4, "n_heads": 4, "max_len": 128},
        "base": {"d_model": 512, "n_layers": 8, "n_heads": 8, "max_len": 256, "dropout": 0.1},
    },
    "sequence_encoder": {
        "tiny": {"d_model": 32, "n_layers": 1},
        "small": {"d_model": 256, "n_layers": 1},
        "base": {"d_model": 512, "n_layers": 2, "dropout": 0.1},
    },
}


def build_net(kind: str, preset: str = "small", **overrides: Any) -> nn.Module:
    """Construct the `kind` network with the `preset` sizes updated by `overrides`.

    Overrides must supply the constructor's required dimensions (e.g. `build_net("lstm", "tiny", vocab_size=40)`)
    and may replace any preset field. Unknown kinds, presets, fields or missing dimensions raise ConfigError.
    """
    if kind not in PRESETS:
        raise ConfigError(f"unknown network kind {kind!r}; use one of {sorted(PRESETS)}")
    if preset not in PRESETS[kind]:
        raise ConfigError(f"unknown {kind} preset {preset!r}; use one of {sorted(PRESETS[kind])}")
    cls = NET_CLASSES[kind]
    params = inspect.signature(cls.__init__).parameters
    accepted = [n for n in params if n != "self"]
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise ConfigError(f"{kind} does not take {unknown}; its arguments are {accepted}")
    kwargs = {**PRESETS[kind][preset], **overrides}
    missing = [n for n, p in params.items() if n != "self" and p.default is inspect.Parameter.empty and n not in kwargs]
    if missing:
        example = ", ".join(f"{n}=..." for n in missing)
        raise ConfigError(f"{kind} needs {missing}; pass them as build_net({kind!r}, {preset!r}, {example})")
    return cls(**kwargs)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of `module` (all, or only those with requires_grad)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
