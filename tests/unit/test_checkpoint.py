"""Checkpoints: atomic folders, verification against meta.json, fallback past a corrupt one, no unpickling."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from shared.errors import CheckpointError
from shared.training import checkpoint as ckpt


def _save(folder, step, model, keep=3):
    return ckpt.save(folder, step, model, {"step": step, "rng": [ckpt.rng_state()]}, config={"x": 1}, keep_last=keep)


def test_save_open_load_round_trip(tmp_path):
    m = nn.Linear(3, 2)
    path = _save(tmp_path, 5, m)
    c = ckpt.open_checkpoint(path)
    assert c.step == 5 and c.config == {"x": 1}
    m2 = nn.Linear(3, 2)
    c.load_model(m2)
    assert torch.equal(m.weight, m2.weight)
    assert c.load_state()["step"] == 5


def test_keep_last_prunes_and_temp_folders_are_ignored(tmp_path):
    m = nn.Linear(2, 2)
    for s in (1, 2, 3, 4):
        _save(tmp_path, s, m, keep=2)
    (tmp_path / ".step-00000009.abc.tmp").mkdir()  # what a kill during a write leaves behind
    assert [p.name for p in ckpt.list_steps(tmp_path)] == ["step-00000003", "step-00000004"]


def test_truncated_file_is_detected_and_previous_used(tmp_path):
    m = nn.Linear(4, 4)
    _save(tmp_path, 1, m)
    newest = _save(tmp_path, 2, m)
    f = newest / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="corrupt: model.safetensors has"):
        ckpt.open_checkpoint(newest)
    warnings = []
    chosen = ckpt.latest_valid(tmp_path, warn=warnings.append)
    assert chosen.step == 1 and len(warnings) == 1 and "step-00000002" in warnings[0]


def test_altered_file_is_detected(tmp_path):
    path = _save(tmp_path, 1, nn.Linear(4, 4))
    f = path / "state.pt"
    data = bytearray(f.read_bytes())
    data[-5] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        ckpt.open_checkpoint(path)


@pytest.mark.parametrize("kind", ["missing", "plain_file", "foreign_dir", "wrong_format"])
def test_not_a_genlab_checkpoint(tmp_path, kind):
    target = tmp_path / "thing"
    if kind == "plain_file":
        torch.save({"w": torch.ones(1)}, target)
    elif kind == "foreign_dir":
        target.mkdir()
        (target / "pytorch_model.bin").write_bytes(b"x")
    elif kind == "wrong_format":
        target.mkdir()
        (target / "meta.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError):
        ckpt.open_checkpoint(target)


def test_mismatched_model_is_a_clear_error(tmp_path):
    path = _save(tmp_path, 1, nn.Linear(4, 4))
    with pytest.raises(CheckpointError, match="does not fit this model"):
        ckpt.open_checkpoint(path).load_model(nn.Linear(5, 4))


def test_rng_state_round_trip():
    import random

    import numpy as np

    state = ckpt.rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    ckpt.set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
