"""Typed configs as dataclasses, and the bridge from their fields to CLI flags.

Every task keeps its hyperparameters in a ``@dataclass`` whose fields carry a one-line help text
(``field(default, "help")``). The CLI builds its flags from those fields, so a flag is always named
like the config field (``hidden_size`` -> ``--hidden-size``) and a run directory written by the CLI
loads in Python and the other way round. ``--help`` groups the flags by role (``group="data"``, "model",
"training", "output", "decoding"), never by class name.

A renamed field keeps its old spelling for one release: a config class lists ``RENAMED = {"old": "new"}``;
the old flag still parses (hidden from ``--help``, with a one-line warning naming the new one), an old
``config.json`` still loads, and :func:`renamed` does the same for a function's keyword arguments.

This module imports no torch: every ``--help`` is built from it.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import types
import typing
import warnings
from typing import Any, Callable, Type, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


def field(default: Any, help: str, *, choices: tuple | None = None, cli: bool = True,
          group: str | None = None, limits: dict[str, Any] | None = None) -> Any:
    """A dataclass field with help text (and optional choices) kept for the CLI.

    ``group``: the role its flag is listed under in ``--help`` (data, model, training, output, decoding; by
    default the title ``add_config_arguments`` is given). ``limits``: the bounds a request field (a task's
    ``request_class``) is held to over HTTP, by pydantic's names (``ge``, ``gt``, ``le``, ``lt``,
    ``min_length``, ``max_length``; ``items``: a dict of the same for each item of a list); a str value names
    the :class:`~rnnkit.serve.ServeConfig` field that sets it (``{"le": "max_tokens"}``). A mutable default (a
    list, or a nested config such as a task's ``train: TrainConfig``) is copied for every instance."""
    meta = {"help": help, "choices": choices, "cli": cli, "group": group, "limits": limits or {}}
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

    Flags are listed under their field's ``group`` (else ``title``; else with the parser's own options): roles
    such as data, model, training, output, decoding. A field that holds a nested config (a task's ``train:
    TrainConfig``) adds that config's fields as flat flags (``--lr``, not ``--train-lr``) under "training",
    with the task's defaults for them. Booleans are ``--x`` / ``--no-x``. ``defaults`` (an instance of ``cls``)
    overrides the class defaults. Several calls on one parser share its headings (one "data" group, not two).
    The old spellings in ``cls.RENAMED`` parse too, hidden from ``--help``.
    """
    hints = typing.get_type_hints(cls)
    groups = parser.__dict__.setdefault("_rnnkit_groups", {})      # heading -> argument group, per parser

    def group_for(name: str | None):
        name = name or title
        if name is None:
            return parser
        if name not in groups:
            groups[name] = parser.add_argument_group(name)
        return groups[name]

    nested = []
    added: dict[str, dict[str, Any]] = {}          # field name -> its add_argument keywords (for old spellings)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        default = getattr(defaults, f.name) if defaults is not None else _default(f)
        if dataclasses.is_dataclass(default):
            nested.append((type(default), default, f.metadata.get("group") or "training"))
            continue
        group = group_for(f.metadata.get("group"))
        tp, optional = _base_type(hints[f.name])
        # '%' would start an argparse format directive ("70% train" crashed --help): escape it.
        help_text = f.metadata.get("help", "").replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": f.name, "default": default}
        if tp is bool:
            group.add_argument(flag_name(f.name), "--no-" + f.name.replace("_", "-"), action=_BoolFlag,
                               help=f"{help_text} (default: {'on' if default else 'off'})", **kwargs)
            added[f.name] = {"dest": f.name, "action": _BoolFlag}
            continue
        # The default once: as the help text words it, else as argparse prints the value.
        shown = help_text if "default:" in help_text else help_text + " (default: %(default)s)"
        kwargs.update(help=shown, action=_StoreGiven)
        if f.metadata.get("choices"):
            kwargs["choices"] = list(f.metadata["choices"])
        if get_origin(tp) in (list, tuple):
            (item,) = get_args(tp)[:1]
            kwargs["type"] = item
            kwargs["nargs"] = "*"
        else:
            kwargs["type"] = _optional(tp) if optional else tp
        group.add_argument(flag_name(f.name), **kwargs)
        added[f.name] = kwargs
    _add_old_spellings(parser, cls, added)
    for sub_cls, sub_default, sub_title in nested:
        add_config_arguments(parser, sub_cls, skip=skip, defaults=sub_default, title=sub_title)


# ---------------------------------------------------------------------------------------------------------
# Renamed flags and keyword arguments: the old spelling works for one release, with a warning
# ---------------------------------------------------------------------------------------------------------

def warn_renamed(old: str, new: str, *, stacklevel: int = 2) -> None:
    """The one-line warning for an old spelling: ``--seed-text is renamed --prompt; ...``."""
    warnings.warn(f"{old} is renamed {new}; the old name goes in the next release", FutureWarning,
                  stacklevel=stacklevel + 1)


def renamed_fields(cls: Type[Any]) -> dict[str, str]:
    """``cls.RENAMED``: old field name -> new one. A new name ``no_x`` means the old one is boolean field
    ``x`` inverted (seq2seq's ``sample=True`` is ``greedy=False``)."""
    return dict(getattr(cls, "RENAMED", {}))


def rename_values(renames: dict[str, str], values: dict[str, Any], *, warn: bool = True) -> dict[str, Any]:
    """``values`` with the old names in ``renames`` (old -> new, as in ``RENAMED``) replaced by the new ones
    (``warn``: a FutureWarning each). Giving both the old and the new name of one setting is an error naming
    both."""
    out = dict(values)
    for old, new in renames.items():
        if old not in out:
            continue
        value = out.pop(old)
        inverted = new.startswith("no_")                 # sample=True is greedy=False
        target = new[3:] if inverted else new
        if target in out:
            raise ValueError(f"{old}={value!r} and {target}={out[target]!r}: the same setting twice ({old} is "
                             f"the old name of {target}); expected {target} only")
        if warn:
            warn_renamed(old, f"{target} ({old}=True is {target}=False)" if inverted else new, stacklevel=3)
        out[target] = not value if inverted else value
    return out


def renamed(**renames: str) -> Callable:
    """Decorator: a function's old keyword names keep working, with a FutureWarning naming the new one::

        @renamed(seed_text="prompt", length="max_tokens")
        def generate(self, prompt="", max_tokens=200): ...

    A new name ``no_x`` means the old keyword is boolean ``x`` inverted (``sample=True`` -> ``greedy=False``).
    """
    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if renames.keys() & kwargs.keys():
                try:
                    kwargs = rename_values(renames, kwargs)      # warns, pointing at the caller
                except ValueError as err:
                    raise TypeError(f"{func.__name__}(): {err}") from None
            return func(*args, **kwargs)

        return wrapper
    return decorate


class _OldSpelling(argparse.Action):
    """An old flag: parsed like the new one (into the same field), with a warning that names the new one."""

    def __init__(self, option_strings, dest, *, new_flag: str, value: Any = None, **kwargs):
        self.new_flag, self.value = new_flag, value       # value: what a boolean flag sets (--sample: False)
        if value is not None:
            kwargs["nargs"] = 0
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        warn_renamed(option_string, self.new_flag)
        setattr(namespace, self.dest, values if self.value is None else self.value)
        _note_given(namespace, self.dest)


def add_old_flag(parser: argparse.ArgumentParser, old: str, new: str, **kwargs: Any) -> None:
    """A hand-written flag's old spelling ``old``: parsed into the same ``dest`` as ``new`` (give the same
    ``type``/``choices``), hidden from ``--help``, with the one-line warning naming ``new``."""
    parser.add_argument(old, action=_OldSpelling, new_flag=new, help=argparse.SUPPRESS, **kwargs)


def _add_old_spellings(parser: argparse.ArgumentParser, cls: Type[Any], added: dict[str, dict[str, Any]]) -> None:
    """Hidden flags for ``cls.RENAMED`` whose new field got a flag here (help=SUPPRESS: never offered)."""
    for old, new in renamed_fields(cls).items():
        field_name = new[3:] if new.startswith("no_") else new
        if field_name not in added:
            continue
        kwargs = {k: v for k, v in added[field_name].items() if k in ("dest", "type", "nargs", "choices")}
        if new.startswith("no_") or added[field_name].get("action") is _BoolFlag:
            kwargs["value"] = not new.startswith("no_")
        parser.add_argument(flag_name(old), action=_OldSpelling, new_flag=flag_name(new), help=argparse.SUPPRESS,
                            **kwargs)


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


def add_train_arguments(parser: argparse.ArgumentParser, config_class: type, *,
                        default_run_dir: str | None, skip: tuple[str, ...] = ()) -> None:
    """A train verb's flags: the config's (training options as flat flags) plus ``--run-dir``, ``--resume``,
    ``--overwrite``, ``--dry-run``."""
    add_config_arguments(parser, config_class, skip=skip)
    add_run_arguments(parser, default_run_dir=default_run_dir)


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(cls: Type[T], data: dict, *, source: str = "config") -> T:
    """Rebuild a config from JSON data (nested configs from nested objects); unknown keys are an error
    naming them and the source."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    data = rename_values(renamed_fields(cls), data, warn=False)    # a run saved before a rename still loads
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {unknown} for {cls.__name__}; "
                         f"known fields are {sorted(fields)}")
    required = [f.name for f in fields.values()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"{source}: no {missing[0]!r}; expected a value for each of {', '.join(required)}")
    values = dict(data)
    for name, value in data.items():
        if name in required:
            continue            # no default: nothing nested to fill in
        default = _default(fields[name])
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            values[name] = config_from_dict(type(default), {**dataclasses.asdict(default), **value},
                                            source=f"{source}: {name}")
    try:
        return cls(**values)
    except (ValueError, TypeError) as err:
        # A bad value in a file: the message names the file as well as the field.
        raise ValueError(f"{source}: {err}") from None


# The Trainer's checkpoints an apply or eval verb may read instead of the finished model (--checkpoint).
CHECKPOINTS = ("best", "last")


def add_checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint best|last``: read the Trainer's checkpoint instead of the finished model (the one way to
    use a run whose training has not finished). Every apply and eval verb takes it."""
    parser.add_argument("--checkpoint", default=None, choices=CHECKPOINTS,
                        help="use the Trainer's best or last checkpoint instead of the finished model (a run "
                             "stopped before its training finished has only these)")
