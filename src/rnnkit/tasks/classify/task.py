"""Sequence classification (many to one): sentiment of a review, the activity behind a sensor trace.

The path: inputs -> (embedding for text | standardised channels for series) -> a sequence body
(recurrent, convolutional, or both) -> masked pooling over time -> a linear head -> class probabilities.

* Masking: every batch carries each sequence's length. Recurrent layers are causal over right-padded
  batches (the backward direction reads each sequence reversed within its length), convolutions see
  zeros outside the valid steps, and pooling ignores padded positions. So padding never changes a
  prediction: the same text padded to 50 or to 500 steps gets the same probabilities (a test checks this).
* Pooling: ``last`` (the final state, as in the lectures), ``max``, ``mean`` or ``maxmean`` (both,
  concatenated), which reads the whole review instead of only its end and trains faster on long texts.
* ``bow`` is the baseline every neural model must beat: tf-idf over unigrams and bigrams and a logistic
  regression (scikit-learn). Its vocabulary, idf weights and coefficients are saved as JSON + safetensors
  (no pickle) and applied by rnnkit itself when loaded.
* Training batches are bucketed by length (sorted within chunks of 20 batches, then shuffled), so a
  batch of short reviews is not padded to the longest review of the data set.
"""

from __future__ import annotations

import dataclasses
import json
import math
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
from rnnkit.runs.checkpoint import RunDir, atomic_write_bytes, load_weights, read_json, save_weights
from rnnkit.config import add_config_arguments, config_from_args, config_from_dict, field
from rnnkit.nn.layers import RNN, reverse_within_length
from rnnkit.tasks.classify.data import Split, load_data, small_sample
from rnnkit.text import Tokenizer
from rnnkit.training.trainer import TrainConfig, Trainer, seed_everything

MODELS = ("rnn", "gru", "lstm", "bilstm", "bigru", "conv1d", "cnn-lstm", "bow")
POOLINGS = ("last", "max", "mean", "maxmean")
WEIGHTS_FILE = "classifier.safetensors"    # the final (best-on-validation) model; Trainer files sit beside it
BOW_FILE = "bow.safetensors"


@dataclass
class ClassifyConfig:
    model: str = field("bilstm", "model type; bow is the tf-idf logistic-regression baseline", choices=MODELS)
    hidden_size: int = field(64, "recurrent units per direction and layer (also conv filters)")
    num_layers: int = field(1, "stacked recurrent (or conv) layers")
    embedding_size: int = field(64, "word embedding size (text); set by --embeddings when given")
    vocab_size: int = field(30000, "keep the most frequent words, the rest become <unk> (text)")
    maxlen: int = field(400, "steps kept per sequence; longer ones are truncated, shorter ones padded (the "
                             "padding is masked, so its side never matters)")
    truncating: str = field("pre", "where long sequences lose steps: pre keeps the end, post keeps the start",
                            choices=("pre", "post"))
    pooling: str = field("maxmean", "how the sequence of outputs becomes one vector", choices=POOLINGS)
    dropout: float = field(0.3, "dropout on the embeddings/inputs (one mask per sequence) and before the head")
    recurrent_dropout: float = field(0.0, "recurrent dropout rate (weight-drop on the recurrent weights keeps "
                                          "the fused kernel)")
    kernel_size: int = field(5, "convolution width (conv1d, cnn-lstm)")
    embeddings: Optional[str] = field(None, "pretrained word vectors: glove-50d or a GloVe text file")
    freeze_embeddings: bool = field(False, "keep the pretrained vectors fixed (else fine-tune them)")
    bow_c: float = field(4.0, "inverse regularisation strength of the bow logistic regression")
    bow_min_df: int = field(2, "bow: ignore n-grams found in fewer documents")
    batch_size: int = field(64, "sequences per batch")
    lr: float = field(2e-3, "Adam learning rate")
    weight_decay: float = field(0.0, "Adam L2 penalty")
    schedule: str = field("constant", "learning-rate schedule: constant, or cosine decay to 0 over the epochs",
                          choices=("constant", "cosine"))
    epochs: int = field(10, "passes over the training data")
    max_minutes: Optional[float] = field(None, "training time budget in minutes (None: no limit)")
    early_stop_patience: Optional[int] = field(2, "stop after this many epochs without a better validation "
                                                  "loss (None: never)")
    seed: int = field(0, "random seed for initialisation and batch order")

    def __post_init__(self):
        _checks.check_choice("model", self.model, MODELS)
        for name in ("hidden_size", "num_layers", "embedding_size", "vocab_size", "maxlen", "kernel_size",
                     "batch_size", "bow_min_df"):
            _checks.check_int(name, getattr(self, name), min=1)
        _checks.check_int("epochs", self.epochs, min=0)
        _checks.check_choice("truncating", self.truncating, ("pre", "post"))
        _checks.check_choice("pooling", self.pooling, POOLINGS)
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        _checks.check_float("recurrent_dropout", self.recurrent_dropout, min=0, max=1, max_open=True)
        _checks.check_float("bow_c", self.bow_c, min=0, min_open=True)
        _checks.check_float("lr", self.lr, min=0, min_open=True)
        _checks.check_float("weight_decay", self.weight_decay, min=0)
        _checks.check_choice("schedule", self.schedule, ("constant", "cosine"))
        _checks.check_float("max_minutes", self.max_minutes, min=0, min_open=True, allow_none=True)
        _checks.check_int("early_stop_patience", self.early_stop_patience, min=1, allow_none=True)


