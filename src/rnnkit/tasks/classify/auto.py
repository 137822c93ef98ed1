"""``--model auto``: a short tournament among the models that fit the data, inside the time budget.

The candidates are ``--candidates`` (fast baselines first, bow or rocket, then networks), else
``AUTO_CANDIDATES`` of the data's kind: the baseline alone, since no network beat it on the registered sets
(config.py says where that was measured); one candidate is fit at once, without scoring. Several are each
scored on validation accuracy:

* below ``CV_BELOW`` training + validation rows (or with no validation rows), by k-fold cross-validation
  over the training and validation rows together (stratified, ``CV_FOLDS`` folds or fewer when the rarest
  class has fewer rows): a hold-out set of a few rows would pick on noise. A network uses each fold's
  held-out rows to stop early, as it uses the validation rows when it trains for real;
* otherwise on the validation rows, each model trained on the training rows.

The winner is the candidate with the best mean accuracy, except that a later candidate (slower, usually a
network) must beat an earlier one by more than the noise of the estimate (one standard error, and at least
one row): a tie goes to the simpler model. The winner is then fit as an explicit ``--model X`` run would be
(bow and rocket on the training + validation rows when there are test rows to report on; a network on the
training rows, stopping on validation), unless its tournament run already is that model (a network scored on
the validation rows).

Time: the budget (``--max-minutes``) covers the whole tournament. The baselines take seconds and go first;
each network gets an equal share of what is left, less a reserve for the end (the final fit of a baseline and
the test report); under cross-validation its share is split over the folds and one final fit.

The table is printed, written to ``tournament.csv`` in the run directory as each candidate ends, and kept in
config.json's fitted values. A resumed tournament keeps the candidates that finished (their rows, and a
network scored on the validation rows is kept as a run in ``tournament/``); the candidate that was
interrupted starts again.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnkit.runs.io import atomic_write_text
from rnnkit.tasks.classify.config import AUTO_CANDIDATES, CV_BELOW, CV_FOLDS, SERIES_ONLY, TEXT_ONLY, ClassifyConfig

if TYPE_CHECKING:
    from rnnkit.tasks.classify.task import SequenceClassifier

TABLE_FILE = "tournament.csv"
RUNS_FOLDER = "tournament"            # a network scored on the validation rows, kept for a resumed tournament
BASELINES = ("bow", "rocket")         # fitted in closed form, in seconds
RESERVE = 0.05                        # of the budget, kept for the end: the final fit of a baseline, the report
MIN_SHARE_S = 5.0                     # a network with less time than this is not started
COLUMNS = ("model", "val_accuracy", "sd", "folds", "val_rows", "seconds", "picked", "note")


@dataclass
class Entry:
    """One row of the table: a candidate's validation accuracy (mean over the folds) and what it cost."""

    model: str
    accuracy: float | None            # None: not scored (skipped, or a dry run without validation rows)
    sd: float = 0.0                   # over the folds (0 for one hold-out set)
    folds: int = 0                    # 0: the validation rows, k: k-fold cross-validation
    rows: int = 0                     # rows scored, all folds together
    seconds: float = 0.0
    note: str = ""
    picked: bool = False

    def noise(self) -> float:
        """One standard error of the accuracy: over the folds' accuracies with cross-validation (the folds
        differ more than rows do), else a binomial one over the rows; at least one row's worth."""
        if self.accuracy is None or not self.rows:
            return 0.0
        if self.folds > 1:
            se = self.sd / math.sqrt(self.folds)
        else:
            se = math.sqrt(self.accuracy * (1 - self.accuracy) / self.rows)
        return max(se, 1.0 / self.rows)

    def as_row(self) -> dict[str, Any]:
        return {"model": self.model, "val_accuracy": "" if self.accuracy is None else f"{self.accuracy:.6f}",
                "sd": f"{self.sd:.6f}", "folds": self.folds, "val_rows": self.rows, "seconds": f"{self.seconds:.1f}",
                "picked": "yes" if self.picked else "", "note": self.note}

    @classmethod
    def from_row(cls, row: dict[str, str]) -> Entry:
        return cls(row["model"], float(row["val_accuracy"]) if row["val_accuracy"] else None, float(row["sd"]),
                   int(row["folds"]), int(row["val_rows"]), float(row["seconds"]), row["note"], row["picked"] == "yes")


