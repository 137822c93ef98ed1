"""A hand-written LSTM sequence kernel for variational recurrent dropout on the CPU.

Variational recurrent dropout (one mask per sequence on ``h_{t-1}`` where it enters ``U h``) cannot
use torch's fused LSTM kernel, so :class:`rnnkit.nn.layers.RNN` would run its generic loop, which
records every step's operations for autograd and replays them backwards. This kernel computes the
same numbers with less work per step:

* **the backward pass is written out** (the LSTM's gradient through time, below): no autograd graph
  per step, and the gradients of ``U``, ``W`` and ``x`` are one large product each over all steps
  at the end instead of one small product per step;
* **each step is one matrix product and one element-wise step**: the input projection of all
  steps is one product, written into the buffer that each step then completes with its recurrent
  product; the element-wise rest of a step (gates, cell, output, mask; backwards the local
  derivatives) is one call of a C function (``lstm_steps.c``, built on first use by
  :mod:`rnnkit.native`), one pass over the step's numbers instead of ten torch operations, each
  reading and writing all of them again. Without a C compiler the same step runs as torch
  operations on buffers allocated once, with every per-step view made before the loop;
* **oneDNN's matrix products** (:func:`linear`): torch's float32 ``mm`` goes to MKL, which on an
  AMD EPYC took 2-3.6x as long as oneDNN (the library torch's own fused LSTM uses);
* **tanh through sigmoid**: ``tanh(a) = 2 σ(2a) - 1``. torch's ``tanh`` cost about eight times its
  ``sigmoid`` per element there, so the candidate gate's rows of ``W``, ``U`` and the bias are
  doubled once per call and one ``sigmoid`` covers all four gates (the C step computes the same);
* **bf16 products under bf16 autocast**, as torch's fused LSTM does: the matrix products read
  bfloat16 (with float32 accumulation) while the gates, the cell state and every element-wise step
  stay in float32.

Its speed against raw ``torch.nn.LSTM`` (and the generic loop's), per CPU and precision, is in
docs/benchmarks.md (``python bench/layers.py``).

Shapes: T steps, B rows, H units. The gates are ordered (i, f, o, g), not torch's (i, f, g, o): the
three sigmoid gates side by side. :func:`gate_order` gives the row order that turns torch's weights
into this one.

Forward, per step (``m`` the row's mask, all ones without dropout)::

    a_t = xp_t + (m ⊙ h_{t-1}) U^T           xp_t = W x_t + b_ih + b_hh, one product for all steps
    i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
    c_t = f ⊙ c_{t-1} + i ⊙ g;  h_t = o ⊙ tanh(c_t)

Backward, per step from the last (``dh``, ``dc`` carry the gradient from step t+1)::

    dh += dL/dh_t (from the outputs);  τ = tanh(c_t)
    da_o = dh ⊙ τ ⊙ o(1 - o);  dc += dh ⊙ o ⊙ (1 - τ²)
    da_i = dc ⊙ g ⊙ i(1 - i);  da_f = dc ⊙ c_{t-1} ⊙ f(1 - f);  da_g = dc ⊙ i ⊙ (1 - g²)
    dc ← dc ⊙ f;  dh ← m ⊙ (da U)
    then dU = Σ_t da_tᵀ (m ⊙ h_{t-1}), dW = Σ_t da_tᵀ x_t and dx = da W, one product each.

The tests check it against the generic loop (outputs, final states and every gradient, in float32
and under bf16 autocast) and with ``torch.autograd.gradcheck`` in float64.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch
from torch import Tensor

from rnnkit import native


def _onednn_linear():
    """torch's oneDNN product ``(a, w, bias) -> a @ wᵀ + bias``, or None where this torch lacks it."""
    if not torch.backends.mkldnn.is_available():
        return None
    op = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    try:                                                 # a build may list the op and still refuse it
        op(torch.ones(2, 3), torch.ones(4, 3), None, "none", [], "")
    except (RuntimeError, TypeError, AttributeError):
        return None
    return op


_ONEDNN = _onednn_linear()


