"""rnnkit classify: model.py (networks), data.py (readers, splits), task.py (SequenceClassifier),
multilabel.py (MultilabelClassifier, synthetic clinical-like data), cli.py (`rnnkit classify`)."""

from rnnkit.tasks.classify.multilabel import MultilabelClassifier, MultilabelConfig
from rnnkit.tasks.classify.task import ClassifyConfig, SequenceClassifier

__all__ = ["ClassifyConfig", "MultilabelClassifier", "MultilabelConfig", "SequenceClassifier"]
