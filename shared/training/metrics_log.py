"""The training log: one JSON object per line (`train.jsonl`), appended as training goes.

Each record has `step` plus scalar keys (`loss/<objective>`, `lr`, family stats, `eval/<name>` from the evaluation
hook). On resume the records after the checkpoint's step are dropped, so the file always describes one
consistent history. TensorBoard is written too when asked for and installed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from shared.atomic import atomic_write_text
from shared.errors import ConfigError, DataError


def read_records(path: str | Path) -> list[dict]:
    """Records of a JSONL log. A torn last line (the run was killed mid-write) is dropped; a bad line anywhere
    else is an error: the file is then not a metrics log."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"metrics file {path} does not exist; pass a run's train.jsonl or a list of records")
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                break
            raise DataError(f"{path}:{i + 1} is not JSON ({e.msg}); is this a metrics .jsonl file?") from e
        if not isinstance(rec, dict):
            raise DataError(f"{path}:{i + 1} holds a {type(rec).__name__}, expected one JSON object per line")
        records.append(rec)
    return records


class MetricsLog:
    def __init__(self, path: str | Path | None, tensorboard_dir: str | Path | None = None):
        self.path = Path(path) if path else None
        self._tb = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "tensorboard logging asked for but the tensorboard package is not installed; "
                    "pip install tensorboard, or drop --train.tensorboard"
                ) from None
            self._tb = SummaryWriter(str(tensorboard_dir))

    def truncate_after(self, step: int) -> None:
        """Drop records logged after `step` (they belong to a run that was killed before its next checkpoint)."""
        if self.path is None or not self.path.is_file():
            return
        keep = [r for r in read_records(self.path) if r.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def append(self, record: dict) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(clean) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, record["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