def linear(a: Tensor, w: Tensor, bias: Tensor | None = None) -> Tensor:
    """a (M, K), w (N, K), bias (N,) or None -> a @ wᵀ + bias (M, N), in a's dtype.

    Through oneDNN where torch has it (float32 and bfloat16 on the CPU), else ``torch.mm`` (float64, for
    gradcheck)."""
    if _ONEDNN is not None and a.dtype in (torch.float32, torch.bfloat16) and a.device.type == "cpu":
        return _ONEDNN(a, w, bias, "none", [], "")
    return a.mm(w.t()) if bias is None else torch.addmm(bias, a, w.t())


STEPS_SOURCE = Path(__file__).with_name("lstm_steps.c")
_step_functions: dict[int, tuple] = {}        # id of the loaded library -> its two step functions


def _load_steps():
    """The library built from lstm_steps.c, or why there is none. -fno-math-errno lets the compiler
    vectorise expf (glibc's vector maths) and the loops; never -ffast-math, whose library would set
    the whole process to flush denormals to zero when loaded."""
    return native.load(STEPS_SOURCE, ("rnnkit_lstm_forward_step", "rnnkit_lstm_backward_step"),
                       "LSTM step kernel", "torch operations run each step", extra_flags=("-fno-math-errno",))


def _c_steps(x: Tensor):
    """The C step functions (forward, backward) of ``lstm_steps.c`` for float32 CPU tensors, or None
    (float64, no C compiler, ``RNNKIT_NATIVE=0``: then the loop runs the same step as torch operations)."""
    if x.dtype != torch.float32 or x.device.type != "cpu":
        return None
    lib = _load_steps()
    if isinstance(lib, str):
        return None
    if id(lib) not in _step_functions:
        i, p = ctypes.c_int, ctypes.c_void_p
        forward, backward = lib.rnnkit_lstm_forward_step, lib.rnnkit_lstm_backward_step
        forward.argtypes = [i, i, p, p, i, p, p, p, p, p, p, p]
        backward.argtypes = [i, i, p, p, p, p, p, p, p, p, p, i, p]
        forward.restype = backward.restype = None
        _step_functions[id(lib)] = (forward, backward)
    return _step_functions[id(lib)]


def steps_status() -> str:
    """'C' when the element-wise steps run in C, else why they run as torch operations."""
    lib = _load_steps()
    return lib if isinstance(lib, str) else "C"


def _blocks(x: Tensor, H: int) -> list[tuple[Tensor, ...]]:
    """x (T, b, 4H) -> per step, views of its gate blocks i, f, o, g (each (b, H)), made once."""
    return list(zip(*(x[..., k * H:(k + 1) * H].unbind(0) for k in range(4))))


def _tanh_via_sigmoid(x: Tensor, out: Tensor) -> Tensor:
    """out = tanh(x) = 2 σ(2x) - 1, four cheap operations instead of one slow ``tanh``."""
    return torch.mul(x, 2, out=out).sigmoid_().mul_(2).sub_(1)


