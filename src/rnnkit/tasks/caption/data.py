"""Captioning data: the image sets (digit strips, scenes, a user's Flickr8k-layout folder), the caption vocabulary,
and the training batches.

* Images are kept as one uint8 tensor (N, 3, H, W) (a quarter of float32's memory; 1/255 steps are far below
  what a CNN notices) and turned into floats in [0, 1] a batch at a time. A user's photos are fitted to one size
  as they are read (``rnnkit.datasets.images.fit_size``: keep the aspect ratio, cover the size, cut the centre):
  ``image_size`` x ``image_size`` for the small CNN, 224 x 224 for the pretrained encoder.
* Caption words: lower-cased runs of letters and digits (an apostrophe inside a word kept), so "A dog's ball."
  is ``a dog's ball``. Ids 0-3 are ``<pad> <unk> <start> <end>``; the vocabulary is saved in the run
  (tokenizer.json) with a digest, checked when the run is loaded.
* A training example is one (image, caption) pair: an image with five captions is five examples. A batch holds
  the rows of its images (the images or their cached features are gathered from those rows), ``<start> w_1 ...
  w_n`` and ``w_1 ... w_n <end>``, padded at the end, and the lengths n + 1.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from rnnkit import _checks

PAD, UNK, START, END = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<start>", "<end>")
WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
PRETRAINED_SIZE = (224, 224)


def caption_words(text: str) -> list[str]:
    """The words of a caption as the vocabulary counts them: lower-cased letters and digits."""
    return WORD.findall(text.lower())


class Vocab:
    """Caption words <-> ids; ids 0-3 are SPECIALS."""

    def __init__(self, tokens: list[str]):
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(cls, captions: list[list[str]], num_words: int | None = None, min_count: int = 1) -> "Vocab":
        """From the training captions (each image's list of captions): the words seen ``min_count`` times, most
        frequent first (ties by the word), at most ``num_words`` entries with the specials."""
        counts = Counter(w for caps in captions for c in caps for w in caption_words(c))
        words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        if num_words is not None:
            words = words[:max(0, num_words - len(SPECIALS))]
        return cls([*SPECIALS, *words])

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(w, UNK) for w in caption_words(text)]

    def words(self, ids: list[int]) -> list[str]:
        """The words of ids, up to (not including) <end>; padding dropped."""
        out = []
        for i in ids:
            if i == END:
                break
            if i != PAD:
                out.append(self.itos[i])
        return out

    def to_dict(self) -> dict[str, Any]:
        # "word_index" (word -> id), the shape of rnnkit's Tokenizer files.
        return {"level": "word", "lowercase": True, "word_index": {w: i for i, w in enumerate(self.itos)}}

    @classmethod
    def from_dict(cls, doc: Any, source: str) -> "Vocab":
        index = doc.get("word_index") if isinstance(doc, dict) else None
        if not isinstance(index, dict) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                  for v in index.values()):
            raise ValueError(f"{source}: expected {{\"word_index\": {{word: id, ...}}}}: the caption vocabulary")
        tokens = [None] * len(index)
        for word, i in index.items():
            if not 0 <= i < len(index) or tokens[i] is not None:
                raise ValueError(f"{source}: word {word!r} has id {i}; expected the ids 0..{len(index) - 1}, "
                                 f"each once")
            tokens[i] = word
        if tuple(tokens[:len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"{source}: ids 0-3 are {tokens[:4]}; expected {list(SPECIALS)}")
        return cls(tokens)


@dataclass
class CaptionSplits:
    """The image sets of a run: train and val (what the model trains and validates on), test (the report) and,
    for scenes, compositional (attribute combinations never seen in training). Each an ImageCaptions (or
    None)."""

    train: Any
    val: Any
    test: Any
    compositional: Any = None
    source: str = ""


def hash_fraction(name: str) -> float:
    """A number in [0, 1) from a file name: the same image falls in the same split every time."""
    return int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:12], 16) / 16 ** 12


def subset(data: Any, rows: list[int]) -> Any:
    from rnnkit.datasets.images import ImageCaptions

    images = data.images[rows] if isinstance(data.images, np.ndarray) else [data.images[i] for i in rows]
    return ImageCaptions(images, [data.captions[i] for i in rows], [data.ids[i] for i in rows])


def load_splits(cfg: Any, only: str | None = None) -> CaptionSplits:
    """The images of ``cfg`` (a CaptionConfig): a named set built from its seed, or the user's folder split by a
    hash of each image's name into training, validation and test. ``only``: build just that part of a named set
    (each part has its own random stream, so it comes out the same; the others are empty)."""
    if cfg.images is not None:
        from rnnkit.datasets.images import read_caption_folder

        size = PRETRAINED_SIZE if cfg.encoder != "small-cnn" else (cfg.image_size, cfg.image_size)
        data = read_caption_folder(cfg.images, cfg.captions, size=size)
        where = [hash_fraction(i) for i in data.ids]
        test = [k for k, f in enumerate(where) if f < cfg.test_frac]
        val = [k for k, f in enumerate(where) if cfg.test_frac <= f < cfg.test_frac + cfg.val_frac]
        train = [k for k, f in enumerate(where) if f >= cfg.test_frac + cfg.val_frac]
        if not train or not val:
            raise ValueError(f"captions={cfg.captions!r}: {len(data)} images give {len(train)} for training and "
                             f"{len(val)} for validation (val_frac={cfg.val_frac}, test_frac={cfg.test_frac}); "
                             f"expected at least one of each: more images, or other shares")
        return CaptionSplits(subset(data, train), subset(data, val), subset(data, test) if test else None,
                             source=str(cfg.captions))
    def count(part: str, n: int) -> int:
        return n if only is None or only == part else 0

    train_n, val_n, test_n = count("train", cfg.train_images), count("val", cfg.val_images), cfg.test_images
    if cfg.dataset == "digit-strips":
        from rnnkit.datasets.digit_strips import digit_strips

        parts = digit_strips(train_n, val_n, count("test", test_n), seed=cfg.data_seed)
        return CaptionSplits(parts["train"], parts["val"], parts["test"] if cfg.test_images else None,
                             source="digit-strips")
    from rnnkit.datasets.scenes import scenes

    parts = scenes(train_n, val_n, count("test", test_n), count("compositional", test_n), seed=cfg.data_seed)
    return CaptionSplits(parts["train"], parts["val"], parts["test"] if cfg.test_images else None,
                         parts["compositional"] if cfg.test_images else None, source="scenes")


def image_tensor(images: Any) -> Any:
    """(N, H, W, 3) floats in [0, 1] (an array, or a list of equal-size arrays) -> uint8 tensor (N, 3, H, W)."""
    import torch

    array = np.asarray(images if isinstance(images, np.ndarray) else np.stack(images), dtype=np.float32)
    if array.ndim != 4 or array.shape[3] != 3:
        _checks.fail("images", array.shape, "(N, H, W, 3) images of one size")
    return torch.from_numpy(np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)).permute(0, 3, 1, 2).contiguous()


def as_float(images: Any) -> Any:
    """uint8 (B, 3, H, W) -> float32 in [0, 1]."""
    return images.float().div_(255.0)


def encode_pairs(captions: list[list[str]], vocab: Vocab) -> tuple[np.ndarray, list[list[int]]]:
    """One example per (image, caption): each example's image row and caption ids (``check_captions`` has
    refused captions with no word)."""
    rows, seqs = [], []
    for i, caps in enumerate(captions):
        for c in caps:
            rows.append(i)
            seqs.append(vocab.encode(c))
    return np.asarray(rows, dtype=np.int64), seqs


def check_captions(data: Any, name: str) -> None:
    """Every image has at least one caption with a word in it: else a one-line error naming the image."""
    if len(data.captions) != len(data.ids) or len(data.ids) != len(data.images):
        _checks.fail(name, f"{len(data.images)} images, {len(data.captions)} caption lists, {len(data.ids)} ids",
                     "one caption list and one id per image")
    for i, caps in enumerate(data.captions):
        if not caps:
            _checks.fail(f"{name}.captions[{i}]", caps, f"at least one caption for image {data.ids[i]!r}")
        for j, c in enumerate(caps):
            if not isinstance(c, str) or not caption_words(c):
                _checks.fail(f"{name}.captions[{i}][{j}]", c, f"a caption with at least one word (image "
                                                              f"{data.ids[i]!r})")


def make_batch(rows: np.ndarray, seqs: list[list[int]]) -> tuple:
    """rows (B,), caption ids -> (rows (B,), tokens_in (B, T), tokens_out (B, T), lengths (B,)), T = longest + 1."""
    import torch

    lengths = np.array([len(s) + 1 for s in seqs], dtype=np.int64)
    T = int(lengths.max())
    tokens_in = np.zeros((len(seqs), T), dtype=np.int64)
    tokens_out = np.zeros((len(seqs), T), dtype=np.int64)
    for b, s in enumerate(seqs):
        tokens_in[b, 0] = START
        tokens_in[b, 1:len(s) + 1] = s
        tokens_out[b, :len(s)] = s
        tokens_out[b, len(s)] = END
    return (torch.from_numpy(np.asarray(rows, dtype=np.int64)), torch.from_numpy(tokens_in),
            torch.from_numpy(tokens_out), torch.from_numpy(lengths))


def batches(rows: np.ndarray, seqs: list[list[int]], batch_size: int,
            rng: Optional[np.random.Generator] = None) -> list[tuple]:
    """The examples in batches of ``batch_size`` (shuffled by ``rng``, else in order)."""
    order = rng.permutation(len(seqs)) if rng is not None else np.arange(len(seqs))
    return [make_batch(rows[order[k:k + batch_size]], [seqs[i] for i in order[k:k + batch_size]])
            for k in range(0, len(order), batch_size)]
