"""Sequence labelling's configs: TagConfig (the model and its training: what ``Tagger`` takes), DataConfig (where
`rnnkit tag train` reads its data) and TagRequest (what ``Tagger.apply`` and ``POST .../tag`` take).

Imports no torch: every ``rnnkit tag ... --help`` is built from these classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rnnkit import _checks
from rnnkit.config import field
from rnnkit.training.config import TrainConfig

CELLS = ("lstm", "gru")
CHAR_MODELS = ("cnn", "bilstm", "none")
OUTPUT_LAYERS = ("softmax", "crf")
SCHEMES = ("auto", "none", "bio", "bioes")
FORMATS = ("auto", "conllu", "columns", "series")
MAX_KERNEL_SIZE = 64            # char convolution width, in characters
MAX_WORD_CHARS = 1000           # characters kept per word


@dataclass
class TagConfig:
    cell: str = field("lstm", "recurrent cell of the tagger's bidirectional layers", choices=CELLS, group="model")
    hidden_size: int = field(128, "recurrent units per direction and layer (at most "
                                  f"{_checks.MAX_WIDTH:,})", group="model")
    num_layers: int = field(2, f"stacked bidirectional layers (at most {_checks.MAX_LAYERS})", group="model")
    embedding_size: int = field(100, "word embedding size (text); set by --embeddings when given (at most "
                                     f"{_checks.MAX_WIDTH:,})", group="model")
    char_model: str = field("cnn", "character features of each word, so that words never seen in training get "
                                   "sensible tags: a convolution over its characters with max pooling (cnn), "
                                   "the final states of a bidirectional LSTM over them (bilstm), or none",
                            choices=CHAR_MODELS, group="model")
    char_embedding_size: int = field(32, f"character embedding size (at most {_checks.MAX_WIDTH:,})", group="model")
    char_hidden_size: int = field(64, "filters of the char cnn, or units per direction of the char bilstm (at "
                                      f"most {_checks.MAX_WIDTH:,})", group="model")
    char_kernel_size: int = field(3, f"width of the char cnn's filters, in characters (at most {MAX_KERNEL_SIZE})",
                                  group="model")
    max_word_chars: int = field(30, "characters a word's features read: a longer word keeps its first and last "
                                    f"halves of that many (at most {MAX_WORD_CHARS:,})", group="data")
    num_words: Optional[int] = field(None, "keep the most frequent training words, the rest become <unk> (None: "
                                           f"every word; at most {_checks.MAX_VOCAB:,})", group="data")
    lowercase: bool = field(True, "look words up lower-cased (the char features still see the case)", group="data")
    embeddings: Optional[str] = field(None, "pretrained word vectors: glove-50d or a GloVe text file; training "
                                            "words start from them, and the vectors of words never seen in "
                                            "training are kept (frozen) for the words of new text",
                                      group="model")
    embeddings_words: int = field(100_000, "with --embeddings: the most frequent pretrained words kept for words "
                                           "never seen in training (their vectors are saved with the model; at "
                                           f"most {_checks.MAX_VOCAB:,}; 0: none)", group="model")
    freeze_embeddings: bool = field(False, "keep the pretrained vectors of training words fixed (else fine-tune "
                                           "them)", group="model")
    encoder_from: Optional[str] = field(None, "start from this word-level language-model run (rnnkit textgen train "
                                              "--level word): its word vectors (embedding size: the LM's) and, "
                                              "with --char-model none, the forward direction of the first layer "
                                              "(same --cell and --hidden-size; see docs/transfer.md)", group="model")
    output_layer: str = field("softmax", "an independent softmax per token, or a linear-chain CRF (transition "
                                         "scores between tags, Viterbi decoding)", choices=OUTPUT_LAYERS,
                              group="model")
    dropout: float = field(0.33, "dropout on the inputs of every layer (one mask per sentence) and before the "
                                 "output layer", group="model")
    word_dropout: float = field(0.05, "share of training words replaced by <unk> (so the model learns to tag "
                                      "unknown words from their characters)", group="model")
    recurrent_dropout: float = field(0.0, "recurrent dropout rate (weight-drop on the recurrent weights keeps "
                                          "the fused kernel)", group="model")
    scheme: str = field("auto", "tag scheme: bio or bioes (entity spans; scored by entity F1 with seqeval), none "
                                "(one tag per token, e.g. part of speech), or auto (bio/bioes when every tag is "
                                "O or B-/I-/E-/S- plus a type)", choices=SCHEMES, group="data")
    train: TrainConfig = field(TrainConfig(epochs=40, batch_size=32, min_steps=1000, auto_batch=True, lr=2e-3,
                                           clip_grad_norm=5.0, early_stop_patience=5, monitor="val_error",
                                           log_every=50),
                               "training options")

    def __post_init__(self):
        _checks.check_choice("cell", self.cell, CELLS)
        for name, cap in (("hidden_size", _checks.MAX_WIDTH), ("num_layers", _checks.MAX_LAYERS),
                          ("embedding_size", _checks.MAX_WIDTH), ("char_embedding_size", _checks.MAX_WIDTH),
                          ("char_hidden_size", _checks.MAX_WIDTH), ("char_kernel_size", MAX_KERNEL_SIZE),
                          ("max_word_chars", MAX_WORD_CHARS)):
            _checks.check_int(name, getattr(self, name), min=1, cap=cap)
        _checks.check_int("num_words", self.num_words, min=3, cap=_checks.MAX_VOCAB, allow_none=True)
        _checks.check_int("embeddings_words", self.embeddings_words, min=0, cap=_checks.MAX_VOCAB)
        _checks.check_choice("char_model", self.char_model, CHAR_MODELS)
        _checks.check_choice("output_layer", self.output_layer, OUTPUT_LAYERS)
        _checks.check_choice("scheme", self.scheme, SCHEMES)
        for name in ("lowercase", "freeze_embeddings"):
            if not isinstance(getattr(self, name), bool):
                _checks.fail(name, getattr(self, name), "True or False")
        for name in ("dropout", "word_dropout", "recurrent_dropout"):
            _checks.check_float(name, getattr(self, name), min=0, max=1, max_open=True)
        # A bidirectional LSTM: 2 directions x 4 gates; each layer after the first reads 2 x hidden_size.
        h = self.hidden_size
        _checks.check_size("hidden_size, num_layers", (h, self.num_layers),
                           8 * h * (self.embedding_size + h + (self.num_layers - 1) * 3 * h))
        if not isinstance(self.train, TrainConfig):
            _checks.fail("train", self.train, "a TrainConfig")
        if self.encoder_from is not None and self.embeddings:
            _checks.fail("embeddings", self.embeddings, "None with --encoder-from (the word vectors come from the "
                                                        "language model)")


@dataclass
class DataConfig:
    """Where `rnnkit tag train` reads its data: one file per part, each read in the same format."""

    train: Optional[str] = field(None, "the training sentences (or series): CoNLL-U, token<TAB>tag columns with "
                                       "a blank line between sentences, or a series CSV; .gz, .xz and .bz2 files "
                                       "are read as they are")
    dev: Optional[str] = field(None, "validation sentences (picks the best epoch, stops early); none given: "
                                     "--val-frac of the training sentences")
    test: Optional[str] = field(None, "test sentences: the report after training")
    format: str = field("auto", "file format: conllu, columns (token and tag separated by a tab, or spaces; a "
                                "blank line between sentences), series (a CSV: an id column, a tag column, the "
                                "rest numeric channels, one row per step), or auto (conllu for *.conllu*, series "
                                "for *.csv*, else columns)", choices=FORMATS)
    tag_column: Optional[str] = field(None, "the column that holds the tags: a CoNLL-U column name (upos, xpos, "
                                            "deprel, ...) or number 1-10; in the columns format a number; in a "
                                            "series CSV a header name (default: upos, the last column, label)")
    id_column: str = field("id", "series CSV: the column that names the series each row (step) belongs to")
    val_frac: float = field(0.1, "without --dev: the share of training sentences held out for validation "
                                 "(0: none, the last epoch's weights are kept)")
    split_seed: int = field(0, "seed of the --val-frac hold-out (0 to " f"{_checks.MAX_SEED:,})")

    def __post_init__(self):
        _checks.check_choice("format", self.format, FORMATS)
        _checks.check_float("val_frac", self.val_frac, min=0, max=1, max_open=True)
        _checks.check_int("split_seed", self.split_seed, min=0, cap=_checks.MAX_SEED)


@dataclass
class TagRequest:
    """One request to tag sentences: what ``Tagger.apply`` and ``POST .../tag`` take. A text tagger takes
    ``tokens`` (sentences already split into tokens) or ``texts`` (split at whitespace); a series tagger takes
    ``series``; ``limits`` are what the server holds a request to (see rnnkit.config.field)."""

    tokens: Optional[list[list[str]]] = field(None, "sentences to tag, each a list of tokens (a text tagger)",
                                              limits={"min_length": 1, "max_length": "max_texts",
                                                      "items": {"max_length": "max_tokens"}})
    texts: Optional[list[str]] = field(None, "sentences to tag, each split into tokens at whitespace (a text "
                                             "tagger)",
                                       limits={"min_length": 1, "max_length": "max_texts",
                                               "items": {"max_length": "max_text_chars"}})
    series: Optional[list[list[list[Optional[float]]]]] = field(None, "series to label step by step, each a list "
                                                                      "of steps of channel values (a series "
                                                                      "tagger); null: a missing value",
                                                                limits={"min_length": 1, "max_length": "max_texts"})
