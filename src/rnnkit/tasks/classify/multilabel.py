"""Multilabel classification of irregularly sampled clinical-like series (Lipton et al. 2015, "Learning to
Diagnose with LSTM Recurrent Neural Networks").

**The data here is synthetic.** No real clinical time series ships in a package, so
:func:`make_clinical` generates stays with a structure that is known exactly: six vital-sign channels
measured at irregular times (each channel at its own rate, some never), whose labels are temporal patterns
planted in the signals: a transient *episode* on a channel (a bump of 2-6 hours), a *trend* over the stay,
and two conjunctions of patterns ("sepsis-like" = heart-rate episode AND temperature episode). A latent
severity makes labels co-occur and makes sicker stays measured more often, so when a value is missing is
itself informative, as in real records.

The pipeline, as in the paper:

1. **resample** each stay to an hourly grid (mean of the observations in each hour, NaN where none;
   ``grid_step`` sets the slot width);
2. **missingness indicators**: one 0/1 channel per vital sign, 1 where the hour had no observation;
3. **impute**: forward fill, then the training mean for hours before the first observation;
4. an LSTM reads the (values, indicators) sequence and emits L **sigmoid outputs at every step**;
5. the loss is binary cross-entropy **averaged over labels**; with **target replication** the loss at
   every step (each step is asked for the final labels) is mixed with the final-step loss:
   ``alpha * mean_t BCE(y_t, y) + (1 - alpha) * BCE(y_T, y)``; **auxiliary outputs** add a second head
   trained on extra targets (here: whether each channel's episode fell in the second half of the stay),
   weighted by ``aux_weight`` and never evaluated.

Metrics (:func:`rnnkit.report.metrics.multilabel_metrics`): micro and macro ROC AUC, micro and macro F1
(threshold 0.5), and precision at 10 (the share of true labels among each stay's 10 highest-scored labels,
averaged over stays; its ceiling is reported too, since a stay with fewer than 10 true labels cannot reach 1).

:class:`MultilabelClassifier` is a :class:`~rnnkit.tasks.base.Task` like the others (training options in a
nested TrainConfig, ``rnnkit.load`` reads its run directories); ``rnnkit classify multilabel
train|eval|predict`` runs it on the synthetic stays (:class:`SyntheticConfig`), or on a user's long-format
file (:func:`read_stay_file`: one row per visit, blank cells for values not measured, 0/1 label columns per
id in the same file or in a second one).

:class:`Stay`, :func:`resample` and :func:`impute` live in :mod:`rnnkit.tasks.classify.data`: the sequence
classifier's ``--time-input grid`` uses the same ones.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import _checks
from rnnkit.config import field
from rnnkit.datasets.files import load_table
from rnnkit.nn.layers import RNN
from rnnkit.report.metrics import multilabel_metrics
from rnnkit.runs.checkpoint import RunDir, check_weights_match, save_weights
from rnnkit.runs.schema import FORMAT_VERSION
from rnnkit.tasks.base import Task, stop_if_interrupted
from rnnkit.tasks.classify.data import SPLIT_NAMES, Stay, impute, read_header, read_long_file, resample, to_stays
from rnnkit.tasks.classify.task import check_run_dir, nest_train_fields
from rnnkit.training.config import TrainConfig
from rnnkit.training.trainer import Trainer, seed_everything, to_device

# name, baseline, per-patient spread, measurement noise, episode amplitude, trend amplitude, observations/hour
CHANNELS = (
    ("heart_rate", 80.0, 10.0, 5.0, 40.0, 25.0, 1.0),
    ("systolic_bp", 120.0, 12.0, 8.0, -35.0, -30.0, 0.7),
    ("resp_rate", 16.0, 3.0, 2.0, 10.0, 8.0, 0.6),
    ("temperature", 37.0, 0.3, 0.2, 2.0, 1.2, 0.25),
    ("spo2", 97.0, 1.0, 1.0, -8.0, -6.0, 0.8),
    ("glucose", 110.0, 15.0, 10.0, 90.0, 70.0, 0.15),
)
CHANNEL_NAMES = tuple(c[0] for c in CHANNELS)
LABEL_NAMES = tuple(f"{c}_{kind}" for c in CHANNEL_NAMES for kind in ("episode", "trend")) + (
    "sepsis_like", "respiratory_failure")
AUX_NAMES = tuple(f"{c}_episode_late" for c in CHANNEL_NAMES)


def make_clinical(n: int, seed: int = 0, min_hours: int = 24, max_hours: int = 48,
                  ) -> tuple[list[Stay], np.ndarray, np.ndarray]:
    """``n`` synthetic stays -> (stays, labels (n, 14) 0/1, auxiliary targets (n, 6) 0/1); see the module doc."""
    _checks.check_int("n", n, min=1)
    rng = np.random.default_rng(seed)
    C = len(CHANNELS)
    stays, labels, aux = [], [], []
    for _ in range(n):
        hours = float(rng.integers(min_hours, max_hours + 1))
        severity = rng.uniform()
        p = 0.1 + 0.35 * severity                                   # sicker stays have more patterns
        episode = rng.uniform(size=C) < p
        trend = rng.uniform(size=C) < p
        centre = rng.uniform(2.0, hours - 2.0, size=C)              # where each episode peaks
        width = rng.uniform(1.0, 3.0, size=C)                       # its half-width, hours
        times, chans, values = [], [], []
        for c, (_, base, spread, noise, amp_ep, amp_tr, rate) in enumerate(CHANNELS):
            if rng.uniform() < 0.08:
                continue                                            # this channel was never measured
            # Informative missingness: sicker stays are measured more often.
            m = rng.poisson(rate * hours * (0.6 + 0.8 * severity))
            t = np.sort(rng.uniform(0.0, hours, size=m))
            level = base + spread * rng.normal()
            v = level + noise * rng.normal(size=m)
            if episode[c]:
                v += amp_ep * np.exp(-0.5 * ((t - centre[c]) / width[c]) ** 2)
            if trend[c]:
                v += amp_tr * t / hours
            times.append(t)
            chans.append(np.full(m, c))
            values.append(v)
        stays.append(Stay(np.concatenate(times) if times else np.zeros(0), np.concatenate(chans).astype(np.int64)
                          if chans else np.zeros(0, np.int64), np.concatenate(values) if values else np.zeros(0), hours))
        own = [x for c in range(C) for x in (episode[c], trend[c])]
        labels.append(own + [episode[0] and episode[3], trend[2] and trend[4]])
        aux.append([episode[c] and centre[c] > hours / 2 for c in range(C)])
    return stays, np.array(labels, dtype=np.float32), np.array(aux, dtype=np.float32)


# ---------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------

@dataclass
class MultilabelConfig:
    hidden_size: int = field(64, "LSTM units per layer")
    num_layers: int = field(2, "stacked LSTM layers")
    dropout: float = field(0.2, "dropout between layers and before the output heads")
    alpha: float = field(0.5, "target replication: weight of the every-step loss (0: final step only)")
    aux_weight: float = field(0.0, "weight of the auxiliary-output loss (0: no auxiliary head)")
    threshold: float = field(0.5, "probability above which a label is predicted (for F1)")
    class_weight: str = field("none", "balanced: weight each label's positive stays by negatives / positives "
                                      "in training, so a rare label counts as much as a common one",
                              choices=("none", "balanced"))
    grid_step: float = field(1.0, "width of a grid slot in the time column's units (hours for timestamps and "
                                  "for the synthetic stays)")
    train: TrainConfig = field(TrainConfig(epochs=20, batch_size=64, lr=3e-3, clip_grad_norm=5.0,
                                           early_stop_patience=4, log_every=20), "training options")

    def __post_init__(self):
        for name in ("hidden_size", "num_layers"):
            _checks.check_int(name, getattr(self, name), min=1)
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        _checks.check_float("alpha", self.alpha, min=0, max=1)
        _checks.check_float("aux_weight", self.aux_weight, min=0)
        _checks.check_float("threshold", self.threshold, min=0, max=1, min_open=True, max_open=True)
        _checks.check_float("grid_step", self.grid_step, min=0, min_open=True)
        _checks.check_choice("class_weight", self.class_weight, ("none", "balanced"))
        if not isinstance(self.train, TrainConfig):
            _checks.fail("train", self.train, "a TrainConfig")


class MultilabelNet(nn.Module):
    """LSTM over (values, missing indicators) -> per-step logits for the labels (and the auxiliary targets)."""

    def __init__(self, cfg: MultilabelConfig, input_size: int, num_labels: int, num_aux: int):
        super().__init__()
        self.rnn = RNN("lstm", input_size, cfg.hidden_size, num_layers=cfg.num_layers,
                       dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_size, num_labels)
        self.aux_head = nn.Linear(cfg.hidden_size, num_aux) if num_aux else None

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        h = self.drop(self.rnn(x, lengths=lengths))                 # (B, T, H); zeros past each length
        return self.head(h), (self.aux_head(h) if self.aux_head is not None else None)   # (B, T, L), (B, T, A)


def last_step(seq: Tensor, lengths: Tensor) -> Tensor:
    """(B, T, K) -> (B, K) at each sequence's last valid step."""
    lengths = lengths.to(seq.device)
    return seq.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, seq.shape[2])).squeeze(1)


