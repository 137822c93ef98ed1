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

1. **resample** each stay to an hourly grid (mean of the observations in each hour, NaN where none);
2. **missingness indicators**: one 0/1 channel per vital sign, 1 where the hour had no observation;
3. **impute**: forward fill, then the training mean for hours before the first observation;
4. an LSTM reads the (values, indicators) sequence and emits L **sigmoid outputs at every step**;
5. the loss is binary cross-entropy **averaged over labels**; with **target replication** the loss at
   every step (each step is asked for the final labels) is mixed with the final-step loss:
   ``alpha * mean_t BCE(y_t, y) + (1 - alpha) * BCE(y_T, y)``; **auxiliary outputs** add a second head
   trained on extra targets (here: whether each channel's episode fell in the second half of the stay),
   weighted by ``aux_weight`` and never evaluated.

Metrics: micro and macro ROC AUC, micro and macro F1 (threshold 0.5), and precision at 10 (the share of
true labels among each stay's 10 highest-scored labels, averaged over stays; its ceiling is reported too,
since a stay with fewer than 10 true labels cannot reach 1).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import _checks
from rnnkit.runs.checkpoint import RunDir, load_weights, read_json, save_weights
from rnnkit.config import add_config_arguments, config_from_args, config_from_dict, field
from rnnkit.nn.layers import RNN
from rnnkit.training.trainer import TrainConfig, Trainer, seed_everything

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


@dataclass
class Stay:
    """One patient's irregular observations: times in hours, channel index and value of each."""

    times: np.ndarray      # (M,) float
    channels: np.ndarray   # (M,) int
    values: np.ndarray     # (M,) float
    hours: float           # length of the stay


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
# Resampling, missingness and imputation
# ---------------------------------------------------------------------------------------------------------

def resample(stay: Stay, num_channels: int, step: float = 1.0) -> np.ndarray:
    """Irregular observations -> (T, C) grid of the mean value per bin, NaN where a bin has none."""
    T = max(1, int(np.ceil(stay.hours / step)))
    sums = np.zeros((T, num_channels))
    counts = np.zeros((T, num_channels))
    bins = np.minimum((stay.times / step).astype(np.int64), T - 1)
    np.add.at(sums, (bins, stay.channels), stay.values)
    np.add.at(counts, (bins, stay.channels), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def impute(grid: np.ndarray, fill: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, C) grid with NaN -> (forward-filled grid, missing indicator); leading gaps get ``fill`` (C,)."""
    missing = np.isnan(grid)
    out = grid.copy()
    for t in range(len(out)):
        prev = out[t - 1] if t > 0 else fill
        out[t] = np.where(missing[t], prev, out[t])
    return out, missing.astype(np.float32)


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
    batch_size: int = field(64, "stays per batch")
    lr: float = field(3e-3, "Adam learning rate")
    epochs: int = field(20, "passes over the training stays")
    max_minutes: Optional[float] = field(None, "training time budget in minutes (None: no limit)")
    early_stop_patience: Optional[int] = field(4, "stop after this many epochs without a better validation loss")
    seed: int = field(0, "random seed for initialisation and batch order")

    def __post_init__(self):
        for name in ("hidden_size", "num_layers", "batch_size", "epochs"):
            _checks.check_int(name, getattr(self, name), min=1)
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        _checks.check_float("alpha", self.alpha, min=0, max=1)
        _checks.check_float("aux_weight", self.aux_weight, min=0)
        _checks.check_float("threshold", self.threshold, min=0, max=1, min_open=True, max_open=True)
        _checks.check_float("lr", self.lr, min=0, min_open=True)
        _checks.check_float("max_minutes", self.max_minutes, min=0, min_open=True, allow_none=True)
        _checks.check_int("early_stop_patience", self.early_stop_patience, min=1, allow_none=True)


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
        # No packing: the LSTM is causal, so outputs at valid steps never see the padding after them
        # (and the plain fused kernel is several times faster than the packed one on CPU).
        h = self.drop(self.rnn(x))                                   # (B, T, H); steps >= length are ignored
        return self.head(h), (self.aux_head(h) if self.aux_head is not None else None)   # (B, T, L), (B, T, A)


def last_step(seq: Tensor, lengths: Tensor) -> Tensor:
    """(B, T, K) -> (B, K) at each sequence's last valid step."""
    return seq.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, seq.shape[2])).squeeze(1)


