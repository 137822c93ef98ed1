"""Typed configs as dataclasses, and the bridge from their fields to CLI flags.

Every task keeps its hyperparameters in a ``@dataclass`` whose fields carry a one-line help text
(``field(default, "help")``). The CLI builds its flags from those fields, so a flag is always named
like the config field (``hidden_size`` -> ``--hidden-size``) and a run directory written by the CLI
loads in Python and the other way round.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Type, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


def field(default: Any, help: str, *, choices: tuple | None = None, cli: bool = True) -> Any:
    """A dataclass field with help text (and optional choices) kept for the CLI."""
    meta = {"help": help, "choices": choices, "cli": cli}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _base_type(tp: Any) -> tuple[Any, bool]:
    """Strip ``Optional[...]``; returns (type, optional)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _optional(conv):
    def parse(text: str):
        return None if text.strip().lower() in ("none", "") else conv(text)
    parse.__name__ = getattr(conv, "__name__", "value")
    return parse


class _StoreGiven(argparse.Action):
    """argparse's plain store that also notes the field as given on the command line (see given_fields)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        given = set(getattr(namespace, "_given_fields", set()))
        given.add(self.dest)
        setattr(namespace, "_given_fields", given)


def given_fields(args: argparse.Namespace) -> set[str]:
    """The config fields whose flags were typed on the command line (not left at their defaults)."""
    return set(getattr(args, "_given_fields", set()))


def add_config_arguments(parser: argparse.ArgumentParser, cls: Type[Any], *, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--flag`` per field of dataclass ``cls`` (help text and default shown)."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} (config fields)")
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        tp, optional = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text = f.metadata.get("help", "") + " (default: %(default)s)"
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": f.name, "default": default, "help": help_text, "action": _StoreGiven}
        if f.metadata.get("choices"):
            kwargs["choices"] = list(f.metadata["choices"])
        if tp is bool:
            kwargs["type"] = _parse_bool
            kwargs["metavar"] = "BOOL"
        elif get_origin(tp) in (list, tuple):
            (item,) = get_args(tp)[:1]
            kwargs["type"] = item
            kwargs["nargs"] = "*"
        else:
            kwargs["type"] = _optional(tp) if optional else tp
        group.add_argument(flag, **kwargs)


def config_from_args(cls: Type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """Build ``cls`` from the parsed flags that match its field names."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    values.update(overrides)
    return cls(**values)


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(cls: Type[T], data: dict, *, source: str = "config") -> T:
    """Rebuild a config from JSON data; unknown keys are an error naming them and the source."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {unknown} for {cls.__name__}; "
                         f"known fields are {sorted(names)}")
    return cls(**data)
