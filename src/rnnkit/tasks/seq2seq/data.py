"""Sequence to sequence data: pairs from a named dataset or a TSV file, held-out splits, vocabularies, batches.

* **Pairs** are ``(source, target)`` strings. ``number-phrases`` gives numbers 0-9999 as words (num2words)
  and as digits, in either direction (``variant``: ``fr-digits``, the default, or ``digits-en``, ...); the
  words are written with spaces for hyphens and without commas ("quatre-vingt-dix-sept" is read as
  "quatre vingt dix sept"). ``cmudict`` gives English spellings and ARPAbet phonemes, every pronunciation of a
  word as its own pair, with the stress digits stripped unless ``keep_stress`` ("AH0" -> "AH"); a
  pronunciation that only stress told apart from another becomes one pair. ``--tsv FILE`` reads
  ``source<TAB>target`` lines (UTF-8); a line without a tab, or with more than one, is an error naming the
  file and the line; blank lines are skipped. ``--val-tsv`` and ``--test-tsv`` give the validation and test
  pairs as files of their own, instead of holding them out.
* **Held-out splits** are decided by a hash of a key, never by position: the number (number-phrases), the
  word (cmudict: all its pronunciations fall on the same side), the source text (a TSV). A key goes to the
  test part when ``sha1(key)`` read as a fraction in [0, 1) is below ``test_frac``, to validation when it is
  below ``test_frac + val_frac``, else to training. The split is the same on every machine and for every
  order of the data, and no number, word or source text is in two parts.
* **Tokens** are characters, words, or subwords on each side (``level``), of the text in Unicode NFC; runs
  of whitespace are one space. Words are split from their punctuation (:func:`rnnkit.text.split_words`:
  "it." is "it" and "￭.", so the vocabulary does not hold "it", "it.", "it?" and "it,"); vocabularies
  of runs written before that split on whitespace only, and still do. Subwords are learned from the
  training side by byte-pair encoding (``sentencepiece``, as GNMT and OpenNMT use it; "▁" marks the start of
  a word), so a rare word is spelled in frequent pieces instead of becoming ``<unk>``; the learned model is
  saved with the vocabulary. A :class:`Vocab` puts ``<pad> <unk> <go> <eos>`` at ids 0-3 on both sides;
  tokens it lacks become ``<unk>`` (and are counted), and so do characters and words seen fewer than
  ``min_count`` times in training.
* **Levels from the data** (:func:`choose_levels`, for a TSV or pairs passed to ``fit``): words when the
  vocabulary is closed (at most 1% of the running words are seen only once: number words, phonemes, tags);
  characters when it is open and a line is one word (spellings, numbers written in digits, names); else
  subwords (sentences: an open vocabulary that whole words would leave full of ``<unk>``).
* **Batches** pad at the end: ``src`` (B, S) with lengths (B,), ``tgt_in`` = ``<go>`` + target and
  ``tgt_out`` = target + ``<eos>`` (B, T), padding 0 (the loss ignores it). Training batches are bucketed by
  source length (sorted within chunks of 20 batches, then shuffled), so little of a batch is padding.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from rnnkit import _checks
from rnnkit.tasks.seq2seq.config import DATASETS, LEVELS  # noqa: F401  (defined with the config)
from rnnkit.text import join_words, length_buckets, pad_sequences, split_words

SPECIALS = ("<pad>", "<unk>", "<go>", "<eos>")
PAD, UNK, GO, EOS = 0, 1, 2, 3
# Learned subwords per side when --num-words does not say (with the 4 special tokens).
SUBWORDS = 4000
# Subwords chosen from the data (choose_levels): half the words seen at least twice, within these bounds.
AUTO_SUBWORDS = (500, 4000)
# choose_levels: a vocabulary is closed when at most this share of the running words are seen only once (the
# Good-Turing estimate of how much of new text would be <unk>) ...
CLOSED_VOCABULARY = 0.01
# ... and a side is one word per line (spell it: characters) when this share of its lines are one word.
ONE_WORD_LINES = 0.9
NUMBER_LANGS = ("en", "fr", "de", "es", "it")
# Languages whose number words are written as one compound ("neuntausendneunhundert..."): characters.
COMPOUND_LANGS = ("de", "it")


# ---------------------------------------------------------------------------------------------------------
# Tokens and vocabularies
# ---------------------------------------------------------------------------------------------------------

def normal_text(text: str) -> str:
    """A text as every level reads it: Unicode NFC (an accent written apart joins its letter), runs of
    whitespace one space, none at the ends."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def tokenize(text: str, level: str, punctuation: bool = False) -> list[str]:
    """A text -> its tokens: characters (runs of whitespace one space) or words; ``punctuation``: words split
    from their punctuation (:func:`rnnkit.text.split_words`), else whitespace-separated words."""
    text = normal_text(text)
    if level == "char":
        return list(text)
    if punctuation:
        return split_words(text)
    return text.split(" ") if text else []


