"""The optimizer and the learning rate at each step (warmup, then constant or cosine)."""

from __future__ import annotations

import math

import torch

from rnnkit.training.config import TrainConfig


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    lr, wd = config.lr, config.weight_decay
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd)


def lr_at(config: TrainConfig, step: int, total_steps: int | None = None,
          time_fraction: float | None = None) -> float:
    """The learning rate for optimizer step ``step`` (0-based).

    Warmup rises linearly, reaching ``lr`` at step ``warmup_steps - 1``; the cosine schedule then falls
    from ``lr`` to ``min_lr`` at step ``total_steps``. ``cosine_time`` falls over the time budget
    instead: ``time_fraction`` is the part of ``max_minutes`` used so far; when ``total_steps`` is known
    too, whichever is further along sets the progress, so the rate reaches ``min_lr`` at the end of the
    run whether the clock or the epochs end it.
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    schedule = config.resolved_schedule()
    if schedule == "constant":
        return config.lr
    progress = None
    if total_steps is not None:
        progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
    if schedule == "cosine_time" and time_fraction is not None:
        progress = time_fraction if progress is None else max(progress, time_fraction)
    if progress is None:
        raise ValueError("schedule='cosine': expected a known number of steps: let train_batches(epoch) "
                         "return a sized iterable (a list or a DataLoader) or set max_steps")
    progress = min(1.0, progress)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1.0 + math.cos(math.pi * progress))
