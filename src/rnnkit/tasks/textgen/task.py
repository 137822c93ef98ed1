"""Text generation: character- and word-level language models, trained, sampled and evaluated.

The lectures' recipe, on real text: cut the corpus into ``batch_size`` contiguous streams, read them in
chunks of ``seq_len`` tokens, predict each next token, carry the recurrent state from one chunk to the
next and cut its history (truncated backprop through time). Then generate one token at a time,
carrying the state, with a temperature that trades repetition (low) for invention (high).

    from rnnkit.tasks import TextGenerator
    gen = TextGenerator(hidden_size=256, max_minutes=5).fit()        # the Shakespeare dataset
    print(gen.generate("QUEEN:\\n", length=300, temperature=0.5))
    gen.save("runs/shakespeare"); TextGenerator.load("runs/shakespeare").evaluate(other_text)

Three places hold the main path: :class:`LanguageModel` (embedding -> recurrent layer -> linear
head), the shared :class:`~rnnkit.training.trainer.Trainer`, and generation (:meth:`TextGenerator.generate`,
whose fast path lives in :mod:`rnnkit.generation.fast`). ``rnnkit textgen train|sample|eval``
(:mod:`rnnkit.tasks.textgen.cli`) is a thin layer over this class.

Choices a user should know about:

* The last ``val_fraction`` (10%) of the corpus is held out, never trained on; validation loss is in
  nats per token (char level: nats/char, also given in bits/char; word level: also perplexity).
* ``temperature=0`` means greedy decoding (the limit of ever lower temperatures is the argmax).
* Sampling draws one uniform number per token from ``random_seed`` and picks the token where the
  cumulative probability passes it, so the fast path and the plain Python loop give the same text.
* End token: a corpus of one item per line (the ``xkcd-colors`` names, or a list of strings passed to
  ``fit``) ends each sample at a newline; for a file, pass ``end_token="\\n"`` (``--end-token '\\n'``).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from rnnkit import _checks
from rnnkit.runs.checkpoint import RunDir, save_weights
from rnnkit.config import config_from_dict, field
from rnnkit.nn.layers import RNN
from rnnkit.generation.processors import beam_search, make_generator, make_processors, sample_uniform
from rnnkit.text import Tokenizer
from rnnkit.training.trainer import PRECISIONS, TrainConfig, Trainer, pick_device

LEVELS = ("char", "word")
CELLS = ("rnn", "gru", "lstm")
UNKNOWN = ("error", "drop")
DEVICES = ("auto", "cpu", "cuda")
OOV = "<unk>"                   # word level: the token that replaces rare and unseen words
TOKENIZER_FILE = "tokenizer.json"
SAMPLE_TEMPERATURES = (0.2, 0.5, 1.0)


@dataclass
class TextGenConfig:
    """Everything `rnnkit textgen train` takes; the defaults are the settings of the quality benchmark."""

    corpus: Optional[str] = field(None, "train on this text file instead of --dataset")
    dataset: str = field("shakespeare", "named dataset to train on when --corpus is not given "
                                        "(shakespeare, xkcd-colors)")
    variant: Optional[str] = field(None, "dataset variant, e.g. 'tiny' for the 1.1 MB Shakespeare slice "
                                         "(None: the dataset's default, all 4.8 M characters)")
    encoding: str = field("utf-8", "text encoding of --corpus")
    level: str = field("char", "tokens are characters or words", choices=LEVELS)
    num_words: Optional[int] = field(10000, "word level: keep the num_words - 1 most frequent words, the "
                                            "rest become <unk>")
    end_token: Optional[str] = field("auto", "token that ends a sample: 'auto' (newline for one-item-per-"
                                             "line corpora such as xkcd-colors), '\\n', or None")
    cell: str = field("lstm", "recurrent cell", choices=CELLS)
    hidden_size: int = field(512, "units per recurrent layer (512 with bf16 learns most in 15 minutes on a CPU "
                                  "with AMX; without fast bf16, 256 learns more in a short budget)")
    num_layers: int = field(2, "stacked recurrent layers")
    embedding_size: int = field(64, "size of the token embedding")
    dropout: float = field(0.0, "variational dropout on each layer's input and on the head's input")
    recurrent_dropout: float = field(0.0, "recurrent dropout rate (see --recurrent-dropout-mode)")
    recurrent_dropout_mode: str = field("weight_drop", "weight_drop keeps the fused kernel (fast); variational "
                                        "(one mask per sequence) runs rnnkit's LSTM kernel, ~0.86x as fast in "
                                        "float32 and slower still against bf16, or the loop path for GRU/RNN",
                                        choices=("variational", "weight_drop"))
    seq_len: int = field(100, "tokens per truncated-BPTT chunk")
    batch_size: int = field(64, "parallel contiguous streams of text")
    lr: float = field(3e-3, "peak learning rate (Adam)")
    schedule: str = field("auto", "learning-rate schedule: auto = cosine over the time budget when "
                                  "max_minutes is set, else cosine over the epochs",
                          choices=("auto", "constant", "cosine", "cosine_time"))
    warmup_steps: int = field(50, "steps of linear learning-rate warmup")
    clip_grad_norm: float = field(5.0, "clip the global gradient norm to this")
    ema_decay: Optional[float] = field(None, "average the weights over training with this decay per step "
                                             "(e.g. 0.999); evaluation, checkpoints and sampling use the average "
                                             "(None: off)")
    epochs: int = field(20, "passes over the training text (a time budget usually ends training first)")
    max_minutes: Optional[float] = field(15.0, "training time budget in minutes (None: train all epochs)")
    val_fraction: float = field(0.1, "the last part of the corpus held out for validation")
    seed: int = field(0, "random seed for initialisation and training")
    device: str = field("auto", "where to train: auto picks a CUDA GPU when there is one, else the CPU "
                                "(sampling always runs on the CPU)", choices=DEVICES)
    precision: str = field("auto", "training arithmetic: auto (bfloat16 mixed precision where the CPU or GPU "
                                   "runs it natively, e.g. Intel AMX: 2-3x the characters/s; else fp32), "
                                   "fp32, bf16", choices=PRECISIONS)
    sample_seed_text: Optional[str] = field(None, "text the per-epoch samples start from (None: a newline, "
                                                  "or the corpus's first token)")
    sample_length: int = field(200, "tokens per per-epoch sample (0: no samples)")
    log_every: int = field(50, "steps between progress updates and metrics records")

    def __post_init__(self) -> None:
        _checks.check_choice("level", self.level, LEVELS)
        _checks.check_choice("cell", self.cell, CELLS)
        for name in ("hidden_size", "num_layers", "embedding_size", "seq_len", "batch_size", "epochs",
                     "log_every"):
            _checks.check_int(name, getattr(self, name), min=1)
        _checks.check_int("num_words", self.num_words, min=2, allow_none=True)
        _checks.check_int("warmup_steps", self.warmup_steps, min=0)
        _checks.check_int("sample_length", self.sample_length, min=0)
        _checks.check_int("seed", self.seed, min=0)
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        _checks.check_float("recurrent_dropout", self.recurrent_dropout, min=0, max=1, max_open=True)
        _checks.check_float("lr", self.lr, min=0, min_open=True)
        _checks.check_float("clip_grad_norm", self.clip_grad_norm, min=0, min_open=True)
        _checks.check_float("ema_decay", self.ema_decay, min=0, max=1, min_open=True, max_open=True,
                            allow_none=True)
        _checks.check_float("max_minutes", self.max_minutes, min=0, min_open=True, allow_none=True)
        _checks.check_float("val_fraction", self.val_fraction, min=0, max=0.5, min_open=True)
        _checks.check_choice("schedule", self.schedule, ("auto", "constant", "cosine", "cosine_time"))
        _checks.check_choice("precision", self.precision, PRECISIONS)
        _checks.check_choice("device", self.device, DEVICES)
        if self.schedule == "cosine_time" and self.max_minutes is None:
            _checks.fail("schedule", self.schedule, "'cosine' or 'constant' when max_minutes is None")
        self.end_token = parse_end_token(self.end_token)

    def train_config(self, **overrides: Any) -> TrainConfig:
        schedule = self.schedule
        if schedule == "auto":
            schedule = "cosine_time" if self.max_minutes else "cosine"
        values = dict(epochs=self.epochs, max_minutes=self.max_minutes, lr=self.lr, schedule=schedule,
                      warmup_steps=self.warmup_steps, clip_grad_norm=self.clip_grad_norm, seed=self.seed,
                      log_every=self.log_every, device=self.device, precision=self.precision,
                      ema_decay=self.ema_decay)
        values.update(overrides)
        return TrainConfig(**values)


def parse_end_token(value: Any) -> Optional[str]:
    """``'\\n'`` typed on a command line arrives as backslash + n: read it as the newline it means."""
    if value is None or value == "auto":
        return value
    if not isinstance(value, str) or not value:
        _checks.fail("end_token", value, "'auto', None, or one token such as '\\n'")
    if value.lower() in ("none", "null"):
        return None
    return {"\\n": "\n", "\\t": "\t", "newline": "\n"}.get(value, value)


# ---------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------

class LanguageModel(nn.Module):
    """Embedding -> stacked recurrent layer -> (dropout) -> linear head over the vocabulary."""

    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int, num_layers: int,
                 cell: str = "lstm", dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 recurrent_dropout_mode: str = "weight_drop"):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_size)
        self.rnn = RNN(cell, embedding_size, hidden_size, num_layers=num_layers, dropout=dropout,
                       recurrent_dropout=recurrent_dropout, recurrent_dropout_mode=recurrent_dropout_mode,
                       return_state=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor, state=None):
        """ids (B, T) -> logits (B, T, V) and the final state (one (h[, c]) tuple of (B, H) per layer)."""
        out, state = self.rnn(self.embed(ids), initial_state=state)   # (B, T, H)
        return self.head(self.drop(out)), state


# ---------------------------------------------------------------------------------------------------------
# Corpus -> token ids -> contiguous streams
# ---------------------------------------------------------------------------------------------------------

def load_corpus(config: TextGenConfig) -> tuple[str, bool]:
    """The training text and whether it is a one-item-per-line corpus (whose samples end at a newline)."""
    from rnnkit import datasets

    if config.corpus is not None:
        path = Path(config.corpus)
        if not path.is_file():
            raise FileNotFoundError(f"corpus={config.corpus!r}: no such file")
        return datasets.load_text(path, encoding=config.encoding), False
    options = {"variant": config.variant} if config.variant is not None else {}
    data = datasets.load(config.dataset, **options)
    return corpus_text(data, source=f"dataset={config.dataset!r}")


def corpus_text(data: Any, source: str = "text") -> tuple[str, bool]:
    """A str is used as it is; a list of strings (or a dataset dict with ``names``) becomes one item per line."""
    if isinstance(data, dict) and "names" in data:
        data = data["names"]
    if isinstance(data, str):
        return data, False
    if isinstance(data, (list, tuple)) and all(isinstance(s, str) for s in data):
        # Every item ends with a newline, so the model learns where an item ends.
        return "".join(s.replace("\n", " ") + "\n" for s in data), True
    raise ValueError(f"{source}: expected a text (str) or a list of strings, got {type(data).__name__}")


def make_tokenizer(config: TextGenConfig) -> Tokenizer:
    if config.level == "char":
        # Every character as written is a token: no lower-casing, no filters.
        return Tokenizer(char_level=True, lower=False, filters="")
    return Tokenizer(num_words=config.num_words, oov_token=OOV)


def stream_batches(ids: torch.Tensor, batch_size: int, seq_len: int, *, name: str = "corpus",
                   unit: str = "tokens") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Cut one id sequence into ``batch_size`` contiguous streams, then into chunks of ``seq_len``.

    Chunk k of stream b follows chunk k-1 of stream b, so the state carried between batches is valid.
    Returns a list of (x, y) pairs, each (B, seq_len), y being x shifted by one token.
    """
    n = (len(ids) - 1) // batch_size                                  # steps per stream
    if n < seq_len:
        need = batch_size * seq_len + 1
        raise ValueError(f"{name}: {len(ids)} {unit} is too short for one batch of batch_size={batch_size} x "
                         f"seq_len={seq_len} ({need} {unit} needed); use a longer text or lower --batch-size "
                         f"or --seq-len")
    x = ids[: n * batch_size].view(batch_size, n)                     # (B, N)
    y = ids[1: n * batch_size + 1].view(batch_size, n)
    return [(x[:, k:k + seq_len], y[:, k:k + seq_len]) for k in range(0, n - seq_len + 1, seq_len)]