def candidates_for(config: ClassifyConfig, kind: str) -> list[str]:
    """The models --model auto tries on data of ``kind`` ("text" or "series"); one that cannot read it is an
    error naming it."""
    names = list(config.candidates) or list(AUTO_CANDIDATES[kind])
    wrong = [m for m in names if m in (SERIES_ONLY if kind == "text" else TEXT_ONLY)]
    if wrong:
        reads = "numeric series" if wrong[0] in SERIES_ONLY else "texts"
        raise ValueError(f"candidates={names}: {wrong[0]} reads {reads} only; expected models that read "
                         f"{kind} (" + ", ".join(m for m in AUTO_CANDIDATES[kind]) + ", or a network)")
    return names


def pick(entries: list[Entry]) -> Entry:
    """The winner: the best accuracy, but an earlier (simpler) candidate keeps the lead unless a later one
    beats it by more than the leader's noise. Unscored entries never win unless none is scored."""
    leader = None
    for e in entries:
        if e.accuracy is None:
            continue
        if leader is None or e.accuracy > leader.accuracy + leader.noise():
            leader = e
    return leader if leader is not None else entries[0]


def read_table(run_dir: str | Path) -> list[Entry]:
    path = Path(run_dir) / TABLE_FILE
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        return [Entry.from_row(r) for r in rows]
    except (KeyError, ValueError) as err:
        raise ValueError(f"{path}: not a tournament table written by rnnkit ({err}); expected the columns "
                         f"{', '.join(COLUMNS)}: train again with --overwrite") from None


def write_table(run_dir: str | Path, entries: list[Entry]) -> None:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(e.as_row() for e in entries)
    atomic_write_text(Path(run_dir) / TABLE_FILE, out.getvalue())


def format_table(entries: list[Entry]) -> list[str]:
    """The table as lines for the terminal."""
    lines = ["model      validation accuracy        scored on                  seconds"]
    for e in entries:
        acc = "-" if e.accuracy is None else f"{e.accuracy:.4f}" + (f" ± {e.sd:.4f}" if e.folds > 1 else "")
        where = f"{e.folds} folds, {e.rows:,} rows" if e.folds > 1 else (f"{e.rows:,} validation rows" if e.rows
                                                                         else "-")
        mark = "  <- picked" if e.picked else ""
        note = f"  ({e.note})" if e.note else ""
        lines.append(f"{e.model:10s} {acc:26s} {where:26s} {e.seconds:7.1f}{mark}{note}")
    return lines


def _say(text: str) -> None:
    print(f"auto: {text}", file=sys.stderr, flush=True)


