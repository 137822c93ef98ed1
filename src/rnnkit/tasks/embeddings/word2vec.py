"""word2vec in PyTorch: word vectors learned from a text (`rnnkit embed train`), written as GloVe text.

Skip-gram with negative sampling and subsampling of frequent words (Mikolov et al. 2013), trained by the one
Trainer (``rnnkit.training``): budgets (``--epochs``, ``--max-minutes``), the learning-rate schedule, the
progress bar, checkpoints and an exact ``--resume``, Ctrl-C and SIGTERM, as every rnnkit training run.
The pieces: ``data.read_corpus`` (the text as word ids, once), ``data.SkipGramData`` (each epoch's examples,
drawn a batch at a time), ``model.SkipGram`` (the loss), and here ``Word2Vec``, which puts them together::

    from rnnkit.tasks.embeddings.word2vec import Word2Vec

    w2v = Word2Vec(embedding_size=100, window=5, epochs=5).fit("corpus.txt", run_dir="runs/w2v")
    w2v.embeddings_.neighbors("king")          # an Embeddings table: neighbours, analogies, evaluation
    w2v.save_vectors("vectors.txt")            # GloVe text: `--embeddings vectors.txt` everywhere
    w2v.predict("coffee")                      # the context words the model predicts around a word

How it is fast on a CPU: a batch holds a few thousand center words; per center word, its context words
share the center word's negatives (Ji et al. 2016), so the whole batch is one batched matrix product; the
examples are drawn with numpy over the whole batch at once; and plain SGD (word2vec's own optimizer) on
sparse gradients updates only the rows a batch touched. The loss is summed over (word, context) pairs, so
``--lr`` is word2vec's per-pair rate (0.025), decaying to ``--min-lr`` over the run.

A run directory (``--run-dir``) holds config.json in rnnkit's one schema (task ``word2vec``), vocab.json,
final.safetensors (both tables) and the Trainer's checkpoint. Word2Vec is not a registered Task: its product
is the vectors file, not a model to serve, so ``rnnkit.load`` does not read its runs; ``Word2Vec.load`` and
``rnnkit embed predict|export`` do.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnkit import _checks
from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.schema import check_config_digest, check_run_files, file_digests, write_run_config
from rnnkit.runs.weights import load_weights, save_weights
from rnnkit.tasks.base import FINAL_WEIGHTS, RESUME_FIELDS, data_digest, replace_config
from rnnkit.tasks.embeddings.config import Word2VecConfig
from rnnkit.tasks.embeddings.data import SkipGramData, read_corpus, write_glove_text
from rnnkit.tasks.embeddings.model import SkipGram
from rnnkit.tasks.embeddings.task import Embeddings

TASK_NAME = "word2vec"             # config.json's "task" of a word2vec run
VOCAB_FILE = "vocab.json"


class Word2Vec:
    """Skip-gram word vectors learned from a text; see the module docstring.

    ``Word2Vec(config=None, **overrides)`` stores a :class:`Word2VecConfig` (flat names: ``window=8``,
    ``epochs=3``); ``fit`` learns ``words_`` (the vocabulary, most frequent first), ``counts_`` and
    ``model_`` (the two tables), and ``embeddings_`` is the word vectors as an ``Embeddings`` table."""

    name = TASK_NAME

    def __init__(self, config: Word2VecConfig | None = None, **overrides: Any):
        config = Word2VecConfig() if config is None else config
        if not isinstance(config, Word2VecConfig):
            _checks.fail("config", config, "a Word2VecConfig or None")
        self.config = replace_config(config, **overrides) if overrides else config

    @staticmethod
    def command() -> str:
        return "rnnkit embed train"

    # ----------------------------------------------------------------------------------------- training

    def fit(self, corpus: str | None = None, *, run_dir: str | Path | None = None, resume: bool = False,
            dry_run: bool = False, progress: bool | None = None) -> Word2Vec:
        """Read ``corpus`` (a text file or a text dataset; default: the config's), build the vocabulary, train,
        and save the run in ``run_dir`` (when given); ``resume=True`` goes on with the run saved there (the
        same corpus: its digest is checked). ``dry_run`` trains one step: a smoke test. Returns ``self``."""
        from rnnkit.training.phases import phase
        from rnnkit.training.trainer import Trainer, seed_everything

        cfg = self.config
        if corpus is not None:
            cfg = self.config = dataclasses.replace(cfg, corpus=str(corpus))
        if cfg.corpus is None:
            _checks.fail("corpus", None, "a text file (one sentence or document per line) or a text dataset "
                                         "such as imdb: --corpus FILE")
        if resume and run_dir is None:
            _checks.fail("run_dir", None, "the run directory to resume")
        if resume and dry_run:
            _checks.fail("dry_run", True, "False with resume=True (a dry run is a fresh smoke test)")
        start = time.monotonic()
        data = read_corpus(cfg.corpus, encoding=cfg.encoding, lower=cfg.lower, min_count=cfg.min_count,
                           num_words=cfg.num_words, window=cfg.window)
        digest = data_digest(data.words, data.counts, data.ids, data.lines)
        if resume:
            _check_same_corpus(run_dir, digest, data.source)
        phase("data")
        if progress is not False:
            print(f"{data.summary()} ({time.monotonic() - start:.1f} s)", file=sys.stderr)
        train = cfg.train
        if dry_run:
            train = dataclasses.replace(train, epochs=1, max_steps=1, max_minutes=None, schedule="constant")
        # Sparse gradients (only the rows a batch touched) need an optimizer that takes them: plain SGD, without
        # momentum (its buffer would grow by every step's rows), weight decay or clipping (dense operations).
        sparse = (train.optimizer == "sgd" and train.momentum == 0 and train.weight_decay == 0
                  and train.clip_grad_norm is None)
        if progress is not False:
            why = "" if sparse else (f" (--optimizer {train.optimizer}, momentum, weight decay or clipping need them; "
                                     f"plain sgd updates only the rows a step touched, 1.1-1.3x faster)")
            print(f"skip-gram: {len(data.words):,} words x {cfg.embedding_size}, window {cfg.window}, "
                  f"{cfg.negative} negatives, {'sparse' if sparse else 'dense'} gradients{why}", file=sys.stderr)
        examples = SkipGramData(data, window=cfg.window, negative=cfg.negative, subsample=cfg.subsample,
                                batch_size=train.batch_size, seed=train.seed)
        seed_everything(train.seed)
        model = SkipGram(len(data.words), cfg.embedding_size, sparse=sparse, update_cap=cfg.update_cap)
        self.words_, self.counts_, self.model_ = data.words, data.counts, model
        self.data_ = {"source": data.source, "digest": digest, "lines": data.num_lines, "tokens": data.tokens,
                      "distinct": data.distinct, "in_vocabulary": int(data.ids.size),
                      **({"dry_run": True} if dry_run else {})}
        if run_dir is not None and not resume:
            # config.json (not finished) and the vocabulary first: a stopped run can be resumed.
            self._write_run(RunDir(run_dir), finished=False)
            phase("config")
        phase("model")
        trainer = Trainer(model, train, run_dir=run_dir, progress=progress, items_name="words",
                          caller_says_resume=True)
        self.trainer_, self.words_trained_ = trainer, 0

        def loss(model: SkipGram, batch: dict, state: Any) -> tuple[torch.Tensor, None, int]:
            self.words_trained_ += batch["words"]          # corpus words this call trained on (for words/s)
            return _loss(model, batch, state)

        began = time.monotonic()
        try:
            trainer.fit(lambda epoch: _Tensors(examples.epoch(epoch)), loss, resume=resume)
        except KeyboardInterrupt:
            # SIGTERM: the Trainer saved its checkpoint and raised again; say how to go on before the exit.
            if run_dir is not None and trainer.interrupted:
                print(f"resume with: {self.command()} --run-dir {run_dir} --resume", file=sys.stderr)
            raise
        model.eval()
        self.train_seconds_ = time.monotonic() - began     # this call's (a resumed run's words are this call's)
        if not trainer.interrupted and run_dir is not None:
            phase("save")
            self.save(run_dir)
        return self

    # ------------------------------------------------------------------------------------------ results

    @property
    def embeddings_(self) -> Embeddings:
        """The word vectors (the ``words`` table) as an Embeddings table, most frequent word first."""
        vectors = self.model_.words.weight.detach().cpu().numpy()
        return Embeddings(self.words_, vectors, source=str(self.config.corpus or "word2vec"))

    def save_vectors(self, path: str | Path) -> Path:
        """Write the word vectors in GloVe's text format (atomically: a kill leaves the old file or none)."""
        return write_glove_text(path, self.words_, self.model_.words.weight.detach().cpu().numpy())

    def predict(self, word: str, num_results: int = 10) -> list[tuple[str, float]]:
        """The words the model expects around ``word``: sigmoid(word . context) for every word, best first.

        This is what skip-gram is trained to do (first-order: words seen next to this one); neighbours
        (``embeddings_.neighbors``) are something else (second-order: words whose own contexts are alike)."""
        _checks.check_int("num_results", num_results, min=1, cap=_checks.MAX_RESULTS)
        emb = self.embeddings_
        i = emb.require(word)
        with torch.no_grad():
            scores = torch.sigmoid(self.model_.contexts.weight @ self.model_.words.weight[i]).cpu().numpy()
        best = np.argsort(-scores, kind="stable")[:num_results]
        return [(self.words_[j], float(scores[j])) for j in best]

    # --------------------------------------------------------------------------------------- run files

    def _write_run(self, run: RunDir, *, finished: bool) -> None:
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_json(VOCAB_FILE, {"words": list(self.words_), "counts": [int(c) for c in self.counts_]})
        files = file_digests(run, [FINAL_WEIGHTS, VOCAB_FILE]) if finished else None
        write_run_config(run, TASK_NAME, dataclasses.asdict(self.config), self.data_,
                         {"train_seconds": getattr(self, "train_seconds_", 0.0)}, finished=finished, files=files)

    def save(self, run_dir: str | Path) -> None:
        """Write the finished run: both tables, the vocabulary, and config.json marked finished."""
        run = RunDir(run_dir)
        run.path.mkdir(parents=True, exist_ok=True)
        save_weights(run.file(FINAL_WEIGHTS), self.model_.state_dict())
        self._write_run(run, finished=True)

    @classmethod
    def load(cls, run_dir: str | Path, *, checkpoint: str | None = None) -> Word2Vec:
        """A word2vec run directory, finished (or its Trainer's checkpoint: ``checkpoint="last"``)."""
        run = RunDir(run_dir)
        doc = read_word2vec_config(run)
        obj = cls(_config_from_doc(doc, run))
        vocab = run.read_json(VOCAB_FILE)
        obj.words_, obj.counts_ = list(vocab["words"]), np.asarray(vocab["counts"], dtype=np.int64)
        obj.data_ = doc.get("data", {})
        obj.model_ = SkipGram(len(obj.words_), obj.config.embedding_size, sparse=False)
        if checkpoint is not None:
            _checks.check_choice("checkpoint", checkpoint, ("best", "last"))
            run.load_checkpoint(obj.model_)     # no validation: the best checkpoint is the last
        elif doc.get("finished") is not True:
            raise ValueError(f"{run.path}: its training has not finished (config.json is not marked finished); "
                             f"expected a finished run: finish it with {cls.command()} --run-dir {run.path} "
                             f"--resume, or use its last checkpoint (--checkpoint last)")
        else:
            check_run_files(run, doc)
            load_weights(run.file(FINAL_WEIGHTS), obj.model_)
        obj.model_.eval()
        return obj


def _loss(model: SkipGram, batch: dict, state: Any) -> tuple[torch.Tensor, None, int]:
    """The Trainer's loss of one batch: ``(loss, no state, corpus words covered)``."""
    total, pairs = model(batch["contexts"], batch["context_mask"], batch["targets"], batch["target_mask"])
    mean = total / pairs.clamp(min=1)
    # SGD on the sum over pairs is word2vec's update (--lr is its per-pair rate); the value the Trainer shows
    # and logs is the mean per pair, which does not grow with the batch: the gradient is the sum's.
    return total + (mean - total).detach(), None, batch["words"]


class _Tensors:
    """An epoch's batches (data.EpochBatches) with their arrays as tensors: what the Trainer iterates."""

    def __init__(self, batches):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            yield {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------------------
# Run directories: reading one, and what a resumed run may change
# ---------------------------------------------------------------------------------------------------------

def is_word2vec_run(path: str | Path) -> bool:
    """Whether ``path`` is a folder whose config.json says it holds a word2vec run."""
    run = RunDir(path)
    if not run.config_path.is_file():
        return False
    try:
        return run.read_config().get("task") == TASK_NAME
    except (ValueError, OSError):
        return False


def read_word2vec_config(run: RunDir) -> dict:
    """config.json of a word2vec run, its digest checked."""
    doc = run.read_config()
    check_config_digest(run, doc)
    if doc.get("task") != TASK_NAME:
        raise ValueError(f"{run.config_path}: this run directory holds a {doc.get('task')!r} run, expected a "
                         f"word2vec run ({Word2Vec.command()})")
    if "config" not in doc:
        raise ValueError(f"{run.config_path}: no 'config'; expected a word2vec run as rnnkit wrote it")
    return doc


def _config_from_doc(doc: dict, run: RunDir) -> Word2VecConfig:
    from rnnkit.config import config_from_dict
    return config_from_dict(Word2VecConfig, doc["config"], source=str(run.config_path))


def resume_config(run_dir: str | Path, given: dict[str, Any]) -> Word2VecConfig:
    """The config a resumed run goes on with: its own, with only the budgets in ``given`` changed (the flags
    typed on the command line: a resumed run may change its budgets, never its model or its data)."""
    run = RunDir(run_dir)
    doc = read_word2vec_config(run)
    if doc.get("data", {}).get("dry_run"):
        raise ValueError(f"{run.path}: a dry run (--dry-run), which cannot be resumed; expected a run trained "
                         f"without --dry-run: train it again (--overwrite)")
    allowed = set(RESUME_FIELDS)
    fixed = sorted(set(given) - allowed)
    if fixed:
        name = fixed[0]
        _checks.fail("--" + name.replace("_", "-"), given[name], "nothing but a budget with --resume: the run keeps "
                     "its own config; a resumed run may change only " + ", ".join(
                         "--" + f.replace("_", "-") for f in sorted(allowed)))
    return replace_config(_config_from_doc(doc, run), **given)


def _check_same_corpus(run_dir: str | Path, digest: str, source: str) -> None:
    run = RunDir(run_dir)
    recorded = read_word2vec_config(run).get("data", {}).get("digest")
    if recorded is not None and recorded != digest:
        raise ValueError(f"{source}: the corpus changed since the run in {run_dir} began (digest {recorded[:19]}... "
                         f"then, {digest[:19]}... now); expected the same text to resume: put it back, or start a "
                         f"new run (another --run-dir, or --overwrite)")
