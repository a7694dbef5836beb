"""The one training loop every family uses, with checkpoints, resume, EMA and multi-process (torchrun) support.

from shared.training import TrainConfig, fit
result = fit(model, StepBatches((x, y), batch_size=128, seed=0), TrainConfig(steps=2000), run_dir=run)
"""

from shared.training.batches import BatchSource, StepBatches
from shared.training.loop import TrainConfig, TrainResult, fit

__all__ = ["BatchSource", "StepBatches", "TrainConfig", "TrainResult", "fit"]