def detokenize(tokens: Sequence[str], level: str, punctuation: bool = False) -> str:
    if level == "char":
        return "".join(tokens)
    return join_words(tokens) if punctuation else " ".join(tokens)


class Vocab:
    """Tokens <-> ids for one side: ``<pad> <unk> <go> <eos>`` at 0-3, then the tokens, most frequent first.
    A subword vocabulary also holds its byte-pair model (``subwords``), which splits a text into tokens; a word
    vocabulary splits punctuation from words (``punctuation``; False in runs written before it did)."""

    def __init__(self, tokens: Sequence[str], level: str, subwords: Any = None, punctuation: bool = False):
        _checks.check_choice("level", level, LEVELS)
        if (level == "subword") != (subwords is not None):
            raise ValueError(f"level={level!r}: a subword model goes with level 'subword' and only with it")
        self.level = level
        self.subwords = subwords                 # a SentencePieceProcessor, whose ids are this vocabulary's
        self.punctuation = bool(punctuation) and level == "word"
        self.itos = list(SPECIALS) + [t for t in tokens if t not in SPECIALS]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, texts: Iterable[str], level: str, num_words: int | None = None, min_count: int = 1) -> "Vocab":
        """The vocabulary of ``texts``: every token seen at least ``min_count`` times, at most the
        ``num_words - 4`` most frequent ones (ties by first appearance), so that the vocabulary has at most
        ``num_words`` entries with the specials. Words are split from their punctuation.
        Subwords: a byte-pair model learned from ``texts`` with ``num_words`` entries (default SUBWORDS)."""
        if level == "subword":
            return cls._learn_subwords(texts, num_words or SUBWORDS)
        punctuation = level == "word"
        counts = Counter(t for text in texts for t in tokenize(text, level, punctuation))
        ranked = [t for t, n in sorted(counts.items(), key=lambda kv: -kv[1])    # stable: first seen first
                  if n >= min_count]
        if num_words is not None:
            ranked = ranked[:max(0, num_words - len(SPECIALS))]
        return cls(ranked, level, punctuation=punctuation)

    @classmethod
    def _learn_subwords(cls, texts: Iterable[str], size: int) -> "Vocab":
        import sentencepiece

        model = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=(normal_text(t) for t in texts), model_writer=model, model_type="bpe",
            vocab_size=size, hard_vocab_limit=False,       # a small corpus may give fewer pieces: fine
            # The specials first, so the model's ids 0-3 are <pad> <unk> <go> <eos> as on every side.
            pad_id=PAD, unk_id=UNK, bos_id=GO, eos_id=EOS, pad_piece=SPECIALS[PAD], unk_piece=SPECIALS[UNK],
            bos_piece=SPECIALS[GO], eos_piece=SPECIALS[EOS],
            character_coverage=1.0, normalization_rule_name="identity",   # keep every letter as written
            num_threads=1, minloglevel=2)                  # deterministic, and quiet
        return cls._from_subwords(model.getvalue())

    @classmethod
    def _from_subwords(cls, proto: bytes) -> "Vocab":
        import sentencepiece

        model = sentencepiece.SentencePieceProcessor(model_proto=proto)
        itos = [model.id_to_piece(i) for i in range(model.get_piece_size())]
        return cls(itos[len(SPECIALS):], "subword", model)

    def __len__(self) -> int:
        return len(self.itos)

    def split(self, text: str) -> list[str]:
        """A text -> its tokens at this vocabulary's level."""
        if self.subwords is None:
            return tokenize(text, self.level, self.punctuation)
        text = normal_text(text)
        return self.subwords.encode(text, out_type=str) if text else []

    def join(self, tokens: Sequence[str]) -> str:
        """Tokens -> text: the inverse of :meth:`split` (up to whitespace runs and ``<unk>``)."""
        if self.subwords is None:
            return detokenize(tokens, self.level, self.punctuation)
        return self.subwords.decode_pieces(list(tokens)).strip()

    def encode(self, text: str) -> tuple[list[int], int]:
        """A text -> (ids, number of tokens that became ``<unk>``)."""
        ids = [self.stoi.get(t, UNK) for t in self.split(text)]
        return ids, sum(1 for i in ids if i == UNK)

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Ids -> tokens, up to the first ``<eos>``; ``<pad>`` and ``<go>`` are left out."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i not in (PAD, GO):
                out.append(self.itos[i] if 0 <= i < len(self.itos) else SPECIALS[UNK])
        return out

    def decode(self, ids: Iterable[int]) -> str:
        return self.join(self.tokens(ids))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"level": self.level, "tokens": self.itos}
        if self.punctuation:
            data["punctuation"] = True
        if self.subwords is not None:
            # The byte-pair model as sentencepiece writes it (a few kB), in base64 inside the JSON.
            data["subwords"] = base64.b64encode(self.subwords.serialized_model_proto()).decode("ascii")
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "vocabulary") -> "Vocab":
        if (not isinstance(data, dict) or not isinstance(data.get("tokens"), list)
                or list(data["tokens"][:len(SPECIALS)]) != list(SPECIALS)
                or not all(isinstance(t, str) for t in data["tokens"])):
            raise ValueError(f"{source}: expected {{\"level\": \"char\", \"word\" or \"subword\", "
                             f"\"tokens\": [{', '.join(map(repr, SPECIALS))}, ...]}}")
        if data.get("level") not in LEVELS:
            raise ValueError(f"{source}: level={data.get('level')!r}: expected one of {', '.join(map(repr, LEVELS))}")
        if data["level"] != "subword":
            return cls(data["tokens"][len(SPECIALS):], data["level"], punctuation=data.get("punctuation") is True)
        try:
            vocab = cls._from_subwords(base64.b64decode(data.get("subwords"), validate=True))
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{source}: subwords: expected a sentencepiece model in base64 "
                             f"({' '.join(str(err).split())[:80]})") from None
        if vocab.itos != data["tokens"]:
            raise ValueError(f"{source}: the subword model's tokens differ from \"tokens\": the file was edited "
                             f"or mixed with another run's")
        return vocab


