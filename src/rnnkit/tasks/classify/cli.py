"""`rnnkit classify train|predict|eval` and `rnnkit classify multilabel train|eval|predict`.

A thin layer over SequenceClassifier and MultilabelClassifier: the flags are the fields of their configs
(training options included) plus the data flags; a run directory written here loads in Python with
rnnkit.load(path), and the other way round.

Honest reports: every figure printed or saved names the rows it comes from ("test accuracy ... (2,500
held-out test rows)"), and none is computed on rows the model was fit on.
"""

from __future__ import annotations

import argparse
import csv
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
from rnnkit.tasks.classify.data import (SPLIT_NAMES, TIME_INPUTS, Split, load_data, read_series_for, read_text_csv,
                                        small_sample)
from rnnkit.tasks.classify.task import SequenceClassifier

DESCRIPTION = ("Sequence classification (many to one): sentiment of a review, the activity behind a sensor "
               "trace; and multilabel classification of SYNTHETIC clinical-like series.")


NO_EPOCHS = ("bow", "rocket")    # models fit in one go, with no use for validation rows


@dataclass
class DataConfig:
    dataset: Optional[str] = field(None, "a named dataset: imdb or rotten-tomatoes (texts); basic-motions, "
                                         "arrow-head, gun-point, italy-power-demand, osu-leaf or acsf1 (series, "
                                         "with their own train/test split)")
    csv: Optional[str] = field(None, "a CSV/TSV file of texts with a header (see --text-col, --label-col)")
    series: Optional[str] = field(None, "numeric sequences: a .ts file (a NAME_TEST.ts next to NAME_TRAIN.ts is "
                                        "its test set) or a long-format CSV (id, step, channels..., label)")
    text_col: str = field("text", "text column of --csv")
    label_col: str = field("label", "label column of --csv or --series")
    id_col: str = field("id", "sequence id column of a long-format --series CSV")
    step_col: Optional[str] = field("step", "time-step column of a long-format --series CSV: numbers or ISO "
                                            "timestamps (read as hours); None: file order")
    channels: list[str] = field([], "input columns of a long-format --series CSV (none given: every column "
                                    "but the id, step, label and split columns); text columns are one-hot encoded")
    exclude: list[str] = field([], "columns of a long-format --series CSV to leave out of the inputs (e.g. one "
                                   "that gives the label away)")
    time_input: str = field("none", "the step column as an input: none (it only orders rows), elapsed (time "
                                    "since the previous row, for irregular visits) or grid (resample to slots of "
                                    "--grid-step, forward fill, missing-value indicators)", choices=TIME_INPUTS)
    grid_step: float = field(1.0, "slot width of --time-input grid, in the step column's units (hours for "
                                  "timestamps)")
    split_col: Optional[str] = field(None, "a column saying which rows are for training, validation and test "
                                           "(values: --split-names); the file's own split, used as it is")
    split_names: str = field(SPLIT_NAMES, "the values of --split-col for training, validation and test rows, "
                                          "comma-separated")
    test_csv: Optional[str] = field(None, "a CSV of test texts (same columns as --csv): the test set")
    test_series: Optional[str] = field(None, "a file of test series (same format as --series): the test set")
    val_frac: float = field(0.1, "fraction held out for validation (early stopping; with a split of your own: "
                                 "of the training rows, when it marks none); 0: no validation, the last epoch's "
                                 "weights are kept")
    test_frac: float = field(0.2, "fraction held out for the test report (unless the data has its own split)")
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
                     test_frac=dcfg.test_frac, seed=dcfg.split_seed, split_col=dcfg.split_col,
                     split_names=dcfg.split_names, test_csv=dcfg.test_csv, test_series=dcfg.test_series,
                     channels=dcfg.channels, exclude=dcfg.exclude, time_input=dcfg.time_input,
                     grid_step=dcfg.grid_step)
    print(data.summary(), file=sys.stderr)
    for line in data.encoding.get("report", []):
        print(f"{data.source}: {line}", file=sys.stderr)
    train, val, test = data.train, data.val, data.test
    if cfg.model in NO_EPOCHS and len(val) and len(test):
        # bow and rocket have no epochs to stop early: with test rows to report on, they train on train +
        # validation (the data a neural model sees in all). Without test rows they train on train only and
        # report validation.
        train, val = Split(train.X + val.X, np.concatenate([train.y, val.y])), Split([], val.y[:0])
    if not len(val) and cfg.model not in NO_EPOCHS:
        print(f"no validation rows: training all {cfg.train.epochs} epochs and keeping the last weights",
              file=sys.stderr)
    info = {**dataclasses.asdict(dcfg), "source": data.source, "stats": data.stats, "encoding": data.encoding,
            "sizes": {k: len(getattr(data, k)) for k in ("train", "val", "test")}}
    clf = SequenceClassifier(cfg).fit(train.X, train.y, (val.X, val.y), run_dir=args.run_dir, resume=args.resume,
                                      dry_run=args.dry_run, data_info=info)
    # Ctrl-C (or SIGTERM) stopped training: no test evaluation; exit 130 with the command that goes on.
    stop_if_interrupted(clf.trainer_, args.run_dir, SequenceClassifier.command())
    done = f"trained {clf.train_seconds_:.1f} s; run in {args.run_dir}"
    # Figures only on rows the model was not fit on, each labelled with the rows it comes from.
    if len(test):
        name, part, rows = "test", test, "held-out test rows"
    elif len(val):
        name, part = "val", val
        rows = ("validation rows (held out from training" +
                ("; used to pick the best epoch)" if cfg.model not in NO_EPOCHS else ")") + "; no test rows")
    else:
        print("no held-out rows (--val-frac 0, --test-frac 0 and no split of your own): no metrics reported, "
              "since a metric on the rows the model was fit on says nothing about new data", file=sys.stderr)
        print(f"{cfg.model}: {done}")
        return 0
    if args.dry_run:
        part = Split(*small_sample(part.X, part.y, 16))
    rows = f"{len(part):,} {rows}"
    m = clf.report(part.X, part.y, args.run_dir, name, rows=rows)
    label = "test" if name == "test" else "validation"
    line = f"{cfg.model}: {label} accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}"
    if "roc_auc" in m:
        line += f", ROC AUC {m['roc_auc']:.4f}"
    print(line + f" ({rows}); {done}")
    print(f"per-class recall ({label} rows): " +
          ", ".join(f"{c} {v['recall']:.2f} (n={v['support']})" if v["support"] else f"{c} - (n=0)"
                    for c, v in m["per_class"].items()))
    return 0


