"""rnnkit classify: config.py (ClassifyConfig, DataConfig), model.py (networks), data.py (readers, splits), task.py
(SequenceClassifier), rocket.py (the ROCKET baseline), cli.py (`rnnkit classify`; its `multilabel` verbs are
rnnkit.tasks.multilabel's)."""

from rnnkit.tasks.classify.config import ClassifyConfig


def __getattr__(name: str):
    # The task object imports torch: only when asked for, so that the configs (and --help) stay light.
    if name == "SequenceClassifier":
        from rnnkit.tasks.classify.task import SequenceClassifier
        return SequenceClassifier
    raise AttributeError(f"module 'rnnkit.tasks.classify' has no attribute {name!r}")


__all__ = ["ClassifyConfig", "SequenceClassifier"]
