"""Sequence labelling (aligned many to many): a tag for every token of a sentence, or every step of a series.

:class:`Tagger` is the task object: ``fit(X, y, validation_data)`` reads sentences (lists of tokens) or series
((T, C) arrays) with one tag per token or step, builds the vocabularies (words, characters, tags) or the
channel scales and the network (:mod:`rnnkit.tasks.tag.model`) from them, and trains it with the one Trainer,
which leaves the weights of the best validation epoch in the model (by ``val_error``, the share of tokens
tagged wrong). Batches hold sentences of similar length (rnnkit.text.length_buckets), padded at the end and
masked, so a sentence gets the same tags whatever it is batched with.

``evaluate`` reports token accuracy, accuracy on the tokens whose word never occurred in training, the most
confused tag pairs and per-tag figures; for BIO/BIOES tags also entity-level precision, recall and F1 by
seqeval (conlleval's rules for BIO, seqeval's strict mode for BIOES).
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnkit import _checks
from rnnkit.runs.checkpoint import RunDir
from rnnkit.tasks.base import Prepared, Task, refuse_export, training_record
from rnnkit.tasks.tag.config import TagConfig, TagRequest
from rnnkit.tasks.tag.data import (Encoded, Tagged, Vocab, batches, check_tagged, detect_scheme, encode_series,
                                   encode_text, small_sample, spans)
from rnnkit.tasks.tag.model import TaggerNet
from rnnkit.training import distributed
from rnnkit.training.progress import track
from rnnkit.training.trainer import to_device

VOCAB_FILE = "vocab.json"
PREDICT_BATCH = 256            # sentences per batch when tagging


def as_tagged(X: Any, y: Any = None, source: str = "the data passed to fit") -> Tagged:
    """``(X, y)``, a ``Tagged`` or an ``(X, y)`` pair passed as X -> a Tagged (y None: unlabelled)."""
    if isinstance(X, Tagged):
        return X
    if y is None and isinstance(X, tuple) and len(X) == 2:
        X, y = X
    if isinstance(X, (str, bytes)) or not hasattr(X, "__len__"):
        _checks.fail("X", type(X).__name__, "a list of sentences (each a list of tokens) or of (steps, channels) "
                                            "arrays")
    if len(X) and isinstance(X[0], str):
        _checks.fail("X[0]", X[0], "a sentence as a list of tokens (X is a list of sentences: [[\"the\", \"cat\"]], "
                                   "not [\"the\", \"cat\"])")
    return Tagged([list(x) if isinstance(x, (list, tuple)) else np.asarray(x, dtype=np.float32) for x in X],
                  None if y is None else [list(t) for t in y], source)


class Tagger(Task, name="tag"):
    """Tag every token of a sentence (or step of a series); see the module docstring.

    ``fit(X, y, validation_data=(X_val, y_val))``: X is a list of sentences (each a list of str tokens) or of
    (T, C) arrays, y a list of tag lists (or pass a :class:`~rnnkit.tasks.tag.data.Tagged` from the readers).
    Learned: ``tags_``, ``kind_`` ("text" or "series"), ``scheme_`` ("none", "bio", "bioes"), ``vocab_``
    (text), ``mean_``/``std_`` (series), ``max_length_`` (the longest training sentence), ``model_`` (a
    :class:`TaggerNet`), ``trainer_``, ``train_seconds_``.
    """

    config_class = TagConfig
    train_command = "rnnkit tag train"
    run_files = (VOCAB_FILE,)
    side_files = (VOCAB_FILE,)
    endpoint = "tag"                      # the Task protocol's uniform apply: see the end of the class
    request_class = TagRequest

    # -- fit (the sequence is Task.fit's; these are its steps) --------------------------------------------

    def fit(self, X: Any, y: Any = None, validation_data: Any = None, *, run_dir: str | Path | None = None,
            resume: bool = False, dry_run: bool = False, progress: bool | None = None,
            data_info: dict[str, Any] | None = None) -> "Tagger":
        """Train on sentences ``X`` with tags ``y``; ``validation_data`` (a pair or a Tagged) picks the best
        epoch and stops early. ``run_dir``: checkpoints, metrics and the final model go there (``resume``
        continues it); ``dry_run``: one tiny batch; ``data_info``: what the data is, for config.json."""
        return super().fit((X, y, validation_data), run_dir=run_dir, resume=resume, dry_run=dry_run,
                           progress=progress, data_info=data_info)

    def _read_data(self, data: tuple, *, run_dir: str | Path | None, resume: bool,
                   data_info: dict[str, Any] | None = None) -> Prepared:
        """The training and validation data checked: the tags (``tags_``), the kind of input (``kind_``) and the
        tag scheme (``scheme_``)."""
        cfg = self.config
        X, y, validation_data = data
        train = as_tagged(X, y)
        self.kind_ = check_tagged(train)
        val = None
        if validation_data is not None:
            val = as_tagged(validation_data, source="the validation data")
            if not len(val):
                val = None
        if val is not None and check_tagged(val) != self.kind_:
            _checks.fail("validation_data", "a different kind of input", f"{self.kind_} like the training data")
        if self.kind_ == "series":
            widths = {np.asarray(x).shape[1] for x in train.X + (val.X if val else [])}
            if len(widths) > 1:
                _checks.fail("X", f"series with {sorted(widths)} channels", "the same channels in every series")
            if cfg.embeddings:
                _checks.fail("embeddings", cfg.embeddings, "None for numeric series (word vectors need text)")
        self.scheme_ = detect_scheme(train, cfg.scheme)
        self.tags_ = sorted({t for sent in train.y for t in sent})
        if val is not None:
            if self.scheme_ != "none":
                detect_scheme(val, self.scheme_)          # the validation file mixes no schemes either
            only = sorted({t for sent in val.y for t in sent} - set(self.tags_))
            if only:
                # The model cannot learn them, but the validation figures should count them as errors.
                print(f"{val.source}: tag(s) {', '.join(map(repr, only[:5]))} occur in the validation data but "
                      f"never in training: the model cannot learn them", file=sys.stderr)
                self.tags_ = sorted(set(self.tags_) | set(only))
        self.channels_ = list(train.channels)
        info = {"kind": self.kind_, "scheme": self.scheme_, "train_size": len(train),
                "val_size": 0 if val is None else len(val), **(data_info or {})}
        source = info.get("source") or train.source
        return Prepared(source, (train.X, train.y, None if val is None else (val.X, val.y)), info=info,
                        train_data=train, val_data=val, items_name="tokens")

    def _prepare(self, prepared: Prepared, *, run_dir: str | Path | None, resume: bool, dry_run: bool) -> None:
        """The vocabularies (text) or channel scales (series), the pretrained vectors, and the batches."""
        cfg, seed = self.config, self.config.train.seed
        train, val = prepared.train_data, prepared.val_data
        if dry_run:
            train = small_sample(train, cfg.train.batch_size, seed)
            val = None if val is None else small_sample(val, 16, seed)
        self.max_length_ = max(len(x) for x in train.X)
        self.embedding_stats_: dict[str, Any] = {}
        prepared.vectors = prepared.extra_vectors = None
        if self.kind_ == "text":
            self.vocab_ = Vocab.build(train.X, self.tags_, num_words=cfg.num_words, lowercase=cfg.lowercase,
                                      max_word_chars=cfg.max_word_chars)
            if cfg.embeddings:
                prepared.vectors, prepared.extra_vectors = self._load_embeddings()
            if cfg.encoder_from is not None:
                prepared.vectors, prepared.encoder = self._load_encoder()
            encode = lambda data: encode_text(self.vocab_, data.X, data.y)     # noqa: E731
        else:
            if cfg.encoder_from is not None:
                _checks.fail("encoder_from", cfg.encoder_from, "None for numeric series (a language model reads words)")
            steps = np.concatenate([np.asarray(x, dtype=np.float32) for x in train.X])
            self.mean_ = np.nan_to_num(np.nanmean(steps, 0)).astype(np.float32)
            std = np.nan_to_num(np.nanstd(steps, 0))
            self.std_ = np.where(std > 1e-8, std, 1.0).astype(np.float32)
            self.vocab_ = Vocab.build([], self.tags_, num_words=None, lowercase=False, max_word_chars=1)
            encode = lambda data: encode_series(data.X, self.mean_, self.std_, self.vocab_, data.y)   # noqa: E731
        enc = encode(train)
        bs = cfg.train.batch_for(len(train))          # a small set still gets several updates an epoch
        prepared.train = lambda epoch: batches(enc, bs, np.random.default_rng([seed, epoch]))
        if dry_run:
            prepared.train = batches(enc, bs, np.random.default_rng(seed))[:1]
        prepared.val = None if val is None else batches(encode(val), PREDICT_BATCH)
        if self.kind_ == "text":
            unseen = 0 if val is None else sum(not self.vocab_.seen(t) for s in val.X for t in s)
            prepared.info["vocabulary"] = {"words": self.vocab_.num_words, "chars": self.vocab_.chars.vocab_size,
                                           "pretrained_only_words": len(self.vocab_.extra),
                                           "val_unseen_tokens": unseen}
        prepared.info["tags"] = list(self.tags_)

    def _make_model(self, prepared: Prepared) -> TaggerNet:
        net = self._build_net()
        if prepared.vectors is not None:
            net.embed.weight.data.copy_(torch.from_numpy(prepared.vectors))
            net.embed.weight.requires_grad_(not self.config.freeze_embeddings)
            if prepared.extra_vectors is not None and len(prepared.extra_vectors):
                net.extra.copy_(torch.from_numpy(prepared.extra_vectors))
        encoder = getattr(prepared, "encoder", None)
        if encoder is not None and self.config.char_model == "none":
            # The first layer's forward direction reads the word vectors alone, as the LM's first layer did.
            from rnnkit.tasks.transfer import copy_recurrent
            copy_recurrent(net.rnn.cells[0], {k[len("cells.0."):]: v for k, v in encoder.items()
                                              if k.startswith("cells.0.")}, self.config.encoder_from)
        return net

    def _load_encoder(self) -> tuple[np.ndarray, dict[str, Any]]:
        """--encoder-from: the LM's word vectors mapped onto the training words (embedding_size becomes the LM's),
        and its recurrent weights. The tagger reads both directions (and, with a char model, more than the word
        vectors), so only its first layer's forward direction can start from the LM, with --char-model none."""
        from rnnkit.tasks.transfer import load_encoder, map_embeddings, read_encoder, say_mapping, settle

        cfg, path = self.config, self.config.encoder_from
        lm = read_encoder(path, task="tagger")
        defaults = {f.name: f.default for f in dataclasses.fields(type(cfg))}
        settle({"cell": cfg.cell, "hidden_size": cfg.hidden_size}, defaults, lm, path)
        lm_tokenizer, lm_vectors, rnn = load_encoder(path)
        words = self.vocab_.words
        vectors, found, missing = map_embeddings(lm_tokenizer, lm_vectors, words.word_index, self.vocab_.num_words)
        self.embedding_stats_ = {"encoder_from": str(path), "dim": int(lm_vectors.shape[1]), "found": found,
                                 "unknown": len(missing), "unknown_examples": missing[:20],
                                 "unknown_init": "mean of the language model's vectors"}
        recurrent = (f"the first layer's forward direction ({lm['cell']}, {lm['hidden_size']}) from the LM"
                     if cfg.char_model == "none" and cfg.cell == lm["cell"] and cfg.hidden_size == lm["hidden_size"]
                     else "the recurrent layers from scratch (the LM's first layer fits only with --char-model none "
                          f"and --cell {lm['cell']} --hidden-size {lm['hidden_size']})")
        print(say_mapping(found, missing, path, lm_tokenizer.vocab_size - 1) + f"; {recurrent}", file=sys.stderr)
        self.config = dataclasses.replace(cfg, embedding_size=int(lm_vectors.shape[1]))
        if cfg.char_model == "none" and (cfg.cell, cfg.hidden_size) == (lm["cell"], lm["hidden_size"]):
            return vectors, rnn
        return vectors, None

    def _loss(self, prepared: Prepared, net: TaggerNet, batch: Any, state: Any) -> tuple:
        *inputs, lengths, tags = batch
        scores = self._scores(net, inputs, lengths)
        loss, n = net.loss(scores, tags, lengths)
        return loss, None, n

    def _scores(self, net: TaggerNet, inputs: list, lengths: torch.Tensor) -> torch.Tensor:
        if self.kind_ == "text":
            return net(inputs[0], lengths, inputs[1])
        return net(inputs[0], lengths)

    def _validation_metrics(self, prepared: Prepared, net: TaggerNet) -> dict[str, float]:
        device = next(net.parameters()).device
        total, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for batch in prepared.val:
                *inputs, lengths, tags = to_device(batch, device)
                scores = self._scores(net, inputs, lengths)
                loss, count = net.loss(scores, tags, lengths)
                mask = torch.arange(tags.shape[1], device=device).unsqueeze(0) < lengths.unsqueeze(1)
                correct += int(((net.predict(scores, lengths) == tags) & mask).sum())
                total += float(loss) * count
                n += count
        return {"val_loss": total / n, "val_accuracy": correct / n, "val_error": 1 - correct / n}

    def _save_encoder(self, run: RunDir) -> None:
        # With the tags (config.json) and the vocabulary written when training starts, a run that is stopped can
        # still tag from its best checkpoint.
        self._save_files(run)

    def _build_net(self) -> TaggerNet:
        cfg = self.config
        sizes = dict(embedding_size=cfg.embedding_size, char_model=cfg.char_model,
                     char_embedding_size=cfg.char_embedding_size, char_hidden_size=cfg.char_hidden_size,
                     char_kernel_size=cfg.char_kernel_size, cell=cfg.cell, hidden_size=cfg.hidden_size,
                     num_layers=cfg.num_layers, dropout=cfg.dropout, word_dropout=cfg.word_dropout,
                     recurrent_dropout=cfg.recurrent_dropout, crf=cfg.output_layer == "crf")
        if self.kind_ == "text":
            return TaggerNet(len(self.tags_), vocab=self.vocab_.num_words, num_extra=len(self.vocab_.extra),
                             num_chars=self.vocab_.chars.vocab_size, **sizes)
        return TaggerNet(len(self.tags_), input_size=len(self.mean_), **sizes)

    def _load_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """The pretrained vectors of the training words, and of up to ``embeddings_words`` pretrained words never
        seen in training (kept frozen, for new text); embedding_size becomes theirs."""
        from rnnkit.tasks.embeddings.task import Embeddings

        cfg, vocab = self.config, self.vocab_
        emb = Embeddings.load(cfg.embeddings)
        vectors, found, missing = emb.matrix(vocab.words.word_index, vocab.num_words, seed=cfg.train.seed)
        known = set(vocab.words.word_index) if vocab.words.num_words is None else \
            {w for w, i in vocab.words.word_index.items() if i < vocab.num_words}
        extra, rows = [], []
        for i, word in enumerate(emb.words):
            if len(extra) >= cfg.embeddings_words:
                break
            key = vocab.key(word)
            if key not in known and key == word:      # a lower-cased vocabulary takes the lower-case entries
                known.add(key)
                extra.append(key)
                rows.append(i)
        vocab.set_extra(extra)
        extra_vectors = np.asarray(emb.vectors[rows], dtype=np.float32).reshape(len(rows), emb.dim)
        self.embedding_stats_ = {"source": str(cfg.embeddings), "dim": emb.dim, "found": found,
                                 "unknown": len(missing), "unknown_examples": missing[:20],
                                 "pretrained_only": len(extra)}
        print(f"embeddings {cfg.embeddings}: {found} of {vocab.num_words - 1} training words found, "
              f"{len(missing)} unknown (random vectors); {len(extra):,} more pretrained words kept for words never "
              f"seen in training", file=sys.stderr)
        if cfg.embedding_size != emb.dim:
            self.config = dataclasses.replace(cfg, embedding_size=emb.dim)
        return vectors, extra_vectors

    # -- tagging -----------------------------------------------------------------------------------------

    def _encode(self, data: Tagged, labelled: bool = False) -> Encoded:
        if self.kind_ == "text":
            return encode_text(self.vocab_, data.X, data.y if labelled else None)
        return encode_series(data.X, self.mean_, self.std_, self.vocab_, data.y if labelled else None)

    def _check_inputs(self, data: Tagged) -> None:
        """Refuse input of the wrong kind; warn (one line) about sentences longer than any seen in training."""
        kind = check_tagged(data, labelled=False)
        if kind != self.kind_:
            what = "sentences (lists of tokens)" if self.kind_ == "text" else "series ((steps, channels) arrays)"
            _checks.fail("X", f"{kind} input", f"{what}: this tagger was trained on {self.kind_}")
        if self.kind_ == "series":
            bad = next((i for i, x in enumerate(data.X) if np.asarray(x).shape[1] != len(self.mean_)), None)
            if bad is not None:
                raise ValueError(f"{data.where(bad)}: a series with {np.asarray(data.X[bad]).shape[1]} channels; "
                                 f"expected the {len(self.mean_)} of the training data")
        longer = [i for i, x in enumerate(data.X) if len(x) > self.max_length_]
        if longer:
            worst = max(longer, key=lambda i: len(data.X[i]))
            unit = "tokens" if self.kind_ == "text" else "steps"
            warnings.warn(f"{data.where(worst)}: {len(longer)} sentence(s) longer than any in training (this one "
                          f"{len(data.X[worst])} {unit}, the longest in training {self.max_length_}): tagged all "
                          f"the same (a recurrent tagger reads any length), but tags past {self.max_length_} "
                          f"{unit} are untested", stacklevel=3)

    def _predict_ids(self, data: Tagged) -> list[np.ndarray]:
        net = self.model_.eval()
        device = next(net.parameters()).device
        enc = self._encode(data)
        out: list[np.ndarray] = [np.zeros(0, np.int64)] * len(data)
        with torch.no_grad():
            for *inputs, lengths, idx in track(batches(enc, PREDICT_BATCH), "tagging"):
                inputs, lengths = to_device(inputs, device), lengths.to(device)
                pred = net.predict(self._scores(net, inputs, lengths), lengths).cpu().numpy()
                for b, i in enumerate(idx.tolist()):
                    out[i] = pred[b, :int(lengths[b])]
        return out

    def predict(self, X: Any) -> list[list[str]]:
        """The tags of each sentence (or series) of ``X`` (a list, or a Tagged from the readers)."""
        self._check_fitted()
        data = as_tagged(X, None, "X") if not isinstance(X, Tagged) else X
        if not len(data):
            return []
        self._check_inputs(data)
        return [[self.tags_[k] for k in ids] for ids in self._predict_ids(data)]

    def evaluate(self, X: Any, y: Any = None) -> dict[str, Any]:
        """Token accuracy, accuracy on words never seen in training, the most confused tag pairs, per-tag
        precision/recall/F1; entity precision/recall/F1 (seqeval) for BIO/BIOES tags.

        ``evaluate(X, y)``, or ``evaluate(data)`` with a Tagged or an ``(X, y)`` pair. A tag the model does not
        know is refused, naming its line."""
        self._check_fitted()
        data = as_tagged(X, y, "the data passed to evaluate")
        if data.y is None:
            _checks.fail("y", None, "the true tags, one list per sentence (or pass a Tagged or an (X, y) pair)")
        check_tagged(data)
        known = set(self.tags_)
        for i, tags in enumerate(data.y):
            j = next((j for j, t in enumerate(tags) if t not in known), None)
            if j is not None:
                shown = ", ".join(self.tags_[:20]) + (" ..." if len(self.tags_) > 20 else "")
                raise ValueError(f"{data.where(i, j)}: tag {tags[j]!r} is not a tag of this model; expected one of "
                                 f"the tags it was trained on: {shown}")
        pred = self.predict(data)
        return tag_metrics(data, pred, self.tags_, self.scheme_,
                           self.vocab_.seen if self.kind_ == "text" else None)

    def report(self, X: Any, y: Any, out_dir: str | Path, name: str = "test", rows: str = "") -> dict[str, Any]:
        """Evaluate and write ``{name}_metrics.json`` into ``out_dir``; ``rows`` says which sentences the figures
        come from (kept in the JSON)."""
        metrics = self.evaluate(X, y)
        if rows:
            metrics = {"rows": rows, **metrics}
        if distributed.is_main():
            out = RunDir(out_dir)
            out.path.mkdir(parents=True, exist_ok=True)
            out.write_json(f"{name}_metrics.json", metrics)
        return metrics

    # -- save / load -------------------------------------------------------------------------------------

    def fitted_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {"tags": self.tags_, "kind": self.kind_, "scheme": self.scheme_,
                                  "max_length": self.max_length_, "channels": self.__dict__.get("channels_", []),
                                  "train_seconds": self.__dict__.get("train_seconds_", 0.0),
                                  "embeddings": self.__dict__.get("embedding_stats_", {})}
        if self.kind_ == "series":
            values.update(mean=self.mean_.tolist(), std=self.std_.tolist())
        training = training_record(self.__dict__.get("trainer_"))
        if training is not None:
            values["training"] = training
        return values

    def _save_files(self, run: RunDir) -> None:
        run.write_json(VOCAB_FILE, self.vocab_.to_dict())

    def _load_files(self, run: RunDir, fitted: dict[str, Any], tensors: dict[str, Any], **options: Any) -> None:
        for key in ("tags", "kind", "scheme", "max_length"):
            if key not in fitted:
                raise ValueError(f"{run.config_path}: fitted.{key} is missing; expected a run written by "
                                 f"'rnnkit tag train'")
        self.tags_, self.kind_, self.scheme_ = list(fitted["tags"]), fitted["kind"], fitted["scheme"]
        self.max_length_ = int(fitted["max_length"])
        self.channels_ = list(fitted.get("channels", []))
        self.train_seconds_ = fitted.get("train_seconds", 0.0)
        self.embedding_stats_ = fitted.get("embeddings", {})
        run.require(VOCAB_FILE)
        self.vocab_ = Vocab.from_dict(run.read_json(VOCAB_FILE), str(run.file(VOCAB_FILE)))
        if self.kind_ == "series":
            self.mean_, self.std_ = np.array(fitted["mean"], np.float32), np.array(fitted["std"], np.float32)
        net = self._build_net()
        self._hold_weights(net, tensors, run)

    # -- the Task protocol: what serve, export and the CLI's apply verb call ------------------------------

    def details(self) -> dict[str, Any]:
        self._check_fitted()
        return {"tags": list(self.tags_), "scheme": self.scheme_, "input": self.kind_,
                "output_layer": self.config.output_layer,
                "char_model": self.config.char_model if self.kind_ == "text" else None,
                "longest_training_sentence": self.max_length_}

    def apply(self, request: TagRequest | dict[str, Any]) -> dict[str, Any]:
        """The tags of ``request.tokens`` (token lists) or ``request.texts`` (split at whitespace) for a text
        tagger, of ``request.series`` (lists of steps of channel values; null: missing) for a series tagger: each
        sentence's tokens and tags, and its entities for BIO/BIOES tags."""
        request = self.make_request(request)
        given = [f for f in ("tokens", "texts", "series") if getattr(request, f) is not None]
        wanted = ("tokens", "texts") if self.kind_ == "text" else ("series",)
        if len(given) != 1 or given[0] not in wanted:
            what = ('"tokens" (lists of tokens) or "texts" (strings split at whitespace)' if self.kind_ == "text"
                    else '"series" (lists of steps of channel values)')
            raise ValueError(f"{(given or list(wanted))[0]}: this tagger reads {self.kind_}; expected one field, "
                             f"{what}")
        field = given[0]
        items = getattr(request, field)
        if field == "series":
            X = []
            for i, s in enumerate(items):
                try:
                    x = np.asarray([[np.nan if v is None else v for v in step] for step in s], dtype=np.float32)
                except (TypeError, ValueError):
                    x = None
                if x is None or x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != len(self.mean_):
                    _checks.fail(f"series[{i}]", "an empty series" if x is not None and x.size == 0 else
                                 "a ragged or malformed series", f"a list of steps, each with the "
                                 f"{len(self.mean_)} channel values of the training data")
                X.append(x)
            tags = self.predict(Tagged(X, None, "request"))
            return {"tags": list(self.tags_), "series": [{"tags": t} for t in tags]}
        X = [t.split() for t in items] if field == "texts" else [list(t) for t in items]
        for i, sent in enumerate(X):
            if not sent:
                raise ValueError(f"{field}[{i}]: an empty sentence; expected at least one token")
            bad = next((j for j, tok in enumerate(sent) if not tok.strip()), None)
            if bad is not None:
                raise ValueError(f"{field}[{i}][{bad}]: an empty token; expected a word")
        tags = self.predict(Tagged(X, None, "request"))
        out = []
        for sent, t in zip(X, tags):
            item: dict[str, Any] = {"tokens": sent, "tags": t}
            if self.scheme_ != "none":
                item["entities"] = [{"type": typ, "start": a, "end": b, "text": " ".join(sent[a:b])}
                                    for typ, a, b in spans(t, self.scheme_)]
            out.append(item)
        return {"tags": list(self.tags_), "sentences": out}

    def export_spec(self, fmt: str):
        """ONNX: the whole-sequence network (ids or raw values and a mask in, the tag scores of every step out).
        With a CRF output the graph gives its emissions: Viterbi with the run's transition scores picks the
        tags (docs/tag.md). No C export."""
        self._check_fitted()
        if fmt == "onnx":
            return self._onnx_spec()
        if fmt == "c":
            refuse_export("a tag run (a bidirectional tagger)", fmt, "the header computes one-direction "
                          "recurrent classifiers and forecasters of series; export the tagger to ONNX instead")
        return super().export_spec(fmt)

    def _onnx_spec(self):
        from rnnkit.export.onnx import OnnxSpec, require_fused
        from rnnkit.tasks.tag.model import TaggerGraph

        net = self.model_.eval()
        require_fused(net.rnn, f"cell {self.config.cell!r}")
        series = self.kind_ == "series"
        module = TaggerGraph(net, *((self.mean_, self.std_) if series else ()))
        has_chars = not series and net.chars is not None
        gen = torch.Generator().manual_seed(0)
        lengths = torch.tensor([7, 5, 2])
        mask = (torch.arange(7) < lengths.unsqueeze(1)).float()                                 # (3, 7)
        if series:
            example = (torch.randn(3, 7, len(self.mean_), generator=gen) * mask.unsqueeze(-1), mask)
            names = ["x", "mask"]
        else:
            words = torch.randint(2, max(3, self.vocab_.num_words), (3, 7), generator=gen) * mask.long()
            chars = torch.randint(1, max(2, self.vocab_.chars.vocab_size), (3, 7, 4), generator=gen)
            chars[:, :, 3] = 0                                                  # words of different lengths
            chars[0, 0, 2:] = 0
            chars = chars * mask.long().unsqueeze(-1)
            example, names = ((words, chars, mask), ["words", "chars", "mask"]) if has_chars else \
                ((words, mask), ["words", "mask"])
        axes = {n: {0: "batch", 1: "time"} for n in names}
        if has_chars:
            axes["chars"] = {0: "batch", 1: "time", 2: "chars"}
        axes["scores"] = {0: "batch", 1: "time"}

        def compare(run, rng, B: int, T: int):
            lens = rng.integers(1, T + 1, B)
            lens[0] = T
            mask = (np.arange(T) < lens[:, None]).astype(np.float32)
            if series:
                C = len(self.mean_)
                x = (self.mean_ + self.std_ * rng.normal(0, 1.5, (B, T, C))).astype(np.float32) * mask[..., None]
                x[0, 0, 0] = np.nan
                enc = encode_series([x[b, :lens[b]] for b in range(B)], self.mean_, self.std_)
                feeds = {"x": x, "mask": mask}
                inputs = torch.from_numpy(np.stack([np.pad(v, ((0, T - len(v)), (0, 0))) for v in enc.values]))
                with torch.no_grad():
                    want = net(inputs, torch.from_numpy(lens)).numpy()
            else:
                words = rng.integers(1, max(2, self.vocab_.num_words + len(self.vocab_.extra)), (B, T)) * \
                    mask.astype(np.int64)
                W = 6
                chars = rng.integers(1, max(2, self.vocab_.chars.vocab_size), (B, T, W))
                chars = chars * (np.arange(W) < rng.integers(1, W + 1, (B, T, 1))) * mask.astype(np.int64)[..., None]
                feeds = {"words": words, "mask": mask, **({"chars": chars} if has_chars else {})}
                with torch.no_grad():
                    want = net(torch.from_numpy(words), torch.from_numpy(lens),
                               torch.from_numpy(chars) if has_chars else None).numpy()
            got = run(feeds)[0]
            valid = mask.astype(bool)
            return [(got[valid], want[valid])]

        return OnnxSpec(module, example, names, ["scores"], axes, kind="whole-sequence", compare=compare)


