"""Compile every Triton kernel for NVIDIA GPUs ahead of time, on a machine without one.

The tests run the kernels in Triton's interpreter, which accepts some programs that the real compiler rejects (and
the reverse). This check closes that gap without a GPU: each op's launcher is called on small CPU tensors in the
variants the app uses (dtypes, flags), the launch is intercepted instead of run, and the kernel is compiled from the
captured arguments with `triton.compile(ASTSource(...), target=GPUTarget("cuda", arch, 32))` through Triton's own
pipeline down to PTX and a cubin (ptxas ships with Triton). It says nothing about speed, and a kernel that compiles
can still be wrong on hardware (the `gpu`-marked tests check that); it does prove the kernels are valid Triton for
sm_80 (A100) and sm_90 (H100).

    python -m shared.kernels.compile_check            # every op, sm_80 and sm_90
    python -m shared.kernels.compile_check --arch 90 --ops categorical garch

Must run without TRITON_INTERPRET (the interpreter replaces `@triton.jit` functions with ones that cannot compile);
the test suite therefore calls it in a subprocess.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from unittest import mock

import torch

OPS = ("categorical", "garch", "diffusion_step", "bernoulli_sigmoid")
_TYPES = {
    torch.float32: "fp32",
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.float64: "fp64",
    torch.int32: "i32",
    torch.int64: "i64",
}


def _variants(op: str) -> Iterator[tuple[str, Callable[[], object]]]:
    """(description, a call of the op's launcher) for the variants the apps launch."""
    g = torch.Generator().manual_seed(0)
    if op == "categorical":
        from shared.kernels.categorical import categorical_sample_triton

        for dtype in (torch.float32, torch.bfloat16):
            for t, k, p in ((0.0, 0, 1.0), (1.0, 0, 1.0), (0.8, 5, 1.0), (1.0, 0, 0.9), (0.7, 50, 0.9)):
                logits = torch.randn(6, 97, generator=g).to(dtype)
                yield (
                    f"{dtype} T={t} top_k={k} top_p={p}",
                    lambda x=logits, t=t, k=k, p=p: categorical_sample_triton(x, t, k, p, seed=2**40 + 1),
                )
        wide = torch.randn(2, 32000, generator=g)
        yield "V=32000 top-k 50 top-p 0.9", lambda: categorical_sample_triton(wide, 0.8, 50, 0.9, seed=3)
    elif op == "garch":
        from shared.kernels.garch import garch_paths_triton

        for dtype in (torch.float32, torch.float64):
            a = torch.rand(5, dtype=dtype, generator=g) * 0.1
            z = torch.randn(7, 11, 5, dtype=dtype, generator=g)
            yield f"{dtype} z", lambda a=a, z=z: garch_paths_triton(a, a + 0.01, a, a + 0.8, a + 1.0, z=z)
            for idx_dtype in (torch.int32, torch.int64):
                pool = torch.randn(13, 5, dtype=dtype, generator=g)
                index = torch.randint(13, (7, 11), generator=g).to(idx_dtype)
                yield (
                    f"{dtype} bootstrap {idx_dtype}",
                    lambda a=a, pool=pool, index=index: garch_paths_triton(
                        a, a + 0.01, a, a + 0.8, a + 1.0, pool=pool, index=index
                    ),
                )
    elif op == "diffusion_step":
        from shared.kernels.diffusion_step import diffusion_step_triton, step_coefficients

        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(2, 3, 8, 8, generator=g).to(dtype)
            for sampler, pred, clip, guided in (
                ("ddim", "eps", False, False),
                ("ddpm", "v", True, True),
                ("dpm++2m", "v", True, True),
                ("dpm++2m", "eps", False, False),
                ("dpm++2m-sde", "v", False, True),  # second order with noise: HAS_BEFORE and NOISE together
            ):
                dpm = sampler.startswith("dpm++")
                coef = step_coefficients(sampler, 0.5, 0.7, eta=0.0, h_before=0.5 if dpm else None)
                yield f"{dtype} {sampler} {pred} clip={clip} guided={guided}", (
                    lambda x=x, coef=coef, pred=pred, clip=clip, guided=guided, dpm=dpm: (
                        diffusion_step_triton(
                            x, x, x if guided else None, x if dpm else None, 7, coef,
                            guidance=1.5 if guided else 1.0, prediction=pred, clip_x0=clip, store_x0=dpm,
                        )
                    )
                )  # fmt: skip
    elif op == "bernoulli_sigmoid":
        from shared.kernels.bernoulli_sigmoid import bernoulli_sigmoid_triton

        for dtype in (torch.float32, torch.bfloat16, torch.float64):
            pre, bias = torch.randn(7, 13, generator=g).to(dtype), torch.randn(13, generator=g).to(dtype)
            for probs in (False, True):
                yield (
                    f"{dtype} probs={probs}",
                    lambda pre=pre, bias=bias, probs=probs: bernoulli_sigmoid_triton(
                        pre, bias, seed=11, scale=0.5, return_probs=probs
                    ),
                )
    else:
        raise SystemExit(f"error: unknown op {op!r}; choose from {', '.join(OPS)}")


class _Capture:
    """Stands in for a JITFunction: `kernel[grid](*args, **kw)` records the call instead of launching it."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.calls.append((args, kwargs))


def _signature(fn, args, kwargs) -> tuple[dict, dict, dict]:
    """Triton's (signature, constexprs, options) for a captured call of JITFunction `fn`."""
    signature, constexprs = {}, {}
    options = {k: kwargs.pop(k) for k in ("num_warps", "num_stages") if k in kwargs}
    values = dict(zip(fn.arg_names, args)) | kwargs
    for param in fn.params:
        name, value = param.name, values[param.name]
        if param.is_constexpr:
            signature[name], constexprs[name] = "constexpr", value
        elif isinstance(value, torch.Tensor):
            signature[name] = "*" + _TYPES[value.dtype]
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int):
            signature[name] = "i32" if -(2**31) <= value < 2**31 else "i64"
        elif isinstance(value, float):
            signature[name] = "fp32"
        else:
            raise TypeError(f"{fn.__name__}: cannot type argument {name}={value!r}")
    return signature, constexprs, options


