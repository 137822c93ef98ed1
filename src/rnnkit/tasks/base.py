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
* A run records a digest of its data (``_data_record``): a resumed run refuses data that changed. A new
  run never silently replaces an earlier one in its folder (``claim_run_dir``; ``--overwrite`` says so).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnnkit import _checks
from rnnkit.config import (add_config_arguments, add_run_arguments, config_from_args, config_from_dict,
                           config_to_dict, flag_name, given_fields)
from rnnkit.runs.checkpoint import RunDir, atomic_write_bytes, load_weights
from rnnkit.runs.schema import read_run_config, write_run_config
from rnnkit.runs.schema import task_class as schema_task_class   # base's own task_class is an argument name
from rnnkit.training import distributed

# What a resumed run may change: its budgets and how it reports, never the model or the data.
RESUME_FIELDS = ("epochs", "max_steps", "max_minutes", "early_stop_patience", "device", "precision",
                 "log_every", "threads")

# What ``--overwrite`` deletes from a run directory: the files and folders rnnkit writes there (checkpoints,
# metrics, plots, reports, side files). Anything else in the folder is left alone.
RUN_FILES = ("config.json", "metrics.jsonl", "loss.png", "*.safetensors", "trainer_state.json", "tokenizer.json",
             "bow_vocabulary.json", "standardize.json", "*_metrics.json", "*_confusion.png", "eval", "eval.json",
             "compare.csv", "compare.md", "predictions.png", "losses.png", "checkpoint*", ".*.tmp")


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
    train_command: ClassVar[str] = ""     # the CLI verb that trains it, for messages ("rnnkit textgen train")

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
        raise ValueError(f"a {raw.get('task')!r} run of format_version {raw.get('format_version', 1)}, which "
                         f"this rnnkit cannot convert: train the run again")

    # -- what a run trains on, and how it goes on -------------------------------------------------------------

    @classmethod
    def command(cls) -> str:
        """The CLI verb that trains this task (for the commands messages suggest)."""
        return cls.train_command or f"rnnkit {cls.name} train"

    def _data_record(self, source: str, *data: Any, run_dir: str | Path | None = None,
                     resume: bool = False) -> dict[str, Any]:
        """``{"source", "digest"}`` for config.json's ``data``: what the run trains on and a digest of it.

        Every task calls this with the data its model trains and validates on. A resumed run must see the
        same data (its held-out part and its batches depend on it): with ``resume`` a digest that differs
        from the one the run recorded is refused, naming ``source``.
        """
        digest = data_digest(*data)
        if resume and run_dir is not None:
            recorded = read_run_config(run_dir, self.name).get("data", {}).get("digest")
            # Runs of older versions recorded no digest: nothing to compare with.
            if recorded is not None and recorded != digest:
                raise ValueError(
                    f"{source}: the training data changed since the run in {run_dir} began (digest "
                    f"{recorded[:19]}... then, {digest[:19]}... now); expected the same data to resume: "
                    f"put the data back, or start a new run (another --run-dir, or --overwrite)")
        return {"source": source, "digest": digest}

    def _refuse_spent_budget(self, trainer: Any, run_dir: str | Path | None, resume: bool) -> None:
        """After ``trainer.fit(..., resume=True)``: a run that trained nothing because its budget was already
        spent is refused, saying which budget and how to extend it (rather than reporting metrics that no
        epoch of this call computed). Its config.json is put back as it was before this fit rewrote it."""
        if not resume or trainer.interrupted or trainer.metrics:
            return       # trainer.metrics is set by every epoch this call ran, partial ones included
        # The flag to give again: about twice what the run has done so far.
        train, epoch, step = trainer.config, trainer.epoch, trainer.step
        minutes = trainer.train_seconds / 60
        if trainer.stop_reason == "early_stop":
            patience = train.early_stop_patience
            spent = (f"it stopped early after {patience} epochs without improvement (--early-stop-patience "
                     f"{patience})")
            flag = f"--early-stop-patience {2 * patience}"
        elif trainer.stop_reason == "max_steps":
            spent = f"its --max-steps {train.max_steps} budget is used up ({step} steps taken)"
            flag = f"--max-steps {2 * step}"
        elif trainer.stop_reason == "max_minutes":
            spent = f"its --max-minutes {train.max_minutes:g} budget is used up ({minutes:.3g} minutes trained)"
            flag = f"--max-minutes {max(2 * train.max_minutes, round(2 * minutes, 1)):g}"
        else:
            spent, flag = f"all --epochs {train.epochs} epochs are trained", f"--epochs {max(2 * epoch, epoch + 1)}"
        replaced = self.__dict__.get("_replaced_config")
        if run_dir is not None and replaced is not None:
            atomic_write_bytes(RunDir(run_dir).config_path, replaced)   # the refused budgets leave no trace
        raise ValueError(f"{run_dir}: the run is complete: {spent}; expected a larger budget to train on, "
                         f"e.g. {resume_command(self.command(), run_dir)} {flag}")

    # -- saving and loading ----------------------------------------------------------------------------------

    def _model_weights(self, run: RunDir, final_name: str) -> tuple[Path, dict[str, Any]]:
        """(file, tensors) of the run's model: ``final_name`` when training finished; else (stopped or killed
        before it was written) the best checkpoint, else the last, with a note saying so."""
        if run.file(final_name).is_file():
            return run.file(final_name), load_weights(run.file(final_name))
        best = run.best_path.is_file()
        if not best and not run.weights_path.is_file():
            raise FileNotFoundError(f"{run.path}: the run has no trained model: no {final_name} (its training did "
                                    f"not finish) and no checkpoint; expected a finished run: go on with "
                                    f"{resume_command(self.command(), run.path)}, or train it again")
        print(f"{run.path}: its training has not finished (no {final_name}): using its {'best' if best else 'last'} "
              f"checkpoint; finish it with {resume_command(self.command(), run.path)}", file=sys.stderr)
        return (run.best_path if best else run.weights_path), run.load_weights(best=best)

    def write_config(self, path: str | Path | RunDir) -> None:
        """Write config.json alone (at the start of fit, so a run directory in training says what it is)."""
        run = RunDir(path)
        run.path.mkdir(parents=True, exist_ok=True)
        # What this replaces: a refused resume puts it back (see _refuse_spent_budget).
        self._replaced_config = run.config_path.read_bytes() if run.config_path.is_file() else None
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
    """The config's flags (training options as flat flags) plus ``--run-dir``, ``--resume``, ``--overwrite``,
    ``--dry-run``."""
    add_config_arguments(parser, config_class, skip=skip)
    add_run_arguments(parser, default_run_dir=default_run_dir)


