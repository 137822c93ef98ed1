"""The classifiers' networks: a sequence body with masked pooling, and the bag-of-words baseline.

The path: inputs -> (embedding for text | standardised channels for series) -> a sequence body
(recurrent, convolutional, or both) -> masked pooling over time -> a linear head -> class logits.

* Masking: every batch carries each sequence's length. The recurrent layer is
  :class:`rnnkit.nn.RNN` called with ``lengths=``: its outputs at valid steps never see the padding
  (the backward direction reads each sequence reversed within its length); convolutions see zeros
  outside the valid steps, and pooling ignores padded positions. So padding never changes a
  prediction: the same text padded to 50 or to 500 steps gets the same probabilities (a test checks this).
* Pooling: ``last`` (the final state, as in the lectures), ``max``, ``mean`` or ``maxmean`` (both,
  concatenated), which reads the whole review instead of only its end and trains faster on long texts;
  ``concat`` (ULMFiT's concat pooling) puts the final state beside max and mean.
* ``bow`` is the baseline every neural model must beat: tf-idf over unigrams and bigrams and a logistic
  regression (scikit-learn). Its vocabulary, idf weights and coefficients are saved as JSON + safetensors
  (no pickle) and applied by rnnkit itself when loaded.
* ``rocket`` is the series baseline: random convolution kernels and a ridge classifier
  (:mod:`rnnkit.tasks.classify.rocket`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn.layers import RNN
from rnnkit.runs.io import atomic_write_text, read_json
# The model names are config (--help lists them): defined in config.py, which imports no torch.
from rnnkit.tasks.classify.config import MODELS, POOLINGS  # noqa: F401

BOW_VOCABULARY_FILE = "bow_vocabulary.json"


def masked_pool(out: Tensor, mask: Tensor, how: str) -> Tensor:
    """(B, T, H) outputs and a (B, T) bool mask of valid steps -> (B, H) or (B, 2H) for maxmean."""
    m = mask.unsqueeze(-1)                                           # (B, T, 1)
    pooled = []
    if how in ("max", "maxmean"):
        pooled.append(out.masked_fill(~m, float("-inf")).amax(1))
    if how in ("mean", "maxmean"):
        pooled.append((out * m).sum(1) / m.sum(1).clamp(min=1))
    return torch.cat(pooled, dim=-1)


def final_states(out: Tensor, lengths: Tensor, num_directions: int) -> Tensor:
    """(B, T, D*H) outputs of a right-padded batch -> (B, D*H) final states: the forward direction's at
    step L-1, the backward direction's at step 0 (it read the sequence last)."""
    H = out.shape[2] // num_directions
    fwd = out[torch.arange(out.shape[0], device=out.device), lengths - 1, :H]
    return fwd if num_directions == 1 else torch.cat([fwd, out[:, 0, H:]], dim=-1)


