"""`rnnkit caption train|describe|eval`: image captioning, a CNN encoder and a recurrent decoder.

A thin layer over rnnkit.tasks.Captioner: the train flags are the fields of CaptionConfig (training options as flat
flags, the same in every task), the describe and eval flags those of DescribeConfig (the arguments of
Captioner.describe). A run directory written here loads in Python (Captioner.load or rnnkit.load) and the other
way round. BLEU is printed on sacrebleu's 0-100 scale, and every report says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from rnnkit import _checks
from rnnkit.config import add_checkpoint_argument, add_config_arguments, add_train_arguments, config_from_args
from rnnkit.runs.io import atomic_write_json
from rnnkit.tasks.caption.config import CaptionConfig, DescribeConfig
from rnnkit.training.phases import phase

DEFAULT_RUN_DIR = "runs/caption"
HELP = "image captioning (CNN encoder, RNN decoder with attention): train, describe, eval"
EVAL_SKIPS = ("greedy", "temperature", "seed")


def add_commands(sub) -> None:
    p = sub.add_parser("caption", help=HELP, description=__doc__.split("\n\n")[0])
    p.set_defaults(group_parser=p)
    verbs = p.add_subparsers(dest="verb", metavar="<verb>")

    t = verbs.add_parser("train", help="train a captioner (default: digit strips, real handwriting)",
                         description="Train a captioner on digit-strips, scenes (synthetic) or a folder of photos "
                                     "with their captions (--images DIR --captions FILE, the Flickr8k layout); the "
                                     "run directory gets checkpoints, metrics.jsonl, loss.png, config.json, "
                                     "tokenizer.json, the model and the test report (test_metrics.json).")
    add_train_arguments(t, CaptionConfig, default_run_dir=DEFAULT_RUN_DIR)
    t.set_defaults(func=cmd_train)

    d = verbs.add_parser("describe", aliases=["predict"], help="caption images with a trained run",
                         description="Caption image files (PNG, JPEG, GIF, BMP, ...): greedy, sampled "
                                     "(--no-greedy) or beam search (--beam N). Each image is fitted to the "
                                     "training images' size (aspect ratio kept, centre cut).")
    d.add_argument("run", help="run directory written by `rnnkit caption train`")
    d.add_argument("images", nargs="+", help="image files to describe")
    d.add_argument("--attention-png", default=None, metavar="FILE",
                   help="draw, word by word, where the model looked (several images: FILE-1.png, FILE-2.png, ...)")
    add_config_arguments(d, DescribeConfig)
    add_checkpoint_argument(d)
    d.set_defaults(func=cmd_describe)

    e = verbs.add_parser("eval", help="BLEU-1..4 (sacrebleu, 0-100) and exact match of a trained run",
                         description="Score a run's captions: corpus BLEU-1..4 by sacrebleu on its 0-100 scale "
                                     "(every caption of an image is a reference), exact match and the captions cut "
                                     "at the cap. Writes eval.json into the run directory (or -o FILE).")
    e.add_argument("run", help="run directory written by `rnnkit caption train`")
    e.add_argument("--images", default=None, help="a folder of images to score (with --captions; default: the "
                                                  "held-out part of the run's own data, see --split)")
    e.add_argument("--captions", default=None, help="the captions of --images (Flickr8k layout or CSV)")
    e.add_argument("--split", default="test", choices=("test", "val", "compositional"),
                   help="without --images: which held-out part of the run's data (compositional: scenes whose "
                        "colour-shape pairs never occur in training) (default: %(default)s)")
    e.add_argument("-o", "--output", default=None, help="write the report here instead of RUN/eval.json")
    add_config_arguments(e, DescribeConfig, skip=EVAL_SKIPS)
    add_checkpoint_argument(e)
    e.set_defaults(func=cmd_eval)


def _summary(m: dict[str, Any]) -> str:
    bleu = ", ".join(f"BLEU-{n} {m[f'bleu{n}']:.2f}" for n in (1, 2, 3, 4))
    capped = f", {m['capped']} cut at the cap (no <end>)" if m["capped"] else ""
    return f"exact match {m['exact_match']:.4f}, {bleu} (sacrebleu, 0-100 scale){capped}"


def cmd_train(args: argparse.Namespace) -> int:
    from rnnkit.tasks.base import stop_if_interrupted, train_config_from_args
    from rnnkit.tasks.caption.task import TEST_REPORT, Captioner

    config = train_config_from_args(Captioner, args)
    if args.resume and args.dry_run:
        _checks.fail("--dry-run", True, "no --dry-run with --resume (a dry run is a fresh smoke test)")
    cap = Captioner(config).fit(run_dir=args.run_dir, resume=args.resume, dry_run=args.dry_run)
    stop_if_interrupted(cap.trainer_, args.run_dir, Captioner.command())
    trainer = cap.trainer_
    ending = f"{trainer.step} steps ({trainer.stop_reason}); " + (f"run saved in {args.run_dir}" if args.run_dir
                                                                  else "not saved")
    report = cap.__dict__.get("test_metrics_") or {}
    if not report:
        val = ", ".join(f"{k} {v:.4f}" for k, v in cap.metrics_.items())
        print(f"no test images: validation {val}; {ending}")
        return 0
    for example in report["test"]["examples"]:
        print(f"  {example['id']}: {example['caption']}   (reference: {example['reference']})", file=sys.stderr)
    for name, m in report.items():
        print(f"{name} ({m['images']:,} images, greedy): {_summary(m)}")
    print(ending + (f"; report in {Path(args.run_dir) / TEST_REPORT}" if args.run_dir else ""))
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from rnnkit.tasks.caption.task import Captioner

    cfg = config_from_args(DescribeConfig, args)
    cap = Captioner.load(args.run, checkpoint=args.checkpoint)
    phase("loaded")
    want = args.attention_png is not None
    if want and not cap.model_.attends:
        _checks.fail("--attention-png", args.attention_png, "a show-attend-tell run (this one is show-tell: its "
                                                            "decoder has no attention to draw)")
    for i, path in enumerate(args.images):
        _checks.require_file("image", path)
        image = cap._image(path, path)
        c = cap.caption(image, **dataclasses.asdict(cfg), return_attention=want, details=True)
        print(c.text if len(args.images) == 1 else f"{path}\t{c.text}")
        if c.capped:
            print(f"{path}: the caption reached the cap of {cfg.max_tokens or cap.cap_words()} words without "
                  f"writing <end>, and was cut there", file=sys.stderr)
        if want:
            out = _numbered(args.attention_png, i, len(args.images))
            plot_attention(image, c, out)
            print(f"attention written to {out}", file=sys.stderr)
    return 0


def _numbered(path: str, i: int, n: int) -> Path:
    p = Path(path)
    return p if n == 1 else p.with_name(f"{p.stem}-{i + 1}{p.suffix or '.png'}")


def plot_attention(image, caption, path: str | Path) -> None:
    """The image, then one panel per step: the word written there over the image, shaded where the model looked
    (each step's attention over the grid, stretched to the image; the last step wrote <end>)."""
    import numpy as np

    from rnnkit.report.plots import new_figure, save_png

    weights = np.asarray(caption.attention)                                  # (steps, h, w)
    H, W = image.shape[:2]
    rows = np.minimum(np.arange(H) * weights.shape[1] // H, weights.shape[1] - 1)
    cols = np.minimum(np.arange(W) * weights.shape[2] // W, weights.shape[2] - 1)
    labels = caption.words + ["<end>"]
    n = min(len(weights), len(labels)) + 1                       # the image, then one panel per step
    panel = 2.4 if W <= 1.5 * H else 4.0                         # inches: a wide strip gets wide panels
    per_row = max(1, min(n, int(12 // panel)))
    lines = -(-n // per_row)
    fig = new_figure(panel * per_row, (panel * H / W + 0.4) * lines)
    ax = fig.add_subplot(lines, per_row, 1)
    ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
    ax.set_title("image", fontsize=10)
    ax.axis("off")
    for k in range(n - 1):
        ax = fig.add_subplot(lines, per_row, k + 2)
        heat = weights[k][rows][:, cols]
        ax.imshow(np.clip(image, 0, 1) * 0.35 + 0.65 * (heat / max(float(heat.max()), 1e-8))[:, :, None],
                  interpolation="nearest")
        ax.set_title(labels[k], fontsize=10)
        ax.axis("off")
    save_png(fig, path)


def _eval_data(cap, args):
    """(ImageCaptions, what they are) to score."""
    from rnnkit.tasks.caption.data import load_splits

    if (args.images is None) != (args.captions is None):
        _checks.fail("--images" if args.images is None else "--captions", None,
                     "--images DIR and --captions FILE together")
    if args.images is not None:
        from rnnkit.datasets.images import read_caption_folder

        return read_caption_folder(args.images, args.captions, size=tuple(cap.image_shape_)), args.captions
    if not cap.data_.get("dataset") and not cap.data_.get("images"):
        _checks.fail("--images", None, "a folder to score with --captions (this run was trained on images passed "
                                       "in Python, so it has no held-out part to rebuild)")
    splits = load_splits(cap.config, only=args.split if cap.config.images is None else None)
    part = getattr(splits, args.split)
    if part is None or not len(part.ids):
        _checks.fail("--split", args.split, f"a held-out part with images ({splits.source} has none: "
                                            f"{'only scenes have one' if args.split == 'compositional' else 'test_frac or test_images is 0'}); "
                                            f"pass --split val or --images DIR --captions FILE")
    return part, f"the {args.split} part of {splits.source}"


def cmd_eval(args: argparse.Namespace) -> int:
    from rnnkit.tasks.caption.task import Captioner

    cfg = config_from_args(DescribeConfig, args)
    cap = Captioner.load(args.run, checkpoint=args.checkpoint)
    phase("loaded")
    data, source = _eval_data(cap, args)
    m = cap.evaluate(data, beam=cfg.beam, max_tokens=cfg.max_tokens)
    out = Path(args.output) if args.output else Path(args.run) / "eval.json"
    atomic_write_json(out, {"source": source, **m})
    print(json.dumps({"source": source, **{k: v for k, v in m.items() if k != "examples"}}))
    print(f"{source} ({m['decoding']}): {_summary(m)}; report written to {out}", file=sys.stderr)
    return 0
