"""Training: one TrainConfig, one Trainer for every task, the learning-rate schedules."""

from rnnkit.training.trainer import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer"]