class SequenceNet(nn.Module):
    """Input layer -> body (rnn | conv | conv then rnn) -> masked pooling -> dropout -> linear head.

    ``model``: one of the classify models trained by gradient descent (rnn, gru, lstm, bilstm, bigru, mingru,
    minlstm, conv1d, cnn-lstm; the min cells train as a parallel scan); the other arguments are the config's fields of the same names, passed explicitly.

    ``vocab`` > 0 means text (token ids in, an embedding first); otherwise ``input_size`` channels of
    standardised values come in directly.
    """

    def __init__(self, model: str, num_classes: int, *, vocab: int = 0, input_size: int = 0,
                 embedding_size: int = 64, hidden_size: int = 64, num_layers: int = 1, kernel_size: int = 5,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, pooling: str = "last"):
        super().__init__()
        self.kind, self.dropout, self.pooling = model, dropout, pooling
        self.text = vocab > 0
        feat = embedding_size if self.text else input_size
        if self.text:
            self.embed = nn.Embedding(vocab, embedding_size, padding_idx=0)
        self.convs = nn.ModuleList()
        if model in ("conv1d", "cnn-lstm"):
            n_conv = num_layers if model == "conv1d" else 1
            for _ in range(n_conv):
                # 'same' padding: a valid step sees zeros beyond the sequence whether they come from the
                # convolution's own padding or from batch padding (which is zeroed), so padding is invisible.
                self.convs.append(nn.Conv1d(feat, hidden_size, kernel_size, padding=kernel_size // 2))
                feat = hidden_size
        self.rnn = None
        if model != "conv1d":
            cell = {"rnn": "rnn", "gru": "gru", "bigru": "gru", "mingru": "mingru", "minlstm": "minlstm"}.get(
                model, "lstm")
            # dropout: one mask per sequence on each layer's input (the same at every step);
            # weight-drop on the recurrent weights keeps torch's fused kernel.
            self.rnn = RNN(cell, feat, hidden_size, num_layers=num_layers,
                           bidirectional=model in ("bilstm", "bigru"), dropout=dropout,
                           recurrent_dropout=recurrent_dropout, recurrent_dropout_mode="weight_drop")
            feat = self.rnn.output_size
        feat *= {"maxmean": 2, "concat": 3}.get(pooling, 1)
        self.head = nn.Linear(feat, num_classes)
        # Discriminative learning rates (set by a fit that starts from a language model, --encoder-from): each
        # layer group below the head learns lr_decay times slower than the one above; None: one rate for all.
        self.lr_decay: float | None = None

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """The parameters in layer groups, top first: the head, each recurrent layer from the top, the
        convolutions, the embedding (the order of discriminative rates and of gradual unfreezing)."""
        groups = [list(self.head.parameters())]
        if self.rnn is not None:
            D = self.rnn.num_directions
            for layer in reversed(range(self.rnn.num_layers)):
                groups.append([p for cell in self.rnn.cells[layer * D:(layer + 1) * D] for p in cell.parameters()])
        groups += [list(conv.parameters()) for conv in reversed(self.convs)]
        if self.text:
            groups.append(list(self.embed.parameters()))
        return groups

    def param_groups(self) -> list[dict] | None:
        """Optimizer groups with an ``lr_scale`` each (see rnnkit.training.schedules.make_optimizer), or None."""
        if self.lr_decay is None:
            return None
        from rnnkit.tasks.transfer import param_groups
        return param_groups(self.layer_groups(), self.lr_decay)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x: (B, T) ids or (B, T, C) values, padded at the end; lengths (B,) -> logits (B, K)."""
        B, T = x.shape[:2]
        lengths = lengths.to(x.device)
        mask = torch.arange(T, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)   # (B, T)
        h = self.embed(x) if self.text else x                        # (B, T, E)
        if self.convs and self.dropout > 0 and self.training:
            # One mask per sequence and feature, the same at every step ("spatial" dropout on the inputs);
            # a recurrent layer that reads the inputs directly applies its own.
            keep = torch.empty(B, 1, h.shape[2], device=h.device).bernoulli_(1 - self.dropout)
            h = h * keep / (1 - self.dropout)
        for conv in self.convs:
            h = h * mask.unsqueeze(-1)                               # zero the padding before each conv
            h = F.relu(conv(h.transpose(1, 2))).transpose(1, 2)     # (B, T, H)
        if self.kind == "cnn-lstm":
            # Halve the time axis (ceil, so no valid step is dropped); padding is zero and ReLU outputs are >= 0,
            # so a pooled window that mixes a valid step with padding equals the valid step's value.
            h = F.max_pool1d((h * mask.unsqueeze(-1)).transpose(1, 2), 2, ceil_mode=True).transpose(1, 2)
            lengths = (lengths + 1) // 2
            mask = torch.arange(h.shape[1], device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        if self.rnn is not None:
            h = self.rnn(h, lengths=lengths)                         # (B, T, D*H), zeros past each length
        if self.pooling in ("last", "concat"):
            # The final state; a conv net has none, so it takes the max over time. concat (ULMFiT's): the final
            # state, the max and the mean side by side, (B, 3H).
            last = (final_states(h, lengths, self.rnn.num_directions) if self.rnn is not None
                    else masked_pool(h, mask, "max"))
            h = last if self.pooling == "last" else torch.cat([last, masked_pool(h, mask, "maxmean")], dim=-1)
        else:
            h = masked_pool(h, mask, self.pooling)
        h = F.dropout(h, self.dropout, self.training)
        return self.head(h)                                          # (B, K)


_OLD_RNN_KEY = re.compile(r"^rnn\.layers\.(\d+)\.cells\.0\.")


def upgrade_state_dict(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Weights saved by rnnkit 0.1 (one recurrent layer object per layer and direction,
    ``rnn.layers.{i}.cells.0.*``) -> this version's one stacked layer (``rnn.cells.{i}.*``, the same order)."""
    return {_OLD_RNN_KEY.sub(r"rnn.cells.\1.", k): v for k, v in tensors.items()}


# ---------------------------------------------------------------------------------------------------------
# The bag-of-words baseline, saved without pickle
# ---------------------------------------------------------------------------------------------------------

BOW_TOKEN_PATTERN = r"(?u)\b\w\w+\b|[!?]"   # words, plus ! and ? which carry sentiment


class BowModel:
    """tf-idf (sublinear tf, unigrams + bigrams, l2 rows) -> logistic regression; predicts by hand when loaded."""

    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray, coef: np.ndarray, intercept: np.ndarray):
        self.vocabulary, self.idf, self.coef, self.intercept = vocabulary, idf, coef, intercept

    @classmethod
    def fit(cls, texts: list[str], y: np.ndarray, C: float, min_df: int, seed: int,
            class_weight: str = "none") -> "BowModel":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, sublinear_tf=True, token_pattern=BOW_TOKEN_PATTERN)
        X = vec.fit_transform(texts)
        lr = LogisticRegression(C=C, max_iter=2000, random_state=seed,
                                class_weight="balanced" if class_weight == "balanced" else None).fit(X, y)
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

    def tensors(self) -> dict[str, Tensor]:
        """The learned numbers, saved as the run's weights (the vocabulary is a JSON side file)."""
        return {"idf": torch.from_numpy(self.idf), "coef": torch.from_numpy(self.coef),
                "intercept": torch.from_numpy(self.intercept)}

    def save_vocabulary(self, path: Path) -> None:
        atomic_write_text(path / BOW_VOCABULARY_FILE, json.dumps(self.vocabulary, ensure_ascii=False))

    @classmethod
    def from_tensors(cls, t: dict[str, Tensor], path: Path) -> "BowModel":
        """The model of a run: its tensors and the vocabulary file in the run directory ``path``."""
        return cls(read_json(path / BOW_VOCABULARY_FILE), t["idf"].numpy(), t["coef"].numpy(), t["intercept"].numpy())


# ---------------------------------------------------------------------------------------------------------
# ONNX: the network behind the input scaling the classifier learned (see rnnkit.export.onnx)
# ---------------------------------------------------------------------------------------------------------

class ClassifierGraph(nn.Module):
    """Raw values (or word ids) and a mask in, class logits out: ``net(standardised x, lengths)``.

    ``mean``/``std`` (C,): the channel scales of a series classifier (None for text: word ids go in as they
    are). x (B, T, C) raw values (NaN: missing) or (B, T) ids; mask (B, T) float, 1 for the valid steps (first)."""

    def __init__(self, net: nn.Module, mean: np.ndarray | None = None, std: np.ndarray | None = None):
        super().__init__()
        self.net = net
        self.series = mean is not None
        if self.series:
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.sum(1).long()                                 # (B,): the valid steps come first
        if self.series:
            # standardised with the training statistics, a missing value (NaN) as the channel mean and the
            # padding zero, as the classifier encodes its inputs
            x = torch.nan_to_num((x - self.mean) / self.std, nan=0.0) * mask.unsqueeze(-1)   # (B, T, C)
        return self.net(x, lengths)                                  # (B, K)