# ---------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------

def tag_metrics(data: Tagged, pred: list[list[str]], tags: list[str], scheme: str, seen=None,
                top_confusions: int = 10) -> dict[str, Any]:
    """The figures of predicted tags ``pred`` against ``data.y``: token accuracy, accuracy on tokens whose word
    never occurred in training (``seen(word)`` False), the most confused pairs, per-tag precision/recall/F1
    and, for BIO/BIOES, entity-level precision/recall/F1 by seqeval."""
    true = [t for sent in data.y for t in sent]
    flat = [t for sent in pred for t in sent]
    n = len(true)
    right = np.array([a == b for a, b in zip(true, flat)], dtype=bool)
    out: dict[str, Any] = {"sentences": len(data), "tokens": n, "accuracy": float(right.mean())}
    if seen is not None:
        unseen = np.array([not seen(w) for sent in data.X for w in sent], dtype=bool)
        out["unseen_tokens"] = int(unseen.sum())
        out["unseen_accuracy"] = float(right[unseen].mean()) if unseen.any() else None
        out["seen_accuracy"] = float(right[~unseen].mean()) if (~unseen).any() else None
    out["sentence_accuracy"] = float(np.mean([a == b for a, b in zip(data.y, pred)]))
    pairs = Counter((a, b) for a, b in zip(true, flat) if a != b)
    support = Counter(true)
    out["confusions"] = [{"true": a, "predicted": b, "count": c, "share_of_true": c / support[a]}
                         for (a, b), c in pairs.most_common(top_confusions)]
    predicted = Counter(flat)
    hits = Counter(a for a, b in zip(true, flat) if a == b)
    per_tag = {}
    for t in tags:
        p = hits[t] / predicted[t] if predicted[t] else 0.0
        r = hits[t] / support[t] if support[t] else 0.0
        per_tag[t] = {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
                      "support": int(support[t])}
    out["per_tag"] = per_tag
    if scheme in ("bio", "bioes"):
        out.update(entity_metrics(data.y, pred, scheme))
    return out