# ---------------------------------------------------------------------------------------------------------
# Where pairs come from
# ---------------------------------------------------------------------------------------------------------

def read_tsv(path: str | Path, name: str = "tsv") -> list[tuple[str, str]]:
    """``source<TAB>target`` lines of a UTF-8 file -> pairs. Blank lines are skipped; a line without a tab,
    with more than one, or not UTF-8 is an error naming ``FILE:LINE`` (a missing file names the argument
    ``name``)."""
    path = Path(path)
    _checks.require_file(name, path)
    pairs = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}:{number}: not UTF-8 ({err.reason} at byte {err.start} of the line); "
                                 f"expected a UTF-8 text file") from None
            if number == 1:
                line = line.lstrip("\ufeff")                            # a byte-order mark
            if not line.strip():
                continue
            tabs = line.count("\t")
            if tabs != 1:
                found = "no tab" if tabs == 0 else f"{tabs} tabs"
                raise ValueError(f"{path}:{number}: found {found} in {_short(line)}; expected source<TAB>target "
                                 f"(exactly one tab)")
            source, target = line.split("\t")
            pairs.append((source, target))
    return pairs


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def number_words(words: str) -> str:
    """num2words' spelling -> the one used here: hyphens as spaces, no commas."""
    return " ".join(words.replace("-", " ").replace(",", " ").split())


def parse_variant(variant: str | None) -> tuple[str, str]:
    """``"fr-digits"`` -> ("fr", "to_digits"); ``"digits-en"`` -> ("en", "to_words")."""
    variant = "fr-digits" if variant is None else variant
    parts = variant.split("-") if isinstance(variant, str) else []
    if len(parts) == 2 and parts[1] == "digits" and parts[0] in NUMBER_LANGS:
        return parts[0], "to_digits"
    if len(parts) == 2 and parts[0] == "digits" and parts[1] in NUMBER_LANGS:
        return parts[1], "to_words"
    _checks.fail("variant", variant, f"<lang>-digits or digits-<lang> with lang one of {', '.join(NUMBER_LANGS)} "
                 f"(e.g. fr-digits)")


