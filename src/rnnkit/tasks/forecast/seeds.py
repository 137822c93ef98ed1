"""Seeds as a measurement: one model trained with several seeds, its mean ± sd, and when two results are a tie.

A recurrent model's validation MAE moves with the seed (the same GRU: 0.97 or 1.15), so one seed cannot tell
two models apart. ``fit_seeds`` trains seeds ``seed, seed+1, ...``: the first in the run directory itself (the
run's model), the others in ``RUN/seed-<s>/`` (runs of their own). A seed whose run finished earlier is read
back instead of trained again, one with a checkpoint goes on from it (``resume``).

The tie rule (:func:`tied`): two models are tied when the difference of their mean MAEs is smaller than twice
its standard error, ``|m1 - m2| < 2 * sqrt(sd1^2/n1 + sd2^2/n2)`` (about a 95% interval; a deterministic
model's sd is 0). With one seed of a model that varies with the seed there is no spread to measure, and no tie
is called.

The time budget (``--max-minutes``) is the whole command's (:class:`Budget`): each fit gets an equal share
of the time that is left over the fits still to run, so time an early-stopped fit leaves goes to the next.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.schema import is_finished, read_run_config
from rnnkit.tasks.base import replace_config

# The figures kept of each seed (a run's metrics_ holds more: the baselines, the season).
FIGURES = ("val_mae", "test_mae", "val_mae_norm", "test_mae_norm")


@dataclass
class Seeded:
    """One model's seeds: each seed's figures, and the Forecaster objects fitted (or read back) for them.

    ``runs[0]`` is the run of the first seed, the one the run directory itself holds.
    """

    seeds: list[int] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)     # per seed: FIGURES, best_epoch, train_s
    runs: list[Any] = field(default_factory=list)                   # Forecaster per seed
    interrupted: Any = None          # the Trainer that Ctrl-C stopped (None: every seed ran to its end)

    def mean_sd(self, key: str) -> tuple[float | None, float | None]:
        """Mean and sample standard deviation of a figure over the seeds (sd None with one seed)."""
        return mean_sd([f[key] for f in self.figures])


def mean_sd(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1); (None, None) when a value is missing (no validation part)."""
    if not values or any(v is None for v in values):
        return None, None
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def tied(a: tuple[float, float | None], b: tuple[float, float | None]) -> bool:
    """Whether two (mean, standard error of the mean) results differ by less than twice the standard error of
    their difference, sqrt(se1^2 + se2^2). A standard error of None (one seed of a model that varies with the
    seed: no spread measured) calls no tie; 0 is a deterministic model's."""
    (m1, se1), (m2, se2) = a, b
    if se1 is None or se2 is None:
        return False
    return abs(m1 - m2) < 2 * math.sqrt(se1 ** 2 + se2 ** 2)


class Budget:
    """``minutes`` for ``fits`` trained fits in all (None: no limit): ``share()`` is the next fit's training
    budget. The time a fit spends outside training (preparing the windows, the test evaluation) is measured and
    kept back for the fits still to run, so that the command as a whole ends near its budget."""

    def __init__(self, minutes: float | None, fits: int, *, started: float | None = None, reserve: float = 0.0):
        """``started``: when the command began (time.monotonic(); default now); ``reserve``: seconds kept for
        the work after the last fit (a comparison's plots)."""
        start = time.monotonic() if started is None else started
        self.deadline = None if minutes is None else start + 60 * minutes - min(reserve, 3 * minutes)
        self.left = max(1, fits)
        self.overhead = 0.0          # the most seconds a fit has spent outside its training so far
        self._started: float | None = None

    def share(self) -> float | None:
        """Minutes for the next fit's training: what is left after the others' overhead, split over the fits
        still to run (at least 1 second)."""
        self._started = time.monotonic()
        if self.deadline is None:
            return None
        seconds = (self.deadline - time.monotonic() - self.overhead * self.left) / self.left
        return max(1.0, seconds) / 60

    def done(self, train_seconds: float = 0.0) -> None:
        """A trained fit ended after ``train_seconds`` of training."""
        if self._started is not None:
            self.overhead = max(self.overhead, time.monotonic() - self._started - train_seconds)
        self.left = max(1, self.left - 1)

    def skip(self) -> None:
        """A fit that needs no training (finished in an earlier call): its share goes to the others."""
        self.left = max(1, self.left - 1)


def seed_dir(run_dir: str | Path | None, index: int, seed: int) -> str | None:
    """Where seed ``seed`` (the ``index``-th) is trained: the run directory for the first, ``seed-<s>/`` below it
    for the others."""
    if run_dir is None:
        return None
    return str(run_dir) if index == 0 else str(Path(run_dir) / f"seed-{seed}")


