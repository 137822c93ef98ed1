"""rnnkit embeddings: data.py reads the files (GloVe vectors, analogy questions, word pairs), task.py holds
Embeddings and the evaluations, config.py the configs of `rnnkit embed`, cli.py `rnnkit embed`."""


def __getattr__(name: str):
    # Embeddings imports numpy and the plots: only when asked for, so that `rnnkit embed --help` stays light.
    if name == "Embeddings":
        from rnnkit.tasks.embeddings.task import Embeddings
        return Embeddings
    raise AttributeError(f"module 'rnnkit.tasks.embeddings' has no attribute {name!r}")


__all__ = ["Embeddings"]
