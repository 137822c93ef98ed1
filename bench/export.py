"""Benchmark: a BasicMotions gesture classifier exported to C for an Arduino Nano 33 BLE, and ONNX parity.

1. C: an LSTM (or GRU) classifier trains on BasicMotions (smartwatch accelerometer + gyroscope, 6 channels x 100
   steps, 4 activities; the given 40/40 split, validation taken from the training part) and is exported as a C
   header with float32 and with int8 weights. Each header is compiled with the system C compiler and runs the
   40 test sequences; the table gives the test accuracy of PyTorch, float32 C and int8 C, how many test
   predictions each C build shares with PyTorch, the size of code + weights (text + data of the header compiled
   on its own with -Os, as `size` reports it: on this machine's architecture, not the board's ARM Thumb-2 code)
   and the RAM the functions need (state + stack + output, from the dimensions), against the Nano 33 BLE's
   1 MB flash and 256 KB SRAM.
2. ONNX: the largest |onnxruntime - PyTorch| for models of every exported kind (trained briefly on real data),
   at batch sizes 1, 4, 16 and lengths 1, 9, 40 (forecast: 24, 60, 120 steps; textgen: chained steps).

    python bench/export.py                         # about 2 minutes on 2 cores
    python bench/export.py --model gru --hidden-size 64 -o export.md

Threads are the CLI's choice (one per CPU other processes leave free) unless ``--threads`` sets them; each
model is shown as it starts training (a bar on a terminal, a line in a log).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import add_threads_argument, progress, start

from rnnkit.export import export
from rnnkit.export.c import compile_driver, describe, find_compiler, memory, object_size, run_compiled, torch_outputs
from rnnkit.export.onnx import max_abs_difference
from rnnkit.tasks.classify.data import load_data
from rnnkit.tasks.classify.task import SequenceClassifier

FLASH, SRAM = 1024 * 1024, 256 * 1024          # Arduino Nano 33 BLE (nRF52840)
PRESET = {"maxlen": 100, "batch_size": 8, "lr": 5e-3, "dropout": 0.1, "early_stop_patience": None}  # classify.py's


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def c_table(args, data, tmp: Path) -> tuple[list[str], SequenceClassifier]:
    clf = SequenceClassifier(model=args.model, hidden_size=args.hidden_size, epochs=args.epochs, seed=args.seed,
                             threads=args.threads, **PRESET)
    t0 = time.monotonic()
    clf.fit(data.train.X, data.train.y, (data.val.X, data.val.y), progress=False)
    log(f"trained {args.model} {args.hidden_size} on basic-motions in {time.monotonic() - t0:.0f} s")
    y = np.asarray(data.test.y)
    torch_pred = clf.predict(data.test.X)
    ram = memory(describe(clf))
    want = torch_outputs(clf, data.test.X)                       # PyTorch's logits, (40, 4)
    rows = [("| model | accuracy (test, 40) | same prediction as PyTorch | max abs logit difference | "
            "code + weights (text + data) | "
            "of 1 MB flash | weights alone | RAM (state + stack + output) | of 256 KB SRAM |"),
            "|---|---|---|---|---|---|---|---|---|",
            f"| PyTorch ({args.model} {args.hidden_size}, float32) | {(torch_pred == y).mean():.3f} "
            + "| — " * 7 + "|"]
    for precision in ("float32", "int8"):
        info = export(clf, tmp / f"motions_{precision}.h", format="c", precision=precision)
        got, _ = run_compiled(compile_driver(info["path"], tmp), data.test.X)
        pred = np.array(clf.classes_)[got.argmax(1)]
        size = object_size(info["path"], tmp)
        flash = size["text"] + size["data"]
        rows.append(f"| C, {precision} weights | {(pred == y).mean():.3f} | {(pred == torch_pred).sum()}/{len(y)} | "
                    f"{np.abs(got - want).max():.1e} | "
                    f"{flash:,} B | {flash / FLASH:.2%} | {info['weight_bytes']:,} B | {ram['total']:,} B "
                    f"({ram['state']} + {max(ram['step_stack'], ram['output_stack'])} + {ram['output_buffer']}) | "
                    f"{ram['total'] / SRAM:.2%} |")
    return rows, clf


def onnx_table(motions: SequenceClassifier, tmp: Path, seed: int, threads: int | None) -> list[str]:
    from rnnkit.tasks.forecast.task import Forecaster
    from rnnkit.tasks.textgen.task import TextGenerator

    rows = ["| task | model | data | kind | max abs difference |", "|---|---|---|---|---|"]

    def row(task, model: str, data: str, **kw) -> None:
        info = export(task, tmp / f"{task.name}_{model}.onnx")
        worst = max_abs_difference(task, info["path"], **kw)
        rows.append(f"| {task.name} | {model} | {data} | {info['kind']} | {worst:.1e} |")
        log(rows[-1])

    def bigru():
        gru = SequenceClassifier(model="bigru", hidden_size=32, epochs=10, seed=seed, threads=threads, **PRESET)
        row(gru.fit(bm.train.X, bm.train.y, progress=False), "bigru", "basic-motions")

    def rocket():                                    # random convolutions + ridge, one graph
        rocket = SequenceClassifier(model="rocket", seed=seed, threads=threads)
        row(rocket.fit(bm.train.X, bm.train.y, progress=False), "rocket (10,000 kernels)", "basic-motions")

    def cnn_lstm():
        imdb = load_data(dataset="imdb")
        text = SequenceClassifier(model="cnn-lstm", hidden_size=32, maxlen=200, num_words=5000, epochs=1, seed=seed,
                                  threads=threads)
        pick = np.random.default_rng(seed).choice(len(imdb.train.y), 1000, replace=False)   # both classes
        text.fit([imdb.train.X[i] for i in pick], imdb.train.y[pick], progress=False)
        row(text, "cnn-lstm", "imdb (1,000 reviews)")

    def forecaster(model: str):
        fc = Forecaster(dataset="nyc-weather", model=model, lookback=120, delay=24, hidden_size=16, epochs=1,
                        max_minutes=0.3, seed=seed, threads=threads).fit(verbose=False, progress=False)
        row(fc, model, "nyc-weather", lengths=(24, 60, 120))

    def textgen():
        gen = TextGenerator(hidden_size=128, num_layers=2, max_minutes=0.3, sample_max_tokens=0, seed=seed,
                            threads=threads).fit(progress=False)
        row(gen, "lstm 2x128", "shakespeare", lengths=(1, 9, 40))

    bm = load_data(dataset="basic-motions")
    models = {f"{motions.config.model} (the C model)": lambda: row(motions, motions.config.model, "basic-motions"),
              "bigru": bigru, "rocket": rocket, "cnn-lstm": cnn_lstm, "forecast gru": lambda: forecaster("gru"),
              "forecast lstm": lambda: forecaster("lstm"), "textgen lstm": textgen}
    for name in progress(models, "ONNX models"):
        models[name]()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lstm", choices=("lstm", "gru", "rnn"), help="the gesture classifier")
    parser.add_argument("--hidden-size", type=int, default=32, help="its recurrent units")
    parser.add_argument("--epochs", type=int, default=40, help="its training epochs")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=True, help="the ONNX table too")
    parser.add_argument("-o", "--output", default=None, help="also write the markdown to this file")
    add_threads_argument(parser)
    args = parser.parse_args()
    if find_compiler() is None:
        sys.exit("bench/export.py: no C compiler ($CC, cc or gcc) on PATH")
    start(args.threads)
    torch.manual_seed(args.seed)
    data = load_data(dataset="basic-motions")
    with tempfile.TemporaryDirectory() as tmp:
        rows, clf = c_table(args, data, Path(tmp))
        lines = ["### BasicMotions gesture classifier in C (Arduino Nano 33 BLE: 1 MB flash, 256 KB SRAM)", "", *rows]
        if args.onnx:
            lines += ["", "### ONNX against PyTorch (onnxruntime; batch sizes 1, 4, 16)", "",
                      *onnx_table(clf, Path(tmp), args.seed, args.threads)]
    lines += ["", (f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, "
                  f"{torch.get_num_threads()} threads; C compiler: {find_compiler()} (-Os for the sizes, -O2 runs).")]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
