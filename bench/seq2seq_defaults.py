"""Sequence to sequence with NO flags beyond the data: rnnkit's own data written as the TSV files a user brings.

Three sets, each written as ``source<TAB>target`` lines, as a user would bring them (not the named datasets,
whose token levels rnnkit knows):

* ``numbers``: French number words -> digits, as num2words writes them ("quatre-vingt-dix-sept\\t97");
* ``cmudict``: English spellings -> ARPAbet phonemes, stress digits stripped ("abandon\\tAH B AE N D AH N");
* ``greek-english``: Greek New Testament verses -> English (punctuation glued to words, as written).

Each is trained by the command line as a new user would run it, in its own process (so the wall time is what
the user waits, start-up and the test report included)::

    rnnkit seq2seq train --tsv FILE --max-minutes M --run-dir DIR --threads 1

(``--threads 1`` because the machine is shared; ``--run-dir`` to read the report back.) The bench reports the
wall time against M (the bar: within 5%), the token levels rnnkit chose, and the test figures (exact match,
BLEU, chrF; WER and PER for phonemes, counted as bench/seq2seq.py counts them: a word is wrong when any phoneme
is). With ``--tuned``, each set is also trained with the settings docs/benchmarks.md tuned on the named
dataset, for the same M minutes (the bar: defaults within 10% of tuned BLEU / WER / exact match). The test
part of a TSV is held out by a hash of the source text: for cmudict that is the word, the same split as the
named dataset; for the numbers and the verses another 5% than the named datasets'.

    python bench/seq2seq_defaults.py --minutes 4 --tuned
    python bench/seq2seq_defaults.py --sets numbers --minutes 2
    # side by side (each run one thread), then the table:
    python bench/seq2seq_defaults.py --sets greek-english --minutes 15 --only defaults &
    python bench/seq2seq_defaults.py --sets greek-english --minutes 15 --only tuned; wait
    python bench/seq2seq_defaults.py --sets greek-english --minutes 15 --tuned --table-only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from common import cpu_name, progress

SETS = ("numbers", "cmudict", "greek-english")

# The settings docs/benchmarks.md tuned on the named datasets (its commands), run for the same budget.
TUNED = {
    "numbers": ["--dataset", "number-phrases", "--epochs", "15", "--schedule", "constant", "--min-steps", "0",
                "--no-auto-batch"],
    "cmudict": ["--dataset", "cmudict", "--hidden-size", "256", "--batch-size", "128", "--lr", "3e-3",
                "--epochs", "1000", "--schedule", "auto", "--early-stop-patience", "None", "--precision", "auto"],
    "greek-english": ["--dataset", "greek-english", "--hidden-size", "256", "--embedding-size", "128",
                      "--num-words", "2000", "--epochs", "200"],
}
# What docs/benchmarks.md reports for those settings with their own (longer) budgets, greedy decoding.
PUBLISHED = {"numbers": "exact match 1.0000 (15 epochs, about 2 minutes)",
             "cmudict": "WER 28.40%, PER 6.89% (30 minutes)",
             "greek-english": "BLEU 4.18, chrF 19.78 (15 minutes)"}


def write_tsvs(folder: Path) -> dict[str, Path]:
    """The three sets as TSV files in ``folder`` (from the named datasets' caches)."""
    import rnnkit.datasets
    from rnnkit.tasks.seq2seq.data import cmudict_pairs

    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / f"{name}.tsv" for name in SETS}
    numbers = rnnkit.datasets.load("number-phrases")
    french = numbers["lang"] == "fr"
    rows = {"numbers": [(w, str(int(n))) for w, n in zip(numbers["words"][french], numbers["number"][french])],
            "cmudict": cmudict_pairs()[0]}
    verses = rnnkit.datasets.load("greek-english")
    rows["greek-english"] = list(zip(verses["greek"], verses["english"]))
    for name, pairs in rows.items():
        # Written aside, then renamed: a bench running beside this one (--only) never reads half a file.
        part = files[name].with_suffix(f".{os.getpid()}.tmp")
        part.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
        os.replace(part, files[name])
    return files


