"""Export a run to ONNX, and check the file against PyTorch with onnxruntime.

What a graph computes is the task's business: its ``export_spec("onnx")`` gives an :class:`OnnxSpec`, the
module to trace (its network behind the input and output scaling the run learned), an example batch, the
names of the inputs and outputs, the axes that vary, and how to check a file (its own path on random inputs
beside the file's answers). This module traces, writes and compares; it names no task. The graphs rnnkit's
tasks give:

| graph          | inputs                                                  | outputs                                    |
|----------------|---------------------------------------------------------|--------------------------------------------|
| step           | ``token`` (B,) int64, ``h`` (L, B, H) [, ``c`` (L, B, H)] | ``logits`` (B, V), ``h_out`` [, ``c_out``] |
| whole-sequence | ``x`` (B, T, C) float32 raw values (NaN: missing)       | ``logits`` (B, K)                          |
| (classifiers)  | or (B, T) int64 word ids,                               |                                            |
|                | ``mask`` (B, T) float32: 1 for a valid step, 0 padding  |                                            |
| whole-sequence | ``x`` (B, T, F) float32 window in the columns' own units | ``forecast`` (B, horizon, targets), units  |
| (forecasters)  |                                                         |                                            |

* A **step model** (a language model) has explicit state: one token per row in, the next token's logits and
  the new state out; feed ``h_out``/``c_out`` back as ``h``/``c`` (zeros to start). Column 0 of the logits is
  padding, never a token, and is ``-inf`` (as in rnnkit's own sampling).
* **Whole-sequence models** have dynamic batch and time axes. Padding is handled by the mask, as in rnnkit (no
  packed sequences): the valid steps come first, the padding after them, and padding never changes a
  prediction. The graph includes the input scaling the run learned; a text classifier takes word ids from the
  run's ``tokenizer.json``. Every step given is read (``predict`` keeps the last ``maxlen`` steps of a longer
  sequence: cut it before, to get the same). Models whose window length is fixed by their weights or positions
  (a forecaster that flattens the window) need exactly the steps they were trained on.

Which exporter: ``torch.onnx.export`` has two. The default since torch 2.9 (``dynamo=True``) needs the extra
package ``onnxscript``, which torch does not install. The TorchScript tracer (``dynamo=False``) needs only
``onnx``; it is deprecated (it warns) but present and unchanged in torch 2.13 and 2.14.1, and it maps torch's
fused LSTM/GRU/RNN kernels onto ONNX's own LSTM/GRU/RNN operators, whose time axis is dynamic. So rnnkit uses
the tracer and silences its deprecation warning.

Tracing records the operations one example runs, and drops Python branches on the data. rnnkit's layer picks
its path from the data (e.g. "no step is padded"), so a task's example batch takes the general path: several
sequences of different lengths, padded at the end. That path gives the same numbers for every batch
(:func:`max_abs_difference` checks it at several batch sizes and lengths).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from rnnkit.runs.io import atomic_write_bytes

OPSET = 17   # read by every onnxruntime of the last years; has LSTM/GRU/RNN with dynamic time axes


@dataclass
class OnnxSpec:
    """What a task's ``export_spec("onnx")`` gives the exporter.

    ``compare(run, rng, batch, length)`` makes random inputs of ``batch`` rows and ``length`` steps (a step
    model: ``length`` chained steps), runs the task's own PyTorch path on them and the file on the same ones
    (``run(feeds) -> [the file's outputs]``), and returns the (file's, PyTorch's) array pairs to compare."""

    module: nn.Module                        # traced: the task's network with its learned scaling
    example: tuple[torch.Tensor, ...]        # one batch of inputs that takes the general path
    inputs: list[str]
    outputs: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    kind: str                                # "step" or "whole-sequence"
    compare: Callable[[Callable[[dict[str, np.ndarray]], list[np.ndarray]], np.random.Generator, int, int],
                      Iterable[tuple[np.ndarray, np.ndarray]]]
    counts: str = "lengths"                  # what a check's lengths count ("steps" for a step model)


def require_fused(rnn: Any, what: str) -> None:
    """Refuse (ExportRefused, one line) a recurrent layer whose cells have no fused kernel (a Jordan cell, a
    GRU with reset_after=False): the tracer would unroll its loop over time, fixing the length of the graph."""
    from rnnkit.tasks.base import refuse_export

    if rnn is not None and rnn.fused_kind() is None:
        refuse_export(f"{what}: cell {type(rnn.cells[0]).__name__}", "onnx",
                      "the graph maps lstm, gru and rnn (tanh, relu) cells onto ONNX's own operators, whose time "
                      "axis is dynamic; other cells would be unrolled to the example's length")


def onnx_spec(task: Any) -> OnnxSpec:
    """The task's :class:`OnnxSpec`, or its one-line refusal (ExportRefused)."""
    spec = task.export_spec("onnx")
    if not isinstance(spec, OnnxSpec):
        raise TypeError(f"{type(task).__name__}.export_spec('onnx') gave a {type(spec).__name__}; expected an "
                        f"OnnxSpec (rnnkit.export.onnx)")
    return spec


# ---------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------

def export_onnx(task: Any, path: str | Path) -> dict[str, Any]:
    """Write ``task``'s model to ``path`` as ONNX; returns what the file holds (kind, inputs, outputs)."""
    spec = onnx_spec(task)
    try:
        import onnx  # noqa: F401  (torch's exporter writes the file with it)
    except ImportError:
        raise RuntimeError("format='onnx' needs the onnx package: pip install \"rnnkit[export]\"") from None
    module = spec.module.eval()        # the export puts the module back into the mode it found it in
    path = Path(path)
    graph = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer's deprecation notice and its notes on branches it fixes (see the module docstring).
        warnings.simplefilter("ignore")
        torch.onnx.export(module, spec.example, graph, dynamo=False, opset_version=OPSET,
                          input_names=spec.inputs, output_names=spec.outputs, dynamic_axes=spec.dynamic_axes)
    # Written whole and renamed into place: a full disk leaves the old file (or none), never a truncated graph.
    atomic_write_bytes(path, graph.getvalue())
    return {"format": "onnx", "kind": spec.kind, "inputs": spec.inputs, "outputs": spec.outputs, "path": str(path),
            "counts": spec.counts}


# ---------------------------------------------------------------------------------------------------------
# Check a file against PyTorch
# ---------------------------------------------------------------------------------------------------------

def onnx_session(path: str | Path):
    """An onnxruntime session on the CPU (a clear error when the ``export`` extra is not installed)."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("onnxruntime is not installed: pip install \"rnnkit[export]\"") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Max |a - b|, where equal infinities (the padding column's -inf) count as no difference."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    differ = a != b
    return float(np.abs(a[differ] - b[differ]).max(initial=0.0))


@torch.no_grad()
def max_abs_difference(task: Any, path: str | Path, batch_sizes=(1, 4, 16), lengths=(1, 9, 40),
                       seed: int = 0) -> float:
    """The largest |onnxruntime - PyTorch| over random inputs at every batch size and length, PyTorch running
    the task's own path (its encoding, its model, its scaling); see :class:`OnnxSpec`'s ``compare``."""
    spec = onnx_spec(task)
    session = onnx_session(path)
    spec.module.eval()

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return session.run(None, feeds)

    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch in batch_sizes:
        for length in lengths:
            for got, want in spec.compare(run, rng, batch, length):
                worst = max(worst, difference(got, want))
    return worst
