"""A hand-written LSTM sequence kernel for variational recurrent dropout on the CPU.

Variational recurrent dropout (one mask per sequence on ``h_{t-1}`` where it enters ``U h``) cannot
use torch's fused LSTM kernel, so :class:`rnnkit.nn.layers.RNN` would run its generic loop, which
records every step's operations for autograd and replays them backwards. This kernel computes the
same numbers with less work per step:

* **the backward pass is written out** (the LSTM's gradient through time, below): no autograd graph
  per step, and the gradients of ``U``, ``W`` and ``x`` are one large product each over all steps
  at the end instead of one small product per step;
* **few, large operations**: the input projection of all steps is one product, written into the
  buffer that each step then completes in place with its recurrent product; all buffers are
  allocated once and every per-step view is made before the loop; ``U`` is transposed once into
  the layout a matrix product reads fastest; the gates' local derivatives take one ``addcmul`` per
  kind (sigmoid, tanh).

On the benchmark's 2-layer LSTM-256 this trains at 0.86x raw ``torch.nn.LSTM`` (the generic loop:
0.66x); see docs/benchmarks.md. It computes in float32, also under bf16 autocast.

Shapes: T steps, B rows, H units. The gates are ordered (i, f, o, g), not torch's (i, f, g, o): the
three sigmoid gates side by side take one ``sigmoid`` per step. :func:`gate_order` gives the row
order that turns torch's weights into this one.

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

The tests check it against the generic loop (outputs, final states and every gradient) and with
``torch.autograd.gradcheck`` in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _blocks(x: Tensor, H: int) -> list[tuple[Tensor, ...]]:
    """x (T, b, 4H) -> per step, views of its gate blocks i, f, o, g (each (b, H)), made once."""
    return list(zip(*(x[..., k * H:(k + 1) * H].unbind(0) for k in range(4))))


def _forward(acts: Tensor, h: Tensor, c: Tensor, mask: Tensor | None, u_t: Tensor):
    """The forward loop. acts (T, b, 4H) holds the input projections W x_t + b on entry and the gate
    activations i, f, o, g on return (each step adds its recurrent product in place, so the
    projections are never copied); h, c (b, H); mask (b, H) or None; u_t (H, 4H) = Uᵀ.

    Returns the outputs hs (T, b, H) and what the backward loop needs: h_in (T, b, H) = m ⊙ h_{t-1},
    cs (T + 1, b, H) = c_0 .. c_T, taus (T, b, H) = tanh(c_t). Every per-step view is made before
    the loop: inside it, each line is one operation.
    """
    T, b, G = acts.shape
    H = G // 4
    cs = acts.new_empty(T + 1, b, H)
    taus = acts.new_empty(T, b, H)
    h_in = acts.new_empty(T, b, H)
    hs = acts.new_empty(T, b, H)
    cs[0] = c
    a_t, h_in_t, c_t, tau_t, h_t = (x.unbind(0) for x in (acts, h_in, cs, taus, hs))
    sig_t = acts[..., :3 * H].unbind(0)                             # i, f, o side by side
    gates = _blocks(acts, H)
    for t in range(T):
        i, f, o, g = gates[t]
        if mask is None:
            h_in_t[t].copy_(h)
        else:
            torch.mul(h, mask, out=h_in_t[t])
        a_t[t].addmm_(h_in_t[t], u_t)                               # (b, 4H) pre-activations
        sig_t[t].sigmoid_()
        g.tanh_()
        torch.mul(f, c_t[t], out=c_t[t + 1])
        c_t[t + 1].addcmul_(i, g)
        torch.tanh(c_t[t + 1], out=tau_t[t])
        h = torch.mul(o, tau_t[t], out=h_t[t])
    return hs, h_in, cs, taus


def _backward(d_hs: Tensor, d_h: Tensor, d_c: Tensor, acts: Tensor, cs: Tensor, taus: Tensor,
              mask: Tensor | None, u: Tensor):
    """The backward loop; returns (da (T, b, 4H), dh_0, dc_0). u is U (4H, H).

    Few, large operations: the local derivatives s - s² of the three sigmoid gates and 1 - g² of
    the candidate take one ``addcmul`` each, and the four products that feed them are written into
    one (b, 4H) row block that one more multiplication finishes.
    """
    T, b, G = acts.shape
    H = G // 4
    da = torch.empty_like(acts)                                     # (T, b, 4H): dL/d(pre-activations)
    deriv = acts.new_empty(b, G)
    deriv_s, deriv_g = deriv[:, :3 * H], deriv[:, 3 * H:]
    ones = acts.new_ones(b, H)
    tmp, rec = acts.new_empty(b, H), acts.new_empty(b, H)
    dh, dc = d_h + d_hs[T - 1], d_c.clone()                         # written in place from here on
    a_t, da_t, c_t, tau_t, d_hs_t = (x.unbind(0) for x in (acts, da, cs, taus, d_hs))
    sig_t = acts[..., :3 * H].unbind(0)
    gates, d_gates = _blocks(acts, H), _blocks(da, H)
    for t in range(T - 1, -1, -1):
        i, f, o, g = gates[t]
        da_i, da_f, da_o, da_g = d_gates[t]
        tau = tau_t[t]
        torch.addcmul(sig_t[t], sig_t[t], sig_t[t], value=-1, out=deriv_s)   # s - s²
        torch.addcmul(ones, g, g, value=-1, out=deriv_g)                    # 1 - g²
        # dc += dh ⊙ o ⊙ (1 - τ²)
        torch.addcmul(ones, tau, tau, value=-1, out=tmp).mul_(o)
        dc.addcmul_(dh, tmp)
        torch.mul(dc, g, out=da_i)
        torch.mul(dc, c_t[t], out=da_f)
        torch.mul(dh, tau, out=da_o)
        torch.mul(dc, i, out=da_g)
        da_t[t].mul_(deriv)
        dc.mul_(f)
        if t > 0:
            # dh_{t-1} = m ⊙ (da_t U) + dL/dh_{t-1} from the outputs
            torch.mm(da_t[t], u, out=rec)                           # (b, 4H) @ (4H, H)
            if mask is not None:
                torch.addcmul(d_hs_t[t - 1], rec, mask, out=dh)
            else:
                torch.add(d_hs_t[t - 1], rec, out=dh)
    dh0 = da_t[0].mm(u)
    if mask is not None:
        dh0.mul_(mask)
    return da, dh0, dc


class _LSTMSequence(torch.autograd.Function):
    """x (T, B, I), W (4H, I), bias (4H,) or None, h0, c0 (B, H), mask (B, H) or None, U (4H, H)
    -> hs (T, B, H), h_T, c_T. The input projection is computed here too, into the buffer that the
    forward loop then completes in place."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)   # float32 inside, also under autocast
    def forward(ctx, x, w, bias, h0, c0, mask, u):
        T, B, I = x.shape
        x2 = x.reshape(T * B, I)
        acts = (torch.addmm(bias, x2, w.t()) if bias is not None else x2.mm(w.t())).view(T, B, -1)
        u_t = u.t().contiguous()                       # (H, 4H): h @ u_t reads U row by row
        hs, h_in, cs, taus = _forward(acts, h0, c0, mask, u_t)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, w, u, mask, h_in, acts, cs, taus)
        return hs, hs[-1].clone(), cs[-1].clone()

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, d_hs, d_h, d_c):
        x, w, u, mask, h_in, acts, cs, taus = ctx.saved_tensors
        d_hs = d_hs if d_hs is not None else torch.zeros_like(h_in)
        d_h = d_h if d_h is not None else torch.zeros_like(h_in[0])
        d_c = d_c if d_c is not None else torch.zeros_like(h_in[0])
        da, dh0, dc0 = _backward(d_hs, d_h, d_c, acts, cs, taus, mask, u)
        T, B, I = x.shape
        da2 = da.view(T * B, -1)                                        # (T*B, 4H)
        need = ctx.needs_input_grad
        dx = da2.mm(w).view(T, B, I) if need[0] else None
        # Weight gradients: all steps in one product each, computed as their transposes
        # ((I or H, T*B) @ (T*B, 4H)), the faster layout here.
        dw = x.reshape(T * B, I).t().mm(da2).t() if need[1] else None
        dbias = da2.sum(0) if ctx.has_bias and need[2] else None
        du = h_in.view(T * B, -1).t().mm(da2).t() if need[6] else None
        return dx, dw, dbias, dh0, dc0, None, du


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

    Returns hs (T, B, H), h_T, c_T. Computes in float32 (under bf16 autocast too: at these sizes its
    products gain little from bf16), or in float64 when x is float64 (for gradcheck).
    """
    dt = torch.float64 if x.dtype == torch.float64 else torch.float32
    cast = (lambda t: None if t is None else t.to(dt))
    return _LSTMSequence.apply(cast(x), cast(weight_ih), cast(bias), cast(h0), cast(c0), cast(mask),
                               cast(weight_hh))
