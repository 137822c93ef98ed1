"""Batch-1 LSTM sampling in C (``lstm_sampler.c``), compiled on first use; the TorchScript loop otherwise.

At batch 1 the TorchScript loop (:mod:`rnnkit.generation.fast`) spends a third of its time in its
interpreter, between ~45 small operations per character. The C loop runs 2,048 tokens per call
with no Python between steps, with a fixed share of the hidden units per thread (see the C file):
about 1.7x the TorchScript loop's characters/s for a 2-layer LSTM-256 on 2 cores.

It covers the common case only: an LSTM stack, one sample, temperature or greedy choice, with or
without an end token. Top-k, top-p, beam search, GRU and simple RNN cells, and batches of samples
use the TorchScript loop. The tests check that the two loops give the same tokens.

The library is built, cached and trusted as :mod:`rnnkit.native` says (``RNNKIT_NATIVE=0`` turns it
off); with no compiler, or when the build fails, rnnkit uses the TorchScript loop and
:func:`kernel_status` says why.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from rnnkit import native

SOURCE = Path(__file__).with_name("lstm_sampler.c")
CHUNK = 2048                             # tokens per call of the C loop (Ctrl-C is seen between calls)
SYMBOL = "rnnkit_lstm_sample"            # the C function


def load_kernel():
    """The C sampling function, or a string saying why there is none (built once, then cached)."""
    lib = native.load(SOURCE, (SYMBOL,), "native sampler", "the TorchScript loop samples")
    if isinstance(lib, str):
        return lib
    fn = getattr(lib, SYMBOL)
    fn.restype = ctypes.c_int
    p, i = ctypes.c_void_p, ctypes.c_int
    fn.argtypes = [i, i, i, p, p, p, p, p, p, p, p, p, p, i, i, i, i, p]
    return fn


def native_kernel():
    """The C sampling function, or None when there is none (kernel_status says why)."""
    found = load_kernel()
    return None if isinstance(found, str) else found


def kernel_status() -> str:
    """'ready', 'ready (why the cached library was built again)', or why generation at batch 1 uses the
    TorchScript loop."""
    found = load_kernel()
    if isinstance(found, str):
        return found
    note = native.note(SOURCE)
    return f"ready ({note})" if note else "ready"


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))          # Linux: the CPUs this process may run on
    except AttributeError:
        return os.cpu_count() or 1


class NativeLSTMSampler:
    """The weights of a FastSampler (LSTM) laid out for the C loop: gate rows unit-major."""

    def __init__(self, fast) -> None:
        H = fast.hidden_size
        # FastSampler's rows are gate-major (i, f, o, g blocks of H); the C loop wants the four rows
        # of each unit together, so that a thread's units are one contiguous block of rows.
        unit = torch.tensor([q * H + u for u in range(H) for q in range(4)])
        self.layers, self.hidden = fast.num_layers, H
        self.vocab = fast.table.shape[0]
        self.table = fast.table[:, unit].contiguous()                                     # (V, 4H)
        self.w_hh = torch.stack([w[unit] for w in fast.w_hh]).contiguous()                # (L, 4H, H)
        above = range(1, self.layers)
        self.w_ih = (torch.stack([fast.w_ih[k][unit] for k in above]).contiguous() if self.layers > 1
                     else torch.zeros(1))                                                   # (L-1, 4H, H)
        self.b_in = (torch.stack([fast.b_in[k][unit] for k in above]).contiguous() if self.layers > 1
                     else torch.zeros(1))                                                   # (L-1, 4H)
        self.head_w, self.head_b = fast.head_w, fast.head_b                                 # (V, H), (V,)

    def run(self, fn, logits: Tensor, h: Tensor, c: Tensor, uniforms: Tensor, temperature: float,
            greedy: bool, end: int, threads: Optional[int] = None) -> Tensor:
        """Tokens (1, L) as FastSampler.run gives them for one row: logits (1, V), h and c (L, 1, H),
        uniforms (L, 1). threads: torch's thread count by default, at most one per CPU this process
        may use (the threads wait for each other at every layer: more threads than CPUs only waits
        longer) and one per 16 hidden units."""
        scale = 1.0 if greedy else 1.0 / temperature
        head_w = (self.head_w * scale).contiguous()
        head_b = (self.head_b * scale).contiguous()
        scores = (logits.reshape(-1) * scale).contiguous()     # (V,): in, the first token's; out, the next's
        scores[0] = -float("inf")                              # index 0 is padding: never chosen
        hs = torch.cat([h.reshape(-1), torch.zeros(self.layers * self.hidden)])     # (2, L, H): two turns
        cs = c.reshape(-1).clone()
        u = uniforms.reshape(-1).contiguous()
        tokens = torch.zeros(u.numel(), dtype=torch.long)     # after an end token: zeros (padding)
        if threads is None:
            threads = max(1, min(torch.get_num_threads(), _usable_cpus(), self.hidden // 16))
        # Calls of CHUNK tokens, carrying scores and state: Python sees Ctrl-C between them.
        for start in range(0, u.numel(), CHUNK):
            length = min(CHUNK, u.numel() - start)
            produced = fn(self.layers, self.hidden, self.vocab, self.table.data_ptr(), self.w_hh.data_ptr(),
                          self.w_ih.data_ptr(), self.b_in.data_ptr(), head_w.data_ptr(), head_b.data_ptr(),
                          scores.data_ptr(), hs.data_ptr(), cs.data_ptr(), u[start:].data_ptr(), length,
                          int(greedy), int(end), threads, tokens[start:].data_ptr())
            if produced < 0:
                raise MemoryError("the C sampling loop could not allocate its buffers")
            if produced < length:                              # the end token came
                break
        return tokens.unsqueeze(0)
