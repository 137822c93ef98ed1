"""Start a classifier or a tagger from a word-level language model (the ULMFiT recipe, Howard & Ruder 2018).

The recipe, in the order a fit meets it:

1. ``rnnkit textgen train --level word`` learns to predict the next word of unlabelled text (the task's own
   training texts, plus any ``--unlabeled FILE``): its embedding and recurrent layers learn what words mean
   and how a review goes on.
2. ``--encoder-from RUN`` copies them into the new model (:func:`read_encoder`, :func:`map_embeddings`): the
   recurrent layers as they are, the embedding row by row through the words (the classifier's vocabulary
   comes from its own labelled texts; a word the LM never saw starts at the mean of the LM's vectors, and
   how many there are is said).
3. Fine-tuning: discriminative learning rates (:func:`param_groups`: the head at the schedule's rate, each
   layer below it 2.6 times slower, the embedding slowest), gradual unfreezing (:class:`Unfreezing`: the head
   alone first, then one more layer group each epoch) and a slanted-triangular schedule (``--schedule slanted``
   in rnnkit.training.schedules).

A model that reads both directions (bilstm, bigru) would need a backward language model too: refused here
(see docs/transfer.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit import _checks

# ULMFiT's discriminative factor: each layer group below the head learns 2.6 times slower than the one above.
LR_DECAY = 2.6
# The classifier models a forward language model can start: the LM's cell read in one direction.
MODEL_OF_CELL = {"lstm": "lstm", "gru": "gru", "rnn": "rnn", "mingru": "mingru", "minlstm": "minlstm"}


def read_encoder(path: str | Path, *, task: str) -> dict[str, Any]:
    """The settings of the language-model run at ``path`` (its config.json's ``config``), checked: a finished
    run of textgen, word level, with a cell a ``task`` model can read. One-line errors name what differs."""
    from rnnkit.runs.checkpoint import RunDir
    from rnnkit.runs.schema import is_finished, read_run_config

    run = RunDir(path)
    if not run.path.is_dir():
        raise FileNotFoundError(f"encoder_from={str(path)!r}: no such run directory; expected a run of "
                                f"`rnnkit textgen train --level word`")
    if not run.config_path.is_file():
        raise ValueError(f"encoder_from={str(path)!r}: not a run directory (no config.json); expected a run of "
                         f"`rnnkit textgen train --level word`")
    doc = read_run_config(run)
    if doc.get("task") != "textgen":
        raise ValueError(f"encoder_from={str(path)!r}: a run of {doc.get('task')!r}; expected a language-model "
                         f"run of textgen (`rnnkit textgen train --level word`)")
    lm = doc.get("config", {})
    if lm.get("level") != "word":
        raise ValueError(f"encoder_from={str(path)!r}: a {lm.get('level')}-level language model; expected a "
                         f"word-level one (`rnnkit textgen train --level word`): a {task} reads words")
    if lm.get("cell") not in MODEL_OF_CELL:
        raise ValueError(f"encoder_from={str(path)!r}: cell {lm.get('cell')!r}; expected one of "
                         f"{', '.join(MODEL_OF_CELL)} (the cells a {task} model has)")
    if not is_finished(doc):
        raise ValueError(f"encoder_from={str(path)!r}: its training did not finish; expected a finished run "
                         f"(resume it with --resume, or train it again)")
    return lm


def settle(asked: dict[str, Any], defaults: dict[str, Any], lm: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The model settings a fine-tuned model takes from the LM: ``asked`` (the config's values) where they equal
    the LM's or were left at ``defaults``, else an error that says every difference."""
    differ = [f"{k}={v!r} (the LM's is {lm[k]!r})" for k, v in asked.items()
              if v != lm[k] and v != defaults.get(k)]
    if differ:
        raise ValueError(f"encoder_from={str(path)!r}: {'; '.join(differ)}; expected the language model's "
                         f"settings (leave them out to take the LM's)")
    return {k: lm[k] for k in asked}


def load_encoder(path: str | Path):
    """(tokenizer, embedding (V, E) float32 array, {name: tensor} of the recurrent layer ``rnn.*``) of the
    language-model run at ``path`` (its finished weights, digests checked)."""
    from rnnkit.tasks.textgen.task import TextGenerator

    lm = TextGenerator.load(str(path))
    state = lm.model_.state_dict()
    rnn = {k[len("rnn."):]: v.detach().clone() for k, v in state.items() if k.startswith("rnn.")}
    return lm.tokenizer_, state["embed.weight"].detach().float().numpy(), rnn


def map_embeddings(lm_tokenizer, lm_vectors: np.ndarray, word_index: dict[str, int],
                   vocab_size: int) -> tuple[np.ndarray, int, list[str]]:
    """The (vocab_size, E) embedding of a new vocabulary (``word_index``, ids < ``vocab_size``) taken from a
    language model's: a word the LM has a row for gets that row; a word it never saw (or cut as rare) gets the
    mean of the LM's word rows, so it starts as an average word rather than as noise. Row 0 (padding) is zero.
    Returns (matrix, words found, words the LM never saw, in the new vocabulary's order)."""
    lm_index, lm_size = lm_tokenizer.word_index, lm_tokenizer.vocab_size
    mean = lm_vectors[1:lm_size].mean(0)                                  # (E,): padding row 0 left out
    out = np.zeros((vocab_size, lm_vectors.shape[1]), dtype=np.float32)
    found, missing = 0, []
    for word, i in word_index.items():
        if i >= vocab_size:
            continue
        j = lm_index.get(word)
        if j is not None and j < lm_size:
            out[i] = lm_vectors[j]
            found += 1
        else:
            out[i] = mean
            missing.append(word)
    return out, found, missing


def say_mapping(found: int, missing: list[str], path: str | Path, lm_words: int) -> str:
    """The one line that says how the vocabularies met (printed by the task, kept in its run record)."""
    total = found + len(missing)
    line = (f"encoder {path}: {found} of {total} vocabulary words have the language model's vectors "
            f"(its vocabulary: {lm_words})")
    if missing:
        share = len(missing) / max(1, total)
        line += (f"; {len(missing)} ({share:.0%}) it never saw (e.g. {', '.join(missing[:5])}) start at the "
                 f"mean of its vectors and are learned in fine-tuning")
    return line


def copy_recurrent(rnn_module, tensors: dict[str, Any], path: str | Path) -> None:
    """Load the LM's recurrent weights into ``rnn_module`` (an :class:`rnnkit.nn.RNN` of the same cell, width
    and depth), shapes checked first."""
    own = rnn_module.state_dict()
    bad = [f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
           if k not in tensors or tuple(tensors[k].shape) != tuple(v.shape)]
    if bad or set(tensors) - set(own):
        raise ValueError(f"encoder_from={str(path)!r}: its recurrent weights do not fit this model "
                         f"({'; '.join(bad[:3]) or 'extra weights ' + ', '.join(sorted(set(tensors) - set(own)))})")
    rnn_module.load_state_dict(tensors)


def param_groups(groups: list[list], decay: float = LR_DECAY) -> list[dict[str, Any]]:
    """Layer groups, top (the head) first -> optimizer parameter groups whose ``lr_scale`` is 1/decay^depth:
    the Trainer multiplies the schedule's rate by it (discriminative learning rates)."""
    return [{"params": list(ps), "lr_scale": decay ** -depth} for depth, ps in enumerate(groups) if ps]


class Unfreezing:
    """Gradual unfreezing: at first only the top group (the head) trains; after each epoch one more group
    below it does, until all do (``groups`` top first). Frozen parameters have no gradient, and the optimizer
    skips them."""

    def __init__(self, groups: list[list]):
        self.groups = [g for g in groups if g]
        self.trainable = 0
        self.steps = 0                  # updates since the last group was unfrozen (--unfreeze-every)
        self.advance()

    def advance(self) -> bool:
        """Unfreeze the next group; False when all train already."""
        if self.trainable >= len(self.groups):
            return False
        self.trainable += 1
        for k, group in enumerate(self.groups):
            for p in group:
                p.requires_grad_(k < self.trainable)
        return True

    def all(self) -> None:
        while self.advance():
            pass


def check_unlabeled(path: str | Path, encoding: str = "utf-8") -> str:
    """The text of an ``--unlabeled`` file: refused when it is missing, empty, binary (NUL bytes, or not
    text in ``encoding``), or holds no word."""
    _checks.require_file("unlabeled", str(path))
    raw = Path(path).read_bytes()
    if not raw.strip():
        raise ValueError(f"unlabeled={str(path)!r}: an empty file; expected unlabelled text, one document (or "
                         f"paragraph) per line")
    if b"\0" in raw[:1 << 20]:
        raise ValueError(f"unlabeled={str(path)!r}: a binary file (it holds NUL bytes); expected plain text "
                         f"in {encoding}")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        raise ValueError(f"unlabeled={str(path)!r}: not {encoding} text (byte {e.start}: "
                         f"{raw[e.start:e.start + 1]!r}); expected plain text (or give --encoding)") from None
    if not any(c.isalnum() for c in text):
        raise ValueError(f"unlabeled={str(path)!r}: no words in {len(text):,} characters; expected unlabelled "
                         f"text")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def note(line: str) -> None:
    print(line, file=sys.stderr)
