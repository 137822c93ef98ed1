"""`rnnkit vqa train|ask|eval`: visual question answering, an image and a question in words -> a one-word answer.

A thin layer over VisualQA: the flags are the fields of its config (training options included) plus the data
flags; a run directory written here loads in Python with rnnkit.load(path), and the other way round. ``ask`` is
also spelled ``predict``, the apply verb of the other tasks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rnnkit.config import add_checkpoint_argument, add_config_arguments, add_train_arguments
from rnnkit.tasks.vqa.config import DataConfig, VQAConfig
from rnnkit.training.phases import phase

MAX_EVAL_SCENES = 100_000      # eval renders its test scenes again: 100,000 is about 30 s of drawing

DESCRIPTION = ("Visual question answering (two inputs to one): a CNN reads the image, a recurrent layer the "
               "question, a merge (the question modulating the image's features (FiLM), attention over the "
               "image's grid guided by the question, a relation network, concatenation, or none) and an MLP give a "
               "one-word answer. Trains on Sort-of-CLEVR scenes that rnnkit renders (synthetic), or on your CSV of "
               "image,question,answer rows.")
HELP = "visual question answering (image + question -> answer): train, ask, eval"


def _summary(name: str, data) -> str:
    import numpy as np
    return f"{name} {len(data):,} questions on {len(np.unique(data.image_index)):,} images"


def _read_parts(dcfg, image_size: int):
    """(train, val, test, source) from the data flags."""
    from rnnkit.datasets.sort_of_clevr import make_splits
    from rnnkit.tasks.vqa.data import read_csv, split_by_image

    if dcfg.train:
        train = read_csv(dcfg.train, image_size)
        if dcfg.dev:
            val = read_csv(dcfg.dev, image_size)
        else:
            train, val = split_by_image(train, dcfg.val_frac, dcfg.split_seed)
        test = read_csv(dcfg.test, image_size) if dcfg.test else None
        return train, val, test, dcfg.train
    train, val, test = make_splits(dcfg.scenes, dcfg.val_scenes, dcfg.test_scenes, seed=dcfg.data_seed)
    return train, (val if len(val) else None), (test if len(test) else None), \
        f"sort-of-clevr (rendered, seed {dcfg.data_seed})"


def _figures(m: dict) -> str:
    text = f"accuracy {m['accuracy']:.4f}"
    for name in ("nonrelational", "relational"):
        if f"{name}_accuracy" in m:
            text += f", {name.replace('nonrel', 'non-rel')} {m[f'{name}_accuracy']:.4f}"
    return text


def cmd_train(args) -> int:
    import dataclasses

    from rnnkit.tasks.base import data_config, stop_if_interrupted, train_config_from_args
    from rnnkit.tasks.vqa.task import VisualQA

    cfg = train_config_from_args(VisualQA, args)
    dcfg = data_config(DataConfig, VisualQA, args)
    if args.dry_run and not dcfg.train:
        dcfg = dataclasses.replace(dcfg, scenes=min(dcfg.scenes, 8), val_scenes=min(dcfg.val_scenes, 4),
                                   test_scenes=min(dcfg.test_scenes, 4))
    train, val, test, source = _read_parts(dcfg, cfg.image_size)
    parts = [_summary("training", train), _summary("validation", val) if val is not None else "no validation",
             _summary("test", test) if test is not None else "no test questions"]
    print(f"{source}: " + ", ".join(parts), file=sys.stderr)
    info = {**dataclasses.asdict(dcfg), "source": source}
    model = VisualQA(cfg).fit(train, val, run_dir=args.run_dir, resume=args.resume, dry_run=args.dry_run,
                              data_info=info)
    stop_if_interrupted(model.trainer_, args.run_dir, VisualQA.command())
    done = f"trained {model.train_seconds_:.1f} s; run in {args.run_dir}"
    part, name = (test, "test") if test is not None else (val, "val")
    if part is None:
        print("no held-out questions: no metrics reported", file=sys.stderr)
        print(f"vqa: {done}")
        return 0
    m = model.evaluate(part)
    from rnnkit.runs.checkpoint import RunDir
    RunDir(args.run_dir).write_json(f"{name}_metrics.json", m)
    label = "test" if name == "test" else "validation (used to pick the best epoch)"
    print(f"{cfg.merge}: {label} {_figures(m)} ({len(part):,} questions); {done}")
    return 0


def cmd_ask(args) -> int:
    from rnnkit.datasets.images import read_image
    from rnnkit.tasks.vqa.task import VisualQA

    model = VisualQA.load(args.run, checkpoint=args.checkpoint)
    phase("loaded")
    image = read_image(args.image, name="image")
    out = model.ask(image, args.question)
    top = sorted(out["probabilities"].items(), key=lambda kv: -kv[1])[:3]
    print(out["answer"])
    print("  " + ", ".join(f"{a} {p:.3f}" for a, p in top)
          + (f"; unknown words: {' '.join(out['unknown_words'])}" if out["unknown_words"] else ""), file=sys.stderr)
    return 0


def cmd_eval(args) -> int:
    from rnnkit.runs.checkpoint import RunDir
    from rnnkit import _checks
    from rnnkit.tasks.vqa.task import VisualQA

    _checks.check_int("test_scenes", args.test_scenes, min=1, cap=MAX_EVAL_SCENES)     # before the run is read
    model = VisualQA.load(args.run, checkpoint=args.checkpoint)
    phase("loaded")
    if args.test:
        from rnnkit.tasks.vqa.data import read_csv
        data, source = read_csv(args.test, model.config.image_size), args.test
    else:
        from rnnkit.datasets.sort_of_clevr import make_splits
        saved = model.data_
        seed = saved.get("data_seed", 0)
        _, _, data = make_splits(1, 1, args.test_scenes, seed=seed)
        source = f"sort-of-clevr test scenes (seed {seed}, {args.test_scenes:,} scenes)"
    m = model.evaluate(data)
    out = Path(args.output) if args.output else Path(args.run) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    RunDir(out).write_json("eval_metrics.json", {"source": source, **m})
    print(json.dumps({"source": source, **m}))
    print(f"report written to {out}", file=sys.stderr)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("vqa", help=HELP, description=DESCRIPTION)
    p.set_defaults(group_parser=p)
    verbs = p.add_subparsers(dest="verb", metavar="<verb>")

    t = verbs.add_parser("train", help="train on Sort-of-CLEVR scenes or your CSV; report test accuracy")
    add_config_arguments(t, DataConfig, title="data")
    add_train_arguments(t, VQAConfig, default_run_dir="runs/vqa")
    t.set_defaults(func=cmd_train)

    a = verbs.add_parser("ask", aliases=["predict"], help="answer a question about an image")
    a.add_argument("run", help="run directory written by 'rnnkit vqa train'")
    a.add_argument("image", help="the image file (PNG, JPEG, ...; greyscale and RGBA are converted)")
    a.add_argument("question", help="the question, in words (quote it)")
    add_checkpoint_argument(a)
    a.set_defaults(func=cmd_ask)

    ev = verbs.add_parser("eval", help="accuracy overall, non-relational, relational and per question kind")
    ev.add_argument("run", help="run directory written by 'rnnkit vqa train'")
    ev.add_argument("--test", help="a CSV of image,question,answer rows (default: the run's Sort-of-CLEVR test "
                                   "scenes, rendered again from its seed)")
    ev.add_argument("--test-scenes", type=int, default=1000, help="without --test: how many test scenes (at most "
                                                                f"{MAX_EVAL_SCENES:,})")
    ev.add_argument("-o", "--output", metavar="DIR", help="directory for eval_metrics.json (default: RUN/eval)")
    add_checkpoint_argument(ev)
    ev.set_defaults(func=cmd_eval)
