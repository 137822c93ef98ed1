"""rnnkit seq2seq train|translate|eval: encoder-decoders with attention, on number phrases, cmudict or your pairs.

A thin layer over rnnkit.tasks.Seq2Seq: the train flags are the fields of Seq2SeqConfig (its training options
as flat flags, the same in every task), the translate and eval flags those of DecodeConfig (the arguments of
Seq2Seq.translate). A run directory written here loads in Python (Seq2Seq.load or rnnkit.load) and the other
way round.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rnnkit import _checks
from rnnkit.config import (add_checkpoint_argument, add_config_arguments, add_train_arguments, config_from_args,
                           given_fields)
from rnnkit.runs.io import atomic_write_json
from rnnkit.tasks.seq2seq.config import MAX_GNMT_PENALTY, DecodeConfig, Seq2SeqConfig
from rnnkit.training.phases import phase

DEFAULT_RUN_DIR = "runs/seq2seq"
# Besides the budgets every task's resumed run may change: how much validation decodes, which only reports.
RESUME_FIELDS = ("val_decode",)
# What eval decodes with: one output per source, greedy or beam search (no sampling options).
EVAL_SKIPS = ("num_results", "greedy", "temperature", "top_k", "top_p", "seed")


def add_commands(sub) -> None:
    p = sub.add_parser("seq2seq", help="sequence to sequence with attention and beam search: train, translate, "
                                       "eval", description=__doc__.split("\n\n")[0])
    verbs = p.add_subparsers(dest="verb", metavar="<verb>")
    p.set_defaults(group_parser=p)

    t = verbs.add_parser("train", help="train an encoder-decoder (default: French number words to digits)",
                         description="Train an encoder-decoder with attention on number-phrases, cmudict, "
                                     "greek-english or a TSV of pairs; the run directory gets checkpoints, "
                                     "metrics.jsonl, loss.png, config.json, tokenizer.json, the model and the test "
                                     "report (test_metrics.json). Continue a run with --run-dir DIR --resume.")
    add_train_arguments(t, Seq2SeqConfig, default_run_dir=DEFAULT_RUN_DIR)
    t.set_defaults(func=cmd_train)

    s = verbs.add_parser("translate", help="translate texts with a trained run",
                         description="Decode one or more inputs (arguments, or --file with one per line, decoded "
                                     "in batches): greedy, sampled (--no-greedy), or beam search with several "
                                     "results per input (--num-results).")
    s.add_argument("run", help="run directory written by `rnnkit seq2seq train`")
    s.add_argument("texts", nargs="*", help="source texts to translate")
    s.add_argument("--file", default=None, help="a UTF-8 file of source texts, one per line (blank lines skipped)")
    s.add_argument("--attention-png", default=None, metavar="FILE",
                   help="draw the source x output attention of each input's best output into FILE (several "
                        "inputs: FILE-1.png, FILE-2.png, ...)")
    add_config_arguments(s, DecodeConfig)
    add_checkpoint_argument(s)
    s.set_defaults(func=cmd_translate)

    e = verbs.add_parser("eval", help="exact match, BLEU, chrF and error rates of a trained run",
                         description="Score a run's outputs: exact match, BLEU and chrF (sacrebleu), the token "
                                     "error rate, and PER and WER for phonemes (cmudict). Writes eval.json into "
                                     "the run directory (or -o FILE).")
    e.add_argument("run", help="run directory written by `rnnkit seq2seq train`")
    e.add_argument("--tsv", default=None, help="pairs to score, source<TAB>target per line (default: the held-out "
                                               "part of the run's own data, see --split)")
    e.add_argument("--split", default="test", choices=("test", "val"),
                   help="without --tsv: which held-out part of the run's data (default: %(default)s)")
    e.add_argument("-o", "--output", default=None, help="write the report here instead of RUN/eval.json")
    e.add_argument("--tune", action="store_true",
                   help="first choose --beam and --length-penalty on the validation part of the run's data: each "
                        "pair of --tune-beams x --tune-length-penalties decodes it, the highest exact match (the "
                        "lowest WER) wins, ties to the earlier pair; then score with the pick (the grid is in "
                        "the report)")
    e.add_argument("--tune-beams", type=int, nargs="+", default=[5, 10], metavar="N",
                   help="--tune: beam widths to try (default: %(default)s)")
    e.add_argument("--tune-length-penalties", type=float, nargs="+", default=[0.0, 0.5, 1.0], metavar="ALPHA",
                   help="--tune: length penalties (GNMT alpha) to try (default: %(default)s)")
    add_config_arguments(e, DecodeConfig, skip=EVAL_SKIPS)
    add_checkpoint_argument(e)
    e.set_defaults(func=cmd_eval)


def cmd_train(args: argparse.Namespace) -> int:
    started = time.monotonic() - process_age()      # --max-minutes holds the whole command: start-up too
    from rnnkit.tasks.base import stop_if_interrupted, train_config_from_args
    from rnnkit.tasks.seq2seq.task import TEST_REPORT, Seq2Seq

    if not args.resume and args.tsv is not None and "dataset" in given_fields(args):
        _checks.fail("--dataset", args.dataset, "no --dataset with --tsv (the pairs come from the file)")
    # With --resume: the run's own config, with only the budgets from the command line.
    config = train_config_from_args(Seq2Seq, args, resume_fields=RESUME_FIELDS)
    if args.resume and args.dry_run:
        _checks.fail("--dry-run", True, "no --dry-run with --resume (a dry run is a fresh smoke test)")
    # The test report is part of fit (--max-minutes holds it too): fit writes it into the run directory.
    s2s = Seq2Seq(config).fit(run_dir=args.run_dir, resume=args.resume, dry_run=args.dry_run,
                              budget_start=started)
    stop_if_interrupted(s2s.trainer_, args.run_dir, Seq2Seq.command())   # exit 130 with the resume command
    trainer = s2s.trainer_
    ending = f"{trainer.step} steps ({trainer.stop_reason}); " + (f"run saved in {args.run_dir}" if args.run_dir
                                                                  else "not saved")
    m = s2s.__dict__.get("test_metrics_")
    if m is None:
        val = ", ".join(f"{k} {v:.4f}" for k, v in s2s.metrics_.items())
        print(f"no test part (--test-frac 0 and no --test-tsv): validation {val}; {ending}")
        return 0
    sample = f" of {m['sample_of']:,} (all would not fit --max-minutes)" if "sample_of" in m else ""
    capped = f", {m['capped']} ran to the decoding cap" if m["capped"] else ""
    for example in m["examples"]:
        print(f"  {example['source']}  ->  {example['output']}   (reference: {example['reference']})",
              file=sys.stderr)
    print(f"test ({m['n']:,} sources{sample}, greedy{capped}): {_summary(m)}; {ending}"
          + (f"; report in {Path(args.run_dir) / TEST_REPORT}" if args.run_dir else ""))
    return 0


def process_age() -> float:
    """Seconds since this process started (Linux's /proc; 0 where it cannot be read): what the interpreter's
    start and the imports before a command took."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])         # field 22, starttime, in clock ticks
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def _summary(m: dict[str, Any]) -> str:
    parts = [f"exact match {m['exact_match']:.4f}"]
    if "wer" in m:
        parts += [f"WER {100 * m['wer']:.2f}%", f"PER {100 * m['per']:.2f}%"]
    parts += [f"BLEU {m['bleu']:.2f}", f"chrF {m['chrf']:.2f}"]
    if "wer" not in m:
        parts.append(f"token error rate {m['token_error_rate']:.4f}")
    return ", ".join(parts)


def _decode_options(cfg: DecodeConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def cmd_translate(args: argparse.Namespace) -> int:
    from rnnkit.tasks.seq2seq.task import Seq2Seq

    cfg = config_from_args(DecodeConfig, args)
    texts = list(args.texts)
    if args.file is not None:
        path = Path(args.file)
        if not path.is_file():
            raise FileNotFoundError(f"--file={args.file!r}: no such file")
        texts += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        _checks.fail("texts", [], "at least one text to translate, or --file FILE with one per line")
    s2s = Seq2Seq.load(args.run, checkpoint=args.checkpoint)
    phase("loaded")
    if args.attention_png is not None and s2s.config.attention == "none":
        _checks.fail("--attention-png", args.attention_png, "a run with attention (this one has --attention none)")
    # The request the HTTP endpoint takes, applied the same way (batch_size only sets how many decode at once).
    fields = {f.name for f in dataclasses.fields(s2s.request_class)}
    request = s2s.make_request({k: v for k, v in dataclasses.asdict(cfg).items() if k in fields}, texts=texts,
                               attention=args.attention_png is not None)
    out = s2s.apply(request)["translations"]
    for item in out:
        if cfg.num_results > 1:
            print(item["source"])
            for h in item["results"]:
                print(f"  {h['score']:.4f}\t{h['text']}")
        else:
            print(item["text"] if len(out) == 1 else f"{item['source']}\t{item['text']}")
    unknown = sum(item["unknown"] for item in out)
    if unknown:
        print(f"({unknown} source tokens the model never saw were read as <unk>)", file=sys.stderr)
    if args.attention_png is not None:
        for i, item in enumerate(out):
            path = _numbered(args.attention_png, i, len(out))
            plot_attention(item, path, s2s.source_vocab_.level)
            print(f"attention written to {path}", file=sys.stderr)
    return 0


def _numbered(path: str, i: int, n: int) -> Path:
    p = Path(path)
    if n == 1:
        return p
    return p.with_name(f"{p.stem}-{i + 1}{p.suffix or '.png'}")


def plot_attention(item: dict, path: str | Path, level: str = "char") -> None:
    """The best output's attention as a heatmap: output tokens (with <eos>) down, source tokens across
    (``item``: one translation as ``Seq2Seq.apply`` answers it with ``attention``; ``level``: the source tokens'
    level; word labels are slanted)."""
    import numpy as np

    from rnnkit.report.plots import new_figure, save_png

    weights = np.asarray(item["attention"])                           # (outputs, sources)
    rows = item["tokens"] + (["<eos>"] if weights.shape[0] > len(item["tokens"]) else [])
    cols = item["source_tokens"]
    fig = new_figure(1.5 + 0.45 * max(len(cols), 4), 1.2 + 0.4 * max(len(rows), 3))
    ax = fig.add_subplot()
    image = ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    slanted = level != "char" or len(cols) > 12                        # words and subwords are wide labels
    ax.set_xticks(range(len(cols)), cols, rotation=60 if slanted else 0, ha="right" if slanted else "center")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    ax.set_title(f"{item['source'][:40]} -> {item['text'][:30]}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    save_png(fig, path)


def cmd_eval(args: argparse.Namespace) -> int:
    from rnnkit.tasks.seq2seq.data import read_tsv
    from rnnkit.tasks.seq2seq.task import Seq2Seq

    cfg = config_from_args(DecodeConfig, args)
    for beam in args.tune_beams:                  # checked with or without --tune: bad input is said at once
        _checks.check_int("tune_beams", beam, min=1, cap=_checks.MAX_BEAM)
    for alpha in args.tune_length_penalties:
        _checks.check_float("tune_length_penalties", alpha, min=0, max=MAX_GNMT_PENALTY)
    s2s = Seq2Seq.load(args.run, checkpoint=args.checkpoint)
    phase("loaded")
    if args.tsv is not None:
        pairs, source = read_tsv(args.tsv), args.tsv
    else:
        pairs, source = _held_out(s2s, args.split, "--tsv")
    options = {k: v for k, v in _decode_options(cfg).items() if k not in EVAL_SKIPS}
    tuned = {}
    if args.tune:
        # Chosen on the validation words, never on the pairs being scored (unless --split val asks for that).
        val, _ = _held_out(s2s, "val", "--tune")
        best, grid = s2s.tune_decoding(val, args.tune_beams, args.tune_length_penalties, **options)
        options["beam"], options["length_penalty"] = best
        tuned = {"tuned": {"on": "validation", "picked": {"beam": best[0], "length_penalty": best[1]},
                           "grid": [{"beam": b, "length_penalty": a, "exact_match": m["exact_match"]}
                                    for (b, a), m in grid.items()]}}
        print(f"tuned on the validation part: beam {best[0]}, length penalty {best[1]:g} (exact match "
              f"{grid[best]['exact_match']:.4f})", file=sys.stderr)
    m = s2s.evaluate(pairs, **options)
    out = Path(args.output) if args.output else Path(args.run) / "eval.json"
    atomic_write_json(out, {"source": source, **m, **tuned})
    print(json.dumps({"source": source, **{k: v for k, v in m.items() if k not in ("skipped",)}, **tuned}))
    print(f"{source} ({m['decoding']}): {_summary(m)}; report written to {out}", file=sys.stderr)
    return 0


def _held_out(s2s: Any, split: str, flag: str) -> tuple[list, str]:
    """The run's own held-out part ``split`` (test or val) and its description; ``flag``: the option that asked
    for it, named in the error when the run has no such part."""
    from rnnkit.tasks.seq2seq.data import load_pairs

    if s2s.config.tsv is None and s2s.data_.get("dataset") is None:
        expected = ("a TSV of pairs to score" if flag == "--tsv" else "a run with a validation part to tune on")
        _checks.fail(flag, None, f"{expected} (this run was trained on pairs passed in Python, so it has no "
                                 f"held-out part to rebuild)")
    splits = load_pairs(s2s.config)
    pairs = splits.test if split == "test" else splits.val
    source = f"the {split} part of {splits.source}"
    if not pairs:
        _checks.fail("--split", split, f"a held-out part with pairs ({source} is empty: the run has "
                                       f"test_frac=0); pass --split val or --tsv FILE")
    return pairs, source
