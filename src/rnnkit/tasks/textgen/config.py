"""Text generation's configs: TextGenConfig (what `rnnkit textgen train` and ``TextGenerator`` take) and
SampleConfig (what `rnnkit textgen sample` takes: the arguments of ``TextGenerator.generate``).

Imports no torch: every ``rnnkit textgen ... --help`` is built from these classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from rnnkit import _checks
from rnnkit.config import CHECKPOINTS, field
from rnnkit.training.config import TrainConfig

LEVELS = ("char", "word")
CELLS = ("rnn", "gru", "lstm", "mingru", "minlstm")
UNKNOWN = ("error", "drop")

# Text generation's training defaults: the settings of the quality benchmark (15 minutes of Shakespeare), and
# the stopping policy every task shares. The clock is the budget: --epochs is only a ceiling (Shakespeare makes
# ~650 steps an epoch, and 15 minutes on a CPU are a few epochs). A short corpus gets fewer streams, so that an
# epoch still makes about 8 updates, and the ceiling then still allows ~800 (xkcd-colors, a 2x128 LSTM: at 64
# streams one update an epoch, 100 in all, 1.47 nats/char; at 12 streams its best was 1.14 after ~230 updates,
# then it overfitted, which patience stops, keeping the best epoch's weights). min_steps stays 0: with that
# ceiling, the updates no longer depend on the corpus's size, and an --epochs N given on purpose means N.
TRAIN_DEFAULTS = TrainConfig(
    epochs=100,            # a ceiling: the time budget or early stopping ends training first
    auto_batch=True,       # fewer streams for a short corpus (never fewer than 8; see TrainConfig.batch_for)
    early_stop_patience=5,  # epochs without a lower validation loss (a short corpus: ~8 updates an epoch)
    batch_size=64,         # parallel contiguous streams of text
    max_minutes=15.0,
    lr=3e-3,
    schedule="auto",       # cosine over the time budget when max_minutes is set, else over the epochs
    warmup_steps=50,
    clip_grad_norm=5.0,
    precision="auto",      # bf16 where the CPU or GPU runs it natively (Intel AMX: 2-3x the chars/s)
    log_every=50,
)


def int_or_auto(value: Any) -> int | str:
    """A width given as a whole number or ``"auto"`` (the CLI's parser for ``--hidden-size``)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    return int(value)


@dataclass
class TextGenConfig:
    """Everything `rnnkit textgen train` takes; the defaults are the settings of the quality benchmark."""

    # Old field names (rnnkit 0.1): still read from a run's config.json, and as keyword arguments with a warning.
    RENAMED = {"sample_seed_text": "sample_prompt", "sample_length": "sample_max_tokens"}

    corpus: Optional[str] = field(None, "train on this text file instead of --dataset", group="data")
    dataset: str = field("shakespeare", "named dataset to train on when --corpus is not given "
                                        "(shakespeare, xkcd-colors; imdb, rotten-tomatoes: the texts of the "
                                        "training rows of `rnnkit classify train`'s default split, never its "
                                        "validation or test rows, for --encoder-from)", group="data")
    unlabeled: Optional[str] = field(None, "a file of unlabelled text added to the corpus (one document or "
                                           "paragraph a line; read with --encoding), e.g. more reviews for a "
                                           "language model that a classifier starts from", group="data")
    variant: Optional[str] = field(None, "dataset variant, e.g. 'tiny' for the 1.1 MB Shakespeare slice "
                                         "(None: the dataset's default, all 4.8 M characters)", group="data")
    encoding: str = field("utf-8", "text encoding of --corpus", group="data")
    level: str = field("char", "tokens are characters or words", choices=LEVELS, group="data")
    num_words: Optional[int] = field(10000, "word level: keep the num_words - 1 most frequent words, the "
                                            f"rest become <unk> (at most {_checks.MAX_VOCAB:,})", group="data")
    end_token: Optional[str] = field("auto", "token that ends a sample: 'auto' (newline for one-item-per-"
                                             "line corpora such as xkcd-colors), '\\n', or None", group="data")
    cell: str = field("lstm", "recurrent cell", choices=CELLS, group="model")
    hidden_size: int_or_auto = field("auto", "units per recurrent layer; auto picks 128, 256 or 512 from "
                                             "--max-minutes and a few timed steps on this machine (the widest "
                                             "that gets ~600 steps) and stores the number in the run's "
                                             f"config.json (at most {_checks.MAX_WIDTH:,})", group="model")
    num_layers: int = field(2, f"stacked recurrent layers (at most {_checks.MAX_LAYERS})", group="model")
    embedding_size: int = field(64, f"size of the token embedding (at most {_checks.MAX_WIDTH:,})", group="model")
    dropout: float = field(0.0, "variational dropout on each layer's input and on the head's input", group="model")
    recurrent_dropout: float = field(0.0, "recurrent dropout rate (see --recurrent-dropout-mode)", group="model")
    recurrent_dropout_mode: str = field("weight_drop", "weight_drop keeps the fused kernel (fast); variational "
                                        "(one mask per sequence) runs rnnkit's LSTM kernel, ~0.86x as fast in "
                                        "float32 and slower still against bf16, or the loop path for GRU/RNN",
                                        choices=("variational", "weight_drop"), group="model")
    seq_len: int = field(100, f"tokens per truncated-BPTT chunk (at most {_checks.MAX_SEQ_LEN:,}; with "
                              f"--batch-size, at most {_checks.MAX_BATCH_TOKENS:,} tokens a step)", group="training")
    val_file: Optional[str] = field(None, "validate on this text file (read with --encoding) instead of holding out "
                                          "the end of the corpus: then the whole corpus trains", group="data")
    val_frac: float = field(0.1, "the last part of the corpus held out for validation; 0: none, the whole corpus "
                                 "trains, with no early stopping, and the last weights are kept (not used with "
                                 "--val-file)", group="data")
    sample_prompt: Optional[str] = field(None, "text the per-epoch samples continue (None: a newline, or the "
                                               "corpus's first token)", group="output")
    sample_max_tokens: int = field(200, f"tokens per per-epoch sample (0: no samples; at most {_checks.MAX_TOKENS:,})",
                                   group="output")
    train: TrainConfig = field(TRAIN_DEFAULTS, "training options, flat flags --lr, --epochs, ... (a model "
                                                "trained on a GPU samples on the CPU)")

    def __post_init__(self) -> None:
        _checks.check_choice("level", self.level, LEVELS)
        _checks.check_choice("cell", self.cell, CELLS)
        if isinstance(self.hidden_size, str) and self.hidden_size.strip().isdigit():
            self.hidden_size = int(self.hidden_size)          # "256" from a --set key=value or a hand-made dict
        width = self.hidden_size
        if width != "auto" and (isinstance(width, bool) or not isinstance(width, int) or width < 1):
            _checks.fail("hidden_size", self.hidden_size, "an integer >= 1 or 'auto'")
        if width != "auto" and width > _checks.MAX_WIDTH:
            _checks.fail("hidden_size", self.hidden_size, f"an integer >= 1 and <= {_checks.MAX_WIDTH:,}, or 'auto'")
        _checks.check_int("num_layers", self.num_layers, min=1, cap=_checks.MAX_LAYERS)
        _checks.check_int("embedding_size", self.embedding_size, min=1, cap=_checks.MAX_WIDTH)
        _checks.check_int("seq_len", self.seq_len, min=1, cap=_checks.MAX_SEQ_LEN)
        _checks.check_int("num_words", self.num_words, min=2, cap=_checks.MAX_VOCAB, allow_none=True)
        _checks.check_int("sample_max_tokens", self.sample_max_tokens, min=0, cap=_checks.MAX_TOKENS)
        if isinstance(self.train, TrainConfig) and self.train.batch_size * self.seq_len > _checks.MAX_BATCH_TOKENS:
            _checks.fail("seq_len", self.seq_len, f"batch_size x seq_len at most {_checks.MAX_BATCH_TOKENS:,} "
                                                  f"tokens a step (batch_size={self.train.batch_size})")
        if width != "auto":     # auto picks at most 512; a typed width is checked before torch allocates it
            gates = {"rnn": 1, "gru": 3, "lstm": 4, "mingru": 2, "minlstm": 3}[self.cell]   # an upper bound for min*
            _checks.check_size("hidden_size, num_layers", (width, self.num_layers),
                               gates * width * (self.embedding_size + width + (self.num_layers - 1) * 2 * width))
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        _checks.check_float("recurrent_dropout", self.recurrent_dropout, min=0, max=1, max_open=True)
        _checks.check_float("val_frac", self.val_frac, min=0, max=0.5)
        if self.unlabeled is not None and (not isinstance(self.unlabeled, str) or not self.unlabeled):
            _checks.fail("unlabeled", self.unlabeled, "the path of a text file, or None")
        if self.val_file is not None and (not isinstance(self.val_file, str) or not self.val_file):
            _checks.fail("val_file", self.val_file, "the path of a text file, or None")
        if not isinstance(self.train, TrainConfig):
            _checks.fail("train", self.train, "a TrainConfig")
        self.end_token = parse_end_token(self.end_token)


def parse_end_token(value: Any) -> Optional[str]:
    """``'\\n'`` typed on a command line arrives as backslash + n: read it as the newline it means."""
    if value is None or value == "auto":
        return value
    if not isinstance(value, str) or not value:
        _checks.fail("end_token", value, "'auto', None, or one token such as '\\n'")
    if value.lower() in ("none", "null"):
        return None
    return {"\\n": "\n", "\\t": "\t", "newline": "\n"}.get(value, value)


@dataclass
class SampleConfig:
    """What `rnnkit textgen sample` takes: the arguments of ``TextGenerator.generate`` (same names), the
    checkpoint to read and the CPU threads."""

    # Old flag names (rnnkit 0.1): still parsed, hidden from --help, with a warning naming the new one.
    RENAMED = {"seed_text": "prompt", "length": "max_tokens", "num_samples": "num_results", "random_seed": "seed",
               "weights": "checkpoint"}

    prompt: str = field("", "text to continue ('' starts after an end token, e.g. a new colour name)", group="input")
    unknown: str = field("error", "prompt tokens the model never saw: error lists them, drop leaves them out",
                         choices=UNKNOWN, group="input")
    max_tokens: int = field(500, "tokens to generate per result (a result also ends at the corpus's end token; "
                                 f"at most {_checks.MAX_TOKENS:,})", group="decoding")
    temperature: float = field(0.5, "below 1 repeats the likeliest text, above 1 invents; 0 means greedy (at most "
                                    f"{_checks.MAX_TEMPERATURE:g})", group="decoding")
    top_k: Optional[int] = field(None, "sample only from the k most likely tokens (None: all; at most "
                                       f"{_checks.MAX_TOP_K:,})", group="decoding")
    top_p: Optional[float] = field(None, "sample only from the smallest set of tokens with this much "
                                         "probability (None: all)", group="decoding")
    greedy: bool = field(False, "always take the most likely token (same as --temperature 0)", group="decoding")
    beam: Optional[int] = field(None, f"beam search with this many beams (None: sample; at most {_checks.MAX_BEAM})",
                                group="decoding")
    num_results: int = field(1, "results generated together as one batch (with --beam: the best of the beams; at "
                                f"most {_checks.MAX_RESULTS:,})", group="decoding")
    seed: Optional[int] = field(None, f"seed of the draws, for results that repeat (0 to {2**64 - 1}; None: random)",
                                group="decoding")
    checkpoint: Optional[str] = field(None, "sample the Trainer's checkpoint instead of the finished model: "
                                            "best (the best validation epoch's) or last; also a run whose "
                                            "training did not finish (default: the finished model)",
                                      choices=CHECKPOINTS, group="model")
    threads: Optional[int] = field(None, "CPU threads (None: one per CPU that other processes leave free; "
                                         f"OMP_NUM_THREADS also sets it; at most {_checks.MAX_THREADS:,})",
                                   group="machine")

    def __post_init__(self):
        _checks.check_int("max_tokens", self.max_tokens, min=0, cap=_checks.MAX_TOKENS)
        _checks.check_float("temperature", self.temperature, min=0, max=_checks.MAX_TEMPERATURE)
        _checks.check_int("top_k", self.top_k, min=1, cap=_checks.MAX_TOP_K, allow_none=True)
        _checks.check_float("top_p", self.top_p, min=0, max=1, min_open=True, allow_none=True)
        _checks.check_int("beam", self.beam, min=1, cap=_checks.MAX_BEAM, allow_none=True)
        _checks.check_int("num_results", self.num_results, min=1, cap=_checks.MAX_RESULTS)
        _checks.check_int("seed", self.seed, min=0, max=2**64 - 1, allow_none=True)
        _checks.check_int("threads", self.threads, min=1, cap=_checks.MAX_THREADS, allow_none=True)
        _checks.check_choice("checkpoint", self.checkpoint, (None, *CHECKPOINTS))


MAX_TEMPERATURE = _checks.MAX_TEMPERATURE
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class GenerateRequest:
    """One request to continue a prompt: what ``TextGenerator.apply`` and ``POST .../generate`` take. The
    names are ``generate``'s; ``limits`` are what the server holds a request to (see rnnkit.config.field)."""

    prompt: str = field("", "text to continue (empty: start as after the end of an item, or of a line)",
                        limits={"max_length": "max_prompt_chars"})
    max_tokens: int = field(200, "most tokens to generate per result", limits={"ge": 1, "le": "max_tokens"})
    temperature: float = field(1.0, "0: greedy; below 1 repeats the likely, above 1 invents",
                               limits={"ge": 0, "le": MAX_TEMPERATURE})
    top_k: Optional[int] = field(None, "keep the k most likely tokens (none: all)", limits={"ge": 1, "le": 1_000_000})
    top_p: Optional[float] = field(None, "nucleus: keep the most likely tokens up to this much probability "
                                         "(none: all)", limits={"gt": 0, "le": 1})
    greedy: bool = field(False, "always take the most likely token (as temperature 0)")
    seed: Optional[int] = field(None, "seed of the draws: the same seed gives the same text (none: random)",
                                limits={"ge": 0, "le": 2**63 - 1})
    num_results: int = field(1, "results generated together, each from its own draws (with beam: the best "
                                "beams)", limits={"ge": 1, "le": 16})
    beam: Optional[int] = field(None, "beam search with this many beams (none: sample); not streamed",
                                limits={"ge": 1, "le": "max_beam"})
    unknown: str = field("error", "prompt tokens the model never saw: error refuses them, drop leaves them out",
                         choices=UNKNOWN)
    stream: bool = field(False, "answer with server-sent events, one per token (HTTP only)")
    session: Optional[str] = field(None, "keep the recurrent state under this id (1 to 64 of A-Z a-z 0-9 _ -): the "
                                         "next request with it continues from where this one stopped, its prompt "
                                         "read on top (none: no session; HTTP only)", limits={"max_length": 64})
    end_session: bool = field(False, "drop the session's state after answering")

    def __post_init__(self):
        if not isinstance(self.prompt, str):
            _checks.fail("prompt", self.prompt, "a string")
        _checks.check_int("max_tokens", self.max_tokens, min=1)
        _checks.check_float("temperature", self.temperature, min=0, max=MAX_TEMPERATURE)
        _checks.check_int("top_k", self.top_k, min=1, allow_none=True)
        _checks.check_float("top_p", self.top_p, min=0, max=1, min_open=True, allow_none=True)
        _checks.check_int("seed", self.seed, min=0, max=2**63 - 1, allow_none=True)
        _checks.check_int("num_results", self.num_results, min=1)
        _checks.check_int("beam", self.beam, min=1, allow_none=True)
        _checks.check_choice("unknown", self.unknown, UNKNOWN)
        if self.session is not None and not (isinstance(self.session, str) and SESSION_ID.fullmatch(self.session)):
            _checks.fail("session", self.session, "1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")
        if self.session is not None and self.beam is not None:
            _checks.fail("beam", self.beam, "none in a session (beam search keeps no state)")
        if self.session is not None and self.num_results != 1:
            _checks.fail("num_results", self.num_results, "1 in a session (a session keeps one state)")
        if self.end_session and self.session is None:
            _checks.fail("end_session", self.end_session, "false without a session")
        if self.beam is not None and self.stream:
            _checks.fail("stream", self.stream, "false with beam (beam search answers when every beam is done)")