def number_pairs(variant: str | None) -> tuple[list[tuple[str, str]], list[str]]:
    """(pairs, keys) of number-phrases in one direction; the key is the number."""
    from rnnkit import datasets

    lang, direction = parse_variant(variant)
    data = datasets.load("number-phrases")
    rows = data["lang"] == lang
    numbers = [str(int(n)) for n in data["number"][rows]]
    words = [number_words(w) for w in data["words"][rows]]
    pairs = list(zip(words, numbers)) if direction == "to_digits" else list(zip(numbers, words))
    return pairs, numbers


def strip_stress(phonemes: str) -> str:
    """ARPAbet with stress digits -> without: "K AH0 Z" -> "K AH Z"."""
    return re.sub(r"\d", "", phonemes)


def cmudict_pairs(keep_stress: bool = False) -> tuple[list[tuple[str, str]], list[str]]:
    """(pairs, keys) of cmudict: (spelling, phonemes) for every distinct pronunciation; the key is the word."""
    from rnnkit import datasets

    data = datasets.load("cmudict")
    seen, pairs = set(), []
    for word, phonemes in zip(data["word"], data["phonemes"]):
        pair = (str(word), str(phonemes) if keep_stress else strip_stress(str(phonemes)))
        if pair not in seen:
            seen.add(pair)
            pairs.append(pair)
    return pairs, [w for w, _ in pairs]


def greek_english_pairs() -> tuple[list[tuple[str, str]], list[str]]:
    """(pairs, keys) of greek-english: a Greek New Testament verse and its English translation; the key is
    the verse."""
    from rnnkit import datasets

    data = datasets.load("greek-english")
    return list(zip(map(str, data["greek"]), map(str, data["english"]))), [str(v) for v in data["verse"]]


def split_of(key: str, val_frac: float, test_frac: float) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for ``key``, from a hash of it (see the module docstring)."""
    h = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:15], 16) / 16 ** 15
    return "test" if h < test_frac else "val" if h < test_frac + val_frac else "train"


@dataclass
class PairSplits:
    """Pairs split into training, validation and test parts, with where they came from."""

    train: list[tuple[str, str]]
    val: list[tuple[str, str]]
    test: list[tuple[str, str]]
    source: str                                  # what they are, for messages and config.json
    phonemes: bool = False                       # targets are phonemes (cmudict): report PER and WER
    info: dict[str, Any] = field(default_factory=dict)


def split_pairs(pairs: Sequence[tuple[str, str]], keys: Sequence[str] | None, val_frac: float, test_frac: float,
                source: str, phonemes: bool = False) -> PairSplits:
    """Split by the hash of each pair's key (default: its source text)."""
    parts: dict[str, list] = {"train": [], "val": [], "test": []}
    keys = [p[0] for p in pairs] if keys is None else keys
    for pair, key in zip(pairs, keys):
        parts[split_of(key, val_frac, test_frac)].append(pair)
    return PairSplits(parts["train"], parts["val"], parts["test"], source, phonemes)


def load_pairs(config: Any) -> PairSplits:
    """The pairs a config names (``tsv``, else ``dataset`` with its ``variant``), split into three parts; a
    part given as a file of its own (``val_tsv``, ``test_tsv``) is read from it and not held out."""
    given = {"val": config.val_tsv, "test": config.test_tsv}
    splits = _held_out_pairs(config, 0.0 if given["val"] else config.val_frac,
                             0.0 if given["test"] else config.test_frac)
    for part, path in given.items():
        if path is not None:
            setattr(splits, part, read_tsv(path, name=f"{part}_tsv"))
            splits.source += f", {part} {path}"
    return splits


