"""`rnnkit classify train|predict|eval`, and the subgroup `rnnkit classify multilabel train|eval|predict`
(rnnkit.tasks.multilabel.cli).

A thin layer over SequenceClassifier: the flags are the fields of its config
(training options included) plus the data flags; a run directory written here loads in Python with
rnnkit.load(path), and the other way round.

Honest reports: every figure printed or saved names the rows it comes from ("test accuracy ... (2,500
held-out test rows)"), and none is computed on rows the model was fit on.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rnnkit import _checks
from rnnkit.config import add_checkpoint_argument, add_config_arguments, add_train_arguments
from rnnkit.tasks.classify.config import ClassifyConfig, DataConfig
from rnnkit.training.phases import phase
from rnnkit.tasks.multilabel.cli import add_commands as add_multilabel_commands

# The task and its data readers import torch and numpy: each command imports them when it runs, so that the
# parser (and every --help) is built from the configs alone.
if TYPE_CHECKING:
    from rnnkit.tasks.classify.task import SequenceClassifier

DESCRIPTION = ("Sequence classification (many to one): sentiment of a review, the activity behind a sensor "
               "trace; and multilabel classification of SYNTHETIC clinical-like series.")


NO_EPOCHS = ("bow", "rocket")    # models fit in one go, with no use for validation rows


# ---------------------------------------------------------------------------------------------------------
# rnnkit classify train | predict | eval
# ---------------------------------------------------------------------------------------------------------

def cmd_train(args) -> int:
    import numpy as np

    from rnnkit.tasks.base import data_config, stop_if_interrupted, train_config_from_args
    from rnnkit.tasks.classify.data import Split, load_data, small_sample
    from rnnkit.tasks.classify.task import SequenceClassifier

    if args.resume:
        _refuse_finished_tournament(args.run_dir)
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
    if not len(val) and cfg.model not in NO_EPOCHS and (cfg.model != "auto" or cfg.encoder_from):
        print(f"no validation rows: training all {cfg.train.epochs} epochs and keeping the last weights",
              file=sys.stderr)
    info = {**dataclasses.asdict(dcfg), "source": data.source, "stats": data.stats, "encoding": data.encoding,
            "sizes": {k: len(getattr(data, k)) for k in ("train", "val", "test")},
            **({"class_names": data.class_names} if data.class_names else {})}
    if data.class_names:
        print(f"{data.source}: classes " + ", ".join(f"{k} = {v}" for k, v in data.class_names.items()) +
              " (the names the data set gives them)", file=sys.stderr)
    auto = cfg.model == "auto" and cfg.encoder_from is None     # --encoder-from: the language model's network
    clf = SequenceClassifier(cfg).fit(train.X, train.y, (val.X, val.y), run_dir=args.run_dir, resume=args.resume,
                                      dry_run=args.dry_run, data_info=info, refit_baselines=len(test) > 0,
                                      report_rows=len(test) or len(val))
    # Ctrl-C (or SIGTERM) stopped training: no test evaluation; exit 130 with the command that goes on.
    stop_if_interrupted(clf.trainer_, args.run_dir, SequenceClassifier.command())
    model = clf.config.model
    done = f"trained {clf.train_seconds_:.1f} s; run in {args.run_dir}"
    if auto:
        from rnnkit.tasks.classify.auto import Entry, format_table

        t = clf.tournament_
        if len(t["candidates"]) == 1:
            other = "bigru" if clf.kind_ == "text" else "conv1d gru"
            print(f"model auto: {model}, the default for {'texts' if clf.kind_ == 'text' else 'series'}: no network "
                  f"beat it on the registered data sets "
                  f"(--candidates {model} {other} runs a tournament on this data)")
        else:
            print(f"model auto: {model}, picked on {t['selection']} among {', '.join(t['candidates'])}:")
            print("\n".join("  " + line for line in format_table([Entry.from_row(r) for r in t["table"]])))
    # Figures only on rows the model was not fit on, each labelled with the rows it comes from.
    if len(test):
        name, part, rows = "test", test, "held-out test rows"
    elif len(val):
        name, part = "val", val
        picked = "the model and its best epoch" if auto else "the best epoch"
        rows = ("validation rows (held out from training" +
                (f"; used to pick {picked})" if model not in NO_EPOCHS or auto else ")") + "; no test rows")
    else:
        print("no held-out rows (--val-frac 0, --test-frac 0 and no split of your own): no metrics reported, "
              "since a metric on the rows the model was fit on says nothing about new data", file=sys.stderr)
        print(f"{model}: {done}")
        return 0
    if args.dry_run:
        part = Split(*small_sample(part.X, part.y, 16))
    rows = f"{len(part):,} {rows}"
    m = clf.report(part.X, part.y, args.run_dir, name, rows=rows)
    label = "test" if name == "test" else "validation"
    line = f"{model}: {label} accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}"
    if "roc_auc" in m:
        line += f", ROC AUC {m['roc_auc']:.4f}"
    print(line + f" ({rows}); {done}")
    print(f"per-class recall ({label} rows): " +
          ", ".join(f"{c} {v['recall']:.2f} (n={v['support']})" if v["support"] else f"{c} - (n=0)"
                    for c, v in m["per_class"].items()))
    if cfg.seeds > 1:
        _report_seeds(clf, part, label, rows, args.run_dir)
    return 0


def _report_seeds(clf: SequenceClassifier, part, label: str, rows: str, run_dir: str | None) -> None:
    """--seeds N: each seed's accuracy on the held-out rows, their mean ± sd, and the averaged probabilities."""
    import numpy as np

    r = clf.seed_report(part.X, part.y)
    vals = [m.__dict__.get("metrics_", {}).get("val_accuracy") for m in clf.seed_models_]
    n = len(r["seeds"])
    if all(v is not None for v in vals):
        print(f"{clf.config.model}: validation accuracy over {n} seeds {np.mean(vals):.4f} ± "
              f"{np.std(vals, ddof=1):.4f} (mean ± sd)")
    print(f"{clf.config.model}: {label} accuracy over {n} seeds {r['mean']:.4f} ± {r['sd']:.4f} (mean ± sd; "
          f"seeds {', '.join(map(str, r['seeds']))}; {rows}); the seeds' averaged probabilities: "
          f"{r['averaged_probabilities']:.4f} (an ensemble, not the run's model: the run keeps seed "
          f"{r['seeds'][0]}'s)")
    if run_dir is not None:
        from rnnkit.runs.checkpoint import RunDir
        from rnnkit.runs.io import atomic_write_text

        lines = [f"seed,val_accuracy,{label}_accuracy"] + [
            f"{s},{'' if v is None else f'{v:.6f}'},{a:.6f}" for s, v, a in zip(r["seeds"], vals, r["accuracy"])]
        atomic_write_text(RunDir(run_dir).file("seeds.csv"), "\n".join(lines) + "\n")
        report = RunDir(run_dir).file(f"{'test' if label == 'test' else 'val'}_metrics.json")
        if report.is_file():
            doc = json.loads(report.read_text(encoding="utf-8"))
            doc["seeds"] = {**r, "val_accuracy": vals, "averaged_probabilities_note": "the mean of the seeds' "
                            "probabilities, an ensemble; the run's model is the first seed's"}
            RunDir(run_dir).write_json(report.name, doc)


