"""Export a classifier or forecaster as one dependency-free C header, for microcontrollers.

The header holds the weights as arrays and four functions (``P`` is the prefix, from the file name):

* ``P_reset(&s)``: a fresh state; ``P_step(&s, x)``: read one time step of raw input values (a sensor sample);
  ``P_output(&s, out)``: class logits or the forecast from what was read so far. Streaming, step by step.
* ``P_run(x, T, out)``: a whole sequence of T steps at once (classifiers also return the predicted class).

It covers what a small device runs: classify runs on numeric series (rnn, gru, lstm; any pooling) and forecast
runs (gru, gru_dropout, stacked_gru, lstm), with any number of stacked layers reading one direction. The input
scaling the run learned is inside (channels standardised, forecasts in the targets' units); every step given
is read (a classifier's ``predict`` keeps the last ``maxlen`` steps of a longer sequence). Everything else is
refused with a clear line (:func:`describe`): other cells (Jordan, peephole), bidirectional or convolutional
models, text models, bag of words, other tasks (export those to ONNX where it takes them).

Weights: ``float32``, or ``int8`` with one float scale per weight row (see ``INT8_SCHEME``). The C code comes
from the templates below; :func:`compile_driver` and :func:`run_compiled` build it with the system C compiler
and run sequences through it (the tests and ``bench/export.py`` use them to compare with PyTorch).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from rnnkit import __version__

SUPPORTED = ("classify runs on numeric series (models rnn, gru, lstm) and forecast runs (gru, gru_dropout, "
             "stacked_gru, lstm): lstm, gru or rnn (tanh/relu) cells, stacked, one direction")
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def refuse(what: str, onnx: bool = False) -> None:
    """The one-line refusal: what is not supported, what is (and ONNX, where that format takes it)."""
    hint = "; export it to ONNX instead (--format onnx)" if onnx else ""
    raise ValueError(f"{what}: cannot be exported to C; C export supports {SUPPORTED}{hint}")


# ---------------------------------------------------------------------------------------------------------
# What the header computes, taken from a task object
# ---------------------------------------------------------------------------------------------------------

@dataclass
class CModel:
    """Everything the C code needs, as numpy arrays: the recurrent stack, the head and the scaling."""

    task: str                      # "classify" or "forecast"
    kind: str                      # "lstm", "gru", "rnn_tanh" or "rnn_relu"
    layers: list[dict[str, np.ndarray]]   # per layer: w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H,)
    head_w: np.ndarray             # (O, F)
    head_b: np.ndarray             # (O,)
    in_mean: np.ndarray            # (I,): inputs are (x - mean) / std
    in_std: np.ndarray
    pooling: str = "last"          # classify: last, max, mean or maxmean
    classes: list[str] = field(default_factory=list)
    horizon: int = 1               # forecast: out is (horizon, targets), row-major
    targets: list[str] = field(default_factory=list)
    residual: bool = False         # forecast: the head predicts the change from the last value
    window: int = 0                # forecast: the steps per window the run was trained on

    @property
    def input_size(self) -> int:
        return self.layers[0]["w_ih"].shape[1]

    @property
    def hidden_size(self) -> int:
        return self.layers[0]["w_hh"].shape[1]

    @property
    def output_size(self) -> int:
        return self.head_w.shape[0]


def describe(task: Any) -> CModel:
    """The :class:`CModel` of a fitted classify or forecast task; a one-line refusal for anything else."""
    name = getattr(task, "name", type(task).__name__)
    model = getattr(task, "model_", None)
    if name == "classify" and task.config.model == "bow":
        refuse("model 'bow' (a tf-idf logistic regression)")
    rnn = getattr(model, "rnn", None)
    if rnn is not None and rnn.fused_kind() is None:
        cell = rnn.cells[0]
        detail = {"GRUCell": " with reset_after=False",
                  "SimpleRNNCell": f" with activation {getattr(cell, 'activation', '')!r}"}.get(type(cell).__name__, "")
        refuse(f"cell {type(cell).__name__}{detail}")
    if name not in ("classify", "forecast"):
        refuse(f"a {name} run", onnx=name == "textgen")
    if name == "classify" and task.kind_ == "text":
        refuse("a text classifier (word ids in)", onnx=True)
    kind_name = task.config.model
    if rnn is None or getattr(model, "convs", None) or kind_name.startswith("conv") or kind_name == "cnn-lstm":
        refuse(f"model {kind_name!r}", onnx=True)
    if rnn.bidirectional:
        refuse(f"model {kind_name!r} (bidirectional: it reads each sequence from both ends)", onnx=True)

    def array(t) -> np.ndarray:
        return t.detach().float().cpu().numpy()

    layers = []
    for cell in rnn.cells:
        zeros = np.zeros(cell.weight_ih.shape[0], np.float32)
        layers.append({"w_ih": array(cell.weight_ih), "w_hh": array(cell.weight_hh),
                       "b_ih": zeros if cell.bias_ih is None else array(cell.bias_ih),
                       "b_hh": zeros if cell.bias_hh is None else array(cell.bias_hh)})
    common = dict(kind=rnn.fused_kind(), layers=layers, head_w=array(model.head.weight), head_b=array(model.head.bias))
    if name == "classify":
        return CModel("classify", **common, in_mean=np.asarray(task.mean_, np.float32),
                      in_std=np.asarray(task.std_, np.float32), pooling=task.config.pooling,
                      classes=list(task.classes_))
    return CModel("forecast", **common, in_mean=np.asarray(task.normalizer_.mean, np.float32),
                  in_std=np.asarray(task.normalizer_.std, np.float32), horizon=model.horizon,
                  targets=list(task.series_.targets), residual=bool(model.residual),
                  window=task.window_config_.lookback // task.config.step)


# ---------------------------------------------------------------------------------------------------------
# int8 weights
# ---------------------------------------------------------------------------------------------------------

INT8_SCHEME = """\
/* int8 weights, symmetric, one scale per row ("per output channel"). Row r of a weight matrix W (one unit
 * of one gate, or one output of the head) is stored as q[r][c] = round(W[r][c] / s[r]), with
 * s[r] = max_c |W[r][c]| / 127: W[r][c] ~ s[r] * q[r][c], q in [-127, 127], and 0 stays exactly 0.
 * A matrix-vector product sums q[r][c] * x[c] in float and multiplies the row's sum by s[r] once.
 * Why per row: the gates' rows have very different ranges, and one scale for a whole matrix (per tensor)
 * would leave the small rows only a few levels. Biases, scales, the input scaling and every activation
 * stay float32 (the Cortex-M4F of an Arduino Nano 33 BLE has a float unit): the weights take a quarter
 * of the flash, the arithmetic is unchanged. */"""


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) float -> (int8 (rows, cols), float32 scales (rows,)) as ``INT8_SCHEME`` says."""
    top = np.abs(w).max(axis=1)
    scale = np.where(top > 0, top / 127.0, 1.0).astype(np.float32)    # an all-zero row keeps scale 1
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


