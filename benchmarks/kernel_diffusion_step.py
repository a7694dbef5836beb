"""Benchmark of the fused diffusion sampler step (`shared.kernels.diffusion_step`) against its PyTorch eager reference.

Default sizes: sampling 64 images 3x64x64 (the art app's pixel space) and 16 latents 4x64x64 (a latent-diffusion
batch), float32, each with three steps: a guided ancestral DDPM step (CFG combine, v prediction, clip of x0, fresh
noise), a guided second-order DPM-Solver++(2M) step (reads the previous step's x0_hat, writes its own) and the same
step of its SDE form (v prediction, fresh noise: the art app's default sampler). The
kernel runs through the dispatcher with backend "triton", the reference with backend "torch" (torch.randn from a
device generator, then one eager pass per elementwise operation, about fifteen), on the same inputs; the harness
times each with 1 warm-up and reports the median of 5 repeats. bytes_moved is the least traffic of one step:
every input read once (x_t, out_cond, out_uncond, and x0_before for DPM-Solver++) plus every output written once
(x_prev, and x0_hat for DPM-Solver++), 4 bytes an element; the Philox normals are computed in registers and cost
no traffic. `tiny=True` uses toy sizes (CPU, Triton's interpreter) so the tests can check the plumbing in a second.
"""

from __future__ import annotations

import torch

from benchmarks.harness import kernel_row
from shared.kernels.diffusion_step import diffusion_step

NAME = "diffusion_step"
SIZES = "64x3x64x64 images and 16x4x64x64 latents, float32: guided DDPM, DPM-Solver++(2M) and its SDE form"

DEFAULT_SHAPES = [(64, 3, 64, 64), (16, 4, 64, 64)]
TINY_SHAPES = [(2, 3, 8, 8), (1, 4, 5, 7)]
# (label, sampler, keyword arguments of the step beyond the tensors); a_t = 0.3 -> a_prev = 0.6, mid-chain
STEPS = [
    ("ddpm cfg v clip", "ddpm", {"prediction": "v", "clip_x0": True}),
    ("dpm++2m cfg 2nd order", "dpm++2m", {"prediction": "eps", "h_before": 0.3}),
    ("dpm++2m-sde cfg v 2nd order", "dpm++2m-sde", {"prediction": "v", "h_before": 0.3}),
]


def _row(shape: tuple[int, ...], label: str, sampler: str, kwargs: dict, device: torch.device, peaks) -> dict:
    """The kernel against the eager reference for one step on float32 tensors of `shape` (B, C, H, W)."""
    g = torch.Generator(device=device).manual_seed(0)
    x_t, out_cond, out_uncond, x0_before = (torch.randn(shape, device=device, generator=g) for _ in range(4))
    dpm = sampler.startswith("dpm++")
    bytes_moved = ((4 if dpm else 3) + (2 if dpm else 1)) * x_t.numel() * 4  # inputs read + outputs written

    def call(backend: str):
        return diffusion_step(
            x_t, out_cond, 0.3, 0.6, out_uncond=out_uncond, guidance=2.0, sampler=sampler,
            x0_before=x0_before if dpm else None, generator=g, backend=backend, **kwargs,
        )  # fmt: skip

    sizes = "x".join(str(d) for d in shape) + " float32"
    return kernel_row(
        f"{NAME} {label} {sizes}",
        sizes,
        ours=lambda: call("triton"),
        reference=lambda: call("torch"),
        bytes_moved=bytes_moved,
        peaks=peaks,
    )


def rows(device: torch.device, peaks: dict | None, tiny: bool = False) -> list[dict]:
    """One row per (shape, step): the kernel against the eager reference on the same tensors."""
    shapes = TINY_SHAPES if tiny else DEFAULT_SHAPES
    return [_row(shape, *step, device, peaks) for shape in shapes for step in STEPS]
