"""Export a classifier or forecaster of numeric series as one dependency-free C header, for microcontrollers.

The header holds the weights as arrays and four functions (``P`` is the prefix, from the file name):

* ``P_reset(&s)``: a fresh state; ``P_step(&s, x)``: read one time step of raw input values (a sensor sample);
  ``P_output(&s, out)``: class logits or the forecast from what was read so far. Streaming, step by step.
* ``P_run(x, T, out)``: a whole sequence of T steps at once (classifiers also return the predicted class).

It covers what a small device runs: a recurrent stack (lstm, gru or rnn cells, any number of layers reading
one direction) with a head that gives class logits (pooled over time) or the next values after a window. The
task says what it is: its ``export_spec("c")`` gives a :class:`CModel` (the arrays, and how to check a header
against PyTorch) or refuses in one line what the header cannot compute (other cells, bidirectional or
convolutional models, text, bag of words, a model of another shape); this module names no task. The input
scaling the run learned is inside (channels standardised, outputs in the targets' units); every step given is
read (a classifier's ``predict`` keeps the last ``maxlen`` steps of a longer sequence).

Weights: ``float32``, or ``int8`` with one float scale per weight row (see ``templates/int8_scheme.h.in``).
The C source is in the template files under ``templates/`` (package data); this module fills them in.
:func:`compile_driver` and :func:`run_compiled` build a header with the system C compiler and run sequences
through it (the tests and ``bench/export.py`` use them to compare with PyTorch).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Callable

import numpy as np

from rnnkit import __version__
from rnnkit.runs.io import atomic_write_text

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1, "mingru": 2}
CELLS = "lstm, gru or rnn (tanh, relu) cells, stacked, reading one direction"   # what the header computes


# ---------------------------------------------------------------------------------------------------------
# What the header computes: a CModel, given by the task's export_spec("c")
# ---------------------------------------------------------------------------------------------------------

@dataclass
class CModel:
    """Everything the C code needs, as numpy arrays (the recurrent stack, the head and the input scaling), and
    how to check a header against PyTorch. A task's ``export_spec("c")`` builds it (:func:`rnn_layers` reads a
    recurrent layer, or refuses one the header cannot compute).

    ``output`` is what the head gives: "classes" (logits of the sequence, pooled over time) or "values" (the
    next values after a window, in the targets' units). ``reference(sequences)`` is PyTorch's output for raw
    (T, I) sequences on the task's own path, flattened like the header's ``out`` (N, O); ``inputs(rng, n)``
    draws n raw sequences on the scale of the training data."""

    output: str                    # "classes" or "values"
    kind: str                      # "lstm", "gru", "rnn_tanh" or "rnn_relu"
    layers: list[dict[str, np.ndarray]]   # per layer: w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H,)
    head_w: np.ndarray             # (O, F)
    head_b: np.ndarray             # (O,)
    in_mean: np.ndarray            # (I,): inputs are (x - mean) / std
    in_std: np.ndarray
    reference: Callable[[list[np.ndarray]], np.ndarray]
    inputs: Callable[[np.random.Generator, int], list[np.ndarray]]
    pooling: str = "last"          # classes: last, max, mean or maxmean
    classes: list[str] = field(default_factory=list)
    horizon: int = 1               # values: out is (horizon, targets), row-major
    targets: list[str] = field(default_factory=list)
    residual: bool = False         # values: the head predicts the change from the last value
    window: int = 0                # values: the steps per window the run was trained on

    @property
    def input_size(self) -> int:
        return self.layers[0]["w_ih"].shape[1]

    @property
    def hidden_size(self) -> int:
        return self.layers[0]["w_hh"].shape[1]

    @property
    def output_size(self) -> int:
        return self.head_w.shape[0]


def rnn_layers(rnn: Any, what: str) -> tuple[str, list[dict[str, np.ndarray]]]:
    """(kind, the weights of each layer) of a recurrent layer (:class:`rnnkit.nn.RNN`) the header can compute;
    a one-line refusal (ExportRefused) naming ``what`` (the model) for one it cannot."""
    from rnnkit.nn.cells import MinGRUCell
    from rnnkit.tasks.base import refuse_export

    # minGRU's step is W x and element-wise gates (no U): templates/mingru_cell.c.in. It trains as a parallel
    # scan, but a device reads a stream one step at a time, which is the same function.
    kind = "mingru" if type(rnn.cells[0]) is MinGRUCell else rnn.fused_kind()
    if kind is None:
        cell = rnn.cells[0]
        detail = {"GRUCell": " with reset_after=False",
                  "SimpleRNNCell": f" with activation {getattr(cell, 'activation', '')!r}"}.get(type(cell).__name__, "")
        refuse_export(f"{what}: cell {type(cell).__name__}{detail}", "c", f"the header computes {CELLS}")
    if rnn.bidirectional:
        refuse_export(f"{what} (bidirectional: it reads each sequence from both ends)", "c",
                      f"the header reads a stream step by step, so it computes {CELLS}")

    def array(t) -> np.ndarray:
        return t.detach().float().cpu().numpy()

    layers = []
    for cell in rnn.cells:
        zeros = np.zeros(cell.weight_ih.shape[0], np.float32)
        no_u = cell.weight_hh is None                                   # minGRU: an empty U (0 rows), no b_hh
        layers.append({"w_ih": array(cell.weight_ih),
                       "w_hh": np.zeros((0, cell.hidden_size), np.float32) if no_u else array(cell.weight_hh),
                       "b_ih": zeros if cell.bias_ih is None else array(cell.bias_ih),
                       "b_hh": np.zeros(0, np.float32) if no_u else zeros if cell.bias_hh is None
                       else array(cell.bias_hh)})
    return kind, layers


def describe(task: Any) -> CModel:
    """The :class:`CModel` of a fitted task (its ``export_spec("c")``), or its one-line refusal."""
    from rnnkit.export import export_spec

    model = export_spec(task, "c")
    if not isinstance(model, CModel):
        raise TypeError(f"{type(task).__name__}.export_spec('c') gave a {type(model).__name__}; expected a CModel "
                        f"(rnnkit.export.c)")
    return model


# ---------------------------------------------------------------------------------------------------------
# int8 weights
# ---------------------------------------------------------------------------------------------------------

def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) float -> (int8 (rows, cols), float32 scales (rows,)) as ``templates/int8_scheme.h.in`` says:
    symmetric, one scale per row, ``W[r][c] ~ s[r] * q[r][c]`` with ``s[r] = max_c |W[r][c]| / 127``."""
    top = np.abs(w).max(axis=1)
    scale = np.where(top > 0, top / 127.0, 1.0).astype(np.float32)    # an all-zero row keeps scale 1
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


# ---------------------------------------------------------------------------------------------------------
# The templates: the C source, in templates/*.in (package data)
# ---------------------------------------------------------------------------------------------------------
#
# string.Template text: $p is the prefix, $P the same in capitals; render() fills in the rest.
#   header.h.in                 the whole header: sizes, input scaling, weights, layer table, state, matvec, step
#   lstm_cell.c.in, gru_cell.c.in, rnn_cell.c.in
#                               one step of each cell: x is the layer's input, h (and c) its state, updated in
#                               place; the gate order is torch's, so the weight rows are copied as they are
#   classify_output.c.in, classify_run.c.in, forecast_output.c.in, forecast_run.c.in
#                               P_output and P_run of each output: "classes" (the classify_* files) and
#                               "values" (the forecast_* files)
#   int8_scheme.h.in            the comment in an int8 header that says how its weights are stored
#   driver.c.in                 the program the tests and the benchmark compile: reads sequences on stdin,
#                               writes outputs on stdout. In: int32 n, then n times (int32 T, T * INPUT_SIZE
#                               float32). Out: int32 sizeof(state), then n times OUTPUT_SIZE float32. Odd
#                               sequences go through reset/step/output, even ones through run: both paths.

@functools.cache
def template(name: str) -> str:
    """The text of ``templates/<name>``, shipped with the package."""
    return resources.files("rnnkit.export").joinpath("templates", name).read_text(encoding="utf-8")


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
    # z[I], then the cell's xp[G] and hp[G] (minGRU has no U h: xp only)
    step = 4 * (I + (G if model.kind == "mingru" else 2 * G))
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
    """The header's text: the templates, filled in for ``model``."""
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
        b_ih = f"static const float {p}_b_ih_{k}[{len(layer['b_ih'])}] = {{{c_floats(layer['b_ih'])}}};\n"
        if layer["w_hh"].size == 0:                       # minGRU: no U and no b_hh (C has no empty arrays)
            arrays.append(f"/* layer {k} */\n{w_ih}{b_ih}")
            table.append(f"    {{{p}_w_ih_{k}, 0, {s_ih}, 0, {p}_b_ih_{k}, 0, {layer['w_ih'].shape[1]}}},")
            continue
        w_hh, s_hh = matrix(f"{p}_w_hh_{k}", layer["w_hh"])
        arrays.append(f"/* layer {k} */\n{w_ih}{w_hh}{b_ih}"
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
    if model.output == "classes":
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
        output = fill(template("classify_output.c.in"), features=features, feature_size=size, pooling=model.pooling,
                      head_scale=head_scale)
        run = fill(template("classify_run.c.in"))
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
        output = fill(template("forecast_output.c.in"), head_scale=head_scale,
                      residual_term=" + s->last[k]" if model.residual else "",
                      residual_note="plus the last step's targets," if model.residual else "")
        run = fill(template("forecast_run.c.in"), window=model.window)
        extra = (f"\n#define {P}_HORIZON {model.horizon}\n#define {P}_TARGETS {K}\n"
                 f"/* the targets (the first {K} inputs), in the order of each forecast step's values */\n"
                 f"static const char *const {p}_targets[{P}_TARGETS] = "
                 f"{{ {', '.join(c_string(t) for t in model.targets)} }};\n")
        inputs = "the columns, in the run's order (the targets first)"
        outputs = f"{model.horizon} forecast step(s) x {K} target(s), in the targets' units"
        run_use = f"{p}_run(x, T, out);"

    activation = {"rnn_tanh": ("tanh", "tanhf(xp[j] + hp[j])"), "rnn_relu": ("relu", "fmaxf(xp[j] + hp[j], 0.0f)")}
    act, act_expr = activation.get(model.kind, ("", ""))
    cell = fill(template(f"{'rnn' if model.kind.startswith('rnn') else model.kind}_cell.c.in"), act=act,
                act_expr=act_expr)
    mem = memory(model)
    what = (f"{len(model.classes)} classes" if model.output == "classes"
            else f"{model.horizon} step(s) x {len(model.targets)} target(s)")
    return fill(
        template("header.h.in"), file=file, version=__version__, source=source, inputs=inputs, outputs=outputs,
        run_use=run_use,
        summary=(f"a {'classifier' if model.output == 'classes' else 'forecaster'} {model.kind} {L}x{H} ({what}), "
                 f"{model.input_size} inputs per step, {weights} weights"),
        state_bytes=mem["state"], step_stack=mem["step_stack"], output_stack=mem["output_stack"],
        input_size=model.input_size, hidden_size=H, num_layers=L, gates=GATES[model.kind],
        gate_order={"lstm": "gate order i, f, g, o", "gru": "gate order r, z, n",
                    "mingru": "gate order z, candidate; no U"}.get(model.kind, "one block"),
        output_size=model.output_size,
        scheme=template("int8_scheme.h.in").rstrip("\n") if int8 else "/* float32 weights */",
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
    atomic_write_text(path, text)       # a full disk leaves the old file (or none), never half a header
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
    """Compile the header into the small stdin/stdout program ``templates/driver.c.in`` (strict C99, warnings
    are errors)."""
    compiler = find_compiler()
    if compiler is None:
        raise RuntimeError("no C compiler: neither $CC, cc nor gcc is on PATH")
    header, workdir = Path(header).resolve(), Path(workdir)
    prefix = prefix_for(header)
    source = workdir / f"{prefix}_driver.c"
    driver = Template(template("driver.c.in")).substitute(header=header, p=prefix, P=prefix.upper())
    source.write_text(driver, encoding="utf-8")
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
    class logits (N, K), or values in the targets' units (N, horizon * targets)."""
    return describe(task).reference(list(sequences))


def random_sequences(task: Any, n: int = 16, seed: int = 0) -> list[np.ndarray]:
    """``n`` raw inputs on the scale of the training data (the task's ``CModel.inputs``)."""
    return describe(task).inputs(np.random.default_rng(seed), n)


def check_c(task: Any, header: str | Path, n: int = 16, seed: int = 0) -> dict[str, float]:
    """Compile ``header``, run ``n`` random sequences through it and through PyTorch: the max abs difference,
    and for classifiers the share of sequences given the same class."""
    import tempfile

    model = describe(task)
    sequences = model.inputs(np.random.default_rng(seed), n)
    with tempfile.TemporaryDirectory() as tmp:
        got, _ = run_compiled(compile_driver(header, tmp), sequences)
    want = model.reference(sequences)
    result = {"max_abs_difference": float(np.abs(got - want).max()), "sequences": n}
    if model.output == "classes":
        result["same_class"] = float((got.argmax(1) == want.argmax(1)).mean())
    return result