class Tournament:
    """One --model auto fit: the candidates scored, the winner fit; see the module docstring.

    ``train`` and ``val``: (inputs, labels) of the training and validation rows (``val`` None without any).
    ``refit_baselines``: fit a winning bow or rocket on the training + validation rows (when test rows are there
    to report on). ``spent``: seconds of the run before this call (a resumed run)."""

    def __init__(self, config: ClassifyConfig, kind: str, train: tuple[list, np.ndarray],
                 val: tuple[list, np.ndarray] | None, *, run_dir: str | Path | None, resume: bool, dry_run: bool,
                 progress: bool | None, refit_baselines: bool, report_rows: int = 0):
        self.config, self.kind, self.train, self.val = config, kind, train, val
        self.report_rows = report_rows
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.resume, self.dry_run, self.progress = resume, dry_run, progress
        self.refit_baselines = refit_baselines
        if dry_run and val is not None:
            from rnnkit.tasks.classify.data import small_sample
            self.val = small_sample(val[0], val[1], 16, config.train.seed)    # a smoke test: a few rows
        self.names = candidates_for(config, kind)
        self.entries: list[Entry] = read_table(self.run_dir) if (resume and self.run_dir) else []
        self.entries = [e for e in self.entries if e.model in self.names]
        self.start = time.monotonic()
        self.spent = sum(e.seconds for e in self.entries)      # time of the candidates that finished before
        self.kept: dict[str, SequenceClassifier] = {}           # networks scored on the validation rows
        self.end_seconds = 0.0              # what the end will take (the final fit, the report): see _reserve
        self.interrupted: SequenceClassifier | None = None      # the child whose training Ctrl-C stopped
        n = len(train[1]) + (0 if val is None else len(val[1]))
        self.folds = 0 if dry_run else self._folds(n)
        self.selection = self._selection(n)

    # -- the plan ------------------------------------------------------------------------------------------

    def _folds(self, n: int) -> int:
        """k for k-fold cross-validation, or 0 to score on the validation rows."""
        if self.val is not None and n >= CV_BELOW:
            return 0
        y = self.train[1] if self.val is None else np.concatenate([self.train[1], self.val[1]])
        rarest = int(np.unique(y, return_counts=True)[1].min())
        if rarest < 2:
            # No fold split can put that class on both sides: score on the validation rows if there are any.
            return 0
        return min(CV_FOLDS, rarest)

    def _selection(self, n: int) -> str:
        if self.folds:
            why = f"fewer than {CV_BELOW}" if self.val is not None else "no validation rows"
            return f"{self.folds}-fold cross-validation on the {n:,} training + validation rows ({why})"
        if self.val is None:
            return "no validation rows and too few rows to cross-validate: the first candidate"
        return f"accuracy on the {len(self.val[1]):,} validation rows"

    def budget_left(self) -> float | None:
        """Seconds of --max-minutes left, or None without a time budget."""
        minutes = self.config.train.max_minutes
        if minutes is None or self.dry_run:
            return None
        return 60 * minutes - self.spent - (time.monotonic() - self.start)

    def _reserve(self) -> float:
        """Seconds kept for the end: a share of the budget, or what the end will take if that is more (a winning
        ROCKET transforms every training row again, then the rows the caller reports on)."""
        return max(RESERVE * 60 * (self.config.train.max_minutes or 0), self.end_seconds)

    # -- running ------------------------------------------------------------------------------------------

    def run(self) -> SequenceClassifier | None:
        """Score every candidate, then fit the winner; returns it (None when Ctrl-C stopped a child: see
        ``interrupted``)."""
        done = {e.model for e in self.entries}
        if len(self.names) == 1:
            # Nothing to compare: the one candidate is the model (the test report gives its figures).
            name = self.names[0]
            self.selection = "the only candidate (--candidates adds others)"
            self.entries = [Entry(name, None, note="the only candidate: not scored", picked=True)]
            # The CLI says why (the default for the data's kind); nothing to print here.
            self._write()
            return self._final(name)
        if done:
            _say(f"resuming: {', '.join(sorted(done))} finished before; their rows are kept")
        _say(f"{', '.join(self.names)}, picked on {self.selection}")
        networks_left = [m for m in self.names if m not in BASELINES and m not in done]
        for name in self.names:
            if name in done:
                continue
            began = time.monotonic()
            if name in BASELINES:
                entry = self._score_baseline(name)
            else:
                share = self._share(len(networks_left))
                networks_left.remove(name)
                entry = self._score_network(name, share)
                if self.interrupted is not None:
                    return None
            entry.seconds = time.monotonic() - began
            if name in BASELINES and entry.rows:
                # Its final fit reads the rows it was scored on once more, then the rows the caller reports on.
                self.end_seconds = max(self.end_seconds, entry.seconds * (1 + self.report_rows / entry.rows))
            self.entries.append(entry)
            shown = "-" if entry.accuracy is None else (f"{entry.accuracy:.4f}" + (
                f" ± {entry.sd:.4f} over {entry.folds} folds" if entry.folds > 1 else ""))
            note = f" - {entry.note}" if entry.note else ""
            _say(f"{name}: validation accuracy {shown} ({entry.seconds:.1f} s){note}")
            self._write()
        # In the order of the candidates (a resumed run appends the rest after the ones that finished).
        self.entries.sort(key=lambda e: self.names.index(e.model))
        winner = pick(self.entries)
        winner.picked = True
        self._write()
        best = max((e for e in self.entries if e.accuracy is not None), key=lambda e: e.accuracy, default=None)
        why = ""
        if best is not None and best is not winner:
            why = (f" ({best.model}'s {best.accuracy:.4f} is within the noise of {winner.model}'s "
                   f"{winner.accuracy:.4f}: the simpler model is kept)")
        _say(f"{winner.model} is picked{why}")
        return self._final(winner.model)

    def _write(self) -> None:
        if self.run_dir is not None:
            write_table(self.run_dir, self.entries)

    def _share(self, networks_left: int) -> float | None:
        """Seconds for the next network: an equal share of what is left after the reserve."""
        left = self.budget_left()
        if left is None:
            return None
        return (left - self._reserve()) / max(networks_left, 1)

    def _child(self, model: str, seconds: float | None) -> SequenceClassifier:
        """An explicit run of ``model`` with this config's settings (a time budget of ``seconds``)."""
        from rnnkit.tasks.classify.task import SequenceClassifier

        train = self.config.train
        if seconds is not None:
            train = dataclasses.replace(train, max_minutes=max(seconds, 1.0) / 60)
        return SequenceClassifier(dataclasses.replace(self.config, model=model, candidates=[], seeds=1,
                                                      train=train))

    def _pool(self) -> tuple[list, np.ndarray]:
        """The rows cross-validation splits: training and validation rows together."""
        X, y = self.train
        if self.val is None:
            return list(X), np.asarray(y)
        return list(X) + list(self.val[0]), np.concatenate([y, self.val[1]])

    def _fold_indices(self, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        from sklearn.model_selection import StratifiedKFold

        folds = StratifiedKFold(n_splits=self.folds, shuffle=True, random_state=self.config.train.seed)
        return list(folds.split(np.zeros(len(y)), y))

    def _score_baseline(self, name: str) -> Entry:
        if self.folds:
            X, y = self._pool()
            if name == "rocket":
                from rnnkit.tasks.classify.rocket import cross_validate

                accs = cross_validate(X, y, self._fold_indices(y), self.config.rocket_kernels, self.config.train.seed,
                                      self.config.maxlen, self.config.truncating)
            else:
                accs = []
                for tr, va in self._fold_indices(y):
                    child = self._child(name, None).fit([X[i] for i in tr], y[tr], progress=False)
                    accs.append(child.evaluate([X[i] for i in va], y[va])["accuracy"])
            return Entry(name, float(np.mean(accs)), float(np.std(accs)), self.folds, len(y))
        child = self._child(name, None).fit(*self.train, dry_run=self.dry_run, progress=False)
        if self.val is None:
            return Entry(name, None, note="not scored: no validation rows")
        m = child.evaluate(*self.val)
        return Entry(name, m["accuracy"], 0.0, 0, len(self.val[1]))

    def _score_network(self, name: str, share: float | None) -> Entry:
        if share is not None and share < MIN_SHARE_S:
            return Entry(name, None, note=f"not trained: {max(share, 0):.0f} s of the budget left")
        if not self.folds:
            if self.val is None:
                return Entry(name, None, note="not scored: no validation rows")
            child = self._child(name, share).fit(*self.train, self.val, dry_run=self.dry_run, progress=self.progress)
            if child.trainer_ is not None and child.trainer_.interrupted:
                self.interrupted = child
                return Entry(name, None)
            acc = child.evaluate(*self.val)["accuracy"]
            self.kept[name] = child
            if self.run_dir is not None and not self.dry_run:
                child.save(self.run_dir / RUNS_FOLDER / name)       # a resumed tournament need not train it again
            return Entry(name, acc, 0.0, 0, len(self.val[1]), note=self._stop_note(child))
        X, y = self._pool()
        per_fold = None if share is None else share / (self.folds + 1)    # k folds, and a final fit if it wins
        accs, notes = [], []
        for k, (tr, va) in enumerate(self._fold_indices(y)):
            child = self._child(name, per_fold).fit([X[i] for i in tr], y[tr], ([X[i] for i in va], y[va]),
                                                    progress=False)
            if child.trainer_ is not None and child.trainer_.interrupted:
                self.interrupted = child
                return Entry(name, None)
            # The accuracy of the weights it keeps (the best epoch's), from its last validation pass.
            accs.append(float(child.metrics_["val_accuracy"]))
            notes.append(self._stop_note(child))
            _say(f"{name} fold {k + 1}/{self.folds}: accuracy {accs[-1]:.4f} on {len(va)} rows ({notes[-1]})")
        return Entry(name, float(np.mean(accs)), float(np.std(accs)), self.folds, len(y),
                     note=_common(notes))

    @staticmethod
    def _stop_note(child: SequenceClassifier) -> str:
        t = child.trainer_
        if t is None:
            return ""
        why = {"early_stop": "stopped early", "max_minutes": "its share of the time ended",
               "epochs": "all epochs", "max_steps": "max steps"}.get(t.stop_reason, t.stop_reason or "")
        return f"{t.step} steps, {why}" + (", still improving" if getattr(t, "still_improving", False) else "")

    # -- the winner ----------------------------------------------------------------------------------------

    def _final(self, name: str) -> SequenceClassifier | None:
        """The winner, fit as an explicit --model run would be."""
        if name in self.kept:
            return self.kept[name]
        kept = self.run_dir / RUNS_FOLDER / name if self.run_dir is not None else None
        if kept is not None and not self.folds and (kept / "config.json").is_file():
            from rnnkit.tasks.classify.task import SequenceClassifier
            _say(f"{name}: the model trained before the interruption, from {kept}")
            return SequenceClassifier.load(kept)
        X, y = self.train
        if name in BASELINES:
            if self.refit_baselines and self.val is not None:
                X, y = list(X) + list(self.val[0]), np.concatenate([y, self.val[1]])
            return self._child(name, None).fit(X, y, dry_run=self.dry_run, progress=False)
        left = self.budget_left()
        seconds = None if left is None else max(left - self._reserve(), MIN_SHARE_S)
        _say(f"{name}: training the final model on the {len(y):,} training rows"
             + ("" if seconds is None else f" ({seconds:.0f} s of the budget left)"))
        child = self._child(name, seconds).fit(X, y, self.val, dry_run=self.dry_run, progress=self.progress)
        if child.trainer_ is not None and child.trainer_.interrupted:
            self.interrupted = child
            return None
        return child

    def clean(self) -> None:
        """After the finished model is saved: the networks kept for a resume are not needed any more."""
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir / RUNS_FOLDER, ignore_errors=True)

    def record(self, winner: str) -> dict[str, Any]:
        """What config.json's fitted values keep of the tournament."""
        return {"asked": "auto", "picked": winner, "selection": self.selection, "candidates": self.names,
                "table": [e.as_row() for e in self.entries]}


def _common(notes: list[str]) -> str:
    """The folds' notes in one: the stop reasons, counted."""
    reasons = [n.split(", ", 1)[1] if ", " in n else n for n in notes if n]
    if not reasons:
        return ""
    counts = {r: reasons.count(r) for r in dict.fromkeys(reasons)}
    return "; ".join(f"{r} ({c} of {len(notes)} folds)" for r, c in counts.items())
