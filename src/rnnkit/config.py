"""Typed configs as dataclasses, and the bridge from their fields to CLI flags.

Every task keeps its hyperparameters in a ``@dataclass`` whose fields carry a one-line help text
(``field(default, "help")``). The CLI builds its flags from those fields, so a flag is always named
like the config field (``hidden_size`` -> ``--hidden-size``) and a run directory written by the CLI
loads in Python and the other way round.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import types
import typing
from typing import Any, Type, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


def field(default: Any, help: str, *, choices: tuple | None = None, cli: bool = True) -> Any:
    """A dataclass field with help text (and optional choices) kept for the CLI.

    A mutable default (a list, or a nested config such as a task's ``train: TrainConfig``) is copied for
    every instance."""
    meta = {"help": help, "choices": choices, "cli": cli}
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _base_type(tp: Any) -> tuple[Any, bool]:
    """Strip ``Optional[...]``; returns (type, optional)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _optional(conv):
    def parse(text: str):
        return None if text.strip().lower() in ("none", "") else conv(text)
    parse.__name__ = getattr(conv, "__name__", "value")
    return parse


class _StoreGiven(argparse.Action):
    """argparse's plain store that also notes the field as given on the command line (see given_fields)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        _note_given(namespace, self.dest)


class _BoolFlag(argparse.Action):
    """``--x`` sets True, ``--no-x`` sets False (and notes the field as given)."""

    def __init__(self, option_strings, dest, **kwargs):
        kwargs["nargs"] = 0
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, not option_string.startswith("--no-"))
        _note_given(namespace, self.dest)


def _note_given(namespace: argparse.Namespace, dest: str) -> None:
    given = set(getattr(namespace, "_given_fields", set()))
    given.add(dest)
    setattr(namespace, "_given_fields", given)


def given_fields(args: argparse.Namespace) -> set[str]:
    """The config fields whose flags were typed on the command line (not left at their defaults)."""
    return set(getattr(args, "_given_fields", set()))


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def flag_name(name: str) -> str:
    """The CLI spelling of config field ``name``: ``hidden_size`` -> ``--hidden-size``."""
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, cls: Type[Any], *, skip: tuple[str, ...] = (),
                         defaults: Any = None, title: str | None = None) -> None:
    """Add one ``--flag`` per field of dataclass ``cls`` (help text and default shown once).

    A field that holds a nested config (a task's ``train: TrainConfig``) adds that config's fields as
    flat flags in a group of their own (``--lr``, not ``--train-lr``), with the task's defaults for them.
    Booleans are ``--x`` / ``--no-x``. ``defaults`` (an instance of ``cls``) overrides the class defaults.
    """
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(title or f"{cls.__name__} (config fields)")
    nested = []
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        default = getattr(defaults, f.name) if defaults is not None else _default(f)
        if dataclasses.is_dataclass(default):
            nested.append((type(default), default))
            continue
        tp, optional = _base_type(hints[f.name])
        # '%' would start an argparse format directive ("70% train" crashed --help): escape it.
        help_text = f.metadata.get("help", "").replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": f.name, "default": default}
        if tp is bool:
            group.add_argument(flag_name(f.name), "--no-" + f.name.replace("_", "-"), action=_BoolFlag,
                               help=f"{help_text} (default: {'on' if default else 'off'})", **kwargs)
            continue
        kwargs.update(help=help_text + " (default: %(default)s)", action=_StoreGiven)
        if f.metadata.get("choices"):
            kwargs["choices"] = list(f.metadata["choices"])
        if get_origin(tp) in (list, tuple):
            (item,) = get_args(tp)[:1]
            kwargs["type"] = item
            kwargs["nargs"] = "*"
        else:
            kwargs["type"] = _optional(tp) if optional else tp
        group.add_argument(flag_name(f.name), **kwargs)
    for sub_cls, sub_default in nested:
        add_config_arguments(parser, sub_cls, skip=skip, defaults=sub_default,
                             title=f"{sub_cls.__name__} (training options)")


def config_from_args(cls: Type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """Build ``cls`` from the parsed flags that match its field names (nested configs from theirs)."""
    values = {}
    for f in dataclasses.fields(cls):
        default = _default(f)
        if dataclasses.is_dataclass(default):
            values[f.name] = config_from_args(type(default), args) if any(
                hasattr(args, g.name) for g in dataclasses.fields(default)) else default
        elif hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    values.update(overrides)
    return cls(**values)


def add_run_arguments(parser: argparse.ArgumentParser, *, default_run_dir: str | None) -> None:
    """The flags every train verb shares besides its config: ``--run-dir``, ``--resume``, ``--overwrite``,
    ``--dry-run``."""
    group = parser.add_argument_group("run")
    group.add_argument("--run-dir", default=default_run_dir,
                       help="where the run is saved: checkpoints, metrics.jsonl, loss.png, config.json"
                            + (" (default: %(default)s)" if default_run_dir else " (default: not saved)"))
    group.add_argument("--resume", action="store_true",
                       help="continue the run in --run-dir where it stopped, with its own config; only "
                            "budgets (--epochs, --max-minutes, ...) may change")
    group.add_argument("--overwrite", action="store_true",
                       help="replace an earlier run in --run-dir: its files are deleted first (without this "
                            "flag or --resume, a --run-dir that holds a run is refused)")
    group.add_argument("--dry-run", action="store_true",
                       help="train on one tiny batch and evaluate a little: a smoke test that takes seconds")


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(cls: Type[T], data: dict, *, source: str = "config") -> T:
    """Rebuild a config from JSON data (nested configs from nested objects); unknown keys are an error
    naming them and the source."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {unknown} for {cls.__name__}; "
                         f"known fields are {sorted(fields)}")
    values = dict(data)
    for name, value in data.items():
        default = _default(fields[name])
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            values[name] = config_from_dict(type(default), {**dataclasses.asdict(default), **value},
                                            source=f"{source}: {name}")
    try:
        return cls(**values)
    except (ValueError, TypeError) as err:
        # A bad value in a file: the message names the file as well as the field.
        raise ValueError(f"{source}: {err}") from None
