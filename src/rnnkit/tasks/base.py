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
import time
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import numpy as np

from rnnkit import _checks
# add_train_arguments lives with the other flag builders in rnnkit.config (no torch: --help is built from it).
from rnnkit.config import (add_train_arguments, config_from_args, config_from_dict, config_to_dict,  # noqa: F401
                           flag_name, given_fields, rename_values, renamed_fields)
from rnnkit.runs.checkpoint import RECORD_KEYS, RunDir
from rnnkit.runs.io import atomic_write_bytes
from rnnkit.runs.weights import check_weights_match, load_weights, save_weights
from rnnkit.runs.schema import (SHA256, check_run_files, file_digests, is_finished, read_run_config,
                                rehash_hint, write_run_config)
from rnnkit.training import distributed

# What a resumed run may change: its budgets and how it reports, never the model or the data.
RESUME_FIELDS = ("epochs", "min_steps", "max_steps", "max_minutes", "early_stop_patience", "device", "precision",
                 "log_every", "threads")

# The finished model's weights, in every task: written by ``save`` (and so at the end of every completed
# ``fit``); the Trainer's checkpoint files sit beside it.
FINAL_WEIGHTS = "final.safetensors"

# What ``--overwrite`` deletes from a run directory: the files and folders every run may hold (checkpoints,
# metrics, plots, reports), plus each registered task's own ``run_files``. Anything else is left alone.
RUN_FILES = ("config.json", "metrics.jsonl", "loss.png", "*.safetensors", "trainer_state.json", "*_metrics.json",
             "eval", "eval.json", "checkpoint*", ".*.tmp")

# The registry of tasks: name in config.json -> Task subclass. A task registers itself by subclassing
# ``Task`` with a name (``class TextGenerator(Task, name="textgen")``); rnnkit.load, the model registry,
# serve and export find it here and never name a task themselves.
TASKS: dict[str, type["Task"]] = {}


def task_class(name: str) -> type["Task"]:
    """The Task subclass registered as ``name`` (rnnkit's own tasks are imported on first use)."""
    if name not in TASKS:
        discover_tasks()
    if name not in TASKS:
        raise ValueError(f"task {name!r}: expected one of {', '.join(map(repr, sorted(TASKS)))}")
    return TASKS[name]


def discover_tasks() -> dict[str, type["Task"]]:
    """Import the task module of every package under rnnkit/tasks (``<package>/task.py``), so that rnnkit's own
    tasks are registered; returns TASKS. (A package's ``__init__`` imports only its torch-free config, so that
    ``--help`` stays fast: the task module is imported here.)"""
    import importlib
    import importlib.util
    import pkgutil

    import rnnkit.tasks

    for module in pkgutil.iter_modules(rnnkit.tasks.__path__):
        if module.ispkg and importlib.util.find_spec(f"rnnkit.tasks.{module.name}.task") is not None:
            importlib.import_module(f"rnnkit.tasks.{module.name}.task")
    return TASKS


class NotFittedError(ValueError, AttributeError):
    """A task object was used before ``fit`` or ``load`` (like scikit-learn's ``NotFittedError``)."""


class RunNotFinished(ValueError):
    """A run directory whose ``fit`` did not complete (stopped, killed, or still training)."""


class ExportRefused(ValueError):
    """A model that cannot be written in the format asked for; the message says why and what can."""


def format_name(fmt: str) -> str:
    """An export format as messages spell it: "onnx" -> "ONNX", "c" -> "C"."""
    return {"onnx": "ONNX", "c": "C"}.get(fmt, fmt)


def refuse_export(what: str, fmt: str, why: str) -> NoReturn:
    """Raise the one-line refusal of an export: ``WHAT: cannot be exported to FORMAT: WHY``. ``why`` says
    what the format lacks and what of the task it does take; the exporter adds the format this run does
    export to, when there is one."""
    raise ExportRefused(f"{what}: cannot be exported to {format_name(fmt)}: {why}")


