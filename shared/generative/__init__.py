"""Generative families. Each wraps networks passed in; `forward(batch, objective) -> loss`; `sample(...)`.

The contract every family follows (the training loop relies on it):
- `objectives: dict[str, int]`: ordered optimiser groups and updates per training step ({"loss": 1} by default;
  a GAN has {"d": n_critic, "g": 1}); `objective_parameters(name)` lists what each optimiser updates.
- `forward(batch, objective="loss")` returns a scalar loss. `batch` is a tuple `(x,)` or `(x, y)`, y the
  condition (class labels (B,) int64 or properties (B, C) float32). Training randomness uses torch's global RNG,
  which checkpoints save and restore.
- `stats`: optional dict of detached scalar tensors set in forward (e.g. kl, recon) that the loop logs.
- `sample(n, *, cond=None, generator=None, ...)`: all randomness from `generator` when one is given.
"""
