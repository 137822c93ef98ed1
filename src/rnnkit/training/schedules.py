"""The optimizer and the learning rate at each step (warmup, then constant, cosine or slanted triangular)."""

from __future__ import annotations

import math

import torch

from rnnkit.training.config import TrainConfig


SLANTED_CUT, SLANTED_RATIO = 0.1, 32.0   # schedule "slanted": the rising share of the run, and lr / lowest rate


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    groups = getattr(model, "param_groups", None)
    if callable(groups) and groups() is not None:
        # The model's own groups (discriminative learning rates: each with an lr_scale the Trainer applies to
        # the schedule's rate), frozen parameters included: they train once unfrozen (gradual unfreezing).
        params = groups()
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
    if schedule in ("cosine_time", "slanted") and time_fraction is not None:
        progress = time_fraction if progress is None else max(progress, time_fraction)
    if progress is None:
        raise ValueError("schedule='cosine': expected a known number of steps: let train_batches(epoch) "
                         "return a sized iterable (a list or a DataLoader) or set max_steps")
    progress = min(1.0, progress)
    if schedule == "slanted":
        # ULMFiT's slanted triangle (Howard & Ruder 2018, eq. 3): a short rise from lr/ratio to lr over the
        # first cut_frac of the run, then a long linear fall back to lr/ratio.
        cut_frac, ratio = SLANTED_CUT, SLANTED_RATIO
        p = progress / cut_frac if progress < cut_frac else 1 - (progress - cut_frac) / (1 - cut_frac)
        return config.lr * (1 + p * (ratio - 1)) / ratio
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1.0 + math.cos(math.pi * progress))
