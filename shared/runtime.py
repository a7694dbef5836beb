"""Process set-up every entry point does: the one device resolver, seeding, and CPU thread count.

Library code never picks a device itself: it follows `tensor.device` (or the module's parameters). Only entry
points call `resolve_device`.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from shared.errors import ConfigError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda if available, else mps if available, else cpu. An explicit device is checked to exist."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(
            f"device {device!r} is not a device name; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} asked for but CUDA is not available here; use --device cpu or auto"
        )
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices). Training randomness then comes from these global streams,
    whose states the checkpoints save and restore."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_cpu_threads(n: int | None = None) -> None:
    """Use `n` intra-op threads (default: $GENLAB_THREADS, else torch's default)."""
    n = n or int(os.environ.get("GENLAB_THREADS", "0") or 0)
    if n > 0:
        torch.set_num_threads(n)
