"""rnnkit textgen train|sample|eval: character and word language models, trained, sampled and scored.

A thin layer over rnnkit.tasks.TextGenerator: the train flags are the fields of TextGenConfig (its
training options as flat flags, the same in every task), the sample flags the fields of SampleConfig
(the arguments of TextGenerator.generate). A run directory written here loads in Python
(TextGenerator.load or rnnkit.load) and the other way round.

Only the configs are imported to build the parser (no torch: ``--help`` is instant); each command imports
the task when it runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from rnnkit import _checks
from rnnkit.config import (add_checkpoint_argument, add_config_arguments, add_old_flag, add_train_arguments,
                           config_from_args, given_fields)
from rnnkit.tasks.textgen.config import CHECKPOINTS, SampleConfig, TextGenConfig
from rnnkit.training.phases import phase

DEFAULT_RUN_DIR = "runs/textgen"
# Besides the budgets every task's resumed run may change: the per-epoch samples, which only report.
RESUME_FIELDS = ("sample_max_tokens", "sample_prompt")


def add_commands(sub) -> None:
    p = sub.add_parser("textgen", help="character/word language models: train, sample, eval",
                       description=__doc__.split("\n\n")[0])
    verbs = p.add_subparsers(dest="verb", metavar="<verb>")
    p.set_defaults(group_parser=p)

    t = verbs.add_parser("train", help="train a language model on a corpus (default: Shakespeare)",
                         description="Train a language model; the run directory gets checkpoints, metrics.jsonl, "
                                     "loss.png, config.json and tokenizer.json. Continue a run with "
                                     "--run-dir DIR --resume (a larger --max-minutes trains longer: the budget "
                                     "is the whole run's).")
    add_train_arguments(t, TextGenConfig, default_run_dir=DEFAULT_RUN_DIR)
    t.set_defaults(func=cmd_train)

    s = verbs.add_parser("sample", help="generate text from a trained run",
                         description="Stateful generation from a run directory: one step per token.")
    s.add_argument("run", help="run directory written by `rnnkit textgen train`")
    add_config_arguments(s, SampleConfig)
    s.set_defaults(func=cmd_sample)

    e = verbs.add_parser("eval", help="loss of a trained run on a text: bits/char or perplexity",
                         description="Loss on a held-out text (char level: bits/char; word level: perplexity).")
    e.add_argument("run", help="run directory written by `rnnkit textgen train`")
    e.add_argument("--corpus", default=None, help="text file to evaluate on (default: the run's validation text: "
                                                  "its --val-file, or the held-out last part of its own corpus)")
    e.add_argument("--encoding", default="utf-8", help="text encoding of --corpus (default: %(default)s)")
    add_checkpoint_argument(e)
    add_old_flag(e, "--weights", "--checkpoint", dest="checkpoint", choices=CHECKPOINTS)
    e.set_defaults(func=cmd_eval)


def cmd_train(args: argparse.Namespace) -> int:
    from rnnkit.tasks.base import stop_if_interrupted, train_config_from_args
    from rnnkit.tasks.textgen.task import TextGenerator

    # With --resume: the run's own config, with only the budgets (and the sample flags) from the command line.
    if args.val_file is not None and "val_frac" in given_fields(args):
        _checks.fail("--val-frac", args.val_frac, "no --val-frac with --val-file (the file is the validation "
                                                  "text and all the corpus trains)")
    config = train_config_from_args(TextGenerator, args, resume_fields=RESUME_FIELDS)
    if args.resume and args.dry_run:
        _checks.fail("--dry-run", True, "no --dry-run with --resume (a dry run is a fresh smoke test)")
    gen = TextGenerator(config).fit(run_dir=args.run_dir, resume=args.resume, dry_run=args.dry_run)
    stop_if_interrupted(gen.trainer_, args.run_dir, TextGenerator.command())   # exit 130 with the resume command
    print(summary(gen) + "; " + (f"run saved in {args.run_dir}" if args.run_dir else "not saved"))
    return 0


def summary(gen) -> str:
    """The result of a training, in one line: the validation loss of the weights the model holds and which
    weights those are (the Trainer's end report has said why), the steps and what stopped them."""
    from rnnkit.tasks.textgen.task import weights_kept

    metrics, trainer = gen.metrics_, gen.trainer_
    unit = "char" if gen.config.level == "char" else "word"
    steps = f"{trainer.step} steps ({trainer.stop_reason})"
    if "val_loss" not in metrics:          # val_frac=0: nothing was validated
        return (f"no validation (val_frac=0): {weights_kept(trainer)} kept, training loss "
                f"{metrics['train_loss']:.4f} nats/{unit} over the last epoch; {steps}")
    loss = (f"{metrics['val_bits_per_char']:.4f} bits/char" if "val_bits_per_char" in metrics
            else f"perplexity {metrics['val_perplexity']:.1f}")
    return f"validation loss {metrics['val_loss']:.4f} nats/{unit} ({loss}) with {weights_kept(trainer)}; {steps}"


def cmd_sample(args: argparse.Namespace) -> int:
    from rnnkit.tasks.textgen.task import TextGenerator

    cfg = config_from_args(SampleConfig, args)
    gen = TextGenerator.load(args.run, checkpoint=cfg.checkpoint)
    phase("loaded")
    if cfg.max_tokens == 0:
        return 0                                    # nothing asked for (a request needs at least one token)
    # (--threads was applied by rnnkit.cli.main before this ran.) The rest is a request, applied as the HTTP
    # endpoint applies it: the same fields, the same answer.
    answer = gen.apply({f.name: getattr(cfg, f.name) for f in dataclasses.fields(gen.request_class)
                        if hasattr(cfg, f.name)})
    results = answer["results"]
    for i, result in enumerate(results):
        if len(results) > 1:
            print(f"----- sample {i + 1} -----")
        print(gen.join_seed(cfg.prompt, result["text"]))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rnnkit.tasks.textgen.data import held_out_text, load_corpus, load_val_text
    from rnnkit.tasks.textgen.task import TextGenerator

    gen = TextGenerator.load(args.run, checkpoint=args.checkpoint)
    phase("loaded")
    if args.corpus is not None:
        cfg = dataclasses.replace(gen.config, corpus=args.corpus, encoding=args.encoding)
        text, _ = load_corpus(cfg)
        where = args.corpus
    elif gen.config.val_file is not None:
        text, where = load_val_text(gen.config), gen.config.val_file        # what the run validated on
    elif gen.config.val_frac == 0:
        _checks.fail("--corpus", None, "a text file to evaluate on: this run trained on all of its corpus "
                                       "(val_frac=0) and held none out")
    else:
        text, _ = load_corpus(gen.config)
        # The same held-out part as training: the last val_frac of the text.
        text = held_out_text(text, gen.config.val_frac)
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