def replicated_loss(logits: Tensor, y: Tensor, lengths: Tensor, alpha: float) -> Tensor:
    """alpha * (mean over valid steps of BCE(step t, y)) + (1 - alpha) * BCE(last step, y); BCE averaged over labels.

    logits (B, T, L), y (B, L) in {0, 1}, lengths (B,).
    """
    final = F.binary_cross_entropy_with_logits(last_step(logits, lengths), y)
    if alpha == 0:
        return final
    T = logits.shape[1]
    mask = (torch.arange(T, device=logits.device).unsqueeze(0) < lengths.unsqueeze(1)).float()   # (B, T)
    per_step = F.binary_cross_entropy_with_logits(logits, y.unsqueeze(1).expand_as(logits),
                                                  reduction="none").mean(-1)                        # (B, T)
    every = ((per_step * mask).sum(1) / lengths).mean()
    return alpha * every + (1 - alpha) * final


def multilabel_metrics(y: np.ndarray, probs: np.ndarray, threshold: float = 0.5, k: int = 10) -> dict[str, float]:
    from sklearn.metrics import f1_score, roc_auc_score

    pred = probs >= threshold
    # Macro AUC over the labels that have both classes in y (AUC is undefined otherwise).
    both = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    k = min(k, y.shape[1])
    top = np.argsort(-probs, axis=1)[:, :k]                         # (N, k) highest-scored labels
    hits = np.take_along_axis(y, top, axis=1).sum(1)
    return {
        "micro_auc": float(roc_auc_score(y.ravel(), probs.ravel())),
        "macro_auc": float(roc_auc_score(y[:, both], probs[:, both], average="macro")) if both else float("nan"),
        "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        f"precision_at_{k}": float((hits / k).mean()),
        f"precision_at_{k}_ceiling": float((np.minimum(y.sum(1), k) / k).mean()),
    }


