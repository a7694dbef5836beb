"""Multi-process training under torchrun: process-group set-up, DDP wrapping, and rank helpers.

    torchrun --standalone --nproc_per_node 2 -m apps.core_demo --families ar --run-name ddp

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; `init()` reads them and starts a process group (gloo on the CPU,
NCCL on CUDA). Every process runs the same loop on its slice of each global batch (see `StepBatches`); DDP
averages gradients, so the update equals one process with the same global batch. Only rank 0 writes logs,
checkpoints and reports. Without torchrun everything here is a no-op for a world of one.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(device: torch.device) -> DistInfo:
    """Join the process group torchrun set up (idempotent); returns a world of one outside torchrun."""
    if not launched_by_torchrun():
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if info.world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def local_device(device: torch.device, info: DistInfo) -> torch.device:
    """On CUDA each process takes the GPU of its local rank."""
    if device.type == "cuda" and info.enabled:
        return torch.device("cuda", info.local_rank)
    return device


def wrap(model: nn.Module, device: torch.device, info: DistInfo, find_unused: bool) -> nn.Module:
    if not info.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)


def all_gather_objects(obj, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group together: a rank that tears down gloo while its peer still talks to it makes the
    peer abort (SIGABRT), so every rank waits at a barrier first (rank 0 may still be evaluating)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_worker(code: int = 0) -> None:
    """End a torchrun worker now, skipping Python's finalizer; call it last, after `shutdown()`.

    Why: a gloo worker thread frees each finished collective after the caller has seen it complete, and a barrier
    holds the collectives queued before it, so the last barrier can free `all_gather_object`'s byte tensors late.
    Those tensors belong to Python; freeing them takes the GIL, and a thread that asks for the GIL while the
    interpreter finalizes is unwound through a noexcept destructor: std::terminate, SIGABRT, and torchrun reports
    a failed run whose files are all written (~3% of 2-process CPU runs under load; core dump 2026-11-24: the
    gloo runLoop thread in ~AsyncBarrierWork -> ~AsyncAllgatherWork -> decref_pyobject -> take_gil, the main
    thread in Py_FinalizeEx). The process group cannot be destroyed first to join that thread: DDP's C++ reducer
    keeps it alive. Outputs are written atomically and closed before this point, so only the streams need a
    flush. Outside torchrun it does nothing and the caller returns as usual."""
    if not launched_by_torchrun():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
