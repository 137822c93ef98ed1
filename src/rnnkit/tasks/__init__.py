"""Task objects, one per problem shape, all on the one ``Task`` base; each is also a ``rnnkit <task>`` command group.

Imported lazily so that ``import rnnkit.tasks`` stays cheap and one task's optional pieces never
slow down another's command line.
"""

from __future__ import annotations

import importlib

# public name -> module under rnnkit.tasks that defines it
_EXPORTS = {
    "Task": "base",
    "TextGenerator": "textgen",
    "SequenceClassifier": "classify",
    "MultilabelClassifier": "multilabel",
    "Forecaster": "forecast",
    "Embeddings": "embeddings",
    "Seq2Seq": "seq2seq",
    "Tagger": "tag",
    "VisualQA": "vqa",
    "Captioner": "caption",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"rnnkit.tasks.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'rnnkit.tasks' has no attribute {name!r}")
