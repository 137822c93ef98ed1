"""``MultilabelConfig``: the multilabel task's options, one field per ``rnnkit classify multilabel train`` flag."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Union

from rnnkit import _checks
from rnnkit.config import field
from rnnkit.tasks.classify.config import MAX_GRID_STEP, MIN_GRID_STEP
from rnnkit.training.config import TrainConfig

MAX_AUX_WEIGHT = 1000.0


@dataclass
class MultilabelConfig:
    hidden_size: int = field(64, f"LSTM units per layer (at most {_checks.MAX_WIDTH:,})")
    num_layers: int = field(2, f"stacked LSTM layers (at most {_checks.MAX_LAYERS})")
    dropout: float = field(0.2, "dropout between layers and before the output heads")
    alpha: float = field(0.5, "target replication: weight of the every-step loss (0: final step only)")
    aux_weight: float = field(0.0, "weight of the auxiliary-output loss (0: no auxiliary head; at most "
                                   f"{MAX_AUX_WEIGHT:g})")
    threshold: float = field(0.5, "probability above which a label is predicted (for F1)")
    class_weight: str = field("none", "balanced: weight each label's positive stays by negatives / positives "
                                      "in training, so a rare label counts as much as a common one",
                              choices=("none", "balanced"))
    grid_step: float = field(1.0, "width of a grid slot in the time column's units (hours for timestamps and "
                                  f"for the synthetic stays; {MIN_GRID_STEP:g} to {MAX_GRID_STEP:g})")
    # Budgets in updates and time, stopping on evidence (the policy every task shares): epochs go on until the
    # validation loss has not improved for 5 epochs, but at least 300 updates (a few hundred stays at batch 8)
    # and at most 5 minutes. Measured on the synthetic stays (bench/multilabel.py).
    train: TrainConfig = field(TrainConfig(epochs=200, batch_size=64, lr=3e-3, clip_grad_norm=5.0,
                                           early_stop_patience=5, min_steps=300, auto_batch=True, max_minutes=5.0,
                                           log_every=20), "training options")

    def __post_init__(self):
        _checks.check_int("hidden_size", self.hidden_size, min=1, cap=_checks.MAX_WIDTH)
        _checks.check_int("num_layers", self.num_layers, min=1, cap=_checks.MAX_LAYERS)
        h = self.hidden_size     # LSTM: 4 gates; the input is small (one value and one mask per channel)
        _checks.check_size("hidden_size, num_layers", (h, self.num_layers), 4 * h * 2 * h * self.num_layers)
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        _checks.check_float("alpha", self.alpha, min=0, max=1)
        _checks.check_float("aux_weight", self.aux_weight, min=0, max=MAX_AUX_WEIGHT)
        _checks.check_float("threshold", self.threshold, min=0, max=1, min_open=True, max_open=True)
        _checks.check_float("grid_step", self.grid_step, min=0, min_open=True, max=MAX_GRID_STEP)
        _checks.check_choice("class_weight", self.class_weight, ("none", "balanced"))
        if not isinstance(self.train, TrainConfig):
            _checks.fail("train", self.train, "a TrainConfig")


@dataclass
class PredictRequest:
    """One request to label stays: what ``MultilabelClassifier.apply`` and ``POST .../predict`` take. Each stay is
    ``{"times": [...], "channels": [...], "values": [...], "hours": ...}``: one time (from the stay's start, in
    the grid's units), channel (a name or an index) and value per observation; ``hours`` (optional) is the
    stay's length (default: up to the slot of its last observation)."""

    stays: list[dict[str, Union[float, list[Union[float, str]]]]] = dataclasses.field(metadata={
        "help": "stays to label, each {times, channels, values[, hours]}", "limits": {"min_length": 1,
                                                                                     "max_length": "max_texts"}})
