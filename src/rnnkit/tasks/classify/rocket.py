"""ROCKET: random convolutional kernels and a ridge classifier, the baseline every series model must beat.

Dempster, Petitjean and Webb (2020), "ROCKET: exceptionally fast and accurate time series classification
using random convolutional kernels", Data Mining and Knowledge Discovery 34. Nothing is learned in the
convolutions: ``num_kernels`` kernels are drawn at random once (from the seed), each turns a series into
two numbers, and a linear classifier is fit on those features.

A kernel (as in the paper):

* length 7, 9 or 11; weights drawn from N(0, 1) and mean-centred (per channel); bias from U(-1, 1);
* dilation ``floor(2 ** U(0, log2((L - 1) / (length - 1))))`` for training series of length L, so
  kernels see patterns at every scale up to the whole series;
* zero padding of ``(length - 1) * dilation // 2`` on each side, for half of the kernels (chosen at random);
* series with C > 1 channels: each kernel reads a random subset of 2 ** U(0, log2(C + 1)) channels (rounded
  down) and sums over them, as the authors' multivariate ROCKET does; its weights on the other channels are 0.

Its two features on a series are the proportion of positive values (PPV) of the convolution output and the
output's maximum. The classifier is scikit-learn's ``RidgeClassifierCV`` (alphas ``logspace(-3, 3, 10)``,
chosen by leave-one-out cross-validation) on the features standardised with the training mean and std.

The transform runs in torch: the kernels that share a length, dilation and padding form one ``conv1d``.
A batch of series of different lengths is padded at the end with zeros, and each series' PPV and max are
taken over its own valid outputs only (those that read no batch padding), so a series gets the same features
alone or in any batch. The kernels, the feature scales and the ridge coefficients are saved as safetensors
(no pickle) and applied by rnnkit itself when loaded. Ridge gives scores, not probabilities:
``predict_proba`` returns the softmax of the scores, whose argmax is the ridge prediction.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit import _checks

KERNEL_LENGTHS = (7, 9, 11)
RIDGE_ALPHAS = np.logspace(-3, 3, 10)
CHUNK_BYTES = 64 * 2**20       # the largest convolution output held at once (bounds memory on long series)


class RocketKernels:
    """``num_kernels`` random kernels for series of ``input_length`` steps and ``channels`` channels.

    weights (K, C, 11) float32 (a kernel of length 7 or 9 uses its first 7 or 9 columns), and per kernel:
    length, bias, dilation, padding.
    """

    def __init__(self, weights: Tensor, lengths: Tensor, biases: Tensor, dilations: Tensor, paddings: Tensor):
        self.weights, self.lengths, self.biases = weights, lengths, biases
        self.dilations, self.paddings = dilations, paddings

    def __len__(self) -> int:
        return len(self.lengths)

    @classmethod
    def generate(cls, num_kernels: int, input_length: int, channels: int, seed: int) -> "RocketKernels":
        _checks.check_int("num_kernels", num_kernels, min=1)
        rng = np.random.default_rng(seed)
        weights = np.zeros((num_kernels, channels, max(KERNEL_LENGTHS)), dtype=np.float32)
        lengths = rng.choice(KERNEL_LENGTHS, size=num_kernels)
        biases = rng.uniform(-1, 1, size=num_kernels)
        dilations = np.zeros(num_kernels, dtype=np.int64)
        paddings = np.zeros(num_kernels, dtype=np.int64)
        for k, length in enumerate(lengths):
            # Channels: a random subset; a univariate series always has its one channel.
            n_ch = min(channels, int(2 ** rng.uniform(0, math.log2(channels + 1))))
            chosen = rng.choice(channels, size=n_ch, replace=False)
            w = rng.normal(0, 1, size=(len(chosen), length))
            weights[k, chosen, :length] = w - w.mean(axis=1, keepdims=True)
            # A series shorter than the kernel leaves no room to dilate: dilation 1.
            top = max(0.0, math.log2((input_length - 1) / (length - 1))) if input_length > 1 else 0.0
            dilations[k] = max(1, int(2 ** rng.uniform(0, top)))
            if rng.integers(2) == 1:
                paddings[k] = (length - 1) * dilations[k] // 2
        return cls(torch.from_numpy(weights), torch.from_numpy(lengths.astype(np.int64)),
                   torch.from_numpy(biases.astype(np.float32)), torch.from_numpy(dilations),
                   torch.from_numpy(paddings))

    def groups(self) -> list[tuple[int, int, int, Tensor]]:
        """(length, dilation, padding, kernel indices) for each set of kernels that one conv1d can apply."""
        keys = torch.stack([self.lengths, self.dilations, self.paddings], dim=1)    # (K, 3)
        unique, inverse = torch.unique(keys, dim=0, return_inverse=True)
        return [(int(u[0]), int(u[1]), int(u[2]), torch.nonzero(inverse == g).flatten())
                for g, u in enumerate(unique)]

    def transform(self, X: np.ndarray | Tensor, lengths: np.ndarray | Tensor, progress: bool = False) -> Tensor:
        """(N, T, C) series padded at the end and their (N,) lengths -> (N, 2K) features: K PPVs, then K maxima."""
        x = torch.as_tensor(X, dtype=torch.float32).transpose(1, 2)                     # (N, C, T)
        lengths = torch.as_tensor(lengths, dtype=torch.int64)
        N, C, T = x.shape
        if C != self.weights.shape[1]:
            _checks.fail("X", f"{C} channels", f"series with the {self.weights.shape[1]} channels of the training data")
        K = len(self)
        ppv = torch.zeros(N, K)
        mx = torch.zeros(N, K)
        groups = self.groups()
        start = last_shown = time.monotonic()
        for g, (length, dilation, padding, idx) in enumerate(groups):
            w = self.weights[idx, :, :length]                                           # (G, C, length)
            b = self.biases[idx]
            span = (length - 1) * dilation
            # Zeros past the longest series so that even the shortest one has at least one output.
            xg = F.pad(x, (0, max(0, span + 1 - (T + 2 * padding))))
            # Valid outputs of each series: those whose window ends inside the series and its own padding.
            valid = (lengths + 2 * padding - span).clamp(min=1)                          # (N,)
            t_out = xg.shape[2] + 2 * padding - span
            rows = max(1, CHUNK_BYTES // (4 * len(idx) * t_out))
            for i in range(0, N, rows):
                out = F.conv1d(xg[i:i + rows], w, b, padding=padding, dilation=dilation)   # (n, G, T_out)
                v = valid[i:i + rows]
                if bool((v < t_out).any()):
                    # Shorter series in the batch: their outputs past `valid` read batch padding.
                    mask = (torch.arange(t_out).unsqueeze(0) < v.unsqueeze(1)).unsqueeze(1)   # (n, 1, T_out)
                    out = out.masked_fill(~mask, float("-inf"))
                ppv[i:i + rows, idx] = (out > 0).sum(2, dtype=torch.float32) / v.unsqueeze(1)
                mx[i:i + rows, idx] = out.amax(2)
            if progress and time.monotonic() - last_shown > 5:
                last_shown = time.monotonic()
                print(f"rocket: {g + 1}/{len(groups)} kernel groups on {N} series, "
                      f"{last_shown - start:.0f} s", file=sys.stderr)
        return torch.cat([ppv, mx], dim=1)

    def tensors(self) -> dict[str, Tensor]:
        return {"weights": self.weights, "lengths": self.lengths, "biases": self.biases,
                "dilations": self.dilations, "paddings": self.paddings}


class RocketModel:
    """Random kernels -> PPV and max features -> standardised -> ridge scores (one column per class)."""

    def __init__(self, kernels: RocketKernels, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray,
                 intercept: np.ndarray, alpha: float):
        self.kernels, self.mean, self.scale = kernels, mean, scale
        self.coef, self.intercept, self.alpha = coef, intercept, alpha

    @classmethod
    def fit(cls, X: np.ndarray, lengths: np.ndarray, y: np.ndarray, num_kernels: int, seed: int,
            progress: bool = False) -> "RocketModel":
        """X: (N, T, C) series padded at the end, lengths (N,), y (N,) class indices 0..K-1."""
        from sklearn.linear_model import RidgeClassifierCV

        kernels = RocketKernels.generate(num_kernels, int(np.max(lengths)), X.shape[2], seed)
        feats = kernels.transform(X, lengths, progress).double().numpy()               # (N, 2K)
        mean = feats.mean(0)
        std = feats.std(0)
        scale = np.where(std > 1e-12, std, 1.0)     # a constant feature (e.g. PPV 1 everywhere) stays 0
        ridge = RidgeClassifierCV(alphas=RIDGE_ALPHAS).fit((feats - mean) / scale, y)
        return cls(kernels, mean, scale, np.atleast_2d(ridge.coef_), np.atleast_1d(ridge.intercept_),
                   float(ridge.alpha_))

    def decision_function(self, X: np.ndarray, lengths: np.ndarray, progress: bool = False) -> np.ndarray:
        """(N, K) ridge scores; for two classes ridge keeps one score s, which becomes the columns (-s, s)."""
        feats = self.kernels.transform(X, lengths, progress).double().numpy()
        scores = ((feats - self.mean) / self.scale) @ self.coef.T + self.intercept     # (N, 1) or (N, K)
        return np.concatenate([-scores, scores], axis=1) if scores.shape[1] == 1 else scores

    def predict_proba(self, X: np.ndarray, lengths: np.ndarray, progress: bool = False) -> np.ndarray:
        """Softmax of the ridge scores: not calibrated probabilities, but their argmax is ridge's class."""
        s = self.decision_function(X, lengths, progress)
        e = np.exp(s - s.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Everything ROCKET learned (and drew), saved as the run's weights."""
        return {**{f"kernel_{k}": v for k, v in self.kernels.tensors().items()},
                "feature_mean": torch.from_numpy(self.mean), "feature_scale": torch.from_numpy(self.scale),
                "coef": torch.from_numpy(self.coef), "intercept": torch.from_numpy(self.intercept),
                "alpha": torch.tensor([self.alpha], dtype=torch.float64)}

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor]) -> "RocketModel":
        kernels = RocketKernels(*(t[f"kernel_{k}"] for k in ("weights", "lengths", "biases", "dilations", "paddings")))
        return cls(kernels, t["feature_mean"].numpy(), t["feature_scale"].numpy(), t["coef"].numpy(),
                   t["intercept"].numpy(), float(t["alpha"][0]))


