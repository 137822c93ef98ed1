"""One model-agnostic Trainer for every task (in the spirit of minGPT's ``trainer.py``).

The Trainer knows nothing about text, images or series. A task hands it three functions::

    train_batches(epoch) -> iterable of batches          # called once per epoch, so the order can be reseeded
    compute_loss(model, batch, state) -> (loss, new_state, n_items)
    evaluate(model) -> {"val_loss": ..., ...}           # optional; lower is better for config.monitor

``state`` is whatever recurrent state the task carries from one batch to the next (``None`` at the start
of each epoch). The Trainer detaches it after every batch: gradients flow within a batch and stop at its
edge, which is truncated backpropagation through time. ``n_items`` counts what the batch holds (characters,
sequences) for the items/s figure.

One step is: set the learning rate for this step, move the batch to the device, compute the loss, backward,
clip the gradient norm, optimizer step. The loss is summed as a tensor and read back to the host only every
``log_every`` steps, so the device is not stalled once per step.

Each epoch ends with: evaluate, append a record to ``metrics.jsonl``, call ``on_epoch_end``, save the last
(and, on improvement, the best) checkpoint, redraw ``loss.png``. A time budget (``max_minutes``), a step
budget (``max_steps``), early stopping and Ctrl-C all stop cleanly with a checkpoint that
``fit(..., resume=True)`` continues from exactly. ``Terminated`` (what the CLI raises on SIGTERM) saves the
same way and is then raised again, so the process ends. A diverging run (a non-finite loss, or one that
grows past ``DIVERGED_FACTOR`` times the first one) stops with an error before its state is saved, so the
last checkpoint is the last sound one. The time budget holds the final validation pass too: training stops
early enough to leave what the last epoch's end took.

Progress (``progress.py``): a bar per epoch on a terminal; written to a log, a line every 30 s and at each
tenth of the run (step, loss, rate, elapsed, ETA), and lines while a long validation pass runs.

Weight averaging (``ema_decay``): the Trainer also keeps an exponential moving average of the weights,
updated after every optimizer step. The average is what evaluation measures, what the checkpoints' weight
files hold (so ``best`` means the best average) and what the model holds when ``fit`` returns; the weights
the optimizer trains travel in the training state, so a resumed run continues them exactly.
"""

from __future__ import annotations

import dataclasses
import math
import random
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from rnnkit import _checks
# The CLI's SIGTERM exception (a KeyboardInterrupt): the Trainer saves a checkpoint as for Ctrl-C, then raises
# it again (exit status 143). Defined in rnnkit.cli, whose handler is set before torch is imported.
from rnnkit.cli import Terminated
from rnnkit.runs.checkpoint import BEST_WEIGHTS, STATE_JSON, RunDir
from rnnkit.runs.state import rng_states, set_rng_states
from rnnkit.runs.weights import load_weights, short_list
from rnnkit.report.plots import plot_history
from rnnkit.training import distributed
from rnnkit.training.config import PRECISIONS, TrainConfig
from rnnkit.training.phases import check_pending, phase
from rnnkit.training.progress import TrainingProgress, timed_pass
from rnnkit.training.schedules import lr_at, make_optimizer
from rnnkit.training.threads import watch_threads


# ---------------------------------------------------------------------------------------------------------
# Small pieces the Trainer is built from (each usable and testable on its own)
# ---------------------------------------------------------------------------------------------------------

