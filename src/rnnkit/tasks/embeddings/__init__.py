"""rnnkit embeddings: data.py reads the files (GloVe vectors, analogy questions, word pairs), task.py holds
Embeddings and the evaluations, cli.py is `rnnkit embed`."""

from rnnkit.tasks.embeddings.task import Embeddings

__all__ = ["Embeddings"]
