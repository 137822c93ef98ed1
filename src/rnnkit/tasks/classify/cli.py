"""`rnnkit classify train|predict|eval` and `rnnkit classify multilabel train|eval|predict`.

A thin layer over SequenceClassifier and MultilabelClassifier: the flags are the fields of their configs
(training options included) plus the data flags; a run directory written here loads in Python with
rnnkit.load(path), and the other way round.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from rnnkit import _checks
from rnnkit.config import add_config_arguments, config_from_args, config_from_dict, field
from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.schema import read_run_config
from rnnkit.tasks.base import Task, add_train_arguments, stop_if_interrupted, train_config_from_args
from rnnkit.tasks.classify import multilabel as ml
from rnnkit.tasks.classify.data import Split, load_data, read_series, read_text_csv, small_sample
from rnnkit.tasks.classify.task import SequenceClassifier

DESCRIPTION = ("Sequence classification (many to one): sentiment of a review, the activity behind a sensor "
               "trace; and multilabel classification of SYNTHETIC clinical-like series.")


@dataclass
class DataConfig:
    dataset: Optional[str] = field(None, "a named dataset: imdb, rotten-tomatoes or basic-motions")
    csv: Optional[str] = field(None, "a CSV/TSV file of texts with a header (see --text-col, --label-col)")
    series: Optional[str] = field(None, "numeric sequences: a .ts file or a long-format CSV (id, step, channels..., label)")
    text_col: str = field("text", "text column of --csv")
    label_col: str = field("label", "label column of --csv or --series")
    id_col: str = field("id", "sequence id column of a long-format --series CSV")
    step_col: Optional[str] = field("step", "time-step column of a long-format --series CSV (None: file order)")
    val_frac: float = field(0.1, "fraction held out for validation (early stopping)")
    test_frac: float = field(0.2, "fraction held out for the test report (unless the dataset has its own split)")
    split_seed: int = field(0, "seed of the stratified split (fixed, so every model sees the same test set)")


def data_config(data_class: type, task_class: type[Task], args: argparse.Namespace) -> Any:
    """The data flags, or with --resume the data the run in --run-dir was trained on (its config.json)."""
    if not args.resume:
        return config_from_args(data_class, args)
    data = read_run_config(args.run_dir, task_class.name).get("data", {})
    names = [f.name for f in dataclasses.fields(data_class)]
    if not any(name in data for name in names):
        _checks.fail("--resume", True, f"a run whose config.json records its data ({args.run_dir} records none: "
                     f"it was written by an older rnnkit; train it again)")
    return config_from_dict(data_class, {k: data[k] for k in names if k in data}, source="config.json: data")


# ---------------------------------------------------------------------------------------------------------
# rnnkit classify train | predict | eval
# ---------------------------------------------------------------------------------------------------------

def cmd_train(args) -> int:
    cfg = train_config_from_args(SequenceClassifier, args)
    dcfg = data_config(DataConfig, SequenceClassifier, args)
    data = load_data(dcfg.dataset, dcfg.csv, dcfg.series, text_col=dcfg.text_col, label_col=dcfg.label_col,
                     id_col=dcfg.id_col, step_col=dcfg.step_col, val_frac=dcfg.val_frac,
                     test_frac=dcfg.test_frac, seed=dcfg.split_seed)
    print(data.summary(), file=sys.stderr)
    train, val = data.train, data.val
    if cfg.model == "bow" and len(val):
        # bow has no epochs to stop early: it trains on train + validation, the data a neural model sees in all.
        train, val = Split(train.X + val.X, np.concatenate([train.y, val.y])), Split([], val.y[:0])
    info = {**dataclasses.asdict(dcfg), "source": data.source, "stats": data.stats,
            "sizes": {k: len(getattr(data, k)) for k in ("train", "val", "test")}}
    clf = SequenceClassifier(cfg).fit(train.X, train.y, (val.X, val.y), run_dir=args.run_dir, resume=args.resume,
                                      dry_run=args.dry_run, data_info=info)
    # Ctrl-C (or SIGTERM) stopped training: no test evaluation; exit 130 with the command that goes on.
    stop_if_interrupted(clf.trainer_, args.run_dir, SequenceClassifier.command())
    test = data.test if len(data.test) else data.val
    if args.dry_run:
        test = Split(*small_sample(test.X, test.y, 16))
    name = "test" if len(data.test) else "val"
    m = clf.report(test.X, test.y, args.run_dir, name)
    line = f"{cfg.model}: {name} accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}"
    if "roc_auc" in m:
        line += f", ROC AUC {m['roc_auc']:.4f}"
    print(line + f" (n={m['n']}); trained {clf.train_seconds_:.1f} s; run in {args.run_dir}")
    return 0


def _read_predict_inputs(clf: SequenceClassifier, args) -> list:
    if clf.kind_ == "text":
        texts = list(args.texts)
        if args.file:
            path = Path(args.file)
            if not path.is_file():
                raise FileNotFoundError(f"file={args.file!r}: no such file")
            lines = path.read_text(encoding="utf-8").splitlines()
            texts += [t for t in lines if t.strip()]
        if not texts:
            _checks.fail("texts", [], "at least one text, or --file FILE with one text per line")
        return texts
    if args.texts or not args.file:
        _checks.fail("texts", args.texts, "no texts for a series classifier; pass --file FILE (.ts or long CSV)")
    X, _ = read_series(args.file, **_series_columns(clf, args))
    return X


def _series_columns(clf: SequenceClassifier, args) -> dict[str, Any]:
    """Columns of a long-format CSV: the flags, else those the run was trained with."""
    return {name: getattr(args, name, None) or clf.data_.get(name, default)
            for name, default in (("label_col", "label"), ("id_col", "id"), ("step_col", "step"))}


def cmd_predict(args) -> int:
    clf = SequenceClassifier.load(args.run)
    X = _read_predict_inputs(clf, args)
    probs = clf.predict_proba(X)
    for i, p in enumerate(probs):
        k = int(p.argmax())
        shown = ", ".join(f"{c} {q:.3f}" for c, q in zip(clf.classes_, p))
        what = X[i] if isinstance(X[i], str) else f"series {i + 1}"
        what = what if len(what) <= 60 else what[:57] + "..."
        print(f"{clf.classes_[k]}\t({shown})\t{what}")
    return 0


def cmd_eval(args) -> int:
    clf = SequenceClassifier.load(args.run)
    if clf.kind_ == "text":
        if not args.csv:
            _checks.fail("csv", None, "a CSV file with the text and label columns")
        text_col = args.text_col or clf.data_.get("text_col", "text")
        label_col = args.label_col or clf.data_.get("label_col", "label")
        X, y, empty = read_text_csv(args.csv, text_col, label_col)
        source = args.csv
        if empty:
            print(f"{empty} empty texts skipped", file=sys.stderr)
    else:
        if not args.series:
            _checks.fail("series", None, "a .ts or long-format CSV file of labelled series")
        X, y = read_series(args.series, **_series_columns(clf, args))
        source = args.series
    out = Path(args.output) if args.output else Path(args.run) / "eval"
    m = clf.report(X, y, out, "eval")
    summary = {k: m[k] for k in ("n", "accuracy", "macro_f1", "roc_auc") if k in m}
    print(json.dumps({"source": source, **summary}))
    print(f"report written to {out}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------------------
# rnnkit classify multilabel train | eval | predict (SYNTHETIC data)
# ---------------------------------------------------------------------------------------------------------

def _say_synthetic(num_stays: int) -> None:
    print(f"SYNTHETIC data: {num_stays} generated clinical-like stays, {len(ml.CHANNEL_NAMES)} channels, "
          f"{len(ml.LABEL_NAMES)} labels (not real patients)", file=sys.stderr)


def cmd_multilabel_train(args) -> int:
    cfg = train_config_from_args(ml.MultilabelClassifier, args)
    scfg = data_config(ml.SyntheticConfig, ml.MultilabelClassifier, args)
    _say_synthetic(scfg.num_stays)
    m = ml.run_synthetic(cfg, scfg, args.run_dir, dry_run=args.dry_run, resume=args.resume, progress=None)
    print("test: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float)))
    return 0


def _synthetic_stays(clf: ml.MultilabelClassifier, args) -> tuple[str, list, np.ndarray]:
    """The stays to score: with --num-stays/--data-seed freshly generated ones, else the run's own test stays."""
    if args.num_stays is None and args.data_seed is None:
        known = {f.name for f in dataclasses.fields(ml.SyntheticConfig)}
        scfg = ml.SyntheticConfig(**{k: v for k, v in clf.data_.items() if k in known})
        stays, Y, _ = ml.synthetic_splits(scfg)["test"]
        _say_synthetic(len(stays))
        return f"the run's held-out test stays (data seed {scfg.data_seed})", stays, Y
    n = 600 if args.num_stays is None else args.num_stays
    seed = 1 if args.data_seed is None else args.data_seed
    _checks.check_int("num_stays", n, min=1)
    stays, Y, _ = ml.make_clinical(n, seed=seed)
    _say_synthetic(n)
    return f"{n} stays generated with data seed {seed}", stays, Y


