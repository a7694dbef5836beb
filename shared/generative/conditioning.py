"""Turning a family's condition into the float vector its networks see, checked once for every family.

A conditional family is built with either `num_classes > 0` (the condition is a class label, int64 (B,) or a
single int, fed to the networks one-hot) or `cond_dim > 0` (the condition is a float property vector (B, C) or a
single (C,) vector shared by the batch). `condition_width` validates that choice at construction and returns
the width C of the vector; `condition_vector` validates a condition at a call boundary and returns the (B, C)
float tensor, or None for an unconditional family. The VAE, GAN and autoregressive families all use these two,
so a condition means the same thing everywhere.
"""

from __future__ import annotations

import torch

from shared.errors import ConfigError


def condition_width(num_classes: int, cond_dim: int) -> int:
    """Validate the conditioning config; return the width of the condition vector (0 when unconditional)."""
    if int(num_classes) < 0 or int(cond_dim) < 0:
        raise ConfigError(f"num_classes={num_classes}, cond_dim={cond_dim} must be >= 0; use 0 for no condition")
    if num_classes > 0 and cond_dim > 0:
        raise ConfigError(
            f"num_classes={num_classes} and cond_dim={cond_dim} both set; condition on labels or on a float "
            "vector, not both"
        )
    return int(num_classes) + int(cond_dim)


def condition_vector(
    cond,
    num_classes: int,
    cond_dim: int,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    check_range: bool = False,
) -> torch.Tensor | None:
    """(batch_size, C) float condition for the networks, or None when the family is unconditional.

    cond: labels (B,) int64 / a single int (broadcast) when num_classes > 0; floats (B, C) / (C,) (broadcast)
    when cond_dim > 0. `check_range` verifies labels lie in [0, num_classes): it reads the tensor back to the
    host, so sampling paths use it and training forwards (which must not synchronise) do not.
    """
    if num_classes == 0 and cond_dim == 0:
        if cond is not None:
            raise ConfigError(
                "a condition was given but the model is unconditional; drop it or build the model with "
                "num_classes or cond_dim"
            )
        return None
    if cond is None:
        kind = f"class labels (num_classes={num_classes})" if num_classes else f"a (B, {cond_dim}) float vector"
        raise ConfigError(f"the model is conditional and needs {kind}; pass cond= or a batch (x, y)")
    if num_classes > 0:
        labels = torch.as_tensor(cond, device=device)
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise ConfigError(f"class labels must be integers, got dtype {labels.dtype}; pass int64 labels")
        if labels.dim() == 0:
            labels = labels.expand(batch_size)
        if labels.shape != (batch_size,):
            raise ConfigError(f"labels have shape {tuple(labels.shape)}, expected ({batch_size},); one per row")
        if check_range and labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ConfigError(f"labels must lie in [0, {num_classes}); got {labels.min()}..{labels.max()}")
        # One-hot by comparison rather than F.one_hot, which checks the range with a device sync.
        classes = torch.arange(num_classes, device=device)
        return (labels[:, None] == classes).to(dtype)  # (B, num_classes)
    vec = torch.as_tensor(cond, device=device)
    if not vec.is_floating_point():
        raise ConfigError(f"a float condition vector is expected (cond_dim={cond_dim}), got dtype {vec.dtype}")
    vec = vec.to(dtype)
    if vec.dim() == 1:
        vec = vec.expand(batch_size, -1)
    if vec.shape != (batch_size, cond_dim):
        raise ConfigError(f"condition has shape {tuple(vec.shape)}, expected ({batch_size}, {cond_dim})")
    return vec


def with_condition(h: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """Concatenate a (B, C) condition onto (B, D) inputs -> (B, D + C); pass inputs through when c is None."""
    return h if c is None else torch.cat([h, c], dim=1)


def split_batch(batch) -> tuple[torch.Tensor, object]:
    """A training batch `(x,)` or `(x, y)` -> (x, y or None); anything else is a ConfigError."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if not isinstance(batch, (tuple, list)) or len(batch) not in (1, 2):
        raise ConfigError("a batch must be a tuple (x,) or (x, y); check the data loader's collate output")
    return batch[0], (batch[1] if len(batch) == 2 else None)