# ---------------------------------------------------------------------------------------------------------
# The templates ($p: the prefix, $P: the same in capitals; the rest is filled in by render())
# ---------------------------------------------------------------------------------------------------------

HEADER = """\
/* $file: $summary
 *
 * Written by rnnkit $version from $source (rnnkit export RUN --format c).
 * Dependency-free C99: only the C library (<math.h>: link with -lm; <stdint.h>, <string.h>).
 * Every function is static inline, so one program may include several such headers (each has its own prefix).
 *
 * Use, one time step at a time (a sensor stream):
 *     ${p}_state s;
 *     ${p}_reset(&s);
 *     ${p}_step(&s, x);        x: ${P}_INPUT_SIZE raw values of one step: $inputs
 *     ${p}_output(&s, out);    out: ${P}_OUTPUT_SIZE floats: $outputs
 * or a whole sequence of T steps, x holding T * ${P}_INPUT_SIZE floats, one step after the other:
 *     $run_use
 *
 * Memory: the state is $state_bytes bytes; ${p}_step needs $step_stack bytes of stack, ${p}_output $output_stack.
 */
#ifndef ${P}_H
#define ${P}_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define ${P}_INPUT_SIZE $input_size
#define ${P}_HIDDEN_SIZE $hidden_size
#define ${P}_NUM_LAYERS $num_layers
#define ${P}_GATES $gates   /* rows of each weight matrix = GATES * HIDDEN_SIZE; $gate_order */
#define ${P}_OUTPUT_SIZE $output_size
#define ${P}_G (${P}_GATES * ${P}_HIDDEN_SIZE)

$scheme
typedef $weight_type ${p}_weight;

/* the input scaling learned in training: x -> (x - mean) / std */
static const float ${p}_in_mean[${P}_INPUT_SIZE] = {$in_mean};
static const float ${p}_in_std[${P}_INPUT_SIZE] = {$in_std};
$extra_tables
$weights
/* one recurrent layer: W (G x in) multiplies the input, U (G x H) the previous h; b_ih + b_hh as in torch */
typedef struct {
    const ${p}_weight *w_ih, *w_hh;
    const float *s_ih, *s_hh;   /* int8: the per-row scales; float32: none (0) */
    const float *b_ih, *b_hh;
    int in;                     /* the layer's input size */
} ${p}_layer;

static const ${p}_layer ${p}_layers[${P}_NUM_LAYERS] = {
$layer_table
};

typedef struct {
$state_fields
    int32_t steps;                                 /* steps read since the reset */
} ${p}_state;

/* y[r] = b[r] + scale[r] * sum_c w[r][c] * x[c]: a (rows x cols) row-major matrix times a vector */
static inline void ${p}_matvec(const ${p}_weight *w, const float *scale, const float *b, const float *x,
                             int rows, int cols, float *y) {
    for (int r = 0; r < rows; r++) {
        const ${p}_weight *row = w + (long)r * cols;
        float acc = 0.0f;
        for (int c = 0; c < cols; c++) acc += (float)row[c] * x[c];
        y[r] = (scale ? acc * scale[r] : acc) + b[r];
    }
}

static inline float ${p}_sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

$cell
/* a fresh state: everything zero (all-zero bytes are 0.0f in IEEE 754) */
static inline void ${p}_reset(${p}_state *s) { memset(s, 0, sizeof *s); }

/* read one time step: x holds ${P}_INPUT_SIZE raw input values */
static inline void ${p}_step(${p}_state *s, const float *x) {
    float z[${P}_INPUT_SIZE];
    for (int k = 0; k < ${P}_INPUT_SIZE; k++) {
$scale_input
    }
    const float *in = z;
    for (int l = 0; l < ${P}_NUM_LAYERS; l++) {
        $cell_call
        in = s->h[l];
    }
$after_step
    s->steps++;
}

$output
$run
#endif /* ${P}_H */
"""