class MultilabelClassifier:
    """Estimator over :class:`Stay` lists: ``fit(stays, Y, aux=None, validation_data=(stays, Y))``.

    Learned: ``mean_``/``std_`` (per channel, from training observations), ``net_``, ``trainer_``,
    ``num_labels_``, ``num_aux_``, ``train_seconds_``.
    """

    def __init__(self, config: MultilabelConfig | None = None, **kwargs):
        self.config = config if config is not None else MultilabelConfig(**kwargs)
        self.label_names = list(LABEL_NAMES)
        self.channel_names = list(CHANNEL_NAMES)

    def _features(self, stays: list[Stay]) -> tuple[np.ndarray, np.ndarray]:
        """-> (N, T, 2C) standardised values then missing indicators, padded at the end; (N,) lengths."""
        C = len(self.mean_)
        rows = []
        for s in stays:
            values, missing = impute(resample(s, C), self.mean_)
            rows.append(np.concatenate([(values - self.mean_) / self.std_, missing], axis=1))
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        X = np.zeros((len(rows), lengths.max(), 2 * C), dtype=np.float32)
        for i, r in enumerate(rows):
            X[i, :len(r)] = r
        return X, lengths

    def fit(self, stays: list[Stay], Y, aux=None, validation_data: tuple | None = None, *,
            run_dir: str | None = None, dry_run: bool = False, progress: bool | None = False) -> "MultilabelClassifier":
        cfg = self.config
        Y = np.asarray(Y, dtype=np.float32)
        if Y.ndim != 2 or len(Y) != len(stays):
            _checks.fail("Y", tuple(Y.shape), f"a (stays, labels) 0/1 array with {len(stays)} rows")
        if cfg.aux_weight > 0 and aux is None:
            _checks.fail("aux_weight", cfg.aux_weight, "0 when no auxiliary targets are given")
        A = np.asarray(aux, dtype=np.float32) if (aux is not None and cfg.aux_weight > 0) else None
        self.num_labels_, self.num_aux_ = Y.shape[1], (0 if A is None else A.shape[1])
        C = len(self.channel_names)
        vals = np.concatenate([s.values for s in stays])
        chans = np.concatenate([s.channels for s in stays])
        self.mean_ = np.array([vals[chans == c].mean() if (chans == c).any() else 0.0 for c in range(C)])
        std = np.array([vals[chans == c].std() if (chans == c).sum() > 1 else 1.0 for c in range(C)])
        self.std_ = np.where(std > 1e-8, std, 1.0)
        if dry_run:
            stays, Y = stays[:cfg.batch_size], Y[:cfg.batch_size]
            A = A[:cfg.batch_size] if A is not None else None
        start = time.monotonic()
        X, L = self._features(stays)
        seed_everything(cfg.seed)
        self.net_ = MultilabelNet(cfg, X.shape[2], self.num_labels_, self.num_aux_)
        tY = torch.from_numpy(Y)
        tA = torch.from_numpy(A) if A is not None else None

        def batches(epoch):
            order = np.random.default_rng([cfg.seed, epoch]).permutation(len(L))
            out = []
            for i in range(0, len(order), cfg.batch_size):
                g = order[i:i + cfg.batch_size]
                T = int(L[g].max())
                out.append((torch.from_numpy(X[g, :T]), torch.from_numpy(L[g]), tY[g],
                            tA[g] if tA is not None else tY[g, :0]))
            return out[:1] if dry_run else out

        def compute_loss(net, batch, state):
            xb, lb, yb, ab = batch
            logits, aux_logits = net(xb, lb)
            loss = replicated_loss(logits, yb, lb, cfg.alpha)
            if aux_logits is not None:
                loss = loss + cfg.aux_weight * F.binary_cross_entropy_with_logits(last_step(aux_logits, lb), ab)
            return loss, None, len(yb)

        evaluate, monitor = None, "train_loss"
        if validation_data is not None:
            Xv, Lv = self._features(list(validation_data[0]))
            Yv = torch.from_numpy(np.asarray(validation_data[1], dtype=np.float32))
            Xv, Lv = torch.from_numpy(Xv), torch.from_numpy(Lv)
            monitor = "val_loss"

            def evaluate(net):
                # The final-step loss: what the model is judged on, whatever alpha trained it.
                logits, _ = net(Xv, Lv)
                return {"val_loss": float(F.binary_cross_entropy_with_logits(last_step(logits, Lv), Yv))}

        tcfg = TrainConfig(epochs=1 if dry_run else cfg.epochs, max_minutes=cfg.max_minutes, lr=cfg.lr,
                           clip_grad_norm=5.0, monitor=monitor, early_stop_patience=cfg.early_stop_patience,
                           log_every=20, seed=cfg.seed, device="cpu")
        self.trainer_ = Trainer(self.net_, tcfg, run_dir=run_dir, progress=progress)
        if run_dir:
            RunDir(run_dir).path.mkdir(parents=True, exist_ok=True)
            self._write_config(RunDir(run_dir))
        best = {}

        def keep_best(trainer, epoch, metrics):
            if trainer.best_epoch == epoch:   # this epoch improved the monitored loss
                best.update({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})

        self.trainer_.fit(batches, compute_loss, evaluate, on_epoch_end=keep_best)
        if best:
            self.net_.load_state_dict(best)   # the weights of the best validation epoch
        self.net_.eval()
        self.train_seconds_ = time.monotonic() - start
        if run_dir:
            self.save(run_dir)
        return self

    def predict_proba(self, stays: list[Stay]) -> np.ndarray:
        """(N, L) probability of each label, read at each stay's last hour."""
        X, L = self._features(list(stays))
        self.net_.eval()
        with torch.no_grad():
            logits, _ = self.net_(torch.from_numpy(X), torch.from_numpy(L))
            return torch.sigmoid(last_step(logits, torch.from_numpy(L))).numpy()

    def evaluate(self, stays: list[Stay], Y) -> dict[str, float]:
        return multilabel_metrics(np.asarray(Y), self.predict_proba(stays), self.config.threshold)

    def _write_config(self, run: RunDir) -> None:
        run.write_config({"task": "classify-multilabel", "model": "lstm", "config": dataclasses.asdict(self.config),
                          "labels": self.label_names, "channels": self.channel_names,
                          "num_aux": getattr(self, "num_aux_", 0), "synthetic": True})

    def save(self, path: str | Path) -> "MultilabelClassifier":
        run = RunDir(path)
        run.path.mkdir(parents=True, exist_ok=True)
        self._write_config(run)
        run.write_json("standardize.json", {"mean": self.mean_.tolist(), "std": self.std_.tolist(),
                                            "num_labels": self.num_labels_})
        save_weights(run.file("classifier.safetensors"), self.net_.state_dict())
        return self

    @classmethod
    def load(cls, path: str | Path) -> "MultilabelClassifier":
        run = RunDir(path)
        conf = run.read_config()
        if conf.get("task") != "classify-multilabel":
            raise ValueError(f"run={str(path)!r}: not a multilabel classifier run directory (its config says "
                             f"task={conf.get('task')!r})")
        self = cls(config_from_dict(MultilabelConfig, conf["config"], source=str(run.config_path)))
        st = run.read_json("standardize.json")
        self.mean_, self.std_ = np.array(st["mean"]), np.array(st["std"])
        self.num_labels_, self.num_aux_ = st["num_labels"], conf["num_aux"]
        self.net_ = MultilabelNet(self.config, 2 * len(self.mean_), self.num_labels_, self.num_aux_)
        load_weights(run.file("classifier.safetensors"), self.net_)
        self.net_.eval()
        return self