class Prepared:
    """What a task's ``_read_data`` and ``_prepare`` hand the one ``fit`` sequence: its data, read and encoded.

    ``source`` names the data (config.json, messages); ``digest`` holds the training and validation data as
    read, before a dry run cuts them (a resumed run refuses data whose digest changed); ``info`` is the rest
    of config.json's ``data``. ``train``: the Trainer's batches (a list, or a function epoch -> list), None
    for a model fitted without the Trainer (``_fit_without_trainer``). ``val``: the validation data that
    ``_validation_metrics`` scores, None when there is none. ``items_name``: what a batch's item count
    counts, for the progress rate. Keyword arguments beyond these are the task's own, read by its hooks
    (``prepared.class_weight``).
    """

    def __init__(self, source: str, digest: tuple, *, info: dict[str, Any] | None = None, train: Any = None,
                 val: Any = None, items_name: str = "items", **own: Any):
        self.source, self.digest, self.info = source, digest, dict(info or {})
        self.train, self.val, self.items_name = train, val, items_name
        self.__dict__.update(own)


def _train_field_names(config: Any) -> set[str]:
    train = getattr(config, "train", None)
    return {f.name for f in dataclasses.fields(train)} if dataclasses.is_dataclass(train) else set()


def replace_config(config: Any, **values: Any) -> Any:
    """A copy of a task config with ``values`` set; names of training options go to ``config.train``.

    An unknown name is an error that lists the known ones; an old name (the config's ``RENAMED``) is read as
    the new one, with a warning.
    """
    values = rename_values(renamed_fields(type(config)), values)
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

    name: ClassVar[str] = ""              # the task's key in config.json ("textgen"): set by registration
    config_class: ClassVar[type] = object  # its config dataclass
    fitted_attribute: ClassVar[str] = "model_"   # present exactly when the object is fitted
    train_command: ClassVar[str] = ""     # the CLI verb that trains it, for messages ("rnnkit textgen train")
    run_files: ClassVar[tuple[str, ...]] = ()   # side files it writes into a run (``--overwrite`` clears them)
    # The side files its ``load`` reads (of run_files: not reports, which eval rewrites): ``save`` records the
    # sha256 of each one present, and ``load`` refuses one that changed since.
    side_files: ClassVar[tuple[str, ...]] = ()
    legacy_weights: ClassVar[tuple[str, ...]] = ()   # older names of FINAL_WEIGHTS, read when it is absent
    load_options: ClassVar[tuple[str, ...]] = ()     # keyword arguments its ``load`` takes besides checkpoint
    # The uniform apply (see ``apply``): the verb that names it in URLs (POST /v1/models/NAME/<endpoint>)
    # and the dataclass of what a request holds (fields with defaults, help and limits; see rnnkit.config).
    endpoint: ClassVar[str] = "predict"
    request_class: ClassVar[type | None] = None

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if name is None:
            return                       # a base or a helper class: not a task of its own
        if name in TASKS and TASKS[name].__qualname__ != cls.__qualname__:
            raise ValueError(f"task name {name!r}: already registered by {TASKS[name].__module__}."
                             f"{TASKS[name].__qualname__}; expected a new name for {cls.__qualname__}")
        cls.name = name
        TASKS[name] = cls

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

    # -- fit: the one sequence, and the hooks a task fills in -------------------------------------------------

    def fit(self, data: Any = None, *, run_dir: str | Path | None = None, resume: bool = False,
            dry_run: bool = False, progress: bool | None = None, **options: Any) -> "Task":
        """Read and encode ``data``, build the model, train it, and save the finished run; returns ``self``.

        ``run_dir`` gets config.json (at the start, marked not finished), the encoder's files, the Trainer's
        checkpoints and metrics, and at the end the finished model; ``resume=True`` goes on with the run
        saved there. ``dry_run`` trains on one tiny batch: seconds, for smoke tests. ``options``: the task's
        own keyword arguments for its ``_read_data``.

        Every task runs this sequence; it supplies the steps: ``_read_data`` and ``_prepare`` (its data, read,
        then encoded through its data.py encoder), ``_make_model``, ``_loss`` and ``_validation_metrics`` (or
        ``_fit_without_trainer`` for a model fitted in closed form), and optionally ``_save_encoder``,
        ``_epoch_end`` and ``_after_fit``.
        """
        from rnnkit.training.trainer import Trainer, pick_device, seed_everything   # (torch: only to train)
        from rnnkit.training.phases import phase

        train = self.config.train
        pick_device(train.device)                # "cuda" without a GPU fails here, before any work
        if resume and run_dir is None:
            _checks.fail("run_dir", run_dir, "the run directory to resume")
        if resume and dry_run:
            _checks.fail("dry_run", dry_run, "False with resume=True (a dry run is a fresh smoke test)")
        resume, was_finished = self._resume_point(run_dir) if resume else (False, False)
        for name in [k for k in vars(self) if k.endswith("_")]:
            delattr(self, name)                  # a new fit starts from nothing learned
        prepared = self._read_data(data, run_dir=run_dir, resume=resume, **options)
        phase("data")
        # What the run trains on; a resumed run refuses data that changed since it began, before any work.
        record = self._data_record(prepared.source, *prepared.digest, run_dir=run_dir, resume=resume)
        self._prepare(prepared, run_dir=run_dir, resume=resume, dry_run=dry_run)
        self.data_ = {**record, **prepared.info, **({"dry_run": True} if dry_run else {})}
        # What training will set, empty until then: config.json's ``fitted`` is written before it.
        self.trainer_, self.history_, self.metrics_, self.train_seconds_ = None, [], {}, 0.0

        seed_everything(train.seed)
        if prepared.train is not None:
            self.model_ = self._make_model(prepared)
            phase("model")
        distributed.barrier()    # every process has checked the run directory before rank 0 writes it
        if run_dir is not None and distributed.is_main():
            # config.json (not finished) and the encoder's files first: a run directory in training says what
            # it is, and a stopped run can be resumed or used from its checkpoint.
            self.write_config(run_dir)
            self._save_encoder(RunDir(run_dir))
            phase("config")
        start = time.monotonic()
        if prepared.train is None:
            self.model_ = self._fit_without_trainer(prepared, progress)
        else:
            trainer = Trainer(self.model_, self._train_config(prepared, dry_run), run_dir=run_dir,
                              progress=progress, items_name=prepared.items_name, caller_says_resume=True)
            evaluate = None if prepared.val is None else partial(self._validation_metrics, prepared)
            try:
                trainer.fit(prepared.train, partial(self._loss, prepared), evaluate,
                            partial(self._epoch_end, prepared), resume=resume)
            except KeyboardInterrupt:
                # SIGTERM: the Trainer saved its checkpoint and raised again (Ctrl-C returns instead, and the
                # task's command prints this line): the command that goes on, before the process ends.
                if run_dir is not None and trainer.interrupted and distributed.is_main():
                    print(f"resume with: {resume_command(self.command(), run_dir)}", file=sys.stderr)
                raise
            if was_finished:
                self._refuse_spent_budget(trainer, run_dir, resume)
            elif resume and not trainer.interrupted and not trainer.metrics and distributed.is_main():
                # Its training had ended (budget spent, early stop) before the finished model was written (a
                # kill in between): this resume writes it, from the weights the checkpoint holds.
                print(f"{run_dir}: its training had ended before the finished model was written: writing it now",
                      file=sys.stderr)
            if distributed.is_main() and not trainer.interrupted and progress is not False:
                for line in trainer.end_report():   # early stop, best epoch kept, still improving
                    print(line, file=sys.stderr)
            # The Trainer leaves the best epoch's weights in the model (restore_best); its metrics are theirs.
            self.trainer_, self.history_, self.metrics_ = trainer, trainer.history, metrics_of_held_weights(trainer)
            self.model_.eval()
        self.train_seconds_ = time.monotonic() - start
        if self.trainer_ is not None and self.trainer_.interrupted:
            return self          # Ctrl-C: the checkpoint is saved and the run stays unfinished (resume goes on)
        self._after_fit(prepared)
        phase("save")
        if run_dir is not None and distributed.is_main():
            self.save(run_dir)   # the finished model, and config.json marked finished
        return self

    def _resume_point(self, run_dir: str | Path) -> tuple[bool, bool]:
        """For ``fit(resume=True)``: whether there is a checkpoint to go on from, and whether the run was
        finished. A dry run is refused; a run killed before its first checkpoint starts again (no dead end)."""
        doc = read_run_config(run_dir, self.name)
        if doc.get("data", {}).get("dry_run"):
            # Its vocabulary and scales come from a sample of the data: the model would not fit the whole.
            raise ValueError(f"{run_dir}: a dry run (--dry-run), which cannot be resumed: it was built from a "
                             f"sample of the data; expected a run trained without --dry-run: train it again "
                             f"(--overwrite)")
        if RunDir(run_dir).has_checkpoint():
            return True, is_finished(doc)
        if distributed.is_main():
            print(f"{run_dir}: the run stopped before its first checkpoint was saved: training starts from the "
                  f"beginning", file=sys.stderr)
            clear_run(run_dir)
        distributed.barrier()
        return False, False

    def _train_config(self, prepared: Prepared, dry_run: bool) -> Any:
        """The TrainConfig the Trainer runs: the config's, cut to one step for a dry run, and without a best
        epoch or early stopping when there is no validation data."""
        train = self.config.train
        if dry_run:
            train = dataclasses.replace(train, epochs=1, max_steps=1, max_minutes=None, schedule="constant")
        if prepared.val is None:
            # No validation data: train every epoch and keep the last weights (the training loss would
            # otherwise pick the best epoch and stop early, which says nothing about new data).
            train = dataclasses.replace(train, restore_best=False, early_stop_patience=None)
        return train

    def _read_data(self, data: Any, *, run_dir: str | Path | None, resume: bool, **options: Any) -> Prepared:
        """``data`` as read (None: the config's dataset or file), checked: its ``source`` and ``digest``, and
        what ``_prepare`` encodes."""
        raise NotImplementedError  # abstract: each task defines it

    def _prepare(self, prepared: Prepared, *, run_dir: str | Path | None, resume: bool, dry_run: bool) -> None:
        """Fit the encoder on the data read (vocabulary, scales; with ``resume`` the run's own), set what is
        learned from the data (``classes_``, ``tokenizer_``) and fill in ``prepared``: the encoded training
        and validation data, ``info``. A dry run cuts them to a tiny batch."""
        raise NotImplementedError  # abstract: each task defines it

    def _make_model(self, prepared: Prepared) -> Any:
        """The untrained network for the Trainer (torch is seeded with ``train.seed`` just before)."""
        raise NotImplementedError  # abstract: each task that trains with the Trainer defines it

    def _loss(self, prepared: Prepared, model: Any, batch: Any, state: Any) -> tuple[Any, Any, int]:
        """One batch's training loss: ``(loss, state to carry into the next batch or None, items)``."""
        raise NotImplementedError  # abstract: each task that trains with the Trainer defines it

    def _validation_metrics(self, prepared: Prepared, model: Any) -> dict[str, float]:
        """Metrics of ``model`` on ``prepared.val``, ``val_loss`` among them (it picks the best epoch)."""
        raise NotImplementedError  # abstract: each task with validation data defines it

    def _fit_without_trainer(self, prepared: Prepared, progress: bool | None) -> Any:
        """A model fitted in closed form or a baseline (``prepared.train`` is None): fit and return it, ready
        to predict."""
        raise NotImplementedError(f"{type(self).__name__}: prepared.train is None, and it fits no model "
                                  f"without the Trainer")

    def _save_encoder(self, run: RunDir) -> None:
        """Write what encodes the inputs (a vocabulary) when training starts, so that a stopped run can be
        resumed and used from its checkpoint."""

    def _epoch_end(self, prepared: Prepared, trainer: Any, epoch: int, metrics: dict[str, float]) -> None:
        """After each epoch's validation (textgen shows samples here)."""

    def _after_fit(self, prepared: Prepared) -> None:
        """After a completed training, before the run is saved (measures that the finished model needs)."""

    # -- what every task implements ------------------------------------------------------------------------

    def evaluate(self, data: Any) -> dict[str, float]:
        raise NotImplementedError  # abstract: each task defines it

    def state_tensors(self) -> dict[str, Any]:
        """The learned tensors that ``save`` writes as FINAL_WEIGHTS (default: the model's state_dict)."""
        return self.model_.state_dict()

    def _save_files(self, run: RunDir) -> None:
        """Write the side files (tokenizer, scales) into ``run``; the weights are the base's (FINAL_WEIGHTS)."""

    def _load_files(self, run: RunDir, fitted: dict[str, Any], tensors: dict[str, Any], **options: Any) -> None:
        """Rebuild the fitted object from the side files, config.json's ``fitted`` object and ``tensors`` (the
        finished model's weights, or a checkpoint's when ``load(checkpoint=...)`` asked for one)."""
        raise NotImplementedError  # abstract: each task defines it

    def _hold_weights(self, model: Any, tensors: dict[str, Any], run: RunDir) -> None:
        """For ``_load_files``: the run's ``tensors`` into ``model`` (every name and shape checked first: one
        error naming the run), kept as ``model_`` in eval mode; a loaded object has no trainer."""
        check_weights_match(tensors, model.state_dict(), source=str(run.path))
        model.load_state_dict(tensors)
        self.model_ = model.eval()
        self.trainer_ = None

    def fitted_values(self) -> dict[str, Any]:
        """Small learned values that are not tensors, for config.json's ``fitted`` object."""
        return {}

    @classmethod
    def upgrade_config(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """A config.json of an older format -> the current schema (tasks that wrote one override this)."""
        raise ValueError(f"a {raw.get('task')!r} run of format_version {raw.get('format_version', 1)}, which "
                         f"this rnnkit cannot convert: train the run again")

    # -- the hooks consumers call (the registry, serve, export, the CLI's apply verbs) ----------------------------

    def describe(self) -> dict[str, Any]:
        """What this fitted object is and what it takes: the task, its endpoint, its request's fields, and the
        task's own ``details`` (classes, vocabulary, ...). The server lists it at GET /v1/models."""
        self._check_fitted()
        fields = []
        if self.request_class is not None:
            for f in dataclasses.fields(self.request_class):
                default = (f.default_factory() if f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
                           else None if f.default is dataclasses.MISSING else f.default)
                fields.append({"name": f.name, "help": f.metadata.get("help", ""), "default": default})
        return {"task": self.name, "endpoint": self.endpoint, "takes": fields, "details": self.details()}

    def details(self) -> dict[str, Any]:
        """The task's own facts for ``describe()`` (JSON values)."""
        return {}

    def apply(self, request: Any) -> dict[str, Any]:
        """The one way to apply a fitted task: ``request`` is a ``request_class`` object (or a dict of its
        fields); the answer is a dict of JSON values. The CLI's apply verb and the HTTP endpoint both call it.
        A refusal of the request is a ValueError naming the field."""
        raise NotImplementedError(f"{type(self).__name__} has no apply(): it defines no request_class")

    def make_request(self, request: Any = None, **fields: Any) -> Any:
        """``request`` (a request_class object or a dict) with ``fields`` set, as a request_class object."""
        if self.request_class is None:
            raise NotImplementedError(f"{type(self).__name__} defines no request_class")
        self._check_fitted()              # an unfitted task says so before it looks at the request
        if request is None:
            request = {}
        if isinstance(request, self.request_class):
            return dataclasses.replace(request, **fields) if fields else request
        if not isinstance(request, dict):
            _checks.fail("request", request, f"a {self.request_class.__name__} or a dict of its fields")
        return config_from_dict(self.request_class, {**request, **fields}, source="request")

    def serving_worker(self, max_batch: int) -> Any:
        """For tasks whose requests are best run together (continuous batching of generation), the object
        the server runs them through; None (the default): each request runs alone through ``apply``.

        The object (see :class:`rnnkit.serve.batching.BatchedGenerator`) has
        ``submit(request, listener, timeout) -> job``, which refuses a bad request at once (a ValueError
        naming the field) and then calls ``listener(kind, data)`` from its own thread: ``(event, dict)`` for
        each piece of a streamed answer (the server sends it as a server-sent event of that name, e.g.
        "token"), then ``("done", None)``. The job has ``start`` (a dict: what a stream's first event says),
        ``result()`` (the answer, as ``apply`` gives it) and ``failure`` (None, or ``(reason, message, field)``
        with reason "timeout", "closed" or "error"). The object also has ``takes(request)`` (whether it runs
        that request; the others go to ``apply``, e.g. beam search), ``cancel(job)``, ``close()`` and
        ``details()`` (figures for ``describe``)."""
        return None

    def export_spec(self, fmt: str) -> Any:
        """What the exporter of ``fmt`` ("onnx", "c") needs from this fitted object: an
        :class:`rnnkit.export.onnx.OnnxSpec` or an :class:`rnnkit.export.c.CModel`. A model the format cannot
        express raises ExportRefused (see ``refuse_export``): one line that says why and what of this task
        the format takes. Tasks that export override this."""
        refuse_export(f"a {self.name} run", fmt, f"the {self.name} task defines no {format_name(fmt)} export (none "
                                                 f"of its models exports to {format_name(fmt)})")

    @classmethod
    def all_run_files(cls) -> tuple[str, ...]:
        """File patterns of a run of any registered task: what ``--overwrite`` deletes."""
        patterns = list(RUN_FILES)
        for task in discover_tasks().values():
            patterns += [p for p in task.run_files if p not in patterns]
        return tuple(patterns)

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
            if recorded is not None and not (isinstance(recorded, str) and SHA256.fullmatch(recorded)):
                # A damaged record is not data that changed: say which it is.
                run = RunDir(run_dir)
                raise ValueError(f"{run.config_path}: damaged: its recorded data digest (data.digest) is "
                                 f"{str(recorded)[:40]!r}, not a sha256 digest; {rehash_hint(run)}")
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

    def _model_weights(self, run: RunDir, checkpoint: str | None = None) -> tuple[Path, dict[str, Any]]:
        """(file, tensors) of the run's model: FINAL_WEIGHTS (or an older name of it); with ``checkpoint``
        "best" or "last", the Trainer's checkpoint of that name, asked for explicitly."""
        if checkpoint is None:
            for name in (FINAL_WEIGHTS, *self.legacy_weights):
                if run.file(name).is_file():
                    return run.file(name), load_weights(run.file(name))
            run.require(FINAL_WEIGHTS)       # raises, naming what the directory holds
        best = checkpoint == "best" and run.best_path.is_file()
        if not best and not run.weights_path.is_file():
            raise FileNotFoundError(f"{run.path}: the run has no checkpoint (no {run.weights_path.name}); expected "
                                    f"a run whose training saved one: train it again")
        return (run.best_path if best else run.weights_path), run.load_weights(best=best)

    def write_config(self, path: str | Path | RunDir, *, finished: bool = False) -> None:
        """Write config.json alone: at the start of fit (``finished`` False, so a run directory in training
        says what it is and that it is not a model yet), and by ``save`` (True), which also records the
        sha256 of the files the finished run is loaded from (the weights, ``side_files``)."""
        run = RunDir(path)
        run.path.mkdir(parents=True, exist_ok=True)
        # What this replaces: a refused resume puts it back (see _refuse_spent_budget).
        self._replaced_config = run.config_path.read_bytes() if run.config_path.is_file() else None
        files = file_digests(run, (FINAL_WEIGHTS, *self.side_files)) if finished else None
        write_run_config(run, self.name, config_to_dict(self.config), self.__dict__.get("data_", {}),
                         self.fitted_values() if self.is_fitted() else {}, finished=finished, files=files)

    def save(self, path: str | Path) -> "Task":
        """Write the finished model into the run directory ``path``: the weights (FINAL_WEIGHTS), the task's
        side files, then config.json marked finished (last: a kill before it leaves an unfinished run)."""
        self._check_fitted()
        run = RunDir(path)
        run.path.mkdir(parents=True, exist_ok=True)
        self._save_files(run)
        # On the CPU and contiguous: a GPU-trained model saves the same file as a CPU-trained one.
        save_weights(run.file(FINAL_WEIGHTS), {k: v.detach().cpu().contiguous()
                                                for k, v in self.state_tensors().items()})
        self.write_config(run, finished=True)
        return self

    @classmethod
    def load(cls, path: str | Path, *, checkpoint: str | None = None, trust_edits: bool = False,
             **options: Any) -> "Task":
        """A fitted object from a finished run directory (written by ``fit(run_dir=...)``, ``save`` or the CLI).

        A run whose fit did not complete is refused, unless ``checkpoint`` ("best" or "last") asks for the
        weights of its last checkpoint explicitly. config.json and the files the run is loaded from must be
        as ``save`` wrote them (their digests), unless ``trust_edits`` says they were edited on purpose.
        ``options``: the task's own ``load_options``."""
        unknown = sorted(set(options) - set(cls.load_options))
        if unknown:
            known = ", ".join(("checkpoint", "trust_edits", *cls.load_options))
            _checks.fail(unknown[0], options[unknown[0]], f"a load option of {cls.__name__} ({known})")
        _checks.check_choice("checkpoint", checkpoint, ("best", "last", None))
        run = RunDir(path)
        doc = read_run_config(run, cls.name, trust_edits=trust_edits)
        if not trust_edits:
            # Before anything is read from them. A checkpoint's weights are checked by checkpoint.json instead.
            check_run_files(run, doc, skip=() if checkpoint is None else (FINAL_WEIGHTS,))
        self = cls(config_from_dict(cls.config_class, doc["config"], source=str(run.config_path)))
        if checkpoint is None and not is_finished(doc, run):
            raise RunNotFinished(unfinished_text(run.path, cls.command()))
        self.data_ = doc.get("data", {})
        _, tensors = self._model_weights(run, checkpoint)
        self._load_files(run, doc.get("fitted", {}), tensors, **options)
        return self


def unfinished_text(path: str | Path, command: str, *, checkpoint_hint: bool = True) -> str:
    """The one line that refuses a run whose fit did not complete, and says the ways on."""
    text = (f"{path}: its training has not finished (config.json is not marked finished); expected a finished "
            f"run: finish it with {resume_command(command, path)}")
    if checkpoint_hint:
        text += ", or use its last checkpoint explicitly (--checkpoint best|last; load(..., checkpoint=\"best\"))"
    return text


# ---------------------------------------------------------------------------------------------------------
# The CLI side: every train verb has the same flags and the same --resume
# ---------------------------------------------------------------------------------------------------------

def train_config_from_args(task: type, args: argparse.Namespace,
                           resume_fields: tuple[str, ...] = ()) -> Any:
    """The config a train verb runs with: from the flags, or with ``--resume`` the run's own config with
    only the budget flags (``RESUME_FIELDS`` and the task's ``resume_fields``) given on the command line.

    Without ``--resume`` the ``--run-dir`` must not hold a run already (``--overwrite`` deletes it first)."""
    overwrite = getattr(args, "overwrite", False)
    if not args.resume:
        config = config_from_args(task.config_class, args)
        claim_run_dir(args.run_dir, task, overwrite=overwrite)
        return config
    if overwrite:
        _checks.fail("--overwrite", True, "no --overwrite with --resume (--resume goes on with the run in "
                                          "--run-dir, --overwrite replaces it)")
    if not args.run_dir:
        _checks.fail("--resume", True, "a --run-dir to resume")
    _checks.check_run_dir(args.run_dir)
    doc = read_run_config(args.run_dir)
    if doc["task"] != task.name:
        other = task_class(doc["task"])
        raise ValueError(f"{RunDir(args.run_dir).config_path}: this run directory holds a {doc['task']!r} run, "
                         f"expected {task.name!r}: resume it with its own command, "
                         f"{resume_command(other.command(), args.run_dir)}")
    config = config_from_dict(task.config_class, doc["config"], source=str(RunDir(args.run_dir).config_path))
    allowed = set(RESUME_FIELDS) | set(resume_fields)
    fixed = sorted(given_fields(args) - allowed)
    if fixed:
        name = fixed[0]
        _checks.fail(flag_name(name), getattr(args, name), f"no {flag_name(name)} with --resume: the run keeps "
                     f"its own config; a resumed run may change only "
                     + ", ".join(flag_name(f) for f in sorted(allowed)))
    return replace_config(config, **{name: getattr(args, name) for name in given_fields(args)})


def data_config(data_class: type, task_class: type["Task"], args: argparse.Namespace) -> Any:
    """The data flags, or with --resume the data the run in --run-dir was trained on (its config.json)."""
    if not args.resume:
        return config_from_args(data_class, args)
    data = read_run_config(args.run_dir, task_class.name).get("data", {})
    names = [f.name for f in dataclasses.fields(data_class)]
    if not any(name in data for name in names):
        _checks.fail("--resume", True, f"a run whose config.json records its data ({args.run_dir} records none: "
                     f"it was written by an older rnnkit; train it again)")
    return config_from_dict(data_class, {k: data[k] for k in names if k in data}, source="config.json: data")


def holds_run(path: str | Path | None) -> bool:
    """Whether the folder holds (part of) an rnnkit run: its config, metrics or a checkpoint."""
    if path is None or not Path(path).is_dir():
        return False
    run = RunDir(path)
    return run.config_path.exists() or run.metrics_path.exists() or run.has_checkpoint()


def claim_run_dir(path: str | Path | None, new_task: type, *, overwrite: bool = False) -> None:
    """Make sure a new run does not silently replace an earlier one in ``path`` (and mix its metrics.jsonl
    with the new run's): refuse a folder that holds a run, or with ``overwrite`` delete that run's files."""
    _checks.check_run_dir(path)
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
    command = new_task.command()
    if task == new_task.name:
        raise ValueError(f"{path}: holds an earlier {task} run, which training again would overwrite; expected "
                         f"a new folder: go on with that run with --resume "
                         f"({resume_command(command, path)}), choose another --run-dir, or replace it with "
                         f"--overwrite")
    what = f"a {task!r} run" if task else "an rnnkit run"
    raise ValueError(f"{path}: holds {what}, which training again would overwrite; expected a new folder: "
                     f"choose another --run-dir, or replace that run with --overwrite")


def clear_run(path: str | Path) -> None:
    """Delete the files and folders of an rnnkit run in ``path`` (see ``RUN_FILES``); other files stay."""
    for pattern in Task.all_run_files():
        for item in sorted(Path(path).glob(pattern)):
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            else:
                item.unlink(missing_ok=True)


def resume_command(command: str, run_dir: str | Path) -> str:
    """The command line that goes on with the run in ``run_dir`` (quoted for a POSIX shell)."""
    return f"{command} --run-dir {shlex.quote(str(run_dir))} --resume"


def metrics_of_held_weights(trainer: Any) -> dict[str, float]:
    """The validation metrics of the weights the model holds after ``trainer.fit``: the best epoch's when the
    Trainer put those back (``restore_best``), else the last epoch's."""
    epochs = [r for r in trainer.history if r.get("event") == "epoch"]
    best = [r for r in epochs if r.get("best")]
    # A resumed run whose training had already ended trains no epoch in this call (trainer.metrics is empty):
    # its figures are the history's (else the finished run reports none, and the CLI's report fails).
    keys = list(trainer.metrics) or [k for k in (epochs[-1] if epochs else {}) if k not in RECORD_KEYS]
    if not trainer.config.restore_best or not best:
        return dict(trainer.metrics) if trainer.metrics or not epochs else {k: epochs[-1][k] for k in keys}
    return {k: best[-1][k] for k in keys if k in best[-1]}


def training_record(trainer: Any) -> dict[str, Any] | None:
    """How a finished training went, for config.json's ``fitted.training``: steps, epochs, what stopped it and
    the best value of its monitor (``best_val_loss``, ``best_val_error``); None before any training ended."""
    if trainer is None or trainer.stop_reason is None:
        return None
    return {"steps": trainer.step, "epochs": trainer.epoch, "stop_reason": trainer.stop_reason,
            f"best_{trainer.config.monitor}": trainer.best}


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
