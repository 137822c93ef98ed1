"""rnnkit classify: see task.py for the estimator, cli.py for `rnnkit classify`."""

from rnnkit.tasks.classify.task import SequenceClassifier, ClassifyConfig

__all__ = ["SequenceClassifier", "ClassifyConfig"]
