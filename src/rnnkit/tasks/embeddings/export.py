"""The embedding layer of a trained rnnkit run as word vectors (`rnnkit embed export RUN -o vectors.txt`).

Every rnnkit model that reads words starts with an embedding layer: one learned row per vocabulary entry.
``run_vectors`` finds that layer and the vocabulary that numbers its rows, through the task object
(``rnnkit.load``), and returns them as an ``Embeddings`` table; written in GloVe's text format, the vectors
work with ``rnnkit embed neighbors|analogy|eval|plot`` and ``--embeddings FILE``. Where each kind of run keeps
them:

* a language model (textgen): ``model_.embed`` and ``tokenizer_`` (word or character level);
* a text classifier, and a tagger of text: ``model_.embed`` and ``tokenizer_`` (``vocab_.words`` for a tagger);
* a sequence-to-sequence model: ``model_.src_embed`` with ``source_vocab_``, or ``model_.tgt_embed`` with
  ``target_vocab_`` (``side``);
* a word2vec run (``rnnkit embed train --run-dir``): its word vectors.

Rows that are not words are left out: padding, ``<unk>`` and the sequence markers. A run without a word
embedding (a classifier of series, a forecaster, a bag of words) is refused in one line that says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit import _checks
from rnnkit.tasks.embeddings.config import EXPORT_SIDES
from rnnkit.tasks.embeddings.task import Embeddings

# Vocabulary entries that are markers, not words: left out of an export.
SPECIAL_TOKENS = {"<pad>", "<unk>", "<go>", "<eos>", "<s>", "</s>", "<oov>", "<end>", "<start>"}


@dataclass
class RunVectors:
    """What ``run_vectors`` found: the vectors, and in words where they came from."""

    embeddings: Embeddings
    task: str              # the run's task (textgen, classify, ...)
    layer: str             # the attribute of the model that holds them
    level: str             # what a row stands for: word, character, subword
    left_out: list[str]    # vocabulary entries not written (padding, markers)


def run_vectors(run: str | Path, *, side: str = "source", checkpoint: str | None = None) -> RunVectors:
    """The embedding layer of the run in ``run`` with its vocabulary (see the module docstring)."""
    _checks.check_choice("side", side, EXPORT_SIDES)
    path = Path(run)
    if not path.is_dir():
        raise FileNotFoundError(f"run={str(run)!r}: no such run directory")
    from rnnkit.tasks.embeddings.word2vec import Word2Vec, is_word2vec_run

    if is_word2vec_run(path):
        w2v = Word2Vec.load(path, checkpoint=checkpoint)
        return RunVectors(w2v.embeddings_, "word2vec", "words", "word", [])
    import rnnkit

    task = rnnkit.load(str(path), **({} if checkpoint is None else {"checkpoint": checkpoint}))
    return task_vectors(task, side=side, source=str(path))


def task_vectors(task: Any, *, side: str = "source", source: str = "<task>") -> RunVectors:
    """``run_vectors`` for a fitted task object."""
    model = getattr(task, "model_", None)
    name = getattr(task, "name", type(task).__name__)
    if hasattr(task, "source_vocab_"):                         # sequence to sequence: two vocabularies
        vocab = task.source_vocab_ if side == "source" else task.target_vocab_
        layer = "src_embed" if side == "source" else "tgt_embed"
        table = _embedding(model, layer)
        tokens = {i: t for i, t in enumerate(vocab.itos)}
        level = {"char": "character"}.get(vocab.level, vocab.level)        # word, character or subword
    else:
        tokenizer = _tokenizer_of(task)
        table = _embedding(model, "embed") if tokenizer is not None else None
        if tokenizer is None or table is None:
            raise ValueError(f"{source}: a {name} run without a word embedding (its model reads "
                             f"{_what_it_reads(task)}); expected a run whose model starts from an embedding "
                             f"layer: a word or character language model, a text classifier or tagger, a "
                             f"sequence-to-sequence model, or a word2vec run")
        tokens = dict(tokenizer.index_word)
        level = "character" if getattr(tokenizer, "char_level", False) else "word"
        layer = "embed"
    weights = table.weight.detach().cpu().float().numpy()     # (rows, D)
    words, rows, left_out = [], [], []
    for i in range(weights.shape[0]):
        token = tokens.get(i)
        if token is None:                                      # padding (row 0 of a Tokenizer's ids)
            continue
        if token in SPECIAL_TOKENS:
            left_out.append(token)
            continue
        words.append(token)
        rows.append(i)
    if not words:
        raise ValueError(f"{source}: its {layer} layer holds no word rows (only {', '.join(left_out) or 'padding'})")
    emb = Embeddings(words, weights[rows], source=f"{source} ({layer})")
    return RunVectors(emb, name, layer, level, left_out)


def _embedding(model: Any, layer: str):
    """The model's embedding layer ``layer``, or None (a bag of words, ROCKET, a series model have none)."""
    import torch

    table = getattr(model, layer, None)
    return table if isinstance(table, torch.nn.Embedding) else None


def _tokenizer_of(task: Any) -> Any:
    """The Tokenizer that numbers the embedding's rows: ``tokenizer_`` (textgen, classify) or a tagger's
    ``vocab_.words``; None when the task has none (a series model)."""
    tokenizer = task.__dict__.get("tokenizer_")
    if tokenizer is None and task.__dict__.get("vocab_") is not None:
        tokenizer = getattr(task.vocab_, "words", None)
    return tokenizer if hasattr(tokenizer, "index_word") else None


def _what_it_reads(task: Any) -> str:
    kind = task.__dict__.get("kind_")
    if kind == "series" or task.__dict__.get("mean_") is not None:
        return "numeric series, not words"
    model = getattr(task.config, "model", None) if hasattr(task, "config") else None
    return f"its inputs without one ({model} model)" if model else "its inputs without one"


def write_vectors(vectors: RunVectors, path: str | Path) -> Path:
    """Write the found vectors in GloVe's text format."""
    from rnnkit.tasks.embeddings.data import write_glove_text

    emb = vectors.embeddings
    return write_glove_text(path, emb.words, np.asarray(emb.vectors))
