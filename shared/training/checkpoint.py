"""Checkpoints: atomic, verifiable, and loadable without unpickling anything.

A checkpoint is a folder `step-00001000/` holding
    model.safetensors   the model's parameters and buffers (safetensors: no code runs on load)
    ema.safetensors     the EMA copy, when training keeps one
    state.pt            optimiser states, RNG states and the step (tensors and plain containers only; read with
                        torch.load(weights_only=True))
    meta.json           {"format": "genlab-checkpoint/1", "step", "config", "files": {name: {sha256, bytes}}}
It is written into a temporary folder and renamed into place, so a run killed mid-write leaves no half
checkpoint. On load every file is checked against meta.json; a truncated or altered file raises
CheckpointError, and `latest_valid` falls back to the previous checkpoint with a one-line warning.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from shared.atomic import atomic_dir
from shared.errors import CheckpointError

FORMAT = "genlab-checkpoint/1"
_STEP_DIR = re.compile(r"^step-(\d{8})$")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Checkpoint:
    """A verified checkpoint on disk; nothing is loaded until asked."""

    path: Path
    meta: dict

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def config(self) -> dict:
        return self.meta.get("config") or {}

    def load_model(self, model: torch.nn.Module, ema: bool = False) -> torch.nn.Module:
        """Load weights into `model` (the EMA copy if ema=True and the checkpoint has one)."""
        name = "ema.safetensors" if ema and (self.path / "ema.safetensors").is_file() else "model.safetensors"
        try:
            missing, unexpected = load_model(model, str(self.path / name), strict=False)
        except Exception as e:  # safetensors raises several types for shape/dtype mismatches
            raise CheckpointError(f"{self.path / name} does not fit this model ({_short(e)})") from None
        if missing or unexpected:
            raise CheckpointError(
                f"{self.path / name} does not fit this model (missing {sorted(missing)[:3]}, unexpected "
                f"{sorted(unexpected)[:3]}); was it made with a different config?"
            )
        return model

    def load_state(self) -> dict:
        return torch.load(self.path / "state.pt", map_location="cpu", weights_only=True)

    @property
    def has_ema(self) -> bool:
        return (self.path / "ema.safetensors").is_file()


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__


def save(
    folder: str | Path,
    step: int,
    model: torch.nn.Module,
    state: dict,
    config: dict | None = None,
    ema_model: torch.nn.Module | None = None,
    keep_last: int = 3,
) -> Path:
    """Write checkpoint `folder/step-<step>` atomically and prune all but the newest `keep_last`."""
    folder = Path(folder)
    target = folder / f"step-{step:08d}"
    with atomic_dir(target) as tmp:
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": FORMAT, "step": str(step)})
        if ema_model is not None:
            save_model(ema_model, str(tmp / "ema.safetensors"), metadata={"format": FORMAT, "step": str(step)})
        torch.save(state, tmp / "state.pt")
        files = {p.name: {"sha256": _sha256(p), "bytes": p.stat().st_size} for p in sorted(tmp.iterdir())}
        meta = {
            "format": FORMAT,
            "step": step,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "torch": torch.__version__,
            "config": config or {},
            "files": files,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    if keep_last > 0:
        for old in list_steps(folder)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def list_steps(folder: str | Path) -> list[Path]:
    """Checkpoint folders under `folder`, oldest first (temporary folders of interrupted writes are skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and _STEP_DIR.match(p.name))


def open_checkpoint(path: str | Path) -> Checkpoint:
    """Open and verify a checkpoint folder (or a run folder / its checkpoints folder: the newest valid one).

    Raises CheckpointError with a one-line reason if it is missing, not a genlab checkpoint, or corrupt.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path or train first")
    if path.is_dir() and not (path / "meta.json").exists():
        for candidate in (path / "checkpoints", path):
            if list_steps(candidate):
                return latest_valid(candidate)
    meta_path = path / "meta.json" if path.is_dir() else None
    if meta_path is None or not meta_path.is_file():
        raise CheckpointError(
            f"{path} is not a genlab checkpoint (expected a folder with meta.json, model.safetensors and state.pt)"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is not a genlab checkpoint (meta.json is not valid JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a genlab checkpoint (meta.json has no format {FORMAT!r})")
    for name, rec in meta.get("files", {}).items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {name} is missing")
        size = f.stat().st_size
        if size != rec["bytes"]:
            raise CheckpointError(f"checkpoint {path} is corrupt: {name} has {size} bytes, {rec['bytes']} recorded")
        if _sha256(f) != rec["sha256"]:
            raise CheckpointError(f"checkpoint {path} is corrupt: {name} does not match its recorded sha256")
    for required in ("model.safetensors", "state.pt"):
        if required not in meta.get("files", {}):
            raise CheckpointError(f"{path} is not a genlab checkpoint ({required} is not recorded)")
    return Checkpoint(path, meta)


def latest_valid(folder: str | Path, warn=None) -> Checkpoint | None:
    """The newest checkpoint under `folder` that verifies; corrupt ones are reported and skipped."""
    warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
    for path in reversed(list_steps(folder)):
        try:
            return open_checkpoint(path)
        except CheckpointError as e:
            warn(f"{e}; falling back to the previous checkpoint")
    return None


def rng_state() -> dict[str, Any]:
    """Every global RNG stream training draws from, as tensors and plain values (safe for weights_only)."""
    import random

    import numpy as np

    np_state = np.random.get_state()
    py_state = random.getstate()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype("int64")),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
