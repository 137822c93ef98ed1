"""Sequence to sequence's configs: Seq2SeqConfig (what `rnnkit seq2seq train` and ``Seq2Seq`` take) and
DecodeConfig (what `rnnkit seq2seq translate` and `eval` take: the arguments of ``Seq2Seq.translate``).

Imports no torch: every ``rnnkit seq2seq ... --help`` is built from these classes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from rnnkit import _checks
from rnnkit.config import field
from rnnkit.training.config import TrainConfig

LEVELS = ("char", "word", "subword")
DATASETS = ("number-phrases", "cmudict", "greek-english")
CELLS = ("lstm", "gru")
ATTENTION_KINDS = ("none", "additive", "dot", "general")
LEVEL_CHOICES = ("auto", *LEVELS)
MAX_GNMT_PENALTY = 10.0          # GNMT tuned alpha and beta in [0, 1]; the HTTP request allows up to 10
MAX_DECODE_SEED = 2**63 - 1      # torch.Generator's seeds

# Training stops on evidence: after 4 epochs without a lower validation loss (the best epoch's weights kept), or
# at the time budget; --epochs is only a ceiling. min_steps holds for any data size (a 300-pair file still gets
# 1,000 updates; number words -> digits reached held-out exact match 0.998 after about 600 in
# bench/seq2seq_defaults.py), and auto_batch shrinks the batch of a small training set so that an epoch holds at
# least 8 updates. The schedule is cosine over the time budget when there is one (cmudict's tuned runs used it),
# else cosine over the steps.
TRAIN_DEFAULTS = TrainConfig(
    epochs=100,
    min_steps=1000,
    auto_batch=True,
    batch_size=64,
    lr=2e-3,
    schedule="auto",
    clip_grad_norm=1.0,
    early_stop_patience=4,     # epochs without a lower validation loss
    log_every=50,
)


@dataclass
class Seq2SeqConfig:
    """Everything `rnnkit seq2seq train` takes: the data, the model, and the training options."""

    dataset: Optional[str] = field("number-phrases", "named dataset when --tsv is not given: number-phrases, "
                                                     "cmudict or greek-english (New Testament verses, Greek -> "
                                                     "English); a --tsv run records none", choices=DATASETS,
                                   group="data")
    variant: Optional[str] = field(None, "number-phrases direction: <lang>-digits or digits-<lang>, lang one of en "
                                         "fr de es it (None: fr-digits, French words to digits)", group="data")
    tsv: Optional[str] = field(None, "your own pairs: a UTF-8 file of source<TAB>target lines", group="data")
    val_tsv: Optional[str] = field(None, "your own validation pairs (source<TAB>target): used instead of holding "
                                         "out --val-frac", group="data")
    test_tsv: Optional[str] = field(None, "your own test pairs (source<TAB>target), decoded for the report after "
                                          "training: used instead of holding out --test-frac", group="data")
    keep_stress: bool = field(False, "cmudict: keep the stress digits of the vowels (AH0, AH1); by default they "
                                     "are stripped", group="data")
    val_frac: float = field(0.05, "share held out for validation, by a hash of the number, word or source text",
                            group="data")
    test_frac: float = field(0.05, "share held out for the test report, by the same hash (never trained on)",
                             group="data")
    source_level: str = field("auto", "source tokens: characters, words (punctuation split off) or subwords "
                                      "(byte-pair pieces learned from the training sources) (auto: words for number "
                                      "words, characters for digits and spellings, subwords for greek-english; for "
                                      "a TSV or pairs, decided from the training pairs and printed: words for a "
                                      "closed vocabulary, characters when a line is one open-class word, else "
                                      "subwords)", choices=LEVEL_CHOICES, group="data")
    target_level: str = field("auto", "target tokens: characters, words or subwords (auto: characters for "
                                      "digits, words for phonemes and number words, subwords for greek-english; "
                                      "for a TSV or pairs, decided from the data as for the source)",
                              choices=LEVEL_CHOICES, group="data")
    num_words: Optional[int] = field(None, "keep at most this many entries per vocabulary (with the 4 special "
                                           "tokens); rarer tokens become <unk> (None: every token seen --min-count "
                                           "times); subwords: the number of byte-pair pieces to learn (None: 4000, "
                                           "or for auto subwords half the words seen twice, 500 to 4000); at most "
                                           f"{_checks.MAX_VOCAB:,}", group="data")
    min_count: int = field(2, "characters and words seen fewer times than this in the training pairs become <unk> "
                              "(2: a word seen once teaches nothing that <unk> does not)", group="data")
    max_source_length: Optional[int] = field(None, "longest source in tokens: longer training pairs are skipped "
                                                   "and counted, longer inputs to translate are cut to it with a "
                                                   "warning (None: the longest training source; at most "
                                                   f"{_checks.MAX_SEQ_LEN:,})", group="data")
    cell: str = field("lstm", "recurrent cell of the encoder and the decoder", choices=CELLS, group="model")
    attention: str = field("general", "attention score: none (plain encoder-decoder), additive (Bahdanau), dot "
                                      "or general (Luong)", choices=ATTENTION_KINDS, group="model")
    embedding_size: int = field(64, f"size of the token embeddings (each side; at most {_checks.MAX_WIDTH:,})",
                                group="model")
    hidden_size: int = field(128, "units of every recurrent layer (even: the first encoder layer has half of "
                                  "them in each direction); 256 for cmudict; at most "
                                  f"{_checks.MAX_WIDTH:,}", group="model")
    encoder_layers: int = field(2, "encoder layers: the first bidirectional, the others residual (at most "
                                   f"{_checks.MAX_LAYERS})", group="model")
    decoder_layers: int = field(2, f"decoder layers (residual from the second on; at most {_checks.MAX_LAYERS})",
                                group="model")
    dropout: float = field(0.1, "dropout on every recurrent layer's input and before the output layer",
                           group="model")
    teacher_forcing: float = field(1.0, "share of decoder inputs taken from the target while training; below 1 "
                                        "the decoder sometimes reads its own previous prediction (scheduled "
                                        "sampling, run step by step: slower)", group="training")
    label_smoothing: float = field(0.0, "share of each target token's probability the training loss spreads "
                                        "evenly over the target vocabulary (0: plain cross-entropy); the "
                                        "validation loss stays plain, so the best epoch is picked as before "
                                        "(below 1)", group="training")
    val_decode: int = field(1000, "validation sources decoded greedily after each epoch for val_exact_match "
                                  f"(0: none; at most {_checks.MAX_COUNT:,})", group="output")
    train: TrainConfig = field(TRAIN_DEFAULTS, "training options, flat flags --lr, --epochs, ...")

    def __post_init__(self) -> None:
        if self.tsv is not None:
            self.dataset = None                  # the pairs come from the file: config.json names no dataset
        else:
            _checks.check_choice("dataset", self.dataset, DATASETS)
        _checks.check_choice("source_level", self.source_level, LEVEL_CHOICES)
        _checks.check_choice("target_level", self.target_level, LEVEL_CHOICES)
        _checks.check_choice("cell", self.cell, CELLS)
        _checks.check_choice("attention", self.attention, ATTENTION_KINDS)
        _checks.check_float("val_frac", self.val_frac, min=0, max=0.5, min_open=True)
        _checks.check_float("test_frac", self.test_frac, min=0, max=0.5)
        _checks.check_int("num_words", self.num_words, min=5, cap=_checks.MAX_VOCAB, allow_none=True)
        _checks.check_int("min_count", self.min_count, min=1, cap=_checks.MAX_COUNT)
        _checks.check_int("max_source_length", self.max_source_length, min=1, cap=_checks.MAX_SEQ_LEN,
                          allow_none=True)
        _checks.check_int("embedding_size", self.embedding_size, min=1, cap=_checks.MAX_WIDTH)
        _checks.check_int("encoder_layers", self.encoder_layers, min=1, cap=_checks.MAX_LAYERS)
        _checks.check_int("decoder_layers", self.decoder_layers, min=1, cap=_checks.MAX_LAYERS)
        _checks.check_int("hidden_size", self.hidden_size, min=2, cap=_checks.MAX_WIDTH)
        if self.hidden_size % 2:
            _checks.fail("hidden_size", self.hidden_size, "an even number (the first encoder layer has half of "
                                                          "the units in each direction)")
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        _checks.check_float("teacher_forcing", self.teacher_forcing, min=0, max=1)
        _checks.check_float("label_smoothing", self.label_smoothing, min=0, max=1, max_open=True)
        _checks.check_int("val_decode", self.val_decode, min=0, cap=_checks.MAX_COUNT)
        h, gates = self.hidden_size, 4 if self.cell == "lstm" else 3    # each layer ~ gates x h x 2h
        _checks.check_size("hidden_size, encoder_layers, decoder_layers",
                           (h, self.encoder_layers, self.decoder_layers),
                           gates * h * 2 * h * (self.encoder_layers + self.decoder_layers))
        if not isinstance(self.train, TrainConfig):
            _checks.fail("train", self.train, "a TrainConfig")


@dataclass
class DecodeConfig:
    """How `rnnkit seq2seq translate` and `eval` decode: the arguments of Seq2Seq.translate (same names)."""

    # Old flag names (rnnkit 0.1): still parsed, hidden from --help, with a warning naming the new one.
    RENAMED = {"n_best": "num_results", "random_seed": "seed", "max_length": "max_tokens", "sample": "no_greedy"}

    greedy: bool = field(True, "take the most likely token at each step; --no-greedy draws it at random (with "
                               "--temperature, --top-k, --top-p); --beam searches instead", group="decoding")
    beam: Optional[int] = field(None, "beam search with this many beams per input, all inputs of a batch decoded "
                                      f"together (None: greedy; at most {_checks.MAX_BEAM})", group="decoding")
    num_results: int = field(1, "outputs per input, best first, with their scores (at most --beam)",
                             group="decoding")
    temperature: float = field(1.0, "sampling: below 1 sharpens the distribution, above 1 flattens it (at most "
                                    f"{_checks.MAX_TEMPERATURE:g})", group="decoding")
    top_k: Optional[int] = field(None, "sampling: only the k most likely tokens (None: all; at most "
                                       f"{_checks.MAX_TOP_K:,})", group="decoding")
    top_p: Optional[float] = field(None, "sampling: only the smallest set of tokens with this much probability "
                                         "(None: all)", group="decoding")
    seed: Optional[int] = field(None, f"sampling: seed of the draws, for outputs that repeat (None: random; 0 to "
                                      f"{MAX_DECODE_SEED})", group="decoding")
    length_penalty: float = field(0.0, "beam: GNMT's length normalisation alpha, score = log P / ((5 + |Y|) / 6) "
                                       f"** alpha (0: none; at most {MAX_GNMT_PENALTY:g})", group="decoding")
    coverage_penalty: float = field(0.0, "beam: GNMT's coverage penalty beta, + beta * sum of log(min(attention "
                                         "received, 1)) over the source tokens (0: none; at most "
                                         f"{MAX_GNMT_PENALTY:g})", group="decoding")
    max_tokens: Optional[int] = field(None, "most output tokens (None: by each source's length, twice the "
                                            "training targets' length per source token, + 10, at most twice the "
                                            f"longest training target + 10; at most {_checks.MAX_TOKENS:,})",
                                      group="decoding")
    batch_size: int = field(64, f"inputs decoded together (at most {_checks.MAX_BATCH:,})", group="decoding")

    def __post_init__(self):
        # Only the bounds, before the model is loaded; translate() checks how the options combine.
        _checks.check_int("beam", self.beam, min=1, cap=_checks.MAX_BEAM, allow_none=True)
        _checks.check_int("num_results", self.num_results, min=1, cap=_checks.MAX_BEAM)
        _checks.check_float("temperature", self.temperature, min=0, max=_checks.MAX_TEMPERATURE)
        _checks.check_int("top_k", self.top_k, min=1, cap=_checks.MAX_TOP_K, allow_none=True)
        _checks.check_float("top_p", self.top_p, min=0, max=1, min_open=True, allow_none=True)
        _checks.check_int("seed", self.seed, min=0, max=MAX_DECODE_SEED, allow_none=True)
        _checks.check_float("length_penalty", self.length_penalty, min=0, max=MAX_GNMT_PENALTY)
        _checks.check_float("coverage_penalty", self.coverage_penalty, min=0, max=MAX_GNMT_PENALTY)
        _checks.check_int("max_tokens", self.max_tokens, min=1, cap=_checks.MAX_TOKENS, allow_none=True)
        _checks.check_int("batch_size", self.batch_size, min=1, cap=_checks.MAX_BATCH)


@dataclass
class TranslateRequest:
    """One request to translate texts: what ``Seq2Seq.apply`` and ``POST .../translate`` take (``translate``'s
    names); ``limits`` are what the server holds a request to (see rnnkit.config.field)."""

    # Old names of the HTTP fields: still accepted for one release, with a deprecation note in the answer.
    RENAMED = {"max_length": "max_tokens", "n_best": "num_results"}

    texts: list[str] = dataclasses.field(metadata={
        "help": "texts to translate", "limits": {"min_length": 1, "max_length": "max_texts",
                                                 "items": {"max_length": "max_text_chars"}}})
    beam: Optional[int] = field(None, "beam search with this many beams (none: greedy)",
                                limits={"ge": 1, "le": "max_beam"})
    max_tokens: Optional[int] = field(None, "most output tokens (none: by each source's length, twice the "
                                            "training targets' length per source token, + 10)",
                                      limits={"ge": 1, "le": "max_tokens"})
    num_results: int = field(1, "outputs per text, best first, with their scores (at most beam)",
                             limits={"ge": 1, "le": "max_beam"})
    greedy: bool = field(True, "take the most likely token at each step; false draws it at random (with "
                               "temperature, top_k, top_p)")
    temperature: float = field(1.0, "sampling: below 1 sharpens the distribution, above 1 flattens it",
                               limits={"gt": 0, "le": 5})
    top_k: Optional[int] = field(None, "sampling: only the k most likely tokens (none: all)",
                                 limits={"ge": 1, "le": 1_000_000})
    top_p: Optional[float] = field(None, "sampling: only the most likely tokens up to this much probability "
                                         "(none: all)", limits={"gt": 0, "le": 1})
    seed: Optional[int] = field(None, "sampling: seed of the draws (none: random)", limits={"ge": 0, "le": 2**63 - 1})
    length_penalty: float = field(0.0, "beam: GNMT's length normalisation alpha (0: none)", limits={"ge": 0, "le": 10})
    coverage_penalty: float = field(0.0, "beam: GNMT's coverage penalty beta (0: none)", limits={"ge": 0, "le": 10})
    attention: bool = field(False, "send each output step's attention over the source tokens")

    def __post_init__(self):
        if not isinstance(self.texts, list) or not self.texts:
            _checks.fail("texts", self.texts, "a list of at least one text")