@torch.no_grad()
def stream_loss(model: LanguageModel, ids: torch.Tensor, batch_size: int = 16, seq_len: int = 100) -> tuple[float, int]:
    """Mean next-token loss (nats) over ``ids`` read as up to ``batch_size`` streams, state carried.

    Every token but the first of each stream (and a tail shorter than the number of streams) is
    predicted once; returns (mean nats per predicted token, tokens predicted).
    """
    batch_size = max(1, min(batch_size, (len(ids) - 1) // max(1, seq_len)))
    n = (len(ids) - 1) // batch_size
    if n < 1:
        raise ValueError(f"text: {len(ids)} tokens is too short to evaluate; need at least 2")
    x = ids[: n * batch_size].view(batch_size, n)
    y = ids[1: n * batch_size + 1].view(batch_size, n)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device                         # chunks go where the model is
    state, total = None, torch.zeros((), dtype=torch.float64, device=device)
    for k in range(0, n, seq_len):                                    # the last chunk may be shorter
        logits, state = model(x[:, k:k + seq_len].to(device), state)
        total += nn.functional.cross_entropy(logits.flatten(0, 1), y[:, k:k + seq_len].flatten().to(device),
                                             reduction="sum").double()
    model.train(was_training)
    return float(total) / y.numel(), y.numel()


# ---------------------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------------------

class TextGenerator:
    """A character- or word-level language model: ``fit`` a text, ``generate`` from it, ``evaluate`` a text.

    ``TextGenerator(config)`` or ``TextGenerator(hidden_size=256, ...)`` (fields of :class:`TextGenConfig`).
    Learned attributes after ``fit``: ``tokenizer_``, ``model_``, ``end_token_`` (None when samples
    end only at their length), ``history_`` (the Trainer's metrics records), ``metrics_`` (last validation).
    """

    def __init__(self, config: TextGenConfig | None = None, **overrides: Any):
        if config is not None and not isinstance(config, TextGenConfig):
            _checks.fail("config", config, "a TextGenConfig or None")
        self.config = dataclasses.replace(config or TextGenConfig(), **overrides)

    def __repr__(self) -> str:
        return f"TextGenerator({self.config!r})"

    # -- training --------------------------------------------------------------------------------------

    def fit(self, text: str | Sequence[str] | None = None, *, run_dir: str | None = None, resume: bool = False,
            dry_run: bool = False, progress: bool | None = None) -> "TextGenerator":
        """Build the vocabulary and model from ``text`` and train; returns ``self``.

        ``text``: a str, or a list of strings (one item per line; samples end at a newline); None loads
        ``config.corpus`` or ``config.dataset``. ``run_dir`` gets checkpoints, metrics.jsonl, loss.png,
        the config and the vocabulary; ``resume=True`` continues the run saved there (its vocabulary is
        reused). ``dry_run`` trains on one small batch and evaluates a little: seconds, for smoke tests.
        """
        cfg = self.config
        pick_device(cfg.device)                  # "cuda" without a GPU fails here, before any work
        if text is None:
            text, line_corpus = load_corpus(cfg)
        else:
            text, line_corpus = corpus_text(text)
        if not text:
            raise ValueError("corpus: the text is empty; expected at least one batch of text "
                             f"(batch_size={cfg.batch_size} x seq_len={cfg.seq_len} tokens)")
        if dry_run:
            text = text[:50_000]
        if cfg.end_token == "auto":
            # Word level drops newlines (the tokenizer's filters), so only a char model can end at one.
            self.end_token_ = "\n" if line_corpus and cfg.level == "char" else None
        else:
            self.end_token_ = cfg.end_token

        if resume:
            if run_dir is None:
                _checks.fail("run_dir", run_dir, "the run directory to resume")
            RunDir(run_dir).require(TOKENIZER_FILE)
            self.tokenizer_ = Tokenizer.load(RunDir(run_dir).file(TOKENIZER_FILE))
        else:
            self.tokenizer_ = make_tokenizer(cfg).fit_on_texts([text])
        unit = "characters" if cfg.level == "char" else "words"
        ids = torch.tensor(self.tokenizer_.texts_to_sequences([text])[0], dtype=torch.long)
        if self.end_token_ is not None and self.end_token_ not in self.tokenizer_.word_index:
            _checks.fail("end_token", self.end_token_, "a token of the corpus (or None)")
        split = int(len(ids) * (1 - cfg.val_fraction))                # the last 10% is held out
        batch_size, seq_len = (min(cfg.batch_size, 4), min(cfg.seq_len, 32)) if dry_run else (cfg.batch_size,
                                                                                                cfg.seq_len)
        if (split - 1) // batch_size < seq_len:
            raise ValueError(f"corpus: {len(ids)} {unit} ({split} for training after holding out val_fraction="
                             f"{cfg.val_fraction}) is too short for one batch of batch_size={batch_size} x "
                             f"seq_len={seq_len} ({batch_size * seq_len + 1} training {unit} needed); use a "
                             f"longer text or lower --batch-size or --seq-len")
        train_batches = stream_batches(ids[:split], batch_size, seq_len, name="corpus", unit=unit)
        val_ids = ids[split:]
        if dry_run:
            train_batches, val_ids = train_batches[:1], val_ids[:2000]
        if len(val_ids) < 2:
            raise ValueError(f"corpus: {len(ids)} {unit} leave {len(val_ids)} for validation "
                             f"(val_fraction={cfg.val_fraction}); use a longer text")
        size = f"{len(text):,} characters" + (f", {len(ids):,} words" if cfg.level == "word" else "")
        print(f"corpus: {size}, vocabulary {self.tokenizer_.vocab_size - 1}; "
              f"{len(train_batches)} batches of {batch_size}x{seq_len} per epoch, {len(val_ids):,} {unit} held out",
              file=sys.stderr)

        torch.manual_seed(cfg.seed)
        self.model_ = self._build_model()
        loss_fn = nn.CrossEntropyLoss()
        self._sample_seed = cfg.sample_seed_text if cfg.sample_seed_text is not None else self._default_seed(text)

        def compute_loss(model, batch, state):
            x, y = batch
            logits, state = model(x, state)                           # (B, T, V)
            return loss_fn(logits.flatten(0, 1), y.flatten()), state, x.numel()

        def evaluate(model):
            nats, _ = stream_loss(model, val_ids, batch_size=16, seq_len=cfg.seq_len)
            return self._loss_metrics(nats, prefix="val_")

        def show_samples(trainer, epoch, metrics):
            if cfg.sample_length == 0:
                return
            lines = []
            for temperature in SAMPLE_TEMPERATURES:
                out = self.generate(self._sample_seed, length=cfg.sample_length, temperature=temperature,
                                    random_seed=cfg.seed + epoch, unknown="drop")
                lines.append(f"----- epoch {epoch + 1}, temperature {temperature} -----\n"
                             f"{self.join_seed(self._sample_seed, out)}")
            # tqdm.write keeps the text clear of an active progress bar.
            from tqdm.auto import tqdm
            tqdm.write("\n".join(lines) + "\n", file=sys.stderr)

        tcfg = cfg.train_config(**({"max_steps": 1, "max_minutes": None, "schedule": "constant", "epochs": 1}
                                   if dry_run else {}))
        if run_dir is not None:
            RunDir(run_dir).path.mkdir(parents=True, exist_ok=True)
            self._write_side_files(RunDir(run_dir))
        trainer = Trainer(self.model_, tcfg, run_dir=run_dir, progress=progress,
                          items_name="chars" if cfg.level == "char" else "words")
        trainer.fit(lambda epoch: train_batches, compute_loss, evaluate, show_samples, resume=resume)
        self.trainer_ = trainer
        self.history_ = trainer.history
        self.metrics_ = trainer.metrics
        self.model_.eval()
        return self

    def _build_model(self) -> LanguageModel:
        cfg = self.config
        return LanguageModel(self.tokenizer_.vocab_size, cfg.embedding_size, cfg.hidden_size, cfg.num_layers,
                             cfg.cell, cfg.dropout, cfg.recurrent_dropout, cfg.recurrent_dropout_mode)

    def _default_seed(self, text: str) -> str:
        if self.end_token_ is not None:
            return ""
        if self.config.level == "char":
            return "\n" if "\n" in self.tokenizer_.word_index else text[0]
        first = self.tokenizer_.texts_to_sequences([text[:200]])[0]
        return self.tokenizer_.sequences_to_texts([first[:1]])[0]

    def _loss_metrics(self, nats: float, prefix: str = "") -> dict[str, float]:
        if self.config.level == "char":
            return {f"{prefix}loss": nats, f"{prefix}bits_per_char": nats / math.log(2)}
        return {f"{prefix}loss": nats, f"{prefix}perplexity": math.exp(min(nats, 700.0))}

    # -- saving ----------------------------------------------------------------------------------------

    def _write_side_files(self, run: RunDir) -> None:
        run.write_config({"task": "textgen", "model": "LanguageModel",
                          "textgen": dataclasses.asdict(self.config), "end_token": self.end_token_,
                          "vocabulary": TOKENIZER_FILE})
        self.tokenizer_.save(run.file(TOKENIZER_FILE))

    def save(self, path: str) -> None:
        """Write config.json, tokenizer.json and model.safetensors to the run directory ``path``."""
        self._check_fitted()
        run = RunDir(path)
        run.path.mkdir(parents=True, exist_ok=True)
        self._write_side_files(run)
        save_weights(run.weights_path, self.model_.state_dict())

    @classmethod
    def load(cls, path: str, *, weights: str = "best") -> "TextGenerator":
        """Load a run directory written by ``fit(run_dir=...)``, ``save`` or ``rnnkit textgen train``.

        ``weights``: ``"best"`` (the best validation epoch, when the run saved one) or ``"last"``.
        """
        _checks.check_choice("weights", weights, ("best", "last"))
        run = RunDir(path)
        run.require("config.json", TOKENIZER_FILE)
        data = run.read_config()
        if data.get("task") != "textgen":
            raise ValueError(f"{run.config_path}: task is {data.get('task')!r}, expected 'textgen'")
        self = cls(config_from_dict(TextGenConfig, data["textgen"], source=str(run.config_path)))
        self.end_token_ = data.get("end_token")
        self.tokenizer_ = Tokenizer.load(run.file(TOKENIZER_FILE))
        self.model_ = self._build_model()
        best = weights == "best" and run.best_path.is_file()
        if not best and not run.weights_path.is_file():
            run.require(run.weights_path.name)   # raises, naming what the directory holds
        run.load_weights(self.model_, best=best)
        self.model_.eval()
        self.history_ = run.read_metrics()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("this TextGenerator is not fitted: call fit(text) or TextGenerator.load(run_dir)")

    # -- evaluation ------------------------------------------------------------------------------------

    def evaluate(self, text: str | Sequence[str]) -> dict[str, float]:
        """Loss of the model on ``text`` in nats per token (+ bits/char or perplexity) and tokens scored.

        Tokens the vocabulary lacks become ``<unk>`` at word level; at char level they are left out
        and counted in ``unknown``.
        """
        self._check_fitted()
        text, _ = corpus_text(text)
        ids = self.tokenizer_.texts_to_sequences([text])[0]
        unknown = len(self.tokenizer_._tokens(text)) - len(ids)
        if len(ids) < 2:
            raise ValueError(f"text: {len(ids)} known tokens; expected at least 2 to evaluate")
        nats, n = stream_loss(self.model_, torch.tensor(ids), batch_size=16, seq_len=self.config.seq_len)
        return {**self._loss_metrics(nats), "tokens": n, "unknown": unknown}

    # -- generation ------------------------------------------------------------------------------------

    def encode_seed(self, seed_text: str, unknown: str = "error") -> list[int]:
        """Seed text -> ids; tokens the model never saw raise (listing them) or are dropped."""
        _checks.check_choice("unknown", unknown, UNKNOWN)
        if not isinstance(seed_text, str):
            _checks.fail("seed_text", seed_text, "a string")
        tokens = list(self.tokenizer_._tokens(seed_text))
        index, limit = self.tokenizer_.word_index, self.tokenizer_.vocab_size
        unseen = [t for t in dict.fromkeys(tokens) if index.get(t, limit) >= limit]
        if unseen and unknown == "error":
            _checks.fail("seed_text", seed_text, f"tokens the model saw in training; unseen: "
                         f"{', '.join(map(repr, unseen))} (pass unknown='drop' / --unknown drop to leave them out)")
        return [index[t] for t in tokens if t not in unseen]

    @torch.inference_mode()
    def generate(self, seed_text: str = "", length: int = 200, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
                 beam: int | None = None, num_samples: int = 1, random_seed: int | None = None,
                 unknown: str = "error", fast: bool = True) -> str | list[str]:
        """Continue ``seed_text`` by up to ``length`` tokens; the seed is not repeated in the result.

        Stateful: the seed is read once, then one step per token carries the state. ``num_samples``
        samples run as one batch and a str list is returned (a str when ``num_samples == 1``).
        ``temperature=0`` or ``greedy=True`` take the most likely token; ``beam=N`` keeps the N most
        likely continuations (log-probabilities after the processors) and returns the best
        ``num_samples`` of them. Samples stop at the end token (see the module doc), else at ``length``.
        ``fast`` runs the sampling loop in TorchScript (LSTM, GRU and tanh-RNN models); ``fast=False``
        runs the same computation as a plain Python loop over the model (the two give the same tokens).
        """
        self._check_fitted()
        _checks.check_int("length", length, min=0)
        _checks.check_int("num_samples", num_samples, min=1)
        _checks.check_int("beam", beam, min=1, allow_none=True)
        _checks.check_float("temperature", temperature, min=0)
        if random_seed is None:
            random_seed = int(torch.randint(0, 2**31 - 1, ()).item())
        greedy = greedy or temperature == 0
        if greedy and beam is not None:
            raise ValueError("greedy and beam: choose one (beam=1 is greedy)")
        if beam is not None and num_samples > beam:
            _checks.fail("num_samples", num_samples, f"at most beam={beam} (the beams are the candidates)")
        processors = make_processors(1.0 if greedy else temperature, top_k, top_p)
        ids = self.encode_seed(seed_text, unknown)
        end = self.tokenizer_.word_index[self.end_token_] if self.end_token_ is not None else -1
        model = self._cpu_model()
        if not ids:
            # No seed: start as after the end of an item (a line corpus) or at the start of a line.
            start = end if end >= 0 else self.tokenizer_.word_index.get("\n", -1)
            if start < 0:
                _checks.fail("seed_text", seed_text, "at least one known token to start from (this "
                             "corpus has no end token or newline to start after)")
            ids = [start]

        logits, state = model(torch.tensor([ids]))                   # (1, T, V): read the seed once
        logits = logits[:, -1]                                        # (1, V)
        if beam is not None:
            tokens = self._beam(model, logits, state, beam, length, processors, end, num_samples)
        else:
            # Expand the seed's state to the batch of samples: (1, H) -> (N, H) per state tensor.
            state = [tuple(s.expand(num_samples, -1).contiguous() for s in st) for st in state]
            logits = logits.expand(num_samples, -1)
            uniforms = torch.rand(length, num_samples, generator=make_generator(random_seed))  # (L, N)
            if fast and model.rnn.fused_kind() is not None:
                from rnnkit.generation.fast import compiled_sampler, sample
                from rnnkit.generation.native import native_kernel
                sampler, native = compiled_sampler(model)
                states = _stack_states(state)
                temperature = 1.0 if greedy else float(temperature)
                simple = native is not None and num_samples == 1 and top_k is None and top_p is None
                kernel = native_kernel() if simple else None
                if kernel is not None:
                    # One LSTM sample, temperature or greedy: the C loop (textgen_native.py).
                    tokens = native.run(kernel, logits, *states, uniforms, temperature, bool(greedy), int(end))
                else:
                    tokens = sample(sampler, logits, states, uniforms, temperature,
                                    -1 if top_k is None else int(top_k), 1.0 if top_p is None else float(top_p),
                                    bool(greedy), int(end))
            else:
                tokens = self._plain_loop(model, logits, state, uniforms, processors, greedy, end)
        texts = [self._decode(row, end) for row in tokens.tolist()]
        return texts[0] if num_samples == 1 else texts

    def join_seed(self, seed_text: str, generated: str) -> str:
        """The seed followed by what was generated from it: a space between them at word level."""
        joiner = " " if self.config.level == "word" and seed_text and generated else ""
        return seed_text + joiner + generated

    def _decode(self, row: list[int], end: int) -> str:
        if end >= 0 and end in row:
            row = row[:row.index(end)]
        return self.tokenizer_.sequences_to_texts([[i for i in row if i > 0]])[0]

    def _cpu_model(self) -> LanguageModel:
        """The model to generate with, on the CPU (a copy when it was trained on a GPU).

        One token at a time is too little work to keep a GPU busy, and on the CPU the fast sampler
        runs and samples match across machines for the same seed.
        """
        if next(self.model_.parameters()).device.type == "cpu":
            return self.model_.eval()
        copy = self._build_model()
        copy.load_state_dict({k: v.detach().cpu() for k, v in self.model_.state_dict().items()})
        return copy.eval()

    def _plain_loop(self, model, logits, state, uniforms, processors, greedy: bool, end: int) -> torch.Tensor:
        """One Python-level step per token: processors, choice, model step. Returns tokens (N, L)."""
        N, L = logits.shape[0], uniforms.shape[0]
        out = torch.zeros(N, L, dtype=torch.long)
        done = torch.zeros(N, dtype=torch.bool)
        for t in range(L):
            scores = _no_padding(logits)
            nxt = torch.argmax(scores, dim=-1) if greedy else sample_uniform(processors(None, scores), uniforms[t])
            nxt = torch.where(done, torch.zeros_like(nxt), nxt)       # finished samples emit padding
            out[:, t] = nxt
            done |= nxt == end
            if bool(done.all()):
                break
            step_logits, state = model(nxt.view(N, 1), state)
            logits = step_logits[:, -1]
        return out

    def _beam(self, model, logits, state, beam: int, length: int, processors, end: int,
              num_samples: int) -> torch.Tensor:
        def step(tokens, st):                                         # tokens (K,) -> logits (K, V)
            out, st = model(tokens.view(-1, 1), st)
            return _no_padding(out[:, -1]), st

        tokens, _ = beam_search(step, state, _no_padding(logits), beam_size=beam, length=length,
                                processors=processors, end_token=None if end < 0 else end,
                                num_return=num_samples)
        return tokens


def _no_padding(logits: torch.Tensor) -> torch.Tensor:
    """Index 0 is padding, never a token of the text: never choose it."""
    return torch.cat([torch.full_like(logits[:, :1], -math.inf), logits[:, 1:]], dim=1)


def _stack_states(state) -> list[torch.Tensor]:
    """Per-layer (h[, c]) tuples -> [h (L, N, H)] or [h, c]: the layout the compiled sampler takes."""
    return [torch.stack([st[k] for st in state]).contiguous() for k in range(len(state[0]))]
