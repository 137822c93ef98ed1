"""rnnkit embeddings: see task.py for the estimator, cli.py for `rnnkit embeddings`."""

from rnnkit.tasks.embeddings.task import Embeddings

__all__ = ["Embeddings"]