def _held_out_pairs(config: Any, val_frac: float, test_frac: float) -> PairSplits:
    if config.tsv is not None:
        pairs = read_tsv(config.tsv)
        return split_pairs(pairs, None, val_frac, test_frac, f"tsv {config.tsv}")
    if config.dataset == "number-phrases":
        pairs, keys = number_pairs(config.variant)
        name = f"number-phrases {config.variant or 'fr-digits'}"
        return split_pairs(pairs, keys, val_frac, test_frac, name)
    if config.dataset == "cmudict":
        if config.variant is not None:
            _checks.fail("variant", config.variant, "None for cmudict (variants are number-phrases')")
        pairs, keys = cmudict_pairs(config.keep_stress)
        name = "cmudict" + (" (with stress)" if config.keep_stress else " (stress digits stripped)")
        return split_pairs(pairs, keys, val_frac, test_frac, name, phonemes=True)
    if config.dataset == "greek-english":
        if config.variant is not None:
            _checks.fail("variant", config.variant, "None for greek-english (variants are number-phrases')")
        pairs, keys = greek_english_pairs()
        return split_pairs(pairs, keys, val_frac, test_frac, "greek-english verses")
    _checks.fail("dataset", config.dataset, f"one of {', '.join(map(repr, DATASETS))}, or a --tsv file")


def auto_levels(config: Any) -> tuple[str, str]:
    """The token levels a config asks for, ``auto`` settled by the data: number-phrases reads words (or
    characters for the compounds of de/it) and digits as characters; cmudict spellings as characters and
    phonemes as words; a TSV words on both sides; the Greek and English verses as subwords."""
    if config.tsv is not None:
        auto = ("word", "word")
    elif config.dataset == "greek-english":
        auto = ("subword", "subword")
    elif config.dataset == "cmudict":
        auto = ("char", "word")
    else:
        lang, direction = parse_variant(config.variant)
        words = "char" if lang in COMPOUND_LANGS else "word"
        auto = (words, "char") if direction == "to_digits" else ("char", words)
    return (auto[0] if config.source_level == "auto" else config.source_level,
            auto[1] if config.target_level == "auto" else config.target_level)


@dataclass
class LevelChoice:
    """The token level :func:`choose_levels` picked for one side, with the figures it picked it by."""

    level: str
    reason: str                  # in words, for the one line that says the decision
    subwords: int | None = None  # pieces to learn, for subwords


def choose_level(texts: Sequence[str]) -> LevelChoice:
    """The token level for one side's training texts (see the module docstring): words for a closed
    vocabulary, characters when an open-class word is the whole line, else subwords."""
    counts = Counter()
    one_word = 0
    for text in texts:
        words = split_words(text)
        counts.update(words)
        one_word += len(words) == 1
    running = sum(counts.values())
    once = sum(1 for n in counts.values() if n == 1)
    unseen = once / max(running, 1)          # Good-Turing: the share of new text that no training text has
    figures = f"{len(counts):,} distinct words, {100 * unseen:.1f}% of running words seen once"
    if unseen <= CLOSED_VOCABULARY:
        return LevelChoice("word", f"words ({figures}: a closed vocabulary)")
    if one_word >= ONE_WORD_LINES * max(len(texts), 1):
        return LevelChoice("char", f"characters ({figures}, {100 * one_word / len(texts):.0f}% of lines one "
                                   f"word: each is spelled)")
    twice = len(counts) - once
    low, high = AUTO_SUBWORDS
    pieces = min(high, max(low, 100 * round(twice / 200)))      # half the words seen twice, in hundreds
    return LevelChoice("subword", f"subwords ({figures}: an open vocabulary; {pieces:,} byte-pair pieces)",
                       pieces)


def choose_levels(pairs: Sequence[tuple[str, str]], config: Any) -> tuple[tuple[str, str], tuple, str]:
    """The token level of each side of ``pairs`` (the training pairs of a TSV or of ``fit``): the config's
    where it names one, else :func:`choose_level`'s. Returns (levels, subword pieces per side or None,
    the line that says the decision)."""
    levels, pieces, said = [], [], []
    for side, (name, asked) in enumerate((("source", config.source_level), ("target", config.target_level))):
        if asked != "auto":
            levels.append(asked)
            pieces.append(None)
            continue
        choice = choose_level([pair[side] for pair in pairs])
        levels.append(choice.level)
        pieces.append(choice.subwords if config.num_words is None else None)
        said.append(f"{name} {choice.reason}")
    line = ""
    if said:
        line = (f"tokens chosen from the {len(pairs):,} training pairs: {'; '.join(said)} "
                f"(--source-level / --target-level choose others)")
    return (levels[0], levels[1]), (pieces[0], pieces[1]), line


def length_ratio(sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]) -> float:
    """Target tokens per source token over the training pairs (ratio of the totals): the decoding cap of a
    source grows with its length by twice this (see ``Seq2Seq.translate``)."""
    return sum(map(len, targets)) / max(sum(map(len, sources)), 1)