def _refuse_finished_tournament(run_dir: str | None) -> None:
    """--resume on a finished --model auto run: its tournament is over and its model saved; nothing goes on."""
    from rnnkit.runs.checkpoint import RunDir
    from rnnkit.runs.schema import is_finished, read_run_config

    if run_dir is None or not RunDir(run_dir).config_path.is_file():
        return
    doc = read_run_config(run_dir)
    tournament = doc.get("fitted", {}).get("tournament")
    if tournament and is_finished(doc):
        raise ValueError(f"{run_dir}: a finished --model auto run (its tournament picked {tournament['picked']}); "
                         f"expected an unfinished run to resume: train again with --overwrite (a larger "
                         f"--max-minutes gives the networks more time), or --model {tournament['picked']} in "
                         f"another --run-dir")


def _read_predict_inputs(clf: SequenceClassifier, args) -> tuple[list, list[str], list[str]]:
    """(inputs, ids or row numbers, what to show for each)."""
    from rnnkit.tasks.classify.data import read_series_for

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
    import numpy as np

    from rnnkit.tasks.classify.task import SequenceClassifier

    clf = SequenceClassifier.load(args.run, checkpoint=args.checkpoint)
    X, ids, shown = _read_predict_inputs(clf, args)
    # The request the HTTP endpoint takes, applied the same way: one answer per input.
    answer = clf.apply({"texts": X} if clf.kind_ == "text" else {"series": X})
    probs = np.array([[p["probabilities"][c] for c in answer["classes"]] for p in answer["predictions"]])
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
    import numpy as np

    from rnnkit.tasks.classify.data import read_series_for, read_text_csv
    from rnnkit.tasks.classify.task import SequenceClassifier

    clf = SequenceClassifier.load(args.run, checkpoint=args.checkpoint)
    phase("loaded")
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
    names = clf.data_.get("class_names") or {}
    if names and set(map(str, y)) <= set(names):
        # The labels as the data set stores them (IMDB's 0/1): the model knows them by their names.
        y = np.array([names[str(label)] for label in y], dtype=str)
        print(f"{source}: labels read as the data set's class names (" +
              ", ".join(f"{k} = {v}" for k, v in names.items()) + ")", file=sys.stderr)
    unknown = sorted({str(label) for label in y} - {str(c) for c in clf.classes_})
    if unknown:          # named by the file here: evaluate() does not know where the labels came from
        shown = ", ".join(repr(u) for u in unknown[:5])
        shown += f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise ValueError(f"{source}: label(s) {shown} are not classes of the model in {args.run}; expected the "
                         f"classes it was trained on: {', '.join(repr(str(c)) for c in clf.classes_)}")
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
# The command group
# ---------------------------------------------------------------------------------------------------------