def _forward(acts: Tensor, h: Tensor, c: Tensor, mask: Tensor | None, u: Tensor):
    """The forward loop. acts (T, b, 4H) float32 holds the input projections W x_t + b (candidate
    rows doubled) on entry and the gate activations i, f, o, g on return; h, c (b, H); mask (b, H) or
    None; u (4H, H) = U with its candidate rows doubled, in the products' dtype.

    Returns the outputs hs (T, b, H) and what the backward loop needs: h_in (T, b, H) = m ⊙ h_{t-1}
    in the products' dtype (the dU product reads it), cs (T + 1, b, H) = c_0 .. c_T, taus (T, b, H) =
    tanh(c_t). Each step is one matrix product and one element-wise step, in C or as torch
    operations (the same numbers).
    """
    T, b, G = acts.shape
    H = G // 4
    cs = acts.new_empty(T + 1, b, H)
    taus = acts.new_empty(T, b, H)
    h_in = acts.new_empty(T, b, H)
    h_low = _low_copy(h_in, u.dtype)                                # what the products read: h_in or its bf16 copy
    hs = acts.new_empty(T, b, H)
    cs[0] = c
    h_in[0] = h if mask is None else h * mask
    h_low[0] = h_in[0]
    a_t, h_in_t, h_low_t, c_t, tau_t, h_t = (x.unbind(0) for x in (acts, h_in, h_low, cs, taus, hs))
    c_functions = _c_steps(acts)
    if c_functions is not None:
        m, bf16 = 0 if mask is None else mask.data_ptr(), int(h_low is not h_in)

        def step(t: int, rec: Tensor) -> None:
            last = t + 1 == T
            c_functions[0](b, H, a_t[t].data_ptr(), rec.data_ptr(), bf16, c_t[t].data_ptr(), c_t[t + 1].data_ptr(),
                           tau_t[t].data_ptr(), h_t[t].data_ptr(), m, 0 if last else h_in_t[t + 1].data_ptr(),
                           0 if last or not bf16 else h_low_t[t + 1].data_ptr())
    else:
        gates = _blocks(acts, H)                                    # every per-step view made once

        def step(t: int, rec: Tensor) -> None:
            i, f, o, g = gates[t]
            a_t[t].add_(rec)                                        # (b, 4H) pre-activations
            a_t[t].sigmoid_()                                       # i, f, o; the candidate block: σ(2 a_g)
            g.mul_(2).sub_(1)                                       # g = 2 σ(2 a_g) - 1 = tanh(a_g)
            torch.mul(f, c_t[t], out=c_t[t + 1])
            c_t[t + 1].addcmul_(i, g)
            _tanh_via_sigmoid(c_t[t + 1], out=tau_t[t])
            torch.mul(o, tau_t[t], out=h_t[t])
            if t + 1 < T:
                if mask is not None:
                    torch.mul(h_t[t], mask, out=h_in_t[t + 1])
                else:
                    h_in_t[t + 1].copy_(h_t[t])
                if h_low is not h_in:
                    h_low_t[t + 1].copy_(h_in_t[t + 1])             # a copy is cheaper than an operation writing bf16

    for t in range(T):
        rec = linear(h_low_t[t], u)                                 # (b, 4H): (m ⊙ h_{t-1}) Uᵀ
        step(t, rec)                                                # activations, c_t, τ_t, h_t, h_in_{t+1}
    return hs, h_low, cs, taus


