"""Triton kernels against their PyTorch eager references, and the device's measured peaks in the same run.

Each op has a module `benchmarks/kernel_<op>.py` with NAME, SIZES (a description of the default sizes) and
`rows(device, peaks, tiny=False) -> list[dict]` built with `harness.kernel_row` (the kernel through its dispatcher
with backend "triton", the reference with backend "torch", the same inputs; medians of 5 after a warm-up). On a
CUDA device every row also gives the achieved bandwidth as a fraction of the measured copy peak (memory-bound ops).
Without CUDA the kernels cannot run natively (Triton's interpreter is a correctness tool, thousands of times
slower), so the rows say "not run" and why; `tiny=True` runs them at toy sizes anywhere, which is how the tests
check this plumbing under TRITON_INTERPRET=1.
"""

from __future__ import annotations

import importlib

import torch

from benchmarks.harness import device_peaks, skipped_row
from shared.kernels.backend import triton_language

OPS = ("categorical", "garch", "diffusion_step", "bernoulli_sigmoid")


def op_module(op: str):
    return importlib.import_module(f"benchmarks.kernel_{op}")


def run(device: torch.device | None = None, tiny: bool = False) -> list[dict]:
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not tiny and (device.type != "cuda" or triton_language() is None):
        why = "needs a CUDA device and Triton" if triton_language() else "needs Triton (pip install triton)"
        return [
            skipped_row(f"kernel {op_module(op).NAME}", op_module(op).SIZES, "PyTorch eager reference", why)
            for op in OPS
        ]
    peaks = None if tiny else device_peaks(device)
    rows = []
    for op in OPS:
        for row in op_module(op).rows(device, peaks, tiny=tiny):
            row["name"] = f"kernel {row['name']}"
            if peaks:
                row["device_peaks"] = peaks
            rows.append(row)
    return rows