def add_commands(sub) -> None:
    p = sub.add_parser("classify", help="sequence classification: train, predict, eval; multilabel",
                       description=DESCRIPTION)
    p.set_defaults(group_parser=p)
    verbs = p.add_subparsers(dest="verb", metavar="<verb>")

    t = verbs.add_parser("train", help="train a classifier and report test metrics")
    add_config_arguments(t, DataConfig, title="data")
    add_train_arguments(t, ClassifyConfig, default_run_dir="runs/classify")
    t.set_defaults(func=cmd_train)

    pr = verbs.add_parser("predict", help="class probabilities for texts (or a file of series)")
    pr.add_argument("run", help="run directory written by 'rnnkit classify train'")
    pr.add_argument("texts", nargs="*", help="texts to classify")
    pr.add_argument("--file", help="a file of inputs: one text per line, or a .ts / long-format CSV of series")
    pr.add_argument("-o", "--output", metavar="FILE", help="write a CSV instead of printing: each input's id (or "
                                                           "row number), the predicted class, a probability per class")
    add_checkpoint_argument(pr)
    pr.set_defaults(func=cmd_predict)

    ev = verbs.add_parser("eval", help="metrics, per-class JSON and a confusion matrix on a labelled file")
    ev.add_argument("run", help="run directory written by 'rnnkit classify train'")
    ev.add_argument("--csv", help="labelled texts (text classifiers)")
    ev.add_argument("--series", help="labelled series: .ts or long-format CSV (series classifiers)")
    ev.add_argument("--text-col", help="text column of --csv (default: the run's own)")
    ev.add_argument("--label-col", help="label column (default: the run's own)")
    ev.add_argument("-o", "--output", metavar="DIR", help="directory for eval_metrics.json and eval_confusion.png "
                                           "(default: RUN/eval)")
    add_checkpoint_argument(ev)
    ev.set_defaults(func=cmd_eval)

    add_multilabel_commands(verbs)
