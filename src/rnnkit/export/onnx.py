"""Export a run to ONNX, and check the file against PyTorch with onnxruntime.

What the exported graph computes, per task:

| task     | inputs                                                  | outputs                                    |
|----------|---------------------------------------------------------|--------------------------------------------|
| textgen  | ``token`` (B,) int64, ``h`` (L, B, H) [, ``c`` (L, B, H)] | ``logits`` (B, V), ``h_out`` [, ``c_out``] |
| classify | ``x`` (B, T, C) float32 raw values (NaN: missing)       | ``logits`` (B, K)                          |
|          | or (B, T) int64 word ids,                               |                                            |
|          | ``mask`` (B, T) float32: 1 for a valid step, 0 padding  |                                            |
| forecast | ``x`` (B, T, F) float32 window in the columns' own units | ``forecast`` (B, horizon, targets), units  |

* textgen is a **step model** with explicit state: one token per row in, the next token's logits and the new
  state out; feed ``h_out``/``c_out`` back as ``h``/``c`` (zeros to start). Column 0 of the logits is padding,
  never a token, and is ``-inf`` (as in rnnkit's own sampling).
* classify and forecast are **whole-sequence models** with dynamic batch and time axes. Padding is handled by
  the mask, as in rnnkit (no packed sequences): the valid steps come first, the padding after them, and padding
  never changes a prediction. The graph includes the input scaling the run learned (series channels are
  standardised, forecast columns normalised and the forecast turned back into the targets' units); a text
  classifier takes word ids from the run's ``tokenizer.json``. Every step given is read (``predict`` keeps the last
  ``maxlen`` steps of a longer sequence: cut it before, to get the same). Forecast models that flatten the window
  (ridge, mlp) or index into it (seasonal_naive) need exactly ``lookback // step`` steps.

Which exporter: ``torch.onnx.export`` has two. The default since torch 2.9 (``dynamo=True``) needs the extra
package ``onnxscript``, which torch does not install. The TorchScript tracer (``dynamo=False``) needs only
``onnx``; it is deprecated (it warns) but present and unchanged in torch 2.13 and 2.14.1, and it maps torch's
fused LSTM/GRU/RNN kernels onto ONNX's own LSTM/GRU/RNN operators, whose time axis is dynamic. So rnnkit uses
the tracer and silences its deprecation warning.

Tracing records the operations one example runs, and drops Python branches on the data. rnnkit's layer picks
its path from the data (e.g. "no step is padded"), so the example batch is chosen to take the general path:
several sequences of different lengths, padded at the end. That path gives the same numbers for every batch
(:func:`max_abs_difference` checks it at several batch sizes and lengths).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.tasks.textgen.model import stack_states

OPSET = 17   # read by every onnxruntime of the last years; has LSTM/GRU/RNN with dynamic time axes

# Forecast models whose window length is fixed by their weights (flatten) or positions (seasonal_naive).
FIXED_WINDOW_MODELS = ("ridge", "mlp", "seasonal_naive")


# ---------------------------------------------------------------------------------------------------------
# The modules that are traced: a task's own network behind the input and output scaling it learned
# ---------------------------------------------------------------------------------------------------------

class StepGraph(nn.Module):
    """A language model's step with explicit state: token (B,), h (L, B, H)[, c] -> logits (B, V), h[, c].

    Calls the model's own ``step`` (the fused kernel, one time step); the state goes in and out as stacked
    tensors, the layout ONNX and the compiled samplers use."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        self.lstm = len(lm.rnn.cells[0].state_size) == 2

    def forward(self, token: Tensor, h: Tensor, c: Tensor | None = None):
        # per-layer state tuples, as the layer takes them
        state = [(h[k], c[k]) if self.lstm else (h[k],) for k in range(h.shape[0])]
        logits, state = self.lm.step(token, state)                   # (B, V), one tuple per layer
        return (logits, *stack_states(state))                        # logits, h (L, B, H)[, c]