# One step of each cell: x is the layer's input, h (and c) its state, updated in place. The gate order
# is torch's, so the weight rows are copied as they are.
CELLS = {
    "lstm": """\
/* LSTM: i, f, g, o = the four row blocks of W x + b_ih + U h + b_hh;
 * c = sigmoid(f) * c + sigmoid(i) * tanh(g);  h = sigmoid(o) * tanh(c) */
static inline void ${p}_cell(const ${p}_layer *l, const float *x, float *h, float *c) {
    float xp[${P}_G], hp[${P}_G];
    ${p}_matvec(l->w_ih, l->s_ih, l->b_ih, x, ${P}_G, l->in, xp);
    ${p}_matvec(l->w_hh, l->s_hh, l->b_hh, h, ${P}_G, ${P}_HIDDEN_SIZE, hp);
    const int H = ${P}_HIDDEN_SIZE;
    for (int j = 0; j < H; j++) {
        float i = ${p}_sigmoid(xp[j] + hp[j]);
        float f = ${p}_sigmoid(xp[H + j] + hp[H + j]);
        float g = tanhf(xp[2 * H + j] + hp[2 * H + j]);
        float o = ${p}_sigmoid(xp[3 * H + j] + hp[3 * H + j]);
        c[j] = f * c[j] + i * g;
        h[j] = o * tanhf(c[j]);
    }
}
""",
    "gru": """\
/* GRU (torch's form, reset after the matmul): r, z, n row blocks;
 * r = sigmoid(Wr x + Ur h + b);  z = sigmoid(Wz x + Uz h + b);  n = tanh(Wn x + b_in + r * (Un h + b_hn));
 * h = (1 - z) * n + z * h */
static inline void ${p}_cell(const ${p}_layer *l, const float *x, float *h) {
    float xp[${P}_G], hp[${P}_G];
    ${p}_matvec(l->w_ih, l->s_ih, l->b_ih, x, ${P}_G, l->in, xp);
    ${p}_matvec(l->w_hh, l->s_hh, l->b_hh, h, ${P}_G, ${P}_HIDDEN_SIZE, hp);
    const int H = ${P}_HIDDEN_SIZE;
    for (int j = 0; j < H; j++) {
        float r = ${p}_sigmoid(xp[j] + hp[j]);
        float z = ${p}_sigmoid(xp[H + j] + hp[H + j]);
        float n = tanhf(xp[2 * H + j] + r * hp[2 * H + j]);
        h[j] = n + z * (h[j] - n);
    }
}
""",
    "rnn": """\
/* simple RNN (Elman): h = $act(W x + b_ih + U h + b_hh) */
static inline void ${p}_cell(const ${p}_layer *l, const float *x, float *h) {
    float xp[${P}_G], hp[${P}_G];
    ${p}_matvec(l->w_ih, l->s_ih, l->b_ih, x, ${P}_G, l->in, xp);
    ${p}_matvec(l->w_hh, l->s_hh, l->b_hh, h, ${P}_G, ${P}_HIDDEN_SIZE, hp);
    for (int j = 0; j < ${P}_HIDDEN_SIZE; j++) h[j] = $act_expr;
}
""",
}

