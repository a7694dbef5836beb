"""Command lines derived from dataclass configs, and the wrapper that turns user errors into one line.

`config_parser(Config)` adds one `--field-name` option per field (nested dataclasses as `--train.lr`), with the
field's docstring as help, its type as the converter and its default shown; `--config FILE.json` loads a saved
config first and options on the command line override it. `run_main(main)` runs an entry point and converts a
`GenlabError` into `error: <message>` on stderr with a non-zero exit and no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import Any, Literal, NoReturn, get_args, get_origin

from shared.config import coerce, field_docs, field_types, from_dict, load_json, to_dict
from shared.errors import ConfigError, GenlabError

_UNSET = object()


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (plus a pointer to --help) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class _JoinedList(argparse.Action):
    """A list option given as one or more tokens; all tokens are joined and converted once."""

    def __init__(self, *args, convert: Callable[[str], Any], **kwargs):
        super().__init__(*args, **kwargs)
        self.convert = convert

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            setattr(namespace, self.dest, self.convert(" ".join(values)))
        except argparse.ArgumentTypeError as e:
            parser.error(f"argument {option_string}: {e}")


def _flag(prefix: str, name: str) -> str:
    return "--" + (prefix + name).replace("_", "-")


def _converter(tp: Any, where: str):
    def convert(text: str):
        try:
            return coerce(text, tp, where)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None

    convert.__name__ = getattr(tp, "__name__", "value")
    return convert


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "", values: Any = None) -> None:
    """Add an option for every field of dataclass `cls` (recursing into nested dataclasses). `values` (an instance
    of `cls`, e.g. a preset) supplies the defaults shown in --help instead of the dataclass's own."""
    docs, hints = field_docs(cls), field_types(cls)
    group = parser.add_argument_group(f"{prefix.rstrip('.') or cls.__name__} options") if prefix else parser
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            if values is not None:
                inner = getattr(values, f.name)
            else:  # the field's own default (its default_factory may differ from the nested class's defaults)
                inner = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
                inner = f.default if inner is None and f.default is not dataclasses.MISSING else inner
            add_config_arguments(parser, tp, prefix=f"{prefix}{f.name}.", values=inner)
            continue
        if values is not None:
            default = getattr(values, f.name)
        else:
            default = (
                f.default
                if f.default is not dataclasses.MISSING
                else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            )
        help_text = docs.get(f.name, "")
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        help_text = f"{help_text} (default: {shown})".strip().replace("%", "%%")
        dest = (prefix + f.name).replace(".", "__")
        kw: dict[str, Any] = dict(dest=dest, default=_UNSET, help=help_text)
        if tp is bool:
            group.add_argument(_flag(prefix, f.name), action=argparse.BooleanOptionalAction, **kw)
            continue
        if get_origin(tp) is Literal:
            kw["metavar"] = "{" + ",".join(str(a) for a in get_args(tp)) + "}"
        if get_origin(tp) in (tuple, list):
            # Lists take comma- or space-separated values: `--tickers AAPL,MSFT` and `--target qed=0.9 logp=2`.
            kw.update(nargs="+", action=_JoinedList, convert=_converter(tp, prefix + f.name), metavar="VALUE")
            group.add_argument(_flag(prefix, f.name), **kw)
            continue
        group.add_argument(_flag(prefix, f.name), type=_converter(tp, prefix + f.name), **kw)


def config_from_args(cls: type, ns: argparse.Namespace, base: Any = None) -> Any:
    """Merge parsed options over `base` (a config instance, or the defaults) and validate the result."""
    data = to_dict(base) if base is not None else {}

    def collect(klass: type, prefix: str, into: dict) -> None:
        hints = field_types(klass)
        for f in dataclasses.fields(klass):
            if not f.init:
                continue
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                if f.name not in into:  # start from the field's own default (a default_factory may differ from
                    # the nested class's defaults: `--train.seed 1` must not reset the app's training schedule)
                    own = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                    into[f.name] = to_dict(own) if dataclasses.is_dataclass(own) else {}
                collect(tp, f"{prefix}{f.name}.", into[f.name])
                continue
            value = getattr(ns, (prefix + f.name).replace(".", "__"), _UNSET)
            if value is not _UNSET:
                into[f.name] = value

    collect(cls, "", data)
    return from_dict(cls, _drop_empty(data))


def _drop_empty(d: dict) -> dict:
    return {k: (_drop_empty(v) if isinstance(v, dict) else v) for k, v in d.items() if v != {}}


def config_parser(
    cls: type,
    prog: str | None = None,
    description: str | None = None,
    parser: argparse.ArgumentParser | None = None,
    values: Any = None,
) -> argparse.ArgumentParser:
    """A parser with `--config FILE.json` plus one option per config field (defaults shown from `values`)."""
    parser = parser or OneLineParser(prog=prog, description=description)
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE.json",
        help="load a saved config (e.g. runs/<app>/<run>/config.json); options given here override it",
    )
    add_config_arguments(parser, cls, values=values)
    return parser


def parse_config(
    cls: type,
    argv: Sequence[str] | None = None,
    prog: str | None = None,
    description: str | None = None,
    defaults: Any = None,
    parser: argparse.ArgumentParser | None = None,
) -> Any:
    """Parse `argv` into an instance of `cls` (defaults < --config file < command-line options).

    `defaults` (an instance of `cls`, e.g. a named preset) replaces the dataclass defaults as the base; `parser`
    may carry extra options of the caller's (such as `--preset`), added before this call."""
    parser = config_parser(cls, prog=prog, description=description, parser=parser, values=defaults)
    ns = parser.parse_args(argv)
    base = load_json(cls, ns.config) if ns.config else defaults
    return config_from_args(cls, ns, base)


def split_command(
    argv: Sequence[str] | None, commands: Sequence[str], prog: str, doc: str | None, example: str
) -> tuple[str, list[str]] | None:
    """`python -m <prog> <command> [options]`: (command, options) from argv (default sys.argv[1:]).

    Prints `doc` and returns None for -h/--help; a missing or unknown command is a one-line ConfigError that lists
    the commands and shows `example` (the command to try first)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(doc or "")
        return None
    if not argv or argv[0] not in commands:
        raise ConfigError(f"give a command: one of {', '.join(commands)} (e.g. python -m {prog} {example} --help)")
    return argv[0], argv[1:]


def early_options(argv: Sequence[str], **defaults: str) -> argparse.Namespace:
    """Options read before the full parse because they choose the config's defaults (`--preset`, `--env`, ...):
    early_options(argv, preset="default") -> Namespace(preset=...); every other option in argv is left alone."""
    pre = argparse.ArgumentParser(add_help=False)
    for name, default in defaults.items():
        pre.add_argument("--" + name.replace("_", "-"), default=default)
    known, _ = pre.parse_known_args(argv)
    return known


def command_parser(prog: str, command: str, fn: Callable) -> OneLineParser:
    """The parser of `python -m <prog> <command>`, its description the command function's docstring."""
    return OneLineParser(prog=f"python -m {prog} {command}", description=(fn.__doc__ or "").strip() or None)


def say(msg: str) -> None:
    """A progress or status line for the user: on stderr (stdout stays for results), flushed at once."""
    print(msg, file=sys.stderr, flush=True)


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> NoReturn:
    """Run an entry point; user errors become one line on stderr and a non-zero exit, without a traceback."""
    try:
        code = main(argv)
    except GenlabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume from the last checkpoint", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
