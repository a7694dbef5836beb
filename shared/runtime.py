"""Process set-up every entry point does: the one device resolver, seeding, and CPU thread count; and whether a
device runs bfloat16 natively, which decides if bf16 autocast (`amp`) pays there.

Library code never picks a device itself: it follows `tensor.device` (or the module's parameters). Only entry
points call `resolve_device`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import sys

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
        raise ConfigError(f"device {device!r} is not a device name; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for but CUDA is not available here; use --device cpu or auto")
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


@functools.cache
def native_bf16(device_type: str) -> bool:
    """Whether devices of this type ("cpu", "cuda", ...) run bfloat16 convolutions and matmuls natively.

    CUDA: the GPU supports bf16 (Ampere and newer). CPU: oneDNN has bf16 kernels for it (AVX512 with BF16 or AMX;
    its own check). Elsewhere bf16 autocast is emulated and far slower than float32: on a 2-core Zen 3 EPYC
    (AVX2 only) one training step of the art app's UNet took 9.9 s under bf16 autocast and 0.78 s in float32.
    """
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a build without oneDNN
            return False
    return False


def use_bf16(device: torch.device, wanted: bool, who: str | None = None) -> bool:
    """`wanted` (a config's `amp`) where `device` runs bf16 natively, else False. With `who`, a False that
    overrules a True is said once on stderr, so a run's log tells why it trained in float32."""
    if not wanted:
        return False
    if native_bf16(device.type):
        return True
    if who is not None:
        print(
            f"{who}: bf16 autocast (amp) asked for, but this {device.type} has no native bf16 (a CPU needs AVX512-BF16"
            " or AMX); running in float32, which is several times faster here",
            file=sys.stderr,
            flush=True,
        )
    return False


def bf16_autocast(device: torch.device, wanted: bool = True):
    """bf16 autocast on `device` when `wanted` and the device runs bf16 natively (`native_bf16`), else a null
    context: the one place forward passes choose their precision."""
    if use_bf16(device, wanted):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
