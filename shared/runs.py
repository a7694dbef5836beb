"""Run directories: one run = one folder `runs/<app>/<run-name>/`, the same layout for every app.

    runs/<app>/<run-name>/
        config.json     the config the run was made with (the model is rebuilt from it)
        checkpoints/    step-00001000/ ... (see shared.training.checkpoint)
        train.jsonl     one JSON object per logged training step
        metrics.json    flat, lower-case evaluation keys (valid, fcd_test, real_return, kupiec_p, ...)
        samples/        generated outputs in the field's formats
        report.html     the self-contained report

Re-running with the same name resumes; a new name starts fresh.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.atomic import atomic_write_json
from shared.config import to_dict
from shared.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class RunDir:
    """Paths of one run. Create with `RunDir.open(app, name, root)`; nothing is written until asked."""

    path: Path

    @classmethod
    def open(cls, app: str, name: str, root: str | Path = "runs") -> RunDir:
        if not _NAME.match(name):
            raise ConfigError(
                f"run name {name!r} is not allowed; use letters, digits, '.', '_' and '-' (e.g. --run-name demo)"
            )
        path = Path(root) / app / name
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def for_config(cls, app: str, cfg: Any) -> RunDir:
        """Open runs/<app>/<cfg.run_name>/ under cfg.runs_dir and write cfg as its config.json, noting on stderr the
        fields that differ from a config already there (a resumed run given other settings)."""
        run = cls.open(app, cfg.run_name, cfg.runs_dir)
        changed = run.save_config(cfg)
        if changed:
            print(f"note: the config of run {cfg.run_name!r} changed ({'; '.join(changed[:4])})", file=sys.stderr)
        return run

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def train_log(self) -> Path:
        return self.path / "train.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def samples(self) -> Path:
        p = self.path / "samples"
        p.mkdir(exist_ok=True)
        return p

    @property
    def report_path(self) -> Path:
        return self.path / "report.html"

    def sub(self, name: str) -> RunDir:
        """A nested run folder (e.g. one per model inside a run that trains several)."""
        p = self.path / name
        p.mkdir(parents=True, exist_ok=True)
        return RunDir(p)

    def save_config(self, cfg: Any) -> list[str]:
        """Write config.json; return the fields that differ from a config already there (for a warning)."""
        new = to_dict(cfg)
        changed: list[str] = []
        if self.config_path.is_file():
            try:
                old = json.loads(self.config_path.read_text())
            except json.JSONDecodeError:
                old = {}
            changed = _diff(old, new)
        atomic_write_json(self.config_path, new)
        return changed

    def read_metrics(self) -> dict:
        if not self.metrics_path.is_file():
            return {}
        return json.loads(self.metrics_path.read_text())

    def write_metrics(self, metrics: dict, merge: bool = True) -> dict:
        """Write metrics.json (merged over what is there unless merge=False); keys must be flat and lower-case."""
        bad = [k for k in metrics if not isinstance(k, str) or k != k.lower() or isinstance(metrics[k], dict)]
        if bad:
            raise ValueError(f"metrics keys must be flat and lower-case: {bad}")
        out = {**self.read_metrics(), **metrics} if merge else dict(metrics)
        atomic_write_json(self.metrics_path, out)
        return out


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out
