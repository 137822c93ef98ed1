"""Text generation: character- and word-level language models, trained, sampled and evaluated.

The lectures' recipe, on real text: cut the corpus into ``batch_size`` contiguous streams, read them in
chunks of ``seq_len`` tokens, predict each next token, carry the recurrent state from one chunk to the
next and cut its history (truncated backprop through time). Then generate one token at a time,
carrying the state, with a temperature that trades repetition (low) for invention (high).

    from rnnkit.tasks import TextGenerator
    gen = TextGenerator(hidden_size=256, max_minutes=5).fit()        # the Shakespeare dataset
    print(gen.generate("QUEEN:\\n", max_tokens=300, temperature=0.5))
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
* The last ``val_frac`` (10%) of the corpus is held out, never trained on; or ``val_file``
  (``fit(text, val_text=...)``) is the validation text and the whole corpus trains; or with
  ``val_frac=0`` nothing is held out and nothing validated (no early stopping, the last weights kept).
  Validation loss is in nats per token (char level: nats/char, also given in bits/char; word level:
  also perplexity). After ``fit`` the model holds the weights of the epoch with the lowest validation
  loss (``restore_best``), and ``metrics_`` are that epoch's.
* ``temperature=0`` means greedy decoding (the limit of ever lower temperatures is the argmax).
* Sampling draws one uniform number per token from ``seed`` and picks the token where the
  cumulative probability passes it, so the fast path and the plain Python loop give the same text.
* End token: a corpus of one item per line (the ``xkcd-colors`` names, or a list of strings passed to
  ``fit``) ends each sample at a newline; for a file, pass ``end_token="\\n"`` (``--end-token '\\n'``).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import warnings
from functools import partial
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit import _checks
from rnnkit.config import renamed
from rnnkit.nn.cells import ScanCell
from rnnkit.generation.processors import make_processors
from rnnkit.generation.search import beam_search, make_generator
from rnnkit.generation.fast import supports as fast_supports
from rnnkit.generation.stateful import decode
from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.schema import FORMAT_VERSION, read_run_config
from rnnkit.tasks.base import Prepared, Task, refuse_export
# The configs live in config.py (no torch: --help reads them); imported here too for the names they had.
from rnnkit.tasks.textgen.config import (CELLS, LEVELS, TRAIN_DEFAULTS, UNKNOWN, GenerateRequest,  # noqa: F401
                                         TextGenConfig,
                                         int_or_auto, parse_end_token)
from rnnkit.tasks.textgen.data import (corpus_text, load_corpus, load_val_text, make_tokenizer, stream_batches,
                                       stream_loss)
from rnnkit.tasks.textgen.model import LanguageModel, no_padding, stack_states
from rnnkit.text import Tokenizer
from rnnkit.training import distributed
from rnnkit.training.config import TrainConfig
from rnnkit.training.phases import phase
from rnnkit.training.trainer import Trainer

TOKENIZER_FILE = "tokenizer.json"
SAMPLE_TEMPERATURES = (0.2, 0.5, 1.0)

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


class TextGenerator(Task, name="textgen"):
    """A character- or word-level language model: ``fit`` a text, ``generate`` from it, ``evaluate`` a text.

    ``TextGenerator(config)`` or ``TextGenerator(hidden_size=256, lr=1e-3, ...)`` (fields of
    :class:`TextGenConfig` and of its ``train`` options, by their flat names). Learned attributes after
    ``fit`` or ``load``: ``tokenizer_``, ``model_``, ``end_token_`` (None when samples end only at their
    length), ``history_`` (the metrics records); after ``fit`` also ``metrics_`` (validation metrics of
    the weights the model holds), ``trainer_`` and ``data_`` (what it was trained on).
    """

    config_class = TextGenConfig
    train_command = "rnnkit textgen train"
    run_files = (TOKENIZER_FILE,)
    side_files = (TOKENIZER_FILE,)
    # The finished model's file before FINAL_WEIGHTS: the best epoch's weights, else the last.
    legacy_weights = ("best.safetensors", "model.safetensors")
    endpoint = "generate"                 # the Task protocol's uniform apply: see the end of the class
    request_class = GenerateRequest

    # -- training (the sequence is Task.fit's; these are its steps) ---------------------------------------

    def fit(self, text: str | Sequence[str] | None = None, *, val_text: str | Sequence[str] | None = None,
            run_dir: str | None = None, resume: bool = False, dry_run: bool = False,
            progress: bool | None = None) -> "TextGenerator":
        """Build the vocabulary and model from ``text`` and train; returns ``self``.

        ``text``: a str, or a list of strings (one item per line; samples end at a newline); None loads
        ``config.corpus`` or ``config.dataset``. ``val_text``: the text to validate on (as ``config.val_file``
        does); then all of ``text`` trains. ``run_dir`` gets checkpoints, metrics.jsonl, loss.png,
        config.json, the vocabulary and the finished model; ``resume=True`` continues the run saved there
        (its vocabulary is reused). ``dry_run`` trains on one small batch and evaluates a little: seconds.
        """
        return super().fit(text, run_dir=run_dir, resume=resume, dry_run=dry_run, progress=progress,
                           val_text=val_text)

    def _read_data(self, text: str | Sequence[str] | None, *, run_dir: str | None, resume: bool,
                   val_text: str | Sequence[str] | None = None) -> Prepared:
        """The corpus as one text (``text``), whether it is one item per line (``line_corpus``), and the
        validation text of ``val_file`` or ``val_text`` (``val_text``; None: part of the corpus, or none)."""
        cfg = self.config
        if text is None:
            text, line_corpus = load_corpus(cfg)
            source = cfg.corpus if cfg.corpus is not None else f"dataset {cfg.dataset}" + (
                f" ({cfg.variant})" if cfg.variant else "")
        else:
            text, line_corpus = corpus_text(text)
            source = "text passed to fit"
        if not text:
            # A file is named; text passed to fit is the "corpus" argument.
            where = source if source != "text passed to fit" else "corpus"
            raise ValueError(f"{where}: the text is empty; expected at least one batch of text "
                             f"(batch_size={cfg.train.batch_size} x seq_len={cfg.seq_len} tokens)")
        if val_text is not None and cfg.val_file is not None:
            raise ValueError(f"val_text: expected None when val_file={cfg.val_file!r} is set (one validation text, "
                             f"not two)")
        if val_text is not None:
            val_text, val_source = corpus_text(val_text, source="val_text")[0], "val_text"
        else:
            val_text, val_source = load_val_text(cfg), cfg.val_file
        if val_text is None:
            return Prepared(source, (text,), text=text, line_corpus=line_corpus, val_text=None)
        if not val_text:
            raise ValueError(f"{val_source}: the text is empty; expected a text to validate on")
        # The digest covers the validation text too: a resumed run refuses one that changed.
        return Prepared(f"{source} (validation: {val_source})", (text, val_text), text=text, line_corpus=line_corpus,
                        val_text=val_text, val_source=val_source)

    def _prepare(self, prepared: Prepared, *, run_dir: str | None, resume: bool, dry_run: bool) -> None:
        """The corpus as token ids: the training streams (``train``) and the held-out ids (``val``)."""
        cfg, train = self.config, self.config.train
        text, line_corpus = prepared.text, prepared.line_corpus
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
        # What validates: a text of its own (the whole corpus trains), the last val_frac of the corpus, or nothing.
        own_val = prepared.val_text is not None
        split = len(ids) if own_val or cfg.val_frac == 0 else int(len(ids) * (1 - cfg.val_frac))
        batch_size, seq_len = ((min(train.batch_size, 4), min(cfg.seq_len, 32)) if dry_run
                               else (self._batch_size(split, unit), cfg.seq_len))
        if (split - 1) // batch_size < seq_len:
            held = f" ({split} for training after holding out val_frac={cfg.val_frac})" if split < len(ids) else ""
            raise ValueError(f"corpus: {len(ids)} {unit}{held} is too short for one batch of batch_size="
                             f"{batch_size} x seq_len={seq_len} ({batch_size * seq_len + 1} training {unit} "
                             f"needed); use a longer text or lower --batch-size or --seq-len")
        if batch_size < distributed.world_size():
            # Each process trains on its own streams of every batch (training/distributed.py).
            _checks.fail("batch_size", batch_size, f"at least one stream per process ({distributed.world_size()} "
                                                   f"processes)")
        train_batches = stream_batches(ids[:split], batch_size, seq_len, name="corpus", unit=unit)
        val_ids, validation = self._validation_ids(prepared, ids, split, unit)
        if dry_run:
            train_batches = train_batches[:1]
            val_ids = val_ids[:2000] if val_ids is not None else None
        size = f"{len(text):,} characters" + (f", {len(ids):,} words" if cfg.level == "word" else "")
        if distributed.is_main():
            print(f"corpus: {size}, vocabulary {self.tokenizer_.vocab_size - 1}; {len(train_batches)} batches of "
                  f"{batch_size}x{seq_len} per epoch; {validation}", file=sys.stderr)
        self._sample_prompt = cfg.sample_prompt if cfg.sample_prompt is not None else self._default_seed(text)
        prepared.info = {"characters": len(text), "tokens": len(ids), "unit": unit,
                         "vocabulary": self.tokenizer_.vocab_size - 1, "train_tokens": split,
                         "val_tokens": 0 if val_ids is None else len(val_ids), "one_item_per_line": line_corpus}
        if own_val:
            prepared.info["val_source"] = prepared.val_source
        prepared.train, prepared.val = train_batches, val_ids
        prepared.items_name = "chars" if cfg.level == "char" else "words"
        if cfg.hidden_size == "auto":
            # Settled before config.json is written: the run stores the number, and a resume reuses it.
            width = self._auto_width(prepared, train, run_dir=run_dir, resume=resume, dry_run=dry_run)
            self.config = dataclasses.replace(cfg, hidden_size=width)

    def _batch_size(self, train_tokens: int, unit: str) -> int:
        """``batch_size`` streams, or with ``auto_batch`` fewer for a short corpus, so that an epoch still makes
        several updates (a stream needs a chunk of ``seq_len`` tokens per update); the choice is printed."""
        train, seq_len = self.config.train, self.config.seq_len
        chunks = (train_tokens - 1) // seq_len                    # the examples: chunks of seq_len tokens
        batch_size = train.batch_for(chunks)
        if batch_size != train.batch_size and distributed.is_main():
            print(f"batch: {batch_size} streams, not {train.batch_size} (--auto-batch: the training text holds "
                  f"{chunks} chunks of {seq_len} {unit}, so an epoch makes {chunks // batch_size} updates; "
                  f"--no-auto-batch keeps --batch-size)", file=sys.stderr)
        return batch_size

    def _validation_ids(self, prepared: Prepared, ids: torch.Tensor, split: int,
                        unit: str) -> tuple[torch.Tensor | None, str]:
        """The ids to validate on (None: no validation) and what they are, for the corpus line: the text of
        ``val_file`` / ``val_text``, else the corpus's ids from ``split`` on (its last ``val_frac``)."""
        cfg, held_out = self.config, ids[split:]
        if prepared.val_text is not None:
            tokens = self.tokenizer_._tokens(prepared.val_text)
            ids = torch.tensor(self.tokenizer_.texts_to_sequences([prepared.val_text])[0], dtype=torch.long)
            if len(ids) < 2:
                raise ValueError(f"{prepared.val_source}: {len(ids)} {unit} of the training text's vocabulary; "
                                 f"expected at least 2 to validate on")
            # Char level: characters the corpus lacks have no id (left out); word level: they become <unk>.
            unseen = len(tokens) - len(ids)
            note = f" ({unseen:,} {unit} the corpus lacks left out)" if unseen else ""
            return ids, f"validation on {prepared.val_source}: {len(ids):,} {unit}{note}; all the corpus trains"
        if cfg.val_frac == 0:
            return None, ("nothing held out (val_frac=0): all the corpus trains, no validation and no early "
                          "stopping; the last weights are kept")
        if len(held_out) < 2:
            raise ValueError(f"corpus: {len(ids)} {unit} leave {len(held_out)} for validation (val_frac="
                             f"{cfg.val_frac}); use a longer text")
        return held_out, f"{len(held_out):,} {unit} held out (the last val_frac={cfg.val_frac:g}) for validation"

    def _make_model(self, prepared: Prepared) -> LanguageModel:
        return self._build_model()

    def _loss(self, prepared: Prepared, model: LanguageModel, batch: Any, state: Any) -> tuple:
        x, y = batch                                              # (B, T) each, on the model's device
        logits, state = model(x, state)                           # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten()), state, x.numel()

    def _validation_metrics(self, prepared: Prepared, model: LanguageModel) -> dict[str, float]:
        nats, _ = stream_loss(model, prepared.val, batch_size=16, seq_len=self.config.seq_len)
        return self._loss_metrics(nats, prefix="val_")

    def _save_encoder(self, run: RunDir) -> None:
        self.tokenizer_.save(run.file(TOKENIZER_FILE))

    def _epoch_end(self, prepared: Prepared, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        """A few samples at each temperature of SAMPLE_TEMPERATURES: how the model writes by now."""
        cfg = self.config
        if cfg.sample_max_tokens == 0 or not distributed.is_main():
            return
        lines = []
        for temperature in SAMPLE_TEMPERATURES:
            out = self.generate(self._sample_prompt, max_tokens=cfg.sample_max_tokens,
                                temperature=temperature, seed=cfg.train.seed + epoch, unknown="drop")
            lines.append(f"----- epoch {epoch + 1}, temperature {temperature} -----\n"
                         f"{self.join_seed(self._sample_prompt, out)}")
        # tqdm.write keeps the text clear of an active progress bar.
        from tqdm.auto import tqdm
        tqdm.write("\n".join(lines) + "\n", file=sys.stderr)
        phase("sampling")

    def _build_model(self, hidden_size: int | None = None) -> LanguageModel:
        cfg = self.config
        return LanguageModel(self.tokenizer_.vocab_size, cfg.embedding_size, hidden_size or cfg.hidden_size,
                             cfg.num_layers, cfg.cell, cfg.dropout, cfg.recurrent_dropout, cfg.recurrent_dropout_mode)

    def _auto_width(self, prepared: Prepared, train: TrainConfig, *, run_dir: str | None, resume: bool,
                    dry_run: bool) -> int:
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
                rates[width] = distributed.from_main(self._probe_rate(width, prepared, train))
                if budget * rates[width] < AUTO_MIN_STEPS:
                    break                                  # a wider model would get fewer steps still
            width, why = choose_width(rates, budget)
        if distributed.is_main():
            print(f"hidden_size auto: {width} units: {why}; --hidden-size N sets it", file=sys.stderr)
        return width

    def _probe_rate(self, width: int, prepared: Prepared, train: TrainConfig) -> float:
        """Optimizer steps per second of a ``width``-unit model here, timed the real way: the Trainer on the
        first PROBE_STEPS batches (the first step, which sets up the kernels, is not timed)."""
        probe = dataclasses.replace(train, max_steps=PROBE_STEPS, max_minutes=None, epochs=1, schedule="constant",
                                    warmup_steps=0, ema_decay=None, early_stop_patience=None, log_every=10**6)
        ends: list[float] = []

        def clock(trainer):
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()                   # a GPU step ends when its kernels have run
            ends.append(time.perf_counter())
            phase("probe")

        trainer = Trainer(self._build_model(width), probe, progress=False, callbacks={"on_step_end": clock})
        trainer.fit((prepared.train * PROBE_STEPS)[:PROBE_STEPS], partial(self._loss, prepared))
        if trainer.interrupted:
            # Ctrl-C during the probe stops the command (the probe's Trainer caught it to save, with nothing to
            # save): training must not go on as if the probe had finished.
            raise KeyboardInterrupt
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

    @classmethod
    def load(cls, path: str, *, checkpoint: str | None = None, weights: str | None = None,
             **options: Any) -> "TextGenerator":
        """Load a finished run directory written by ``fit(run_dir=...)``, ``save`` or ``rnnkit textgen train``.

        ``checkpoint``: None (the finished model: the best validation epoch's weights), or "best" / "last" to
        read the Trainer's checkpoint (of a run whose training has not finished, too). ``weights`` is the
        old name of ``checkpoint``.
        """
        if weights is not None:
            warnings.warn("TextGenerator.load(weights=...) is renamed checkpoint=...; the old name goes in the "
                          "next release", FutureWarning, stacklevel=2)
            checkpoint = checkpoint or weights
        return super().load(path, checkpoint=checkpoint, **options)      # unknown options: refused there

    def _load_files(self, run: RunDir, fitted: dict[str, Any], tensors: dict[str, Any], **options: Any) -> None:
        run.require(TOKENIZER_FILE)
        self.tokenizer_ = Tokenizer.load(run.file(TOKENIZER_FILE))
        end = fitted.get("end_token")
        # Checked here, not at the first sample: a damaged config.json is named when it is read.
        if end is not None and not (isinstance(end, str) and end in self.tokenizer_.word_index):
            raise ValueError(f"{run.config_path}: fitted.end_token={end!r}: expected null or a token of the run's "
                             f"vocabulary ({TOKENIZER_FILE}), such as \"\\n\"")
        self.end_token_ = end
        self._hold_weights(self._build_model(), tensors, run)
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

    @renamed(seed_text="prompt")
    def encode_seed(self, prompt: str, unknown: str = "error") -> list[int]:
        """The prompt -> ids; tokens the model never saw raise (listing them) or are dropped."""
        _checks.check_choice("unknown", unknown, UNKNOWN)
        if not isinstance(prompt, str):
            _checks.fail("prompt", prompt, "a string")
        tokens = list(self.tokenizer_._tokens(prompt))
        index, limit = self.tokenizer_.word_index, self.tokenizer_.vocab_size
        unseen = [t for t in dict.fromkeys(tokens) if index.get(t, limit) >= limit]
        if unseen and unknown == "error":
            _checks.fail("prompt", prompt, f"tokens the model saw in training; unseen: "
                         f"{', '.join(map(repr, unseen))} (pass unknown='drop' (Python), --unknown drop (CLI) or "
                         '"unknown": "drop" (HTTP) to leave them out)')
        return [index[t] for t in tokens if t not in unseen]

    # The names of rnnkit 0.1 keep working for one release (with a FutureWarning naming the new one).
    @renamed(seed_text="prompt", length="max_tokens", num_samples="num_results", random_seed="seed")
    @torch.inference_mode()
    def generate(self, prompt: str = "", max_tokens: int = 200, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
                 beam: int | None = None, num_results: int = 1, seed: int | None = None,
                 unknown: str = "error", fast: bool = True,
                 processors: Sequence[Callable] | None = None) -> str | list[str]:
        """Continue ``prompt`` by up to ``max_tokens`` tokens; the prompt is not repeated in the result.

        Stateful: the prompt is read once, then one step per token carries the state. ``num_results``
        samples run as one batch and a str list is returned (a str when ``num_results == 1``).
        ``temperature=0`` or ``greedy=True`` take the most likely token; ``beam=N`` keeps the N most
        likely continuations (log-probabilities after the processors) and returns the best
        ``num_results`` of them. Samples stop at the end token (see the module doc), else at ``max_tokens``.
        ``seed`` seeds the draws (the same seed gives the same samples; None: a random one).

        ``processors``: your own logits processors, callables ``(tokens, logits) -> logits`` returning a
        new tensor (``tokens`` (N, t): the prompt's ids and those chosen so far; ``logits`` (N, V)), applied
        in order after temperature, top-k and top-p, before every choice (greedy, sampling and beam).
        Token ids are the tokenizer's (``tokenizer_.word_index``). Given any, the plain loop runs.

        ``fast`` runs the sampling loop compiled (TorchScript, or C for one LSTM sample; LSTM, GRU and
        tanh-RNN models); ``fast=False`` runs the same computation as a plain Python loop over the model
        (the two give the same tokens).
        """
        self._check_fitted()
        _checks.check_int("max_tokens", max_tokens, min=0)
        _checks.check_int("num_results", num_results, min=1)
        _checks.check_int("beam", beam, min=1, allow_none=True)
        _checks.check_float("temperature", temperature, min=0)
        _checks.check_int("seed", seed, min=0, max=2**64 - 1, allow_none=True)
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        greedy = greedy or temperature == 0
        if greedy and beam is not None:
            raise ValueError("greedy and beam: choose one (beam=1 is greedy)")
        if beam is not None and num_results > beam:
            _checks.fail("num_results", num_results, f"at most beam={beam} (the beams are the candidates)")
        user = list(processors) if processors is not None else []
        chain = make_processors(1.0 if greedy else temperature, top_k, top_p, processors=user)
        ids = self.encode_seed(prompt, unknown)
        end = self.tokenizer_.word_index[self.end_token_] if self.end_token_ is not None else -1
        if not ids:
            # No prompt: start as after the end of an item (a line corpus) or at the start of a line.
            start = end if end >= 0 else self.tokenizer_.word_index.get("\n", -1)
            if start < 0:
                _checks.fail("prompt", prompt, "at least one known token to start from (this "
                             "corpus has no end token or newline to start after)")
            ids = [start]

        model = self._sampling_model()
        was_training = model.training
        model.eval()                              # no dropout while sampling, even in the middle of fit
        try:
            prefix = torch.tensor([ids])                                  # (1, T0)
            logits, state = model(prefix)                                 # (1, T0, V): read the prompt once
            logits = no_padding(logits[:, -1])                            # (1, V)
            if beam is not None:
                tokens, _ = beam_search(model.step, state, logits, beam_size=beam, length=max_tokens,
                                        processors=chain, end_token=None if end < 0 else end,
                                        num_return=num_results, prefix=prefix)
            else:
                # Expand the prompt's state to the batch of samples: (1, H) -> (N, H) per state tensor.
                state = [tuple(s.expand(num_results, -1).contiguous() for s in st) for st in state]
                logits = logits.expand(num_results, -1)
                uniforms = torch.rand(max_tokens, num_results, generator=make_generator(seed))   # (L, N)
                if fast and not user and fast_supports(model):
                    tokens = self._compiled_loop(model, logits, state, uniforms, greedy, temperature,
                                                 top_k, top_p, end)
                else:
                    tokens = decode(model.step, logits, state, max_tokens, processors=chain, greedy=greedy,
                                    uniforms=uniforms, end_token=None if end < 0 else end,
                                    prefix=prefix.expand(num_results, -1))
        finally:
            model.train(was_training)
        texts = [self._decode(row, end) for row in tokens.tolist()]
        return texts[0] if num_results == 1 else texts

    @renamed(seed_text="prompt")
    def join_seed(self, prompt: str, generated: str) -> str:
        """The prompt followed by what was generated from it: a space between them at word level."""
        joiner = " " if self.config.level == "word" and prompt and generated else ""
        return prompt + joiner + generated

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


    # -- the Task protocol: what serve, export and the CLI's apply verb call ------------------------------

    def details(self) -> dict[str, Any]:
        self._check_fitted()
        return {"level": self.config.level, "cell": self.config.cell,
                "vocabulary": self.tokenizer_.vocab_size - 1}

    def apply(self, request: GenerateRequest | dict[str, Any]) -> dict[str, Any]:
        """Continue ``request.prompt`` (a :class:`GenerateRequest`, or a dict of its fields): the seed of the
        draws, the first result's ``text``, ``tokens`` and ``finish_reason`` ("end": the end token; "length":
        ``max_tokens``), and every result in ``results``."""
        request = self.make_request(request)
        if request.session is not None:
            _checks.fail("session", request.session, "none here: sessions are kept by the server (rnnkit serve), "
                                                     "for requests without beam")
        seed = request.seed if request.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        texts = self.generate(request.prompt, max_tokens=request.max_tokens, temperature=request.temperature,
                              top_k=request.top_k, top_p=request.top_p, greedy=request.greedy, beam=request.beam,
                              num_results=request.num_results, seed=seed, unknown=request.unknown)
        results = []
        for text in [texts] if isinstance(texts, str) else texts:
            # What was generated, read back into tokens (generate gives the text): all of max_tokens, or fewer
            # because the end token came.
            n = len(self.encode_seed(text, unknown="drop"))
            results.append({"text": text, "tokens": n, "finish_reason": "length" if n >= request.max_tokens
                            else "end"})
        return {"seed": seed, **results[0], "results": results}

    def prompt_ids(self, prompt: str, unknown: str = "error") -> list[int]:
        """The ids generation starts from, as ``generate`` starts: the prompt's (a token the model never saw is
        refused, naming it, or with ``unknown="drop"`` left out), or for an empty prompt the end token or a
        newline."""
        ids = self.encode_seed(prompt, unknown=unknown)
        if ids:
            return ids
        start = self.end_token_ if self.end_token_ is not None else "\n"
        if start not in self.tokenizer_.word_index:
            _checks.fail("prompt", prompt, "at least one known token to start from (this corpus has no end token "
                                           "or newline to start after)")
        return [self.tokenizer_.word_index[start]]

    def serving_worker(self, max_batch: int):
        """The continuous batcher over this model's step (:class:`rnnkit.serve.batching.BatchedGenerator`):
        the server's generation requests are stepped together, one forward pass per token for all of them."""
        from rnnkit.serve.batching import BatchedGenerator

        self._check_fitted()
        model = self._sampling_model().eval()
        end = self.tokenizer_.word_index[self.end_token_] if self.end_token_ is not None else None

        def start(ids: list[int], state=None):
            logits, state = model(torch.tensor([ids]), state)                   # (1, T0, V): the prompt once
            return no_padding(logits[:, -1]), state                             # (1, V)

        def decode(ids: list[int]) -> str:
            return self.tokenizer_.sequences_to_texts([ids])[0]

        return BatchedGenerator(start, model.step, encode=lambda r: self.prompt_ids(r.prompt, r.unknown),
                                decode=decode, joiner="" if self.config.level == "char" else " ", end_token=end,
                                max_batch=max_batch, takes=lambda r: r.beam is None)    # beams go to apply

    def export_spec(self, fmt: str):
        """ONNX: the model's step with explicit state (:func:`rnnkit.tasks.textgen.model.onnx_spec`). C is
        refused: a C header computes a classifier's or forecaster's output for a numeric series."""
        self._check_fitted()
        if fmt != "onnx":
            refuse_export(f"a textgen run (a language model of {self.config.cell} cells)", fmt,
                          "a C header reads numeric series into one output, not a language model sampled token "
                          "by token")
        from rnnkit.export.onnx import require_fused
        from rnnkit.tasks.textgen.model import onnx_spec

        if not isinstance(self.model_.rnn.cells[0], ScanCell):
            # A scan cell's step is plain operations (its gates read only x_t), which export as they are.
            require_fused(self.model_.rnn, f"a textgen run ({self.config.cell})")
        return onnx_spec(self.model_)


def weights_kept(trainer: Trainer) -> str:
    """Which epoch's weights the model holds after ``fit``, in the words of the Trainer's end report: "the
    weights of epoch 3 (step 720), the best; training went on to epoch 5", or "the last weights (epoch 5, step
    1200)". (The best epoch's are kept with ``restore_best`` and validation; ``metrics_`` are theirs.)"""
    epochs = [r for r in trainer.history if r.get("event") == "epoch"]
    if not epochs:
        return f"the last weights (step {trainer.step})"
    last = epochs[-1]
    best = [r for r in epochs if r.get("best")]
    held = best[-1] if trainer.config.restore_best and best else last
    if held is last:
        return f"the last weights (epoch {last['epoch'] + 1}, step {last['step']})"
    return (f"the weights of epoch {held['epoch'] + 1} (step {held['step']}), the best; training went on to epoch "
            f"{last['epoch'] + 1}")


def _on_cpu(model: nn.Module) -> bool:
    return next(model.parameters()).device.type == "cpu"