def decoding_cap(source_length: int, ratio: float, longest_target: int) -> int:
    """Most output tokens for a source of ``source_length`` tokens: twice the training targets' length per
    source token, + 10, and never more than twice the longest training target, + 10."""
    return min(math.ceil(2 * ratio * source_length) + 10, 2 * longest_target + 10)


# ---------------------------------------------------------------------------------------------------------
# Pairs -> ids -> batches
# ---------------------------------------------------------------------------------------------------------

def clean_pairs(pairs: Sequence[Any], split_source: Callable[[str], list[str]],
                split_target: Callable[[str], list[str]],
                max_source_length: int | None = None) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Keep the pairs a model can learn from; count the others: an empty source or target, or a source
    longer than ``max_source_length`` tokens (``split_source``/``split_target``: text -> tokens, e.g.
    :func:`splitter`). A pair that is not two strings is an error naming it."""
    kept, skipped = [], {"empty_source": 0, "empty_target": 0, "too_long": 0}
    for i, pair in enumerate(check_pairs(pairs)):
        source, target = pair
        n = len(split_source(source))
        if n == 0:
            skipped["empty_source"] += 1
        elif not split_target(target):
            skipped["empty_target"] += 1
        elif max_source_length is not None and n > max_source_length:
            skipped["too_long"] += 1
        else:
            kept.append((source, target))
    return kept, skipped


def check_pairs(pairs: Sequence[Any]) -> Sequence[tuple[str, str]]:
    """``pairs`` itself, once every item is known to be a (source, target) pair of strings."""
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
            _checks.fail(f"pairs[{i}]", pair, "a (source, target) pair of strings")
    return pairs


def splitter(level: str, vocab: Vocab | None = None) -> Callable[[str], list[str]]:
    """text -> tokens at ``level``: the vocabulary's own split when there is one (subwords need it)."""
    return vocab.split if vocab is not None else (lambda text: tokenize(text, level))


@dataclass
class Encoded:
    """Id sequences of pairs (targets without <go>/<eos>), and how many tokens became <unk>."""

    sources: list[list[int]]
    targets: list[list[int]]
    unknown_source: int = 0
    unknown_target: int = 0

    def __len__(self) -> int:
        return len(self.sources)


def encode_pairs(pairs: Sequence[tuple[str, str]], source_vocab: Vocab, target_vocab: Vocab) -> Encoded:
    out = Encoded([], [])
    for source, target in pairs:
        s, us = source_vocab.encode(source)
        t, ut = target_vocab.encode(target)
        out.sources.append(s)
        out.targets.append(t)
        out.unknown_source += us
        out.unknown_target += ut
    return out


def pad_batch(seqs: Sequence[Sequence[int]], before: Sequence[int] = (), after: Sequence[int] = ()) -> torch.Tensor:
    """Sequences (each framed by ``before`` and ``after``) -> (B, longest) long tensor padded at the end with 0."""
    rows = [list(before) + list(s) + list(after) for s in seqs]
    return torch.from_numpy(pad_sequences(rows, dtype="int64", padding="post"))      # PAD is 0


def make_batch(sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]] | None = None) -> tuple:
    """(src (B, S), lengths (B,)[, tgt_in (B, T), tgt_out (B, T)])."""
    src = pad_batch(sources)
    lengths = torch.tensor([len(s) for s in sources], dtype=torch.long)
    if targets is None:
        return src, lengths
    return src, lengths, pad_batch(targets, before=[GO]), pad_batch(targets, after=[EOS])


def batches(data: Encoded, batch_size: int, rng: np.random.Generator | None = None) -> list[tuple]:
    """Training batches bucketed by source length (``rng``: shuffled), or in length order (no ``rng``);
    see :func:`~rnnkit.text.length_buckets`."""
    groups = length_buckets([len(s) for s in data.sources], batch_size, rng)
    return [make_batch([data.sources[i] for i in g], [data.targets[i] for i in g]) for g in groups]


def group_references(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Pairs -> (source, every target it has) in the order sources first appear: a source with several
    targets (cmudict's alternate pronunciations) is one item with several references."""
    refs: dict[str, list[str]] = {}
    for source, target in pairs:
        targets = refs.setdefault(source, [])
        if target not in targets:
            targets.append(target)
    return list(refs.items())
