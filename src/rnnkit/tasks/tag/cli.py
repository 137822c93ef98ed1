"""`rnnkit tag train|tag|eval`: sequence labelling, a tag for every token (or step of a series).

A thin layer over Tagger: the flags are the fields of its config (training options included) plus the data
flags; a run directory written here loads in Python with rnnkit.load(path), and the other way round. ``tag`` is
also spelled ``predict``, the apply verb of the other tasks.

Honest reports: every figure printed or saved names the sentences it comes from, and none is computed on
sentences the model was fit on.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from rnnkit import _checks
from rnnkit.config import add_checkpoint_argument, add_config_arguments, add_train_arguments
from rnnkit.tasks.tag.config import FORMATS, DataConfig, TagConfig
from rnnkit.training.phases import phase

DESCRIPTION = ("Sequence labelling (aligned many to many): a tag for every token of a sentence (part of speech, "
               "BIO/BIOES entities, chunks) or every step of a series. Reads CoNLL-U, token<TAB>tag columns and "
               "series CSVs.")
HELP = "sequence labelling (a tag per token or step): train, tag, eval"
TAG_FORMATS = FORMATS + ("text",)


# ---------------------------------------------------------------------------------------------------------
# rnnkit tag train | tag | eval
# ---------------------------------------------------------------------------------------------------------

def _read(path: str, dcfg, labelled: bool = True):
    from rnnkit.tasks.tag.data import read_tagged

    return read_tagged(path, dcfg.format, dcfg.tag_column, id_column=dcfg.id_column, labelled=labelled)


def _summary(name: str, data) -> str:
    steps = sum(len(x) for x in data.X)
    unit = "tokens" if data.X and isinstance(data.X[0], list) else "steps"
    return f"{name} {len(data):,} sentences ({steps:,} {unit})"


def _check_known_tags(data, tags: list[str], where: str) -> None:
    """Refuse a tag the model will not know (before training, so a test file does not fail after it)."""
    known = set(tags)
    for i, sent in enumerate(data.y):
        j = next((j for j, t in enumerate(sent) if t not in known), None)
        if j is not None:
            raise ValueError(f"{data.where(i, j)}: tag {sent[j]!r} occurs in no {where} sentence; expected the tags "
                             f"of the training data ({', '.join(sorted(known)[:20])}"
                             f"{' ...' if len(known) > 20 else ''})")


def cmd_train(args) -> int:
    from rnnkit.tasks.base import data_config, stop_if_interrupted, train_config_from_args
    from rnnkit.tasks.tag.data import detect_scheme, small_sample, split_validation
    from rnnkit.tasks.tag.task import Tagger

    cfg = train_config_from_args(Tagger, args)
    dcfg = data_config(DataConfig, Tagger, args)
    if not dcfg.train:
        _checks.fail("train", None, "a file of tagged sentences: --train FILE (CoNLL-U, token<TAB>tag columns or a "
                                    "series CSV)")
    train = _read(dcfg.train, dcfg)
    if dcfg.dev:
        val = _read(dcfg.dev, dcfg)
    else:
        train, val = split_validation(train, dcfg.val_frac, dcfg.split_seed)
    test = _read(dcfg.test, dcfg) if dcfg.test else None
    scheme = detect_scheme(train, cfg.scheme)
    if test is not None:
        if scheme != "none":
            detect_scheme(test, scheme)
        _check_known_tags(test, sorted({t for s in train.y + (val.y if val else []) for t in s}),
                          "training or validation")
    if scheme != "none" and (test is not None or val is not None):
        from rnnkit.tasks.tag.task import require_seqeval
        require_seqeval()                # before training, not after it: the report scores entities with it
    parts = [_summary("training", train)]
    parts.append(_summary("validation", val) if val is not None else "no validation sentences")
    parts.append(_summary("test", test) if test is not None else "no test file")
    print(f"{dcfg.train}: " + ", ".join(parts) + f"; tag scheme {scheme}", file=sys.stderr)
    if val is None:
        print(f"no validation sentences: training all {cfg.train.epochs} epochs and keeping the last weights",
              file=sys.stderr)
    info = {**dataclasses.asdict(dcfg), "source": dcfg.train,
            "sizes": {"train": len(train), "val": 0 if val is None else len(val),
                      "test": 0 if test is None else len(test)}}
    tagger = Tagger(cfg).fit(train, None, val, run_dir=args.run_dir, resume=args.resume, dry_run=args.dry_run,
                             data_info=info)
    # Ctrl-C (or SIGTERM) stopped training: no test evaluation; exit 130 with the command that goes on.
    stop_if_interrupted(tagger.trainer_, args.run_dir, Tagger.command())
    done = f"trained {tagger.train_seconds_:.1f} s; run in {args.run_dir}"
    if test is not None:
        name, part, rows = "test", test, f"sentences of {dcfg.test}"
    elif val is not None:
        name, part, rows = "val", val, "validation sentences (used to pick the best epoch); no test file"
    else:
        print("no held-out sentences (no --dev, --val-frac 0, no --test): no metrics reported, since a metric on "
              "the sentences the model was fit on says nothing about new text", file=sys.stderr)
        print(f"tagger: {done}")
        return 0
    if args.dry_run:
        part = small_sample(part, 16)
    rows = f"{len(part):,} {rows}"
    m = tagger.report(part, None, args.run_dir, name, rows=rows)
    label = "test" if name == "test" else "validation"
    print(f"{cfg.output_layer}: {label} {_figures(m)} ({rows}); {done}")
    _print_confusions(m)
    return 0


def _figures(m: dict) -> str:
    text = f"accuracy {m['accuracy']:.4f}"
    if m.get("unseen_tokens"):
        text += f", on words unseen in training {m['unseen_accuracy']:.4f} ({m['unseen_tokens']:,} tokens)"
    if "entity_f1" in m:
        text += (f", entity F1 {m['entity_f1']:.4f} (precision {m['entity_precision']:.4f}, recall "
                 f"{m['entity_recall']:.4f})")
    return text


def _print_confusions(m: dict, top: int = 5) -> None:
    pairs = m.get("confusions", [])[:top]
    if pairs:
        print("most confused (true -> predicted): " + ", ".join(
            f"{p['true']} -> {p['predicted']} {p['count']} ({100 * p['share_of_true']:.1f}% of {p['true']})"
            for p in pairs))


def _read_inputs(tagger, args):
    """(the data to tag, the format it was read in)."""
    from rnnkit.tasks.tag.data import Tagged, guess_format, read_tagged, read_text

    if args.texts and args.file:
        _checks.fail("texts", args.texts, "either sentences on the command line or --file, not both")
    if args.texts:
        if tagger.kind_ != "text":
            _checks.fail("texts", args.texts, "no texts for a series tagger; pass --file FILE (a series CSV)")
        X = [t.split() for t in args.texts]
        empty = next((i for i, s in enumerate(X) if not s), None)
        if empty is not None:
            raise ValueError(f"texts[{empty}]: an empty sentence; expected at least one token")
        return Tagged(X, None, "the command line", [[i + 1] * len(s) for i, s in enumerate(X)]), "text"
    if not args.file:
        _checks.fail("file", None, "sentences to tag: as arguments, or --file FILE")
    fmt = args.format
    if fmt == "auto":
        fmt = "text" if Path(args.file).name.lower().endswith(".txt") else guess_format(args.file)
    if fmt == "text":
        lines = read_text(args.file).splitlines()
        kept = [(n, line.split()) for n, line in enumerate(lines, start=1) if line.strip()]
        if not kept:
            raise ValueError(f"{args.file}: no sentences; expected one sentence per line")
        return Tagged([s for _, s in kept], None, args.file, [[n] * len(s) for n, s in kept]), fmt
    channels = tagger.channels_ or None
    if fmt == "series":
        from rnnkit.tasks.tag.data import read_series_csv
        return read_series_csv(args.file, args.tag_column or tagger.data_.get("tag_column"),
                               args.id_column or tagger.data_.get("id_column", "id"), labelled=False,
                               channels=channels), fmt
    return read_tagged(args.file, fmt, args.tag_column, labelled=False), fmt


def _write_conllu(source: str, tags: list[list[str]], column: str | None, out: Path) -> None:
    """The CoNLL-U file ``source`` with the predicted tags in ``column`` of every word line (multi-word token
    lines, empty nodes and comments as they were)."""
    from rnnkit.runs.io import atomic_write_text
    from rnnkit.tasks.tag.data import conllu_column, read_text

    col = conllu_column(column)
    flat = iter(t for sent in tags for t in sent)
    lines = []
    for line in read_text(source).splitlines():
        fields = line.split("\t")
        if len(fields) == 10 and fields[0].isdigit():
            fields[col] = next(flat)
            line = "\t".join(fields)
        lines.append(line)
    atomic_write_text(out, "\n".join(lines) + "\n")


def cmd_tag(args) -> int:
    from rnnkit.runs.io import atomic_write_text
    from rnnkit.tasks.tag.task import Tagger

    tagger = Tagger.load(args.run, checkpoint=args.checkpoint)
    phase("loaded")
    data, fmt = _read_inputs(tagger, args)
    tags = tagger.predict(data)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "conllu":
            _write_conllu(args.file, tags, args.tag_column or tagger.data_.get("tag_column"), out)
        elif tagger.kind_ == "series":
            rows = ["id,step,tag"] + [f"{i},{j},{t}" for i, sent in enumerate(tags) for j, t in enumerate(sent)]
            atomic_write_text(out, "\n".join(rows) + "\n")
        else:
            atomic_write_text(out, "\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(x, sent))
                                               for x, sent in zip(data.X, tags)) + "\n")
        print(f"{len(tags):,} sentences tagged, written to {out}", file=sys.stderr)
        return 0
    for x, sent in zip(data.X, tags):
        if tagger.kind_ == "text":
            print(" ".join(f"{w}/{t}" for w, t in zip(x, sent)))
        else:
            print(" ".join(sent))
    return 0


def cmd_eval(args) -> int:
    from rnnkit.tasks.tag.data import detect_scheme
    from rnnkit.tasks.tag.task import Tagger

    tagger = Tagger.load(args.run, checkpoint=args.checkpoint)
    phase("loaded")
    if not args.test:
        _checks.fail("test", None, "a file of tagged sentences to score: --test FILE")
    saved = tagger.data_
    dcfg = DataConfig(format=args.format if args.format != "auto" else saved.get("format", "auto"),
                      tag_column=args.tag_column or saved.get("tag_column"),
                      id_column=args.id_column or saved.get("id_column", "id"))
    data = _read(args.test, dcfg)
    if tagger.scheme_ != "none":
        detect_scheme(data, tagger.scheme_)
    out = Path(args.output) if args.output else Path(args.run) / "eval"
    # The model cannot tell whether these sentences were among its training sentences: the report says whose.
    rows = f"{len(data):,} sentences of {args.test}"
    m = tagger.report(data, None, out, "eval", rows=rows)
    summary = {k: m[k] for k in ("sentences", "tokens", "accuracy", "unseen_tokens", "unseen_accuracy",
                                 "entity_precision", "entity_recall", "entity_f1") if k in m}
    print(json.dumps({"source": args.test, "rows": rows, **summary,
                      "confusions": [[c["true"], c["predicted"], c["count"]] for c in m["confusions"][:5]]}))
    print(f"report written to {out}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------------------
# The command group
# ---------------------------------------------------------------------------------------------------------

def add_commands(sub) -> None:
    p = sub.add_parser("tag", help=HELP, description=DESCRIPTION)
    p.set_defaults(group_parser=p)
    verbs = p.add_subparsers(dest="verb", metavar="<verb>")

    t = verbs.add_parser("train", help="train a tagger and report test metrics")
    add_config_arguments(t, DataConfig, title="data")
    add_train_arguments(t, TagConfig, default_run_dir="runs/tag")
    t.set_defaults(func=cmd_train)

    tg = verbs.add_parser("tag", aliases=["predict"], help="tag sentences (or a file of them)")
    tg.add_argument("run", help="run directory written by 'rnnkit tag train'")
    tg.add_argument("texts", nargs="*", help="sentences to tag, each split into tokens at whitespace")
    tg.add_argument("--file", help="a file to tag: CoNLL-U, one token per line (a blank line between sentences), "
                                   "one sentence per line (*.txt), or a series CSV")
    tg.add_argument("--format", default="auto", choices=TAG_FORMATS,
                    help="format of --file: auto (conllu for *.conllu*, text for *.txt, series for *.csv*, else "
                         "columns), or one of them (default: %(default)s)")
    tg.add_argument("--tag-column", help="CoNLL-U output: the column the tags are written into (default: the run's "
                                         "own); series: the tag column to leave out of the inputs")
    tg.add_argument("--id-column", help="series CSV: the column naming each row's series (default: the run's own)")
    tg.add_argument("-o", "--output", metavar="FILE", help="write the tags instead of printing them: CoNLL-U "
                                                           "in, CoNLL-U out (the tag column filled); else "
                                                           "token<TAB>tag lines (series: a CSV of id, step, tag)")
    add_checkpoint_argument(tg)
    tg.set_defaults(func=cmd_tag)

    ev = verbs.add_parser("eval", help="accuracy, unseen-word accuracy, confusions and entity F1 on a tagged file")
    ev.add_argument("run", help="run directory written by 'rnnkit tag train'")
    ev.add_argument("--test", help="tagged sentences to score, in the run's format")
    ev.add_argument("--format", default="auto", choices=FORMATS,
                    help="format of --test (default: the run's own)")
    ev.add_argument("--tag-column", help="the tag column (default: the run's own)")
    ev.add_argument("--id-column", help="series CSV: the column naming each row's series (default: the run's own)")
    ev.add_argument("-o", "--output", metavar="DIR", help="directory for eval_metrics.json (default: RUN/eval)")
    add_checkpoint_argument(ev)
    ev.set_defaults(func=cmd_eval)
