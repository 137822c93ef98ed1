"""Visual question answering (two inputs to one): an image and a question in words -> a one-word answer.

:class:`VisualQA` is the task object: ``fit(train, validation_data)`` takes :class:`VQAData` (the rendered
Sort-of-CLEVR scenes of :mod:`rnnkit.datasets.sort_of_clevr`, or a user's CSV read by
:func:`rnnkit.tasks.vqa.data.read_csv`), builds the question vocabulary and the answer list from the training
questions and the network (:mod:`rnnkit.tasks.vqa.model`: a CNN, a recurrent question encoder, a merge, an answer
MLP), and trains it with the one Trainer (best epoch by ``val_error``). Batches group the questions of an image,
so the CNN runs once per image of a batch.

``evaluate`` reports accuracy overall and, when the data has question kinds, non-relational, relational and per
kind. ``apply`` answers one question about one base64-encoded image with every answer's probability.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnkit import _checks
from rnnkit.datasets.sort_of_clevr import NONRELATIONAL, RELATIONAL, VQAData
from rnnkit.runs.checkpoint import RunDir
from rnnkit.tasks.base import Prepared, Task, refuse_export, training_record
from rnnkit.tasks.vqa.config import VQAConfig, VQARequest
from rnnkit.tasks.vqa.data import batches, encode_questions, fit_tokenizer, prepare_image
from rnnkit.tasks.vqa.model import VQANet
from rnnkit.text import Tokenizer
from rnnkit.training.trainer import to_device

TOKENIZER_FILE = "tokenizer.json"
PREDICT_BATCH = 512            # questions per batch when answering


def _tensors(data: VQAData, idx: np.ndarray, ids: np.ndarray, lengths: np.ndarray,
             y: np.ndarray | None) -> tuple:
    """One batch: (images (I, 3, H, W), image_index (B,) into them, words (B, T), lengths (B,)[, answers (B,)])."""
    used, inverse = np.unique(data.image_index[idx], return_inverse=True)
    words = ids[idx][:, :max(1, int(lengths[idx].max()))]
    out = (torch.from_numpy(data.images[used]).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(inverse),
           torch.from_numpy(words), torch.from_numpy(lengths[idx]))
    return out if y is None else out + (torch.from_numpy(y[idx]),)


class VisualQA(Task, name="vqa"):
    """Answer questions about images; see the module docstring.

    Learned: ``tokenizer_`` (question words), ``answers_`` (the answer list), ``kinds_`` (question kinds of the
    training data, [] for none), ``grid_cells_``, ``model_`` (a :class:`VQANet`), ``trainer_``,
    ``train_seconds_``.
    """

    config_class = VQAConfig
    train_command = "rnnkit vqa train"
    run_files = (TOKENIZER_FILE,)
    side_files = (TOKENIZER_FILE,)
    endpoint = "answer"
    request_class = VQARequest

    # -- fit (the sequence is Task.fit's; these are its steps) --------------------------------------------

    def fit(self, data: VQAData, validation_data: VQAData | None = None, *, run_dir: str | Path | None = None,
            resume: bool = False, dry_run: bool = False, progress: bool | None = None,
            data_info: dict[str, Any] | None = None) -> "VisualQA":
        """Train on ``data`` (a VQAData); ``validation_data`` picks the best epoch and stops early."""
        return super().fit((data, validation_data), run_dir=run_dir, resume=resume, dry_run=dry_run,
                           progress=progress, data_info=data_info)

    def _read_data(self, data: tuple, *, run_dir: str | Path | None, resume: bool,
                   data_info: dict[str, Any] | None = None) -> Prepared:
        train, val = data
        for name, part in (("data", train), ("validation_data", val)):
            if part is not None and not isinstance(part, VQAData):
                _checks.fail(name, type(part).__name__, "a VQAData (rnnkit.datasets.sort_of_clevr.make_split, or "
                                                        "rnnkit.tasks.vqa.data.read_csv)")
        if train.answers is None or not len(train):
            _checks.fail("data", train.source, "questions with answers")
        if val is not None and (val.answers is None or not len(val)):
            val = None
        size = self.config.image_size
        self.answers_ = sorted(set(train.answers))
        self.kinds_ = sorted(set(train.kinds)) if train.kinds else []
        if val is not None:
            only = sorted(set(val.answers) - set(self.answers_))
            if only:
                print(f"{val.source}: answer(s) {', '.join(map(repr, only[:5]))} occur in the validation data but "
                      f"never in training: the model cannot give them", file=sys.stderr)
        for part in (train, val):
            if part is not None and part.images.shape[1:3] != (size, size):
                part.images = np.stack([prepare_image(im, size) for im in part.images])
        info = {"train_questions": len(train), "train_images": int(len(np.unique(train.image_index))),
                "val_questions": 0 if val is None else len(val), **(data_info or {})}
        source = info.get("source") or train.source
        digest = (train.images, train.image_index, train.questions, train.answers,
                  None if val is None else (val.images, val.image_index, val.questions, val.answers))
        return Prepared(source, digest, info=info, train_data=train, val_data=val, items_name="questions")

    def _prepare(self, prepared: Prepared, *, run_dir: str | Path | None, resume: bool, dry_run: bool) -> None:
        cfg, seed = self.config, self.config.train.seed
        train, val = prepared.train_data, prepared.val_data
        if dry_run:
            train = train.subset(range(min(len(train), cfg.train.batch_size)))
            val = None if val is None else val.subset(range(min(len(val), 16)))
        self.tokenizer_ = fit_tokenizer(train.questions, cfg.num_words)
        index = {a: i for i, a in enumerate(self.answers_)}
        ids, lengths, _ = encode_questions(self.tokenizer_, train.questions)
        y = np.array([index[a] for a in train.answers], dtype=np.int64)
        n_images = len(train.images)
        bs = cfg.train.batch_for(len(train))

        def epoch_batches(epoch: int) -> list:
            order = np.random.default_rng([seed, epoch]).permutation(n_images)
            return [_tensors(train, idx, ids, lengths, y) for idx in batches(order, train.image_index, bs)]

        prepared.train = epoch_batches
        if dry_run:
            prepared.train = epoch_batches(0)[:1]
        prepared.val = None
        if val is not None:
            vids, vlen, _ = encode_questions(self.tokenizer_, val.questions)
            vy = np.array([index.get(a, -100) for a in val.answers], dtype=np.int64)   # unknown: always wrong
            prepared.val = [_tensors(val, idx, vids, vlen, vy)
                            for idx in batches(np.arange(len(val.images)), val.image_index, PREDICT_BATCH)]
        prepared.info.update(answers=list(self.answers_), kinds=list(self.kinds_),
                             vocabulary=self.tokenizer_.vocab_size)

    def _build_net(self) -> VQANet:
        from rnnkit.nn.vision import build_encoder

        cfg = self.config
        encoder = None
        if cfg.merge != "none":
            kw = {"channels": cfg.channels, "blocks": cfg.blocks} if cfg.encoder == "small-cnn" else {}
            encoder = build_encoder(cfg.encoder, pretrained=self.__dict__.get("_pretrained", True), **kw)
            if cfg.encoder != "small-cnn" and not cfg.fine_tune:
                encoder.requires_grad_(False)
        size = cfg.image_size if encoder is None or encoder.image_size is None else encoder.image_size[0]
        self.grid_cells_ = self._grid_cells(encoder, size)
        return VQANet(encoder, merge=cfg.merge, num_answers=len(self.answers_), vocab=self.tokenizer_.vocab_size,
                      embedding_size=cfg.embedding_size, question_size=cfg.question_size, cell=cfg.cell,
                      hidden_size=cfg.hidden_size, grid_cells=self.grid_cells_, dropout=cfg.dropout,
                      film_blocks=cfg.film_blocks, film_channels=cfg.channels)

    @staticmethod
    def _grid_cells(encoder, size: int) -> int:
        if encoder is None:
            return 0
        with torch.no_grad():
            was = encoder.training
            grid = encoder.eval()(torch.zeros(1, 3, size, size))
            encoder.train(was)
        return int(grid.shape[2] * grid.shape[3])

    def _make_model(self, prepared: Prepared) -> VQANet:
        return self._build_net()

    def _loss(self, prepared: Prepared, net: VQANet, batch: Any, state: Any) -> tuple:
        *inputs, y = batch
        logits = net(*inputs)
        return torch.nn.functional.cross_entropy(logits, y), None, len(y)

    def _validation_metrics(self, prepared: Prepared, net: VQANet) -> dict[str, float]:
        device = next(net.parameters()).device
        total, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for batch in prepared.val:
                *inputs, y = to_device(batch, device)
                logits = net(*inputs)
                known = y >= 0
                if known.any():
                    total += float(torch.nn.functional.cross_entropy(logits[known], y[known], reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
                n += len(y)
        return {"val_loss": total / n, "val_accuracy": correct / n, "val_error": 1 - correct / n}

    def _save_encoder(self, run: RunDir) -> None:
        self._save_files(run)

    # -- answering ---------------------------------------------------------------------------------------

    def predict_proba(self, data: VQAData) -> np.ndarray:
        """(Q, answers) probabilities of every answer for each question of ``data``."""
        self._check_fitted()
        size = self.config.image_size
        if data.images.shape[1:3] != (size, size):
            data = VQAData(np.stack([prepare_image(im, size) for im in data.images]), data.image_index,
                           data.questions, data.answers, data.kinds, data.source, data.lines, data.names)
        ids, lengths, _ = encode_questions(self.tokenizer_, data.questions)
        net = self.model_.eval()
        device = next(net.parameters()).device
        out = np.zeros((len(data), len(self.answers_)), dtype=np.float32)
        with torch.no_grad():
            for idx in batches(np.arange(len(data.images)), data.image_index, PREDICT_BATCH):
                inputs = to_device(_tensors(data, idx, ids, lengths, None), device)
                out[idx] = torch.softmax(net(*inputs), 1).cpu().numpy()
        return out

    def predict(self, data: VQAData) -> list[str]:
        return [self.answers_[k] for k in self.predict_proba(data).argmax(1)]

    def evaluate(self, data: VQAData) -> dict[str, Any]:
        """Accuracy overall; with question kinds also non-relational, relational and per kind."""
        self._check_fitted()
        if not isinstance(data, VQAData) or data.answers is None:
            _checks.fail("data", type(data).__name__, "a VQAData with answers")
        right = np.array([p == a for p, a in zip(self.predict(data), data.answers)], dtype=bool)
        out: dict[str, Any] = {"questions": len(data), "accuracy": float(right.mean())}
        if data.kinds:
            kinds = np.array(data.kinds)
            for name, group in (("nonrelational", NONRELATIONAL), ("relational", RELATIONAL)):
                mask = np.isin(kinds, group)
                if mask.any():
                    out[f"{name}_accuracy"] = float(right[mask].mean())
            out["per_kind"] = {k: {"accuracy": float(right[kinds == k].mean()), "questions": int((kinds == k).sum())}
                               for k in sorted(set(data.kinds))}
        return out

    # -- save / load -------------------------------------------------------------------------------------

    def fitted_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {"answers": list(self.answers_), "kinds": list(self.kinds_),
                                  "grid_cells": self.grid_cells_,
                                  "train_seconds": self.__dict__.get("train_seconds_", 0.0)}
        training = training_record(self.__dict__.get("trainer_"))
        if training is not None:
            values["training"] = training
        return values

    def _save_files(self, run: RunDir) -> None:
        self.tokenizer_.save(run.file(TOKENIZER_FILE))

    def _load_files(self, run: RunDir, fitted: dict[str, Any], tensors: dict[str, Any], **options: Any) -> None:
        for key in ("answers", "kinds"):
            if key not in fitted:
                raise ValueError(f"{run.config_path}: fitted.{key} is missing; expected a run written by "
                                 f"'rnnkit vqa train'")
        self.answers_, self.kinds_ = list(fitted["answers"]), list(fitted["kinds"])
        self.train_seconds_ = fitted.get("train_seconds", 0.0)
        run.require(TOKENIZER_FILE)
        self.tokenizer_ = Tokenizer.load(run.file(TOKENIZER_FILE))
        self._pretrained = False          # the run's own weights replace the pretrained ones: nothing to fetch
        net = self._build_net()
        self._hold_weights(net, tensors, run)

    # -- the Task protocol: what serve, export and the CLI's apply verb call ------------------------------

    def details(self) -> dict[str, Any]:
        self._check_fitted()
        return {"answers": list(self.answers_), "question_kinds": list(self.kinds_), "merge": self.config.merge,
                "encoder": self.config.encoder, "image_size": self.config.image_size,
                "vocabulary": self.tokenizer_.vocab_size}

    def ask(self, image: np.ndarray, question: str) -> dict[str, Any]:
        """The answer to ``question`` about ``image`` ((H, W, 3) in [0, 1]): the answer, every answer's
        probability, and the question's words the model does not know."""
        self._check_fitted()
        if not isinstance(question, str) or not question.strip():
            _checks.fail("question", question, "a question in words")
        _, _, known = encode_questions(self.tokenizer_, [question])
        words = self.tokenizer_._tokens(question)
        unknown = [w for w in words if w not in self.tokenizer_.word_index
                   or (self.tokenizer_.num_words is not None
                       and self.tokenizer_.word_index[w] >= self.tokenizer_.num_words)]
        if known[0] == 0:
            shown = " ".join(list(self.tokenizer_.word_index)[1:13])
            raise ValueError(f"question={question!r}: none of its words occurs in the training questions; expected "
                             f"a question in their words (e.g. {shown} ...)")
        data = VQAData(prepare_image(image, self.config.image_size)[None], np.zeros(1, np.int64), [question], None)
        probs = self.predict_proba(data)[0]
        best = int(probs.argmax())
        return {"answer": self.answers_[best], "probabilities": {a: float(p) for a, p in zip(self.answers_, probs)},
                "unknown_words": unknown}

    def apply(self, request: VQARequest | dict[str, Any]) -> dict[str, Any]:
        """The answer to ``request.question`` about ``request.image`` (base64 of an image file)."""
        from rnnkit.datasets.images import decode_image_field, read_image

        request = self.make_request(request)
        image = read_image(decode_image_field(request.image), name="image")
        return self.ask(image, request.question)

    def export_spec(self, fmt: str):
        self._check_fitted()
        refuse_export("a vqa run (an image encoder and a question encoder)", fmt,
                      f"{'ONNX' if fmt == 'onnx' else 'the C header'} export here covers one-input recurrent "
                      "models; serve the run instead (rnnkit serve, POST /v1/models/NAME/answer)")