def _backward(d_hs: Tensor, d_h: Tensor, d_c: Tensor, acts: Tensor, cs: Tensor, taus: Tensor,
              mask: Tensor | None, u_t: Tensor):
    """The backward loop; returns (da (T, b, 4H) float32, da in the products' dtype, dh_0, dc_0). u_t is
    Uᵀ (H, 4H) in the products' dtype.

    Each step is one element-wise step (in C, or as torch operations) and one matrix product. As
    torch operations: the local derivatives s - s² of the three sigmoid gates and 1 - g² of the
    candidate take one ``addcmul`` each, and the four products that feed them are written into one
    (b, 4H) row block that one more multiplication finishes.
    """
    T, b, G = acts.shape
    H = G // 4
    da = torch.empty_like(acts)                                     # (T, b, 4H): dL/d(pre-activations)
    da_low = _low_copy(da, u_t.dtype)
    d_hs = d_hs.contiguous()                                        # (a sum's gradient may be a broadcast view)
    dh = (d_h + d_hs[T - 1]).contiguous()                           # written in place from here on
    dc = d_c.clone(memory_format=torch.contiguous_format)
    a_t, da_t, da_low_t, c_t, tau_t, d_hs_t = (x.unbind(0) for x in (acts, da, da_low, cs, taus, d_hs))
    c_functions = _c_steps(acts)
    if c_functions is not None:
        m, bf16 = 0 if mask is None else mask.data_ptr(), int(da_low is not da)

        def step(t: int, rec: Tensor | None) -> None:
            c_functions[1](b, H, a_t[t].data_ptr(), c_t[t].data_ptr(), tau_t[t].data_ptr(), dh.data_ptr(),
                           dc.data_ptr(), da_t[t].data_ptr(), da_low_t[t].data_ptr() if bf16 else 0,
                           d_hs_t[t].data_ptr(), 0 if rec is None else rec.data_ptr(), bf16, m)
    else:
        deriv, pre = acts.new_empty(b, G), acts.new_empty(b, G)
        deriv_s, deriv_g = deriv[:, :3 * H], deriv[:, 3 * H:]
        pre_i, pre_f, pre_o, pre_g = (pre[:, k * H:(k + 1) * H] for k in range(4))
        ones, tmp = acts.new_ones(b, H), acts.new_empty(b, H)
        sig_t = acts[..., :3 * H].unbind(0)
        gates = _blocks(acts, H)

        def step(t: int, rec: Tensor | None) -> None:
            i, f, o, g = gates[t]
            tau = tau_t[t]
            if rec is not None and mask is not None:                # dh_t = dL/dh_t + m ⊙ (da_{t+1} U)
                torch.addcmul(d_hs_t[t], rec, mask, out=dh)
            elif rec is not None:
                torch.add(d_hs_t[t], rec, out=dh)
            torch.addcmul(sig_t[t], sig_t[t], sig_t[t], value=-1, out=deriv_s)   # s - s²
            torch.addcmul(ones, g, g, value=-1, out=deriv_g)                    # 1 - g²
            torch.addcmul(ones, tau, tau, value=-1, out=tmp).mul_(o)            # dc += dh ⊙ o ⊙ (1 - τ²)
            dc.addcmul_(dh, tmp)
            torch.mul(dc, g, out=pre_i)
            torch.mul(dc, c_t[t], out=pre_f)
            torch.mul(dh, tau, out=pre_o)
            torch.mul(dc, i, out=pre_g)
            torch.mul(pre, deriv, out=da_t[t])
            dc.mul_(f)
            if da_low is not da:
                da_low_t[t].copy_(da_t[t])

    rec = None                                                      # at the last step, dh is set above
    for t in range(T - 1, -1, -1):
        step(t, rec)                                                # dh_t, da_t; dc <- dc_t ⊙ f
        rec = linear(da_low_t[t], u_t)                              # (b, 4H) @ (4H, H) = da_t U
    dh0 = rec.float() if mask is None else rec * mask
    return da, da_low, dh0, dc


def _low_copy(x: Tensor, dtype: torch.dtype) -> Tensor:
    """x itself when the products read its dtype, else an empty buffer of its shape in ``dtype`` (bf16)."""
    return x if dtype == x.dtype else torch.empty_like(x, dtype=dtype)


def _double_candidate(x: Tensor) -> Tensor:
    """A copy of x (4H, ...) or (4H,) with its last quarter (the candidate gate's rows) doubled."""
    H = x.shape[0] // 4
    scale = x.new_ones(4 * H)
    scale[3 * H:] = 2
    return x * (scale.view(-1, *([1] * (x.dim() - 1))))


def _weight_grads(da2: Tensor, inputs: list[Tensor]) -> list[Tensor]:
    """da2 (N, 4H) float32, inputs (N, K) each -> da2ᵀ @ input (4H, K) each, float32: the weight
    gradients, all steps in one product each.

    In float32 the products are oneDNN's on transposed copies: MKL's transposed product (what
    ``torch.mm`` runs) took 3.6x as long on an AMD EPYC, and the copies cost less than the difference.
    In bf16, ``torch.mm`` is oneDNN's already and reads the transposes in place.
    """
    if da2.dtype == torch.float32 and _ONEDNN is not None:
        da_t = da2.t().contiguous()                                  # (4H, N)
        return [linear(da_t, x.t().contiguous()) for x in inputs]
    return [x.t().mm(da2).t().float() for x in inputs]


