"""Sequence classification (many to one): sentiment of a review, the activity behind a sensor trace.

:class:`SequenceClassifier` is the task object: ``fit(X, y, validation_data)`` reads texts (a list of
str) or multichannel series (a list of (T, C) arrays), builds the vocabulary or the channel scales and
the network (:mod:`rnnkit.tasks.classify.model`) from them, and trains it with the one Trainer, which
leaves the weights of the best validation epoch in the model. Training batches are bucketed by length
(sorted within chunks of 20 batches, then shuffled), so a batch of short reviews is not padded to the
longest review of the data set. ``evaluate`` reports accuracy, macro-F1, ROC AUC (two classes),
per-class metrics and the confusion matrix; ``report`` also draws the confusion matrix as a PNG.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit import _checks
from rnnkit.report.metrics import classification_metrics
from rnnkit.report.plots import new_figure, save_png
from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.schema import FORMAT_VERSION
from rnnkit.tasks.base import Prepared, Task, refuse_export, resume_command, training_record
from rnnkit.tasks.classify.data import Split, batches, encode_series, encode_texts, small_sample
# The config lives in config.py (no torch: --help reads it); imported here too for the names it had.
from rnnkit.tasks.classify.config import (CLASS_WEIGHTS, MODELS, POOLINGS, ClassifyConfig,  # noqa: F401
                                        ClassifyRequest)
from rnnkit.tasks.classify.model import BOW_VOCABULARY_FILE, BowModel, SequenceNet, upgrade_state_dict
from rnnkit.tasks.classify.rocket import RocketModel
from rnnkit.text import Tokenizer
from rnnkit.training import distributed
from rnnkit.training.config import TrainConfig
from rnnkit.training.progress import track
from rnnkit.training.trainer import to_device



def nest_train_fields(config_class: type, flat: dict[str, Any], **train_values: Any) -> dict[str, Any]:
    """A config dict of rnnkit 0.1 (training options among the task's fields) -> this version's, with the
    training options under ``train`` (``train_values``: what 0.1 fixed in code, such as clip_grad_norm)."""
    own = {f.name for f in dataclasses.fields(config_class)} - {"train"}
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    train = {**train_values, **{k: v for k, v in flat.items() if k in train_names and k not in own}}
    return {**{k: v for k, v in flat.items() if k not in train}, "train": train}


def check_run_dir(path: str | Path, task: str, what: str, command: str) -> None:
    """A clear error when ``path`` is not a run directory of ``task`` (before the schema reads it)."""
    run = RunDir(path)
    if not run.config_path.is_file():
        if not run.path.is_dir():
            raise FileNotFoundError(f"run={str(path)!r}: no such run directory")
        raise ValueError(f"run={str(path)!r}: not a {what} run directory (no config.json); expected one "
                         f"written by '{command}'")
    conf = run.read_config()
    if conf.get("task") != task:
        raise ValueError(f"run={str(path)!r}: not a {what} run directory (its config says "
                         f"task={conf.get('task')!r}); expected one written by '{command}'")


def plot_confusion(cm: np.ndarray, classes: list[str], path: str | Path, title: str = "") -> None:
    """The confusion matrix (rows: true class, columns: predicted) as a PNG with the counts written in."""
    k = len(classes)
    fig = new_figure(2 + 0.6 * k, 1.6 + 0.6 * k)
    ax = fig.add_subplot()
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = cm.max() if cm.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > top / 2 else "black")
    if title:
        ax.set_title(title, fontsize=9)
    save_png(fig, path)


def _labelled(X, y) -> tuple[list, np.ndarray]:
    """``(X, y)``, or one ``Split`` / ``(X, y)`` pair passed as X -> (inputs, labels as str)."""
    if y is None:
        if isinstance(X, Split):
            X, y = X.X, X.y
        elif isinstance(X, tuple) and len(X) == 2:
            X, y = X
        else:
            _checks.fail("y", None, "labels, one per input (or pass a Split or an (X, y) pair as data)")
    return list(X), np.asarray(y).astype(str)


class SequenceClassifier(Task, name="classify"):
    """Classify texts or multichannel series; see the module docstring.

    ``fit(X, y, validation_data=(X_val, y_val))``: X is a list of str (text) or a list of (T, C) arrays
    (series). Learned: ``classes_``, ``kind_``, ``tokenizer_`` (text), ``mean_``/``std_`` (series),
    ``model_`` (a :class:`SequenceNet`, a :class:`BowModel` for bow, a :class:`RocketModel` for rocket),
    ``trainer_``, ``embedding_stats_``, ``train_seconds_``.
    """

    config_class = ClassifyConfig
    train_command = "rnnkit classify train"
    run_files = ("tokenizer.json", BOW_VOCABULARY_FILE, "standardize.json", "*_confusion.png", "tournament.csv",
                 "tournament", "seeds.csv")
    side_files = ("tokenizer.json", BOW_VOCABULARY_FILE, "standardize.json")
    # Names of the finished model's weights before FINAL_WEIGHTS (net, bow, rocket).
    legacy_weights = ("classifier.safetensors", "bow.safetensors", "rocket.safetensors")
    endpoint = "classify"                 # the Task protocol's uniform apply: see the end of the class
    request_class = ClassifyRequest

    # -- input encoding ----------------------------------------------------------------------------------

    def _encode(self, X: list) -> tuple[np.ndarray, np.ndarray]:
        """Inputs -> (N, T) ids or (N, T, C) values padded at the end, and (N,) lengths >= 1 (data.py's encoder,
        with what fit learned: the vocabulary, or the channel scales)."""
        cfg = self.config
        if self.kind_ == "text":
            return encode_texts(self.tokenizer_, X, cfg.maxlen, cfg.truncating)
        return encode_series(X, self.mean_, self.std_, cfg.maxlen, cfg.truncating)

    def _batches(self, X: np.ndarray, lengths: np.ndarray, y: np.ndarray | None, shuffle: bool,
                 rng: np.random.Generator | None = None) -> list:
        # Training batches: the batch the data calls for (--auto-batch); evaluation and prediction: --batch-size.
        size = self.config.train.batch_size
        if shuffle:
            size = self.__dict__.get("train_batch_", size)
        return batches(X, lengths, y, size, rng if shuffle else None)

    # -- fit (the sequence is Task.fit's; these are its steps) --------------------------------------------

    def fit(self, X: list, y, validation_data: tuple | None = None, *, run_dir: str | Path | None = None,
            resume: bool = False, dry_run: bool = False, progress: bool | None = None,
            data_info: dict[str, Any] | None = None, refit_baselines: bool = False,
            report_rows: int = 0) -> "SequenceClassifier":
        """Train on ``X`` with labels ``y``; ``validation_data`` picks the best epoch and stops early.

        ``run_dir``: checkpoints, metrics and the final model go there (``resume`` continues it);
        ``dry_run``: one tiny batch, one epoch; ``data_info``: what the data is, for config.json.

        ``model="auto"`` (the default) runs a short tournament among the candidates (:mod:`.auto`) and ends
        holding the winner: ``config.model`` then names it and ``tournament_`` holds the table.
        ``refit_baselines``: when auto picks bow or rocket, fit it on the training and validation rows together
        (when test rows are there to report on: the CLI's choice for an explicit bow or rocket too);
        ``report_rows``: the rows the caller scores after fit, for which auto keeps time in the budget.
        ``seeds`` > 1: the other seeds are trained after the run's own one (``seed_models_``; see
        :meth:`seed_report`).
        """
        self._progress = progress         # (not learned state: quiet children of --model auto and --seeds)
        if self.config.encoder_from is not None:
            self._settle_encoder()
        if self.config.model == "auto":
            self._fit_auto(X, y, validation_data, run_dir=run_dir, resume=resume, dry_run=dry_run,
                           progress=progress, data_info=data_info, refit_baselines=refit_baselines,
                           report_rows=report_rows)
        else:
            super().fit((X, y, validation_data), run_dir=run_dir, resume=resume, dry_run=dry_run,
                        progress=progress, data_info=data_info)
        trainer = self.__dict__.get("trainer_")
        if self.config.seeds > 1 and self.is_fitted() and not (trainer is not None and trainer.interrupted):
            self._fit_seeds(X, y, validation_data, run_dir=run_dir, dry_run=dry_run,
                            refit_baselines=refit_baselines and "tournament_" in self.__dict__)
        return self

    def _settle_encoder(self) -> None:
        """--encoder-from: the network is the language model's (cell, width, layers, embedding size), checked
        against what the config asks (a value left at its default takes the LM's), and the constant schedule
        (the default) becomes the slanted triangle."""
        from rnnkit.tasks.transfer import MODEL_OF_CELL, read_encoder, settle

        cfg, path = self.config, self.config.encoder_from
        lm = read_encoder(path, task="classifier")
        lm = {**lm, "model": MODEL_OF_CELL[lm["cell"]]}
        defaults = {f.name: f.default for f in dataclasses.fields(ClassifyConfig)}
        sizes = settle({"model": cfg.model, "hidden_size": cfg.hidden_size, "num_layers": cfg.num_layers,
                        "embedding_size": cfg.embedding_size}, defaults, lm, path)
        train = cfg.train
        if train.schedule == "constant":
            train = dataclasses.replace(train, schedule="slanted")
        self.config = dataclasses.replace(cfg, **sizes, train=train)
        if self.__dict__.get("_progress") is not False:
            print(f"encoder {path}: {sizes['model']}, {sizes['num_layers']} layer(s) of {sizes['hidden_size']}, "
                  f"embedding {sizes['embedding_size']}; schedule {train.schedule}, learning rates / "
                  f"{cfg.lr_decay:g} per layer group down, "
                  f"{'gradual unfreezing' if cfg.gradual_unfreezing else 'all layers train from the start'}",
                  file=sys.stderr)

    def _fit_auto(self, X: list, y, validation_data: tuple | None, *, run_dir: str | Path | None, resume: bool,
                  dry_run: bool, progress: bool | None, data_info: dict[str, Any] | None,
                  refit_baselines: bool, report_rows: int) -> None:
        """--model auto: the tournament (auto.py); this object then holds the winner, a run like any other."""
        from rnnkit.tasks.classify.auto import Tournament

        started, asked = time.monotonic(), self.config
        if resume and run_dir is None:
            _checks.fail("run_dir", run_dir, "the run directory to resume")
        for name in [k for k in vars(self) if k.endswith("_")]:
            delattr(self, name)                  # a new fit starts from nothing learned
        prepared = self._read_data((X, y, validation_data), run_dir=run_dir, resume=resume, data_info=data_info)
        if resume and RunDir(run_dir).read_config().get("data", {}).get("dry_run"):
            raise ValueError(f"{run_dir}: a dry run (--dry-run), which cannot be resumed: it was built from a "
                             f"sample of the data; expected a run trained without --dry-run: train it again "
                             f"(--overwrite)")
        # What the run trains on (a resumed tournament refuses data that changed), and config.json at once (not
        # finished, model auto): a stopped tournament can be resumed.
        record = self._data_record(prepared.source, *prepared.digest, run_dir=run_dir, resume=resume)
        self.data_ = {**record, **prepared.info, **({"dry_run": True} if dry_run else {})}
        if run_dir is not None and distributed.is_main():
            self.write_config(run_dir)
        tournament = Tournament(asked, self.kind_, (prepared.X, prepared.y), prepared.validation, run_dir=run_dir,
                                resume=resume, dry_run=dry_run, progress=progress, refit_baselines=refit_baselines,
                                report_rows=report_rows)
        try:
            winner = tournament.run()
        except KeyboardInterrupt:
            # SIGTERM (or Ctrl-C outside a network's training): the finished candidates are in tournament.csv.
            if run_dir is not None and distributed.is_main():
                print(f"resume with: {resume_command(self.command(), run_dir)}", file=sys.stderr)
            raise
        if winner is None:
            # Ctrl-C stopped a network's training: the run stays unfinished; the CLI prints the command that
            # resumes (the candidates that finished are kept, the interrupted one starts again).
            self.trainer_ = tournament.interrupted.trainer_
            print(f"auto: the tournament stopped while training {tournament.interrupted.config.model}; the candidates "
                  f"that finished are kept" + (f" in {Path(run_dir) / 'tournament.csv'}" if run_dir else ""),
                  file=sys.stderr)
            return
        data = self.data_
        for name, value in vars(winner).items():
            if name.endswith("_"):
                self.__dict__[name] = value
        # From here on the object is the winner's run: its config names the model (the rest is what was asked).
        self.config = dataclasses.replace(asked, model=winner.config.model)
        self.data_ = data
        self.tournament_ = tournament.record(winner.config.model)
        self.train_seconds_ = tournament.spent + time.monotonic() - started
        if run_dir is not None and distributed.is_main():
            self.save(run_dir)
            tournament.clean()

    def _fit_seeds(self, X: list, y, validation_data: tuple | None, *, run_dir: str | Path | None, dry_run: bool,
                   refit_baselines: bool) -> None:
        """--seeds N: seeds seed+1 ... seed+N-1 of the same model on the same rows, each with the whole budget.
        The run keeps its own seed's model; the others are a measurement (``seed_models_``)."""
        cfg = self.config
        X, y = list(X), np.asarray(y).astype(str)
        val = None
        if validation_data is not None and len(validation_data[0]):
            val = (list(validation_data[0]), np.asarray(validation_data[1]).astype(str))
        if refit_baselines and cfg.model in ("bow", "rocket") and val is not None:
            X, y, val = X + val[0], np.concatenate([y, val[1]]), None      # as auto fit the winner
        self.seed_models_ = [self]
        for k in range(1, cfg.seeds):
            seed = cfg.train.seed + k
            print(f"seeds: training seed {seed} ({k + 1} of {cfg.seeds})", file=sys.stderr)
            child = SequenceClassifier(dataclasses.replace(cfg, seeds=1, candidates=[],
                                                           train=dataclasses.replace(cfg.train, seed=seed)))
            child.fit(X, y, val, dry_run=dry_run, progress=False)
            if child.trainer_ is not None and child.trainer_.interrupted:
                print(f"seeds: seed {seed} was interrupted; the run (seed {cfg.train.seed}'s model) is saved, "
                      f"without the figures of the other seeds", file=sys.stderr)
                del self.seed_models_
                raise KeyboardInterrupt
            self.seed_models_.append(child)
        if run_dir is not None and distributed.is_main():
            self.write_config(run_dir, finished=True)      # config.json's fitted values name the seeds

    def seed_report(self, X, y) -> dict[str, Any]:
        """With --seeds N: each seed's accuracy on ``(X, y)``, their mean and standard deviation, and the accuracy
        of the seeds' averaged probabilities (an ensemble: not the model the run keeps)."""
        X, y = _labelled(X, y)
        models = self.__dict__.get("seed_models_") or [self]
        probs = [m.predict_proba(X) for m in models]
        accs = [float(classification_metrics(y, p, self.classes_)["accuracy"]) for p in probs]
        averaged = classification_metrics(y, np.mean(probs, axis=0), self.classes_)["accuracy"]
        return {"seeds": [m.config.train.seed for m in models], "accuracy": accs, "mean": float(np.mean(accs)),
                "sd": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                "averaged_probabilities": float(averaged)}

    def _read_data(self, data: tuple, *, run_dir: str | Path | None, resume: bool,
                   data_info: dict[str, Any] | None = None) -> Prepared:
        """``(X, y, validation_data)`` checked: the classes (``classes_``), the kind of input (``kind_``)."""
        cfg = self.config
        X, y, validation_data = data
        y = np.asarray(y).astype(str)
        if len(X) != len(y):
            _checks.fail("y", f"{len(y)} labels", f"one label per input ({len(X)} inputs)")
        if len(X) == 0:
            _checks.fail("X", "[]", "at least one training example")
        self.classes_ = sorted(np.unique(y).tolist())
        if len(self.classes_) < 2:
            _checks.fail("y", f"only the class {self.classes_[0]!r}", "at least two classes to classify")
        self.kind_ = "text" if isinstance(X[0], str) else "series"
        if cfg.model == "bow" and self.kind_ != "text":
            _checks.fail("model", "bow", "a text model; bow (bag of words) cannot read numeric series")
        if cfg.model == "rocket" and self.kind_ != "series":
            _checks.fail("model", "rocket", "a series model; rocket (random convolution kernels) cannot read text")
        if cfg.embeddings and self.kind_ != "text":
            _checks.fail("embeddings", cfg.embeddings, "None for numeric series (word vectors need text)")
        val = None
        if validation_data is not None and len(validation_data[0]):
            val = (list(validation_data[0]), np.asarray(validation_data[1]).astype(str))
        info = {"kind": self.kind_, "train_size": len(y), "val_size": 0 if val is None else len(val[0]),
                **(data_info or {})}
        return Prepared(info.get("source") or "the data passed to fit", (list(X), y, val), info=info,
                        X=X, y=y, validation=val)

    def _prepare(self, prepared: Prepared, *, run_dir: str | Path | None, resume: bool, dry_run: bool) -> None:
        """The vocabulary (text) or the channel scales (series), the pretrained vectors, and the batches;
        bow reads the texts themselves, rocket the encoded series."""
        cfg, seed = self.config, self.config.train.seed
        X, y, val = prepared.X, prepared.y, prepared.validation
        self.embedding_stats_: dict[str, Any] = {}
        if dry_run:
            # One tiny batch: enough to run every code path in seconds.
            X, y = small_sample(X, y, cfg.train.batch_size, seed)
            val = None if val is None else small_sample(val[0], val[1], 8, seed)
        prepared.X, prepared.y = X, y
        prepared.y_idx = np.array([self.classes_.index(c) for c in y], dtype=np.int64)
        prepared.dry_run = dry_run
        if cfg.model == "bow":
            return                       # no Trainer, no validation: the texts as they are
        self._build_inputs(X)
        Xe, le = self._encode(X)
        if cfg.model == "rocket":
            prepared.encoded = (Xe, le)    # no Trainer: the ridge penalty is chosen by cross-validation on X
            return
        prepared.vectors = self._load_embeddings() if self.kind_ == "text" and cfg.embeddings else None
        prepared.encoder = None
        if cfg.encoder_from is not None:
            if self.kind_ != "text":
                _checks.fail("encoder_from", cfg.encoder_from, "None for numeric series (a language model reads "
                                                               "words)")
            prepared.vectors, prepared.encoder = self._load_encoder()
        y_idx = prepared.y_idx
        # A small set gets a smaller batch (--auto-batch), so that an epoch is several updates.
        self.train_batch_ = cfg.train.batch_for(len(y_idx))
        if self.train_batch_ != cfg.train.batch_size and not dry_run and self.__dict__.get("_progress") is not False:
            print(f"data: batch {self.train_batch_} instead of --batch-size {cfg.train.batch_size}: {len(y_idx)} "
                  f"training rows would make {-(-len(y_idx) // cfg.train.batch_size)} update(s) an epoch "
                  f"(--no-auto-batch keeps it)", file=sys.stderr)
        prepared.train = lambda epoch: self._batches(Xe, le, y_idx, True, np.random.default_rng([seed, epoch]))
        if dry_run:
            prepared.train = self._batches(Xe, le, y_idx, True, np.random.default_rng(seed))[:1]
        # balanced: n / (K * count_k) per class, as scikit-learn's class_weight="balanced"
        counts = np.bincount(y_idx, minlength=len(self.classes_))
        prepared.weight = (torch.tensor(len(y_idx) / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)
                           if cfg.class_weight == "balanced" else None)
        if val is not None:
            Xv, yv = list(val[0]), np.asarray(val[1]).astype(str)
            unknown = sorted(set(yv) - set(self.classes_))
            if unknown:
                _checks.fail("validation labels", unknown[:5], f"classes seen in training: {self.classes_}")
            yv_idx = np.array([self.classes_.index(c) for c in yv], dtype=np.int64)
            prepared.val = self._batches(*self._encode(Xv), yv_idx, False)

    def _make_model(self, prepared: Prepared) -> SequenceNet:
        from rnnkit.tasks.transfer import Unfreezing, copy_recurrent

        net = self._build_net()
        self._unfreezing = None
        if prepared.vectors is not None:
            net.embed.weight.data.copy_(torch.from_numpy(prepared.vectors))
            net.embed.weight.requires_grad_(not self.config.freeze_embeddings)
        if getattr(prepared, "encoder", None) is not None:
            copy_recurrent(net.rnn, prepared.encoder, self.config.encoder_from)
            net.lr_decay = self.config.lr_decay       # the optimizer's groups: rnnkit.training.schedules
            if self.config.gradual_unfreezing and not prepared.dry_run:
                self._unfreezing = Unfreezing(net.layer_groups())     # the head alone, for the first epoch
        return net

    def _epoch_end(self, prepared: Prepared, trainer: Any, epoch: int, metrics: dict[str, float]) -> None:
        # Gradual unfreezing: one more layer group, top down, after each epoch.
        self._unfreeze(f"from epoch {epoch + 2}")

    def _unfreeze(self, when: str) -> None:
        unfreezing = self.__dict__.get("_unfreezing")
        if unfreezing is None:
            return
        unfreezing.steps = 0
        if unfreezing.advance() and self.__dict__.get("_progress") is not False:
            print(f"unfreezing: {unfreezing.trainable} of {len(unfreezing.groups)} layer groups train {when}",
                  file=sys.stderr)

    def _after_fit(self, prepared: Prepared) -> None:
        unfreezing = self.__dict__.get("_unfreezing")
        if unfreezing is not None:
            unfreezing.all()                          # the finished model is an ordinary one again
            self._unfreezing = None

    def _load_encoder(self) -> tuple[np.ndarray, dict[str, Any]]:
        """--encoder-from: the LM's embedding mapped onto this vocabulary, and its recurrent weights."""
        from rnnkit.tasks.transfer import load_encoder, map_embeddings, say_mapping

        path = self.config.encoder_from
        lm_tokenizer, lm_vectors, rnn = load_encoder(path)
        vectors, found, missing = map_embeddings(lm_tokenizer, lm_vectors, self.tokenizer_.word_index,
                                                 self.tokenizer_.vocab_size)
        self.embedding_stats_ = {"encoder_from": str(path), "dim": int(lm_vectors.shape[1]), "found": found,
                                 "unknown": len(missing), "unknown_examples": missing[:20],
                                 "unknown_init": "mean of the language model's vectors"}
        if self.__dict__.get("_progress") is not False:
            print(say_mapping(found, missing, path, lm_tokenizer.vocab_size - 1), file=sys.stderr)
        return vectors, rnn

    def _loss(self, prepared: Prepared, net: SequenceNet, batch: Any, state: Any) -> tuple:
        xb, lb, yb = batch
        unfreezing = self.__dict__.get("_unfreezing")
        if unfreezing is not None and self.config.unfreeze_every and net.training:
            # --unfreeze-every N: one more layer group after every N updates (this is the step's first call).
            unfreezing.steps += 1
            if unfreezing.steps > self.config.unfreeze_every:
                self._unfreeze("after {} updates".format(self.config.unfreeze_every))
        logits = net(xb, lb)
        w = prepared.weight.to(logits.device) if prepared.weight is not None else None
        return F.cross_entropy(logits, yb, weight=w), None, len(yb)

    def _validation_metrics(self, prepared: Prepared, net: SequenceNet) -> dict[str, float]:
        device = next(net.parameters()).device
        total, correct, n = 0.0, 0, 0
        for xb, lb, yb in prepared.val:
            xb, lb, yb = to_device((xb, lb, yb), device)
            logits = net(xb, lb)
            total += float(F.cross_entropy(logits.float(), yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
            n += len(yb)
        return {"val_loss": total / n, "val_accuracy": correct / n}

    def _fit_without_trainer(self, prepared: Prepared, progress: bool | None) -> BowModel | RocketModel:
        cfg, dry_run = self.config, prepared.dry_run
        if cfg.model == "bow":
            return BowModel.fit(list(prepared.X), prepared.y, cfg.bow_c, 1 if dry_run else cfg.bow_min_df,
                                cfg.train.seed, class_weight=cfg.class_weight)
        return RocketModel.fit(*prepared.encoded, prepared.y_idx, min(cfg.rocket_kernels, 100) if dry_run
                               else cfg.rocket_kernels, cfg.train.seed, progress=progress is not False)

    def _save_encoder(self, run: RunDir) -> None:
        # With the classes (config.json) and the vocabulary written when training starts, a run that is
        # stopped can still predict from its best checkpoint.
        if self.kind_ == "text" and self.config.model != "bow":
            self.tokenizer_.save(run.file("tokenizer.json"))

    def _build_inputs(self, X: list) -> None:
        if self.kind_ == "text":
            self.tokenizer_ = Tokenizer(num_words=self.config.num_words, oov_token="<unk>").fit_on_texts(X)
        else:
            # Per-channel mean/std over every valid training step, NaN ignored.
            allsteps = np.concatenate([np.asarray(x, dtype=np.float32) for x in X])      # (sum T, C)
            self.mean_ = np.nan_to_num(np.nanmean(allsteps, 0)).astype(np.float32)
            std = np.nan_to_num(np.nanstd(allsteps, 0))
            self.std_ = np.where(std > 1e-8, std, 1.0).astype(np.float32)

    def _build_net(self) -> SequenceNet:
        cfg = self.config
        sizes = dict(model=cfg.model, num_classes=len(self.classes_), embedding_size=cfg.embedding_size,
                     hidden_size=cfg.hidden_size, num_layers=cfg.layers(), kernel_size=cfg.kernel_size,
                     dropout=cfg.dropout, recurrent_dropout=cfg.recurrent_dropout, pooling=cfg.pooling)
        if self.kind_ == "text":
            return SequenceNet(**sizes, vocab=self.tokenizer_.vocab_size)
        return SequenceNet(**sizes, input_size=len(self.mean_))

    def _load_embeddings(self) -> np.ndarray:
        """The pretrained vectors for the vocabulary; embedding_size becomes theirs."""
        from rnnkit.tasks.embeddings.task import Embeddings

        cfg = self.config
        emb = Embeddings.load(cfg.embeddings)
        vectors, found, missing = emb.matrix(self.tokenizer_.word_index, self.tokenizer_.vocab_size,
                                             seed=cfg.train.seed)
        words = self.tokenizer_.vocab_size - 1
        self.embedding_stats_ = {"source": str(cfg.embeddings), "dim": emb.dim, "found": found,
                                 "unknown": len(missing), "unknown_examples": missing[:20]}
        print(f"embeddings {cfg.embeddings}: {found} of {words} vocabulary words found, {len(missing)} unknown "
              f"(random vectors{'' if not cfg.freeze_embeddings else ', frozen like the rest'})", file=sys.stderr)
        if cfg.embedding_size != emb.dim:
            self.config = dataclasses.replace(cfg, embedding_size=emb.dim)
        return vectors

    # -- predict -----------------------------------------------------------------------------------------

    def predict_proba(self, X: list) -> np.ndarray:
        """(N, K) class probabilities, columns in the order of ``classes_``."""
        self._check_fitted()
        X = list(X)
        if not X:
            return np.zeros((0, len(self.classes_)))
        if self.kind_ == "text" and not all(isinstance(t, str) for t in X):
            _checks.fail("X", type(X[0]).__name__, "a list of texts (str) for this text classifier")
        if self.config.model == "bow":
            return self.model_.predict_proba(X)
        if self.config.model == "rocket":
            return self.model_.predict_proba(*self._encode(X), progress=True)   # a line every 5 s on long work
        net = self.model_.eval()
        device = next(net.parameters()).device
        Xe, le = self._encode(X)
        probs = np.zeros((len(X), len(self.classes_)), dtype=np.float64)
        with torch.no_grad():
            for xb, lb, idx in track(self._batches(Xe, le, None, False), "prediction"):   # long work shows progress
                logits = net(xb.to(device), lb.to(device))
                probs[idx.numpy()] = F.softmax(logits.float(), dim=1).double().cpu().numpy()
        return probs

    def predict(self, X: list) -> np.ndarray:
        return np.array(self.classes_)[self.predict_proba(X).argmax(1)]

    def evaluate(self, X, y=None) -> dict[str, Any]:
        """accuracy, macro-F1, ROC AUC (two classes), per-class precision/recall/F1 and the confusion matrix.

        ``evaluate(X, y)``, or ``evaluate(data)`` with a :class:`Split` or an ``(X, y)`` pair."""
        X, y = _labelled(X, y)
        self._check_fitted()
        unknown = sorted(set(y) - set(self.classes_))
        if unknown:
            # Plain strings: numpy's str_ would print as np.str_('neg').
            _checks.fail("labels", [str(u) for u in unknown[:5]],
                         f"classes the model knows: {[str(c) for c in self.classes_]}")
        return classification_metrics(y, self.predict_proba(X), self.classes_)

    def report(self, X, y, out_dir: str | Path, name: str = "test", rows: str = "") -> dict[str, Any]:
        """Evaluate and write ``{name}_metrics.json`` and ``{name}_confusion.png`` into ``out_dir``;
        ``rows`` says which rows the figures come from (kept in the JSON and the plot's title)."""
        metrics = self.evaluate(X, y)
        if rows:
            metrics = {"rows": rows, **metrics}
        if not distributed.is_main():
            return metrics                      # under torchrun rank 0 writes the report
        out = RunDir(out_dir)
        out.path.mkdir(parents=True, exist_ok=True)
        out.write_json(f"{name}_metrics.json", metrics)
        plot_confusion(np.array(metrics["confusion_matrix"]), self.classes_, out.file(f"{name}_confusion.png"),
                       title=f"{self.config.model}: accuracy {metrics['accuracy']:.3f} on {rows or name}")
        return metrics

    # -- save / load -------------------------------------------------------------------------------------

    def fitted_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {"classes": self.classes_, "kind": self.kind_,
                                  "train_seconds": self.__dict__.get("train_seconds_", 0.0),
                                  "embeddings": self.__dict__.get("embedding_stats_", {})}
        if self.kind_ == "series":
            values.update(mean=self.mean_.tolist(), std=self.std_.tolist())
        trainer = self.__dict__.get("trainer_")
        if trainer is not None and trainer.stop_reason is not None:
            values["training"] = training_record(trainer)
        if "tournament_" in self.__dict__:
            values["tournament"] = self.tournament_
        seeds = self.__dict__.get("seed_models_")
        if seeds:
            values["seeds"] = {"seeds": [m.config.train.seed for m in seeds],
                               "val_accuracy": [m.__dict__.get("metrics_", {}).get("val_accuracy") for m in seeds]}
        return values

    def state_tensors(self) -> dict[str, Any]:
        # bow and rocket are not torch modules: they give their learned numbers as tensors themselves.
        return self.model_.tensors() if self.config.model in ("bow", "rocket") else self.model_.state_dict()

    def _save_files(self, run: RunDir) -> None:
        if self.config.model == "bow":
            self.model_.save_vocabulary(run.path)
        elif self.kind_ == "text" and self.config.model != "rocket":
            self.tokenizer_.save(run.file("tokenizer.json"))

    def _load_files(self, run: RunDir, fitted: dict[str, Any], tensors: dict[str, Any], **options: Any) -> None:
        self.classes_, self.kind_ = list(fitted["classes"]), fitted["kind"]
        self.train_seconds_ = fitted.get("train_seconds", 0.0)
        self.embedding_stats_ = fitted.get("embeddings", {})
        self.trainer_ = None
        if "tournament" in fitted:
            self.tournament_ = fitted["tournament"]
        if self.config.model == "bow":
            run.require(BOW_VOCABULARY_FILE)
            self.model_ = BowModel.from_tensors(tensors, run.path)
            return
        if self.config.model == "rocket":
            self.mean_, self.std_ = np.array(fitted["mean"], np.float32), np.array(fitted["std"], np.float32)
            self.model_ = RocketModel.from_tensors(tensors)
            return
        if self.kind_ == "text":
            run.require("tokenizer.json")
            self.tokenizer_ = Tokenizer.load(run.file("tokenizer.json"))
        else:
            # Runs of rnnkit 0.1 kept the channel scales in standardize.json.
            st = fitted if "mean" in fitted else run.read_json("standardize.json")
            self.mean_, self.std_ = np.array(st["mean"], np.float32), np.array(st["std"], np.float32)
        net = self._build_net()
        tensors = upgrade_state_dict(tensors)
        self._hold_weights(net, tensors, run)

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> "SequenceClassifier":
        check_run_dir(path, cls.name, "classifier", "rnnkit classify train")
        return super().load(path, **options)

    @classmethod
    def upgrade_config(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """config.json of rnnkit 0.1 ({"task": "classify", "model", "config" (flat), "classes", "kind"})."""
        flat = dict(raw["config"])
        flat["num_words"] = flat.pop("vocab_size", 30000)
        # 0.1 trained on the CPU with clipping at 5, logging every 20 steps: fixed in code then.
        config = nest_train_fields(ClassifyConfig, flat, clip_grad_norm=5.0, log_every=20, device="cpu")
        return {"task": cls.name, "format_version": FORMAT_VERSION, "config": config,
                "data": {"kind": raw["kind"]}, "fitted": {"classes": raw["classes"], "kind": raw["kind"]}}


    # -- the Task protocol: what serve, export and the CLI's apply verb call ------------------------------

    def details(self) -> dict[str, Any]:
        self._check_fitted()
        return {"classes": [str(c) for c in self.classes_], "input": self.kind_, "model": self.config.model}

    def apply(self, request: ClassifyRequest | dict[str, Any]) -> dict[str, Any]:
        """Class probabilities of ``request.texts`` (a text classifier) or ``request.series`` (a series
        classifier; null for a missing value): the classes, and each input's label and probabilities."""
        request = self.make_request(request)
        field, other = ("texts", "series") if self.kind_ == "text" else ("series", "texts")
        inputs = getattr(request, field)
        if inputs is None or getattr(request, other) is not None:
            what = "a list of strings" if field == "texts" else "a list of series, each a list of steps of values"
            given = f", not \"{other}\"" if getattr(request, other) is not None else ""
            raise ValueError(f"{field}: this classifier reads {self.kind_}; expected \"{field}\": {what}{given}")
        X = inputs if field == "texts" else [self._series_input(i, s) for i, s in enumerate(inputs)]
        probs = self.predict_proba(X)
        classes = [str(c) for c in self.classes_]
        return {"classes": classes, "predictions": [
            {"label": classes[int(np.argmax(p))], "probabilities": dict(zip(classes, map(float, p)))} for p in probs]}

    def _series_input(self, i: int, series: Any) -> np.ndarray:
        """One series of a request as a (steps, channels) array, null -> NaN (a missing value)."""
        try:
            x = np.asarray(series, dtype=np.float32)
        except (TypeError, ValueError):
            x = None
        if x is None or x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != len(self.mean_):
            _checks.fail(f"series[{i}]", series if x is None else f"an array of shape {x.shape}",
                         f"a list of steps, each with the {len(self.mean_)} channel values of the training data")
        return x

    def export_spec(self, fmt: str):
        """ONNX: every network (text or series) but the min cells, and ROCKET, behind the input scaling the run
        learned. C: a series classifier with one-direction rnn, gru, lstm or mingru layers. bow (a tf-idf logistic regression) exports to
        neither."""
        self._check_fitted()
        exports = {"onnx": "every classify model but bow, mingru and minlstm exports to ONNX",
                   "c": "a C header takes a classifier of numeric series with model rnn, gru, lstm or mingru"}
        if self.config.model == "bow":
            refuse_export("model 'bow' (a tf-idf logistic regression over word n-grams)", fmt,
                          f"it is not a network of tensors; {exports.get(fmt, exports['onnx'])}")
        if fmt == "onnx":
            return self._onnx_spec()
        if fmt == "c":
            return self._c_model(exports["c"])
        return super().export_spec(fmt)

    def _onnx_spec(self):
        from rnnkit.export.onnx import OnnxSpec, require_fused
        from rnnkit.tasks.classify.model import ClassifierGraph
        from rnnkit.tasks.classify.rocket import RocketGraph

        series, rocket = self.kind_ == "series", self.config.model == "rocket"
        if rocket:
            module = RocketGraph(self.model_, self.mean_, self.std_)
        else:
            require_fused(self.model_.rnn, f"model {self.config.model!r}")
            module = ClassifierGraph(self.model_, *((self.mean_, self.std_) if series else ()))
        # Several lengths, padded at the end: the general path of the layer (see rnnkit.export.onnx).
        gen = torch.Generator().manual_seed(0)
        mask = (torch.arange(7) < torch.tensor([7, 5, 2]).unsqueeze(1)).float()                   # (3, 7)
        if series:
            x = torch.randn(3, 7, len(self.mean_), generator=gen) * mask.unsqueeze(-1)
        else:
            x = torch.randint(1, self.tokenizer_.vocab_size, (3, 7), generator=gen) * mask.long()
        axes = {"x": {0: "batch", 1: "time"}, "mask": {0: "batch", 1: "time"}, "logits": {0: "batch"}}

        def compare(run, rng, B: int, T: int):
            T = min(T, self.config.maxlen or T)          # predict keeps the last maxlen steps; the graph reads all
            lengths = rng.integers(1, T + 1, B)
            lengths[0] = T
            mask = (np.arange(T) < lengths[:, None]).astype(np.float32)                          # (B, T)
            if not series:
                # word ids as the tokenizer gives them, straight into the network
                x = rng.integers(1, self.tokenizer_.vocab_size, (B, T)) * mask.astype(np.int64)
                with torch.no_grad():
                    want = self.model_.eval()(torch.from_numpy(x), torch.from_numpy(lengths)).numpy()
                return [(run({"x": x, "mask": mask})[0], want)]
            # raw channel values on the scale of the training data; the classifier encodes them itself
            C = len(self.mean_)
            x = (self.mean_ + self.std_ * rng.normal(0, 1.5, (B, T, C))).astype(np.float32) * mask[..., None]
            x[0, 0, 0] = np.nan                                                                  # a missing reading
            encoded, enc_lengths = self._encode([x[b, :lengths[b]] for b in range(B)])
            if rocket:
                want = self.model_.decision_function(encoded, enc_lengths)
            else:
                with torch.no_grad():
                    want = self.model_.eval()(torch.from_numpy(encoded), torch.from_numpy(enc_lengths)).numpy()
            return [(run({"x": x, "mask": mask})[0], want)]

        return OnnxSpec(module, (x, mask), ["x", "mask"], ["logits"], axes, kind="whole-sequence", compare=compare)

    def _c_model(self, exports: str):
        from rnnkit.export.c import CModel, rnn_layers

        what = f"model {self.config.model!r}"
        if self.kind_ == "text":
            refuse_export("a text classifier (word ids in)", "c", exports)
        if self.config.model == "rocket":
            refuse_export(f"{what} (random convolution kernels and a ridge classifier)", "c",
                          f"the header computes recurrent layers; {exports}")
        net = self.model_
        if net.rnn is None or len(net.convs):
            refuse_export(f"{what} (convolutional)", "c", f"the header computes recurrent layers, not "
                                                          f"convolutions; {exports}")
        kind, layers = rnn_layers(net.rnn, what)

        def reference(sequences: list[np.ndarray]) -> np.ndarray:
            x, lengths = self._encode(sequences)
            with torch.no_grad():
                return net.eval()(torch.from_numpy(x), torch.from_numpy(lengths)).numpy()       # (N, K)

        def inputs(rng: np.random.Generator, n: int) -> list[np.ndarray]:
            # sequences of 1..60 steps on the scale of the training data
            return [(self.mean_ + self.std_ * rng.normal(0, 1, (int(rng.integers(1, 61)), len(self.mean_))))
                    .astype(np.float32) for _ in range(n)]

        head = net.head
        return CModel("classes", kind, layers, head.weight.detach().float().cpu().numpy(),
                      head.bias.detach().float().cpu().numpy(), np.asarray(self.mean_, np.float32),
                      np.asarray(self.std_, np.float32), reference, inputs, pooling=self.config.pooling,
                      classes=[str(c) for c in self.classes_])
