"""``rnnkit textgen train|sample|eval``: a thin layer over :class:`rnnkit.tasks.textgen.task.TextGenerator`.

The train flags are the fields of :class:`~rnnkit.tasks.textgen.task.TextGenConfig`, the sample flags the
fields of :class:`SampleConfig` (the arguments of ``TextGenerator.generate``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from typing import Optional

from rnnkit import _checks
from rnnkit.runs.checkpoint import RunDir
from rnnkit.config import add_config_arguments, config_from_args, config_from_dict, field, given_fields
from rnnkit.tasks.textgen.task import TextGenConfig, TextGenerator, load_corpus


@dataclass
class SampleConfig:
    seed_text: str = field("", "text to continue ('' starts after an end token, e.g. a new colour name)")
    length: int = field(500, "tokens to generate per sample (a sample also ends at the corpus's end token)")
    temperature: float = field(0.5, "below 1 repeats the likeliest text, above 1 invents; 0 means greedy")
    top_k: Optional[int] = field(None, "sample only from the k most likely tokens (None: all)")
    top_p: Optional[float] = field(None, "sample only from the smallest set of tokens with this much "
                                         "probability (None: all)")
    greedy: bool = field(False, "always take the most likely token (same as --temperature 0)")
    beam: Optional[int] = field(None, "beam search with this many beams (None: sample)")
    num_samples: int = field(1, "samples generated together as one batch")
    random_seed: Optional[int] = field(None, "seed of the draws, for samples that repeat (None: random)")
    unknown: str = field("error", "seed text tokens the model never saw: error lists them, drop leaves them out",
                         choices=("error", "drop"))
    weights: str = field("best", "checkpoint to sample from", choices=("best", "last"))

    def __post_init__(self):
        _checks.check_int("length", self.length, min=0)
        _checks.check_int("num_samples", self.num_samples, min=1)


def add_commands(sub) -> None:
    p = sub.add_parser("textgen", help="character/word language models: train, sample, eval",
                       description=__doc__.split("\n\n")[0])
    verbs = p.add_subparsers(dest="verb", metavar="<verb>")
    p.set_defaults(group_parser=p)

    t = verbs.add_parser("train", help="train a language model on a corpus (default: Shakespeare)",
                         description="Train; the run directory gets checkpoints, metrics.jsonl, loss.png, "
                                     "config.json and tokenizer.json.")
    add_config_arguments(t, TextGenConfig)
    t.add_argument("--run-dir", default="runs/textgen", help="where the run is saved (default: %(default)s)")
    t.add_argument("--resume", metavar="RUN", default=None,
                   help="continue the run saved in RUN with its own config; --max-minutes (the budget of the "
                        "whole run, so give a larger one to train longer), --epochs, --precision, --log-every "
                        "and the sample flags may change")
    t.add_argument("--dry-run", action="store_true", help="train on one small batch and sample: a smoke test")
    t.set_defaults(func=cmd_train)

    s = verbs.add_parser("sample", help="generate text from a trained run",
                         description="Stateful generation from a run directory: one step per token.")
    s.add_argument("run", help="run directory written by `rnnkit textgen train`")
    add_config_arguments(s, SampleConfig)
    s.set_defaults(func=cmd_sample)

    e = verbs.add_parser("eval", help="loss of a trained run on a text: bits/char or perplexity",
                         description="Loss on a held-out text (char level: bits/char; word level: perplexity).")
    e.add_argument("run", help="run directory written by `rnnkit textgen train`")
    e.add_argument("--corpus", default=None, help="text file to evaluate on (default: the held-out last part of "
                                                  "the run's own corpus)")
    e.add_argument("--encoding", default="utf-8", help="text encoding of --corpus (default: %(default)s)")
    e.add_argument("--weights", default="best", choices=("best", "last"),
                   help="checkpoint to evaluate (default: %(default)s)")
    e.set_defaults(func=cmd_eval)


# What a resumed run may change: its budget and how it reports, never the model or the data.
RESUME_FIELDS = ("max_minutes", "epochs", "precision", "device", "log_every", "sample_length",
                 "sample_seed_text")


def resumed_config(run: RunDir, args: argparse.Namespace) -> TextGenConfig:
    """The run's saved config, with the RESUME_FIELDS given on the command line; other flags are refused."""
    cfg = config_from_dict(TextGenConfig, run.read_config()["textgen"], source=str(run.config_path))
    given = given_fields(args) & {f.name for f in dataclasses.fields(TextGenConfig)}
    fixed = sorted(given - set(RESUME_FIELDS))
    if fixed:
        name = fixed[0]
        _checks.fail(name, getattr(args, name), f"no --{name.replace('_', '-')} with --resume: the run keeps its "
                     f"own ({getattr(cfg, name)!r}); a resumed run may change only "
                     + ", ".join("--" + f.replace("_", "-") for f in RESUME_FIELDS))
    return dataclasses.replace(cfg, **{name: getattr(args, name) for name in given})


def cmd_train(args: argparse.Namespace) -> int:
    if args.resume:
        run = RunDir(args.resume)
        run.require("config.json", "tokenizer.json")
        cfg = resumed_config(run, args)
        gen = TextGenerator(cfg).fit(run_dir=args.resume, resume=True)
        run_dir = args.resume
    else:
        cfg = config_from_args(TextGenConfig, args)
        gen = TextGenerator(cfg).fit(run_dir=args.run_dir, dry_run=args.dry_run)
        run_dir = args.run_dir
    metrics = gen.metrics_
    print(f"validation loss {metrics['val_loss']:.4f} nats/token"
          + (f" ({metrics['val_bits_per_char']:.4f} bits/char)" if "val_bits_per_char" in metrics else
             f" (perplexity {metrics['val_perplexity']:.1f})")
          + f"; {gen.trainer_.step} steps ({gen.trainer_.stop_reason}); run saved in {run_dir}")
    if gen.trainer_.interrupted:
        print(f"resume with: rnnkit textgen train --resume {run_dir}")
        return 130
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    cfg = config_from_args(SampleConfig, args)
    gen = TextGenerator.load(args.run, weights=cfg.weights)
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "weights"}
    out = gen.generate(**options)
    samples = [out] if isinstance(out, str) else out
    for i, text in enumerate(samples):
        if len(samples) > 1:
            print(f"----- sample {i + 1} -----")
        print(gen.join_seed(cfg.seed_text, text))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    gen = TextGenerator.load(args.run, weights=args.weights)
    if args.corpus is not None:
        cfg = dataclasses.replace(gen.config, corpus=args.corpus, encoding=args.encoding)
        text, _ = load_corpus(cfg)
        where = args.corpus
    else:
        text, _ = load_corpus(gen.config)
        # The same held-out part as training: the last val_fraction of the tokens, cut at a character.
        text = text[int(len(text) * (1 - gen.config.val_fraction)):]
        where = "the held-out last part of the training corpus"
    result = gen.evaluate(text)
    if "bits_per_char" in result:
        print(f"{where}: {result['loss']:.4f} nats/char, {result['bits_per_char']:.4f} bits/char "
              f"over {result['tokens']:,} characters")
    else:
        print(f"{where}: {result['loss']:.4f} nats/word, perplexity {result['perplexity']:.2f} "
              f"over {result['tokens']:,} words")
    if result["unknown"]:
        print(f"({result['unknown']} tokens the model never saw were left out)", file=sys.stderr)
    return 0