class _LSTMSequence(torch.autograd.Function):
    """x (T, B, I), W (4H, I), bias (4H,) or None, h0, c0 (B, H), mask (B, H) or None, U (4H, H), the
    products' dtype -> hs (T, B, H), h_T, c_T. The input projection is computed here too, into the
    buffer that the forward loop then completes in place."""

    @staticmethod
    def forward(ctx, x, w, bias, h0, c0, mask, u, product_dtype):
        T, B, I = x.shape
        mask = None if mask is None else mask.contiguous()            # the C steps read it row by row
        x2 = x.reshape(T * B, I).to(product_dtype)                   # what the products read
        w2, u2 = (_double_candidate(p).to(product_dtype) for p in (w, u))
        b2 = None if bias is None else _double_candidate(bias)
        if product_dtype == x.dtype:
            acts = linear(x2, w2, b2)
        else:                                                        # bf16 product, float32 activations
            acts = linear(x2, w2).to(x.dtype)
            if b2 is not None:
                acts.add_(b2)
        hs, h_in, cs, taus = _forward(acts.view(T, B, -1), h0, c0, mask, u2)   # h_in in the products' dtype
        ctx.has_bias, ctx.shape = bias is not None, (T, B, I)
        ctx.save_for_backward(x2, w, u, mask, h_in, acts, cs, taus)
        return hs, hs[-1].clone(), cs[-1].clone()

    @staticmethod
    def backward(ctx, d_hs, d_h, d_c):
        x2, w, u, mask, h_in, acts, cs, taus = ctx.saved_tensors
        T, B, I = ctx.shape
        low = x2.dtype                                               # the products' dtype
        d_hs = d_hs if d_hs is not None else torch.zeros_like(cs[1:])
        d_h = d_h if d_h is not None else torch.zeros_like(cs[0])
        d_c = d_c if d_c is not None else torch.zeros_like(cs[0])
        u_t = u.t().contiguous().to(low)                             # (H, 4H): the dh product's weight
        da, da_low, dh0, dc0 = _backward(d_hs, d_h, d_c, acts.view(T, B, -1), cs, taus, mask, u_t)
        da2, da_low = da.view(T * B, -1), da_low.view(T * B, -1)      # (T*B, 4H)
        need = ctx.needs_input_grad
        dx = linear(da_low, w.t().contiguous().to(low)).view(T, B, I).to(da.dtype) if need[0] else None
        dbias = da2.sum(0) if ctx.has_bias and need[2] else None
        inputs = [x2] * need[1] + [h_in.view(T * B, -1)] * need[6]
        grads = _weight_grads(da_low, inputs)
        dw = grads.pop(0) if need[1] else None
        du = grads.pop(0) if need[6] else None
        return dx, dw, dbias, dh0, dc0, None, du, None


def gate_order(hidden_size: int, device=None) -> Tensor:
    """Row indices that reorder torch's LSTM gate blocks (i, f, g, o) into the kernel's (i, f, o, g)."""
    H = hidden_size
    return torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)]).to(device)


def lstm_sequence(x: Tensor, weight_ih: Tensor, bias: Tensor | None, h0: Tensor, c0: Tensor,
                  weight_hh: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Run an LSTM over all steps: x (T, B, I), weight_ih W (4H, I), bias (4H,) = b_ih + b_hh or None,
    h0, c0 (B, H), weight_hh U (4H, H), mask (B, H) the variational mask on h_{t-1} (or None).
    The gate blocks of W, bias and U are in the order (i, f, o, g): index torch's weights with
    :func:`gate_order` first.

    Returns hs (T, B, H), h_T, c_T in float32 (float64 when x is float64, for gradcheck). Under CPU
    bf16 autocast the matrix products read bfloat16, as torch's fused LSTM's do; everything else
    stays in float32.
    """
    dt = torch.float64 if x.dtype == torch.float64 else torch.float32
    product_dtype = dt
    if dt == torch.float32 and torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16:
        product_dtype = torch.bfloat16
    cast = (lambda t: None if t is None else t.to(dt))
    with torch.autocast("cpu", enabled=False):
        return _LSTMSequence.apply(cast(x), cast(weight_ih), cast(bias), cast(h0), cast(c0), cast(mask),
                                   cast(weight_hh), product_dtype)