def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def map_tensors(fn: Callable[[torch.Tensor], torch.Tensor], obj: Any) -> Any:
    """Apply ``fn`` to every tensor in ``obj``: a tensor, or tuples (named too)/lists/dicts of them, nested."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(map_tensors(fn, o) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(map_tensors(fn, o) for o in obj)
    if isinstance(obj, dict):
        return {k: map_tensors(fn, v) for k, v in obj.items()}
    return obj


def detach_state(state: Any) -> Any:
    """Cut the graph behind a carried recurrent state: tensors, and tuples/lists/dicts of them, nested."""
    return map_tensors(torch.Tensor.detach, state)


def to_float32(state: Any) -> Any:
    """Half-precision tensors in a (nested) state back to float32: a carried state leaves autocast as
    bfloat16. Other dtypes (float64 included) stay as they are."""
    return map_tensors(lambda t: t.float() if t.dtype in (torch.bfloat16, torch.float16) else t, state)


def fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 matrix products natively (and so faster than float32).

    CPUs: Intel AMX tiles (Sapphire Rapids and later: 2-3x float32 measured for LSTM training) or AVX-512
    BF16 (not measured); elsewhere bfloat16 is emulated and slower than float32. GPUs: compute capability
    8.0 (Ampere) and later.
    """
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = [getattr(cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
        return any(check is not None and check() for check in checks)
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` where :func:`fast_bf16` says so, else ``"fp32"``; other names unchanged."""
    _checks.check_choice("precision", name, PRECISIONS)
    if name == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    return name


def to_device(obj: Any, device: torch.device) -> Any:
    """Move the tensors in a batch (a tensor, or tuples/lists/dicts of them) to ``device``."""
    return map_tensors(lambda t: t.to(device, non_blocking=True), obj)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        _checks.fail("device", name, "'auto' or 'cpu' (CUDA is not available on this machine)")
    return torch.device(name)


# A training loss this many times the first one (or at least this large, for losses that start below 1)
# means the run diverged: the learning rate is far too high.
DIVERGED_FACTOR = 1e4

# The training-curve plot is redrawn at an epoch's end at most this often (and once when training ends).
PLOT_EVERY_S = 5.0

# The end report mentions --clip-grad-norm when it clipped at least this share of the last epoch's steps.
CLIPPED_SAYS = 0.25


# ---------------------------------------------------------------------------------------------------------
# The Trainer
# ---------------------------------------------------------------------------------------------------------

# Events for ``Trainer.add_callback`` and what each callback receives.
EVENTS = {
    "on_step_end": "callback(trainer) after every optimizer step (gradients are still in place)",
    "on_log": "callback(trainer, record) every log_every steps",
    "on_epoch_end": "callback(trainer, epoch, metrics) after evaluation, before the checkpoint",
}


class Trainer:
    """Train any ``nn.Module`` given batches and a loss function; see the module docstring.

    ``items_name`` names what ``n_items`` counts ("chars", "words") for the progress bar's rate.
    After ``fit``: ``step`` (optimizer steps so far), ``epoch`` (epochs completed), ``history`` (the
    metrics records), ``best`` (best value of ``config.monitor``), ``stop_reason`` (``'epochs'``,
    ``'max_steps'``, ``'max_minutes'``, ``'early_stop'`` or ``'interrupted'``) and ``interrupted``.
    """

    def __init__(self, model: torch.nn.Module, config: TrainConfig | None = None,
                 run_dir: str | RunDir | None = None, *, optimizer: torch.optim.Optimizer | None = None,
                 progress: bool | None = None, items_name: str = "items",
                 callbacks: dict[str, Callable | list[Callable]] | None = None, caller_says_resume: bool = False):
        self.config = config or TrainConfig()
        distributed.init_from_env()   # started by torchrun: join the others (see training/distributed.py)
        self.device = distributed.local_device(pick_device(self.config.device))
        # "auto" is settled once, here: bf16 where this device runs it natively.
        self.precision = resolve_precision(self.config.precision, self.device)
        self.model = model.to(self.device)
        # What the steps run: the model itself, or in a distributed run the model wrapped in
        # DistributedDataParallel. Everything else (evaluation, averaging, checkpoints) uses self.model.
        self._train_model = distributed.wrap(self.model, self.device)
        self.optimizer = optimizer or make_optimizer(self.model, self.config)
        self.run_dir = RunDir(run_dir) if run_dir is not None else None
        # None: show a bar when stderr is a terminal. Only rank 0 of a distributed run shows progress.
        self.progress = progress if distributed.is_main() else False
        self.items_name = items_name  # what n_items counts ("chars", "words"): the bar shows <name>/s
        # A command-line caller prints the command that resumes after an interrupt; the Trainer then does not
        # point to its Python API.
        self.caller_says_resume = caller_says_resume
        self.callbacks: dict[str, list[Callable]] = {name: [] for name in EVENTS}
        for event, fns in (callbacks or {}).items():
            for fn in (fns if isinstance(fns, (list, tuple)) else [fns]):
                self.add_callback(event, fn)
        # CPU threads: config.threads, else one per free CPU, looked at again while training (threads.py).
        self.threads = watch_threads(self)

        # The position in training; a checkpoint stores exactly these.
        self.step = 0                 # optimizer steps taken
        self.epoch = 0                # epochs completed (= index of the current epoch)
        self.batch_in_epoch = 0       # batches of the current epoch already trained on
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0           # epochs since the monitored metric last improved
        self.history: list[dict[str, Any]] = []
        self.first_loss: float | None = None   # the loss of the first step: the yardstick for divergence
        self._first_loss_t: torch.Tensor | None = None   # ... still on the device (read at the next log)
        self.train_seconds = 0.0      # training time of earlier fit calls (restored on resume)
        self._start: float | None = None   # monotonic time the current fit call began (None outside fit)
        self._carried = None          # recurrent state to pass into the next batch
        self._reset_epoch_sums()
        self._reset_window()
        self._pending_rng: dict | None = None   # RNG states to restore once the resumed position is reached
        # Weight averaging: one float32 tensor per parameter. While training, _average holds the average;
        # while _swapped (evaluation, saving, after fit) the model holds the average and _average the trained
        # weights.
        self._average: dict[str, torch.Tensor] | None = self._copy_weights() if self.config.ema_decay else None
        self._swapped = False
        # Best-epoch restore (config.restore_best): a copy of the weights of the best epoch so far, whether the
        # model holds them now, and the last weights put aside while it does (a later fit goes on from them).
        self._best_weights: dict[str, torch.Tensor] | None = None
        self._holds_best = False
        self._last_weights: dict[str, torch.Tensor] | None = None

        self.lr = self.config.lr
        self.grad_norm: torch.Tensor | None = None
        self._plotted: tuple[float | None, int] = (None, -1)   # the last drawing: when, and the records it showed
        self.metrics: dict[str, float] = {}
        self.stop_reason: str | None = None
        self.interrupted = False
        self.message = ""
        # Whether the monitored metric improved at the last evaluation when a budget (epochs, steps, minutes)
        # ended the run: more training would likely help (see end_report).
        self.still_improving = False

    def autocast(self):
        """The context the forward pass runs in: bfloat16 autocast for precision bf16, else a no-op.

        Under autocast the matrix products (linear, the recurrent kernels) run in bfloat16 while the
        weights, their gradients, the optimizer and the loss stay float32 (mixed precision). Evaluation
        runs outside it, in float32.
        """
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def add_callback(self, event: str, fn: Callable) -> None:
        _checks.check_choice("event", event, EVENTS)
        self.callbacks[event].append(fn)

    def _trigger(self, event: str, *args: Any) -> None:
        for fn in self.callbacks[event]:
            fn(self, *args)

    # -- the loop ----------------------------------------------------------------------------------------

    def fit(self, train_batches: Callable[[int], Iterable] | Iterable,
            compute_loss: Callable[[torch.nn.Module, Any, Any], tuple[torch.Tensor, Any, Any]],
            evaluate: Callable[[torch.nn.Module], dict[str, Any]] | None = None,
            on_epoch_end: Callable[["Trainer", int, dict[str, float]], None] | None = None,
            *, resume: bool = False) -> "Trainer":
        """Train until ``config.epochs`` (or a budget, early stopping, Ctrl-C); returns the trainer."""
        cfg = self.config
        get_batches = train_batches if callable(train_batches) else (lambda epoch: train_batches)
        if resume:
            self.resume()
        elif self.step == 0 and self.epoch == 0 and self.batch_in_epoch == 0:
            seed_everything(cfg.seed)
        if self.run_dir is not None and distributed.is_main():
            self.run_dir.path.mkdir(parents=True, exist_ok=True)
            self.run_dir.clean()    # what a killed save left behind (the checkpoint it had is kept)

        self.stop_reason = None
        self.interrupted = False
        self._first_step = self.step + 1     # the first step of this call (a phase boundary)
        self._start = time.monotonic()
        # The budget covers the whole run: time spent before a resume counts (self.train_seconds).
        self._deadline = (self._start + 60 * cfg.max_minutes - self.train_seconds) if cfg.max_minutes else None
        # The final validation pass counts in the budget: training stops early enough to leave the time the
        # last epoch's end (evaluation, checkpoint, plot) took. Unknown until an epoch of this call has ended;
        # then the stop only announces the pass. (Counting it beats announcing it: --max-minutes is a limit.)
        self._end_seconds: float | None = None
        self._eval_seconds: float | None = None      # the last validation pass alone
        self._progress = TrainingProgress(self.progress, self.items_name)
        self._window_start = self._start
        if self._last_weights is not None:
            self.model.load_state_dict(self._last_weights)   # go on from the last weights, not the best
            self._last_weights = None
        if self._swapped:
            self._swap_average()            # train on from the trained weights, not from the average
        self.model.train()
        if self.progress is not False and distributed.is_main():
            print(f"training on {self.device.type} in {self.precision}{self._precision_why()}", file=sys.stderr)
        try:
            if self._patience_spent():
                self.stop_reason = "early_stop"  # a resumed run that had already stopped early
            while self.stop_reason is None:
                if self.epoch >= cfg.epochs and self.step >= cfg.min_steps:
                    self.stop_reason = "epochs"
                elif cfg.max_steps is not None and self.step >= cfg.max_steps:
                    self.stop_reason = "max_steps"
                elif cfg.max_minutes and self.train_seconds >= 60 * cfg.max_minutes:
                    self.stop_reason = "max_minutes"      # a resumed run whose budget was already spent
                elif self._end_seconds is not None and self._out_of_time():
                    # An epoch of this call has ended (and been evaluated) and another epoch's end would not fit.
                    self.stop_reason = "max_minutes"
                    self._progress.budget_stop(self, self._end_seconds, final_pass=False)
                else:
                    self._run_epoch(get_batches, compute_loss, evaluate, on_epoch_end)
            self._plot()            # the last epochs, if the clock held their plot back
            distributed.barrier()   # rank 0 has written its last checkpoint before any rank reads the run again
        except KeyboardInterrupt as interrupt:
            # Save the exact position (the batch that was interrupted has not been applied) and return.
            # A second Ctrl-C during this save stops it; the previous checkpoint stays (a save is one unit).
            self.interrupted = True
            self.stop_reason = "interrupted"
            what = "Terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "Interrupted"
            if self.run_dir is not None:
                # No collective here: the other ranks may be stopping too (rank 0 saves what it holds).
                self.save(best=False, together=False)
                self.message = (f"{what} in {self._epoch_label(self.epoch)} after {self.step} steps; "
                                f"checkpoint saved in {self.run_dir.path}.")
                if not self.caller_says_resume:     # (a CLI caller prints the command that resumes next)
                    self.message += " Resume with fit(..., resume=True) on a Trainer with this run_dir."
            else:
                self.message = (f"{what} in {self._epoch_label(self.epoch)} after {self.step} steps; "
                                f"nothing saved (no run_dir).")
            if distributed.is_main():
                print(self.message, file=sys.stderr)
            if isinstance(interrupt, Terminated):
                raise
        finally:
            self.train_seconds, self._start = self.elapsed(), None
            if self._average is not None and not self._swapped:
                self._swap_average()        # the model leaves fit holding the averaged weights
        # Improved at the last evaluation (of this call) and stopped by a budget, not by patience.
        self.still_improving = (self.stop_reason in ("epochs", "max_steps", "max_minutes") and self._holds_best
                                and bool(self.metrics) and len(self._evaluations()) >= 2)
        self._last_metrics = dict(self.metrics)
        if cfg.restore_best:
            self._restore_best()
        return self

    # -- what ended the run, in words -------------------------------------------------------------------------

    def _precision_why(self) -> str:
        """Why this precision, when --precision auto chose it (the user asked for the others by name)."""
        if self.config.precision != "auto":
            return ""
        if self.precision == "bf16":
            return " (--precision auto: this device multiplies bfloat16 natively)"
        return " (--precision auto: this device has no fast bfloat16)"

    def _patience_spent(self) -> bool:
        """Early stopping's test: ``early_stop_patience`` whole epochs without improvement, and at least
        ``min_steps`` steps trained (a minimum that holds however small the data)."""
        cfg = self.config
        return bool(cfg.early_stop_patience) and self.bad_epochs >= cfg.early_stop_patience \
            and self.step >= cfg.min_steps

    def _epoch_label(self, epoch: int) -> str:
        """"epoch 3/10"; past --epochs (min_steps goes on), "epoch 12 (past --epochs 10 until --min-steps 300)"."""
        cfg = self.config
        if epoch + 1 <= cfg.epochs:
            # "/N" only when the epochs are what will end the run: a time budget that ends it first makes
            # "epoch 1/100" a false promise (the progress line shows the clock then).
            progress = getattr(self, "_progress", None)
            clock = cfg.max_minutes and progress is not None and progress.limit(self) == "time"
            return f"epoch {epoch + 1}" if clock else f"epoch {epoch + 1}/{cfg.epochs}"
        return f"epoch {epoch + 1} (past --epochs {cfg.epochs} until --min-steps {cfg.min_steps})"

    def _evaluations(self) -> list[dict[str, Any]]:
        return [r for r in self.history if r.get("event") == "epoch"]

    def end_report(self) -> list[str]:
        """What ended training and which weights the model holds, in lines for the user (``Task.fit`` prints
        them): early stopping and its patience, the best epoch's weights kept instead of the last, and a run
        that a budget ended while the monitored metric was still improving (with the flag to raise)."""
        cfg, lines = self.config, []
        monitor = cfg.monitor
        if self.stop_reason == "early_stop" and cfg.early_stop_patience:
            lines.append(f"stopped early after epoch {self.epoch}: {monitor} had not improved for "
                         f"{cfg.early_stop_patience} epochs (--early-stop-patience {cfg.early_stop_patience})")
        last = getattr(self, "_last_metrics", {}).get(monitor)
        evaluations = self._evaluations()
        last_epoch = evaluations[-1]["epoch"] if evaluations else None
        if (cfg.restore_best and self._holds_best and self.best_epoch is not None and last is not None
                and last_epoch is not None and self.best_epoch != last_epoch):
            lines.append(f"kept the weights of epoch {self.best_epoch + 1} ({monitor} {self.best:.4g}), the best; "
                         f"the last epoch's {monitor} was {last:.4g}")
        clipped = [r["clipped_share"] for r in self._evaluations() if "clipped_share" in r]
        if clipped and clipped[-1] >= CLIPPED_SAYS:
            lines.append(f"--clip-grad-norm {cfg.clip_grad_norm:g} clipped the gradient in {clipped[-1]:.0%} of the "
                         f"last epoch's steps: the threshold, more than --lr, set the step size (metrics.jsonl "
                         f"holds the norms)")
        if self.still_improving:
            if self.stop_reason == "max_minutes":
                flag = f"--max-minutes {cfg.max_minutes:g}"
            elif self.stop_reason == "max_steps":
                flag = f"--max-steps {cfg.max_steps}"
            else:
                flag = f"--epochs {cfg.epochs}" + (f" / --min-steps {cfg.min_steps}" if self.epoch > cfg.epochs else "")
            lines.append(f"{monitor} was still improving when {flag} ended (its best was the last evaluation, "
                         f"{self.best:.4g}): a larger {flag.split()[0]} may do better")
        return lines

    def _restore_best(self) -> None:
        """Put the best epoch's weights in the model (the last ones are kept for a later fit call)."""
        if self.best_epoch is None or self._holds_best:
            return
        best = self._best_weights
        if best is None and self.run_dir is not None:
            path = self.run_dir.checkpoint_path(BEST_WEIGHTS)   # a resumed run: the best epoch was before it
            best = load_weights(path) if path.is_file() else None
        if best is None:
            return
        self._last_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        device = next(iter(self._last_weights.values())).device if self._last_weights else self.device
        self.model.load_state_dict({k: v.to(device) for k, v in best.items()}, strict=False)
        self._holds_best = True

    def _run_epoch(self, get_batches, compute_loss, evaluate, on_epoch_end) -> None:
        cfg = self.config
        epoch = self.epoch
        if self._pending_rng is not None and self.batch_in_epoch == 0:
            # At an epoch boundary the saved RNG state is the one train_batches(epoch) was called with.
            set_rng_states(self._pending_rng)
            self._pending_rng = None
        batches = get_batches(epoch)
        per_epoch = len(batches) if hasattr(batches, "__len__") else None
        self._total_steps = _total_steps(cfg, per_epoch)
        it = iter(batches)
        # A resumed epoch skips the batches already trained on; this presumes that train_batches(epoch)
        # gives the same batches each time it is called (seed its shuffling from ``epoch``).
        for skipped in range(self.batch_in_epoch):
            if next(it, None) is None:
                raise ValueError(f"train_batches({epoch}) gave {skipped} batches, but the checkpoint had already "
                                 f"trained on {self.batch_in_epoch} of this epoch: the data changed since")
        if self._pending_rng is not None:
            set_rng_states(self._pending_rng)
            self._pending_rng = None

        # A bar on a terminal; in a log file a line every 30 s and at each tenth of the run (progress.py).
        self._progress.start_epoch(self, per_epoch, self._total_steps)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        state = self._carried
        stopped = False
        try:
            for batch in it:
                self.lr = lr_at(cfg, self.step, self._total_steps, self._time_fraction())
                for group in self.optimizer.param_groups:
                    # A group may scale the schedule's rate (discriminative learning rates: lower layers slower).
                    group["lr"] = self.lr * group.get("lr_scale", 1.0)
                batch, share = distributed.shard_rows(batch)   # this rank's rows (in one process: all of them)
                batch = to_device(batch, self.device)
                with self.autocast():
                    loss, state, n_items = compute_loss(self._train_model, batch, state)
                if share != 1.0:
                    # Weighted by this rank's share of the rows: the average over the ranks (what DDP takes
                    # of the gradients) is then the mean over the whole batch.
                    loss, n_items = loss * share, (0 if share == 0 else n_items)
                # Truncated BPTT: the next batch starts from these values but not from their history.
                state = detach_state(state)
                if self.precision != "fp32":
                    state = to_float32(state)   # checkpoints and the next batch always see float32
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.clip_grad_norm is not None:
                    # The norm before clipping, as a device tensor (read only when logged).
                    self.grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
                    self._count_clipping(self.grad_norm)
                self.optimizer.step()
                self.step += 1
                if self._average is not None:
                    self._update_average()
                self.batch_in_epoch += 1
                self._carried = state

                n_items = 1 if n_items is None else n_items
                # The whole batch's loss and items: averaged (items summed) over the ranks of a distributed run.
                loss, n_items = distributed.average_loss(loss.detach().float(), n_items)
                if self.first_loss is None and self._first_loss_t is None:
                    self._first_loss_t = loss        # read back at the next log: no sync here
                self._epoch_loss = self._epoch_loss + loss
                self._epoch_steps += 1
                self._window_loss = self._window_loss + loss
                self._window_steps += 1
                self._window_items = self._window_items + n_items
                self._trigger("on_step_end")
                check_pending()                 # a SIGTERM that some code swallowed stops here
                if self.step == self._first_step:
                    phase("first_step")         # the first step of this fit call (tests signal here)
                if self.step % cfg.log_every == 0:
                    self._log_train(epoch)
                self._progress.step(self, loss, n_items)
                if cfg.max_steps is not None and self.step >= cfg.max_steps:
                    self.stop_reason, stopped = "max_steps", True
                    break
                # Rank 0's clock decides in a distributed run, so that every rank stops after this same step.
                if self._out_of_time():
                    self.stop_reason, stopped = "max_minutes", True
                    self._progress.budget_stop(self, self._end_seconds)
                    break
        finally:
            self._progress.end_epoch()
        # A budget that ran out on the epoch's last batch still ends a whole epoch.
        partial = stopped and (per_epoch is None or self.batch_in_epoch < per_epoch)
        self._end_epoch(epoch, evaluate, on_epoch_end, partial=partial)

    def _time_fraction(self) -> float | None:
        """The part of the max_minutes budget of this fit call used so far (None without a budget)."""
        if self._deadline is None:
            return None
        # Rank 0's clock in a distributed run: every rank takes the same learning rate.
        return distributed.from_main(self.elapsed()) / (60 * self.config.max_minutes)

    def _out_of_time(self) -> bool:
        """Whether the time budget, less what the last epoch's end took (the final pass), is used up."""
        if self._deadline is None:
            return False
        stop_at = self._deadline - (self._end_seconds or 0.0)
        return distributed.from_main(time.monotonic() - stop_at) >= 0

    def elapsed(self) -> float:
        """Seconds of training in this run so far, earlier (resumed-from) fit calls included."""
        running = time.monotonic() - self._start if getattr(self, "_start", None) is not None else 0.0
        return self.train_seconds + running

    def _log_train(self, epoch: int) -> None:
        now = time.monotonic()
        # The one host sync per log_every steps: the window's mean loss and, when clipping, the last step's
        # gradient norm (before clipping) and the window's sum and largest norm and the steps clipped.
        read = [(self._window_loss / self._window_steps).reshape(1)]
        if self.grad_norm is not None:
            read += [self.grad_norm.detach().float().reshape(1), self._window_grad]
        values = torch.cat(read).tolist()
        loss = values[0]
        self._check_loss(loss, f"at step {self.step}")
        items = float(self._window_items)
        record = {"event": "train", "epoch": epoch, "step": self.step, "loss": loss, "lr": self.lr,
                  "items_per_s": items / max(now - self._window_start, 1e-9),
                  "elapsed_s": self.elapsed()}
        if self.grad_norm is not None:
            norm, norm_sum, norm_max, clipped = values[1:]
            record.update(grad_norm=norm, grad_norm_mean=norm_sum / self._window_steps, grad_norm_max=norm_max,
                          clipped_share=clipped / self._window_steps)
        self._record(record)
        self._progress.logged(loss, record["items_per_s"])
        self._trigger("on_log", record)
        self._reset_window()
        self._window_start = now

    def _reference_loss(self) -> float | None:
        """The first step's loss, read back from the device once."""
        if self.first_loss is None and self._first_loss_t is not None:
            self.first_loss, self._first_loss_t = self._first_loss_t.item(), None
        return self.first_loss

    def _check_loss(self, loss: float, where: str) -> None:
        """Stop a diverging run: a non-finite loss, or one DIVERGED_FACTOR times the first (at least)."""
        first = self._reference_loss()
        if math.isfinite(loss) and (first is None or not math.isfinite(first)
                                    or loss <= DIVERGED_FACTOR * max(abs(first), 1.0)):
            return
        grown = ""
        if math.isfinite(loss) and first:
            grown = f", {loss / first:.3g} times the first step's loss {first:.4g}"
        raise RuntimeError(f"the training loss became {loss:.4g} {where}{grown}: training diverged; try a lower "
                           f"--lr (now {self.config.lr:g}) or set --clip-grad-norm. The last checkpoint "
                           f"saved before this is kept")

    def _end_epoch(self, epoch: int, evaluate, on_epoch_end, *, partial: bool) -> None:
        cfg = self.config
        began = time.monotonic()
        with self.averaged_weights():
            self._evaluate_and_save(epoch, evaluate, on_epoch_end, partial=partial)
        self._end_seconds = time.monotonic() - began     # what the next budget stop leaves free
        if not partial and self._patience_spent():
            self.stop_reason = "early_stop"

    def _evaluate_and_save(self, epoch: int, evaluate, on_epoch_end, *, partial: bool) -> None:
        cfg = self.config
        # One host sync: the epoch's mean loss and the steps whose gradient norm was clipped.
        train_loss, clipped = (torch.stack([self._epoch_loss / self._epoch_steps, self._epoch_clipped]).tolist()
                               if self._epoch_steps else (math.nan, 0.0))
        if self._epoch_steps:
            # Between two logs (or in an epoch shorter than log_every) a loss may have gone bad unseen.
            self._check_loss(train_loss, f"in epoch {epoch + 1} (its mean up to step {self.step})")
        metrics: dict[str, float] = {"train_loss": train_loss}
        clipping = ({"clipped_share": clipped / self._epoch_steps}
                    if self.config.clip_grad_norm is not None and self._epoch_steps else {})
        if evaluate is not None:
            self.model.eval()
            began = time.monotonic()
            # The task's pass is opaque here: its progress is shown by the clock, against the last pass.
            with torch.no_grad(), timed_pass(f"validation after step {self.step}", self._eval_seconds,
                                             show=self._progress.show):
                metrics.update({k: float(v) for k, v in evaluate(self.model).items()})
            self._eval_seconds = time.monotonic() - began
            phase("validation")
            self.model.train()
            # Rank 0's figures decide the best epoch and early stopping on every rank of a distributed run.
            metrics = distributed.object_from_main(metrics)
            if cfg.monitor not in metrics:
                _checks.fail("monitor", cfg.monitor, "a key of the metrics that evaluate returns: "
                             + ", ".join(repr(k) for k in metrics))
        value = metrics.get(cfg.monitor, train_loss)
        improved = math.isfinite(value) and (self.best is None or value < self.best)
        if improved:
            self.best, self.best_epoch = value, epoch
            if cfg.restore_best:
                self._best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self._holds_best = improved
        if not partial:
            # A budget stop in mid-epoch evaluates too, but only whole epochs count towards patience.
            self.bad_epochs = 0 if improved else self.bad_epochs + 1
        self.metrics = metrics
        self._record({"event": "epoch", "epoch": epoch, "step": self.step, **metrics, **clipping, "lr": self.lr,
                      "best": improved, "partial": partial, "elapsed_s": self.elapsed(),
                      "precision": self.precision})
        self._trigger("on_epoch_end", epoch, metrics)
        if on_epoch_end is not None:
            on_epoch_end(self, epoch, metrics)
        if self.progress is not False:
            # One line per epoch, also when stderr is not a terminal (logs, CI) and the bar is hidden.
            tqdm.write(f"{self._epoch_label(epoch)}{' (partial)' if partial else ''}, step {self.step}: "
                       + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()), file=sys.stderr)
        if not partial:
            self.epoch += 1
            self.batch_in_epoch = 0
            self._carried = None
            self._reset_epoch_sums()
        # Saved after evaluation and on_epoch_end, so the RNG state in the checkpoint is the one the next
        # epoch starts from in an uninterrupted run too.
        self.save(best=improved)
        self._plot(every_s=PLOT_EVERY_S)

    # -- weight averaging (config.ema_decay) -------------------------------------------------------------

    def _copy_weights(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().float().clone() for name, p in self.model.named_parameters()}

    def _update_average(self) -> None:
        """average <- decay * average + (1 - decay) * weights, once per optimizer step.

        The decay ramps up as (1 + step) / (10 + step) until it reaches ema_decay, so that early on the
        average follows the weights instead of remembering the random initial ones for thousands of steps.
        """
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                self._average[name].lerp_(p.detach().float(), 1.0 - decay)

    def _swap_average(self) -> None:
        """Exchange the model's weights with the ones in ``_average`` (its own inverse)."""
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                held = p.detach().clone()
                p.copy_(self._average[name])
                self._average[name].copy_(held)
        self._swapped = not self._swapped

    def averaged_weights(self):
        """``with trainer.averaged_weights():`` the model holds the averaged weights (no-op without ema_decay)."""
        return self._holding(average=True)

    def trained_weights(self):
        """``with trainer.trained_weights():`` the model holds the weights the optimizer trained."""
        return self._holding(average=False)

    @contextmanager
    def _holding(self, average: bool):
        # The model holds the average exactly when _swapped; swap only if that differs from what is asked.
        swap = self._average is not None and self._swapped != average
        if swap:
            self._swap_average()
        try:
            yield self.model
        finally:
            if swap:
                self._swap_average()

    # -- bookkeeping ---------------------------------------------------------------------------------------

    def _reset_epoch_sums(self) -> None:
        self._epoch_loss = torch.zeros((), device=self.device)  # summed as a tensor: no per-step sync
        self._epoch_clipped = torch.zeros((), device=self.device)   # steps whose gradient norm was clipped
        self._epoch_steps = 0

    def _reset_window(self) -> None:
        self._window_loss = torch.zeros((), device=self.device)
        self._window_grad = torch.zeros(3, device=self.device)   # gradient norms: sum, max, steps clipped
        self._window_steps = 0
        self._window_items = 0

    def _count_clipping(self, norm: torch.Tensor) -> None:
        """Add one step's gradient norm (before clipping) to the window's and the epoch's sums, on the device."""
        norm = norm.detach().float()
        clipped = (norm > self.config.clip_grad_norm).float()
        self._window_grad = torch.stack([self._window_grad[0] + norm, torch.maximum(self._window_grad[1], norm),
                                         self._window_grad[2] + clipped])
        self._epoch_clipped = self._epoch_clipped + clipped

    def _record(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.run_dir is not None and distributed.is_main():
            self.run_dir.append_metrics(record)

    def _plot(self, every_s: float = 0.0) -> None:
        """Redraw the training curves; with ``every_s``, only if the last drawing is that many seconds old (a
        drawing takes about 0.2 s, and a tiny set can end an epoch every few steps)."""
        if self.run_dir is None or not distributed.is_main():
            return
        when, records = self._plotted
        if records == len(self.history) or (when is not None and time.monotonic() - when < every_s):
            return
        plot_history(self.history, self.run_dir.plot_path)
        self._plotted = (time.monotonic(), len(self.history))

    # -- checkpoints ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The training position as a tree for ``RunDir.save_checkpoint`` (the optimizer is saved beside it)."""
        return {
            "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
            "best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
            "carried_state": self._carried,
            "epoch_loss": self._epoch_loss, "epoch_steps": self._epoch_steps, "epoch_clipped": self._epoch_clipped,
            "window_loss": self._window_loss, "window_grad": self._window_grad, "window_steps": self._window_steps,
            "window_items": self._window_items,
            "train_seconds": self.elapsed(),
            "first_loss": self._reference_loss(),
            # With averaging the weight files hold the average; training goes on from these.
            "trained_weights": self._trained_copy(),
            "config": dataclasses.asdict(self.config),
            "rng": rng_states(),
        }

    def _trained_copy(self) -> dict[str, torch.Tensor] | None:
        if self._average is None:
            return None
        if self._swapped:
            return {name: t.clone() for name, t in self._average.items()}
        return {name: p.detach().clone() for name, p in self.model.named_parameters()}

    def save(self, best: bool = False, *, together: bool = True) -> None:
        """Write the last checkpoint (and ``best.safetensors`` when ``best``) to the run directory.

        In a distributed run rank 0 writes. ``together``: every rank calls this at the same point (the end
        of an epoch or a budget), so the carried state of every rank's streams is gathered into the
        checkpoint; after Ctrl-C (not together) none is saved and the resumed streams start from zeros.
        """
        if self.run_dir is None:
            return
        carried = distributed.gather_rows(self._carried) if together else None   # (B, ...) pieces
        if distributed.is_main():
            with self.averaged_weights():
                state = self.state_dict()
                if distributed.active():
                    state["carried_state"] = carried
                self.run_dir.save_checkpoint(self.model, self.optimizer, state, best=best)

    def resume(self, run_dir: str | RunDir | None = None) -> "Trainer":
        """Load weights, optimizer and position from a run directory; the next ``fit`` continues from there."""
        if run_dir is not None:
            self.run_dir = RunDir(run_dir)
        if self.run_dir is None:
            _checks.fail("run_dir", None, "a run directory to resume from")
        state = self.run_dir.load_checkpoint(self.model, self.optimizer)
        check_trainer_state(state, self.run_dir.checkpoint_path(STATE_JSON))
        self._best_weights, self._holds_best, self._last_weights = None, False, None
        self.epoch, self.batch_in_epoch, self.step = state["epoch"], state["batch_in_epoch"], state["step"]
        self.best, self.best_epoch, self.bad_epochs = state["best"], state["best_epoch"], state["bad_epochs"]
        self.first_loss, self._first_loss_t = state.get("first_loss"), None   # absent before this version
        # The checkpoint holds the whole batch's carried state; a distributed run takes this rank's rows.
        self._carried = to_device(distributed.shard_rows(state.get("carried_state"))[0], self.device)
        self._epoch_loss = state["epoch_loss"].to(self.device)
        self._epoch_steps = state["epoch_steps"]
        # Clipping counts: absent in checkpoints of older versions (counted from zero).
        self._epoch_clipped = state.get("epoch_clipped", torch.zeros(())).to(self.device)
        self._window_grad = state.get("window_grad", torch.zeros(3)).to(self.device)
        self._window_loss = state["window_loss"].to(self.device)
        self._window_steps = state["window_steps"]
        self._window_items = state["window_items"]
        self.train_seconds = float(state.get("train_seconds", 0.0))   # absent in checkpoints of older versions
        self._pending_rng = state["rng"]
        self._restore_trained_weights(state.get("trained_weights"))
        # Records written after this checkpoint (a kill between a record and the next save) would be
        # written again by the resumed run: drop them.
        history = self.run_dir.read_metrics()
        self.history = [r for r in history if r.get("step", 0) <= self.step]
        if len(self.history) != len(history) and distributed.is_main():
            self.run_dir.rewrite_metrics(self.history)
        return self

    def _restore_trained_weights(self, trained: dict[str, torch.Tensor] | None) -> None:
        """After loading a checkpoint's weight file: put the trained weights back and rebuild the average."""
        self._swapped = False
        if trained is None:
            # A run without averaging: the weight file holds the trained weights. Averaging (when it is on
            # now) starts from them.
            self._average = self._copy_weights() if self.config.ema_decay else None
            return
        names = [name for name, _ in self.model.named_parameters()]
        if set(trained) != set(names):
            raise ValueError(f"{self.run_dir.path}: the training state's trained weights do not fit the model: "
                             f"missing {short_list(sorted(set(names) - set(trained)))}, unexpected "
                             f"{short_list(sorted(set(trained) - set(names)))}")
        average = self._copy_weights()                 # the weight file held the average
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                p.copy_(trained[name])
        self._average = average if self.config.ema_decay else None


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) or (
        isinstance(v, torch.Tensor) and v.numel() == 1 and not v.dtype.is_complex)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


# What each field of a saved training position must be. Checked on resume, so that a damaged or hand-edited
# trainer_state.json gets one message naming the file and the field, not a failure deep inside training.
# (Fields added in later versions are optional: older checkpoints lack them.)
STATE_FIELDS: dict[str, tuple[Callable[[Any], bool], str, bool]] = {
    # name: (check, what is expected, required)
    "epoch": (_count, "an integer >= 0", True),
    "batch_in_epoch": (_count, "an integer >= 0", True),
    "step": (_count, "an integer >= 0", True),
    "best": (_optional(_number), "a number or null", True),
    "best_epoch": (_optional(_count), "an integer >= 0 or null", True),
    "bad_epochs": (_count, "an integer >= 0", True),
    "epoch_loss": (lambda v: isinstance(v, torch.Tensor) and v.numel() == 1, "a one-number tensor", True),
    "epoch_steps": (_count, "an integer >= 0", True),
    "window_loss": (lambda v: isinstance(v, torch.Tensor) and v.numel() == 1, "a one-number tensor", True),
    "window_steps": (_count, "an integer >= 0", True),
    "window_items": (_number, "a number", True),
    "rng": (lambda v: isinstance(v, dict), "the saved random generator states", True),
    "train_seconds": (_number, "a number", False),
    "first_loss": (_optional(_number), "a number or null", False),
    "trained_weights": (_optional(lambda v: isinstance(v, dict)), "an object of tensors or null", False),
    "epoch_clipped": (lambda v: isinstance(v, torch.Tensor) and v.numel() == 1, "a one-number tensor", False),
    "window_grad": (lambda v: isinstance(v, torch.Tensor) and v.numel() == 3, "a three-number tensor", False),
}


def check_trainer_state(state: Any, source: Any) -> None:
    """Raise a ``ValueError`` naming ``source`` and the field when ``state`` is not a training position
    that ``Trainer.resume`` can use (see ``STATE_FIELDS``)."""
    if not isinstance(state, dict):
        raise ValueError(f"{source}: trainer: expected an object, got {type(state).__name__}")
    for name, (check, expected, required) in STATE_FIELDS.items():
        if name not in state:
            if required:
                raise ValueError(f"{source}: trainer.{name} is missing: expected {expected}")
            continue
        if not check(state[name]):
            value = repr(state[name])
            value = value if len(value) <= 60 else value[:60] + "..."
            raise ValueError(f"{source}: trainer.{name}={value}: expected {expected}")
    # The generator states are tried out (and the current ones put back): a bad one fails here, by name.
    current = rng_states()
    try:
        set_rng_states(state["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, OverflowError) as err:
        raise ValueError(f"{source}: trainer.rng: not a saved random generator state ({err})") from None
    finally:
        set_rng_states(current)


def _total_steps(config: TrainConfig, per_epoch: int | None) -> int | None:
    """Steps the whole run will take, for the cosine schedule; None when it cannot be known."""
    candidates = [config.max_steps] if config.max_steps is not None else []
    if per_epoch:
        # min_steps goes on past --epochs, in whole epochs.
        epochs = max(config.epochs, -(-config.min_steps // per_epoch))
        candidates.append(epochs * per_epoch)
    return min(candidates) if candidates else None