def cmd_multilabel_eval(args) -> int:
    clf = ml.MultilabelClassifier.load(args.run)
    source, stays, Y = _synthetic_stays(clf, args)
    m = clf.evaluate(stays, Y)
    out = RunDir(args.output if args.output else Path(args.run) / "eval")
    out.path.mkdir(parents=True, exist_ok=True)
    out.write_json("eval_metrics.json", {**m, "n": len(stays), "data": f"SYNTHETIC: {source}"})
    print(json.dumps({"source": f"SYNTHETIC: {source}", "n": len(stays), **m}))
    print(f"report written to {out.path}", file=sys.stderr)
    return 0


def cmd_multilabel_predict(args) -> int:
    clf = ml.MultilabelClassifier.load(args.run)
    source, stays, Y = _synthetic_stays(clf, args)
    probs = clf.predict_proba(stays)
    for i, (p, y) in enumerate(zip(probs, Y)):
        predicted = [f"{clf.labels_[j]} {p[j]:.2f}" for j in np.argsort(-p) if p[j] >= clf.config.threshold]
        true = [clf.labels_[j] for j in np.flatnonzero(y)]
        print(f"stay {i + 1} ({stays[i].hours:g} h, {len(stays[i].times)} observations)\t"
              f"predicted: {', '.join(predicted) or '-'}\ttrue: {', '.join(true) or '-'}")
    print(f"SYNTHETIC: {source}", file=sys.stderr)
    return 0


