"""Config <-> JSON <-> CLI: validation names the bad field; the CLI is derived from the dataclass."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from shared.cli import command_parser, config_parser, early_options, parse_config
from shared.config import field_docs, from_dict, load_json, save_json, to_dict
from shared.errors import ConfigError
from shared.training import TrainConfig


@dataclass
class Inner:
    lr: float = 1e-3
    """Learning rate."""


@dataclass
class Cfg:
    name: str = "run"
    """Run name."""
    steps: int = 10
    """Number of steps."""
    kind: Literal["a", "b"] = "a"
    dims: tuple[int, ...] = (1, 2)
    flag: bool = False
    maybe: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_field_docs_read_from_source():
    assert field_docs(Cfg)["steps"] == "Number of steps."
    assert "kind" not in field_docs(Cfg)


def test_from_dict_round_trip(tmp_path):
    cfg = Cfg(steps=3, dims=(4, 5), inner=Inner(lr=0.5))
    save_json(cfg, tmp_path / "c.json")
    assert load_json(Cfg, tmp_path / "c.json") == cfg
    assert to_dict(cfg)["dims"] == [4, 5]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"stepz": 1}, "unknown field 'stepz'"),
        ({"steps": "ten"}, "steps: expected an integer"),
        ({"steps": True}, "steps: expected an integer"),
        ({"kind": "c"}, "kind: must be one of"),
        ({"inner": {"lr": "fast"}}, "inner.lr: expected a number"),
        ({"inner": {"momentum": 1}}, "unknown field 'momentum'"),
    ],
)
def test_bad_values_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Cfg, data)


def test_cli_overrides_file_and_defaults(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"steps": 7, "name": "x"}))
    cfg = parse_config(
        Cfg,
        [
            "--config",
            str(tmp_path / "c.json"),
            "--name",
            "y",
            "--dims",
            "3,4,5",
            "--flag",
            "--inner.lr",
            "0.1",
            "--maybe",
            "none",
        ],
    )
    assert (cfg.steps, cfg.name, cfg.dims, cfg.flag, cfg.inner.lr, cfg.maybe) == (7, "y", (3, 4, 5), True, 0.1, None)


def test_cli_bad_type_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        parse_config(Cfg, ["--steps", "abc"], prog="prog")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--steps" in err and "expected an integer" in err


def test_help_shows_docstrings():
    text = config_parser(TrainConfig, prog="p").format_help()
    assert "Total optimiser steps" in text and "--lr-schedule" in text


def test_train_config_validates():
    with pytest.raises(ConfigError, match="train.steps must be positive"):
        TrainConfig(steps=0)


def test_list_options_take_commas_or_several_tokens_and_presets_as_defaults():
    a = parse_config(Cfg, ["--dims", "3,4"])
    b = parse_config(Cfg, ["--dims", "3", "4", "--steps", "5"])
    assert a.dims == b.dims == (3, 4) and b.steps == 5
    base = Cfg(steps=25)
    assert parse_config(Cfg, [], defaults=base).steps == 25
    assert parse_config(Cfg, ["--steps", "75"], defaults=base).steps == 75


def test_help_shows_the_preset_defaults_not_the_class_defaults():
    preset = Cfg(steps=77, inner=Inner(lr=0.5))
    text = " ".join(config_parser(Cfg, prog="p", values=preset).format_help().split())
    assert "(default: 77)" in text and "(default: 0.5)" in text and "(default: 10)" not in text


def test_a_nested_option_keeps_the_fields_own_default_factory():
    """`--train.seed 1` changes the seed only: the app's TrainConfig (a default_factory) keeps its steps and
    schedule instead of falling back to TrainConfig's class defaults (a bug that once retrained markets runs with
    another schedule whenever any --train option was given)."""

    @dataclass
    class App:
        train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=777, lr_schedule="cosine"))

    cfg = parse_config(App, ["--train.seed", "3"])
    assert (cfg.train.seed, cfg.train.steps, cfg.train.lr_schedule) == (3, 777, "cosine")
    assert parse_config(App, []).train.steps == 777
    text = " ".join(config_parser(App, prog="p").format_help().split())
    assert "(default: 777)" in text  # --help shows the factory's default, not TrainConfig's own


def test_early_options_pick_the_defaults_and_the_full_parse_keeps_every_option():
    """How the apps read `--preset` (and worlds `--env`) before the full parse: the early read takes only its own
    options, with their defaults when absent, and the full parse then sees the same argv, preset option included."""

    def run_step():
        """Run one step of the thing."""

    argv = ["--steps", "5", "--preset", "long", "--inner.lr", "0.1"]
    known = early_options(argv, preset="default", run_name="x")
    assert (known.preset, known.run_name) == ("long", "x")
    parser = command_parser("apps.thing", "step", run_step)
    parser.add_argument("--preset", default="default")
    cfg = parse_config(Cfg, argv, defaults=Cfg(steps=50 if known.preset == "long" else 1), parser=parser)
    assert (cfg.steps, cfg.inner.lr) == (5, 0.1)
    text = " ".join(parser.format_help().split())
    assert text.startswith("usage: python -m apps.thing step") and "Run one step of the thing." in text
