"""Benchmark of the fused sigmoid + Bernoulli kernel (RBM Gibbs half-step) against its PyTorch eager reference.

Default sizes: pre-activations (B, N) = 4096 x 4096 in float32 and bfloat16 (a wide layer; the float32 case also
returning the probabilities), and 1024 x 784 float32 (an RBM's visible half-step on MNIST-scale batches). The
kernel runs through the dispatcher with backend "triton", the reference with backend "torch" (torch.rand from the
global generator, then sigmoid, compare and cast: several eager passes), the same inputs. The harness times each
with 1 warm-up and reports the median of 5 repeats. bytes_moved is the least traffic of the op: pre read
(B * N elements) + bias read (N) + sample written (B * N), + probs written (B * N) when returned, all in pre's
dtype; the Philox uniforms are computed in registers and cost no traffic. `tiny=True` uses toy sizes (CPU,
Triton's interpreter) so the tests can check the plumbing in a second.
"""

from __future__ import annotations

import torch

from benchmarks.harness import kernel_row
from shared.kernels.bernoulli_sigmoid import bernoulli_sigmoid

NAME = "bernoulli_sigmoid"
SIZES = "4096x4096 float32 / bfloat16 (+ probs), 1024x784 float32"

# (B, N, dtype, return_probs)
DEFAULT_CASES = [
    (4096, 4096, torch.float32, False),
    (4096, 4096, torch.bfloat16, False),
    (4096, 4096, torch.float32, True),
    (1024, 784, torch.float32, False),
]
TINY_CASES = [(8, 13, torch.float32, False), (8, 13, torch.bfloat16, True)]


def rows(device: torch.device, peaks: dict | None, tiny: bool = False) -> list[dict]:
    """One row per case: the kernel against the eager reference on the same (B, N) pre-activations and bias."""
    out = []
    for b, n, dtype, with_probs in TINY_CASES if tiny else DEFAULT_CASES:
        g = torch.Generator(device=device).manual_seed(0)
        pre = torch.randn(b, n, device=device, generator=g).to(dtype)  # (B, N) a matmul's output
        bias = torch.randn(n, device=device, generator=g).to(dtype)  # (N,)
        size = pre.element_size()
        bytes_moved = (2 + int(with_probs)) * b * n * size + n * size

        def call(backend, pre=pre, bias=bias, with_probs=with_probs):
            return bernoulli_sigmoid(pre, bias, return_probs=with_probs, backend=backend)

        label = f"{NAME} {b}x{n} {str(dtype).removeprefix('torch.')}" + (" +probs" if with_probs else "")
        out.append(
            kernel_row(
                label,
                f"{b}x{n} {str(dtype).removeprefix('torch.')}",
                ours=lambda call=call: call("triton"),
                reference=lambda call=call: call("torch"),
                bytes_moved=bytes_moved,
                peaks=peaks,
            )
        )
    return out
