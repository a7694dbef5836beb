"""Where training batches come from: a pure function of the step number.

`StepBatches(tensors, batch_size, seed)` returns batch `step` from an epoch-wise random permutation that is
itself a function of (seed, epoch). Because the batch depends on nothing but the step, a resumed run sees exactly
the batches an uninterrupted run would, with no sampler state to save. Under torchrun every process draws the
same global batch and keeps its own contiguous slice, so N processes with global batch B compute the same
gradient as one process with batch B.

Apps whose data is not a fixed tensor set (a replay buffer, a stream) pass any object with
`batch(step) -> tuple[Tensor, ...]` (the `BatchSource` protocol).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from shared.errors import ConfigError, DataError


class BatchSource(Protocol):
    def batch(self, step: int) -> tuple[Tensor, ...]: ...


class StepBatches:
    """Deterministic mini-batches over equally long tensors (first dimension = examples)."""

    def __init__(
        self,
        tensors: Tensor | tuple[Tensor, ...],
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        tensors = (tensors,) if isinstance(tensors, Tensor) else tuple(tensors)
        n = len(tensors[0])
        if n == 0:
            raise DataError("the training set is empty; check the data path and filters")
        if any(len(t) != n for t in tensors):
            raise DataError(f"training tensors differ in length: {[len(t) for t in tensors]}")
        if batch_size <= 0 or batch_size % world_size:
            raise ConfigError(
                f"batch_size {batch_size} must be positive and divisible by the number of processes ({world_size})"
            )
        self.tensors, self.n, self.batch_size, self.seed = tensors, n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self._perm_epoch, self._perm = -1, None

    def shard(self, rank: int, world_size: int) -> StepBatches:
        """The same batches, sliced for process `rank` of `world_size`."""
        return StepBatches(self.tensors, self.batch_size, self.seed, rank, world_size)

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def indices(self, step: int) -> Tensor:
        """(batch_size // world_size,) example indices of this process's slice of global batch `step`."""
        start = step * self.batch_size
        pos = torch.arange(start, start + self.batch_size)
        epochs, offsets = pos // self.n, pos % self.n
        idx = torch.empty_like(pos)
        for e in epochs.unique().tolist():  # at most a few epochs per batch (more only when batch > dataset)
            m = epochs == e
            idx[m] = self._permutation(e)[offsets[m]]
        local = self.batch_size // self.world_size
        return idx[self.rank * local : (self.rank + 1) * local]

    def batch(self, step: int) -> tuple[Tensor, ...]:
        idx = self.indices(step)
        return tuple(t[idx] for t in self.tensors)

    @property
    def steps_per_epoch(self) -> float:
        return self.n / self.batch_size