def compile_op(op: str, archs: tuple[int, ...]) -> int:
    """Compile every variant of `op` for each arch; prints a line per variant, returns the number compiled."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    module = importlib.import_module(f"shared.kernels.{op}")
    built = module._kernels.__wrapped__()  # fresh, uncached: the JITFunction, or a tuple holding it
    real = next(x for x in (built if isinstance(built, tuple) else (built,)) if isinstance(x, triton.JITFunction))
    done = 0
    for desc, call in _variants(op):
        capture = _Capture(real)
        stand_in = tuple(capture if x is real else x for x in built) if isinstance(built, tuple) else capture
        with mock.patch.object(module, "_kernels", lambda stand_in=stand_in: stand_in):
            call()
        if not capture.calls:
            raise RuntimeError(f"{op} [{desc}]: the launcher did not launch the kernel")
        for args, kwargs in capture.calls:
            signature, constexprs, options = _signature(real, args, dict(kwargs))
            for arch in archs:
                t = time.perf_counter()
                src = ASTSource(fn=real, signature=signature, constexprs=constexprs)
                compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)
                if "cubin" not in compiled.asm:
                    raise RuntimeError(f"{op} [{desc}] sm_{arch}: no cubin produced")
                print(f"ok  {op:18s} sm_{arch}  {desc}  ({time.perf_counter() - t:.1f} s)", flush=True)
                done += 1
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.kernels.compile_check", description=__doc__.split("\n")[0])
    parser.add_argument("--arch", type=int, action="append", help="CUDA compute capability x 10 (default: 80 and 90)")
    parser.add_argument("--ops", nargs="+", default=list(OPS), choices=OPS, help="kernels to compile (default: all)")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("error: unset TRITON_INTERPRET: the interpreter's kernels cannot be compiled", file=sys.stderr)
        return 2
    from shared.kernels.backend import triton_language

    if triton_language() is None:
        print("error: Triton is not installed (pip install 'triton>=3.0')", file=sys.stderr)
        return 2
    archs = tuple(args.arch or (80, 90))
    total = sum(compile_op(op, archs) for op in args.ops)
    print(f"compiled {total} kernel variants for sm_{', sm_'.join(map(str, archs))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
