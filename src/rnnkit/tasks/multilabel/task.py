"""Multilabel classification of irregularly sampled clinical-like series (Lipton et al. 2015, "Learning to
Diagnose with LSTM Recurrent Neural Networks").

The pipeline, as in the paper: the stays become features on a regular grid with missingness indicators
(``data.py``); an LSTM reads them and emits a sigmoid output per label at every step, trained with target
replication and optional auxiliary outputs (``model.py``).

Metrics (:func:`rnnkit.report.metrics.multilabel_metrics`): micro and macro ROC AUC, micro and macro F1
(threshold 0.5), and precision at 10 (the share of true labels among each stay's 10 highest-scored labels,
averaged over stays; its ceiling is reported too, since a stay with fewer than 10 true labels cannot reach 1).

:class:`MultilabelClassifier` is a :class:`~rnnkit.tasks.base.Task` like the others (training options in a
nested TrainConfig, ``rnnkit.load`` reads its run directories; its registered name stays
``classify-multilabel``); ``rnnkit classify multilabel train|eval|predict`` (``cli.py``) runs it on the
synthetic stays (:func:`run_synthetic`) or on a user's long-format file (:func:`run_file`).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit import _checks
from rnnkit.report.metrics import multilabel_metrics
from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.schema import FORMAT_VERSION
from rnnkit.tasks.base import Prepared, Task, stop_if_interrupted
from rnnkit.tasks.classify.task import check_run_dir, nest_train_fields
from rnnkit.tasks.multilabel.config import MultilabelConfig, PredictRequest
from rnnkit.tasks.multilabel.data import (CHANNEL_NAMES, LABEL_NAMES, SYNTHETIC_SOURCE, FileConfig, Stay,
                                          StayFile, SyntheticConfig, channel_scales, features, file_splits,
                                          read_stay_file, subset, synthetic_info, synthetic_splits)
from rnnkit.tasks.multilabel.model import MultilabelNet, final_logits, last_step, replicated_loss


class MultilabelClassifier(Task, name="classify-multilabel"):
    """Task object over :class:`Stay` lists: ``fit(stays, Y, aux=None, validation_data=(stays, Y))``.

    Learned: ``mean_``/``std_`` (per channel, from training observations), ``model_``, ``trainer_``,
    ``labels_``, ``channels_``, ``num_labels_``, ``num_aux_``, ``train_seconds_``.
    """

    config_class = MultilabelConfig
    train_command = "rnnkit classify multilabel train"
    run_files = ("standardize.json", "*_confusion.png")
    side_files = ("standardize.json",)
    legacy_weights = ("classifier.safetensors",)     # the finished model's file before FINAL_WEIGHTS
    endpoint = "predict"                  # the Task protocol's uniform apply: see the end of the class
    request_class = PredictRequest
    channel_names = CHANNEL_NAMES

    def _features(self, stays: list[Stay]) -> tuple[np.ndarray, np.ndarray]:
        """-> (N, T, 2C) standardised values then missing indicators, padded at the end; (N,) lengths."""
        return features(stays, self.mean_, self.std_, self.config.grid_step)

    # -- fit (the sequence is Task.fit's; these are its steps) --------------------------------------------

    def fit(self, stays: list[Stay], Y, aux=None, validation_data: tuple | None = None, *,
            channels: list[str] | None = None, label_names: list[str] | None = None,
            run_dir: str | Path | None = None, resume: bool = False, dry_run: bool = False,
            progress: bool | None = False, data_info: dict[str, Any] | None = None) -> "MultilabelClassifier":
        """Train on ``stays`` with 0/1 labels ``Y`` (N, L) and optional auxiliary targets ``aux`` (N, A);
        ``validation_data`` picks the best epoch. ``channels`` and ``label_names`` name the stays' channels
        and the labels (default: the synthetic ones). ``run_dir``, ``resume``, ``dry_run``, ``data_info``: as
        for :meth:`SequenceClassifier.fit`."""
        return super().fit((stays, Y, aux, validation_data), run_dir=run_dir, resume=resume, dry_run=dry_run,
                           progress=progress, channels=channels, label_names=label_names, data_info=data_info)

    def _read_data(self, data: tuple, *, run_dir: str | Path | None, resume: bool,
                   channels: list[str] | None = None, label_names: list[str] | None = None,
                   data_info: dict[str, Any] | None = None) -> Prepared:
        """``(stays, Y, aux, validation_data)`` checked: the labels and channels by name (``labels_``,
        ``channels_``), and the auxiliary targets when ``aux_weight`` trains them."""
        cfg = self.config
        stays, Y, aux, validation_data = data
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
        used = max((int(s.channels.max()) for s in stays if len(s.channels)), default=-1)
        if used >= len(self.channels_):
            _checks.fail("channels", self.channels_, f"a name for each of the stays' {used + 1} channels")
        info = {"train_size": len(stays), "val_size": 0 if validation_data is None else len(validation_data[0]),
                **(data_info or {})}
        return Prepared(info.get("source") or "the stays passed to fit", (list(stays), Y, A, validation_data),
                        info=info, stays=stays, Y=Y, A=A, validation=validation_data)

    def _prepare(self, prepared: Prepared, *, run_dir: str | Path | None, resume: bool, dry_run: bool) -> None:
        """The channel scales (``mean_``, ``std_``), the features of the stays, their shuffled batches and the
        label weights; the validation stays' features."""
        cfg, bs = self.config, self.config.train.batch_size
        stays, Y, A = prepared.stays, prepared.Y, prepared.A
        self.mean_, self.std_ = channel_scales(stays, len(self.channels_))
        if dry_run:
            stays, Y = stays[:bs], Y[:bs]
            A = A[:bs] if A is not None else None
        else:
            # A small set gets a smaller batch (--auto-batch), so that an epoch is several updates.
            bs = cfg.train.batch_for(len(stays))
            if bs != cfg.train.batch_size:
                print(f"data: batch {bs} instead of --batch-size {cfg.train.batch_size}: {len(stays)} training stays "
                      f"would make {-(-len(stays) // cfg.train.batch_size)} update(s) an epoch (--no-auto-batch "
                      f"keeps it)", file=sys.stderr)
        X, L = self._features(stays)
        tY = torch.from_numpy(Y)
        tA = torch.from_numpy(A) if A is not None else tY[:, :0]     # no auxiliary head: no targets

        def batches(epoch):
            order = np.random.default_rng([cfg.train.seed, epoch]).permutation(len(L))
            out = [(torch.from_numpy(X[g, :int(L[g].max())]), torch.from_numpy(L[g]), tY[g], tA[g])
                   for g in (order[i:i + bs] for i in range(0, len(order), bs))]
            return out[:1] if dry_run else out

        prepared.train, prepared.input_size = batches, X.shape[2]
        # balanced: negatives / positives per label (a label no training stay has keeps weight 1)
        positives = Y.sum(0)
        prepared.pos_weight = (torch.from_numpy(np.where(positives > 0, (len(Y) - positives) / np.maximum(
            positives, 1), 1.0).astype(np.float32)) if cfg.class_weight == "balanced" else None)
        if prepared.validation is not None:
            Xv, Lv = self._features(list(prepared.validation[0]))
            prepared.val = (torch.from_numpy(Xv), torch.from_numpy(Lv),
                            torch.from_numpy(np.asarray(prepared.validation[1], dtype=np.float32)))

    def _make_model(self, prepared: Prepared) -> MultilabelNet:
        return self._build_net(prepared.input_size)

    def _build_net(self, input_size: int) -> MultilabelNet:
        cfg = self.config
        return MultilabelNet(input_size, self.num_labels_, self.num_aux_, hidden_size=cfg.hidden_size,
                             num_layers=cfg.num_layers, dropout=cfg.dropout)

    def _loss(self, prepared: Prepared, net: MultilabelNet, batch: Any, state: Any) -> tuple:
        cfg = self.config
        xb, lb, yb, ab = batch
        logits, aux_logits = net(xb, lb)
        w = prepared.pos_weight.to(logits.device) if prepared.pos_weight is not None else None
        loss = replicated_loss(logits, yb, lb, cfg.alpha, w)
        if aux_logits is not None:
            loss = loss + cfg.aux_weight * F.binary_cross_entropy_with_logits(last_step(aux_logits, lb), ab)
        return loss, None, len(yb)

    def _validation_metrics(self, prepared: Prepared, net: MultilabelNet) -> dict[str, float]:
        # The final-step loss: what the model is judged on, whatever alpha trained it.
        xv, lv, yv = prepared.val
        logits = final_logits(net, xv, lv, self.config.train.batch_size)
        return {"val_loss": float(F.binary_cross_entropy_with_logits(logits, yv))}

    def predict_proba(self, stays: list[Stay]) -> np.ndarray:
        """(N, L) probability of each label, read at each stay's last hour."""
        self._check_fitted()
        X, L = self._features(list(stays))
        with torch.no_grad():
            logits = final_logits(self.model_.eval(), torch.from_numpy(X), torch.from_numpy(L),
                                  self.config.train.batch_size)
        return torch.sigmoid(logits).numpy()

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

    def _load_files(self, run: RunDir, fitted: dict[str, Any], tensors: dict[str, Any], **options: Any) -> None:
        # Runs of rnnkit 0.1 kept the channel scales in standardize.json.
        st = fitted if "mean" in fitted else run.read_json("standardize.json")
        self.mean_, self.std_ = np.array(st["mean"]), np.array(st["std"])
        self.labels_ = list(fitted["labels"])
        self.channels_ = list(fitted.get("channels", CHANNEL_NAMES))
        self.num_labels_, self.num_aux_ = st.get("num_labels", len(self.labels_)), fitted["num_aux"]
        self.train_seconds_ = fitted.get("train_seconds", 0.0)
        self.trainer_ = None
        net = self._build_net(2 * len(self.mean_))
        self._hold_weights(net, tensors, run)

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


    # -- the Task protocol: what serve, export and the CLI's apply verb call ------------------------------

    def details(self) -> dict[str, Any]:
        self._check_fitted()
        return {"labels": list(self.labels_), "channels": list(self.channels_), "threshold": self.config.threshold}

    def apply(self, request: PredictRequest | dict[str, Any]) -> dict[str, Any]:
        """The probability of each label for each of ``request.stays`` (read at the stay's last slot) and the
        labels at or above the threshold."""
        request = self.make_request(request)
        probs = self.predict_proba([self._stay(i, stay) for i, stay in enumerate(request.stays)])
        labels, threshold = list(self.labels_), self.config.threshold
        return {"labels": labels, "threshold": threshold, "predictions": [
            {"labels": [name for name, p in zip(labels, row) if p >= threshold],
             "probabilities": dict(zip(labels, map(float, row)))} for row in probs]}

    def _stay(self, i: int, stay: Any) -> Stay:
        """One stay of a request ({times, channels, values[, hours]}) as a :class:`Stay`."""
        name = f"stays[{i}]"
        if not isinstance(stay, dict) or not {"times", "channels", "values"} <= set(stay) <= {
                "times", "channels", "values", "hours"}:
            _checks.fail(name, stay, "an object with times, channels and values (lists of one item per "
                                     "observation) and optionally hours")
        n = len(stay["times"]) if isinstance(stay["times"], list) else -1
        if n < 0 or any(not isinstance(stay[k], list) or len(stay[k]) != n for k in ("channels", "values")):
            _checks.fail(name, stay, "times, channels and values: lists of the same length (one item per observation)")
        channels = []
        for c in stay["channels"]:
            index = self.channels_.index(c) if c in self.channels_ else c
            if isinstance(index, bool) or not isinstance(index, (int, float)) or index != int(index) \
                    or not 0 <= index < len(self.channels_):
                _checks.fail(f"{name}.channels", c, f"a channel name ({', '.join(self.channels_)}) or an index "
                                                   f"below {len(self.channels_)}")
            channels.append(int(index))
        try:
            times = np.asarray(stay["times"], dtype=np.float64)
            values = np.asarray(stay["values"], dtype=np.float64)
        except (TypeError, ValueError):
            _checks.fail(name, stay, "numbers in times and values")
        step = self.config.grid_step
        hours = stay.get("hours", (np.floor(times.max() / step) + 1) * step if n else step)
        _checks.check_float(f"{name}.hours", hours, min=0, min_open=True)
        return Stay(times, np.asarray(channels, dtype=np.int64), values, float(hours))


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