def train_config_from_args(task_class: type, args: argparse.Namespace,
                           resume_fields: tuple[str, ...] = ()) -> Any:
    """The config a train verb runs with: from the flags, or with ``--resume`` the run's own config with
    only the budget flags (``RESUME_FIELDS`` and the task's ``resume_fields``) given on the command line.

    Without ``--resume`` the ``--run-dir`` must not hold a run already (``--overwrite`` deletes it first)."""
    overwrite = getattr(args, "overwrite", False)
    if not args.resume:
        config = config_from_args(task_class.config_class, args)
        claim_run_dir(args.run_dir, task_class, overwrite=overwrite)
        return config
    if overwrite:
        _checks.fail("--overwrite", True, "no --overwrite with --resume (--resume goes on with the run in "
                                          "--run-dir, --overwrite replaces it)")
    if not args.run_dir:
        _checks.fail("--resume", True, "a --run-dir to resume")
    doc = read_run_config(args.run_dir)
    if doc["task"] != task_class.name:
        other = schema_task_class(doc["task"])
        raise ValueError(f"{RunDir(args.run_dir).config_path}: this run directory holds a {doc['task']!r} run, "
                         f"expected {task_class.name!r}: resume it with its own command, "
                         f"{resume_command(other.command(), args.run_dir)}")
    config = config_from_dict(task_class.config_class, doc["config"], source=str(RunDir(args.run_dir).config_path))
    allowed = set(RESUME_FIELDS) | set(resume_fields)
    fixed = sorted(given_fields(args) - allowed)
    if fixed:
        name = fixed[0]
        _checks.fail(flag_name(name), getattr(args, name), f"no {flag_name(name)} with --resume: the run keeps "
                     f"its own config; a resumed run may change only "
                     + ", ".join(flag_name(f) for f in sorted(allowed)))
    return replace_config(config, **{name: getattr(args, name) for name in given_fields(args)})


def holds_run(path: str | Path | None) -> bool:
    """Whether the folder holds (part of) an rnnkit run: its config, metrics or a checkpoint."""
    if path is None or not Path(path).is_dir():
        return False
    run = RunDir(path)
    return run.config_path.exists() or run.metrics_path.exists() or run.has_checkpoint()