CLASSIFY_OUTPUT = """\
/* the class logits (${P}_OUTPUT_SIZE, in the order of ${p}_classes) from the steps read so far:
 * the head reads the last layer's output pooled over time ($pooling) */
static inline void ${p}_output(const ${p}_state *s, float *out) {
$features
    ${p}_matvec(${p}_head_w, $head_scale, ${p}_head_b, features, ${P}_OUTPUT_SIZE, $feature_size, out);
}
"""

CLASSIFY_RUN = """\
/* a whole sequence: x holds steps * ${P}_INPUT_SIZE values; writes the logits, returns the class index */
static inline int ${p}_run(const float *x, int steps, float *out) {
    ${p}_state s;
    ${p}_reset(&s);
    for (int t = 0; t < steps; t++) ${p}_step(&s, x + (long)t * ${P}_INPUT_SIZE);
    ${p}_output(&s, out);
    int best = 0;
    for (int k = 1; k < ${P}_OUTPUT_SIZE; k++) if (out[k] > out[best]) best = k;
    return best;
}
"""

FORECAST_OUTPUT = """\
/* the forecast from the steps read so far: ${P}_HORIZON steps x ${P}_TARGETS targets, row-major, in the
 * targets' own units (the head's normalised values $residual_note times std plus mean) */
static inline void ${p}_output(const ${p}_state *s, float *out) {
    ${p}_matvec(${p}_head_w, $head_scale, ${p}_head_b, s->h[${P}_NUM_LAYERS - 1], ${P}_OUTPUT_SIZE,
              ${P}_HIDDEN_SIZE, out);
    for (int i = 0; i < ${P}_OUTPUT_SIZE; i++) {
        int k = i % ${P}_TARGETS;
        out[i] = (out[i]$residual_term) * ${p}_in_std[k] + ${p}_in_mean[k];
    }
}
"""

FORECAST_RUN = """\
/* a whole window: x holds steps * ${P}_INPUT_SIZE values (the run was trained on $window steps);
 * writes the forecast (see ${p}_output) */
static inline void ${p}_run(const float *x, int steps, float *out) {
    ${p}_state s;
    ${p}_reset(&s);
    for (int t = 0; t < steps; t++) ${p}_step(&s, x + (long)t * ${P}_INPUT_SIZE);
    ${p}_output(&s, out);
}
"""

# The program the tests and the benchmark compile: reads sequences on stdin, writes outputs on stdout.
# In: int32 n, then n times (int32 T, T * INPUT_SIZE float32). Out: int32 sizeof(state), then n times
# OUTPUT_SIZE float32. Odd sequences go through reset/step/output, even ones through run: both paths.
DRIVER = """\
#include <stdio.h>
#include <stdlib.h>
#include "$header"

int main(void) {
    int32_t n, T, size = (int32_t)sizeof(${p}_state);
    float out[${P}_OUTPUT_SIZE];
    fwrite(&size, sizeof size, 1, stdout);
    if (fread(&n, sizeof n, 1, stdin) != 1) return 1;
    for (int32_t i = 0; i < n; i++) {
        if (fread(&T, sizeof T, 1, stdin) != 1 || T < 0) return 1;
        size_t count = (size_t)T * ${P}_INPUT_SIZE;
        float *x = malloc(sizeof(float) * (count ? count : 1));
        if (!x || fread(x, sizeof(float), count, stdin) != count) return 1;
        if (i % 2) {
            ${p}_state s;
            ${p}_reset(&s);
            for (int32_t t = 0; t < T; t++) ${p}_step(&s, x + (size_t)t * ${P}_INPUT_SIZE);
            ${p}_output(&s, out);
        } else {
            ${p}_run(x, T, out);
        }
        fwrite(out, sizeof(float), ${P}_OUTPUT_SIZE, stdout);
        free(x);
    }
    return 0;
}
"""