def run_file(cfg: MultilabelConfig, fcfg: FileConfig, val_frac: float, test_frac: float,
             run_dir: str | None = None, *, dry_run: bool = False, resume: bool = False,
             progress: bool | None = False) -> tuple[dict[str, Any], StayFile]:
    """Train on a user's file and return (the test metrics, or {} without test stays; the stays read)."""
    _checks.check_float("val_frac", val_frac, min=0, max=1, max_open=True)
    _checks.check_float("test_frac", test_frac, min=0, max=1, max_open=True)
    data = read_stay_file(fcfg, grid_step=cfg.grid_step)
    parts = file_splits(data, val_frac, test_frac, fcfg.split_seed, fcfg.series)
    stays, Y, A = subset(data, parts["train"])
    val = subset(data, parts["val"])[:2] if len(parts["val"]) else None
    info = {**dataclasses.asdict(fcfg), "val_frac": val_frac, "test_frac": test_frac, "source": fcfg.series,
            "encoding": {"categories": data.categories, "channel_names": data.channels, "report": data.report},
            "sizes": {k: int(len(v)) for k, v in parts.items()}}
    clf = MultilabelClassifier(cfg).fit(stays, Y, A, val, channels=data.channels, label_names=data.labels,
                                        run_dir=run_dir, resume=resume, dry_run=dry_run, progress=progress,
                                        data_info=info)
    stop_if_interrupted(clf.trainer_, run_dir, MultilabelClassifier.command())
    metrics: dict[str, Any] = {}
    if len(parts["test"]):
        stays_test, Y_test, _ = subset(data, parts["test"])
        metrics = {"rows": f"test ({len(parts['test']):,} held-out stays)", **clf.evaluate(stays_test, Y_test)}
        hits = clf.predict(stays_test) * Y_test                          # true positives, (N, L)
        metrics["recall"] = {name: float(hits[:, j].sum() / Y_test[:, j].sum()) if Y_test[:, j].any() else None
                             for j, name in enumerate(clf.labels_)}
    if run_dir and metrics:
        RunDir(run_dir).write_json("test_metrics.json", {**metrics, "source": fcfg.series})
    return metrics, data