def require_seqeval() -> None:
    """Refuse, in one line, to score entities without seqeval (the ``tag`` extra)."""
    try:
        import seqeval  # noqa: F401
    except ImportError:
        raise ImportError("entity scores (BIO/BIOES tags) need seqeval: pip install \"rnnkit[tag]\"") from None


def entity_metrics(true: list[list[str]], pred: list[list[str]], scheme: str) -> dict[str, Any]:
    """Entity precision/recall/F1 (micro) and per type, by seqeval: its default (conlleval) rules for BIO, its
    strict mode with the IOBES scheme for BIOES."""
    require_seqeval()
    from seqeval import metrics as sm
    from seqeval.scheme import IOBES
    kwargs = {"mode": "strict", "scheme": IOBES} if scheme == "bioes" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # seqeval warns about tags it reads as O
        report = sm.classification_report(true, pred, output_dict=True, zero_division=0, **kwargs)
        out = {"entity_precision": float(sm.precision_score(true, pred, zero_division=0, **kwargs)),
               "entity_recall": float(sm.recall_score(true, pred, zero_division=0, **kwargs)),
               "entity_f1": float(sm.f1_score(true, pred, zero_division=0, **kwargs))}
    out["entities"] = {k: {m: float(v[m]) for m in ("precision", "recall", "f1-score")} | {"support": int(v["support"])}
                       for k, v in report.items() if not k.endswith(" avg")}
    return out