# ---------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------

def c_floats(values: np.ndarray, per_line: int = 8) -> str:
    """A C initialiser list of float32 values (9 significant digits: exact for float32)."""
    return _wrap([_c_float(v) for v in np.asarray(values, np.float32).ravel()], per_line)


def _c_float(v: float) -> str:
    text = f"{float(v):.9g}"
    return text + ("f" if any(ch in text for ch in ".e") else ".0f")      # "1" is an int in C: "1.0f"


def c_ints(values: np.ndarray, per_line: int = 20) -> str:
    return _wrap([str(int(v)) for v in np.asarray(values).ravel()], per_line)


def _wrap(items: list[str], per_line: int) -> str:
    if len(items) <= per_line:
        return " " + ", ".join(items) + " "
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "\n    " + ",\n    ".join(lines) + "\n"


def c_string(text: str) -> str:
    """A C string literal; bytes outside printable ASCII as octal escapes (UTF-8)."""
    out = []
    for b in text.encode("utf-8"):
        ch = chr(b)
        out.append("\\" + ch if ch in '"\\' else ch if 32 <= b < 127 and ch not in "?$" else f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def prefix_for(path: str | Path) -> str:
    """A C identifier from the file name: ``gestures-int8.h`` -> ``gestures_int8``."""
    stem = re.sub(r"[^0-9A-Za-z_]", "_", Path(path).name.split(".")[0]) or "model"
    return stem if not stem[0].isdigit() else "m_" + stem


def memory(model: CModel) -> dict[str, int]:
    """Bytes of RAM the header's functions use, from the dimensions: the state, the stack of one step and of
    the output, and the output buffer. ``total`` is what a device needs at once (state + the larger stack + out)."""
    H, I, G, L = model.hidden_size, model.input_size, GATES[model.kind] * model.hidden_size, len(model.layers)
    state = L * H * (2 if model.kind == "lstm" else 1)              # h (and c) of every layer
    if model.pooling in ("max", "maxmean"):
        state += H
    if model.pooling in ("mean", "maxmean"):
        state += H
    if model.residual:
        state += len(model.targets)
    state_bytes = 4 * state + 4                                      # + the int32 step count
    step = 4 * (I + 2 * G)                                           # z[I], then the cell's xp[G] and hp[G]
    output = 4 * (2 * H if model.pooling == "maxmean" else H if model.pooling in ("max", "mean") else 0)
    out = 4 * model.output_size
    return {"state": state_bytes, "step_stack": step, "output_stack": output, "output_buffer": out,
            "total": state_bytes + max(step, output) + out}


def weight_bytes(model: CModel, weights: str) -> int:
    """Bytes of the weight matrices in the header (int8: one byte each plus a float scale per row)."""
    mats = [m for layer in model.layers for m in (layer["w_ih"], layer["w_hh"])] + [model.head_w]
    if weights == "int8":
        return sum(m.size + 4 * m.shape[0] for m in mats)
    return sum(4 * m.size for m in mats)


def render(model: CModel, prefix: str, weights: str = "float32", source: str = "a run",
           file: str = "model.h") -> str:
    """The header's text: the templates above, filled in for ``model``."""
    int8 = weights == "int8"
    p, P = prefix, prefix.upper()
    H, L, lstm = model.hidden_size, len(model.layers), model.kind == "lstm"

    def fill(template: str, **values: Any) -> str:
        return Template(template).substitute(p=p, P=P, **values)

    def matrix(name: str, w: np.ndarray) -> tuple[str, str]:
        """The C arrays of one weight matrix, and the expression of its scales (0: none)."""
        if not int8:
            return f"static const {p}_weight {name}[{w.size}] = {{{c_floats(w)}}};\n", "0"
        q, scale = quantize_rows(w)
        return (f"static const {p}_weight {name}[{w.size}] = {{{c_ints(q)}}};\n"
                f"static const float {name}_scale[{len(scale)}] = {{{c_floats(scale)}}};\n", f"{name}_scale")

    # the weights, and the table of layers that points at them
    arrays, table = [], []
    for k, layer in enumerate(model.layers):
        w_ih, s_ih = matrix(f"{p}_w_ih_{k}", layer["w_ih"])
        w_hh, s_hh = matrix(f"{p}_w_hh_{k}", layer["w_hh"])
        arrays.append(f"/* layer {k} */\n{w_ih}{w_hh}"
                      f"static const float {p}_b_ih_{k}[{len(layer['b_ih'])}] = {{{c_floats(layer['b_ih'])}}};\n"
                      f"static const float {p}_b_hh_{k}[{len(layer['b_hh'])}] = {{{c_floats(layer['b_hh'])}}};\n")
        table.append(f"    {{{p}_w_ih_{k}, {p}_w_hh_{k}, {s_ih}, {s_hh}, {p}_b_ih_{k}, {p}_b_hh_{k}, "
                     f"{layer['w_ih'].shape[1]}}},")
    head_w, head_scale = matrix(f"{p}_head_w", model.head_w)
    arrays.append(f"/* the head: {model.head_w.shape[0]} outputs from {model.head_w.shape[1]} features */\n"
                  f"{head_w}static const float {p}_head_b[{model.output_size}] = {{{c_floats(model.head_b)}}};\n")

    # the state, and what a step does after the layers
    fields = [f"    float h[{P}_NUM_LAYERS][{P}_HIDDEN_SIZE];   /* each layer's output h */"]
    if lstm:
        fields.append(f"    float c[{P}_NUM_LAYERS][{P}_HIDDEN_SIZE];   /* each layer's cell state */")
    after: list[str] = []
    if model.task == "classify":
        scale_input = (f"        float v = (x[k] - {p}_in_mean[k]) / {p}_in_std[k];\n"
                       f"        z[k] = v == v ? v : 0.0f;   /* a missing value (NaN) reads as the channel mean */")
        pooled = []
        if model.pooling in ("max", "maxmean"):
            fields.append(f"    float pool_max[{P}_HIDDEN_SIZE];   /* the running max of the last layer's h */")
            pooled.append("        if (s->steps == 0 || in[j] > s->pool_max[j]) s->pool_max[j] = in[j];")
        if model.pooling in ("mean", "maxmean"):
            fields.append(f"    float pool_sum[{P}_HIDDEN_SIZE];   /* its running sum, for the mean */")
            pooled.append("        s->pool_sum[j] += in[j];")
        if pooled:
            after = ["    /* pooling over time of the last layer's output */",
                     f"    for (int j = 0; j < {P}_HIDDEN_SIZE; j++) {{", *pooled, "    }"]
        mean = "s->pool_sum[j] / (float)(s->steps > 0 ? s->steps : 1)"
        features, size = {
            "last": (f"    const float *features = s->h[{P}_NUM_LAYERS - 1];", f"{P}_HIDDEN_SIZE"),
            "max": ("    const float *features = s->pool_max;", f"{P}_HIDDEN_SIZE"),
            "mean": (f"    float features[{P}_HIDDEN_SIZE];\n"
                     f"    for (int j = 0; j < {P}_HIDDEN_SIZE; j++) features[j] = {mean};", f"{P}_HIDDEN_SIZE"),
            "maxmean": (f"    float features[2 * {P}_HIDDEN_SIZE];   /* the max, then the mean */\n"
                        f"    for (int j = 0; j < {P}_HIDDEN_SIZE; j++) {{\n"
                        f"        features[j] = s->pool_max[j];\n"
                        f"        features[{P}_HIDDEN_SIZE + j] = {mean};\n    }}", f"2 * {P}_HIDDEN_SIZE"),
        }[model.pooling]
        output = fill(CLASSIFY_OUTPUT, features=features, feature_size=size, pooling=model.pooling,
                      head_scale=head_scale)
        run = fill(CLASSIFY_RUN)
        extra = (f"\n/* the classes, in the order of the logits */\n"
                 f"static const char *const {p}_classes[{P}_OUTPUT_SIZE] = "
                 f"{{ {', '.join(c_string(c) for c in model.classes)} }};\n")
        inputs = "the channels, in the training data's order"
        outputs = f"one logit per class (the largest is the prediction; names in {p}_classes)"
        run_use = f"int k = {p}_run(x, T, out);   // k: the predicted class, {p}_classes[k]"
    else:
        K = len(model.targets)
        scale_input = f"        z[k] = (x[k] - {p}_in_mean[k]) / {p}_in_std[k];"
        if model.residual:
            fields.append(f"    float last[{P}_TARGETS];   /* the last step's normalised targets */")
            after = [f"    for (int k = 0; k < {P}_TARGETS; k++) s->last[k] = z[k];   /* the model predicts "
                     f"the change from them */"]
        output = fill(FORECAST_OUTPUT, head_scale=head_scale,
                      residual_term=" + s->last[k]" if model.residual else "",
                      residual_note="plus the last step's targets," if model.residual else "")
        run = fill(FORECAST_RUN, window=model.window)
        extra = (f"\n#define {P}_HORIZON {model.horizon}\n#define {P}_TARGETS {K}\n"
                 f"/* the targets (the first {K} inputs), in the order of each forecast step's values */\n"
                 f"static const char *const {p}_targets[{P}_TARGETS] = "
                 f"{{ {', '.join(c_string(t) for t in model.targets)} }};\n")
        inputs = "the columns, in the run's order (the targets first)"
        outputs = f"{model.horizon} forecast step(s) x {K} target(s), in the targets' units"
        run_use = f"{p}_run(x, T, out);"

    activation = {"rnn_tanh": ("tanh", "tanhf(xp[j] + hp[j])"), "rnn_relu": ("relu", "fmaxf(xp[j] + hp[j], 0.0f)")}
    act, act_expr = activation.get(model.kind, ("", ""))
    cell = fill(CELLS["rnn" if model.kind.startswith("rnn") else model.kind], act=act, act_expr=act_expr)
    mem = memory(model)
    what = (f"{len(model.classes)} classes" if model.task == "classify"
            else f"{model.horizon} step(s) x {len(model.targets)} target(s)")
    return fill(
        HEADER, file=file, version=__version__, source=source, inputs=inputs, outputs=outputs, run_use=run_use,
        summary=f"a {model.task} {model.kind} {L}x{H} ({what}), {model.input_size} inputs per step, {weights} weights",
        state_bytes=mem["state"], step_stack=mem["step_stack"], output_stack=mem["output_stack"],
        input_size=model.input_size, hidden_size=H, num_layers=L, gates=GATES[model.kind],
        gate_order={"lstm": "gate order i, f, g, o", "gru": "gate order r, z, n"}.get(model.kind, "one block"),
        output_size=model.output_size, scheme=INT8_SCHEME if int8 else "/* float32 weights */",
        weight_type="int8_t" if int8 else "float", in_mean=c_floats(model.in_mean), in_std=c_floats(model.in_std),
        extra_tables=extra, weights="\n".join(arrays), layer_table="\n".join(table),
        state_fields="\n".join(fields), cell=cell, scale_input=scale_input,
        cell_call=f"{p}_cell(&{p}_layers[l], in, s->h[l]{', s->c[l]' if lstm else ''});",
        after_step="\n".join(after), output=output, run=run)


def export_c(task: Any, path: str | Path, weights: str = "float32", source: str | None = None) -> dict[str, Any]:
    """Write ``task``'s model to ``path`` as one C header; returns what was written, the weights' bytes and
    the RAM figures (``memory``). ``source`` names the run in the header's first comment."""
    model = describe(task)
    path = Path(path)
    prefix = prefix_for(path)
    text = render(model, prefix, weights, source=source or f"a {task.name} run", file=path.name)
    path.write_text(text, encoding="utf-8")
    return {"format": "c", "kind": "step + whole-sequence", "path": str(path), "prefix": prefix,
            "weights": weights, "weight_bytes": weight_bytes(model, weights), "ram": memory(model),
            "inputs": [f"x ({model.input_size} values per step)"], "outputs": [f"out ({model.output_size} floats)"]}


# ---------------------------------------------------------------------------------------------------------
# Building and running the header (tests, benchmark)
# ---------------------------------------------------------------------------------------------------------

def find_compiler() -> str | None:
    """The system C compiler: ``$CC``, else ``cc``, else ``gcc``; None when there is none."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    return None


def _compile(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} failed on the exported header: {result.stderr.strip()[:2000]}")


def compile_driver(header: str | Path, workdir: str | Path, flags: tuple[str, ...] = ("-O2",)) -> Path:
    """Compile the header into the small stdin/stdout program ``DRIVER`` (strict C99, warnings are errors)."""
    compiler = find_compiler()
    if compiler is None:
        raise RuntimeError("no C compiler: neither $CC, cc nor gcc is on PATH")
    header, workdir = Path(header).resolve(), Path(workdir)
    prefix = prefix_for(header)
    source = workdir / f"{prefix}_driver.c"
    source.write_text(Template(DRIVER).substitute(header=header, p=prefix, P=prefix.upper()), encoding="utf-8")
    exe = workdir / f"{prefix}_driver"
    _compile([compiler, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", *flags, str(source),
              "-o", str(exe), "-lm"])
    return exe


def run_compiled(exe: str | Path, sequences: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """Run (T_i, INPUT_SIZE) float sequences through a compiled driver: (outputs (N, OUTPUT_SIZE), sizeof(state))."""
    payload = [struct.pack("<i", len(sequences))]
    for x in sequences:
        x = np.ascontiguousarray(x, dtype="<f4")
        payload += [struct.pack("<i", x.shape[0]), x.tobytes()]
    result = subprocess.run([str(exe)], input=b"".join(payload), capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"{exe} exited with {result.returncode}: {result.stderr.decode()[:500]}")
    state_size = struct.unpack("<i", result.stdout[:4])[0]
    out = np.frombuffer(result.stdout[4:], dtype="<f4").reshape(len(sequences), -1)
    return out, state_size


def object_size(header: str | Path, workdir: str | Path, flags: tuple[str, ...] = ("-Os",)) -> dict[str, int]:
    """Bytes of code + constants (``text``, with the weights) and of data of the header compiled on its own
    (one function that calls ``P_run``, so nothing is dropped), as ``size`` reports them."""
    compiler = find_compiler()
    if compiler is None or shutil.which("size") is None:
        raise RuntimeError("object_size needs a C compiler and the 'size' tool (binutils)")
    header, workdir = Path(header).resolve(), Path(workdir)
    prefix = prefix_for(header)
    source = workdir / f"{prefix}_object.c"
    source.write_text(f'#include "{header}"\nvoid {prefix}_entry(const float *x, int T, float *out) '
                      f'{{ {prefix}_run(x, T, out); }}\n', encoding="utf-8")
    obj = workdir / f"{prefix}_object.o"
    _compile([compiler, "-std=c99", *flags, "-c", str(source), "-o", str(obj)])
    fields = subprocess.run(["size", str(obj)], capture_output=True, text=True, check=True).stdout.splitlines()[1]
    text, data, bss = (int(v) for v in fields.split()[:3])
    return {"text": text, "data": data, "bss": bss}


# ---------------------------------------------------------------------------------------------------------
# Comparing with PyTorch
# ---------------------------------------------------------------------------------------------------------

def torch_outputs(task: Any, sequences: list[np.ndarray]) -> np.ndarray:
    """What PyTorch computes for raw sequences, on the task's own path, flattened like the header's ``out``:
    classify logits (N, K); forecast values in the targets' units (N, horizon * targets)."""
    import torch

    with torch.no_grad():
        if task.name == "classify":
            x, lengths = task._encode(list(sequences))
            return task.model_.eval()(torch.from_numpy(x), torch.from_numpy(lengths)).numpy()
        norm = task.normalizer_
        x = torch.from_numpy(norm.transform(np.stack(sequences)).astype(np.float32))
        out = norm.inverse(task.model_.eval()(x).numpy(), slice(0, task.n_targets_))
        return out.reshape(len(sequences), -1)


def random_sequences(task: Any, n: int = 16, seed: int = 0) -> list[np.ndarray]:
    """Raw inputs on the scale of the training data: classify sequences of 1..60 steps, forecast windows."""
    rng = np.random.default_rng(seed)
    if task.name == "classify":
        return [(task.mean_ + task.std_ * rng.normal(0, 1, (int(rng.integers(1, 61)), len(task.mean_))))
                .astype(np.float32) for _ in range(n)]
    norm, steps = task.normalizer_, task.window_config_.lookback // task.config.step
    return list((norm.mean + norm.std * rng.normal(0, 1, (n, steps, len(norm.mean)))).astype(np.float32))


def check_c(task: Any, header: str | Path, n: int = 16, seed: int = 0) -> dict[str, float]:
    """Compile ``header``, run ``n`` random sequences through it and through PyTorch: the max abs difference,
    and for classifiers the share of sequences given the same class."""
    import tempfile

    sequences = random_sequences(task, n, seed)
    with tempfile.TemporaryDirectory() as tmp:
        got, _ = run_compiled(compile_driver(header, tmp), sequences)
    want = torch_outputs(task, sequences)
    result = {"max_abs_difference": float(np.abs(got - want).max()), "sequences": n}
    if task.name == "classify":
        result["same_class"] = float((got.argmax(1) == want.argmax(1)).mean())
    return result
