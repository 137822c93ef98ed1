"""rnnkit's multilabel task (``rnnkit classify multilabel``): config.py (MultilabelConfig), data.py (synthetic
clinical-like stays, a user's long-format file, the features), model.py (MultilabelNet, the losses), task.py
(MultilabelClassifier), cli.py (the ``multilabel`` verbs of ``rnnkit classify``)."""

from rnnkit.tasks.multilabel.config import MultilabelConfig


def __getattr__(name: str):
    # The task object imports torch: only when asked for, so that the config (and --help) stays light.
    if name == "MultilabelClassifier":
        from rnnkit.tasks.multilabel.task import MultilabelClassifier
        return MultilabelClassifier
    raise AttributeError(f"module 'rnnkit.tasks.multilabel' has no attribute {name!r}")


__all__ = ["MultilabelClassifier", "MultilabelConfig"]