def replicated_loss(logits: Tensor, y: Tensor, lengths: Tensor, alpha: float,
                    pos_weight: Tensor | None = None) -> Tensor:
    """alpha * (mean over valid steps of BCE(step t, y)) + (1 - alpha) * BCE(last step, y); BCE averaged over labels.

    logits (B, T, L), y (B, L) in {0, 1}, lengths (B,); ``pos_weight`` (L,) weighs each label's positives.
    """
    final = F.binary_cross_entropy_with_logits(last_step(logits, lengths), y, pos_weight=pos_weight)
    if alpha == 0:
        return final
    T = logits.shape[1]
    mask = (torch.arange(T, device=logits.device).unsqueeze(0) < lengths.unsqueeze(1)).float()   # (B, T)
    per_step = F.binary_cross_entropy_with_logits(logits, y.unsqueeze(1).expand_as(logits), reduction="none",
                                                  pos_weight=pos_weight).mean(-1)                  # (B, T)
    every = ((per_step * mask).sum(1) / lengths).mean()
    return alpha * every + (1 - alpha) * final


WEIGHTS_FILE = "classifier.safetensors"


class MultilabelClassifier(Task):
    """Task object over :class:`Stay` lists: ``fit(stays, Y, aux=None, validation_data=(stays, Y))``.

    Learned: ``mean_``/``std_`` (per channel, from training observations), ``model_``, ``trainer_``,
    ``labels_``, ``channels_``, ``num_labels_``, ``num_aux_``, ``train_seconds_``.
    """

    name = "classify-multilabel"
    config_class = MultilabelConfig
    train_command = "rnnkit classify multilabel train"
    channel_names = CHANNEL_NAMES

    def _features(self, stays: list[Stay]) -> tuple[np.ndarray, np.ndarray]:
        """-> (N, T, 2C) standardised values then missing indicators, padded at the end; (N,) lengths."""
        C = len(self.mean_)
        rows = []
        for s in stays:
            values, missing = impute(resample(s, C, self.config.grid_step), self.mean_)
            rows.append(np.concatenate([(values - self.mean_) / self.std_, missing], axis=1))
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        X = np.zeros((len(rows), lengths.max(), 2 * C), dtype=np.float32)
        for i, r in enumerate(rows):
            X[i, :len(r)] = r
        return X, lengths

    def fit(self, stays: list[Stay], Y, aux=None, validation_data: tuple | None = None, *,
            channels: list[str] | None = None, label_names: list[str] | None = None,
            run_dir: str | Path | None = None, resume: bool = False, dry_run: bool = False,
            progress: bool | None = False, data_info: dict[str, Any] | None = None) -> "MultilabelClassifier":
        """Train on ``stays`` with 0/1 labels ``Y`` (N, L) and optional auxiliary targets ``aux`` (N, A);
        ``validation_data`` picks the best epoch. ``channels`` and ``label_names`` name the stays' channels
        and the labels (default: the synthetic ones). ``run_dir``, ``resume``, ``dry_run``, ``data_info``: as
        for :meth:`SequenceClassifier.fit`."""
        cfg = self.config
        Y = np.asarray(Y, dtype=np.float32)
        if Y.ndim != 2 or len(Y) != len(stays):
            _checks.fail("Y", tuple(Y.shape), f"a (stays, labels) 0/1 array with {len(stays)} rows")
        if cfg.aux_weight > 0 and aux is None:
            _checks.fail("aux_weight", cfg.aux_weight, "0 when no auxiliary targets are given")
        A = np.asarray(aux, dtype=np.float32) if (aux is not None and cfg.aux_weight > 0) else None
        self.num_labels_, self.num_aux_ = Y.shape[1], (0 if A is None else A.shape[1])
        if label_names is not None and len(label_names) != Y.shape[1]:
            _checks.fail("label_names", list(label_names), f"one name per column of Y ({Y.shape[1]})")
        self.labels_ = (list(label_names) if label_names is not None else list(LABEL_NAMES)
                        if Y.shape[1] == len(LABEL_NAMES) else [f"label_{j}" for j in range(Y.shape[1])])
        self.channels_ = list(channels) if channels is not None else list(CHANNEL_NAMES)
        C = len(self.channels_)
        used = max((int(s.channels.max()) for s in stays if len(s.channels)), default=-1)
        if used >= C:
            _checks.fail("channels", self.channels_, f"a name for each of the stays' {used + 1} channels")
        vals = np.concatenate([s.values for s in stays])
        chans = np.concatenate([s.channels for s in stays])
        self.mean_ = np.array([vals[chans == c].mean() if (chans == c).any() else 0.0 for c in range(C)])
        std = np.array([vals[chans == c].std() if (chans == c).sum() > 1 else 1.0 for c in range(C)])
        self.std_ = np.where(std > 1e-8, std, 1.0)
        self.trainer_ = None
        # What the run trains and validates on; a resumed run refuses data that changed since it began.
        record = self._data_record((data_info or {}).get("source") or "the stays passed to fit", list(stays), Y, A,
                                   validation_data, run_dir=run_dir, resume=resume)
        self.data_ = {**record, "train_size": len(stays),
                      "val_size": 0 if validation_data is None else len(validation_data[0]), **(data_info or {})}
        bs = cfg.train.batch_size
        if dry_run:
            stays, Y = stays[:bs], Y[:bs]
            A = A[:bs] if A is not None else None
        start = time.monotonic()
        X, L = self._features(stays)
        seed_everything(cfg.train.seed)
        self.model_ = MultilabelNet(cfg, X.shape[2], self.num_labels_, self.num_aux_)
        tY = torch.from_numpy(Y)
        tA = torch.from_numpy(A) if A is not None else None

        def batches(epoch):
            order = np.random.default_rng([cfg.train.seed, epoch]).permutation(len(L))
            out = []
            for i in range(0, len(order), bs):
                g = order[i:i + bs]
                T = int(L[g].max())
                out.append((torch.from_numpy(X[g, :T]), torch.from_numpy(L[g]), tY[g],
                            tA[g] if tA is not None else tY[g, :0]))
            return out[:1] if dry_run else out

        # balanced: negatives / positives per label (a label no training stay has keeps weight 1)
        positives = Y.sum(0)
        pos_weight = (torch.from_numpy(np.where(positives > 0, (len(Y) - positives) / np.maximum(positives, 1), 1.0)
                                       .astype(np.float32)) if cfg.class_weight == "balanced" else None)

        def compute_loss(net, batch, state):
            xb, lb, yb, ab = batch
            logits, aux_logits = net(xb, lb)
            w = pos_weight.to(logits.device) if pos_weight is not None else None
            loss = replicated_loss(logits, yb, lb, cfg.alpha, w)
            if aux_logits is not None:
                loss = loss + cfg.aux_weight * F.binary_cross_entropy_with_logits(last_step(aux_logits, lb), ab)
            return loss, None, len(yb)

        evaluate = None
        if validation_data is not None:
            Xv, Lv = self._features(list(validation_data[0]))
            val = (torch.from_numpy(Xv), torch.from_numpy(Lv),
                   torch.from_numpy(np.asarray(validation_data[1], dtype=np.float32)))

            def evaluate(net):
                # The final-step loss: what the model is judged on, whatever alpha trained it.
                xv, lv, yv = to_device(val, next(net.parameters()).device)
                logits, _ = net(xv, lv)
                return {"val_loss": float(F.binary_cross_entropy_with_logits(last_step(logits, lv).float(), yv))}

        tcfg = dataclasses.replace(cfg.train, epochs=1) if dry_run else cfg.train
        if validation_data is None:
            # No validation rows: train every epoch and keep the last weights (the training loss would
            # otherwise pick the best epoch and stop early, which says nothing about new data).
            tcfg = dataclasses.replace(tcfg, restore_best=False, early_stop_patience=None)
        if run_dir:
            self.write_config(run_dir)   # a run dir is recognisable while it trains
        # The Trainer leaves the best epoch's weights in the model (restore_best).
        self.trainer_ = Trainer(self.model_, tcfg, run_dir=run_dir, progress=progress)
        self.trainer_.fit(batches, compute_loss, evaluate, resume=resume)
        self._refuse_spent_budget(self.trainer_, run_dir, resume)
        self.model_.eval()
        self.train_seconds_ = time.monotonic() - start
        # The final model marks a finished run; an interrupted one keeps only its checkpoint (to resume).
        if run_dir and not self.trainer_.interrupted:
            self.save(run_dir)
        return self

    def predict_proba(self, stays: list[Stay]) -> np.ndarray:
        """(N, L) probability of each label, read at each stay's last hour."""
        self._check_fitted()
        X, L = self._features(list(stays))
        net = self.model_.eval()
        device = next(net.parameters()).device
        with torch.no_grad():
            lengths = torch.from_numpy(L).to(device)
            logits, _ = net(torch.from_numpy(X).to(device), lengths)
            return torch.sigmoid(last_step(logits, lengths).float()).cpu().numpy()

    def predict(self, stays: list[Stay]) -> np.ndarray:
        """(N, L) 0/1: the labels whose probability is at least ``threshold``."""
        return (self.predict_proba(stays) >= self.config.threshold).astype(np.int64)

    def evaluate(self, stays, Y=None) -> dict[str, float]:
        """Micro/macro ROC AUC and F1, precision at 10: ``evaluate(stays, Y)`` or ``evaluate((stays, Y))``."""
        if Y is None:
            if not (isinstance(stays, tuple) and len(stays) == 2):
                _checks.fail("Y", None, "the (stays, labels) 0/1 array, or pass (stays, Y) as one pair")
            stays, Y = stays
        return multilabel_metrics(np.asarray(Y), self.predict_proba(stays), self.config.threshold)

    # -- save / load -------------------------------------------------------------------------------------

    def fitted_values(self) -> dict[str, Any]:
        return {"labels": self.labels_, "channels": list(self.channels_), "num_labels": self.num_labels_,
                "num_aux": self.num_aux_, "mean": self.mean_.tolist(), "std": self.std_.tolist(),
                "train_seconds": self.__dict__.get("train_seconds_", 0.0)}

    def _save_files(self, run: RunDir) -> None:
        save_weights(run.file(WEIGHTS_FILE), self.model_.state_dict())

    def _load_files(self, run: RunDir, fitted: dict[str, Any], **options: Any) -> None:
        # Runs of rnnkit 0.1 kept the channel scales in standardize.json.
        st = fitted if "mean" in fitted else run.read_json("standardize.json")
        self.mean_, self.std_ = np.array(st["mean"]), np.array(st["std"])
        self.labels_ = list(fitted["labels"])
        self.channels_ = list(fitted.get("channels", CHANNEL_NAMES))
        self.num_labels_, self.num_aux_ = st.get("num_labels", len(self.labels_)), fitted["num_aux"]
        self.train_seconds_ = fitted.get("train_seconds", 0.0)
        self.trainer_ = None
        net = MultilabelNet(self.config, 2 * len(self.mean_), self.num_labels_, self.num_aux_)
        source, tensors = self._model_weights(run, WEIGHTS_FILE)    # a checkpoint if training has not finished
        check_weights_match(tensors, net.state_dict(), source=str(source))
        net.load_state_dict(tensors)
        self.model_ = net.eval()

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> "MultilabelClassifier":
        check_run_dir(path, cls.name, "multilabel classifier", "rnnkit classify multilabel train")
        return super().load(path, **options)

    @classmethod
    def upgrade_config(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """config.json of rnnkit 0.1 ({"task": "classify-multilabel", "config" (flat), "labels", "num_aux", ...})."""
        config = nest_train_fields(MultilabelConfig, raw["config"], clip_grad_norm=5.0, log_every=20, device="cpu")
        return {"task": cls.name, "format_version": FORMAT_VERSION, "config": config,
                "data": {"source": SYNTHETIC_SOURCE, "synthetic": True},
                "fitted": {"labels": raw["labels"], "channels": raw.get("channels", list(CHANNEL_NAMES)),
                           "num_aux": raw["num_aux"]}}


# ---------------------------------------------------------------------------------------------------------
# The synthetic data set (the command line's and the benchmark's)
# ---------------------------------------------------------------------------------------------------------

SYNTHETIC_SOURCE = "SYNTHETIC clinical-like stays (make_clinical), not real patients"


@dataclass
class SyntheticConfig:
    num_stays: int = field(3000, "SYNTHETIC clinical-like stays to generate (not real patients)")
    data_seed: int = field(0, "seed of the synthetic data generator")
    val_frac: float = field(0.1, "share of the stays held out for validation (best epoch, early stopping)")
    test_frac: float = field(0.2, "share of the stays held out for the test metrics")

    def __post_init__(self):
        _checks.check_int("num_stays", self.num_stays, min=1)
        _checks.check_int("data_seed", self.data_seed)
        _checks.check_float("val_frac", self.val_frac, min=0, max=1, max_open=True)
        _checks.check_float("test_frac", self.test_frac, min=0, max=1, max_open=True)
        if self.val_frac + self.test_frac >= 1:
            _checks.fail("val_frac + test_frac", self.val_frac + self.test_frac,
                         "less than 1 (something must be left to train on)")


def synthetic_splits(scfg: SyntheticConfig) -> dict[str, tuple[list[Stay], np.ndarray, np.ndarray]]:
    """Generate the stays and cut them in order: {"train", "val", "test"} -> (stays, labels, aux targets)."""
    stays, Y, aux = make_clinical(scfg.num_stays, seed=scfg.data_seed)
    n = len(stays)
    a, b = int((1 - scfg.val_frac - scfg.test_frac) * n), int((1 - scfg.test_frac) * n)
    return {name: (stays[i:j], Y[i:j], aux[i:j]) for name, i, j in (("train", 0, a), ("val", a, b), ("test", b, n))}


def synthetic_info(scfg: SyntheticConfig) -> dict[str, Any]:
    """What config.json's ``data`` says about the synthetic data a run was trained on."""
    return {"source": SYNTHETIC_SOURCE, "synthetic": True, **dataclasses.asdict(scfg)}


def run_synthetic(cfg: MultilabelConfig, scfg: SyntheticConfig, run_dir: str | None = None, *,
                  dry_run: bool = False, resume: bool = False, progress: bool | None = False) -> dict[str, Any]:
    """Generate the synthetic stays, train, and return the test metrics (the benchmark calls this too)."""
    parts = synthetic_splits(scfg)
    stays, Y, aux = parts["train"]
    val = parts["val"][:2] if len(parts["val"][0]) else None
    clf = MultilabelClassifier(cfg).fit(stays, Y, aux, val, run_dir=run_dir, resume=resume, dry_run=dry_run,
                                        progress=progress, data_info=synthetic_info(scfg))
    # Ctrl-C (or SIGTERM) stopped training: stop here too (no test metrics), with the command that goes on.
    stop_if_interrupted(clf.trainer_, run_dir, MultilabelClassifier.command())
    metrics = clf.evaluate(*parts["test"][:2])
    metrics["train_seconds"] = clf.train_seconds_
    metrics["epochs"] = clf.trainer_.epoch
    if run_dir:
        RunDir(run_dir).write_json("test_metrics.json", {**metrics, **synthetic_info(scfg)})
    return metrics


# ---------------------------------------------------------------------------------------------------------
# A user's own file: long format, one row per visit
# ---------------------------------------------------------------------------------------------------------

@dataclass
class FileConfig:
    """Where the stays and their labels are in a user's files (``rnnkit classify multilabel train --series``)."""

    series: str | None = field(None, "your own stays: a long-format CSV, one row per visit (id, time, channels...; "
                                     "a blank cell is a value not measured); without it, SYNTHETIC stays")
    labels: str | None = field(None, "a CSV of labels per id (the id column and one 0/1 column per label), "
                                     "instead of label columns in --series")
    label_cols: list[str] = field([], "the 0/1 label columns (in --series, or in --labels, where none given "
                                      "means every column but the id)")
    aux_cols: list[str] = field([], "0/1 auxiliary targets, trained with --aux-weight and never evaluated")
    id_col: str = field("id", "stay id column")
    step_col: str | None = field("step", "time column: numbers (e.g. hours since admission) or ISO timestamps "
                                         "(read as hours)")
    channels: list[str] = field([], "the input columns (none given: every column but the id, time, label and "
                                    "split columns)")
    exclude: list[str] = field([], "columns to leave out of the inputs (e.g. one that gives the outcome away)")
    split_col: str | None = field(None, "a column saying which stays are train, val or test (see --split-names)")
    split_names: str = field(SPLIT_NAMES, "the values of --split-col for training, validation and test rows")
    split_seed: int = field(0, "seed of the random split of the stays (when no --split-col)")


@dataclass
class StayFile:
    """Stays read from a user's file, with their 0/1 labels (None when the file has none)."""

    ids: list[str]
    stays: list[Stay]
    Y: np.ndarray | None       # (N, L) float32 0/1
    aux: np.ndarray | None     # (N, A) float32 0/1
    labels: list[str]
    channels: list[str]
    split: np.ndarray | None   # (N,) 0 train / 1 val / 2 test
    categories: dict[str, list[str]]
    report: list[str]


def _zero_one(values, column: str, source: str, ids) -> np.ndarray:
    """Label values as 0/1 floats (0, 1, true, false in any case); anything else is refused, naming the stay."""
    out = np.zeros(len(values), dtype=np.float32)
    for i, v in enumerate(values):
        t = str(v).strip().lower()
        if t in ("1", "1.0", "true"):
            out[i] = 1.0
        elif t not in ("0", "0.0", "false"):
            raise ValueError(f"{source}: stay {ids[i]!r} has {str(v)!r} in label column {column!r}; expected 0 or 1")
    return out


def read_stay_file(cfg: FileConfig, *, grid_step: float = 1.0, categories: dict[str, list[str]] | None = None,
                   labelled: bool = True, series: str | None = None, labels: str | None = None) -> StayFile:
    """Read the stays of ``series`` (default ``cfg.series``) with their labels from the label columns or from
    ``labels`` (default ``cfg.labels``); ``categories``: a trained model's one-hot values. ``labelled=False``
    reads a file to predict (its labels are used when it has them)."""
    path = series or cfg.series
    label_file = labels if series else (labels or cfg.labels)
    from_rows = [] if label_file else list(cfg.label_cols) + list(cfg.aux_cols)
    if labelled and not label_file and not cfg.label_cols:
        _checks.fail("label_cols", [], "the names of the 0/1 label columns of --series, or --labels FILE with "
                                       "the labels per id")
    if not labelled and from_rows:
        # A file to predict may lack the label columns: read the ones it has.
        from_rows = [c for c in from_rows if c in read_header(path)]
    # The label, auxiliary and split columns of the training file are never inputs.
    data = read_long_file(path, id_col=cfg.id_col, step_col=cfg.step_col, label_cols=from_rows,
                          channels=cfg.channels, exclude=cfg.exclude, split_col=cfg.split_col if labelled else None,
                          split_names=cfg.split_names, categories=categories,
                          ignore=[*cfg.label_cols, *cfg.aux_cols, *([cfg.split_col] if cfg.split_col else [])])
    ids = data.ids
    table: dict[str, np.ndarray] = {c: data.labels[c] for c in from_rows}
    if label_file:
        per_id = load_table(label_file)
        if cfg.id_col not in per_id:
            _checks.fail("id_col", cfg.id_col, f"a column of the labels file {label_file}; its columns are: "
                                               f"{', '.join(per_id)}")
        wanted = list(cfg.label_cols) or [c for c in per_id if c != cfg.id_col and c not in cfg.aux_cols]
        for c in wanted + list(cfg.aux_cols):
            if c not in per_id:
                _checks.fail("label_cols", c, f"a column of the labels file {label_file}; its columns are: "
                                              f"{', '.join(per_id)}")
        row_of = {str(v).strip(): i for i, v in enumerate(per_id[cfg.id_col])}
        missing = [s for s in ids if s not in row_of]
        if missing:
            raise ValueError(f"{label_file}: no labels for {len(missing)} stay(s) of {path}, e.g. "
                             f"{', '.join(map(repr, missing[:5]))}; expected one row per stay id")
        rows = np.array([row_of[s] for s in ids], dtype=np.int64)
        table = {c: np.asarray(per_id[c])[rows] for c in wanted + list(cfg.aux_cols)}
        label_names = wanted
    else:
        label_names = list(cfg.label_cols)
    source = label_file or path
    have = label_names and all(c in table for c in label_names)
    Y = np.stack([_zero_one(table[c], c, source, ids) for c in label_names], axis=1) if have else None
    A = (np.stack([_zero_one(table[c], c, source, ids) for c in cfg.aux_cols], axis=1)
         if cfg.aux_cols and all(c in table for c in cfg.aux_cols) else None)
    return StayFile(ids, to_stays(data.times, data.values, grid_step), Y, A, label_names, data.channels,
                    data.split, data.categories, data.report)


def file_splits(stays: StayFile, val_frac: float, test_frac: float, seed: int, source: str,
                ) -> dict[str, np.ndarray]:
    """{"train", "val", "test"} -> stay indices: the split column's, or a random split with ``seed``."""
    n = len(stays.ids)
    if stays.split is not None:
        parts = {name: np.flatnonzero(stays.split == k) for k, name in enumerate(("train", "val", "test"))}
    else:
        order = np.random.default_rng(seed).permutation(n)
        n_test, n_val = math.ceil(test_frac * n), math.ceil(val_frac * n)
        parts = {"test": np.sort(order[:n_test]), "val": np.sort(order[n_test:n_test + n_val]),
                 "train": np.sort(order[n_test + n_val:])}
    if not len(parts["train"]):
        raise ValueError(f"val_frac={val_frac:g}, test_frac={test_frac:g}: {source} has {n} stay(s), which leaves "
                         f"none to train on; expected more stays, or smaller --val-frac/--test-frac")
    return parts


def _subset(stays: StayFile, idx: np.ndarray) -> tuple[list[Stay], np.ndarray, np.ndarray | None]:
    return ([stays.stays[i] for i in idx], stays.Y[idx],
            None if stays.aux is None else stays.aux[idx])


def run_file(cfg: MultilabelConfig, fcfg: FileConfig, val_frac: float, test_frac: float,
             run_dir: str | None = None, *, dry_run: bool = False, resume: bool = False,
             progress: bool | None = False) -> tuple[dict[str, Any], StayFile]:
    """Train on a user's file and return (the test metrics, or {} without test stays; the stays read)."""
    _checks.check_float("val_frac", val_frac, min=0, max=1, max_open=True)
    _checks.check_float("test_frac", test_frac, min=0, max=1, max_open=True)
    data = read_stay_file(fcfg, grid_step=cfg.grid_step)
    parts = file_splits(data, val_frac, test_frac, fcfg.split_seed, fcfg.series)
    stays, Y, A = _subset(data, parts["train"])
    val = _subset(data, parts["val"])[:2] if len(parts["val"]) else None
    info = {**dataclasses.asdict(fcfg), "val_frac": val_frac, "test_frac": test_frac, "source": fcfg.series,
            "encoding": {"categories": data.categories, "channel_names": data.channels, "report": data.report},
            "sizes": {k: int(len(v)) for k, v in parts.items()}}
    clf = MultilabelClassifier(cfg).fit(stays, Y, A, val, channels=data.channels, label_names=data.labels,
                                        run_dir=run_dir, resume=resume, dry_run=dry_run, progress=progress,
                                        data_info=info)
    stop_if_interrupted(clf.trainer_, run_dir, MultilabelClassifier.command())
    metrics: dict[str, Any] = {}
    if len(parts["test"]):
        stays_test, Y_test, _ = _subset(data, parts["test"])
        metrics = {"rows": f"test ({len(parts['test']):,} held-out stays)", **clf.evaluate(stays_test, Y_test)}
        hits = clf.predict(stays_test) * Y_test                          # true positives, (N, L)
        metrics["recall"] = {name: float(hits[:, j].sum() / Y_test[:, j].sum()) if Y_test[:, j].any() else None
                             for j, name in enumerate(clf.labels_)}
    if run_dir and metrics:
        RunDir(run_dir).write_json("test_metrics.json", {**metrics, "source": fcfg.series})
    return metrics, data
