"""Sequence labelling on the UD English EWT treebank: UPOS accuracy within a training budget, ablations, a BIO
entity task against a CRF with hand-made features, and tagging speed.

    python bench/tag.py --data ../shared/data/ud-english-ewt                      # everything below
    python bench/tag.py --data DIR --only upos --minutes 30                      # the headline run
    python bench/tag.py --data DIR --only ablations --ablation-minutes 8         # CRF vs softmax, chars vs none
    python bench/tag.py --data DIR --only entities --ablation-minutes 8          # PROPN spans: tagger vs crfsuite
    python bench/tag.py --data DIR --only speed --run runs/bench-tag/upos        # sentences/s

* **upos**: `rnnkit tag train` defaults plus GloVe 50d (`--embeddings glove-50d`) and a cosine schedule over the
  time budget, trained on train, the best epoch picked on dev, scored on test: token accuracy and accuracy on the
  test words never seen in training (compared lower-cased, as the tagger looks words up).
* **ablations** (shorter budgets, said in the table): the same model with a CRF output instead of the softmax; with
  character features from a BiLSTM instead of the CNN; with no character features; without GloVe.
* **entities**: a BIO task from real text: every maximal run of PROPN words of EWT is an entity (B-PROPN,
  I-PROPN); entity F1 by seqeval on test, the tagger (CRF output) against sklearn-crfsuite with the usual hand-made
  features (the word lower-cased, its suffixes and prefixes, shape, case, digits, the neighbours' words) on the same
  split. sklearn-crfsuite is a benchmark-only dependency: without it the row says so.
* **speed**: sentences per second tagging the test set: ``Tagger.predict`` (what `rnnkit tag tag` runs), the same
  network in a plain PyTorch loop (encode, pad, forward, argmax; no checks), and the whole `rnnkit tag tag RUN
  --file test.conllu -o FILE` command (start-up, loading and reading included).

The treebank is not on PyPI: download UD yourself and give its folder (en_ewt-ud-{train,dev,test}.conllu[.xz]).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_threads_argument, progress, start  # noqa: E402

PARTS = ("train", "dev", "test")


def ewt_files(folder: Path) -> dict[str, Path]:
    out = {}
    for part in PARTS:
        found = [folder / f"en_ewt-ud-{part}.conllu{ext}" for ext in (".xz", ".gz", "")]
        found = [p for p in found if p.is_file()]
        if not found:
            sys.exit(f"{folder}: no en_ewt-ud-{part}.conllu(.xz); expected the UD English EWT files")
        out[part] = found[0]
    return out


def read_ewt(folder: Path, column: str = "upos"):
    from rnnkit.tasks.tag.data import read_conllu
    files = ewt_files(folder)
    return {part: read_conllu(files[part], column) for part in PARTS}, files


def base_config(minutes: float, **kw) -> dict:
    return {"embeddings": "glove-50d", "max_minutes": minutes, "schedule": "cosine_time", **kw}


def train_and_score(data, config: dict, run_dir: Path, seed: int = 0) -> dict:
    import torch
    from rnnkit.tasks import Tagger

    if run_dir.exists():
        shutil.rmtree(run_dir)                   # a fresh run every time
    torch.manual_seed(seed)
    tagger = Tagger(**{"seed": seed, **config})
    tagger.fit(data["train"], None, data["dev"], run_dir=str(run_dir))
    t0 = time.perf_counter()
    m = tagger.evaluate(data["test"])
    trainer = tagger.trainer_
    return {"config": config, "accuracy": m["accuracy"], "unseen_accuracy": m["unseen_accuracy"],
            "unseen_tokens": m["unseen_tokens"], "tokens": m["tokens"],
            **{k: m[k] for k in m if k.startswith("entity")},
            "train_minutes": tagger.train_seconds_ / 60, "epochs": trainer.epoch, "steps": trainer.step,
            "best_epoch": trainer.best_epoch, "stop_reason": trainer.stop_reason,
            "eval_seconds": time.perf_counter() - t0, "run": str(run_dir)}


def bench_upos(args, data) -> list[dict]:
    print(f"# upos: {args.minutes:g} minutes of training", file=sys.stderr, flush=True)
    return [{"name": f"upos ({args.minutes:g} min)", **train_and_score(data, base_config(args.minutes),
                                                                        args.out / "upos")}]


ABLATIONS = {
    "softmax, char cnn (default)": {},
    "crf, char cnn": {"output_layer": "crf"},
    "softmax, char bilstm": {"char_model": "bilstm"},
    "softmax, no char features": {"char_model": "none"},
    "softmax, char cnn, no GloVe": {"embeddings": None, "embedding_size": 100},
}


def bench_ablations(args, data) -> list[dict]:
    rows = []
    for name in progress(list(ABLATIONS), "ablations"):
        config = base_config(args.ablation_minutes, **ABLATIONS[name])
        rows.append({"name": f"{name} ({args.ablation_minutes:g} min)",
                     **train_and_score(data, config, args.out / ("ablation-" + name.split(" (")[0]
                                                                 .replace(", ", "-").replace(" ", "_")))})
    return rows


def propn_bio(tagged):
    """The same sentences with BIO tags: a maximal run of PROPN words is one entity."""
    from rnnkit.tasks.tag.data import Tagged
    y = []
    for tags in tagged.y:
        out, prev = [], "O"
        for t in tags:
            out.append(("I-PROPN" if prev == "PROPN" else "B-PROPN") if t == "PROPN" else "O")
            prev = t
        y.append(out)
    return Tagged(tagged.X, y, tagged.source + " (PROPN spans as BIO)", tagged.lines)


def word_features(sent: list[str], i: int) -> dict:
    w = sent[i]
    f = {"bias": 1.0, "lower": w.lower(), "suffix3": w[-3:].lower(), "suffix2": w[-2:].lower(),
         "prefix2": w[:2].lower(), "istitle": w.istitle(), "isupper": w.isupper(), "isdigit": w.isdigit(),
         "hasdigit": any(c.isdigit() for c in w), "hashyphen": "-" in w,
         "shape": "".join("X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c for c in w)[:6]}
    for k in (-2, -1, 1, 2):
        j = i + k
        if 0 <= j < len(sent):
            v = sent[j]
            f.update({f"{k}:lower": v.lower(), f"{k}:istitle": v.istitle(), f"{k}:isupper": v.isupper(),
                      f"{k}:suffix3": v[-3:].lower()})
        else:
            f[f"{k}:edge"] = True
    return f


def bench_entities(args, data) -> list[dict]:
    from rnnkit.tasks.tag.task import entity_metrics

    bio = {part: propn_bio(data[part]) for part in PARTS}
    rows = [{"name": f"rnnkit tag, crf, char cnn, GloVe ({args.ablation_minutes:g} min)",
             **train_and_score(bio, base_config(args.ablation_minutes, output_layer="crf"), args.out / "entities")}]
    try:
        import sklearn_crfsuite
    except ImportError:
        rows.append({"name": "sklearn-crfsuite", "skipped": "sklearn-crfsuite is not installed (pip install "
                                                            "sklearn-crfsuite)"})
        return rows
    feats = {part: [[word_features(s, i) for i in range(len(s))] for s in bio[part].X] for part in PARTS}
    t0 = time.perf_counter()
    crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=100, all_possible_transitions=True)
    crf.fit(feats["train"], bio["train"].y)
    minutes = (time.perf_counter() - t0) / 60
    m = entity_metrics(bio["test"].y, crf.predict(feats["test"]), "bio")
    rows.append({"name": "sklearn-crfsuite, hand-made features (lbfgs, c1=c2=0.1, 100 iterations)",
                 "train_minutes": minutes, **{k: v for k, v in m.items() if k.startswith("entity_")}})
    return rows


def bench_speed(args, data) -> list[dict]:
    import numpy as np
    import torch
    from rnnkit.tasks import Tagger
    from rnnkit.tasks.tag.data import encode_text

    run = args.run or args.out / "upos"
    tagger = Tagger.load(run)
    test = data["test"]
    X = test.X
    n = len(X)
    rows = []

    def timed(fn, repeats=3):
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best

    seconds = timed(lambda: tagger.predict(X))
    rows.append({"name": "Tagger.predict (what `rnnkit tag tag` runs)", "sentences": n, "seconds": seconds,
                 "sentences_per_second": n / seconds})
    net, vocab = tagger.model_.eval(), tagger.vocab_

    def plain():
        enc = encode_text(vocab, X)
        order = np.argsort(enc.lengths, kind="stable")
        out = [None] * n
        with torch.no_grad():
            for s in range(0, n, 256):
                idx = order[s:s + 256]
                L = enc.lengths[idx]
                T = int(L.max())
                W = max(enc.chars[i].shape[1] for i in idx)
                words = np.zeros((len(idx), T), np.int64)
                chars = np.zeros((len(idx), T, W), np.int64)
                for b, i in enumerate(idx):
                    words[b, :L[b]] = enc.words[i]
                    chars[b, :L[b], :enc.chars[i].shape[1]] = enc.chars[i]
                lengths = torch.from_numpy(L)
                scores = net(torch.from_numpy(words), lengths,
                             torch.from_numpy(chars) if net.chars is not None else None)
                pred = net.predict(scores, lengths).numpy()
                for b, i in enumerate(idx):
                    out[i] = pred[b, :L[b]]
        return out

    seconds = timed(plain)
    rows.append({"name": "the same network in a plain PyTorch loop (encode, pad, forward, argmax)", "sentences": n,
                 "seconds": seconds, "sentences_per_second": n / seconds})
    files = ewt_files(args.data)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rnnkit", "tag", "tag", str(run), "--file", str(files["test"]),
                           "-o", str(args.out / "tagged.conllu")], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    rows.append({"name": "`rnnkit tag tag RUN --file test.conllu.xz -o FILE` (start-up, load, read, write)",
                 "sentences": n, "seconds": seconds, "sentences_per_second": n / seconds})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| what | UPOS / entity F1 | unseen-word acc. | minutes trained (epochs) |", "|---|---:|---:|---:|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['name']} | {r['skipped']} | | |")
        elif "sentences_per_second" in r:
            lines.append(f"| {r['name']} | {r['sentences_per_second']:,.0f} sentences/s | | {r['seconds']:.2f} s |")
        else:
            score = f"{100 * r['entity_f1']:.2f} F1" if "entity_f1" in r else f"{100 * r['accuracy']:.2f}"
            unseen = f"{100 * r['unseen_accuracy']:.2f}" if r.get("unseen_accuracy") is not None else ""
            trained = f"{r['train_minutes']:.1f}" + (f" ({r['epochs']})" if "epochs" in r else "")
            lines.append(f"| {r['name']} | {score} | {unseen} | {trained} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder of en_ewt-ud-{train,dev,test}.conllu(.xz)")
    ap.add_argument("--only", nargs="*", default=["upos", "ablations", "entities", "speed"],
                    choices=["upos", "ablations", "entities", "speed"], help="parts to run")
    ap.add_argument("--minutes", type=float, default=30.0, help="training budget of the UPOS run")
    ap.add_argument("--ablation-minutes", type=float, default=8.0, help="training budget of each ablation run")
    ap.add_argument("--run", type=Path, default=None, help="speed: a finished tag run (default: OUT/upos)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-tag"), help="run directories and results.json")
    add_threads_argument(ap)
    args = ap.parse_args()
    start(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    data, _ = read_ewt(args.data)
    rows = []
    results = args.out / "results.json"
    for part in args.only:
        new = {"upos": bench_upos, "ablations": bench_ablations, "entities": bench_entities,
               "speed": bench_speed}[part](args, data)
        rows += new
        print(table(rows), flush=True)
        # Kept as each part ends: a later part that fails loses nothing of the earlier ones.
        old = json.loads(results.read_text()) if results.is_file() else []
        results.write_text(json.dumps(old + new, indent=1, default=str))
        print(f"# results appended to {results}", file=sys.stderr)


if __name__ == "__main__":
    main()