# ---------------------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------------------

def masked_pool(out: Tensor, mask: Tensor, how: str) -> Tensor:
    """(B, T, H) outputs and a (B, T) bool mask of valid steps -> (B, H) or (B, 2H) for maxmean."""
    m = mask.unsqueeze(-1)                                           # (B, T, 1)
    pooled = []
    if how in ("max", "maxmean"):
        pooled.append(out.masked_fill(~m, float("-inf")).amax(1))
    if how in ("mean", "maxmean"):
        pooled.append((out * m).sum(1) / m.sum(1).clamp(min=1))
    return torch.cat(pooled, dim=-1)


class MaskedRNNStack(nn.Module):
    """Stacked (bi)directional recurrent layers over right-padded batches, without packing.

    Why not packed sequences: on this CPU torch's packed LSTM/GRU path ran several times slower than the
    plain fused kernel (a new kernel set-up for every batch-size pattern). Packing is not needed for
    exactness either: a forward recurrence is causal, so its outputs at valid steps never see the padding
    after them; the backward direction reads each sequence reversed *within its length* (the padding
    stays at the end), so it is causal over the reversed sequence too. Every layer is an
    :class:`rnnkit.nn.layers.RNN` (one direction each) and runs torch's fused kernel.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool,
                 dropout: float, recurrent_dropout: float):
        super().__init__()
        self.num_directions = 2 if bidirectional else 1
        self.dropout = dropout
        self.layers = nn.ModuleList()
        size = input_size
        for _ in range(num_layers):
            for _ in range(self.num_directions):
                self.layers.append(RNN(cell, size, hidden_size, recurrent_dropout=recurrent_dropout,
                                       recurrent_dropout_mode="weight_drop"))
            size = hidden_size * self.num_directions
        self.output_size = size

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x (B, T, F) right-padded, lengths (B,) -> (B, T, D*H); outputs at padded steps are meaningless."""
        D = self.num_directions
        for k in range(len(self.layers) // D):
            if k > 0 and self.dropout > 0 and self.training:
                # Between stacked layers: one dropout mask per sequence, the same at every step.
                keep = torch.empty(x.shape[0], 1, x.shape[2], device=x.device).bernoulli_(1 - self.dropout)
                x = x * keep / (1 - self.dropout)
            outs = [self.layers[k * D](x)]                                          # (B, T, H)
            if D == 2:
                back = self.layers[k * D + 1](reverse_within_length(x, lengths, batch_first=True))
                outs.append(reverse_within_length(back, lengths, batch_first=True))     # back in time order
            x = torch.cat(outs, dim=-1)
        return x

    def last(self, out: Tensor, lengths: Tensor) -> Tensor:
        """The final states as (B, D*H): forward at step L-1, backward at step 0 (it read the sequence last)."""
        H = out.shape[2] // self.num_directions
        fwd = out[torch.arange(out.shape[0], device=out.device), lengths - 1, :H]
        return fwd if self.num_directions == 1 else torch.cat([fwd, out[:, 0, H:]], dim=-1)


class SequenceNet(nn.Module):
    """Input layer -> body (rnn | conv | conv then rnn) -> masked pooling -> dropout -> linear head.

    ``vocab`` > 0 means text (token ids in, an embedding first); otherwise ``input_size`` channels of
    standardised values come in directly.
    """

    def __init__(self, cfg: ClassifyConfig, num_classes: int, vocab: int = 0, input_size: int = 0):
        super().__init__()
        self.cfg = cfg
        self.text = vocab > 0
        feat = cfg.embedding_size if self.text else input_size
        if self.text:
            self.embed = nn.Embedding(vocab, cfg.embedding_size, padding_idx=0)
        self.convs = nn.ModuleList()
        if cfg.model in ("conv1d", "cnn-lstm"):
            n_conv = cfg.num_layers if cfg.model == "conv1d" else 1
            for _ in range(n_conv):
                # 'same' padding: a valid step sees zeros beyond the sequence whether they come from the
                # convolution's own padding or from batch padding (which is zeroed), so padding is invisible.
                self.convs.append(nn.Conv1d(feat, cfg.hidden_size, cfg.kernel_size, padding=cfg.kernel_size // 2))
                feat = cfg.hidden_size
        self.rnn = None
        if cfg.model != "conv1d":
            cell = {"rnn": "rnn", "gru": "gru", "bigru": "gru"}.get(cfg.model, "lstm")
            self.rnn = MaskedRNNStack(cell, feat, cfg.hidden_size, cfg.num_layers,
                                      bidirectional=cfg.model in ("bilstm", "bigru"), dropout=cfg.dropout,
                                      recurrent_dropout=cfg.recurrent_dropout)
            feat = self.rnn.output_size
        if cfg.pooling == "maxmean":
            feat *= 2
        self.head = nn.Linear(feat, num_classes)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x: (B, T) ids or (B, T, C) values, padded at the end; lengths (B,) -> logits (B, K)."""
        cfg = self.cfg
        B, T = x.shape[:2]
        mask = torch.arange(T, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)   # (B, T)
        h = self.embed(x) if self.text else x                        # (B, T, E)
        if cfg.dropout > 0 and self.training:
            # One mask per sequence and feature, the same at every step ("spatial" dropout on embeddings).
            keep = torch.empty(B, 1, h.shape[2], device=h.device).bernoulli_(1 - cfg.dropout)
            h = h * keep / (1 - cfg.dropout)
        for conv in self.convs:
            h = h * mask.unsqueeze(-1)                               # zero the padding before each conv
            h = F.relu(conv(h.transpose(1, 2))).transpose(1, 2)     # (B, T, H)
        if cfg.model == "cnn-lstm":
            # Halve the time axis (ceil, so no valid step is dropped); padding is zero and ReLU outputs are >= 0,
            # so a pooled window that mixes a valid step with padding equals the valid step's value.
            h = F.max_pool1d((h * mask.unsqueeze(-1)).transpose(1, 2), 2, ceil_mode=True).transpose(1, 2)
            lengths = (lengths + 1) // 2
            mask = torch.arange(h.shape[1], device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        if self.rnn is not None:
            h = self.rnn(h, lengths)                                 # (B, T, D*H)
        if cfg.pooling == "last":
            # The final state; a conv net has none, so it takes the max over time.
            h = self.rnn.last(h, lengths) if self.rnn is not None else masked_pool(h, mask, "max")
        else:
            h = masked_pool(h, mask, cfg.pooling)
        h = F.dropout(h, cfg.dropout, self.training)
        return self.head(h)                                          # (B, K)


# ---------------------------------------------------------------------------------------------------------
# The bag-of-words baseline, saved without pickle
# ---------------------------------------------------------------------------------------------------------

BOW_TOKEN_PATTERN = r"(?u)\b\w\w+\b|[!?]"   # words, plus ! and ? which carry sentiment


class BowModel:
    """tf-idf (sublinear tf, unigrams + bigrams, l2 rows) -> logistic regression; predicts by hand when loaded."""

    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray, coef: np.ndarray, intercept: np.ndarray):
        self.vocabulary, self.idf, self.coef, self.intercept = vocabulary, idf, coef, intercept

    @classmethod
    def fit(cls, texts: list[str], y: np.ndarray, C: float, min_df: int, seed: int) -> "BowModel":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, sublinear_tf=True, token_pattern=BOW_TOKEN_PATTERN)
        X = vec.fit_transform(texts)
        lr = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(X, y)
        vocab = {k: int(v) for k, v in vec.vocabulary_.items()}
        return cls(vocab, vec.idf_.astype(np.float64), lr.coef_.astype(np.float64), lr.intercept_.astype(np.float64))

    def features(self, texts: list[str]):
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.preprocessing import normalize

        counts = CountVectorizer(ngram_range=(1, 2), vocabulary=self.vocabulary,
                                 token_pattern=BOW_TOKEN_PATTERN).transform(texts).astype(np.float64)
        counts.data = 1.0 + np.log(counts.data)                     # sublinear tf
        return normalize(counts.multiply(self.idf).tocsr())

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        scores = self.features(texts) @ self.coef.T + self.intercept   # (N, 1) binary or (N, K)
        scores = np.asarray(scores)
        if self.coef.shape[0] == 1:
            p = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.stack([1 - p, p], axis=1)
        e = np.exp(scores - scores.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def save(self, path: Path) -> None:
        (path / "bow_vocabulary.json").write_text(json.dumps(self.vocabulary, ensure_ascii=False), encoding="utf-8")
        save_weights(path / BOW_FILE, {"idf": torch.from_numpy(self.idf), "coef": torch.from_numpy(self.coef),
                                       "intercept": torch.from_numpy(self.intercept)})

    @classmethod
    def load(cls, path: Path) -> "BowModel":
        vocab = read_json(path / "bow_vocabulary.json")
        t = load_weights(path / BOW_FILE)
        return cls(vocab, t["idf"].numpy(), t["coef"].numpy(), t["intercept"].numpy())


# ---------------------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------------------

class SequenceClassifier:
    """Classify texts or multichannel series; see the module docstring.

    ``fit(X, y, validation_data=(X_val, y_val))``: X is a list of str (text) or a list of (T, C) arrays
    (series). Learned: ``classes_``, ``kind_``, ``tokenizer_`` (text), ``mean_``/``std_`` (series),
    ``net_`` or ``bow_``, ``trainer_``, ``embedding_stats_``, ``train_seconds_``.
    """

    def __init__(self, config: ClassifyConfig | None = None, **kwargs):
        self.config = config if config is not None else ClassifyConfig(**kwargs)
        if config is not None and kwargs:
            self.config = dataclasses.replace(config, **kwargs)

    # -- input encoding ----------------------------------------------------------------------------------

    def _encode(self, X: list) -> tuple[np.ndarray, np.ndarray]:
        """Inputs -> (N, T) ids or (N, T, C) values padded at the end, and (N,) lengths >= 1."""
        cfg = self.config
        if self.kind_ == "text":
            seqs = self.tokenizer_.texts_to_sequences(X)
            seqs = [s[-cfg.maxlen:] if cfg.truncating == "pre" else s[:cfg.maxlen] for s in seqs]
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
            x = x[-cfg.maxlen:] if cfg.truncating == "pre" else x[:cfg.maxlen]
            # Standardise with the training statistics; a missing value becomes the channel mean (0).
            arrs.append(np.nan_to_num((x - self.mean_) / self.std_, nan=0.0))
        lengths = np.array([max(len(a), 1) for a in arrs], dtype=np.int64)
        out = np.zeros((len(arrs), max(lengths, default=1), len(self.mean_)), dtype=np.float32)
        for i, a in enumerate(arrs):
            out[i, :len(a)] = a
        return out, lengths

    def _batches(self, X: np.ndarray, lengths: np.ndarray, y: np.ndarray | None, shuffle: bool,
                 rng: np.random.Generator | None = None) -> list:
        """Batches trimmed to their longest member; when shuffling, bucket by length within chunks."""
        n, bs = len(lengths), self.config.batch_size
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

    def fit(self, X: list, y, validation_data: tuple | None = None, *, run_dir: str | None = None,
            resume: bool = False, dry_run: bool = False, progress: bool | None = None) -> "SequenceClassifier":
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
        if cfg.embeddings and self.kind_ != "text":
            _checks.fail("embeddings", cfg.embeddings, "None for numeric series (word vectors need text)")
        self.embedding_stats_: dict[str, Any] = {}
        self.trainer_ = None
        if validation_data is not None and len(validation_data[0]) == 0:
            validation_data = None
        if dry_run:
            # One tiny batch: enough to run every code path in seconds.
            X, y = small_sample(X, y, cfg.batch_size, cfg.seed)
            if validation_data is not None:
                validation_data = small_sample(validation_data[0], np.asarray(validation_data[1]), 8, cfg.seed)
        start = time.monotonic()
        self._run_dir = RunDir(run_dir) if run_dir else None
        if cfg.model == "bow":
            self.bow_ = BowModel.fit(list(X), y, cfg.bow_c, 1 if dry_run else cfg.bow_min_df, cfg.seed)
        else:
            self._fit_net(X, y, validation_data, resume, dry_run, progress)
        self.train_seconds_ = time.monotonic() - start
        if run_dir:
            self.save(run_dir)
        return self

    def _build_inputs(self, X: list, y: np.ndarray) -> None:
        cfg = self.config
        if self.kind_ == "text":
            self.tokenizer_ = Tokenizer(num_words=cfg.vocab_size, oov_token="<unk>").fit_on_texts(X)
        else:
            # Per-channel mean/std over every valid training step, NaN ignored.
            allsteps = np.concatenate([np.asarray(x, dtype=np.float32) for x in X])      # (sum T, C)
            self.mean_ = np.nan_to_num(np.nanmean(allsteps, 0)).astype(np.float32)
            std = np.nan_to_num(np.nanstd(allsteps, 0))
            self.std_ = np.where(std > 1e-8, std, 1.0).astype(np.float32)

    def _build_net(self) -> SequenceNet:
        cfg = self.config
        if self.kind_ == "text":
            return SequenceNet(cfg, len(self.classes_), vocab=self.tokenizer_.vocab_size)
        return SequenceNet(cfg, len(self.classes_), input_size=len(self.mean_))

    def _fit_net(self, X, y, validation_data, resume, dry_run, progress) -> None:
        cfg = self.config
        self._build_inputs(X, y)
        vectors = None
        if self.kind_ == "text" and cfg.embeddings:
            from rnnkit.tasks.embeddings.task import Embeddings

            emb = Embeddings.load(cfg.embeddings)
            vectors, found, missing = emb.matrix(self.tokenizer_.word_index, self.tokenizer_.vocab_size,
                                                 seed=cfg.seed)
            words = self.tokenizer_.vocab_size - 1
            self.embedding_stats_ = {"source": str(cfg.embeddings), "dim": emb.dim, "found": found,
                                     "unknown": len(missing), "unknown_examples": missing[:20]}
            print(f"embeddings {cfg.embeddings}: {found} of {words} vocabulary words found, {len(missing)} unknown "
                  f"(random vectors{'' if not cfg.freeze_embeddings else ', frozen like the rest'})",
                  file=sys.stderr)
            if cfg.embedding_size != emb.dim:
                self.config = cfg = dataclasses.replace(cfg, embedding_size=emb.dim)
        seed_everything(cfg.seed)
        self.net_ = self._build_net()
        if vectors is not None:
            self.net_.embed.weight.data.copy_(torch.from_numpy(vectors))
            self.net_.embed.weight.requires_grad_(not cfg.freeze_embeddings)

        y_idx = np.array([self.classes_.index(c) for c in y], dtype=np.int64)
        Xe, le = self._encode(X)
        rng_seed = cfg.seed
        train_batches = (lambda epoch: self._batches(Xe, le, y_idx, True,
                                                     np.random.default_rng([rng_seed, epoch])))
        if dry_run:
            train_batches = self._batches(Xe, le, y_idx, True, np.random.default_rng(rng_seed))[:1]

        def compute_loss(net, batch, state):
            xb, lb, yb = batch
            return F.cross_entropy(net(xb, lb), yb), None, len(yb)

        evaluate = None
        monitor = "train_loss"
        if validation_data is not None:
            Xv, yv = list(validation_data[0]), np.asarray(validation_data[1]).astype(str)
            unknown = sorted(set(yv) - set(self.classes_))
            if unknown:
                _checks.fail("validation labels", unknown[:5], f"classes seen in training: {self.classes_}")
            yv_idx = np.array([self.classes_.index(c) for c in yv], dtype=np.int64)
            val_batches = self._batches(*self._encode(Xv), yv_idx, False)
            monitor = "val_loss"

            def evaluate(net):
                total, correct, n = 0.0, 0, 0
                for xb, lb, yb in val_batches:
                    logits = net(xb, lb)
                    total += float(F.cross_entropy(logits, yb, reduction="sum"))
                    correct += int((logits.argmax(1) == yb).sum())
                    n += len(yb)
                return {"val_loss": total / n, "val_accuracy": correct / n}

        tcfg = TrainConfig(epochs=1 if dry_run else cfg.epochs, max_minutes=cfg.max_minutes, lr=cfg.lr,
                           weight_decay=cfg.weight_decay, schedule=cfg.schedule, clip_grad_norm=5.0, monitor=monitor,
                           early_stop_patience=cfg.early_stop_patience, log_every=20, seed=cfg.seed,
                           device="cpu")
        if self._run_dir is not None:
            self._run_dir.path.mkdir(parents=True, exist_ok=True)
            self._write_config(self._run_dir)   # a run dir is recognisable as a classifier while it trains
        self.trainer_ = Trainer(self.net_, tcfg, run_dir=self._run_dir, progress=progress)
        best = {}

        def keep_best(trainer, epoch, metrics):
            if trainer.best_epoch == epoch:   # this epoch improved the monitored loss
                best.update({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})

        self.trainer_.fit(train_batches, compute_loss, evaluate, on_epoch_end=keep_best, resume=resume)
        if best:
            self.net_.load_state_dict(best)   # the best validation epoch: the last ones may have overfitted
        elif self._run_dir is not None and self._run_dir.best_path.is_file():
            self._run_dir.load_weights(self.net_, best=True)   # a resumed run that improved no more
        self.net_.eval()

    # -- predict -----------------------------------------------------------------------------------------

    def predict_proba(self, X: list) -> np.ndarray:
        """(N, K) class probabilities, columns in the order of ``classes_``."""
        X = list(X)
        if not X:
            return np.zeros((0, len(self.classes_)))
        if self.kind_ == "text" and not all(isinstance(t, str) for t in X):
            _checks.fail("X", type(X[0]).__name__, "a list of texts (str) for this text classifier")
        if self.config.model == "bow":
            return self.bow_.predict_proba(X)
        self.net_.eval()
        Xe, le = self._encode(X)
        probs = np.zeros((len(X), len(self.classes_)), dtype=np.float64)
        with torch.no_grad():
            for xb, lb, idx in self._batches(Xe, le, None, False):
                probs[idx.numpy()] = F.softmax(self.net_(xb, lb), dim=1).double().numpy()
        return probs

    def predict(self, X: list) -> np.ndarray:
        return np.array(self.classes_)[self.predict_proba(X).argmax(1)]

    def evaluate(self, X: list, y) -> dict[str, Any]:
        """accuracy, macro-F1, ROC AUC (two classes), per-class precision/recall/F1 and the confusion matrix."""
        y = np.asarray(y).astype(str)
        unknown = sorted(set(y) - set(self.classes_))
        if unknown:
            _checks.fail("labels", unknown[:5], f"classes the model knows: {self.classes_}")
        return classification_metrics(y, self.predict_proba(X), self.classes_)

    def report(self, X: list, y, out_dir: str | Path, name: str = "test") -> dict[str, Any]:
        """Evaluate and write ``{name}_metrics.json`` and ``{name}_confusion.png`` into ``out_dir``."""
        metrics = self.evaluate(X, y)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        RunDir(out).write_json(f"{name}_metrics.json", metrics)
        plot_confusion(np.array(metrics["confusion_matrix"]), self.classes_, out / f"{name}_confusion.png",
                       title=f"{self.config.model} on {name}: accuracy {metrics['accuracy']:.3f}")
        return metrics

    # -- save / load -------------------------------------------------------------------------------------

    def _write_config(self, run: RunDir) -> None:
        run.write_config({"task": "classify", "model": self.config.model,
                          "config": dataclasses.asdict(self.config), "classes": self.classes_, "kind": self.kind_})

    def save(self, path: str | Path) -> "SequenceClassifier":
        run = RunDir(path)
        run.path.mkdir(parents=True, exist_ok=True)
        self._write_config(run)
        info = {"train_seconds": self.train_seconds_, "embeddings": self.embedding_stats_}
        if self.trainer_ is not None:
            info.update(steps=self.trainer_.step, epochs=self.trainer_.epoch, stop_reason=self.trainer_.stop_reason,
                        best_val_loss=self.trainer_.best)
        run.write_json("train_info.json", info)
        if self.config.model == "bow":
            self.bow_.save(run.path)
            return self
        if self.kind_ == "text":
            self.tokenizer_.save(run.file("tokenizer.json"))
        else:
            run.write_json("standardize.json", {"mean": self.mean_.tolist(), "std": self.std_.tolist()})
        save_weights(run.file(WEIGHTS_FILE), self.net_.state_dict())
        return self

    @classmethod
    def load(cls, path: str | Path) -> "SequenceClassifier":
        run = RunDir(path)
        if not run.config_path.is_file():
            if not run.path.is_dir():
                raise FileNotFoundError(f"run={str(path)!r}: no such run directory")
            raise ValueError(f"run={str(path)!r}: not a classifier run directory (no config.json); expected one "
                             f"written by 'rnnkit classify train'")
        conf = read_json(run.config_path)
        if not isinstance(conf, dict) or conf.get("task") != "classify":
            task = conf.get("task") if isinstance(conf, dict) else None
            raise ValueError(f"run={str(path)!r}: not a classifier run directory (its config says task={task!r}); "
                             f"expected one written by 'rnnkit classify train'")
        self = cls(config_from_dict(ClassifyConfig, conf["config"], source=str(run.config_path)))
        self.classes_, self.kind_ = list(conf["classes"]), conf["kind"]
        self.trainer_ = None
        info = run.read_json("train_info.json") if run.file("train_info.json").is_file() else {}
        self.train_seconds_ = info.get("train_seconds", 0.0)
        self.embedding_stats_ = info.get("embeddings", {})
        if self.config.model == "bow":
            run.require(BOW_FILE, "bow_vocabulary.json")
            self.bow_ = BowModel.load(run.path)
            return self
        if self.kind_ == "text":
            run.require("tokenizer.json")
            self.tokenizer_ = Tokenizer.load(run.file("tokenizer.json"))
        else:
            st = run.read_json("standardize.json")
            self.mean_, self.std_ = np.array(st["mean"], np.float32), np.array(st["std"], np.float32)
        run.require(WEIGHTS_FILE)
        self.net_ = self._build_net()
        load_weights(run.file(WEIGHTS_FILE), self.net_)
        self.net_.eval()
        return self


# ---------------------------------------------------------------------------------------------------------
# Metrics and the confusion-matrix plot
# ---------------------------------------------------------------------------------------------------------

def classification_metrics(y: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, roc_auc_score

    y = np.asarray(y).astype(str)
    pred = np.array(classes)[probs.argmax(1)]
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=classes, zero_division=0)
    out: dict[str, Any] = {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=classes, average="macro", zero_division=0)),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(y, pred, labels=classes).tolist(),   # rows: true, columns: predicted
        "classes": list(classes),
    }
    if len(classes) == 2 and len(set(y)) == 2:
        out["roc_auc"] = float(roc_auc_score(y == classes[1], probs[:, 1]))
    return out


def plot_confusion(cm: np.ndarray, classes: list[str], path: Path, title: str = "") -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    import io

    k = len(classes)
    fig = Figure(figsize=(2 + 0.6 * k, 1.6 + 0.6 * k), dpi=100)
    FigureCanvasAgg(fig)
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
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


# ---------------------------------------------------------------------------------------------------------
# Command line: rnnkit classify train | predict | eval | multilabel
# ---------------------------------------------------------------------------------------------------------

@dataclass
class DataConfig:
    dataset: Optional[str] = field(None, "a named dataset: imdb, rotten-tomatoes or basic-motions")
    csv: Optional[str] = field(None, "a CSV/TSV file of texts with a header (see --text-col, --label-col)")
    series: Optional[str] = field(None, "numeric sequences: a .ts file or a long-format CSV (id, step, channels..., label)")
    text_col: str = field("text", "text column of --csv")
    label_col: str = field("label", "label column of --csv or --series")
    id_col: str = field("id", "sequence id column of a long-format --series CSV")
    step_col: Optional[str] = field("step", "time-step column of a long-format --series CSV (None: file order)")
    val_frac: float = field(0.1, "fraction held out for validation (early stopping)")
    test_frac: float = field(0.2, "fraction held out for the test report (unless the dataset has its own split)")
    split_seed: int = field(0, "seed of the stratified split (fixed, so every model sees the same test set)")


def cmd_train(args) -> int:
    cfg = config_from_args(ClassifyConfig, args)
    dcfg = config_from_args(DataConfig, args)
    data = load_data(dcfg.dataset, dcfg.csv, dcfg.series, text_col=dcfg.text_col, label_col=dcfg.label_col,
                     id_col=dcfg.id_col, step_col=dcfg.step_col, val_frac=dcfg.val_frac,
                     test_frac=dcfg.test_frac, seed=dcfg.split_seed)
    print(data.summary(), file=sys.stderr)
    train, val = data.train, data.val
    if cfg.model == "bow" and len(val):
        # bow has no epochs to stop early: it trains on train + validation, the data a neural model sees in all.
        train, val = Split(train.X + val.X, np.concatenate([train.y, val.y])), Split([], val.y[:0])
    clf = SequenceClassifier(cfg).fit(train.X, train.y, (val.X, val.y), run_dir=args.run_dir,
                                      resume=args.resume, dry_run=args.dry_run)
    run = RunDir(args.run_dir)
    run.write_json("data.json", {**dataclasses.asdict(dcfg), "stats": data.stats,
                                 "sizes": {k: len(getattr(data, k)) for k in ("train", "val", "test")}})
    test = data.test if len(data.test) else data.val
    if args.dry_run:
        test = Split(*small_sample(test.X, test.y, 16))
    name = "test" if len(data.test) else "val"
    m = clf.report(test.X, test.y, run.path, name)
    line = f"{cfg.model}: {name} accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}"
    if "roc_auc" in m:
        line += f", ROC AUC {m['roc_auc']:.4f}"
    print(line + f" (n={m['n']}); trained {clf.train_seconds_:.1f} s; run in {run.path}")
    return 0


def _read_predict_inputs(clf: SequenceClassifier, args) -> list:
    if clf.kind_ == "text":
        texts = list(args.texts)
        if args.file:
            path = Path(args.file)
            if not path.is_file():
                raise FileNotFoundError(f"file={args.file!r}: no such file")
            lines = path.read_text(encoding="utf-8").splitlines()
            texts += [t for t in lines if t.strip()]
        if not texts:
            _checks.fail("texts", [], "at least one text, or --file FILE with one text per line")
        return texts
    if args.texts or not args.file:
        _checks.fail("texts", args.texts, "no texts for a series classifier; pass --file FILE (.ts or long CSV)")
    from rnnkit.tasks.classify.data import read_series

    X, _ = read_series(args.file)
    return X


def cmd_predict(args) -> int:
    clf = SequenceClassifier.load(args.run)
    X = _read_predict_inputs(clf, args)
    probs = clf.predict_proba(X)
    for i, p in enumerate(probs):
        k = int(p.argmax())
        shown = ", ".join(f"{c} {q:.3f}" for c, q in zip(clf.classes_, p))
        what = X[i] if isinstance(X[i], str) else f"series {i + 1}"
        what = what if len(what) <= 60 else what[:57] + "..."
        print(f"{clf.classes_[k]}\t({shown})\t{what}")
    return 0


def cmd_eval(args) -> int:
    clf = SequenceClassifier.load(args.run)
    from rnnkit.tasks.classify.data import drop_empty_texts, read_series, read_text_csv

    if clf.kind_ == "text":
        if not args.csv:
            _checks.fail("csv", None, "a CSV file with the text and label columns")
        X, y, empty = read_text_csv(args.csv, args.text_col, args.label_col)
        source = args.csv
        if empty:
            print(f"{empty} empty texts skipped", file=sys.stderr)
    else:
        if not args.series:
            _checks.fail("series", None, "a .ts or long-format CSV file of labelled series")
        X, y = read_series(args.series, args.label_col)
        source = args.series
    out = Path(args.out) if args.out else Path(args.run) / "eval"
    m = clf.report(X, y, out, "eval")
    summary = {k: m[k] for k in ("n", "accuracy", "macro_f1", "roc_auc") if k in m}
    print(json.dumps({"source": source, **summary}))
    print(f"report written to {out}", file=sys.stderr)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("classify", help="sequence classification: train, predict, eval, multilabel",
                       description=__doc__.split("\n\n")[0])
    p.set_defaults(group_parser=p)
    verbs = p.add_subparsers(dest="verb", metavar="<verb>")

    t = verbs.add_parser("train", help="train a classifier and report test metrics")
    add_config_arguments(t, DataConfig)
    add_config_arguments(t, ClassifyConfig)
    t.add_argument("--run-dir", default="runs/classify", help="where the run is written (default: %(default)s)")
    t.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    t.add_argument("--dry-run", action="store_true", help="one tiny batch, to check the set-up in seconds")
    t.set_defaults(func=cmd_train)

    pr = verbs.add_parser("predict", help="class probabilities for texts (or a file of series)")
    pr.add_argument("run", help="run directory written by 'rnnkit classify train'")
    pr.add_argument("texts", nargs="*", help="texts to classify")
    pr.add_argument("--file", help="a file of inputs: one text per line, or a .ts / long-format CSV of series")
    pr.set_defaults(func=cmd_predict)

    ev = verbs.add_parser("eval", help="metrics, per-class JSON and a confusion matrix on a labelled file")
    ev.add_argument("run", help="run directory written by 'rnnkit classify train'")
    ev.add_argument("--csv", help="labelled texts (text classifiers)")
    ev.add_argument("--series", help="labelled series: .ts or long-format CSV (series classifiers)")
    ev.add_argument("--text-col", default="text", help="text column of --csv (default: %(default)s)")
    ev.add_argument("--label-col", default="label", help="label column (default: %(default)s)")
    ev.add_argument("--out", help="directory for eval_metrics.json and eval_confusion.png (default: RUN/eval)")
    ev.set_defaults(func=cmd_eval)

    from rnnkit.tasks.classify import multilabel

    multilabel.add_commands(verbs)