class RocketGraph(torch.nn.Module):
    """ROCKET as one module the ONNX exporter traces: raw series x (B, T, C) (NaN: missing) and a mask (B, T)
    (1 for the valid steps, which come first) in, the ridge scores (B, K) out, whose softmax is
    ``predict_proba``.

    The same arithmetic as :meth:`RocketKernels.transform` without a branch on the data: each group of kernels
    is one conv1d over the series padded with ``span`` zeros on the right (so every series has an output), and
    each series' PPV and max are taken over its own valid outputs, counted from the mask. The features come out
    grouped by kernel group; the feature scales and ridge coefficients are reordered to match once, here. The
    ridge part runs in float64, as ``decision_function`` does."""

    def __init__(self, model: RocketModel, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))      # (C,) channel scales
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        kernels = model.kernels
        self.shapes = []                                  # (length, dilation, padding) of each group
        order = []
        for g, (length, dilation, padding, idx) in enumerate(kernels.groups()):
            self.shapes.append((length, dilation, padding))
            self.register_buffer(f"weight_{g}", kernels.weights[idx, :, :length].float().contiguous())
            self.register_buffer(f"bias_{g}", kernels.biases[idx].float())
            order.append(idx)
        order = torch.cat(order)                          # the kernel behind each grouped feature column
        columns = torch.cat([order, order + len(kernels)]).numpy()        # PPVs first, then maxima
        self.register_buffer("feature_mean", torch.from_numpy(model.mean[columns]).double())
        self.register_buffer("feature_scale", torch.from_numpy(model.scale[columns]).double())
        coef = model.coef[:, columns]
        intercept = model.intercept
        if coef.shape[0] == 1:            # two classes: ridge keeps one score s, the columns are (-s, s)
            coef, intercept = np.concatenate([-coef, coef]), np.concatenate([-intercept, intercept])
        self.register_buffer("coef", torch.from_numpy(np.ascontiguousarray(coef)).double())        # (K, 2 * kernels)
        self.register_buffer("intercept", torch.from_numpy(np.ascontiguousarray(intercept)).double())

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        # standardised as the classifier encodes series: a missing value as the channel mean, padding zero
        x = torch.nan_to_num((x - self.mean) / self.std, nan=0.0) * mask.unsqueeze(-1)         # (B, T, C)
        x = x.transpose(1, 2)                                                                   # (B, C, T)
        steps = mask.sum(1, keepdim=True)                                                       # (B, 1)
        ppvs, maxima = [], []
        for g, (length, dilation, padding) in enumerate(self.shapes):
            span = (length - 1) * dilation
            out = F.conv1d(F.pad(x, (0, span)), getattr(self, f"weight_{g}"), getattr(self, f"bias_{g}"),
                           padding=padding, dilation=dilation)                                 # (B, G, T + 2p)
            valid = (steps + 2 * padding - span).clamp(min=1).unsqueeze(1)                      # (B, 1, 1)
            position = torch.cumsum(torch.ones_like(out[:, :1]), dim=2) - 1                     # (B, 1, T + 2p)
            keep = position < valid
            ppvs.append(((out > 0) & keep).float().sum(2) / valid.squeeze(2))                   # (B, G)
            maxima.append(out.masked_fill(~keep, float("-inf")).amax(2))                        # (B, G)
        features = torch.cat([*ppvs, *maxima], dim=1).double()                                  # (B, 2 * kernels)
        scores = ((features - self.feature_mean) / self.feature_scale) @ self.coef.T + self.intercept
        return scores.float()                                                                   # (B, K)


