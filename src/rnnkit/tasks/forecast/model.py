"""The forecasting models, from the baselines up to Conv1D+GRU.

Every model maps a batch of windows (B, L, F) (L = lookback // step steps of F normalised columns, the K
target columns first) to predictions (B, H, K) for the H horizon steps of the K targets, in normalised
units. With ``residual=True`` a learned model predicts the change from the last observed target value,
which is added back at the end (the naive forecast becomes the model's starting point).

| name           | what                                                                             |
|----------------|----------------------------------------------------------------------------------|
| naive          | the last observed value                                                          |
| seasonal_naive | the value one season (``season`` steps) before the target time                   |
| ridge          | a linear autoregression on the flattened window, fitted in closed form (sklearn) |
| mlp            | flatten -> dense(hidden, relu) -> dense                                          |
| gru            | GRU(hidden) -> dense                                                             |
| gru_dropout    | GRU with input dropout and variational recurrent dropout -> dense                |
| stacked_gru    | two stacked GRU layers with dropout -> dense                                     |
| bigru          | bidirectional GRU (concatenated) -> dense                                        |
| lstm           | LSTM(hidden) -> dense                                                            |
| conv1d         | conv(5) relu maxpool(3) conv(5) relu, global max pool -> dense                   |
| conv1d_gru     | conv(5) relu maxpool(3) conv(5) relu -> GRU with dropout -> dense               |
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit._checks import check_choice, fail
from rnnkit.nn.layers import RNN
# The model names are config (--help lists them): defined in config.py, which imports no torch.
from rnnkit.tasks.forecast.config import BASELINES, MODELS, RECURRENT  # noqa: F401


class Naive(nn.Module):
    """Repeat the last observed value of each target (columns 0..K-1) for every horizon step."""

    def __init__(self, n_targets: int, horizon: int):
        super().__init__()
        self.n_targets, self.horizon = n_targets, horizon

    def forward(self, x: Tensor) -> Tensor:
        last = x[:, -1, :self.n_targets]                                   # (B, K)
        return last.unsqueeze(1).expand(-1, self.horizon, -1)              # (B, H, K)


class SeasonalNaive(nn.Module):
    """For horizon step h the value ``season * k`` steps before the target time, the most recent one that the
    window holds. ``positions`` (H,) are those values' indices in the window (computed by
    :func:`seasonal_positions`)."""

    def __init__(self, n_targets: int, positions: list[int]):
        super().__init__()
        self.n_targets = n_targets
        self.register_buffer("positions", torch.tensor(positions, dtype=torch.long), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x[:, self.positions, :self.n_targets]                       # (B, H, K)


def seasonal_positions(season: int, lookback: int, step: int, delay: int, horizon: int) -> list[int]:
    """Window indices of the seasonal-naive values (see :class:`SeasonalNaive`); the window's last row is
    time 0, its rows are at times -lookback + step, ..., 0, the targets at delay, ..., delay + horizon - 1."""
    positions = []
    for h in range(horizon):
        target = delay + h
        source = target - season * -(-target // season)                   # latest time <= 0, one season apart
        index = (source + lookback - step) / step
        if source < -lookback + step or index != int(index):
            fail("season", season, f"a period whose earlier value lies in the window: the target {target} "
                                   f"steps ahead needs the value at {source}, but the window holds steps "
                                   f"{-lookback + step}..0 every {step}; raise lookback or pick another season")
        positions.append(int(index))
    return positions


class ForecastNet(nn.Module):
    """A learned model: a body that reads the window and a dense head for the H x K outputs.

    ``kind`` is one of ridge, mlp, the recurrent kinds, conv1d, conv1d_gru (see the module table).
    """

    def __init__(self, kind: str, n_features: int, steps: int, n_targets: int, horizon: int,
                 hidden_size: int = 32, dropout: float = 0.1, recurrent_dropout: float = 0.5,
                 residual: bool = False):
        super().__init__()
        check_choice("model", kind, MODELS[2:])
        self.kind, self.n_targets, self.horizon, self.residual = kind, n_targets, horizon, residual
        H = hidden_size
        if kind == "ridge":
            self.body, width = nn.Flatten(), steps * n_features
        elif kind == "mlp":
            self.body, width = nn.Sequential(nn.Flatten(), nn.Linear(steps * n_features, H), nn.ReLU()), H
        elif kind in ("conv1d", "conv1d_gru"):
            # "same" padding and ceil-mode pooling keep short windows (monthly data) usable.
            self.conv = nn.Sequential(nn.Conv1d(n_features, H, 5, padding=2), nn.ReLU(),
                                      nn.MaxPool1d(3, ceil_mode=True), nn.Conv1d(H, H, 5, padding=2), nn.ReLU())
            if kind == "conv1d_gru":
                self.rnn = RNN("gru", H, H, dropout=dropout, recurrent_dropout=recurrent_dropout,
                               return_sequences=False)
            width = H
        else:
            options = {"gru": dict(cell="gru"), "lstm": dict(cell="lstm"),
                       "gru_dropout": dict(cell="gru", dropout=dropout, recurrent_dropout=recurrent_dropout),
                       "stacked_gru": dict(cell="gru", num_layers=2, dropout=dropout,
                                           recurrent_dropout=recurrent_dropout),
                       "bigru": dict(cell="gru", bidirectional=True)}[kind]
            self.rnn = RNN(input_size=n_features, hidden_size=H, return_sequences=False, **options)
            width = self.rnn.output_size
        self.head = nn.Linear(width, horizon * n_targets)

    def forward(self, x: Tensor) -> Tensor:
        B = x.shape[0]
        if self.kind in ("ridge", "mlp"):
            z = self.body(x)                                                # (B, D)
        elif self.kind.startswith("conv1d"):
            z = self.conv(x.transpose(1, 2))                                # (B, H, L') channels first
            z = z.amax(dim=2) if self.kind == "conv1d" else self.rnn(z.transpose(1, 2))
        else:
            z = self.rnn(x)                                                 # (B, D): last step's output
        out = self.head(z).view(B, self.horizon, self.n_targets)           # (B, H, K)
        if self.residual:
            out = out + x[:, -1:, :self.n_targets]                         # add back the last value
        return out


def build_model(kind: str, *, n_features: int, steps: int, n_targets: int, horizon: int,
                positions: list[int] | None = None, **options) -> nn.Module:
    check_choice("model", kind, MODELS)
    if kind == "naive":
        return Naive(n_targets, horizon)
    if kind == "seasonal_naive":
        return SeasonalNaive(n_targets, positions or [])
    return ForecastNet(kind, n_features, steps, n_targets, horizon, **options)


# ---------------------------------------------------------------------------------------------------------
# ONNX: a model behind the run's normaliser (see rnnkit.export.onnx)
# ---------------------------------------------------------------------------------------------------------

# Models whose window length is fixed by their weights (they flatten it) or their positions (seasonal_naive).
FIXED_WINDOW = ("ridge", "mlp", "seasonal_naive")


class ForecastGraph(nn.Module):
    """A window in the columns' units in (B, L, F), the forecast in the targets' units out (B, H, K): the run's
    normaliser (``mean``, ``std`` (F,); the K targets are the first columns) around the model."""

    def __init__(self, model: nn.Module, mean, std, n_targets: int):
        super().__init__()
        self.model, self.k = model, n_targets
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        out = self.model((x - self.mean) / self.std)                 # (B, H, K), normalised
        return out * self.std[:self.k] + self.mean[:self.k]
