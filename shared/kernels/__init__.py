"""GPU kernels on the measured hot paths, each in `<op>.py` beside its pure-PyTorch reference.

Every op module holds `<op>_ref` (PyTorch, runs anywhere), the `@triton.jit` kernel with its launcher
`<op>_triton`, and `<op>()`, the dispatcher the rest of genlab calls. Triton is imported lazily (`backend.py`), so
nothing here needs it or CUDA at import; without CUDA the dispatcher runs the reference. Random ops draw their
noise from the counter-based Philox stream of `philox.py` inside the kernel; the references take that noise as a
tensor, so a test can feed them the kernel's exact stream (`philox_uniform(seed, ...)`) and compare bit for bit.
Tests run the kernels on CPU tensors through Triton's interpreter (`TRITON_INTERPRET=1`, set in tests/conftest.py).
"""
