"""Training: one TrainConfig, one Trainer for every task, the learning-rate schedules."""

from rnnkit.training.config import TrainConfig


def __getattr__(name: str):
    # The Trainer imports torch: only when it is asked for, so that a task's config (and every --help,
    # built from the configs) reads TrainConfig without paying for the engine.
    if name == "Trainer":
        from rnnkit.training.trainer import Trainer
        return Trainer
    raise AttributeError(f"module 'rnnkit.training' has no attribute {name!r}")


__all__ = ["TrainConfig", "Trainer"]
