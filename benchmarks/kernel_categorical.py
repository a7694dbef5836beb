"""Bench rows for the fused categorical sampling kernel (`shared.kernels.categorical`) against its PyTorch reference.

Default sizes are the decoding hot paths on a GPU, float32 logits: molecule generation, R=4096 rows x V=64 tokens
at temperature 1 with top-p 0.95, and an LLM-sized vocabulary, R=512 x V=32000 at temperature 0.8 with top-k 50
and top-p 0.9. `tiny=True` uses toy sizes (4 x 8 and 2 x 33) so the rows run in Triton's interpreter on CPU.
Each row is `harness.kernel_row`: 1 warm-up, then the median of 5 timed calls of each side on the same logits
(the kernel draws its own Philox noise; the reference draws u with torch.rand). bytes_moved is the least traffic
the op needs: the logits read once (R * V * 4 bytes) plus the indices written (R * 8 bytes).
"""

from __future__ import annotations

import torch

from benchmarks.harness import kernel_row
from shared.kernels.categorical import categorical_sample

NAME = "categorical sampling"
SIZES = "4096 x 64 (top-p 0.95) and 512 x 32000 (T 0.8, top-k 50, top-p 0.9) float32 logits"

# (rows, vocabulary, temperature, top_k, top_p)
_DEFAULT = ((4096, 64, 1.0, 0, 0.95), (512, 32000, 0.8, 50, 0.9))
_TINY = ((4, 8, 1.0, 0, 0.95), (2, 33, 0.8, 5, 0.9))


def rows(device: torch.device, peaks: dict | None, tiny: bool = False) -> list[dict]:
    out = []
    gen = torch.Generator(device=device).manual_seed(0)
    for n_rows, n_cat, temperature, top_k, top_p in _TINY if tiny else _DEFAULT:
        logits = torch.randn(n_rows, n_cat, device=device, generator=gen) * 3.0  # (R, V)
        args = (logits, temperature, top_k, top_p)
        out.append(
            kernel_row(
                NAME,
                f"{n_rows} x {n_cat}, T {temperature}, top-k {top_k}, top-p {top_p}",
                ours=lambda args=args: categorical_sample(*args, generator=gen, backend="triton"),
                reference=lambda args=args: categorical_sample(*args, generator=gen, backend="torch"),
                bytes_moved=logits.numel() * logits.element_size() + n_rows * 8,
                peaks=peaks,
            )
        )
    return out