def train(argv: list[str], run_dir: Path, minutes: float, threads: int) -> dict:
    """One `rnnkit seq2seq train` in its own process: its wall time, the lines it printed, its test report."""
    command = [sys.executable, "-m", "rnnkit", "seq2seq", "train", *argv, "--max-minutes", f"{minutes:g}",
               "--run-dir", str(run_dir), "--overwrite", "--threads", str(threads)]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = json.loads((run_dir / "test_metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    training = config["fitted"].get("training", {})
    chosen = next((line for line in done.stderr.splitlines() if line.startswith("tokens chosen")), "")
    return {"command": "rnnkit seq2seq train " + " ".join(argv) + f" --max-minutes {minutes:g}", "wall": wall,
            "report": report, "training": training, "data": config["data"], "chosen": chosen,
            "stderr": done.stderr}


def phoneme_rates(report: dict) -> dict:
    """WER and PER as bench/seq2seq.py counts them for cmudict: a word is wrong when any phoneme is (1 - exact
    match), and the phoneme error rate is the token error rate (the targets are phonemes). The named dataset's
    report has them already; a TSV's does not know its targets are phonemes."""
    if "wer" not in report:
        report = {**report, "wer": 1.0 - report["exact_match"], "per": report["token_error_rate"]}
    return report


def score(name: str, report: dict) -> tuple[str, float, bool]:
    """(the figure the bar compares, its value, whether higher is better) for a set."""
    if name == "cmudict":
        return "WER", phoneme_rates(report)["wer"], False
    if name == "numbers":
        return "exact match", report["exact_match"], True
    return "BLEU", report["bleu"], True


def figures(report: dict, phonemes: bool = False) -> str:
    parts = [f"exact {report['exact_match']:.4f}", f"BLEU {report['bleu']:.2f}", f"chrF {report['chrf']:.2f}"]
    if phonemes:
        report = phoneme_rates(report)
        parts += [f"WER {100 * report['wer']:.2f}%", f"PER {100 * report['per']:.2f}%"]
    sample = f" of {report['sample_of']:,}" if "sample_of" in report else ""
    parts.append(f"{report['n']:,}{sample} test sources, {report['capped']} at the cap")
    return ", ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS, help="which sets to train")
    ap.add_argument("--minutes", type=float, default=4.0, help="--max-minutes of every run (short: the machine "
                                                                "is shared)")
    ap.add_argument("--tuned", action="store_true", help="also train docs/benchmarks.md's tuned settings on the "
                                                         "named dataset for the same minutes")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each run (1: the machine is shared)")
    ap.add_argument("--folder", default="runs/bench-seq2seq-defaults", help="where the TSVs and runs go")
    ap.add_argument("--only", choices=("defaults", "tuned"), default=None,
                    help="train only these runs (two processes can train the two kinds side by side; then "
                         "--table-only --tuned writes the table)")
    ap.add_argument("--table-only", action="store_true", help="no training: the table of the runs in --folder "
                                                              "(their bench.json)")
    ap.add_argument("--markdown", default="/tmp/bench_seq2seq_defaults.md", help="append the fragment here")
    args = ap.parse_args()

    folder = Path(args.folder)
    files = {} if args.table_only else write_tsvs(folder / "data")
    # Each set's tuned run right after its defaults run: the two see about the same load on a shared machine.
    kinds = [args.only] if args.only else ["defaults", "tuned"] if args.tuned else ["defaults"]
    jobs = [(name, kind) for name in args.sets for kind in kinds]
    results: dict[tuple[str, str], dict] = {}
    for name, kind in progress(jobs, "runs"):
        saved = folder / f"{name}-{kind}" / "bench.json"
        if args.table_only:
            results[name, kind] = json.loads(saved.read_text())
            continue
        argv = ["--tsv", str(files[name])] if kind == "defaults" else TUNED[name]
        results[name, kind] = train(argv, folder / f"{name}-{kind}", args.minutes, args.threads)
        r = results[name, kind]
        (folder / f"{name}-{kind}" / "bench.json").write_text(json.dumps({k: v for k, v in r.items()
                                                                         if k != "stderr"}))
        (folder / f"{name}-{kind}" / "stderr.txt").write_text(r["stderr"])
        print(f"# {name} {kind}: wall {r['wall']:.1f} s; {figures(r['report'], name == 'cmudict')}",
              file=sys.stderr, flush=True)

    load = os.getloadavg()
    lines = ["### Sequence to sequence with no flags beyond the data (`bench/seq2seq_defaults.py`)", "",
             f"Command: `python {' '.join(sys.argv)}`  ",
             (f"Machine: {cpu_name()}, shared with other sessions (load average at the end "
              f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}), {args.threads} thread(s) per run, {date.today()}."),
             "", ("| set | run | tokens (rnnkit's choice) | steps (stop) | wall time / budget | test (greedy) | "
                  "bar |"), "|---|---|---|---:|---:|---|---|"]
    for (name, kind), r in results.items():
        budget = 60 * args.minutes
        data, training = r["data"], r["training"]
        levels = f"{data['source_level']} -> {data['target_level']}, {data['vocabulary']['source']:,} / " \
                 f"{data['vocabulary']['target']:,}"
        wall_ok = abs(r["wall"] - budget) <= 0.05 * budget or (training.get("stop_reason") == "early_stop"
                                                                  and r["wall"] <= 1.05 * budget)
        bars = [f"wall {'✔' if wall_ok else '✘'}"]
        if kind == "defaults" and (name, "tuned") in results:
            metric, mine, higher = score(name, r["report"])
            _, tuned, _ = score(name, results[name, "tuned"]["report"])
            ok = mine >= 0.9 * tuned if higher else mine <= 1.1 * tuned
            bars.append(f"{metric} within 10% of tuned {'✔' if ok else '✘'}")
        lines.append(f"| {name} | {kind} | {levels} | {training.get('steps', 0):,} ({training.get('stop_reason')}) "
                     f"| {r['wall']:.0f} s / {budget:.0f} s | {figures(r['report'], name == 'cmudict')} | "
                     f"{', '.join(bars)} |")
    lines += ["", "Token levels as rnnkit printed them:", ""]
    lines += [f"- {name}: {re.sub(r' [(]--source-level.*', '', r['chosen'])}"
              for (name, kind), r in results.items() if kind == "defaults"]
    lines += ["", "Tuned settings' figures in docs/benchmarks.md (their own budgets): "
              + "; ".join(f"{name} {PUBLISHED[name]}" for name in args.sets), ""]
    text = "\n".join(lines)
    print(text)
    with open(args.markdown, "a", encoding="utf-8") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
