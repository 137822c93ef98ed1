"""Sequence to sequence (many to many, unaligned): number words to digits, spelling to phonemes, your pairs.

An encoder reads the source; a decoder writes the target one token at a time from ``<go>`` until
``<eos>``, attending over the encoder's outputs; beam search keeps the best partial outputs::

    from rnnkit.tasks import Seq2Seq
    s2s = Seq2Seq(attention="general", max_minutes=5).fit()          # number-phrases, French words -> digits
    s2s.translate("quatre vingt dix sept")                            # '97'
    s2s.translate(["cent un", "mille"], beam=5, num_results=2, details=True)   # Translation objects with scores
    s2s.evaluate(pairs)                                               # exact match, BLEU, chrF, error rates
    s2s.save("runs/numbers"); Seq2Seq.load("runs/numbers"); rnnkit.load("runs/numbers")

The main path reads in three places: the model (``model.py`` over :mod:`rnnkit.nn.attention`), the shared
Trainer (teacher forcing through the one time loop, the loss over the target tokens only: padding never
counts), and generation (greedy and sampling by :func:`rnnkit.generation.stateful.decode`, beam search by
:func:`rnnkit.generation.search.batch_beam_search`, both over :meth:`Seq2SeqModel.step`). ``data.py`` holds
the pairs, the hash splits, the vocabularies and the batches; ``cli.py`` is ``rnnkit seq2seq``.

Choices a user should know about:

* Training options are the shared :class:`~rnnkit.training.TrainConfig`, nested as ``config.train``; keyword
  arguments and CLI flags take them by their flat names. The model keeps the weights of the epoch with the
  lowest validation loss; ``val_exact_match`` (greedy, on up to ``val_decode`` validation sources) is
  reported beside it.
* Pairs with an empty source or target are skipped and counted (``data_["skipped"]``), as are training
  pairs whose source is longer than ``max_source_length`` when that is set. At translate time an empty
  source is an error naming it, and a source longer than the model's maximum (``max_source_length``, by
  default the longest training source) is **cut to it, with a warning** naming the input: a batch of inputs
  is not lost to one long line, and the cut is counted in ``Translation.truncated``.
* Source tokens the vocabulary lacks become ``<unk>``; they are counted (``Translation.unknown``, and
  ``unknown_tokens`` in ``evaluate``).
* ``max_minutes`` holds the whole fit: reading the data, training, the last validation pass and the test
  report (the CLI counts its own start-up too). The Trainer gets what is left once the data is read and the
  time of the last validation pass and of the report is set aside (measured on the untrained model, which
  decodes every source to its cap, twice what a trained one writes); the report then decodes the test sources
  that fit in the time left, at the speed the last validation pass decoded (a sample, said in ``sample_of``,
  when not all of them fit).
* An output is at most ``2 x length_ratio_ x source tokens + 10`` tokens (``length_ratio_``: the training
  targets' tokens per source token; never more than twice the longest training target + 10): an output that
  loops stops near the length it should have had, and decoding a large test part to a fixed cap of a hundred
  tokens no longer takes minutes. ``evaluate`` counts the outputs that reached their cap (``capped``).
* Decoding runs on the CPU (a model trained on a GPU is copied there), one batch of inputs at a time:
  greedy by default, ``greedy=False`` draws from the processed distribution, ``beam=N`` decodes the batch's
  inputs and their N beams together. Beam scores follow GNMT: ``length_penalty`` (α) and
  ``coverage_penalty`` (β), both 0 by default (plain summed log-probabilities).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit import _checks
from rnnkit.config import renamed
from rnnkit.generation.processors import LogitsProcessorList, make_processors
from rnnkit.generation.search import batch_beam_search, expand_rows, make_generator
from rnnkit.generation.stateful import decode
from rnnkit.report.metrics import bleu_chrf, edit_distance_rates
from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.io import atomic_write_json
from rnnkit.tasks.base import Prepared, Task, training_record
from rnnkit.training import distributed
# The configs live in config.py (no torch: --help reads them); imported here too for the names they had.
from rnnkit.tasks.seq2seq.config import (ATTENTION_KINDS, CELLS, DATASETS, LEVEL_CHOICES,  # noqa: F401
                                         TRAIN_DEFAULTS, Seq2SeqConfig, TranslateRequest)
from rnnkit.tasks.seq2seq.data import (EOS, GO, PairSplits, Vocab, auto_levels, batches, check_pairs,
                                       choose_levels, clean_pairs, decoding_cap, encode_pairs, group_references,
                                       length_ratio, load_pairs, make_batch, normal_text, split_pairs, splitter,
                                       tokenize)
from rnnkit.tasks.seq2seq.model import Seq2SeqModel
from rnnkit.text import length_buckets
from rnnkit.training.progress import track

TOKENIZER_FILE = "tokenizer.json"        # both vocabularies: {"source": {...}, "target": {...}}
TEST_REPORT = "test_metrics.json"        # the report on the test pairs after training
# A dry run: this many pairs of each part (training, validation, test) are used, of data read whole.
DRY_RUN_PAIRS = {"train": 256, "val": 16, "test": 8}
EXAMPLES = 3                             # decoded examples in a report
# --max-minutes holds the test report: it gets at most this share of the budget (a sample of the test
# sources when all of them would not fit). The fit ends early enough to leave FINAL_SECONDS (saving the model),
# plus, when the budget began before fit (the CLI's start-up: the interpreter, importing torch), half as long as
# that start took: leaving the process takes about that (4 s after a 13 s start on a busy 2-core machine).
REPORT_SHARE = 0.1
FINAL_SECONDS = 1.0
EXIT_SHARE = 0.5


@dataclass
class Hypothesis:
    """One output for one source."""

    text: str
    tokens: list[str]
    score: float                      # beam: the GNMT score that ranked it; greedy/sampling: its log-probability
    log_prob: float                   # summed log-probabilities of its tokens and <eos> (after the processors)
    attention: Optional[np.ndarray] = None   # (output steps, <eos> included; source tokens) with return_attention
    capped: bool = False              # it ran to the decoding cap (max_tokens) rather than ending by itself


@dataclass
class Translation:
    """The outputs for one source, best first, and what happened to the source on the way in."""

    source: str
    source_tokens: list[str]          # as the model read them (<unk> for unseen ones, cut to the maximum)
    hypotheses: list[Hypothesis]
    unknown: int = 0                  # source tokens the vocabulary lacks (read as <unk>)
    truncated: int = 0                # source tokens cut off beyond max_source_length

    @property
    def text(self) -> str:
        return self.hypotheses[0].text


class Seq2Seq(Task, name="seq2seq"):
    """An attention encoder-decoder: ``fit`` pairs, ``translate`` texts, ``evaluate`` pairs.

    ``Seq2Seq(config)`` or ``Seq2Seq(attention="dot", lr=1e-3, ...)`` (fields of :class:`Seq2SeqConfig` and of
    its ``train`` options). Learned after ``fit`` or ``load``: ``source_vocab_``, ``target_vocab_``,
    ``model_``, ``max_source_length_``, ``max_target_length_``; after ``fit`` also ``trainer_``,
    ``history_``, ``metrics_`` (validation metrics of the weights it holds) and ``data_``.
    """

    config_class = Seq2SeqConfig
    train_command = "rnnkit seq2seq train"
    run_files = (TOKENIZER_FILE, "attention.png")
    side_files = (TOKENIZER_FILE,)
    legacy_weights = ("seq2seq.safetensors",)     # the finished model's file before FINAL_WEIGHTS
    endpoint = "translate"                # the Task protocol's uniform apply: see the end of the class
    request_class = TranslateRequest

    # -- training (the sequence is Task.fit's; these are its steps) ---------------------------------------

    def fit(self, pairs: Sequence[tuple[str, str]] | None = None,
            validation_pairs: Sequence[tuple[str, str]] | None = None, *,
            test_pairs: Sequence[tuple[str, str]] | None = None, run_dir: str | None = None,
            resume: bool = False, dry_run: bool = False, progress: bool | None = None,
            budget_start: float | None = None) -> "Seq2Seq":
        """Build the vocabularies and the model from the training pairs, train, and report on the test pairs;
        returns ``self``.

        ``pairs``: ``(source, target)`` strings; None loads ``config.tsv`` or ``config.dataset`` with its
        validation and test parts (held out by hash, or ``val_tsv`` and ``test_tsv``). Given pairs without
        ``validation_pairs`` give up ``val_frac`` of their sources (by hash) for validation. The test pairs
        (``test_pairs``, or the data's test part) are decoded after training into ``test_metrics_`` (and
        ``test_metrics.json``). ``max_minutes`` holds the whole fit: reading the data, training, the last
        validation and the test report. ``run_dir`` gets checkpoints, metrics.jsonl, loss.png, config.json,
        tokenizer.json, the finished model and the test report; ``resume=True`` continues the run saved there.
        ``dry_run`` trains one step on a sample of the data and decodes a handful of pairs: seconds, for smoke
        tests. ``budget_start``: the ``time.monotonic()`` from which ``max_minutes`` counts (the CLI passes the
        moment its command began; default: now).
        """
        started = time.monotonic() if budget_start is None else budget_start
        return super().fit(pairs, run_dir=run_dir, resume=resume, dry_run=dry_run, progress=progress,
                           validation_pairs=validation_pairs, test_pairs=test_pairs, started=started,
                           startup=time.monotonic() - started, sample=dry_run)

    def _read_data(self, pairs: Sequence[tuple[str, str]] | None, *, run_dir: str | None, resume: bool,
                   validation_pairs: Sequence[tuple[str, str]] | None = None,
                   test_pairs: Sequence[tuple[str, str]] | None = None, started: float | None = None,
                   startup: float = 0.0, sample: bool = False) -> Prepared:
        """The training and validation pairs that are kept (``train_pairs``, ``val_pairs``, counted in
        ``skipped``) and the test pairs, with the token levels and, for subwords, the vocabularies
        (``vocabs``: the run's own on resume). ``sample``: a dry run's few pairs of each part."""
        cfg = self.config
        if pairs is None:
            splits = load_pairs(cfg)
        else:
            pairs = list(pairs)
            if validation_pairs is None:
                splits = split_pairs(pairs, None, cfg.val_frac, 0.0, "pairs passed to fit")
            else:
                splits = PairSplits(pairs, list(validation_pairs), [], "pairs passed to fit")
            splits.test = list(check_pairs(list(test_pairs))) if test_pairs is not None else []
        chosen, pieces = "", (None, None)
        if resume:
            RunDir(run_dir).require(TOKENIZER_FILE)
            vocabs = _read_vocabs(RunDir(run_dir))
            levels = (vocabs[0].level, vocabs[1].level)
        else:
            if pairs is None and cfg.tsv is None:
                levels = auto_levels(cfg)            # a named dataset: its levels are known
            else:
                # From the whole training part (a dry run too: it says what the real run will choose).
                levels, pieces, chosen = choose_levels(check_pairs(splits.train), cfg)
            vocabs = (None, None)
        if sample:
            splits = dataclasses.replace(splits, **{part: getattr(splits, part)[:n]
                                                    for part, n in DRY_RUN_PAIRS.items()})
        if not resume:
            # Subwords are learned first, from every training text (a source's length is counted in them);
            # characters and words are counted in the pairs that are kept, below.
            texts = list(zip(*check_pairs(splits.train))) or [(), ()]
            vocabs = tuple(Vocab.build(side, level, cfg.num_words or n) if level == "subword" else None
                           for side, level, n in zip(texts, levels, pieces))
        self.source_level_, self.target_level_ = levels
        split_source, split_target = (splitter(level, vocab) for level, vocab in zip(levels, vocabs))
        train_pairs, skipped = clean_pairs(splits.train, split_source, split_target, cfg.max_source_length)
        val_pairs, val_skipped = clean_pairs(splits.val, split_source, split_target, cfg.max_source_length)
        if not train_pairs:
            raise ValueError(f"{splits.source}: no training pairs ({len(splits.train)} before skipping "
                             f"{_skipped_text(skipped) or 'none'}); expected at least one (source, target) "
                             f"pair with a non-empty source and target")
        if not val_pairs:
            raise ValueError(f"{splits.source}: no validation pairs (val_frac={cfg.val_frac} of "
                             f"{len(splits.train) + len(splits.val)} pairs); expected at least one: pass more "
                             f"pairs, a larger val_frac, or validation_pairs")
        return Prepared(splits.source, (train_pairs, val_pairs), splits=splits, vocabs=vocabs, levels=levels,
                        train_pairs=train_pairs, val_pairs=val_pairs, test_pairs=splits.test, chosen=chosen,
                        skipped={k: skipped[k] + val_skipped[k] for k in skipped}, given=pairs is not None,
                        started=time.monotonic() if started is None else started, startup=startup, deadline=None,
                        report_seconds=0.0, decode_rate=None, run_dir=run_dir)

    def _prepare(self, prepared: Prepared, *, run_dir: str | None, resume: bool, dry_run: bool) -> None:
        """The pairs as id sequences: the vocabularies, the training batches and the validation batches, with
        the validation sources to decode for ``val_exact_match``."""
        cfg, train = self.config, self.config.train
        splits, vocabs, levels, skipped = prepared.splits, prepared.vocabs, prepared.levels, prepared.skipped
        train_pairs, val_pairs = prepared.train_pairs, prepared.val_pairs
        self.source_vocab_ = vocabs[0] or Vocab.build((s for s, _ in train_pairs), levels[0], cfg.num_words,
                                                      cfg.min_count)
        self.target_vocab_ = vocabs[1] or Vocab.build((t for _, t in train_pairs), levels[1], cfg.num_words,
                                                      cfg.min_count)
        train_data = encode_pairs(train_pairs, self.source_vocab_, self.target_vocab_)
        val_data = encode_pairs(val_pairs, self.source_vocab_, self.target_vocab_)
        self.max_source_length_ = cfg.max_source_length or max(len(s) for s in train_data.sources)
        self.max_target_length_ = max(len(t) for t in train_data.targets)
        self.length_ratio_ = round(length_ratio(train_data.sources, train_data.targets), 4)
        files = {name: getattr(cfg, name) for name in ("tsv", "val_tsv", "test_tsv") if getattr(cfg, name)}
        prepared.info = {"dataset": None if cfg.tsv or prepared.given else cfg.dataset, **files,
                         "phonemes": splits.phonemes, "source_level": levels[0], "target_level": levels[1],
                         "sizes": {"train": len(train_pairs), "val": len(val_pairs), "test": len(splits.test)},
                         "skipped": skipped, "vocabulary": {"source": len(self.source_vocab_),
                                                            "target": len(self.target_vocab_)},
                         "unknown_tokens": {"source": train_data.unknown_source + val_data.unknown_source,
                                            "target": train_data.unknown_target + val_data.unknown_target}}
        if prepared.chosen:
            print(prepared.chosen, file=sys.stderr)
        seen = {s for s, _ in train_pairs}
        overlap = sum(1 for s, _ in [*val_pairs, *splits.test] if s in seen)
        print(f"{splits.source}: {len(train_pairs):,} training pairs, {len(val_pairs):,} validation, "
              f"{len(splits.test):,} test; {levels[0]} -> {levels[1]} tokens, vocabularies "
              f"{len(self.source_vocab_)} / {len(self.target_vocab_)}"
              + (f"; skipped {_skipped_text(skipped)}" if any(skipped.values()) else "")
              + (f"; {overlap:,} validation or test sources are training sources too" if overlap else ""),
              file=sys.stderr)

        batch_size = train.batch_for(len(train_data))
        if batch_size < train.batch_size and not dry_run:
            print(f"batches of {batch_size} pairs (--auto-batch: {len(train_data):,} training pairs in batches of "
                  f"{train.batch_size} would be fewer than 8 updates an epoch)", file=sys.stderr)
        if dry_run:
            train_data = _head(train_data, batch_size)
        prepared.train = lambda epoch: batches(train_data, batch_size, np.random.default_rng([train.seed, epoch]))
        prepared.val, prepared.items_name = batches(val_data, 256), "pairs"
        prepared.val_groups = group_references(val_pairs[:len(val_data)])[:cfg.val_decode]

    def _train_config(self, prepared: Prepared, dry_run: bool) -> Any:
        """The base's, with ``max_minutes`` cut to what is left for training: ``--max-minutes`` holds the whole
        fit, so the time spent reading the data, the last validation pass and the test report are not trained."""
        train = super()._train_config(prepared, dry_run)
        if train.max_minutes is None:
            return train
        # The Trainer counts its budget from its own start, after it has made its optimizer; the first optimizer
        # a process makes imports torch._dynamo (seconds on a busy machine): imported now, so that it is counted.
        import torch._dynamo  # noqa: F401
        budget = 60 * train.max_minutes
        prepared.deadline = prepared.started + budget - FINAL_SECONDS - EXIT_SHARE * prepared.startup
        rate = self._untrained_decode_rate(prepared)
        # A trained model stops at its <eos>, about halfway to the cap (twice the expected length); the report
        # measures again before it decodes (see _after_fit), so half the untrained time is set aside for it.
        prepared.report_seconds = min(rate / 2 * len(group_references(prepared.test_pairs)), REPORT_SHARE * budget)
        # The Trainer leaves room for the last validation pass once an epoch has ended and it knows how long one
        # takes; an epoch of a large set can outlast the budget, so that room is set aside here too, in full (a
        # model that has learned little still writes every output to its cap).
        validation = rate * len(prepared.val_groups) + self._validation_loss_seconds(prepared)
        left = prepared.deadline - time.monotonic() - prepared.report_seconds - validation
        return dataclasses.replace(train, max_minutes=max(left, 0.1) / 60)

    def _untrained_decode_rate(self, prepared: Prepared) -> float:
        """Seconds per source that greedy decoding takes at most: the untrained model decodes a few test (or
        validation) sources, each to its cap."""
        groups = group_references(prepared.test_pairs) or prepared.val_groups
        few = [source for source, _ in groups if self.source_vocab_.split(source)][:64]
        if not few:
            return 0.0
        start = time.monotonic()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._translate_with(_on_cpu(self.model_, self._build_model), few, batch_size=len(few))
        return (time.monotonic() - start) / len(few)

    def _validation_loss_seconds(self, prepared: Prepared) -> float:
        """Seconds the validation loss takes: one batch timed, times the number of batches."""
        src, lengths, tgt_in, _ = prepared.val[len(prepared.val) // 2]      # batches in length order: a middle one
        model, was_training = self.model_, self.model_.training
        start = time.monotonic()
        with torch.inference_mode():
            model.eval()
            model(src, lengths, tgt_in)
        model.train(was_training)
        return (time.monotonic() - start) * len(prepared.val)

    def _make_model(self, prepared: Prepared) -> Seq2SeqModel:
        return self._build_model()

    def _loss(self, prepared: Prepared, model: Seq2SeqModel, batch: Any, state: Any) -> tuple:
        src, lengths, tgt_in, tgt_out = batch
        logits = model(src, lengths, tgt_in, self.config.teacher_forcing)          # (B, T, V)
        # Mean over the target tokens; <pad> (id 0) positions never count. With label smoothing each token's
        # loss is (1 - eps) x its cross-entropy + eps x the mean over the vocabulary of -log p (torch's rule).
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tgt_out.flatten(), ignore_index=0,
                               label_smoothing=self.config.label_smoothing)
        return loss, None, len(lengths)

    def _validation_metrics(self, prepared: Prepared, model: Seq2SeqModel) -> dict[str, float]:
        """``val_loss`` (nats per target token) and, on up to ``val_decode`` sources, ``val_exact_match``."""
        device = next(model.parameters()).device
        nats, tokens = 0.0, 0
        for src, lengths, tgt_in, tgt_out in prepared.val:
            logits = model(src.to(device), lengths.to(device), tgt_in.to(device))
            nats += float(F.cross_entropy(logits.flatten(0, 1).float(), tgt_out.to(device).flatten(),
                                          ignore_index=0, reduction="sum"))
            tokens += int((tgt_out != 0).sum())
        metrics = {"val_loss": nats / max(tokens, 1)}
        if prepared.val_groups:
            start = time.monotonic()
            with warnings.catch_warnings():             # sources longer than any trained on: cut, silently
                warnings.simplefilter("ignore")
                outputs = self._translate_with(_on_cpu(model, self._build_model),
                                               [s for s, _ in prepared.val_groups], batch_size=256)
            # Seconds per decoded source, of the model as trained so far: how much of the test report fits.
            prepared.decode_rate = (time.monotonic() - start) / len(outputs)
            metrics["val_exact_match"] = float(np.mean([
                o.text in {_normal(r) for r in refs}
                for o, (_, refs) in zip(outputs, prepared.val_groups)]))
        return metrics

    def _save_encoder(self, run: RunDir) -> None:
        self._write_vocabs(run)     # a stopped run can still translate from its best checkpoint

    def _after_fit(self, prepared: Prepared) -> None:
        """The test report (``test_metrics_``; ``test_metrics.json`` in the run directory), greedy, in the time
        the budget left it: a sample of the test sources when all of them would not fit."""
        if not prepared.test_pairs:
            return
        groups = group_references(prepared.test_pairs)
        total = limit = len(groups)
        if prepared.deadline is not None:
            # The time left, or what was set aside for the report when training ended later than planned.
            seconds = max(prepared.deadline - time.monotonic(), prepared.report_seconds)
            rate = prepared.decode_rate or prepared.report_seconds / max(len(groups), 1)
            limit = max(1, int(seconds / rate)) if rate > 0 else limit
        if limit < len(groups):
            keep = np.sort(np.random.default_rng(0).permutation(len(groups))[:limit])   # spread over the file
            groups = [groups[i] for i in keep]
        pairs = [(source, target) for source, targets in groups for target in targets]
        report = {"part": "test", **self.evaluate(pairs, batch_size=256)}     # as validation decodes
        if limit < total:
            report["sample_of"] = total          # the sources of the whole test part
        self.test_metrics_ = report
        if prepared.run_dir is not None and distributed.is_main():
            atomic_write_json(RunDir(prepared.run_dir).file(TEST_REPORT), report)

    def _build_model(self) -> Seq2SeqModel:
        cfg = self.config
        return Seq2SeqModel(len(self.source_vocab_), len(self.target_vocab_), cfg.embedding_size, cfg.hidden_size,
                            cfg.encoder_layers, cfg.decoder_layers, cfg.cell, cfg.attention, cfg.dropout)

    # -- translation -------------------------------------------------------------------------------------

    # The names of rnnkit 0.1 keep working for one release (with a FutureWarning naming the new one).
    @renamed(n_best="num_results", sample="no_greedy", random_seed="seed", max_length="max_tokens")
    def translate(self, texts: str | Sequence[str], *, beam: int | None = None, num_results: int = 1,
                  greedy: bool = True, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, seed: int | None = None, length_penalty: float = 0.0,
                  coverage_penalty: float = 0.0, max_tokens: int | None = None, batch_size: int = 64,
                  processors: Sequence[Callable] | None = None, return_attention: bool = False,
                  details: bool = False) -> Any:
        """Translate one text (a str back) or a list of texts (a list back, in the same order).

        Greedy by default; ``greedy=False`` draws each token (``temperature``, ``top_k``, ``top_p``, your own
        ``processors`` ``(tokens, logits) -> logits``, ``seed``); ``beam=N`` keeps N hypotheses per
        text, all texts of a batch decoded together, ranked by GNMT's score with ``length_penalty`` (α)
        and ``coverage_penalty`` (β). ``max_tokens``: most output tokens (default: by each source's length,
        twice the training targets' tokens per source token, + 10, at most twice the longest training target,
        + 10: an output that loops stops near the length it should have).

        Each result is the best output's text, unless ``num_results > 1`` (the N best, needs ``beam >= N``),
        ``return_attention`` or ``details``: then a :class:`Translation` with its hypotheses (text, tokens,
        score, log-probability, and the attention (output steps x source tokens) with ``return_attention``).
        """
        self._check_fitted()
        single = isinstance(texts, str)
        items = [texts] if single else list(texts) if isinstance(texts, (list, tuple)) else None
        if items is None:
            _checks.fail("texts", texts, "a text (str) or a list of texts")
        simple = not (details or return_attention or num_results > 1)
        out = self._translate_with(self._cpu_model(), items, beam=beam, num_results=num_results, greedy=greedy,
                                   temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                                   length_penalty=length_penalty, coverage_penalty=coverage_penalty,
                                   max_tokens=max_tokens, batch_size=batch_size, processors=processors,
                                   return_attention=return_attention, single=single, rescore=not simple)
        if simple:
            out = [t.text for t in out]
        return out[0] if single else out

    def _translate_with(self, model: Seq2SeqModel, items: list, *, beam: int | None = None, num_results: int = 1,
                        greedy: bool = True, temperature: float = 1.0, top_k: int | None = None,
                        top_p: float | None = None, seed: int | None = None, length_penalty: float = 0.0,
                        coverage_penalty: float = 0.0, max_tokens: int | None = None, batch_size: int = 64,
                        processors: Sequence[Callable] | None = None, return_attention: bool = False,
                        single: bool = False, rescore: bool = False) -> list[Translation]:
        """Translations (with details) of ``items`` by ``model`` (on the CPU); see :meth:`translate`.
        ``rescore``: greedy and sampled outputs get their log-probability (one more teacher-forced pass; beam
        search has it anyway); without it theirs is NaN."""
        _checks.check_int("beam", beam, min=1, allow_none=True)
        _checks.check_int("num_results", num_results, min=1)
        if beam is None and num_results > 1:
            _checks.fail("num_results", num_results, "1 without beam search (greedy and sampling give one output "
                                                     "per text; pass beam >= num_results)")
        if beam is not None and num_results > beam:
            _checks.fail("num_results", num_results, f"at most beam={beam} (the outputs are among the beams)")
        sample = not greedy
        if beam is not None and sample:
            raise ValueError("greedy=False (sampling) and beam: choose one (beam search keeps the most likely "
                             "outputs)")
        _checks.check_float("temperature", temperature, min=0)
        _checks.check_float("length_penalty", length_penalty, min=0)
        _checks.check_float("coverage_penalty", coverage_penalty, min=0)
        _checks.check_int("max_tokens", max_tokens, min=1, allow_none=True)
        _checks.check_int("batch_size", batch_size, min=1)
        _checks.check_int("seed", seed, min=0, max=2**64 - 1, allow_none=True)
        if coverage_penalty > 0 and self.config.attention == "none":
            _checks.fail("coverage_penalty", coverage_penalty, "0 for a model without attention (coverage "
                                                               "sums the attention weights)")
        if sample and temperature == 0:
            sample = False                                         # temperature 0 is the argmax
        chain = make_processors(temperature if temperature > 0 else 1.0, top_k, top_p,
                                processors=list(processors) if processors is not None else [])
        want_attention = return_attention and self.config.attention != "none"

        # Sources -> ids: empty ones refused, unseen tokens counted, long ones cut (with a warning).
        encoded, translations = [], []
        for i, text in enumerate(items):
            name = "text" if single else f"texts[{i}]"
            if not isinstance(text, str):
                _checks.fail(name, text, "a text (str)")
            ids, unknown = self.source_vocab_.encode(text)
            if not ids:
                _checks.fail(name, text, "a non-empty source text (at least one token)")
            cut = max(0, len(ids) - self.max_source_length_)
            if cut:
                warnings.warn(f"{name}: {len(ids)} {self.source_level_} tokens, more than the model's maximum "
                              f"max_source_length={self.max_source_length_}: cut to the first "
                              f"{self.max_source_length_}", stacklevel=3)
                ids = ids[:self.max_source_length_]
            unknown = sum(1 for t in ids if t == 1)
            encoded.append(ids)
            translations.append(Translation(text, [self.source_vocab_.itos[t] for t in ids], [], unknown, cut))
        caps = self._caps([len(ids) for ids in encoded], max_tokens)

        generator = make_generator(seed if seed is not None
                                   else int(torch.randint(0, 2**31 - 1, ()).item())) if sample else None
        groups = length_buckets([len(ids) for ids in encoded], batch_size)   # similar lengths together
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for chunk in track(groups, "decoding"):                      # a bar or lines on long work
                    hyps = self._decode_batch(model, [encoded[i] for i in chunk], beam, num_results, chain,
                                              generator, length_penalty, coverage_penalty,
                                              None if caps is None else [caps[i] for i in chunk],
                                              max_tokens, want_attention, rescore)
                    for i, h in zip(chunk, hyps):
                        translations[i].hypotheses = h
        finally:
            model.train(was_training)
        return translations

    def _caps(self, source_lengths: list[int], max_tokens: int | None) -> list[int] | None:
        """Each source's most output tokens (see :func:`~rnnkit.tasks.seq2seq.data.decoding_cap`), or None
        when one number holds for all: ``max_tokens``, or for a run saved before the caps grew with the
        source, twice the longest training target + 10."""
        ratio = self.__dict__.get("length_ratio_")
        if max_tokens is not None or ratio is None:
            return None
        return [decoding_cap(n, ratio, self.max_target_length_) for n in source_lengths]

    def _decode_batch(self, model: Seq2SeqModel, sources: list[list[int]], beam, num_results, chain, generator,
                      alpha, beta, caps, max_tokens, want_attention, rescore) -> list[list[Hypothesis]]:
        """One batch of id sequences -> each one's hypotheses. ``caps``: each source's most output tokens (its
        <eos> is the only choice once it has written them), or None: ``max_tokens`` for all (default: twice the
        longest training target + 10)."""
        if caps is not None:
            chain = LogitsProcessorList([*chain, EndAtCap(torch.tensor(caps))])
            max_tokens = max(caps) + 1                                   # room for the <eos> after the cap
        else:
            max_tokens = max_tokens or 2 * self.max_target_length_ + 10
            caps = [max_tokens] * len(sources)
        src, lengths = make_batch(sources)
        memory, state = model.encode(src, lengths)
        B = len(sources)
        start = torch.full((B,), GO, dtype=torch.long)
        logits, state, attention = model.step(start, state, memory)    # the first step, once per input
        if beam is not None:
            memory_k = expand_rows(memory, beam)                     # fixed: bound to the step, never reordered
            res = batch_beam_search(lambda tokens, st: model.step(tokens, st, memory_k), state, logits, beam,
                                    max_tokens, EOS, attention=attention, prefix=start.unsqueeze(1),
                                    processors=chain, length_penalty_alpha=alpha, coverage_penalty_beta=beta,
                                    source_mask=None if memory is None else memory.mask, n_best=num_results,
                                    return_attention=want_attention)
            out = []
            for b in range(B):
                hyps = []
                for j in range(num_results):
                    if not math.isfinite(float(res.scores[b, j])):
                        continue
                    n = int(res.lengths[b, j])
                    attention = (res.attention[b, j, :n, :len(sources[b])].float().numpy()
                                 if res.attention is not None else None)
                    hyps.append(self._hypothesis(res.tokens[b, j, :n].tolist(), float(res.scores[b, j]),
                                                 float(res.log_probs[b, j]), attention, caps[b]))
                out.append(hyps)
            return out
        uniforms = None if generator is None else torch.rand(max_tokens, B, generator=generator)
        tokens = decode(lambda tok, st: model.step(tok, st, memory)[:2], logits, state, max_tokens,
                        processors=chain, greedy=generator is None, uniforms=uniforms, end_token=EOS,
                        prefix=start.unsqueeze(1))                    # (B, L); processors see <go> first
        # The log-probability (and attention) of what was chosen: the same steps once more, teacher-forced.
        logp = attention = None
        if rescore or want_attention:
            logp, attention = self._rescore(model, src, lengths, tokens, chain, want_attention)
        out = []
        for b in range(B):
            row = tokens[b].tolist()
            n = row.index(EOS) + 1 if EOS in row else len(row)
            att = attention[b, :n, :len(sources[b])].float().numpy() if attention is not None else None
            total = float(logp[b, :n].sum()) if logp is not None else math.nan
            out.append([self._hypothesis(row[:n], total, total, att, caps[b])])
        return out

    @staticmethod
    def _rescore(model, src, lengths, tokens, chain, want_attention):
        """Per-token log-probabilities (B, L) (0 after <eos>) of ``tokens`` (B, L), and the attention."""
        memory, state = model.encode(src, lengths)
        B, L = tokens.shape
        prev = torch.full((B,), GO, dtype=torch.long)
        history = prev.unsqueeze(1)
        logps, attns = [], []
        for t in range(L):
            logits, state, weights = model.step(prev, state, memory)
            logits = chain(history, logits) if chain else logits
            logps.append(torch.log_softmax(logits.double(), -1).gather(1, tokens[:, t:t + 1]).squeeze(1))
            if want_attention:
                attns.append(weights)
            prev = tokens[:, t]
            history = torch.cat([history, prev.unsqueeze(1)], dim=1)
        logp = torch.stack(logps, 1)                                           # (B, L)
        ended = (tokens == EOS).long().cumsum(1) - (tokens == EOS).long()       # 1 after the first <eos>
        logp = logp.masked_fill((ended > 0) | (tokens == 0), 0.0)
        return logp, (torch.stack(attns, 1) if want_attention else None)

    def _hypothesis(self, ids: list[int], score: float, log_prob: float, attention, cap: int) -> Hypothesis:
        tokens = self.target_vocab_.tokens(ids)
        capped = len(ids) - (EOS in ids) >= cap          # it wrote its cap of tokens: a loop, or cut short
        return Hypothesis(self.target_vocab_.join(tokens), tokens, score, log_prob, attention, capped)

    def _cpu_model(self) -> Seq2SeqModel:
        """The model to decode with, on the CPU: ``model_`` itself, or a copy when it lives on a GPU."""
        return _on_cpu(self.model_, self._build_model)

    # -- evaluation --------------------------------------------------------------------------------------

    @renamed(max_length="max_tokens")
    def evaluate(self, pairs: Sequence[tuple[str, str]], *, beam: int | None = None, length_penalty: float = 0.0,
                 coverage_penalty: float = 0.0, max_tokens: int | None = None,
                 batch_size: int = 64) -> dict[str, Any]:
        """Exact match, BLEU, chrF and the token error rate of the outputs for ``pairs`` (+ PER and WER for
        phonemes); greedy, or beam search with ``beam``.

        A source with several targets (cmudict's alternate pronunciations) is one item whose output is right
        when it equals any of them (and is scored against the closest one). Pairs with an empty source or
        target are skipped and counted. BLEU counts word n-grams (sacrebleu's 13a tokenizer), or character
        n-grams when the targets are characters. ``capped``: outputs that ran to their decoding cap (an output
        that loops ends there); ``examples``: the first few sources with their output and a reference."""
        self._check_fitted()
        kept, skipped = clean_pairs(list(pairs), self.source_vocab_.split, self.target_vocab_.split)
        if not kept:
            _checks.fail("pairs", f"{len(pairs)} pairs", "at least one (source, target) pair with a non-empty "
                                                         "source and target")
        groups = group_references(kept)
        with warnings.catch_warnings():                     # one warning for all the sources that were cut
            warnings.simplefilter("ignore")
            # Without the outputs' log-probabilities (a second pass over every output, which translate's
            # details would add): the figures need only the outputs.
            outputs = self._translate_with(self._cpu_model(), [s for s, _ in groups], beam=beam,
                                           length_penalty=length_penalty, coverage_penalty=coverage_penalty,
                                           max_tokens=max_tokens, batch_size=batch_size)
        cut = sum(1 for o in outputs if o.truncated)
        if cut:
            warnings.warn(f"pairs: {cut} sources longer than the model's maximum max_source_length="
                          f"{self.max_source_length_} tokens were cut to it", stacklevel=2)
        refs = [[_normal(r) for r in targets] for _, targets in groups]
        hyps = [o.text for o in outputs]
        exact = float(np.mean([h in r for h, r in zip(hyps, refs)]))
        level = self.target_level_
        # Errors are counted in the target's tokens; for subwords in words (pieces are the model's business).
        if level == "subword":
            level = "word"
            outputs_tokens = [tokenize(o.text, level) for o in outputs]
        else:
            outputs_tokens = [o.hypotheses[0].tokens for o in outputs]
        result: dict[str, Any] = {
            "n": len(groups), "pairs": len(kept), "decoding": "greedy" if beam is None else f"beam {beam}",
            "exact_match": exact,
            **bleu_chrf(hyps, refs, tokenize="char" if level == "char" else "13a"),
            **{k: v for k, v in edit_distance_rates(outputs_tokens,
                                                    [[tokenize(r, level) for r in rs] for rs in refs]).items()
               if k == "token_error_rate"},
            "unknown_tokens": sum(o.unknown for o in outputs),
            "truncated": cut,
            "capped": sum(o.hypotheses[0].capped for o in outputs),
            "skipped": skipped,
            "examples": [{"source": o.source, "output": o.text, "reference": targets[0]}
                         for o, (_, targets) in zip(outputs[:EXAMPLES], groups)],
        }
        if self.data_.get("phonemes"):
            result["per"] = result["token_error_rate"]        # phoneme error rate
            result["wer"] = 1.0 - exact                       # word error rate: words with any phoneme wrong
        return result

    def tune_decoding(self, pairs: Sequence[tuple[str, str]], beams: Sequence[int],
                      length_penalties: Sequence[float], **options: Any) -> tuple[tuple[int, float], dict]:
        """Decode ``pairs`` (validation pairs: never the ones to be scored) with every beam width x length
        penalty; return the pair with the highest exact match (the lowest WER; ties to the earlier pair) and
        every pair's ``evaluate`` figures, keyed by (beam, length_penalty). ``options``: evaluate's others."""
        grid = {(beam, alpha): self.evaluate(pairs, **{**options, "beam": beam, "length_penalty": alpha})
                for beam in beams for alpha in length_penalties}
        best = max(grid, key=lambda k: grid[k]["exact_match"])         # max keeps the first of equals
        return best, grid

    # -- saving and loading (config.json itself is the Task base's) -------------------------------------

    def fitted_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {"source_level": self.source_level_, "target_level": self.target_level_,
                                  "max_source_length": self.max_source_length_,
                                  "max_target_length": self.max_target_length_}
        if self.__dict__.get("length_ratio_") is not None:
            values["length_ratio"] = self.length_ratio_
        trainer = self.__dict__.get("trainer_")
        if trainer is not None and trainer.stop_reason is not None:
            values["training"] = {**training_record(trainer), "seconds": round(trainer.train_seconds, 1)}
        return values

    def _write_vocabs(self, run: RunDir) -> None:
        run.write_json(TOKENIZER_FILE, {"source": self.source_vocab_.to_dict(),
                                        "target": self.target_vocab_.to_dict()})

    def _save_files(self, run: RunDir) -> None:
        self._write_vocabs(run)

    def _load_files(self, run: RunDir, fitted: dict[str, Any], tensors: dict[str, Any], **options: Any) -> None:
        run.require(TOKENIZER_FILE)
        self.source_vocab_, self.target_vocab_ = _read_vocabs(run)
        for key in ("max_source_length", "max_target_length"):
            value = fitted.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{run.config_path}: fitted.{key}={value!r}: expected an integer >= 1")
        self.source_level_, self.target_level_ = self.source_vocab_.level, self.target_vocab_.level
        self.max_source_length_ = fitted["max_source_length"]
        self.max_target_length_ = fitted["max_target_length"]
        ratio = fitted.get("length_ratio")          # absent in runs saved before the caps grew with the source
        if ratio is not None:
            if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1e6:
                raise ValueError(f"{run.config_path}: fitted.length_ratio={ratio!r}: expected a number > 0")
            self.length_ratio_ = float(ratio)
        model = self._build_model()
        self._hold_weights(model, tensors, run)
        self.history_ = run.read_metrics()


    # -- the Task protocol: what serve, export and the CLI's apply verb call ------------------------------

    def details(self) -> dict[str, Any]:
        self._check_fitted()
        return {"attention": self.config.attention, "source_level": self.source_level_,
                "target_level": self.target_level_}

    def apply(self, request: TranslateRequest | dict[str, Any]) -> dict[str, Any]:
        """The output of each of ``request.texts`` (greedy, or beam search with ``request.beam``): its text and
        tokens, score, the source's tokens, unknown and cut ones; the attention (output steps x source tokens)
        with ``request.attention``; every output (``results``) when ``request.num_results`` > 1."""
        request = self.make_request(request)
        decoding = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)
                    if f.name not in ("texts", "attention")}
        done = self.translate(request.texts, **decoding, return_attention=request.attention, details=True)
        out = []
        for t in done:
            best = t.hypotheses[0]
            item = {"source": t.source, "text": best.text, "source_tokens": t.source_tokens, "tokens": best.tokens,
                    "score": float(best.score), "unknown": t.unknown, "truncated": t.truncated}
            if request.attention and best.attention is not None:
                item["attention"] = np.round(np.asarray(best.attention, dtype=np.float64), 4).tolist()
            if request.num_results > 1:
                item["results"] = [{"text": h.text, "tokens": h.tokens, "score": float(h.score)}
                                   for h in t.hypotheses]
            out.append(item)
        return {"translations": out}


class EndAtCap:
    """A logits processor: a row whose source allows ``caps[b]`` output tokens gets only ``<eos>`` once it has
    written them. ``tokens`` (N, 1 + t) is ``<go>`` and the t tokens chosen so far; beam search's N rows are the
    beams of each input in turn (B x K)."""

    def __init__(self, caps: torch.Tensor):
        self.caps = caps                                                # (B,) long

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        written = tokens.shape[1] - 1
        done = written >= self.caps.repeat_interleave(tokens.shape[0] // len(self.caps))     # (N,)
        if not bool(done.any()):
            return logits
        only_end = torch.full_like(logits, -math.inf)
        only_end[:, EOS] = 0.0
        return torch.where(done.unsqueeze(1), only_end, logits)        # a new tensor: logits stay as they were


def _read_vocabs(run: RunDir) -> tuple[Vocab, Vocab]:
    doc = run.read_json(TOKENIZER_FILE)
    path = run.file(TOKENIZER_FILE)
    if not isinstance(doc, dict) or "source" not in doc or "target" not in doc:
        raise ValueError(f"{path}: expected {{\"source\": {{...}}, \"target\": {{...}}}}: the two vocabularies")
    return (Vocab.from_dict(doc["source"], f"{path}: source"), Vocab.from_dict(doc["target"], f"{path}: target"))


def _normal(text: str) -> str:
    """A reference as the model would write it, at any token level: NFC, whitespace runs as one space."""
    return normal_text(text)


def _head(data, n: int):
    return dataclasses.replace(data, sources=data.sources[:n], targets=data.targets[:n])


def _skipped_text(skipped: dict[str, int]) -> str:
    names = {"empty_source": "with an empty source", "empty_target": "with an empty target",
             "too_long": "with a source longer than max_source_length"}
    return ", ".join(f"{n} {names[k]}" for k, n in skipped.items() if n)


def _on_cpu(model: Seq2SeqModel, build: Callable[[], Seq2SeqModel]) -> Seq2SeqModel:
    """``model`` if it is on the CPU, else a CPU copy of it (decoding runs on the CPU)."""
    if next(model.parameters()).device.type == "cpu":
        return model
    with torch.inference_mode(False), torch.no_grad():
        copy = build()
        copy.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return copy.eval()

