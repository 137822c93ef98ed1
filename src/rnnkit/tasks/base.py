"""``Task``: the one shape every task object has (text generation, classification, forecasting, ...).

A task object behaves like a scikit-learn estimator::

    clf = SequenceClassifier(model="bigru", lr=3e-3)     # __init__ only stores the config
    clf.fit(data, run_dir="runs/imdb")                   # validates and builds from the data, trains, returns self
    clf.evaluate(test_data)                              # -> {"accuracy": ..., ...}
    clf.save("runs/imdb"); SequenceClassifier.load("runs/imdb"); rnnkit.load("runs/imdb")
    sklearn.base.clone(clf)                              # get_params / set_params

* The config is one dataclass per task (``config_class``) whose ``train`` field is the shared
  :class:`~rnnkit.training.TrainConfig`. Keyword overrides use flat names for both: ``lr=3e-3`` sets
  ``config.train.lr``, ``hidden_size=64`` sets ``config.hidden_size`` (the CLI flags are the same names).
* What ``fit`` learns ends in ``_`` (``model_``, ``tokenizer_``); reading one before ``fit`` or ``load``
  raises :class:`NotFittedError`, which says what to call.
* ``save``/``load`` write and read one ``config.json`` schema (:mod:`rnnkit.runs.schema`) plus the
  task's own files (``_save_files`` / ``_load_files``).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from rnnkit import _checks
from rnnkit.config import (add_config_arguments, add_run_arguments, config_from_args, config_from_dict,
                           config_to_dict, flag_name, given_fields)
from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.schema import read_run_config, write_run_config

# What a resumed run may change: its budgets and how it reports, never the model or the data.
RESUME_FIELDS = ("epochs", "max_steps", "max_minutes", "early_stop_patience", "device", "precision",
                 "log_every")


class NotFittedError(ValueError, AttributeError):
    """A task object was used before ``fit`` or ``load`` (like scikit-learn's ``NotFittedError``)."""


def _train_field_names(config: Any) -> set[str]:
    train = getattr(config, "train", None)
    return {f.name for f in dataclasses.fields(train)} if dataclasses.is_dataclass(train) else set()


def replace_config(config: Any, **values: Any) -> Any:
    """A copy of a task config with ``values`` set; names of training options go to ``config.train``.

    An unknown name is an error that lists the known ones.
    """
    own = {f.name for f in dataclasses.fields(config)} - {"train"}
    train_names = _train_field_names(config)
    unknown = sorted(set(values) - own - train_names)
    if unknown:
        raise ValueError(f"{unknown[0]}={values[unknown[0]]!r}: expected a field of {type(config).__name__} "
                         f"({', '.join(sorted(own | train_names))})")
    train_values = {k: v for k, v in values.items() if k in train_names and k not in own}
    task_values = {k: v for k, v in values.items() if k in own}
    if train_values:
        task_values["train"] = dataclasses.replace(config.train, **train_values)
    return dataclasses.replace(config, **task_values) if task_values else config


class Task:
    """Base of every task object; see the module docstring."""

    name: ClassVar[str] = ""              # the task's key in config.json ("textgen")
    config_class: ClassVar[type] = object  # its config dataclass
    fitted_attribute: ClassVar[str] = "model_"   # present exactly when the object is fitted

    def __init__(self, config: Any = None, **overrides: Any):
        if config is None:
            config = self.config_class()
        elif isinstance(config, dict):
            config = config_from_dict(self.config_class, config, source="config")
        elif not isinstance(config, self.config_class):
            _checks.fail("config", config, f"a {self.config_class.__name__}, a dict of its fields, or None")
        # Stored as given (no copy) when there are no overrides: scikit-learn's clone checks identity.
        self.config = replace_config(config, **overrides) if overrides else config

    # -- scikit-learn's estimator protocol -----------------------------------------------------------------

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Every config field by its flat name (training options too): what ``__init__`` takes back."""
        params = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config) if f.name != "train"}
        train = getattr(self.config, "train", None)
        if dataclasses.is_dataclass(train):
            params.update({f.name: getattr(train, f.name) for f in dataclasses.fields(train)})
        return params

    def set_params(self, **params: Any) -> "Task":
        self.config = replace_config(self.config, **params)
        return self

    def __repr__(self) -> str:
        default = type(self)().get_params()
        changed = {k: v for k, v in self.get_params().items() if default.get(k, object()) != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # -- fitted or not -------------------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes that do not exist: a learned one (trailing "_") means "not fitted yet".
        if name.endswith("_") and not name.startswith("__"):
            raise NotFittedError(self._not_fitted_text(f"{name} is learned by fit()"))
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def is_fitted(self) -> bool:
        return self.fitted_attribute in self.__dict__

    def _check_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(self._not_fitted_text("it has no trained model"))

    def _not_fitted_text(self, why: str) -> str:
        cls = type(self).__name__
        return f"this {cls} is not fitted ({why}): call fit(...) first, or {cls}.load(run_dir)"

    # -- what every task implements ------------------------------------------------------------------------

    def fit(self, *args: Any, **kwargs: Any) -> "Task":
        raise NotImplementedError  # abstract: each task defines it

    def evaluate(self, data: Any) -> dict[str, float]:
        raise NotImplementedError  # abstract: each task defines it

    def _save_files(self, run: RunDir) -> None:
        """Write the weights and side files (tokenizer, scales) into ``run``."""
        raise NotImplementedError  # abstract: each task defines it

    def _load_files(self, run: RunDir, fitted: dict[str, Any], **options: Any) -> None:
        """Read what ``_save_files`` wrote (``fitted``: the config.json's ``fitted`` object)."""
        raise NotImplementedError  # abstract: each task defines it

    def fitted_values(self) -> dict[str, Any]:
        """Small learned values that are not tensors, for config.json's ``fitted`` object."""
        return {}

    @classmethod
    def upgrade_config(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """A config.json of an older format -> the current schema (tasks that wrote one override this)."""
        raise ValueError(f"config.json of task {raw.get('task')!r} has format_version "
                         f"{raw.get('format_version', 1)}, which this rnnkit cannot convert: train the run again")

    # -- saving and loading ----------------------------------------------------------------------------------

    def write_config(self, path: str | Path | RunDir) -> None:
        """Write config.json alone (at the start of fit, so a run directory in training says what it is)."""
        run = RunDir(path)
        run.path.mkdir(parents=True, exist_ok=True)
        write_run_config(run, self.name, config_to_dict(self.config), self.__dict__.get("data_", {}),
                         self.fitted_values() if self.is_fitted() else {})

    def save(self, path: str | Path) -> "Task":
        """Write config.json and the task's files into the run directory ``path``."""
        self._check_fitted()
        self.write_config(path)
        self._save_files(RunDir(path))
        return self

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> "Task":
        """A fitted object from a run directory written by ``fit(run_dir=...)``, ``save`` or the CLI."""
        run = RunDir(path)
        doc = read_run_config(run, cls.name)
        self = cls(config_from_dict(cls.config_class, doc["config"], source=str(run.config_path)))
        self.data_ = doc.get("data", {})
        self._load_files(run, doc.get("fitted", {}), **options)
        return self


# ---------------------------------------------------------------------------------------------------------
# The CLI side: every train verb has the same flags and the same --resume
# ---------------------------------------------------------------------------------------------------------

def add_train_arguments(parser: argparse.ArgumentParser, config_class: type, *,
                        default_run_dir: str | None, skip: tuple[str, ...] = ()) -> None:
    """The config's flags (training options as flat flags) plus ``--run-dir``, ``--resume``, ``--dry-run``."""
    add_config_arguments(parser, config_class, skip=skip)
    add_run_arguments(parser, default_run_dir=default_run_dir)


def train_config_from_args(task_class: type, args: argparse.Namespace,
                           resume_fields: tuple[str, ...] = ()) -> Any:
    """The config a train verb runs with: from the flags, or with ``--resume`` the run's own config with
    only the budget flags (``RESUME_FIELDS`` and the task's ``resume_fields``) given on the command line."""
    if not args.resume:
        return config_from_args(task_class.config_class, args)
    if not args.run_dir:
        _checks.fail("--resume", True, "a --run-dir to resume")
    doc = read_run_config(args.run_dir, task_class.name)
    config = config_from_dict(task_class.config_class, doc["config"], source=str(RunDir(args.run_dir).config_path))
    allowed = set(RESUME_FIELDS) | set(resume_fields)
    fixed = sorted(given_fields(args) - allowed)
    if fixed:
        name = fixed[0]
        _checks.fail(flag_name(name), getattr(args, name), f"no {flag_name(name)} with --resume: the run keeps "
                     f"its own config; a resumed run may change only "
                     + ", ".join(flag_name(f) for f in sorted(allowed)))
    return replace_config(config, **{name: getattr(args, name) for name in given_fields(args)})
