"""`rnnkit classify multilabel train|eval|predict`: a subgroup of `rnnkit classify` (``add_commands``).

A thin layer over MultilabelClassifier: the flags are the fields of its config (training options included)
plus the data flags (a user's long-format file, or SYNTHETIC stays); a run directory written here loads in
Python with rnnkit.load(path), and the other way round.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnkit import _checks
from rnnkit.config import add_checkpoint_argument, add_config_arguments, add_train_arguments, field
from rnnkit.tasks.multilabel import data as mdata
from rnnkit.tasks.multilabel.config import MultilabelConfig

# The task imports torch: each command imports it when it runs, so that the parser (and every --help) is
# built without it.
if TYPE_CHECKING:
    from rnnkit.tasks.multilabel.task import MultilabelClassifier


@dataclass
class MultilabelDataConfig(mdata.FileConfig):
    num_stays: int = field(3000, "without --series: SYNTHETIC clinical-like stays to generate (not real patients; "
                                 f"at most {mdata.MAX_STAYS:,})")
    data_seed: int = field(0, f"without --series: seed of the synthetic data generator (0 to {_checks.MAX_SEED:,})")
    val_frac: float = field(0.1, "share of the stays held out for validation (best epoch, early stopping)")
    test_frac: float = field(0.2, "share of the stays held out for the test metrics")

    def __post_init__(self):
        # Checked before any stay is read or generated (SyntheticConfig checks them again).
        _check_stays(self.num_stays, self.data_seed)
        _checks.check_int("split_seed", self.split_seed, min=0, cap=_checks.MAX_SEED)
        _checks.check_float("val_frac", self.val_frac, min=0, max=1, max_open=True)
        _checks.check_float("test_frac", self.test_frac, min=0, max=1, max_open=True)


def _check_stays(num_stays, data_seed) -> None:
    _checks.check_int("num_stays", num_stays, min=1, cap=mdata.MAX_STAYS, allow_none=True)
    _checks.check_int("data_seed", data_seed, min=0, cap=_checks.MAX_SEED, allow_none=True)


def _say_synthetic(num_stays: int) -> None:
    print(f"SYNTHETIC data: {num_stays} generated clinical-like stays, {len(mdata.CHANNEL_NAMES)} channels, "
          f"{len(mdata.LABEL_NAMES)} labels (not real patients)", file=sys.stderr)


def _file_config(data: dict[str, Any]) -> mdata.FileConfig:
    """The file options a run was trained with (its config.json's data)."""
    return mdata.FileConfig(**{f.name: data[f.name] for f in dataclasses.fields(mdata.FileConfig) if f.name in data})


def cmd_multilabel_train(args) -> int:
    from rnnkit.tasks.base import data_config, train_config_from_args
    from rnnkit.tasks.multilabel.task import MultilabelClassifier, run_file, run_synthetic

    cfg = train_config_from_args(MultilabelClassifier, args)
    dcfg = data_config(MultilabelDataConfig, MultilabelClassifier, args)
    if dcfg.series is None:
        scfg = mdata.SyntheticConfig(num_stays=dcfg.num_stays, data_seed=dcfg.data_seed, val_frac=dcfg.val_frac,
                                  test_frac=dcfg.test_frac)
        _say_synthetic(scfg.num_stays)
        m = run_synthetic(cfg, scfg, args.run_dir, dry_run=args.dry_run, resume=args.resume, progress=None)
        print("test: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float)))
        return 0
    fcfg = mdata.FileConfig(**{f.name: getattr(dcfg, f.name) for f in dataclasses.fields(mdata.FileConfig)})
    m, data = run_file(cfg, fcfg, dcfg.val_frac, dcfg.test_frac, args.run_dir, dry_run=args.dry_run,
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


def _stays_to_score(clf: MultilabelClassifier, args, labelled: bool,
                    ) -> tuple[str, list, np.ndarray | None, list[str]]:
    """(what they are, stays, labels or None, ids): a file (--series), new synthetic stays (--num-stays /
    --data-seed), or else the run's own held-out test stays."""
    own_file = clf.data_.get("series")
    if args.series or (own_file and args.num_stays is None and args.data_seed is None):
        fcfg = _file_config(clf.data_)
        data = mdata.read_stay_file(fcfg, grid_step=clf.config.grid_step, labelled=labelled,
                                 categories=(clf.data_.get("encoding") or {}).get("categories") or {},
                                 series=args.series or own_file, labels=args.labels if args.series else None)
        if data.channels != clf.channels_:
            raise ValueError(f"{args.series or own_file}: its channels are {', '.join(data.channels)}; the model was "
                             f"trained on {', '.join(clf.channels_)}; expected the same columns")
        if args.series:
            return f"{len(data.ids)} stays of {args.series}", data.stays, data.Y, data.ids
        test = mdata.file_splits(data, clf.data_.get("val_frac", 0.1), clf.data_.get("test_frac", 0.2),
                              fcfg.split_seed, own_file)["test"]
        if not len(test):
            _checks.fail("series", None, f"a file of stays to score: the run's file {own_file} has no test stays")
        return (f"the run's {len(test)} held-out test stays of {own_file}", [data.stays[i] for i in test],
                data.Y[test], [data.ids[i] for i in test])
    if args.labels:
        _checks.fail("labels", args.labels, "a labels file together with --series FILE")
    if args.num_stays is None and args.data_seed is None:
        known = {f.name for f in dataclasses.fields(mdata.SyntheticConfig)}
        scfg = mdata.SyntheticConfig(**{k: v for k, v in clf.data_.items() if k in known})
        stays, Y, _ = mdata.synthetic_splits(scfg)["test"]
        _say_synthetic(len(stays))
        return (f"SYNTHETIC: the run's held-out test stays (data seed {scfg.data_seed})", stays, Y,
                [str(i + 1) for i in range(len(stays))])
    n = 600 if args.num_stays is None else args.num_stays
    seed = 1 if args.data_seed is None else args.data_seed
    _checks.check_int("num_stays", n, min=1)
    stays, Y, _ = mdata.make_clinical(n, seed=seed)
    _say_synthetic(n)
    return f"SYNTHETIC: {n} stays generated with data seed {seed}", stays, Y, [str(i + 1) for i in range(n)]


def cmd_multilabel_eval(args) -> int:
    from rnnkit.runs.checkpoint import RunDir
    from rnnkit.tasks.multilabel.task import MultilabelClassifier

    _check_stays(args.num_stays, args.data_seed)          # before the run is loaded
    clf = MultilabelClassifier.load(args.run, checkpoint=args.checkpoint)
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
    from rnnkit.tasks.multilabel.task import MultilabelClassifier

    _check_stays(args.num_stays, args.data_seed)          # before the run is loaded
    clf = MultilabelClassifier.load(args.run, checkpoint=args.checkpoint)
    source, stays, Y, ids = _stays_to_score(clf, args, labelled=False)
    # The request the HTTP endpoint takes (each stay's observations as JSON values), applied the same way.
    answer = clf.apply({"stays": [{"times": s.times.tolist(), "channels": s.channels.tolist(),
                                   "values": s.values.tolist(), "hours": float(s.hours)} for s in stays]})
    probs = np.array([[p["probabilities"][name] for name in answer["labels"]] for p in answer["predictions"]])
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
                   help="SYNTHETIC runs: generate this many new stays (default: 600 when --data-seed is given; "
                        f"at most {mdata.MAX_STAYS:,})")
    g.add_argument("--data-seed", type=int, default=None,
                   help="SYNTHETIC runs: seed of the generator for the new stays (default: 1 when --num-stays "
                        f"is given; 0 to {_checks.MAX_SEED:,})")


def add_commands(verbs) -> None:
    """Add `multilabel` and its verbs to the verbs of `rnnkit classify`."""
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
    add_train_arguments(t, MultilabelConfig, default_run_dir="runs/multilabel")
    t.set_defaults(func=cmd_multilabel_train)

    ev = sub.add_parser("eval", help="metrics of a multilabel run on labelled stays, as JSON")
    ev.add_argument("run", help="run directory written by 'rnnkit classify multilabel train'")
    _add_stays_choice(ev)
    ev.add_argument("-o", "--output", metavar="DIR", help="directory for eval_metrics.json (default: RUN/eval)")
    add_checkpoint_argument(ev)
    ev.set_defaults(func=cmd_multilabel_eval)

    pr = sub.add_parser("predict", help="the labels a multilabel run predicts for stays")
    pr.add_argument("run", help="run directory written by 'rnnkit classify multilabel train'")
    _add_stays_choice(pr)
    pr.add_argument("-o", "--output", metavar="FILE", help="write a CSV instead of printing: each stay's id and "
                                                           "a probability per label")
    add_checkpoint_argument(pr)
    pr.set_defaults(func=cmd_multilabel_predict)