def _read_predict_inputs(clf: SequenceClassifier, args) -> tuple[list, list[str], list[str]]:
    """(inputs, ids or row numbers, what to show for each)."""
    if clf.kind_ == "text":
        texts = list(args.texts)
        rows = [f"arg {i + 1}" for i in range(len(texts))]
        if args.file:
            path = Path(args.file)
            if not path.is_file():
                raise FileNotFoundError(f"file={args.file!r}: no such file")
            lines = path.read_text(encoding="utf-8").splitlines()
            kept = [(i + 1, t) for i, t in enumerate(lines) if t.strip()]
            texts += [t for _, t in kept]
            rows += [str(n) for n, _ in kept]                     # the line number in the file
        if not texts:
            _checks.fail("texts", [], "at least one text, or --file FILE with one text per line")
        return texts, rows, texts
    if args.texts or not args.file:
        _checks.fail("texts", args.texts, "no texts for a series classifier; pass --file FILE (.ts or long CSV)")
    X, _, ids = read_series_for(clf.data_, args.file, labelled=False)
    return X, ids, [f"series {i}" for i in ids]


def cmd_predict(args) -> int:
    clf = SequenceClassifier.load(args.run)
    X, ids, shown = _read_predict_inputs(clf, args)
    probs = clf.predict_proba(X)
    if args.output:
        # One row per input: its id (long-format series) or row number, the predicted class, a probability per class.
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        id_name = "id" if clf.kind_ == "series" and not str(args.file).lower().endswith(".ts") else "row"
        with out.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow([id_name, "predicted"] + [f"p_{c}" for c in clf.classes_])
            for i, p in zip(ids, probs):
                w.writerow([i, clf.classes_[int(p.argmax())]] + [f"{q:.6f}" for q in p])
        print(f"{len(X)} predictions written to {out}", file=sys.stderr)
        return 0
    for what, p in zip(shown, probs):
        k = int(p.argmax())
        listed = ", ".join(f"{c} {q:.3f}" for c, q in zip(clf.classes_, p))
        what = what if len(what) <= 60 else what[:57] + "..."
        print(f"{clf.classes_[k]}\t({listed})\t{what}")
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
        data = {**clf.data_, **({"label_col": args.label_col} if args.label_col else {})}
        X, y, _ = read_series_for(data, args.series)
        source = args.series
    out = Path(args.output) if args.output else Path(args.run) / "eval"
    # The model cannot tell whether these rows were among its training rows: the report says whose rows they are.
    rows = f"{len(y):,} rows of {source}"
    m = clf.report(X, y, out, "eval", rows=rows)
    summary = {k: m[k] for k in ("n", "accuracy", "macro_f1", "roc_auc") if k in m}
    print(json.dumps({"source": source, "rows": rows, **summary,
                      "recall": {c: v["recall"] for c, v in m["per_class"].items()}}))
    print(f"report written to {out}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------------------
# rnnkit classify multilabel train | eval | predict (a user's file, or SYNTHETIC data)
# ---------------------------------------------------------------------------------------------------------

@dataclass
class MultilabelDataConfig(ml.FileConfig):
    num_stays: int = field(3000, "without --series: SYNTHETIC clinical-like stays to generate (not real patients)")
    data_seed: int = field(0, "without --series: seed of the synthetic data generator")
    val_frac: float = field(0.1, "share of the stays held out for validation (best epoch, early stopping)")
    test_frac: float = field(0.2, "share of the stays held out for the test metrics")


def _say_synthetic(num_stays: int) -> None:
    print(f"SYNTHETIC data: {num_stays} generated clinical-like stays, {len(ml.CHANNEL_NAMES)} channels, "
          f"{len(ml.LABEL_NAMES)} labels (not real patients)", file=sys.stderr)


def _file_config(data: dict[str, Any]) -> ml.FileConfig:
    """The file options a run was trained with (its config.json's data)."""
    return ml.FileConfig(**{f.name: data[f.name] for f in dataclasses.fields(ml.FileConfig) if f.name in data})


def cmd_multilabel_train(args) -> int:
    cfg = train_config_from_args(ml.MultilabelClassifier, args)
    dcfg = data_config(MultilabelDataConfig, ml.MultilabelClassifier, args)
    if dcfg.series is None:
        scfg = ml.SyntheticConfig(num_stays=dcfg.num_stays, data_seed=dcfg.data_seed, val_frac=dcfg.val_frac,
                                  test_frac=dcfg.test_frac)
        _say_synthetic(scfg.num_stays)
        m = ml.run_synthetic(cfg, scfg, args.run_dir, dry_run=args.dry_run, resume=args.resume, progress=None)
        print("test: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float)))
        return 0
    fcfg = ml.FileConfig(**{f.name: getattr(dcfg, f.name) for f in dataclasses.fields(ml.FileConfig)})
    m, data = ml.run_file(cfg, fcfg, dcfg.val_frac, dcfg.test_frac, args.run_dir, dry_run=args.dry_run,
                          resume=args.resume, progress=None)
    print(f"{fcfg.series}: {len(data.ids)} stays, {len(data.channels)} input channels ({', '.join(data.channels)}), "
          f"{len(data.labels)} labels ({', '.join(data.labels)})", file=sys.stderr)
    for line in data.report:
        print(f"{fcfg.series}: {line}", file=sys.stderr)
    if not m:
        print("no test stays (--test-frac 0 and no test rows in --split-col): no metrics reported")
        return 0
    print(f"{m['rows']}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float)))
    print("per-label recall (test stays): " + ", ".join(f"{k} {v:.2f}" if v is not None else f"{k} - (no positives)"
                                                         for k, v in m["recall"].items()))
    return 0


def _stays_to_score(clf: ml.MultilabelClassifier, args, labelled: bool,
                    ) -> tuple[str, list, np.ndarray | None, list[str]]:
    """(what they are, stays, labels or None, ids): a file (--series), new synthetic stays (--num-stays /
    --data-seed), or else the run's own held-out test stays."""
    own_file = clf.data_.get("series")
    if args.series or (own_file and args.num_stays is None and args.data_seed is None):
        fcfg = _file_config(clf.data_)
        data = ml.read_stay_file(fcfg, grid_step=clf.config.grid_step, labelled=labelled,
                                 categories=(clf.data_.get("encoding") or {}).get("categories") or {},
                                 series=args.series or own_file, labels=args.labels if args.series else None)
        if data.channels != clf.channels_:
            raise ValueError(f"{args.series or own_file}: its channels are {', '.join(data.channels)}; the model was "
                             f"trained on {', '.join(clf.channels_)}; expected the same columns")
        if args.series:
            return f"{len(data.ids)} stays of {args.series}", data.stays, data.Y, data.ids
        test = ml.file_splits(data, clf.data_.get("val_frac", 0.1), clf.data_.get("test_frac", 0.2),
                              fcfg.split_seed, own_file)["test"]
        if not len(test):
            _checks.fail("series", None, f"a file of stays to score: the run's file {own_file} has no test stays")
        return (f"the run's {len(test)} held-out test stays of {own_file}", [data.stays[i] for i in test],
                data.Y[test], [data.ids[i] for i in test])
    if args.labels:
        _checks.fail("labels", args.labels, "a labels file together with --series FILE")
    if args.num_stays is None and args.data_seed is None:
        known = {f.name for f in dataclasses.fields(ml.SyntheticConfig)}
        scfg = ml.SyntheticConfig(**{k: v for k, v in clf.data_.items() if k in known})
        stays, Y, _ = ml.synthetic_splits(scfg)["test"]
        _say_synthetic(len(stays))
        return (f"SYNTHETIC: the run's held-out test stays (data seed {scfg.data_seed})", stays, Y,
                [str(i + 1) for i in range(len(stays))])
    n = 600 if args.num_stays is None else args.num_stays
    seed = 1 if args.data_seed is None else args.data_seed
    _checks.check_int("num_stays", n, min=1)
    stays, Y, _ = ml.make_clinical(n, seed=seed)
    _say_synthetic(n)
    return f"SYNTHETIC: {n} stays generated with data seed {seed}", stays, Y, [str(i + 1) for i in range(n)]


def cmd_multilabel_eval(args) -> int:
    clf = ml.MultilabelClassifier.load(args.run)
    source, stays, Y, _ = _stays_to_score(clf, args, labelled=True)
    if Y is None:
        _checks.fail("series", args.series, "stays with labels: the run's label columns, or --labels FILE")
    m = clf.evaluate(stays, Y)
    out = RunDir(args.output if args.output else Path(args.run) / "eval")
    out.path.mkdir(parents=True, exist_ok=True)
    out.write_json("eval_metrics.json", {"rows": source, **m, "n": len(stays), "data": source})
    print(json.dumps({"source": source, "n": len(stays), **m}))
    print(f"report written to {out.path}", file=sys.stderr)
    return 0


def cmd_multilabel_predict(args) -> int:
    clf = ml.MultilabelClassifier.load(args.run)
    source, stays, Y, ids = _stays_to_score(clf, args, labelled=False)
    probs = clf.predict_proba(stays)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id"] + [f"p_{name}" for name in clf.labels_])
            for i, p in zip(ids, probs):
                w.writerow([i] + [f"{q:.6f}" for q in p])
        print(f"{len(stays)} predictions ({source}) written to {out}", file=sys.stderr)
        return 0
    for i, p in enumerate(probs):
        predicted = [f"{clf.labels_[j]} {p[j]:.2f}" for j in np.argsort(-p) if p[j] >= clf.config.threshold]
        true = "" if Y is None else "\ttrue: " + (", ".join(clf.labels_[j] for j in np.flatnonzero(Y[i])) or "-")
        print(f"stay {ids[i]} ({stays[i].hours:g} h, {len(stays[i].times)} observations)\t"
              f"predicted: {', '.join(predicted) or '-'}{true}")
    print(source, file=sys.stderr)
    return 0


def _add_stays_choice(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("stays to score (default: the run's own held-out test stays)")
    g.add_argument("--series", help="a long-format CSV of stays, with the columns the run was trained on")
    g.add_argument("--labels", help="with --series: a CSV of labels per id (default: the run's label columns)")
    g.add_argument("--num-stays", type=int, default=None,
                   help="SYNTHETIC runs: generate this many new stays (default: 600 when --data-seed is given)")
    g.add_argument("--data-seed", type=int, default=None,
                   help="SYNTHETIC runs: seed of the generator for the new stays (default: 1 when --num-stays "
                        "is given)")


def add_multilabel_commands(verbs) -> None:
    p = verbs.add_parser("multilabel", help="multilabel LSTM on irregular clinical-style series, your own file or "
                                            "SYNTHETIC stays (target replication, auxiliary outputs): train, eval, "
                                            "predict",
                         description="Multilabel classification of irregularly sampled clinical-style series "
                                     "(Lipton et al. 2015): a long-format file of your own (--series, with "
                                     "--label-cols or --labels), or SYNTHETIC generated stays with planted "
                                     "patterns (not real patients).")
    p.set_defaults(group_parser=p)
    sub = p.add_subparsers(dest="multilabel_verb", metavar="<verb>")

    t = sub.add_parser("train", help="read your stays (or generate synthetic ones), train, report test metrics")
    add_config_arguments(t, MultilabelDataConfig, title="data: your own file (--series), or SYNTHETIC stays")
    add_train_arguments(t, ml.MultilabelConfig, default_run_dir="runs/multilabel")
    t.set_defaults(func=cmd_multilabel_train)

    ev = sub.add_parser("eval", help="metrics of a multilabel run on labelled stays, as JSON")
    ev.add_argument("run", help="run directory written by 'rnnkit classify multilabel train'")
    _add_stays_choice(ev)
    ev.add_argument("-o", "--output", metavar="DIR", help="directory for eval_metrics.json (default: RUN/eval)")
    ev.set_defaults(func=cmd_multilabel_eval)

    pr = sub.add_parser("predict", help="the labels a multilabel run predicts for stays")
    pr.add_argument("run", help="run directory written by 'rnnkit classify multilabel train'")
    _add_stays_choice(pr)
    pr.add_argument("-o", "--output", metavar="FILE", help="write a CSV instead of printing: each stay's id and "
                                                           "a probability per label")
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
    pr.add_argument("-o", "--output", metavar="FILE", help="write a CSV instead of printing: each input's id (or "
                                                           "row number), the predicted class, a probability per class")
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
