"""Image captioning (one to many): a CNN reads the image, a recurrent decoder writes its caption word by word.

    from rnnkit.tasks import Captioner
    cap = Captioner(dataset="digit-strips", max_minutes=10).fit()        # real handwriting, 3-6 digits a strip
    cap.caption("strip.png")                                            # 'four two seven'
    cap.caption(image_array, beam=3, details=True)                      # a Caption: words, attention, capped
    cap.evaluate(test_images)                                            # BLEU-1..4 (sacrebleu, 0-100), exact match
    cap.save("runs/strips"); Captioner.load("runs/strips"); rnnkit.load("runs/strips")

The main path reads in three places: the model (``model.py``: Show and Tell, or Show, Attend and Tell through the
cell ``context`` hook of :class:`rnnkit.nn.RNN`), the shared Trainer (teacher forcing; the loss is the caption
words' cross-entropy plus the doubly stochastic regulariser), and generation (greedy and sampling by
:func:`rnnkit.generation.stateful.decode`, beam search by :func:`rnnkit.generation.search.batch_beam_search`,
all over :meth:`CaptionNet.step`).

Choices a user should know about:

* A frozen encoder (the pretrained one, by default) computes each image's features once, before training
  (``rnnkit.nn.vision.encode_all``); the decoder then trains on the cached grids and never runs the CNN. The small
  CNN starts from random weights and so trains with the decoder (``fine_tune_encoder``).
* Images to describe are fitted to the training images' size (``image_shape_``) with
  ``rnnkit.datasets.images.fit_size`` (keep the aspect ratio, cover the size, cut the centre), whatever their
  size: a tiny image is scaled up, a huge one down (files over 40 megapixels are refused by ``read_image``).
* A caption ends at ``<end>``; one that has not written it after ``max_tokens`` words (by default twice the
  longest training caption + 5) is cut there and marked ``capped``: a model that never learned to stop cannot
  loop for ever, and the output says that it was cut.
* BLEU is sacrebleu's corpus BLEU on its 0-100 scale (a perfect caption scores 100.0, not 1.0); every report
  says so in ``bleu_scale``.
* The caption vocabulary is saved with the run (tokenizer.json) and its digest recorded: a run whose word map
  was changed or swapped is refused when loaded, and weights whose word count differs from the vocabulary's
  are refused too.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit import _checks
from rnnkit.datasets.images import decode_image_field
from rnnkit.generation.processors import LogitsProcessorList, make_processors
from rnnkit.generation.search import batch_beam_search, expand_rows, make_generator
from rnnkit.generation.stateful import decode
from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.io import atomic_write_json
from rnnkit.tasks.base import Prepared, Task, refuse_export, training_record
from rnnkit.tasks.caption.config import CAP_EXTRA, CAP_FACTOR, CaptionConfig, CaptionRequest
from rnnkit.tasks.caption.data import (END, START, CaptionSplits, Vocab, as_float, batches, caption_words,
                                       check_captions, encode_pairs, hash_fraction, image_tensor, load_splits,
                                       subset)
from rnnkit.tasks.caption.model import CaptionNet
from rnnkit.training import distributed

TOKENIZER_FILE = "tokenizer.json"
TEST_REPORT = "test_metrics.json"
VAL_DECODE = 500              # validation images decoded greedily after each epoch (val_exact_match, val_bleu4)
DECODE_BATCH = 128
EXAMPLES = 5
DRY_RUN = {"train": 32, "val": 8, "test": 8}
BLEU_SCALE = "0-100 (sacrebleu corpus BLEU; a perfect match is 100.0, not 1.0)"


@dataclass
class Caption:
    """The caption of one image."""

    text: str
    words: list[str]
    log_prob: float                    # summed log-probabilities of its words and <end> (NaN for greedy/sampled
    #                                    captions unless asked for details)
    capped: bool = False               # it reached max_tokens without writing <end>, and was cut there
    attention: Optional[np.ndarray] = None   # (words + 1, h, w): each step's attention over the grid (<end> last)


def _bleu(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """Corpus BLEU-1..4 by sacrebleu, on its 0-100 scale."""
    import sacrebleu

    k = max(len(r) for r in references)
    streams = [[r[j] if j < len(r) else None for r in references] for j in range(k)]
    out = {}
    for n in (1, 2, 3, 4):
        bleu = sacrebleu.metrics.BLEU(max_ngram_order=n, effective_order=True)
        out[f"bleu{n}"] = float(bleu.corpus_score(hypotheses, streams).score)
    return out


class EndAtCap:
    """A logits processor: once a row has written ``cap`` words, <end> is its only choice. ``tokens`` (N, 1 + t):
    <start> and the t words so far."""

    def __init__(self, cap: int):
        self.cap = cap

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] - 1 < self.cap:
            return logits
        only_end = torch.full_like(logits, -math.inf)
        only_end[:, END] = 0.0
        return only_end


class Captioner(Task, name="caption"):
    """Describe images in words; see the module docstring.

    ``Captioner(config)`` or ``Captioner(model="show-tell", encoder="small-cnn", lr=1e-3, ...)``. Learned after
    ``fit`` or ``load``: ``vocab_``, ``model_``, ``image_shape_`` (the (H, W) images are fitted to),
    ``grid_`` (the encoder's (h, w) grid), ``max_caption_words_`` (the longest training caption); after ``fit``
    also ``trainer_``, ``history_``, ``metrics_``, ``test_metrics_`` and ``data_``.
    """

    config_class = CaptionConfig
    train_command = "rnnkit caption train"
    run_files = (TOKENIZER_FILE, TEST_REPORT, "attention*.png")
    side_files = (TOKENIZER_FILE,)
    endpoint = "caption"                 # the Task protocol's uniform apply: see the end of the class
    request_class = CaptionRequest

    # -- fit (the sequence is Task.fit's; these are its steps) ------------------------------------------

    def fit(self, data: Any = None, validation_data: Any = None, *, test_data: Any = None,
            run_dir: str | Path | None = None, resume: bool = False, dry_run: bool = False,
            progress: bool | None = None) -> "Captioner":
        """Train on ``data`` (an ImageCaptions: images (N, H, W, 3) in [0, 1], a list of captions per image, ids),
        or with None on the config's data set or folder; ``validation_data`` picks the best epoch (None: the
        config's, or ``val_frac`` of the given images by a hash of their ids); ``test_data`` (None: the config's
        test split, and for scenes the compositional one) is described after training into ``test_metrics_``."""
        return super().fit((data, validation_data, test_data), run_dir=run_dir, resume=resume, dry_run=dry_run,
                           progress=progress, sample=dry_run)

    def _read_data(self, data: tuple, *, run_dir: str | Path | None, resume: bool, sample: bool = False) -> Prepared:
        """The images and captions checked; ``sample``: a dry run builds only a few strips or scenes."""
        cfg = self.config
        train, val, test = data
        if train is None:
            if sample and cfg.images is None:
                cfg = dataclasses.replace(cfg, **{k: min(getattr(cfg, k), 2 * n) for k, n in DRY_RUN.items()
                                                  for k in [f"{k}_images"]})
            splits = load_splits(cfg)
        else:
            if val is None:
                where = [hash_fraction(str(i)) for i in train.ids]
                keep = [k for k, f in enumerate(where) if f >= cfg.val_frac]
                held = [k for k, f in enumerate(where) if f < cfg.val_frac]
                if not keep or not held:
                    _checks.fail("validation_data", None, f"validation images, or more than {len(train.ids)} images "
                                                          f"to hold val_frac={cfg.val_frac} of them out")
                train, val = subset(train, keep), subset(train, held)
            splits = CaptionSplits(train, val, test, source="images passed to fit")
        check_captions(splits.train, "data")
        check_captions(splits.val, "validation_data")
        for name in ("test", "compositional"):
            part = getattr(splits, name)
            if part is not None:
                check_captions(part, f"{name}_data")
        shapes = {tuple(np.shape(im)) for im in (splits.train.images if isinstance(splits.train.images, list)
                                                  else [splits.train.images[0]])}
        if len(shapes) > 1:
            _checks.fail("data.images", f"{len(shapes)} sizes", "images of one size (fit them with "
                                                                 "rnnkit.datasets.images.fit_size)")
        train_x, val_x = image_tensor(splits.train.images), image_tensor(splits.val.images)
        if tuple(val_x.shape[1:]) != tuple(train_x.shape[1:]):
            _checks.fail("validation_data.images", tuple(val_x.shape[2:]), f"the training images' size "
                                                                            f"{tuple(train_x.shape[2:])}")
        digest = (splits.train.ids, splits.train.captions, train_x, splits.val.ids, splits.val.captions, val_x)
        return Prepared(splits.source, digest, splits=splits, train_x=train_x, val_x=val_x, run_dir=run_dir,
                        items_name="captions")

    def _prepare(self, prepared: Prepared, *, run_dir: str | Path | None, resume: bool, dry_run: bool) -> None:
        from rnnkit.nn.vision import encode_all

        cfg, train_cfg = self.config, self.config.train
        splits = prepared.splits
        if dry_run:
            splits = dataclasses.replace(splits, **{k: subset(getattr(splits, k), list(range(min(
                n, len(getattr(splits, k).ids))))) for k, n in DRY_RUN.items() if getattr(splits, k) is not None})
            if splits.compositional is not None:
                splits.compositional = subset(splits.compositional, list(range(min(8, len(splits.compositional)))))
            prepared.train_x, prepared.val_x = image_tensor(splits.train.images), image_tensor(splits.val.images)
            prepared.splits = splits
        if resume:
            RunDir(run_dir).require(TOKENIZER_FILE)
            self.vocab_ = Vocab.from_dict(RunDir(run_dir).read_json(TOKENIZER_FILE), str(RunDir(run_dir).file(
                TOKENIZER_FILE)))
        else:
            self.vocab_ = Vocab.build(splits.train.captions, cfg.num_words, cfg.min_count)
        rows, seqs = encode_pairs(splits.train.captions, self.vocab_)
        val_rows, val_seqs = encode_pairs(splits.val.captions, self.vocab_)
        self.max_caption_words_ = max(len(s) for s in seqs)
        H, W = prepared.train_x.shape[2:]
        self.image_shape_ = (int(H), int(W))
        # The encoder: built here (its grid size and, when frozen, the cached features are needed before the
        # model), seeded so a from-scratch one starts the same every run.
        torch.manual_seed(train_cfg.seed)
        encoder = self._build_encoder(pretrained=True)   # frozen features need its real weights
        if encoder.image_size is not None and tuple(encoder.image_size) != (H, W):
            # An encoder that takes one size (the pretrained one: 224 x 224) gets every image fitted to it.
            from rnnkit.datasets.images import fit_size

            H, W = self.image_shape_ = tuple(int(v) for v in encoder.image_size)
            if cfg.fine_tunes:
                prepared.train_x = image_tensor([fit_size(im, (H, W)) for im in splits.train.images])
                prepared.val_x = image_tensor([fit_size(im, (H, W)) for im in splits.val.images])
        self.grid_ = tuple(int(v) for v in encoder.grid_size(H, W))
        self.channels_ = int(encoder.out_channels)
        self.fine_tuned_ = cfg.fine_tunes
        prepared.encoder = encoder
        if not self.fine_tuned_:
            # Frozen: every image's grid once; the decoder trains on these and the CNN never runs again.
            start = time.monotonic()
            encoder.requires_grad_(False)
            prepared.train_x = encode_all(encoder, splits.train.images, batch_size=64)
            prepared.val_x = encode_all(encoder, splits.val.images, batch_size=64)
            print(f"features of {len(splits.train.ids) + len(splits.val.ids):,} images computed once by the "
                  f"frozen {cfg.encoder} encoder ({time.monotonic() - start:.1f} s): a "
                  f"{self.channels_} x {self.grid_[0]} x {self.grid_[1]} grid each", file=sys.stderr)
        bs = train_cfg.batch_for(len(seqs))
        seed = train_cfg.seed
        prepared.train = lambda epoch: batches(rows, seqs, bs, np.random.default_rng([seed, epoch]))
        if dry_run:
            prepared.train = batches(rows, seqs, bs, np.random.default_rng(seed))[:1]
        prepared.val = batches(val_rows, val_seqs, 256)
        prepared.val_images = list(range(min(VAL_DECODE, len(splits.val.ids))))
        unknown = sum(1 for s in val_seqs for t in s if t == 1)
        given = splits.source == "images passed to fit"        # then the config's data set is not the data
        prepared.info = {"dataset": None if given else cfg.dataset, "images": None if given else cfg.images,
                         "captions": None if given else cfg.captions,
                         "sizes": {k: (0 if getattr(splits, k) is None else len(getattr(splits, k).ids))
                                   for k in ("train", "val", "test", "compositional")},
                         "train_captions": len(seqs), "vocabulary": len(self.vocab_),
                         "val_unknown_words": unknown, "image_shape": list(self.image_shape_)}
        print(f"{splits.source}: {len(splits.train.ids):,} training images ({len(seqs):,} captions), "
              f"{len(splits.val.ids):,} validation, "
              f"{0 if splits.test is None else len(splits.test.ids):,} test; vocabulary {len(self.vocab_)} words; "
              f"images {H}x{W} -> {self.grid_[0]}x{self.grid_[1]} grid of {self.channels_}; longest caption "
              f"{self.max_caption_words_} words", file=sys.stderr)

    def _build_encoder(self, pretrained: bool = True):
        from rnnkit.nn.vision import build_encoder

        cfg = self.config
        if cfg.encoder == "small-cnn":
            return build_encoder("small-cnn", channels=cfg.encoder_channels, blocks=cfg.encoder_blocks)
        # Frozen (the default for it): no gradients, and train() leaves it in eval mode (BatchNorm's statistics).
        return build_encoder(cfg.encoder, pretrained=pretrained, trainable=cfg.fine_tunes)

    def _build_model(self, encoder) -> CaptionNet:
        cfg = self.config
        net = CaptionNet(encoder, len(self.vocab_), self.grid_, self.channels_, cfg.model, cfg.cell,
                         cfg.embedding_size, cfg.hidden_size, cfg.attention_size, cfg.dropout)
        if not self.fine_tuned_:
            net.encoder.requires_grad_(False)
        return net

    def _make_model(self, prepared: Prepared) -> CaptionNet:
        return self._build_model(prepared.encoder)

    def _grids(self, model: CaptionNet, store: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The feature grids (B, C, h, w) of the examples' images: cached ones gathered, or the CNN run."""
        device = next(model.parameters()).device
        x = store.index_select(0, rows.cpu()).to(device)
        return x if not self.fine_tuned_ else model.features(as_float(x))

    def _loss(self, prepared: Prepared, model: CaptionNet, batch: Any, state: Any) -> tuple:
        rows, tokens_in, tokens_out, lengths = batch
        logits, alpha_sum = model(self._grids(model, prepared.train_x, rows), tokens_in, lengths)
        # Mean over the caption words and <end>; padding (id 0) never counts.
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tokens_out.flatten(), ignore_index=0)
        if alpha_sum is not None and self.config.doubly_stochastic > 0:
            loss = loss + self.config.doubly_stochastic * ((1.0 - alpha_sum) ** 2).mean()
        return loss, None, len(rows)

    def _validation_metrics(self, prepared: Prepared, model: CaptionNet) -> dict[str, float]:
        """``val_loss`` (nats per caption word, <end> included) and, on up to VAL_DECODE images decoded greedily,
        ``val_exact_match`` and ``val_bleu4`` (0-100)."""
        nats, count = 0.0, 0
        with torch.no_grad():
            for rows, tokens_in, tokens_out, lengths in prepared.val:
                device = next(model.parameters()).device
                logits, _ = model(self._grids(model, prepared.val_x, rows), tokens_in.to(device),
                                  lengths.to(device))
                nats += float(F.cross_entropy(logits.flatten(0, 1).float(), tokens_out.to(device).flatten(),
                                              ignore_index=0, reduction="sum"))
                count += int((tokens_out != 0).sum())
        metrics = {"val_loss": nats / max(count, 1)}
        picked = prepared.val_images
        if picked:
            grids = self._grid_store(model, prepared.val_x[picked])
            outs = self._decode_grids(_on_cpu(model, self), grids)
            refs = [[" ".join(caption_words(c)) for c in prepared.splits.val.captions[i]] for i in picked]
            metrics["val_exact_match"] = float(np.mean([o.text in r for o, r in zip(outs, refs)]))
            metrics["val_bleu4"] = _bleu([o.text for o in outs], refs)["bleu4"]
        return metrics

    def _grid_store(self, model: CaptionNet, store: torch.Tensor) -> torch.Tensor:
        """Cached grids as they are, or the images of ``store`` through the CNN (on the CPU, in batches)."""
        if not self.fine_tuned_:
            return store
        cpu = _on_cpu(model, self)
        was = cpu.training
        cpu.eval()
        with torch.no_grad():
            out = torch.cat([cpu.features(as_float(store[k:k + DECODE_BATCH]))
                             for k in range(0, len(store), DECODE_BATCH)])
        cpu.train(was)
        return out

    def _save_encoder(self, run: RunDir) -> None:
        self._save_files(run)         # a stopped run can still describe from its best checkpoint

    def _after_fit(self, prepared: Prepared) -> None:
        """The test report (``test_metrics_``; test_metrics.json in the run): greedy, BLEU-1..4 and exact match on
        the test split, and on the compositional split beside it (scenes)."""
        splits = prepared.splits
        report = {}
        for name in ("test", "compositional"):
            part = getattr(splits, name)
            if part is not None and len(part.ids):
                report[name] = self.evaluate(part)
        self.test_metrics_ = report
        if report and prepared.run_dir is not None and distributed.is_main():
            atomic_write_json(RunDir(prepared.run_dir).file(TEST_REPORT), report)

    # -- describing images ---------------------------------------------------------------------------------

    def _image(self, image: Any, name: str) -> np.ndarray:
        """A path, the bytes of a file or an (H, W, 3) array in [0, 1] -> the array, fitted to image_shape_."""
        from rnnkit.datasets.images import fit_size, read_image

        if isinstance(image, (str, Path, bytes, bytearray)):
            image = read_image(bytes(image) if isinstance(image, bytearray) else image, name=name)
        array = np.asarray(image, dtype=np.float32)
        if array.ndim != 3 or array.shape[2] != 3 or not array.size:
            _checks.fail(name, getattr(array, "shape", None), "an (H, W, 3) RGB image in [0, 1], a path or the "
                                                              "bytes of an image file")
        if tuple(array.shape[:2]) != tuple(self.image_shape_):
            array = fit_size(array, self.image_shape_)        # the documented rule: aspect kept, centre cut
        return array

    def caption(self, images: Any, *, beam: int | None = None, greedy: bool = True, temperature: float = 1.0,
                 seed: int | None = None, max_tokens: int | None = None, return_attention: bool = False,
                 details: bool = False) -> Any:
        """The caption of one image (a str back) or of a list of images (a list back, in order).

        An image is a path, the bytes of an image file, or an (H, W, 3) array in [0, 1]; it is fitted to the
        training images' size (see the module docstring). Greedy by default; ``beam=N`` keeps N hypotheses per
        image (all images decoded together); ``greedy=False`` draws each word (``temperature``, ``seed``).
        ``max_tokens``: most words (default: twice the longest training caption + 5). With ``details`` or
        ``return_attention`` each result is a :class:`Caption` (its words, log-probability, ``capped``, and the
        attention (steps x h x w) with ``return_attention``)."""
        self._check_fitted()
        single = images.ndim == 3 if isinstance(images, np.ndarray) else not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        if not items:
            _checks.fail("images", images, "an image or a non-empty list of images")
        model = _on_cpu(self.model_, self)
        was = model.training
        model.eval()
        out: list[Caption] = []
        try:
            with torch.no_grad():
                for k in range(0, len(items), DECODE_BATCH):     # a batch of images at a time: memory stays flat
                    arrays = [self._image(im, "image" if single else f"images[{k + i}]")
                              for i, im in enumerate(items[k:k + DECODE_BATCH])]
                    grids = model.features(as_float(image_tensor(np.stack(arrays))))
                    out += self._decode_grids(model, grids, beam=beam, greedy=greedy, temperature=temperature,
                                              seed=None if seed is None else seed + k, max_tokens=max_tokens,
                                              return_attention=return_attention,
                                              rescore=details or return_attention)
        finally:
            model.train(was)
        if not (details or return_attention):
            out = [c.text for c in out]
        return out[0] if single else out

    def _decode_grids(self, model: CaptionNet, grids: torch.Tensor, *, beam: int | None = None,
                      greedy: bool = True, temperature: float = 1.0, seed: int | None = None,
                      max_tokens: int | None = None, return_attention: bool = False,
                      rescore: bool = False) -> list[Caption]:
        _checks.check_int("beam", beam, min=1, cap=_checks.MAX_BEAM, allow_none=True)
        _checks.check_int("max_tokens", max_tokens, min=1, cap=1000, allow_none=True)
        _checks.check_float("temperature", temperature, min=0, max=_checks.MAX_TEMPERATURE)
        _checks.check_int("seed", seed, min=0, max=2**63 - 1, allow_none=True)
        if beam is not None and not greedy:
            raise ValueError("greedy=False (sampling) and beam: choose one (beam search keeps the most likely "
                             "captions)")
        if return_attention and not model.attends:
            _checks.fail("return_attention", True, "a show-attend-tell run (a show-tell decoder has no attention)")
        cap = max_tokens or self.cap_words()
        sample = not greedy and temperature > 0
        chain = LogitsProcessorList([*make_processors(temperature if sample else 1.0, None, None), EndAtCap(cap)])
        generator = make_generator(seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())) \
            if sample else None
        was = model.training
        model.eval()
        out: list[Caption] = []
        try:
            with torch.no_grad():
                for k in range(0, len(grids), DECODE_BATCH):
                    out += self._decode_batch(model, grids[k:k + DECODE_BATCH], beam, chain, generator, cap,
                                              return_attention, rescore)
        finally:
            model.train(was)
        return out

    def _decode_batch(self, model, grid, beam, chain, generator, cap, want_attention, rescore) -> list[Caption]:
        B = grid.shape[0]
        state, memory = model.start(grid)
        start = torch.full((B,), START, dtype=torch.long)
        logits, state, attention = model.step(start, state, memory)            # the first word, once per image
        if beam is not None:
            memory_k = expand_rows(memory, beam)                   # fixed: bound to the step, never reordered
            res = batch_beam_search(lambda tokens, st: model.step(tokens, st, memory_k), state, logits, beam,
                                    cap + 1, END, attention=attention, prefix=start.unsqueeze(1), processors=chain,
                                    return_attention=want_attention)
            return [self._caption(res.tokens[b, 0, :int(res.lengths[b, 0])].tolist(), float(res.log_probs[b, 0]),
                                  None if res.attention is None else
                                  res.attention[b, 0, :int(res.lengths[b, 0])].float().numpy(), cap)
                    for b in range(B)]
        uniforms = None if generator is None else torch.rand(cap + 1, B, generator=generator)
        tokens = decode(lambda tok, st: model.step(tok, st, memory)[:2], logits, state, cap + 1,
                        processors=chain, greedy=generator is None, uniforms=uniforms, end_token=END,
                        prefix=start.unsqueeze(1))                                 # (B, L)
        logp = att = None
        if rescore or want_attention:
            logp, att = self._rescore(model, grid, tokens, chain, want_attention)
        out = []
        for b in range(B):
            row = tokens[b].tolist()
            n = row.index(END) + 1 if END in row else len(row)
            out.append(self._caption(row[:n], float(logp[b, :n].sum()) if logp is not None else math.nan,
                                     att[b, :n].numpy() if att is not None else None, cap))
        return out

    @staticmethod
    def _rescore(model, grid, tokens, chain, want_attention):
        """Per-word log-probabilities (B, L) of ``tokens`` (0 after <end>), and each step's attention (B, L, S)."""
        state, memory = model.start(grid)
        B, L = tokens.shape
        prev = torch.full((B,), START, dtype=torch.long)
        history = prev.unsqueeze(1)
        logps, atts = [], []
        for t in range(L):
            logits, state, alpha = model.step(prev, state, memory)
            logits = chain(history, logits)
            logps.append(torch.log_softmax(logits.double(), -1).gather(1, tokens[:, t:t + 1]).squeeze(1))
            if want_attention:
                atts.append(alpha)
            prev = tokens[:, t]
            history = torch.cat([history, prev.unsqueeze(1)], 1)
        logp = torch.stack(logps, 1)
        after = (tokens == END).long().cumsum(1) - (tokens == END).long()
        logp = logp.masked_fill((after > 0) | (tokens == 0), 0.0)
        return logp, (torch.stack(atts, 1).float() if want_attention else None)

    def cap_words(self) -> int:
        """The default most words of a caption: CAP_FACTOR x the longest training caption + CAP_EXTRA."""
        self._check_fitted()
        return CAP_FACTOR * self.max_caption_words_ + CAP_EXTRA

    def _caption(self, ids: list[int], log_prob: float, attention, cap: int) -> Caption:
        words = self.vocab_.words(ids)
        # Cut: it wrote cap words and then only the forced <end> (or ran out of steps without one).
        capped = len(words) >= cap
        if attention is not None:
            attention = np.asarray(attention, dtype=np.float32).reshape(len(attention), *self.grid_)
        return Caption(" ".join(words), words, log_prob, capped, attention)

    # -- evaluation ---------------------------------------------------------------------------------------

    def evaluate(self, data: Any, *, beam: int | None = None, max_tokens: int | None = None) -> dict[str, Any]:
        """BLEU-1..4 (sacrebleu's corpus BLEU, 0-100; all of an image's captions are its references), exact match
        (the caption equals one of them), the captions that reached the cap, and a few examples; greedy, or beam
        search with ``beam``. ``data``: an ImageCaptions (images, captions per image, ids)."""
        self._check_fitted()
        check_captions(data, "data")
        out = self.caption(list(data.images), beam=beam, max_tokens=max_tokens, details=True) \
            if len(data.ids) else []
        refs = [[" ".join(caption_words(c)) for c in caps] for caps in data.captions]
        hyps = [c.text for c in out]
        return {"images": len(hyps), "decoding": "greedy" if beam is None else f"beam {beam}",
                "bleu_scale": BLEU_SCALE, **_bleu(hyps, refs),
                "exact_match": float(np.mean([h in r for h, r in zip(hyps, refs)])),
                "capped": sum(c.capped for c in out),
                "examples": [{"id": data.ids[i], "caption": hyps[i], "reference": data.captions[i][0]}
                             for i in range(min(EXAMPLES, len(hyps)))]}

    # -- saving and loading ----------------------------------------------------------------------------

    def fitted_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {"max_caption_words": self.max_caption_words_,
                                  "image_shape": list(self.image_shape_), "grid": list(self.grid_),
                                  "channels": self.channels_, "fine_tuned": self.fine_tuned_,
                                  "vocabulary_size": len(self.vocab_)}
        trainer = self.__dict__.get("trainer_")
        if trainer is not None and trainer.stop_reason is not None:
            values["training"] = {**training_record(trainer), "seconds": round(trainer.train_seconds, 1)}
        return values

    def _save_files(self, run: RunDir) -> None:
        run.write_json(TOKENIZER_FILE, self.vocab_.to_dict())

    def _load_files(self, run: RunDir, fitted: dict[str, Any], tensors: dict[str, Any], **options: Any) -> None:
        for key in ("max_caption_words", "image_shape", "grid", "channels", "fine_tuned", "vocabulary_size"):
            if key not in fitted:
                raise ValueError(f"{run.config_path}: fitted.{key} is missing; expected a run written by "
                                 f"'rnnkit caption train'")
        run.require(TOKENIZER_FILE)
        self.vocab_ = Vocab.from_dict(run.read_json(TOKENIZER_FILE), str(run.file(TOKENIZER_FILE)))
        if len(self.vocab_) != fitted["vocabulary_size"]:
            raise ValueError(f"{run.file(TOKENIZER_FILE)}: {len(self.vocab_)} words; expected the "
                             f"{fitted['vocabulary_size']} of the vocabulary the model was trained with: this word "
                             f"map is not the run's own")
        self.max_caption_words_ = int(fitted["max_caption_words"])
        self.image_shape_ = tuple(int(v) for v in fitted["image_shape"])
        self.grid_ = tuple(int(v) for v in fitted["grid"])
        self.channels_, self.fine_tuned_ = int(fitted["channels"]), bool(fitted["fine_tuned"])
        # The encoder's weights are the run's own (a pretrained one was saved with the decoder): nothing fetched.
        model = self._build_model(self._build_encoder(pretrained=False))
        self._hold_weights(model, tensors, run)
        self.history_ = run.read_metrics()

    # -- the Task protocol: what serve, export and the CLI's apply verb call ------------------------------

    def details(self) -> dict[str, Any]:
        self._check_fitted()
        return {"model": self.config.model, "encoder": self.config.encoder, "image_shape": list(self.image_shape_),
                "grid": list(self.grid_), "vocabulary": len(self.vocab_),
                "longest_training_caption": self.max_caption_words_, "attention": self.model_.attends}

    def apply(self, request: CaptionRequest | dict[str, Any]) -> dict[str, Any]:
        """The caption of ``request.image`` (an image file as base64): its text and words, whether it was cut at
        the cap, and with ``request.attention`` each step's attention over the feature grid (steps x h x w, the
        last step the one that wrote <end>)."""
        request = self.make_request(request)
        image = decode_image_field(request.image)
        if request.attention and not self.model_.attends:
            _checks.fail("attention", True, "false for a show-tell run (its decoder has no attention)")
        c = self.caption(image, beam=request.beam, greedy=request.greedy, temperature=request.temperature,
                          seed=request.seed, max_tokens=request.max_tokens, return_attention=request.attention,
                          details=True)
        answer: dict[str, Any] = {"caption": c.text, "words": c.words, "capped": c.capped,
                                  "grid": list(self.grid_)}
        if request.attention and c.attention is not None:
            answer["attention"] = np.round(c.attention.astype(np.float64), 4).tolist()
        return answer

    def export_spec(self, fmt: str):
        self._check_fitted()
        refuse_export("a caption run (a CNN image encoder and a recurrent decoder)", fmt,
                      "the exporters write recurrent models over tokens or series, and a captioner starts from a "
                      "convolutional network over an image; use the run through rnnkit (CLI, Python or rnnkit "
                      "serve)")


def _on_cpu(model: CaptionNet, task: Captioner) -> CaptionNet:
    """``model`` if it is on the CPU, else a CPU copy (decoding runs on the CPU)."""
    if next(model.parameters()).device.type == "cpu":
        return model
    with torch.no_grad():
        copy = task._build_model(task._build_encoder(pretrained=False))
        copy.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return copy.eval()