def _add_synthetic_choice(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SYNTHETIC stays to score")
    g.add_argument("--num-stays", type=int, default=None,
                   help="generate this many new stays (default: 600 when --data-seed is given; with neither "
                        "flag, the run's own held-out test stays)")
    g.add_argument("--data-seed", type=int, default=None,
                   help="seed of the generator for the new stays (default: 1 when --num-stays is given; "
                        "with neither flag, the run's own held-out test stays)")


def add_multilabel_commands(verbs) -> None:
    p = verbs.add_parser("multilabel", help="multilabel LSTM on SYNTHETIC irregular clinical-like series "
                                            "(target replication, auxiliary outputs): train, eval, predict",
                         description="Multilabel classification of irregularly sampled clinical-like series "
                                     "(Lipton et al. 2015). The data is SYNTHETIC: generated stays with "
                                     "planted patterns, not real patients.")
    p.set_defaults(group_parser=p)
    sub = p.add_subparsers(dest="multilabel_verb", metavar="<verb>")

    t = sub.add_parser("train", help="generate synthetic stays, train, report test metrics")
    add_config_arguments(t, ml.SyntheticConfig, title="SYNTHETIC data")
    add_train_arguments(t, ml.MultilabelConfig, default_run_dir="runs/multilabel")
    t.set_defaults(func=cmd_multilabel_train)

    ev = sub.add_parser("eval", help="metrics of a multilabel run on synthetic stays, as JSON")
    ev.add_argument("run", help="run directory written by 'rnnkit classify multilabel train'")
    _add_synthetic_choice(ev)
    ev.add_argument("-o", "--output", metavar="DIR", help="directory for eval_metrics.json (default: RUN/eval)")
    ev.set_defaults(func=cmd_multilabel_eval)

    pr = sub.add_parser("predict", help="the labels a multilabel run predicts for synthetic stays")
    pr.add_argument("run", help="run directory written by 'rnnkit classify multilabel train'")
    _add_synthetic_choice(pr)
    pr.set_defaults(func=cmd_multilabel_predict)


# ---------------------------------------------------------------------------------------------------------
# The command group
# ---------------------------------------------------------------------------------------------------------

def add_commands(sub) -> None:
    p = sub.add_parser("classify", help="sequence classification: train, predict, eval; multilabel",
                       description=DESCRIPTION)
    p.set_defaults(group_parser=p)
    verbs = p.add_subparsers(dest="verb", metavar="<verb>")

    t = verbs.add_parser("train", help="train a classifier and report test metrics")
    add_config_arguments(t, DataConfig, title="data")
    add_train_arguments(t, SequenceClassifier.config_class, default_run_dir="runs/classify")
    t.set_defaults(func=cmd_train)

    pr = verbs.add_parser("predict", help="class probabilities for texts (or a file of series)")
    pr.add_argument("run", help="run directory written by 'rnnkit classify train'")
    pr.add_argument("texts", nargs="*", help="texts to classify")
    pr.add_argument("--file", help="a file of inputs: one text per line, or a .ts / long-format CSV of series")
    pr.set_defaults(func=cmd_predict)

    ev = verbs.add_parser("eval", help="metrics, per-class JSON and a confusion matrix on a labelled file")
    ev.add_argument("run", help="run directory written by 'rnnkit classify train'")
    ev.add_argument("--csv", help="labelled texts (text classifiers)")
    ev.add_argument("--series", help="labelled series: .ts or long-format CSV (series classifiers)")
    ev.add_argument("--text-col", help="text column of --csv (default: the run's own)")
    ev.add_argument("--label-col", help="label column (default: the run's own)")
    ev.add_argument("-o", "--output", metavar="DIR", help="directory for eval_metrics.json and eval_confusion.png "
                                           "(default: RUN/eval)")
    ev.set_defaults(func=cmd_eval)

    add_multilabel_commands(verbs)
