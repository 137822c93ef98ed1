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
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit import _checks
from rnnkit.config import field
from rnnkit.report.metrics import classification_metrics
from rnnkit.report.plots import new_figure, save_png
from rnnkit.runs.checkpoint import RunDir, check_weights_match, save_weights
from rnnkit.runs.schema import FORMAT_VERSION
from rnnkit.tasks.base import Task
from rnnkit.tasks.classify.data import Split, small_sample
from rnnkit.tasks.classify.model import (BOW_FILE, BOW_VOCABULARY_FILE, MODELS, POOLINGS, BowModel, SequenceNet,
                                         upgrade_state_dict)
from rnnkit.tasks.classify.rocket import ROCKET_FILE, RocketModel
from rnnkit.text import Tokenizer
from rnnkit.training import distributed
from rnnkit.training.config import TrainConfig
from rnnkit.training.progress import track
from rnnkit.training.trainer import Trainer, seed_everything, to_device

WEIGHTS_FILE = "classifier.safetensors"    # the final (best-on-validation) model; Trainer files sit beside it
CLASS_WEIGHTS = ("none", "balanced")
TEXT_MAXLEN = 400     # words of a text kept when --maxlen is not given (the IMDB lessons' cut)


@dataclass
class ClassifyConfig:
    model: str = field("bilstm", "model type; bow is the tf-idf logistic-regression baseline (text), rocket the "
                                 "random-convolution-kernels + ridge baseline (series)", choices=MODELS)
    hidden_size: int = field(64, "recurrent units per direction and layer (also conv filters)")
    num_layers: int = field(1, "stacked recurrent (or conv) layers")
    embedding_size: int = field(64, "word embedding size (text); set by --embeddings when given")
    num_words: int = field(30000, "keep the most frequent words, the rest become <unk> (text)")
    maxlen: Optional[int] = field(None, "steps kept per sequence (None: 400 words of a text, every step of a "
                                        "series); longer ones are truncated, shorter ones padded (the padding "
                                        "is masked, so its side never matters)")
    truncating: str = field("pre", "where long sequences lose steps: pre keeps the end, post keeps the start",
                            choices=("pre", "post"))
    pooling: str = field("maxmean", "how the sequence of outputs becomes one vector", choices=POOLINGS)
    dropout: float = field(0.3, "dropout on the inputs of every layer (one mask per sequence) and before the head")
    recurrent_dropout: float = field(0.0, "recurrent dropout rate (weight-drop on the recurrent weights keeps "
                                          "the fused kernel)")
    kernel_size: int = field(5, "convolution width (conv1d, cnn-lstm)")
    embeddings: Optional[str] = field(None, "pretrained word vectors: glove-50d or a GloVe text file")
    freeze_embeddings: bool = field(False, "keep the pretrained vectors fixed (else fine-tune them)")
    class_weight: str = field("none", "balanced: weight each class's loss by n / (classes x its count), so a "
                                      "rare class counts as much as a common one", choices=CLASS_WEIGHTS)
    bow_c: float = field(4.0, "inverse regularisation strength of the bow logistic regression")
    bow_min_df: int = field(2, "bow: ignore n-grams found in fewer documents")
    rocket_kernels: int = field(10000, "rocket: random convolution kernels (2 features each; fewer is faster)")
    train: TrainConfig = field(TrainConfig(epochs=10, batch_size=64, lr=2e-3, clip_grad_norm=5.0,
                                           early_stop_patience=2, log_every=20), "training options")

    def __post_init__(self):
        _checks.check_choice("model", self.model, MODELS)
        for name in ("hidden_size", "num_layers", "embedding_size", "num_words", "kernel_size",
                     "bow_min_df", "rocket_kernels"):
            _checks.check_int(name, getattr(self, name), min=1)
        _checks.check_int("maxlen", self.maxlen, min=1, allow_none=True)
        _checks.check_choice("truncating", self.truncating, ("pre", "post"))
        _checks.check_choice("pooling", self.pooling, POOLINGS)
        _checks.check_choice("class_weight", self.class_weight, CLASS_WEIGHTS)
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        _checks.check_float("recurrent_dropout", self.recurrent_dropout, min=0, max=1, max_open=True)
        _checks.check_float("bow_c", self.bow_c, min=0, min_open=True)
        if not isinstance(self.train, TrainConfig):
            _checks.fail("train", self.train, "a TrainConfig")


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


