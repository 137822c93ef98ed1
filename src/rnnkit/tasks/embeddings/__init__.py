"""rnnkit embeddings: data.py reads the files (GloVe vectors, analogy questions, word pairs, corpora), task.py holds
Embeddings, the evaluations and the 2-D pictures, word2vec.py and model.py learn vectors from a text, export.py
takes them from a trained run, config.py the configs of `rnnkit embed`, cli.py `rnnkit embed`."""


def __getattr__(name: str):
    # Embeddings imports numpy and the plots: only when asked for, so that `rnnkit embed --help` stays light.
    if name == "Embeddings":
        from rnnkit.tasks.embeddings.task import Embeddings
        return Embeddings
    if name == "Word2Vec":
        from rnnkit.tasks.embeddings.word2vec import Word2Vec
        return Word2Vec
    raise AttributeError(f"module 'rnnkit.tasks.embeddings' has no attribute {name!r}")


__all__ = ["Embeddings", "Word2Vec"]