def claim_run_dir(path: str | Path | None, task_class: type, *, overwrite: bool = False) -> None:
    """Make sure a new run does not silently replace an earlier one in ``path`` (and mix its metrics.jsonl
    with the new run's): refuse a folder that holds a run, or with ``overwrite`` delete that run's files."""
    if not holds_run(path):
        return
    if overwrite:
        if distributed.is_main():        # under torchrun one process deletes, not all of them at once
            clear_run(path)
        return
    try:
        task = RunDir(path).read_config().get("task")
    except (ValueError, OSError):
        task = None      # a damaged config.json: still a run not to overwrite silently
    command = task_class.command()
    if task == task_class.name:
        raise ValueError(f"{path}: holds an earlier {task} run, which training again would overwrite; expected "
                         f"a new folder: go on with that run with --resume "
                         f"({resume_command(command, path)}), choose another --run-dir, or replace it with "
                         f"--overwrite")
    what = f"a {task!r} run" if task else "an rnnkit run"
    raise ValueError(f"{path}: holds {what}, which training again would overwrite; expected a new folder: "
                     f"choose another --run-dir, or replace that run with --overwrite")


def clear_run(path: str | Path) -> None:
    """Delete the files and folders of an rnnkit run in ``path`` (see ``RUN_FILES``); other files stay."""
    for pattern in RUN_FILES:
        for item in sorted(Path(path).glob(pattern)):
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            else:
                item.unlink(missing_ok=True)


def resume_command(command: str, run_dir: str | Path) -> str:
    """The command line that goes on with the run in ``run_dir`` (quoted for a POSIX shell)."""
    return f"{command} --run-dir {shlex.quote(str(run_dir))} --resume"


def stop_if_interrupted(trainer: Any, run_dir: str | Path | None, command: str) -> None:
    """After ``fit``: when Ctrl-C (or SIGTERM) stopped training, stop here too, with the command that goes on.

    The Trainer saved a checkpoint and returned; the task returned too. Raising ``KeyboardInterrupt`` again
    ends the command (exit 130, or 143 for SIGTERM) before any test evaluation or report."""
    if trainer is None or not trainer.interrupted:
        return
    if run_dir is not None and distributed.is_main():
        print(f"resume with: {resume_command(command, run_dir)}", file=sys.stderr)
    raise KeyboardInterrupt


# ---------------------------------------------------------------------------------------------------------
# The digest of a run's data
# ---------------------------------------------------------------------------------------------------------

def data_digest(*parts: Any) -> str:
    """``"sha256:<hex>"`` over ``parts``: texts, arrays, numbers and lists, dicts and dataclasses of them.

    The same data gives the same digest on every machine (arrays by dtype, shape and bytes; text as UTF-8);
    each item is framed by its type and length, so ``["ab", "c"]`` and ``["a", "bc"]`` differ."""
    h = hashlib.sha256()

    def feed(tag: bytes, data: bytes = b"") -> None:
        h.update(tag + len(data).to_bytes(8, "little") + data)

    def walk(obj: Any) -> None:
        if obj is None:
            feed(b"n")
        elif isinstance(obj, str):
            feed(b"s", obj.encode("utf-8", "surrogatepass"))
        elif isinstance(obj, bytes):
            feed(b"b", obj)
        elif isinstance(obj, (bool, int, float, np.generic)):
            feed(b"v", repr(obj.item() if isinstance(obj, np.generic) else obj).encode())
        elif isinstance(obj, np.ndarray) and obj.dtype != object:
            feed(b"a", f"{obj.dtype.str}{obj.shape}".encode())
            feed(b"d", np.ascontiguousarray(obj).tobytes())
        elif hasattr(obj, "numpy") and hasattr(obj, "detach"):       # a torch tensor
            walk(obj.detach().cpu().numpy())
        elif isinstance(obj, dict):
            feed(b"m", str(len(obj)).encode())
            for key in sorted(obj, key=str):
                walk(str(key))
                walk(obj[key])
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            walk({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
        elif isinstance(obj, (list, tuple, np.ndarray)):             # object arrays item by item
            feed(b"l", str(len(obj)).encode())
            for item in obj:
                walk(item)
        else:
            walk(str(obj))

    for part in parts:
        walk(part)
    return "sha256:" + h.hexdigest()