def cross_validate(X: list, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], num_kernels: int, seed: int,
                   maxlen: int | None = None, truncating: str = "pre") -> list[float]:
    """The accuracy of ROCKET on each fold of ``folds`` ((train, held-out) index arrays into the series ``X``,
    (T, C) arrays, with labels ``y``).

    The features of a series do not depend on the other series (the kernels come from the seed and the longest
    series), so every series is transformed once and each fold fits only the feature scales and the ridge
    classifier on its training rows, as :meth:`RocketModel.fit` does. The channels are standardised with the
    scales of all the rows (the classifier's own encoding uses the training rows': a difference of a fold's
    share in a mean and a standard deviation)."""
    from sklearn.linear_model import RidgeClassifierCV

    from rnnkit.tasks.classify.data import encode_series

    steps = np.concatenate([np.asarray(x, dtype=np.float32) for x in X])            # (sum T, C)
    mean = np.nan_to_num(np.nanmean(steps, 0)).astype(np.float32)
    std = np.nan_to_num(np.nanstd(steps, 0))
    Xe, lengths = encode_series(X, mean, np.where(std > 1e-8, std, 1.0).astype(np.float32), maxlen, truncating)
    kernels = RocketKernels.generate(num_kernels, int(np.max(lengths)), Xe.shape[2], seed)
    feats = kernels.transform(Xe, lengths).double().numpy()                          # (N, 2K)
    y = np.asarray(y)
    accs = []
    for tr, va in folds:
        mean, std = feats[tr].mean(0), feats[tr].std(0)
        scale = np.where(std > 1e-12, std, 1.0)
        ridge = RidgeClassifierCV(alphas=RIDGE_ALPHAS).fit((feats[tr] - mean) / scale, y[tr])
        accs.append(float((ridge.predict((feats[va] - mean) / scale) == y[va]).mean()))
    return accs