class SequenceClassifier(Task):
    """Classify texts or multichannel series; see the module docstring.

    ``fit(X, y, validation_data=(X_val, y_val))``: X is a list of str (text) or a list of (T, C) arrays
    (series). Learned: ``classes_``, ``kind_``, ``tokenizer_`` (text), ``mean_``/``std_`` (series),
    ``model_`` (a :class:`SequenceNet`, a :class:`BowModel` for bow, a :class:`RocketModel` for rocket),
    ``trainer_``, ``embedding_stats_``, ``train_seconds_``.
    """

    name = "classify"
    config_class = ClassifyConfig
    train_command = "rnnkit classify train"

    # -- input encoding ----------------------------------------------------------------------------------

    def _encode(self, X: list) -> tuple[np.ndarray, np.ndarray]:
        """Inputs -> (N, T) ids or (N, T, C) values padded at the end, and (N,) lengths >= 1."""
        cfg = self.config
        if self.kind_ == "text":
            seqs = self.tokenizer_.texts_to_sequences(X)
            seqs = [_truncate(s, cfg.maxlen or TEXT_MAXLEN, cfg.truncating) for s in seqs]
            # A text with no word left becomes one <unk> step: a model needs at least one step to read.
            seqs = [s if s else [1] for s in seqs]
            lengths = np.array([len(s) for s in seqs], dtype=np.int64)
            out = np.zeros((len(seqs), max(lengths, default=1)), dtype=np.int64)
            for i, s in enumerate(seqs):
                out[i, :len(s)] = s
            return out, lengths
        arrs = []
        for i, x in enumerate(X):
            x = np.asarray(x, dtype=np.float32)
            if x.ndim != 2 or x.shape[1] != len(self.mean_):
                _checks.fail(f"X[{i}]", tuple(x.shape), f"a (steps, {len(self.mean_)}) array of channel values")
            x = _truncate(x, cfg.maxlen, cfg.truncating)
            # Standardise with the training statistics; a missing value becomes the channel mean (0).
            arrs.append(np.nan_to_num((x - self.mean_) / self.std_, nan=0.0))
        lengths = np.array([max(len(a), 1) for a in arrs], dtype=np.int64)
        out = np.zeros((len(arrs), max(lengths, default=1), len(self.mean_)), dtype=np.float32)
        for i, a in enumerate(arrs):
            out[i, :len(a)] = a
        return out, lengths

    def _batches(self, X: np.ndarray, lengths: np.ndarray, y: np.ndarray | None, shuffle: bool,
                 rng: np.random.Generator | None = None) -> list:
        """CPU batches trimmed to their longest member; when shuffling, bucket by length within chunks."""
        n, bs = len(lengths), self.config.train.batch_size
        if shuffle:
            order = rng.permutation(n)
            chunk = bs * 20
            order = np.concatenate([c[np.argsort(lengths[c], kind="stable")]
                                    for c in np.array_split(order, max(1, math.ceil(n / chunk)))])
            groups = [order[i:i + bs] for i in range(0, n, bs)]
            groups = [groups[i] for i in rng.permutation(len(groups))]
        else:
            order = np.argsort(lengths, kind="stable")           # similar lengths together: less padding
            groups = [order[i:i + bs] for i in range(0, n, bs)]
        out = []
        for g in groups:
            T = int(lengths[g].max())
            xb = torch.from_numpy(X[g, :T])
            lb = torch.from_numpy(lengths[g])
            out.append((xb, lb, torch.from_numpy(y[g])) if y is not None else (xb, lb, torch.from_numpy(g)))
        return out

    # -- fit ---------------------------------------------------------------------------------------------

    def fit(self, X: list, y, validation_data: tuple | None = None, *, run_dir: str | Path | None = None,
            resume: bool = False, dry_run: bool = False, progress: bool | None = None,
            data_info: dict[str, Any] | None = None) -> "SequenceClassifier":
        """Train on ``X`` with labels ``y``; ``validation_data`` picks the best epoch and stops early.

        ``run_dir``: checkpoints, metrics and the final model go there (``resume`` continues it);
        ``dry_run``: one tiny batch, one epoch; ``data_info``: what the data is, for config.json.
        """
        cfg = self.config
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
        self.embedding_stats_: dict[str, Any] = {}
        self.trainer_ = None
        if validation_data is not None and len(validation_data[0]) == 0:
            validation_data = None
        # What the run trains and validates on; a resumed run refuses data that changed since it began.
        val = None if validation_data is None else (list(validation_data[0]),
                                                    np.asarray(validation_data[1]).astype(str))
        record = self._data_record((data_info or {}).get("source") or "the data passed to fit", list(X), y, val,
                                   run_dir=run_dir, resume=resume)
        self.data_ = {**record, "kind": self.kind_, "train_size": len(y),
                      "val_size": 0 if validation_data is None else len(validation_data[0]), **(data_info or {})}
        if dry_run:
            # One tiny batch: enough to run every code path in seconds.
            X, y = small_sample(X, y, cfg.train.batch_size, cfg.train.seed)
            if validation_data is not None:
                validation_data = small_sample(validation_data[0], np.asarray(validation_data[1]), 8,
                                               cfg.train.seed)
        start = time.monotonic()
        if cfg.model == "bow":
            self.model_ = BowModel.fit(list(X), y, cfg.bow_c, 1 if dry_run else cfg.bow_min_df, cfg.train.seed,
                                       class_weight=cfg.class_weight)
        elif cfg.model == "rocket":
            # No epochs and no early stopping: the ridge penalty is chosen by cross-validation on X itself.
            self._build_inputs(X)
            y_idx = np.array([self.classes_.index(c) for c in y], dtype=np.int64)
            self.model_ = RocketModel.fit(*self._encode(X), y_idx, min(cfg.rocket_kernels, 100) if dry_run
                                          else cfg.rocket_kernels, cfg.train.seed, progress=progress is not False)
        else:
            self._fit_net(X, y, validation_data, run_dir, resume, dry_run, progress)
        self.train_seconds_ = time.monotonic() - start
        # The final model marks a finished run; an interrupted one keeps only its checkpoint (to resume).
        if run_dir and distributed.is_main() and not (self.trainer_ is not None and self.trainer_.interrupted):
            self.save(run_dir)
        return self

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
        if self.kind_ == "text":
            return SequenceNet(self.config, len(self.classes_), vocab=self.tokenizer_.vocab_size)
        return SequenceNet(self.config, len(self.classes_), input_size=len(self.mean_))

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

    def _fit_net(self, X, y, validation_data, run_dir, resume, dry_run, progress) -> None:
        self._build_inputs(X)
        vectors = self._load_embeddings() if self.kind_ == "text" and self.config.embeddings else None
        cfg = self.config
        seed_everything(cfg.train.seed)
        self.model_ = self._build_net()
        if vectors is not None:
            self.model_.embed.weight.data.copy_(torch.from_numpy(vectors))
            self.model_.embed.weight.requires_grad_(not cfg.freeze_embeddings)

        y_idx = np.array([self.classes_.index(c) for c in y], dtype=np.int64)
        Xe, le = self._encode(X)
        seed = cfg.train.seed
        train_batches = (lambda epoch: self._batches(Xe, le, y_idx, True, np.random.default_rng([seed, epoch])))
        if dry_run:
            train_batches = self._batches(Xe, le, y_idx, True, np.random.default_rng(seed))[:1]

        # balanced: n / (K * count_k) per class, as scikit-learn's class_weight="balanced"
        counts = np.bincount(y_idx, minlength=len(self.classes_))
        weight = (torch.tensor(len(y_idx) / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)
                  if cfg.class_weight == "balanced" else None)

        def compute_loss(net, batch, state):
            xb, lb, yb = batch
            logits = net(xb, lb)
            w = weight.to(logits.device) if weight is not None else None
            return F.cross_entropy(logits, yb, weight=w), None, len(yb)

        evaluate = None
        if validation_data is not None:
            Xv, yv = list(validation_data[0]), np.asarray(validation_data[1]).astype(str)
            unknown = sorted(set(yv) - set(self.classes_))
            if unknown:
                _checks.fail("validation labels", unknown[:5], f"classes seen in training: {self.classes_}")
            yv_idx = np.array([self.classes_.index(c) for c in yv], dtype=np.int64)
            val_batches = self._batches(*self._encode(Xv), yv_idx, False)

            def evaluate(net):
                device = next(net.parameters()).device
                total, correct, n = 0.0, 0, 0
                for xb, lb, yb in val_batches:
                    xb, lb, yb = to_device((xb, lb, yb), device)
                    logits = net(xb, lb)
                    total += float(F.cross_entropy(logits.float(), yb, reduction="sum"))
                    correct += int((logits.argmax(1) == yb).sum())
                    n += len(yb)
                return {"val_loss": total / n, "val_accuracy": correct / n}

        tcfg = dataclasses.replace(cfg.train, epochs=1) if dry_run else cfg.train
        if validation_data is None:
            # No validation rows: train every epoch and keep the last weights (the training loss would
            # otherwise pick the best epoch and stop early, which says nothing about new data).
            tcfg = dataclasses.replace(tcfg, restore_best=False, early_stop_patience=None)
        distributed.barrier()    # under torchrun: every process has checked the run directory before rank 0 writes
        if run_dir and distributed.is_main():
            # A run dir is recognisable as a classifier while it trains, and with the classes and the
            # vocabulary written now, a run that is stopped can still predict from its best checkpoint.
            self.write_config(run_dir)
            if self.kind_ == "text":
                self.tokenizer_.save(RunDir(run_dir).file("tokenizer.json"))
        # The Trainer leaves the best epoch's weights in the model (restore_best).
        self.trainer_ = Trainer(self.model_, tcfg, run_dir=run_dir, progress=progress)
        self.trainer_.fit(train_batches, compute_loss, evaluate, resume=resume)
        self._refuse_spent_budget(self.trainer_, run_dir, resume)
        self.model_.eval()

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
            _checks.fail("labels", unknown[:5], f"classes the model knows: {self.classes_}")
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
            values["training"] = {"steps": trainer.step, "epochs": trainer.epoch, "stop_reason": trainer.stop_reason,
                                  "best_val_loss": trainer.best}
        return values

    def _save_files(self, run: RunDir) -> None:
        if self.config.model in ("bow", "rocket"):
            self.model_.save(run.path)
            return
        if self.kind_ == "text":
            self.tokenizer_.save(run.file("tokenizer.json"))
        save_weights(run.file(WEIGHTS_FILE), self.model_.state_dict())

    def _load_files(self, run: RunDir, fitted: dict[str, Any], **options: Any) -> None:
        self.classes_, self.kind_ = list(fitted["classes"]), fitted["kind"]
        self.train_seconds_ = fitted.get("train_seconds", 0.0)
        self.embedding_stats_ = fitted.get("embeddings", {})
        self.trainer_ = None
        if self.config.model == "bow":
            run.require(BOW_FILE, BOW_VOCABULARY_FILE)
            self.model_ = BowModel.load(run.path)
            return
        if self.config.model == "rocket":
            run.require(ROCKET_FILE)
            self.mean_, self.std_ = np.array(fitted["mean"], np.float32), np.array(fitted["std"], np.float32)
            self.model_ = RocketModel.load(run.path)
            return
        if self.kind_ == "text":
            run.require("tokenizer.json")
            self.tokenizer_ = Tokenizer.load(run.file("tokenizer.json"))
        else:
            # Runs of rnnkit 0.1 kept the channel scales in standardize.json.
            st = fitted if "mean" in fitted else run.read_json("standardize.json")
            self.mean_, self.std_ = np.array(st["mean"], np.float32), np.array(st["std"], np.float32)
        net = self._build_net()
        source, tensors = self._model_weights(run, WEIGHTS_FILE)    # a checkpoint if training has not finished
        tensors = upgrade_state_dict(tensors)
        check_weights_match(tensors, net.state_dict(), source=str(source))
        net.load_state_dict(tensors)
        self.model_ = net.eval()

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


def _truncate(seq, maxlen: int | None, truncating: str):
    """The last (``pre``) or first (``post``) ``maxlen`` steps of a sequence; all of it when maxlen is None."""
    if maxlen is None or len(seq) <= maxlen:
        return seq
    return seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
