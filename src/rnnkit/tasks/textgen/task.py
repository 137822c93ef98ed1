"""Text generation: character- and word-level language models, trained, sampled and evaluated.

The lectures' recipe, on real text: cut the corpus into ``batch_size`` contiguous streams, read them in
chunks of ``seq_len`` tokens, predict each next token, carry the recurrent state from one chunk to the
next and cut its history (truncated backprop through time). Then generate one token at a time,
carrying the state, with a temperature that trades repetition (low) for invention (high).

    from rnnkit.tasks import TextGenerator
    gen = TextGenerator(hidden_size=256, max_minutes=5).fit()        # the Shakespeare dataset
    print(gen.generate("QUEEN:\\n", length=300, temperature=0.5))
    gen.save("runs/shakespeare"); TextGenerator.load("runs/shakespeare").evaluate(other_text)
    rnnkit.load("runs/shakespeare")                                  # the same, for any task's run

Three places hold the main path: the model (``model.py``: embedding -> recurrent layer -> linear head),
the shared Trainer (``rnnkit.training``), and generation (:meth:`TextGenerator.generate` over
``rnnkit.generation``: the plain loop in ``stateful.py``, the compiled ones in ``fast.py`` and
``native.py``). The data side (corpus, streams, held-out loss) is ``data.py``; ``rnnkit textgen
train|sample|eval`` (``cli.py``) is a thin layer over this class.

Choices a user should know about:

* Training options (``lr``, ``epochs``, ``max_minutes``, ``batch_size``, ...) are the shared
  :class:`~rnnkit.training.TrainConfig`, nested as ``config.train``; keyword arguments take them by their
  flat names (``TextGenerator(lr=1e-3)``), like the CLI flags.
* The last ``val_frac`` (10%) of the corpus is held out, never trained on; validation loss is in
  nats per token (char level: nats/char, also given in bits/char; word level: also perplexity).
  After ``fit`` the model holds the weights of the epoch with the lowest validation loss
  (``restore_best``), and ``metrics_`` are that epoch's.
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
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from rnnkit import _checks
from rnnkit.config import field
from rnnkit.generation.processors import make_processors
from rnnkit.generation.search import beam_search, make_generator
from rnnkit.generation.stateful import decode
from rnnkit.runs.checkpoint import RunDir, save_weights
from rnnkit.runs.schema import FORMAT_VERSION, read_run_config
from rnnkit.tasks.base import Task
from rnnkit.tasks.textgen.data import (corpus_text, load_corpus, make_tokenizer, stream_batches,
                                       stream_loss)
from rnnkit.tasks.textgen.model import LanguageModel, no_padding, stack_states
from rnnkit.text import Tokenizer
from rnnkit.training import distributed
from rnnkit.training.config import TrainConfig
from rnnkit.training.trainer import Trainer, pick_device

LEVELS = ("char", "word")
CELLS = ("rnn", "gru", "lstm")
UNKNOWN = ("error", "drop")
TOKENIZER_FILE = "tokenizer.json"
SAMPLE_TEMPERATURES = (0.2, 0.5, 1.0)

# Text generation's training defaults: the settings of the quality benchmark (15 minutes of Shakespeare).
TRAIN_DEFAULTS = TrainConfig(
    epochs=20,             # a time budget usually ends training first
    batch_size=64,         # parallel contiguous streams of text
    max_minutes=15.0,
    lr=3e-3,
    schedule="auto",       # cosine over the time budget when max_minutes is set, else over the epochs
    warmup_steps=50,
    clip_grad_norm=5.0,
    precision="auto",      # bf16 where the CPU or GPU runs it natively (Intel AMX: 2-3x the chars/s)
    log_every=50,
)

# --hidden-size auto (the default): the best width depends on the budget and the machine. Measured on an AMD
# EPYC (fp32, 2 cores, a novel): after 90 s, 256 units beat 512 (1.742 against 2.042 nats/char); after 8
# minutes, 512 beat 256 (1.259 against 1.284). A wider model learns more per step but takes ~3x as long for
# one (2.8-3.1x measured for 512 against 256, fp32), so it pulls ahead only once it has had enough steps: 512
# had had roughly 180 steps at 90 s and 950 at 8 minutes; 600 lies between. The rule: time PROBE_STEPS steps
# of each width on this machine (the first is a warm-up), estimate the steps each gets in max_minutes, and
# take the widest that gets at least AUTO_MIN_STEPS (the narrowest when none does; the widest when there is
# no time budget: then every width gets the same steps). The probe is not counted in the budget.
AUTO_WIDTHS = (128, 256, 512)
AUTO_MIN_STEPS = 600
PROBE_STEPS = 4
DRY_RUN_WIDTH = 256       # a dry run (one tiny batch) does not probe


def int_or_auto(value: Any) -> int | str:
    """A width given as a whole number or ``"auto"`` (the CLI's parser for ``--hidden-size``)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    return int(value)


def choose_width(rates: dict[int, float], budget_s: float | None) -> tuple[int, str]:
    """The width by the rule above, and why (one line). ``rates``: optimizer steps/s of each probed width."""
    widths = sorted(rates)
    if budget_s is None:
        return AUTO_WIDTHS[-1], "no --max-minutes budget: every width gets the same steps, so the widest"
    steps = {w: budget_s * rates[w] for w in widths}
    enough = [w for w in widths if steps[w] >= AUTO_MIN_STEPS]
    width = max(enough) if enough else widths[0]
    probe = ", ".join(f"{w}: {rates[w]:.2f}" for w in widths)
    minutes = f"{budget_s / 60:g} minutes"
    if not enough:
        why = (f"even {width} units get only ~{steps[width]:.0f} steps in {minutes} (a model needs ~"
               f"{AUTO_MIN_STEPS} to learn much): expect rough samples; a longer --max-minutes learns more")
    else:
        why = f"{width} units get ~{steps[width]:.0f} steps in {minutes}"
        wider = [w for w in widths if w > width]
        if wider:
            why += (f"; {wider[0]} would get ~{steps[wider[0]]:.0f}, fewer than the {AUTO_MIN_STEPS} a wider "
                    f"model needs to pull ahead")
    return width, f"{why} (steps/s measured: {probe})"


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
    hidden_size: int_or_auto = field("auto", "units per recurrent layer; auto picks 128, 256 or 512 from "
                                             "--max-minutes and a few timed steps on this machine (the widest "
                                             "that gets ~600 steps) and stores the number in the run's "
                                             "config.json")
    num_layers: int = field(2, "stacked recurrent layers")
    embedding_size: int = field(64, "size of the token embedding")
    dropout: float = field(0.0, "variational dropout on each layer's input and on the head's input")
    recurrent_dropout: float = field(0.0, "recurrent dropout rate (see --recurrent-dropout-mode)")
    recurrent_dropout_mode: str = field("weight_drop", "weight_drop keeps the fused kernel (fast); variational "
                                        "(one mask per sequence) runs rnnkit's LSTM kernel, ~0.86x as fast in "
                                        "float32 and slower still against bf16, or the loop path for GRU/RNN",
                                        choices=("variational", "weight_drop"))
    seq_len: int = field(100, "tokens per truncated-BPTT chunk")
    val_frac: float = field(0.1, "the last part of the corpus held out for validation")
    sample_seed_text: Optional[str] = field(None, "text the per-epoch samples start from (None: a newline, "
                                                  "or the corpus's first token)")
    sample_length: int = field(200, "tokens per per-epoch sample (0: no samples)")
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
        for name in ("num_layers", "embedding_size", "seq_len"):
            _checks.check_int(name, getattr(self, name), min=1)
        _checks.check_int("num_words", self.num_words, min=2, allow_none=True)
        _checks.check_int("sample_length", self.sample_length, min=0)
        _checks.check_float("dropout", self.dropout, min=0, max=1, max_open=True)
        _checks.check_float("recurrent_dropout", self.recurrent_dropout, min=0, max=1, max_open=True)
        _checks.check_float("val_frac", self.val_frac, min=0, max=0.5, min_open=True)
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


class TextGenerator(Task):
    """A character- or word-level language model: ``fit`` a text, ``generate`` from it, ``evaluate`` a text.

    ``TextGenerator(config)`` or ``TextGenerator(hidden_size=256, lr=1e-3, ...)`` (fields of
    :class:`TextGenConfig` and of its ``train`` options, by their flat names). Learned attributes after
    ``fit`` or ``load``: ``tokenizer_``, ``model_``, ``end_token_`` (None when samples end only at their
    length), ``history_`` (the metrics records); after ``fit`` also ``metrics_`` (validation metrics of
    the weights the model holds), ``trainer_`` and ``data_`` (what it was trained on).
    """

    name = "textgen"
    config_class = TextGenConfig
    train_command = "rnnkit textgen train"

    # -- training --------------------------------------------------------------------------------------

    def fit(self, text: str | Sequence[str] | None = None, *, run_dir: str | None = None, resume: bool = False,
            dry_run: bool = False, progress: bool | None = None) -> "TextGenerator":
        """Build the vocabulary and model from ``text`` and train; returns ``self``.

        ``text``: a str, or a list of strings (one item per line; samples end at a newline); None loads
        ``config.corpus`` or ``config.dataset``. ``run_dir`` gets checkpoints, metrics.jsonl, loss.png,
        config.json and the vocabulary; ``resume=True`` continues the run saved there (its vocabulary is
        reused). ``dry_run`` trains on one small batch and evaluates a little: seconds, for smoke tests.
        """
        cfg, train = self.config, self.config.train
        pick_device(train.device)                # "cuda" without a GPU fails here, before any work
        if resume and run_dir is None:
            _checks.fail("run_dir", run_dir, "the run directory to resume")
        if resume and dry_run:
            _checks.fail("dry_run", dry_run, "False with resume=True (a dry run is a fresh smoke test)")
        if text is None:
            text, line_corpus = load_corpus(cfg)
            source = cfg.corpus if cfg.corpus is not None else f"dataset {cfg.dataset}" + (
                f" ({cfg.variant})" if cfg.variant else "")
        else:
            text, line_corpus = corpus_text(text)
            source = "text passed to fit"
        if not text:
            raise ValueError("corpus: the text is empty; expected at least one batch of text "
                             f"(batch_size={train.batch_size} x seq_len={cfg.seq_len} tokens)")
        # What the run trains on; a resumed run refuses a corpus that changed since it began.
        record = self._data_record(source, text, run_dir=run_dir, resume=resume)
        if dry_run:
            text = text[:50_000]
        if cfg.end_token == "auto":
            # Word level drops newlines (the tokenizer's filters), so only a char model can end at one.
            self.end_token_ = "\n" if line_corpus and cfg.level == "char" else None
        else:
            self.end_token_ = cfg.end_token

        if resume:
            RunDir(run_dir).require(TOKENIZER_FILE)
            self.tokenizer_ = Tokenizer.load(RunDir(run_dir).file(TOKENIZER_FILE))
        else:
            self.tokenizer_ = make_tokenizer(cfg).fit_on_texts([text])
        unit = "characters" if cfg.level == "char" else "words"
        ids = torch.tensor(self.tokenizer_.texts_to_sequences([text])[0], dtype=torch.long)   # (n,)
        if self.end_token_ is not None and self.end_token_ not in self.tokenizer_.word_index:
            _checks.fail("end_token", self.end_token_, "a token of the corpus (or None)")
        split = int(len(ids) * (1 - cfg.val_frac))                    # the last 10% is held out
        batch_size, seq_len = ((min(train.batch_size, 4), min(cfg.seq_len, 32)) if dry_run
                               else (train.batch_size, cfg.seq_len))
        if (split - 1) // batch_size < seq_len:
            raise ValueError(f"corpus: {len(ids)} {unit} ({split} for training after holding out val_frac="
                             f"{cfg.val_frac}) is too short for one batch of batch_size={batch_size} x "
                             f"seq_len={seq_len} ({batch_size * seq_len + 1} training {unit} needed); use a "
                             f"longer text or lower --batch-size or --seq-len")
        if batch_size < distributed.world_size():
            # Each process trains on its own streams of every batch (training/distributed.py).
            _checks.fail("batch_size", batch_size, f"at least one stream per process ({distributed.world_size()} "
                                                   f"processes)")
        train_batches = stream_batches(ids[:split], batch_size, seq_len, name="corpus", unit=unit)
        val_ids = ids[split:]
        if dry_run:
            train_batches, val_ids = train_batches[:1], val_ids[:2000]
        if len(val_ids) < 2:
            raise ValueError(f"corpus: {len(ids)} {unit} leave {len(val_ids)} for validation "
                             f"(val_frac={cfg.val_frac}); use a longer text")
        size = f"{len(text):,} characters" + (f", {len(ids):,} words" if cfg.level == "word" else "")
        if distributed.is_main():
            print(f"corpus: {size}, vocabulary {self.tokenizer_.vocab_size - 1}; {len(train_batches)} batches of "
                  f"{batch_size}x{seq_len} per epoch, {len(val_ids):,} {unit} held out", file=sys.stderr)
        self.data_ = {**record, "characters": len(text), "tokens": len(ids), "unit": unit,
                      "vocabulary": self.tokenizer_.vocab_size - 1, "train_tokens": split,
                      "val_tokens": len(ids) - split, "one_item_per_line": line_corpus}

        loss_fn = nn.CrossEntropyLoss()
        self._sample_seed = cfg.sample_seed_text if cfg.sample_seed_text is not None else self._default_seed(text)

        def compute_loss(model, batch, state):
            x, y = batch                                              # (B, T) each, on the model's device
            logits, state = model(x, state)                           # (B, T, V)
            return loss_fn(logits.flatten(0, 1), y.flatten()), state, x.numel()

        if cfg.hidden_size == "auto":
            # Settled before config.json is written: the run stores the number, and a resume reuses it.
            width = self._auto_width(train_batches, compute_loss, train, run_dir=run_dir, resume=resume,
                                     dry_run=dry_run)
            self.config = cfg = dataclasses.replace(cfg, hidden_size=width)
        torch.manual_seed(train.seed)
        self.model_ = self._build_model()

        def evaluate(model):
            nats, _ = stream_loss(model, val_ids, batch_size=16, seq_len=cfg.seq_len)
            return self._loss_metrics(nats, prefix="val_")

        def show_samples(trainer, epoch, metrics):
            if cfg.sample_length == 0 or not distributed.is_main():
                return
            lines = []
            for temperature in SAMPLE_TEMPERATURES:
                out = self.generate(self._sample_seed, length=cfg.sample_length, temperature=temperature,
                                    random_seed=train.seed + epoch, unknown="drop")
                lines.append(f"----- epoch {epoch + 1}, temperature {temperature} -----\n"
                             f"{self.join_seed(self._sample_seed, out)}")
            # tqdm.write keeps the text clear of an active progress bar.
            from tqdm.auto import tqdm
            tqdm.write("\n".join(lines) + "\n", file=sys.stderr)

        if dry_run:
            train = dataclasses.replace(train, max_steps=1, max_minutes=None, schedule="constant", epochs=1)
        distributed.barrier()    # every process has checked the run directory before rank 0 writes it
        if run_dir is not None and distributed.is_main():
            # config.json and the vocabulary first: a run directory in training says what it is.
            self.write_config(run_dir)
            self.tokenizer_.save(RunDir(run_dir).file(TOKENIZER_FILE))
        trainer = Trainer(self.model_, train, run_dir=run_dir, progress=progress,
                          items_name="chars" if cfg.level == "char" else "words")
        trainer.fit(lambda epoch: train_batches, compute_loss, evaluate, show_samples, resume=resume)
        self._refuse_spent_budget(trainer, run_dir, resume)
        self.trainer_ = trainer
        self.history_ = trainer.history
        self.metrics_ = _metrics_of_held_weights(trainer)
        self.model_.eval()
        return self

    def _build_model(self, hidden_size: int | None = None) -> LanguageModel:
        cfg = self.config
        return LanguageModel(self.tokenizer_.vocab_size, cfg.embedding_size, hidden_size or cfg.hidden_size,
                             cfg.num_layers, cfg.cell, cfg.dropout, cfg.recurrent_dropout, cfg.recurrent_dropout_mode)

    def _auto_width(self, batches: list, compute_loss: Callable, train: TrainConfig, *, run_dir: str | None,
                    resume: bool, dry_run: bool) -> int:
        """``hidden_size="auto"``: the run's own width on resume, else the rule by AUTO_WIDTHS (printed)."""
        if resume:
            return read_run_config(run_dir)["config"]["hidden_size"]
        if dry_run:
            width, why = DRY_RUN_WIDTH, "a dry run does not probe"
        else:
            budget = 60 * train.max_minutes if train.max_minutes else None
            rates: dict[int, float] = {}
            for width in AUTO_WIDTHS if budget else ():
                # Every process of a distributed run probes together and uses rank 0's clock.
                rates[width] = distributed.from_main(self._probe_rate(width, batches, compute_loss, train))
                if budget * rates[width] < AUTO_MIN_STEPS:
                    break                                  # a wider model would get fewer steps still
            width, why = choose_width(rates, budget)
        if distributed.is_main():
            print(f"hidden_size auto: {width} units: {why}; --hidden-size N sets it", file=sys.stderr)
        return width

    def _probe_rate(self, width: int, batches: list, compute_loss: Callable, train: TrainConfig) -> float:
        """Optimizer steps per second of a ``width``-unit model here, timed the real way: the Trainer on the
        first PROBE_STEPS batches (the first step, which sets up the kernels, is not timed)."""
        probe = dataclasses.replace(train, max_steps=PROBE_STEPS, max_minutes=None, epochs=1, schedule="constant",
                                    warmup_steps=0, ema_decay=None, early_stop_patience=None, log_every=10**6)
        ends: list[float] = []

        def clock(trainer):
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()                   # a GPU step ends when its kernels have run
            ends.append(time.perf_counter())

        trainer = Trainer(self._build_model(width), probe, progress=False, callbacks={"on_step_end": clock})
        trainer.fit(lambda epoch: (batches * PROBE_STEPS)[:PROBE_STEPS], compute_loss)
        return (len(ends) - 1) / (ends[-1] - ends[0])

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

    # -- saving and loading (config.json itself is the Task base's) -------------------------------------

    def fitted_values(self) -> dict[str, Any]:
        return {"end_token": self.end_token_}

    def _save_files(self, run: RunDir) -> None:
        self.tokenizer_.save(run.file(TOKENIZER_FILE))
        save_weights(run.weights_path, self.model_.state_dict())

    @classmethod
    def load(cls, path: str, *, weights: str = "best") -> "TextGenerator":
        """Load a run directory written by ``fit(run_dir=...)``, ``save`` or ``rnnkit textgen train``.

        ``weights``: ``"best"`` (the best validation epoch, when the run saved one) or ``"last"``.
        """
        _checks.check_choice("weights", weights, ("best", "last"))
        return super().load(path, weights=weights)

    def _load_files(self, run: RunDir, fitted: dict[str, Any], *, weights: str = "best") -> None:
        run.require(TOKENIZER_FILE)
        self.tokenizer_ = Tokenizer.load(run.file(TOKENIZER_FILE))
        end = fitted.get("end_token")
        # Checked here, not at the first sample: a damaged config.json is named when it is read.
        if end is not None and not (isinstance(end, str) and end in self.tokenizer_.word_index):
            raise ValueError(f"{run.config_path}: fitted.end_token={end!r}: expected null or a token of the run's "
                             f"vocabulary ({TOKENIZER_FILE}), such as \"\\n\"")
        self.end_token_ = end
        self.model_ = self._build_model()
        best = weights == "best" and run.best_path.is_file()
        if not best and not run.weights_path.is_file():
            run.require(run.weights_path.name)   # raises, naming what the directory holds
        run.load_weights(self.model_, best=best)
        self.model_.eval()
        self.history_ = run.read_metrics()

    @classmethod
    def upgrade_config(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """A config.json of rnnkit before format_version 2 -> the current schema.

        Those read ``{"task": "textgen", "model": "LanguageModel", "textgen": {every field, flat},
        "end_token": ..., "vocabulary": "tokenizer.json"}``: the training fields move into ``train``,
        ``val_fraction`` is now ``val_frac``, and the learned end token goes to ``fitted``. Fields that
        older versions did not have take today's defaults.
        """
        if not isinstance(raw.get("textgen"), dict):
            return super().upgrade_config(raw)          # raises: not a shape this knows
        flat = dict(raw["textgen"])
        if "val_fraction" in flat:
            flat["val_frac"] = flat.pop("val_fraction")
        train_names = {f.name for f in dataclasses.fields(TrainConfig)}
        config = {k: v for k, v in flat.items() if k not in train_names}
        config["train"] = {k: v for k, v in flat.items() if k in train_names}
        return {"task": cls.name, "format_version": FORMAT_VERSION, "rnnkit_version": raw.get("rnnkit_version"),
                "config": config, "data": {}, "fitted": {"end_token": raw.get("end_token")}}

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
        # Scored where the model is (a GPU after training there): stream_loss moves each chunk to it.
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
                 unknown: str = "error", fast: bool = True,
                 processors: Sequence[Callable] | None = None) -> str | list[str]:
        """Continue ``seed_text`` by up to ``length`` tokens; the seed is not repeated in the result.

        Stateful: the seed is read once, then one step per token carries the state. ``num_samples``
        samples run as one batch and a str list is returned (a str when ``num_samples == 1``).
        ``temperature=0`` or ``greedy=True`` take the most likely token; ``beam=N`` keeps the N most
        likely continuations (log-probabilities after the processors) and returns the best
        ``num_samples`` of them. Samples stop at the end token (see the module doc), else at ``length``.

        ``processors``: your own logits processors, callables ``(tokens, logits) -> logits`` returning a
        new tensor (``tokens`` (N, t): the seed's ids and those chosen so far; ``logits`` (N, V)), applied
        in order after temperature, top-k and top-p, before every choice (greedy, sampling and beam).
        Token ids are the tokenizer's (``tokenizer_.word_index``). Given any, the plain loop runs.

        ``fast`` runs the sampling loop compiled (TorchScript, or C for one LSTM sample; LSTM, GRU and
        tanh-RNN models); ``fast=False`` runs the same computation as a plain Python loop over the model
        (the two give the same tokens).
        """
        self._check_fitted()
        _checks.check_int("length", length, min=0)
        _checks.check_int("num_samples", num_samples, min=1)
        _checks.check_int("beam", beam, min=1, allow_none=True)
        _checks.check_float("temperature", temperature, min=0)
        _checks.check_int("random_seed", random_seed, min=0, max=2**64 - 1, allow_none=True)
        if random_seed is None:
            random_seed = int(torch.randint(0, 2**31 - 1, ()).item())
        greedy = greedy or temperature == 0
        if greedy and beam is not None:
            raise ValueError("greedy and beam: choose one (beam=1 is greedy)")
        if beam is not None and num_samples > beam:
            _checks.fail("num_samples", num_samples, f"at most beam={beam} (the beams are the candidates)")
        user = list(processors) if processors is not None else []
        chain = make_processors(1.0 if greedy else temperature, top_k, top_p, processors=user)
        ids = self.encode_seed(seed_text, unknown)
        end = self.tokenizer_.word_index[self.end_token_] if self.end_token_ is not None else -1
        if not ids:
            # No seed: start as after the end of an item (a line corpus) or at the start of a line.
            start = end if end >= 0 else self.tokenizer_.word_index.get("\n", -1)
            if start < 0:
                _checks.fail("seed_text", seed_text, "at least one known token to start from (this "
                             "corpus has no end token or newline to start after)")
            ids = [start]

        model = self._sampling_model()
        was_training = model.training
        model.eval()                              # no dropout while sampling, even in the middle of fit
        try:
            prefix = torch.tensor([ids])                                  # (1, T0)
            logits, state = model(prefix)                                 # (1, T0, V): read the seed once
            logits = no_padding(logits[:, -1])                            # (1, V)
            if beam is not None:
                tokens, _ = beam_search(model.step, state, logits, beam_size=beam, length=length,
                                        processors=chain, end_token=None if end < 0 else end,
                                        num_return=num_samples, prefix=prefix)
            else:
                # Expand the seed's state to the batch of samples: (1, H) -> (N, H) per state tensor.
                state = [tuple(s.expand(num_samples, -1).contiguous() for s in st) for st in state]
                logits = logits.expand(num_samples, -1)
                uniforms = torch.rand(length, num_samples, generator=make_generator(random_seed))  # (L, N)
                if fast and not user and model.rnn.fused_kind() is not None:
                    tokens = self._compiled_loop(model, logits, state, uniforms, greedy, temperature,
                                                 top_k, top_p, end)
                else:
                    tokens = decode(model.step, logits, state, length, processors=chain, greedy=greedy,
                                    uniforms=uniforms, end_token=None if end < 0 else end,
                                    prefix=prefix.expand(num_samples, -1))
        finally:
            model.train(was_training)
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

    @staticmethod
    def _compiled_loop(model, logits, state, uniforms, greedy, temperature, top_k, top_p, end) -> torch.Tensor:
        """The plain loop's tokens (N, L) from the TorchScript loop, or the C loop for one LSTM sample."""
        from rnnkit.generation.fast import compiled_sampler, sample
        from rnnkit.generation.native import native_kernel
        sampler, native = compiled_sampler(model)
        states = stack_states(state)
        temperature = 1.0 if greedy else float(temperature)
        simple = native is not None and logits.shape[0] == 1 and top_k is None and top_p is None
        kernel = native_kernel() if simple else None
        if kernel is not None:
            # One LSTM sample, temperature or greedy: the C loop (generation/native.py).
            return native.run(kernel, logits, *states, uniforms, temperature, bool(greedy), int(end))
        return sample(sampler, logits, states, uniforms, temperature, -1 if top_k is None else int(top_k),
                      1.0 if top_p is None else float(top_p), bool(greedy), int(end))

    def _sampling_model(self) -> LanguageModel:
        """The model to generate with, on the CPU: ``model_`` itself, or a copy when it lives on a GPU.

        One token at a time is too little work to keep a GPU busy, and on the CPU the compiled samplers
        run and samples match across machines for the same seed. The copy is kept until the weights
        change (the compiled sampler is cached on it), and it is made outside inference mode: a tensor
        made under ``torch.inference_mode`` (as ``generate`` runs) has no version counter to tell when
        its weights change.
        """
        model = self.model_
        if _on_cpu(model):
            return model
        from rnnkit.generation.fast import _weights_version
        version = _weights_version(model)
        cached = self.__dict__.get("_cpu_copy")
        if cached is None or cached[0] != version:
            with torch.inference_mode(False), torch.no_grad():
                copy = self._build_model()
                copy.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
            cached = (version, copy.eval())
            self._cpu_copy = cached
        return cached[1]


def _on_cpu(model: nn.Module) -> bool:
    return next(model.parameters()).device.type == "cpu"


def _metrics_of_held_weights(trainer: Trainer) -> dict[str, float]:
    """The validation metrics of the weights the model holds after ``fit``: the best epoch's when the
    Trainer put those back (``restore_best``), else the last epoch's."""
    best = [r for r in trainer.history if r.get("event") == "epoch" and r.get("best")]
    if not trainer.config.restore_best or not best:
        return dict(trainer.metrics)
    return {k: best[-1][k] for k in trainer.metrics if k in best[-1]}