class ClassifierGraph(nn.Module):
    """Raw values (or word ids) and a mask in, class logits out: ``net(standardised x, lengths)``."""

    def __init__(self, clf: Any):
        super().__init__()
        self.net = clf.model_
        self.series = clf.kind_ == "series"
        if self.series:
            self.register_buffer("mean", torch.as_tensor(clf.mean_, dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(clf.std_, dtype=torch.float32))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.sum(1).long()                                 # (B,): the valid steps come first
        if self.series:
            # standardised with the training statistics, a missing value (NaN) as the channel mean and the
            # padding zero, as the classifier encodes its inputs
            x = torch.nan_to_num((x - self.mean) / self.std, nan=0.0) * mask.unsqueeze(-1)   # (B, T, C)
        return self.net(x, lengths)                                  # (B, K)


class ForecastGraph(nn.Module):
    """A window in the columns' units in, the forecast in the targets' units out (the run's normaliser)."""

    def __init__(self, fc: Any):
        super().__init__()
        self.net = fc.model_
        self.k = fc.n_targets_
        self.register_buffer("mean", torch.as_tensor(fc.normalizer_.mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(fc.normalizer_.std, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        out = self.net((x - self.mean) / self.std)                   # (B, horizon, K), normalised
        return out * self.std[:self.k] + self.mean[:self.k]


# ---------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------

def _refuse(task: Any) -> None:
    """A clear error for what ONNX export does not cover (the C exporter has its own)."""
    from rnnkit.export import SUPPORTED_TASKS

    name = getattr(task, "name", type(task).__name__)
    if name not in SUPPORTED_TASKS:
        raise ValueError(f"task {name!r}: cannot be exported to ONNX; onnx export supports textgen runs (a step "
                         f"model), classify and forecast runs (whole-sequence models)")
    if name == "classify" and task.config.model == "bow":
        raise ValueError("model 'bow' (a tf-idf logistic regression, not a network): cannot be exported to "
                         "ONNX; onnx export supports the classifiers' networks (rnn, gru, lstm, bilstm, bigru, "
                         "conv1d, cnn-lstm)")


def _example(task: Any) -> tuple[nn.Module, tuple, list[str], list[str], dict[str, dict[int, str]]]:
    """The module to trace, its example inputs, input and output names, and the dynamic axes."""
    gen = torch.Generator().manual_seed(0)
    if task.name == "textgen":
        lm = task.model_
        L, H = len(lm.rnn.cells), lm.rnn.hidden_size
        B = 3
        token = torch.randint(1, lm.embed.num_embeddings, (B,), generator=gen)
        state = [torch.zeros(L, B, H)] * len(lm.rnn.cells[0].state_size)
        names = ["h", "c"][:len(state)]
        inputs, outputs = ["token", *names], ["logits", *[n + "_out" for n in names]]
        axes = {"token": {0: "batch"}, "logits": {0: "batch"}, **{n: {1: "batch"} for n in names},
                **{n + "_out": {1: "batch"} for n in names}}
        return StepGraph(lm), (token, *state), inputs, outputs, axes
    if task.name == "classify":
        # Several lengths, padded at the end: the general path of the layer (see the module docstring).
        lengths = torch.tensor([7, 5, 2])
        mask = (torch.arange(7) < lengths.unsqueeze(1)).float()      # (3, 7)
        if task.kind_ == "text":
            x = torch.randint(1, task.tokenizer_.vocab_size, (3, 7), generator=gen) * mask.long()
        else:
            x = torch.randn(3, 7, len(task.mean_), generator=gen) * mask.unsqueeze(-1)
        axes = {"x": {0: "batch", 1: "time"}, "mask": {0: "batch", 1: "time"}, "logits": {0: "batch"}}
        return ClassifierGraph(task), (x, mask), ["x", "mask"], ["logits"], axes
    cfg = task.window_config_                      # lookback and delay as the run settled them
    x = torch.randn(3, cfg.lookback // cfg.step, len(task.columns_), generator=gen)
    time_axis = {} if cfg.model in FIXED_WINDOW_MODELS else {1: "time"}
    axes = {"x": {0: "batch", **time_axis}, "forecast": {0: "batch"}}
    return ForecastGraph(task), (x,), ["x"], ["forecast"], axes


def export_onnx(task: Any, path: str | Path) -> dict[str, Any]:
    """Write ``task``'s model to ``path`` as ONNX; returns what the file holds (kind, inputs, outputs)."""
    _refuse(task)
    try:
        import onnx  # noqa: F401  (torch's exporter writes the file with it)
    except ImportError:
        raise RuntimeError("format='onnx' needs the onnx package: pip install \"rnnkit[export]\"") from None
    module, example, inputs, outputs, axes = _example(task)
    module.eval()                  # the export puts the module back into the mode it found it in
    path = Path(path)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer's deprecation notice and its notes on branches it fixes (see the module docstring).
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), dynamo=False, opset_version=OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes)
    kind = "step" if task.name == "textgen" else "whole-sequence"
    return {"format": "onnx", "kind": kind, "inputs": inputs, "outputs": outputs, "path": str(path)}


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


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    """Max |a - b|, where equal infinities (the padding column's -inf) count as no difference."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    differ = a != b
    return float(np.abs(a[differ] - b[differ]).max(initial=0.0))


@torch.no_grad()
def max_abs_difference(task: Any, path: str | Path, batch_sizes=(1, 4, 16), lengths=(1, 9, 40),
                       seed: int = 0) -> float:
    """The largest |onnxruntime - PyTorch| over random inputs at every batch size and length, PyTorch
    running the task's own path (its encoding, its model, its scaling). For textgen a length is a number of
    chained steps, each step's logits and the final state compared; classify batches mix lengths up to it."""
    session = onnx_session(path)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for B in batch_sizes:
        for T in lengths:
            if task.name == "textgen":
                worst = max(worst, _textgen_difference(task, session, rng, B, T))
            elif task.name == "classify":
                worst = max(worst, _classify_difference(task, session, rng, B, T))
            else:
                worst = max(worst, _forecast_difference(task, session, rng, B, T))
    return worst


def _textgen_difference(task, session, rng, B: int, T: int) -> float:
    lm = task.model_.eval()
    names = [i.name for i in session.get_inputs()]
    tokens = torch.from_numpy(rng.integers(1, lm.embed.num_embeddings, (T, B)))
    state = None
    onnx_state = [np.zeros((len(lm.rnn.cells), B, lm.rnn.hidden_size), np.float32) for _ in names[1:]]
    worst = 0.0
    for t in range(T):
        logits, state = lm.step(tokens[t], state)
        got = session.run(None, {"token": tokens[t].numpy(), **dict(zip(names[1:], onnx_state))})
        onnx_state = got[1:]
        worst = max(worst, _difference(got[0], logits.numpy()))
    for mine, theirs in zip(onnx_state, stack_states(state)):
        worst = max(worst, _difference(mine, theirs.numpy()))
    return worst


def _classify_difference(task, session, rng, B: int, T: int) -> float:
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    mask = (np.arange(T) < lengths[:, None]).astype(np.float32)     # (B, T)
    if task.kind_ == "text":
        x = rng.integers(1, task.tokenizer_.vocab_size, (B, T)) * mask.astype(np.int64)
        net_x, net_lengths = torch.from_numpy(x), torch.from_numpy(lengths)
    else:
        # raw channel values on the scale of the training data; the classifier encodes them itself
        C = len(task.mean_)
        x = (task.mean_ + task.std_ * rng.normal(0, 1.5, (B, T, C))).astype(np.float32) * mask[..., None]
        x[0, 0, 0] = np.nan                                          # a missing reading
        encoded, enc_lengths = task._encode([x[b, :lengths[b]] for b in range(B)])
        net_x, net_lengths = torch.from_numpy(encoded), torch.from_numpy(enc_lengths)
    want = task.model_.eval()(net_x, net_lengths).numpy()
    got = session.run(None, {"x": x, "mask": mask})[0]
    return _difference(got, want)


def _forecast_difference(task, session, rng, B: int, T: int) -> float:
    cfg, norm = task.window_config_, task.normalizer_
    if cfg.model in FIXED_WINDOW_MODELS:
        T = cfg.lookback // cfg.step
    x = (norm.mean + norm.std * rng.normal(0, 1.5, (B, T, len(task.columns_)))).astype(np.float32)
    normalised = torch.from_numpy(norm.transform(x).astype(np.float32))
    want = norm.inverse(task.model_.eval()(normalised).numpy(), slice(0, task.n_targets_))
    got = session.run(None, {"x": x})[0]
    return _difference(got, want)