def figures_of(fc: Any) -> dict[str, Any]:
    m = fc.metrics_
    return {**{k: m.get(k) for k in FIGURES}, "best_epoch": None if fc.best_epoch_ is None else fc.best_epoch_ + 1,
            "train_s": fc.train_seconds_ or 0.0}


def finished_run(path: str | None) -> bool:
    """Whether ``path`` holds a finished forecast run (not a dry run), which a resumed command keeps as it is."""
    if path is None or not RunDir(path).config_path.is_file():
        return False
    try:
        doc = read_run_config(path, "forecast")
    except (ValueError, OSError):
        return False
    return is_finished(doc, RunDir(path)) and not doc.get("data", {}).get("dry_run")


def fit_seeds(config: Any, data: Any, run_dir: str | None, *, resume: bool = False, dry_run: bool = False,
              progress: bool | None = None, verbose: bool = True, budget: Budget | None = None,
              label: str | None = None) -> Seeded:
    """Train ``config.seeds`` seeds of ``config`` (see the module docstring); stops after a seed that Ctrl-C
    interrupted (``Seeded.interrupted``). ``label`` prefixes the per-seed lines (compare names the model)."""
    from rnnkit.tasks.forecast.task import Forecaster

    out = Seeded()
    first = config.train.seed
    for i in range(config.seeds):
        seed = first + i
        path = seed_dir(run_dir, i, seed)
        # Each seed is a run of its own (seeds=1): the first keeps the command's config (its seeds) as the run's.
        cfg = config if i == 0 else replace_config(config, seed=seed, seeds=1)
        what = f"{label or config.model}{_seed_text(config, seed)}: finished earlier in {path}"
        finished = resume and finished_run(path)
        if finished and same_budgets(path, cfg):
            fc = kept(path, what)
            if budget is not None:
                budget.skip()
        else:
            # A new seed, one with a checkpoint (it goes on), or a finished one given a changed budget (it trains
            # on; Task.fit refuses one that the new budget allows no more training).
            go_on = resume and path is not None and RunDir(path).config_path.is_file()
            fc = Forecaster(cfg)
            fc._budget_minutes = budget.share() if budget is not None else None
            try:
                fc.fit_one(data, run_dir=path, resume=go_on, dry_run=dry_run, progress=progress,
                           verbose=verbose and i == 0)
            except ValueError as err:
                if not (finished and "the run is complete" in str(err)):
                    raise
                fc = kept(path, f"{what}, and its budget allows no more training")
            if fc.trainer_ is not None:
                if budget is not None:
                    budget.done(fc.trainer_.train_seconds)
                if fc.trainer_.interrupted:
                    out.interrupted = fc.trainer_
                    return out
        out.seeds.append(seed)
        out.runs.append(fc)
        out.figures.append(figures_of(fc))
        if config.seeds > 1:
            f = out.figures[-1]
            val = "-" if f["val_mae"] is None else f"{f['val_mae']:.4f}"
            print(f"{label or config.model}{_seed_text(config, seed)}: val {val}, test {f['test_mae']:.4f}",
                  file=sys.stderr)
    return out


BUDGETS = ("epochs", "max_steps", "max_minutes", "min_steps", "early_stop_patience")


def same_budgets(path: str, config: Any) -> bool:
    """Whether the finished run in ``path`` was trained with the budgets ``config`` gives (then a resumed command
    keeps it as it is; a changed budget trains it on)."""
    saved = read_run_config(path, "forecast")["config"].get("train", {})
    return all(saved.get(k) == getattr(config.train, k) for k in BUDGETS)


def kept(path: str, what: str) -> Any:
    """The finished run in ``path``, read back (its figures, weights and epoch records), and a line saying so."""
    from rnnkit.tasks.forecast.task import Forecaster

    fc = Forecaster.load(path)
    fc.trainer_, fc.history_ = None, read_history(path)
    print(f"{what}: kept", file=sys.stderr)
    return fc


def _seed_text(config: Any, seed: int) -> str:
    return f" seed {seed}" if config.seeds > 1 else ""


def read_history(path: str) -> list[dict[str, Any]]:
    """The epoch records of a finished run (for the loss plot of a comparison that read it back)."""
    run = RunDir(path)
    if not run.metrics_path.is_file():
        return []
    import json
    records = []
    for line in run.metrics_path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue                     # a line a kill cut short
        if r.get("event") == "epoch":
            records.append(r)
    return records
