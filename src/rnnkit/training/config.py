"""TrainConfig: the training options every task shares, one field per ``rnnkit <task> train`` flag.

A task's config holds one as its ``train`` field (with the task's own defaults); the CLI shows these
fields as flat flags (``--lr``, ``--epochs``), the same spelling in every task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rnnkit import _checks
from rnnkit.config import field


SCHEDULES = ("auto", "constant", "cosine", "cosine_time", "slanted")
PRECISIONS = ("auto", "fp32", "bf16")
# auto_batch: the batch shrinks until an epoch holds this many updates, but never below MIN_AUTO_BATCH examples
# (a batch of 1-7 makes noisy steps, and batch normalisation-free recurrent models still like a few rows).
MIN_BATCHES_PER_EPOCH = 8
MIN_AUTO_BATCH = 8


@dataclass
class TrainConfig:
    epochs: int = field(10, f"passes over the training data (at most {_checks.MAX_STEPS:,})")
    batch_size: int = field(32, "examples (or parallel streams of text) per optimizer step (at most "
                                f"{_checks.MAX_BATCH:,})")
    min_steps: int = field(0, "train at least this many optimizer steps, however small the data: epochs go on past "
                              "--epochs until then, and early stopping waits for it (at most "
                              f"{_checks.MAX_STEPS:,})")
    auto_batch: bool = field(False, "shrink the batch for a small training set, so that an epoch still holds at "
                                    f"least {MIN_BATCHES_PER_EPOCH} updates (never below {MIN_AUTO_BATCH} examples)")
    max_steps: Optional[int] = field(None, f"stop after this many optimizer steps (at most {_checks.MAX_STEPS:,}; "
                                           "None: no limit)")
    max_minutes: Optional[float] = field(None, "training-time budget in minutes, counted over the whole run "
                                               "(a resumed run gets what is left); training stops after the "
                                               "current step with a checkpoint (at most "
                                               f"{_checks.MAX_MINUTES:,}, a year; None: no limit)")
    lr: float = field(1e-3, f"peak learning rate (at most {_checks.MAX_LR:g})")
    optimizer: str = field("adam", "optimizer", choices=("adam", "adamw", "rmsprop", "sgd"))
    weight_decay: float = field(0.0, "L2 penalty (adam, rmsprop, sgd) or decoupled weight decay (adamw) "
                                     f"(at most {_checks.MAX_PENALTY:g})")
    momentum: float = field(0.9, "momentum of the sgd optimizer")
    schedule: str = field("constant", "learning-rate schedule after warmup; cosine_time decays over the "
                                      "max_minutes budget (or the steps, whichever ends first); auto is "
                                      "cosine_time with a time budget, else cosine; slanted is ULMFiT's "
                                      "slanted triangle (lr/32 up to lr in the first tenth, then down to "
                                      "lr/32), over the budget or the steps as cosine_time",
                          choices=SCHEDULES)
    warmup_steps: int = field(0, f"steps of linear warmup from 0 to lr (at most {_checks.MAX_STEPS:,})")
    min_lr: float = field(0.0, "learning rate at the end of the cosine schedule")
    clip_grad_norm: Optional[float] = field(1.0, "clip the global gradient norm to this (at most "
                                                f"{_checks.MAX_PENALTY:g}; None: no clipping)")
    early_stop_patience: Optional[int] = field(None, "stop after this many epochs without improvement of "
                                                     f"monitor (at most {_checks.MAX_STEPS:,}; None: never)")
    restore_best: bool = field(True, "after training, the model holds the weights of the best epoch (by "
                                     "monitor), not the last")
    monitor: str = field("val_loss", "metric that picks the best checkpoint and drives early stopping "
                                     "(lower is better; train_loss when there is no evaluation)")
    log_every: int = field(50, "steps between loss read-backs, progress updates and metrics records "
                                   f"(at most {_checks.MAX_STEPS:,})")
    seed: int = field(0, f"seed for python, numpy and torch at the start of training (0 to {_checks.MAX_SEED:,})")
    device: str = field("auto", "where to train: auto picks cuda when available",
                        choices=("auto", "cpu", "cuda"))
    threads: Optional[int] = field(None, "CPU threads for torch (None: one per CPU this process may use that other "
                                         "processes leave free, looked at again while training; OMP_NUM_THREADS "
                                         f"also sets it; at most {_checks.MAX_THREADS:,})")
    precision: str = field("fp32", "arithmetic of the forward pass: fp32, bf16 (mixed precision: bfloat16 "
                                   "matrix products, float32 weights, optimizer and loss), or auto (bf16 "
                                   "where the hardware runs it fast, else fp32)", choices=PRECISIONS)
    ema_decay: Optional[float] = field(None, "keep an exponential moving average of the weights with this decay "
                                             "per step (e.g. 0.999): evaluation, checkpoints and the model after "
                                             "training use the averaged weights (None: off)")

    def __post_init__(self) -> None:
        # A budget that allows no update is refused here, before any work starts: a fit must train.
        no_update = "(a fit that makes no update trains nothing)"
        if _checks.check_int("epochs", self.epochs, cap=_checks.MAX_STEPS) < 1:
            _checks.fail("epochs", self.epochs, f"at least 1 {no_update}")
        _checks.check_int("batch_size", self.batch_size, min=1, cap=_checks.MAX_BATCH)
        _checks.check_int("min_steps", self.min_steps, min=0, cap=_checks.MAX_STEPS)
        if not isinstance(self.auto_batch, bool):
            _checks.fail("auto_batch", self.auto_batch, "True or False")
        if self.max_steps is not None and _checks.check_int("max_steps", self.max_steps, cap=_checks.MAX_STEPS) < 1:
            _checks.fail("max_steps", self.max_steps, f"at least 1, or None for no limit {no_update}")
        if self.max_minutes is not None and _checks.check_float("max_minutes", self.max_minutes) <= 0:
            _checks.fail("max_minutes", self.max_minutes, f"more than 0, or None for no limit {no_update}")
        if self.max_minutes is not None and self.max_minutes > _checks.MAX_MINUTES:
            _checks.fail("max_minutes", self.max_minutes, f"at most {_checks.MAX_MINUTES:,} (a year), or None for "
                                                          "no limit")
        _checks.check_float("lr", self.lr, min=0, min_open=True, max=_checks.MAX_LR)
        _checks.check_choice("optimizer", self.optimizer, ("adam", "adamw", "rmsprop", "sgd"))
        _checks.check_float("weight_decay", self.weight_decay, min=0, max=_checks.MAX_PENALTY)
        _checks.check_float("momentum", self.momentum, min=0, max=1, max_open=True)
        _checks.check_choice("schedule", self.schedule, SCHEDULES)
        if self.schedule == "cosine_time" and self.max_minutes is None:
            _checks.fail("schedule", self.schedule, "'auto', 'constant' or 'cosine' when max_minutes is None "
                         "('cosine_time' decays over the max_minutes budget)")
        _checks.check_int("warmup_steps", self.warmup_steps, min=0, cap=_checks.MAX_STEPS)
        _checks.check_float("min_lr", self.min_lr, min=0, max=self.lr)
        _checks.check_float("clip_grad_norm", self.clip_grad_norm, min=0, min_open=True, max=_checks.MAX_PENALTY,
                            allow_none=True)
        if not isinstance(self.restore_best, bool):
            _checks.fail("restore_best", self.restore_best, "True or False")
        _checks.check_int("early_stop_patience", self.early_stop_patience, min=1, cap=_checks.MAX_STEPS,
                          allow_none=True)
        if not isinstance(self.monitor, str) or not self.monitor:
            _checks.fail("monitor", self.monitor, "a metric name such as 'val_loss'")
        _checks.check_int("log_every", self.log_every, min=1, cap=_checks.MAX_STEPS)
        _checks.check_int("seed", self.seed, min=0, cap=_checks.MAX_SEED)
        _checks.check_choice("device", self.device, ("auto", "cpu", "cuda"))
        _checks.check_int("threads", self.threads, min=1, cap=_checks.MAX_THREADS, allow_none=True)
        _checks.check_choice("precision", self.precision, PRECISIONS)
        _checks.check_float("ema_decay", self.ema_decay, min=0, max=1, min_open=True, max_open=True,
                            allow_none=True)

    def batch_for(self, n_examples: int) -> int:
        """The batch size to train ``n_examples`` with: ``batch_size``, or with ``auto_batch`` a smaller one when
        the set is small, so that an epoch holds at least MIN_BATCHES_PER_EPOCH updates (50 series at batch 64
        would be one update an epoch). Never below MIN_AUTO_BATCH examples, never above batch_size."""
        if not self.auto_batch or n_examples <= 0:
            return self.batch_size
        per_epoch = -(-n_examples // MIN_BATCHES_PER_EPOCH)          # ceil(n / 8)
        return min(self.batch_size, max(MIN_AUTO_BATCH, per_epoch))

    def resolved_schedule(self) -> str:
        """``schedule`` with ``auto`` settled: cosine over the time budget when there is one, else cosine."""
        if self.schedule == "auto":
            return "cosine_time" if self.max_minutes else "cosine"
        return self.schedule