# ---------------------------------------------------------------------------------------------------------
# Command line: rnnkit classify multilabel
# ---------------------------------------------------------------------------------------------------------

@dataclass
class SyntheticConfig:
    patients: int = field(3000, "synthetic stays to generate (70% train, 10% validation, 20% test)")
    data_seed: int = field(0, "seed of the synthetic data generator")


def run_synthetic(cfg: MultilabelConfig, scfg: SyntheticConfig, run_dir: str | None = None,
                  dry_run: bool = False) -> dict[str, Any]:
    """Generate the synthetic stays, train, and return the test metrics (the benchmark calls this too)."""
    stays, Y, aux = make_clinical(scfg.patients, seed=scfg.data_seed)
    n = len(stays)
    a, b = int(0.7 * n), int(0.8 * n)
    clf = MultilabelClassifier(cfg).fit(stays[:a], Y[:a], aux[:a], (stays[a:b], Y[a:b]), run_dir=run_dir,
                                        dry_run=dry_run)
    metrics = clf.evaluate(stays[b:], Y[b:])
    metrics["train_seconds"] = clf.train_seconds_
    metrics["epochs"] = clf.trainer_.epoch
    if run_dir:
        RunDir(run_dir).write_json("test_metrics.json", {**metrics, "data": "synthetic (make_clinical)",
                                                         **dataclasses.asdict(scfg)})
    return metrics


def cmd_multilabel(args) -> int:
    cfg = config_from_args(MultilabelConfig, args)
    scfg = config_from_args(SyntheticConfig, args)
    print(f"SYNTHETIC data: {scfg.patients} generated clinical-like stays, {len(CHANNEL_NAMES)} channels, "
          f"{len(LABEL_NAMES)} labels (not real patients)", file=sys.stderr)
    m = run_synthetic(cfg, scfg, args.run_dir, args.dry_run)
    print("test: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float)))
    return 0


def add_commands(verbs) -> None:
    p = verbs.add_parser("multilabel", help="multilabel LSTM on synthetic irregular clinical-like series "
                                            "(target replication, auxiliary outputs)",
                         description=__doc__.split("\n\n")[0])
    add_config_arguments(p, SyntheticConfig)
    add_config_arguments(p, MultilabelConfig)
    p.add_argument("--run-dir", default=None, help="save the run here (default: not saved)")
    p.add_argument("--dry-run", action="store_true", help="one tiny batch, to check the set-up in seconds")
    p.set_defaults(func=cmd_multilabel)
