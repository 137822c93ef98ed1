"""Keras 3 training the benchmark model of bench/layers.py, as a worker that bench/vs_keras.py drives.

The model is the one bench/layers.py times: vocabulary 65, embedding 64, a 2-layer LSTM-256 returning
sequences, a Dense head over the vocabulary, sequences of 100, batch 64, Adam (lr 1e-3), sparse
cross-entropy at every step, random token data, float32. Two variants:

* ``lstm``: ``keras.layers.LSTM(256)``.
* ``recurrent_dropout``: ``keras.layers.LSTM(256, recurrent_dropout=0.25)``. Keras then computes each gate
  with its own product and its own mask on h (its ``implementation=1`` path) and can never use cuDNN. On a
  CPU neither variant has a fused kernel: the TensorFlow backend's fused LSTM is cuDNN only, so both run
  Keras's step function in a ``tf.while_loop``.

This script imports only keras, tensorflow and numpy (never rnnkit or torch), so it runs in a virtual
environment of its own; Keras is not a dependency of rnnkit:

    python -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install tensorflow-cpu keras
    /tmp/kvenv/bin/python bench/keras_lstm.py --threads 1      # then type "lstm 6", ..., "quit"

Protocol (one line each way): after building both models and two warm-up steps each, it prints one JSON
line ``{"ready": true, ...versions, traces...}``. Then for every line ``<variant> <steps>`` on stdin it
trains that many steps and prints ``{"variant": ..., "steps": ..., "chars_per_s": ..., "traces": ...}``;
``quit`` (or the end of stdin) ends it. ``traces`` is how many times the compiled train step has been
traced: 2 after the warm-up (tf.function traces twice on the first call, where the optimizer creates its
variables), and it stays there, so every timed step runs the same graph. Only these JSON lines go to
stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

VOCAB, EMB, HID, LAYERS, SEQ, BATCH = 65, 64, 256, 2, 100, 64
VARIANTS = {"lstm": 0.0, "recurrent_dropout": 0.25}     # variant -> recurrent_dropout


def build(recurrent_dropout: float, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    ids = keras.Input((SEQ,), batch_size=BATCH, dtype="int32")           # (B, T)
    h = keras.layers.Embedding(VOCAB, EMB)(ids)                           # (B, T, E)
    for _ in range(LAYERS):
        h = keras.layers.LSTM(HID, return_sequences=True, recurrent_dropout=recurrent_dropout)(h)  # (B, T, H)
    logits = keras.layers.Dense(VOCAB)(h)                                 # (B, T, V)
    model = keras.Model(ids, logits)
    # compile's defaults otherwise: jit_compile="auto" is no XLA on a CPU-only TensorFlow, the normal way (and the
    # faster one here: jit_compile=True trained this model at about 0.8x the chars/s on the AMD EPYC, 1 thread).
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # Count the traces: train_step's Python body runs only while tf.function traces it into a graph, so the
    # count says whether train_on_batch reuses the compiled step (it stays at 2) or traces again.
    model.traces = 0
    step = model.train_step

    def counted_step(data):
        model.traces += 1
        return step(data)

    model.train_step = counted_step                # before the first call, which builds the tf.function
    return model


def train(model, x, y, steps: int) -> float:
    """``steps`` calls of train_on_batch (each returns the loss as numpy, so the step has finished); chars/s."""
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * x.size / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="TensorFlow intra- and inter-op threads (default: 1)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    # Before TensorFlow starts: its own thread pools and oneDNN's OpenMP both get --threads, and its C++
    # logging stays quiet (stdout carries the protocol; warnings would go to stderr anyway).
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    rng = np.random.default_rng(1)
    x = rng.integers(0, VOCAB, (BATCH, SEQ)).astype("int32")             # (B, T) token ids
    y = rng.integers(0, VOCAB, (BATCH, SEQ)).astype("int32")             # (B, T) next-token targets
    models = {name: build(rate, args.seed) for name, rate in VARIANTS.items()}
    for name, model in models.items():                                    # tracing, allocator, oneDNN primitives
        train(model, x, y, 2)
        print(f"# keras worker: {name} warmed up", file=sys.stderr, flush=True)
    print(json.dumps({"ready": True, "keras": keras.__version__, "tensorflow": tf.__version__,
                      "backend": keras.backend.backend(), "threads": args.threads,
                      "variants": {k: {"recurrent_dropout": v} for k, v in VARIANTS.items()},
                      "traces": {k: m.traces for k, m in models.items()}}), flush=True)

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        name, steps = words[0], int(words[1])
        if name not in models:
            print(json.dumps({"error": f"unknown variant {name!r}; expected one of {list(models)}"}), flush=True)
            continue
        rate = train(models[name], x, y, steps)
        print(json.dumps({"variant": name, "steps": steps, "chars_per_s": rate,
                          "traces": models[name].traces}), flush=True)


if __name__ == "__main__":
    main()
