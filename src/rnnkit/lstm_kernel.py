"""A hand-written LSTM sequence kernel for variational recurrent dropout on the CPU.

Variational recurrent dropout (one mask per sequence on ``h_{t-1}`` where it enters ``U h``) cannot
use torch's fused LSTM kernel, so :class:`rnnkit.layers.RNN` would run its generic loop, which
records every step's operations for autograd and replays them backwards. This kernel computes the
same numbers with less work per step:

* **the backward pass is written out** (the LSTM's gradient through time, below): no autograd graph
  per step, and the gradient of ``U`` is one large product over all steps at the end instead of
  one small product per step;
* **few, large operations**: buffers for all steps are allocated once and written in place; the
  recurrent product reads ``U`` transposed once into the layout a matrix product reads fastest;
  the four gates' local derivatives come from two operations over all 4H columns.

Shapes: T steps, B rows, H units. The gates are ordered (i, f, o, g), not torch's (i, f, g, o): the
three sigmoid gates side by side take one ``sigmoid`` per step. :func:`gate_order` gives the row
order that turns torch's weights into this one.

Forward, per step (``m`` the row's mask, all ones without dropout)::

    a_t = xp_t + (m ⊙ h_{t-1}) U^T           xp_t = W x_t + b_ih + b_hh, precomputed for all steps
    i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
    c_t = f ⊙ c_{t-1} + i ⊙ g;  h_t = o ⊙ tanh(c_t)

Backward, per step from the last (``dh``, ``dc`` carry the gradient from step t+1)::

    dh += dL/dh_t (from the outputs);  τ = tanh(c_t)
    da_o = dh ⊙ τ ⊙ o(1 - o);  dc += dh ⊙ o ⊙ (1 - τ²)
    da_i = dc ⊙ g ⊙ i(1 - i);  da_f = dc ⊙ c_{t-1} ⊙ f(1 - f);  da_g = dc ⊙ i ⊙ (1 - g²)
    dc ← dc ⊙ f;  dh ← m ⊙ (da U)
    then dxp = da (all steps) and dU = Σ_t da_tᵀ (m ⊙ h_{t-1}) as one product.

The tests check it against the generic loop (outputs, final states and every gradient) and with
``torch.autograd.gradcheck`` in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _blocks(x: Tensor, H: int) -> list[tuple[Tensor, ...]]:
    """x (T, b, 4H) -> per step, views of its gate blocks i, f, o, g (each (b, H)), made once."""
    return list(zip(*(x[..., k * H:(k + 1) * H].unbind(0) for k in range(4))))


def _forward(xp: Tensor, h: Tensor, c: Tensor, mask: Tensor | None, u_t: Tensor):
    """The forward loop: xp (T, b, 4H), h, c (b, H), mask (b, H) or None, u_t (H, 4H).

    Returns what the backward loop needs: h_in (T, b, H) = m ⊙ h_{t-1}, acts (T, b, 4H) = i, f, o, g,
    cs (T + 1, b, H) = c_0 .. c_T, taus (T, b, H) = tanh(c_t); the outputs h_t are o ⊙ tanh(c_t).
    Every per-step view is made before the loop: inside it, each line is one operation.
    """
    T, b, G = xp.shape
    H = G // 4
    acts = torch.empty_like(xp)
    cs = xp.new_empty(T + 1, b, H)
    taus = xp.new_empty(T, b, H)
    h_in = xp.new_empty(T, b, H)
    hs = xp.new_empty(T, b, H)
    cs[0] = c
    xp_t, a_t, h_in_t, c_t, tau_t, h_t = (x.unbind(0) for x in (xp, acts, h_in, cs, taus, hs))
    sig_t = acts[..., :3 * H].unbind(0)                             # i, f, o side by side
    gates = _blocks(acts, H)
    for t in range(T):
        i, f, o, g = gates[t]
        if mask is None:
            h_in_t[t].copy_(h)
        else:
            torch.mul(h, mask, out=h_in_t[t])
        torch.addmm(xp_t[t], h_in_t[t], u_t, out=a_t[t])            # (b, 4H) pre-activations
        sig_t[t].sigmoid_()
        g.tanh_()
        torch.mul(f, c_t[t], out=c_t[t + 1])
        c_t[t + 1].addcmul_(i, g)
        torch.tanh(c_t[t + 1], out=tau_t[t])
        h = torch.mul(o, tau_t[t], out=h_t[t])
    return hs, h_in, acts, cs, taus


def _backward(d_hs: Tensor, d_h: Tensor, d_c: Tensor, acts: Tensor, cs: Tensor, taus: Tensor,
              mask: Tensor | None, u: Tensor):
    """The backward loop; returns (da (T, b, 4H), dh_0, dc_0). u is U (4H, H).

    Few, large operations: the four gates' local derivatives s(1 - s) (and 1 - g² for g) come from
    two operations over all 4H columns, and the four products that feed them are written into one
    (b, 4H) row block that one more multiplication finishes.
    """
    T, b, G = acts.shape
    H = G // 4
    da = torch.empty_like(acts)                                     # (T, b, 4H): dL/d(pre-activations)
    deriv = acts.new_empty(b, G)
    deriv_g = deriv[:, 3 * H:]
    tmp = acts.new_empty(b, H)
    dh, dc = d_h.clone(), d_c.clone()
    a_t, da_t, c_t, tau_t, d_hs_t = (x.unbind(0) for x in (acts, da, cs, taus, d_hs))
    gates, d_gates = _blocks(acts, H), _blocks(da, H)
    for t in range(T - 1, -1, -1):
        i, f, o, g = gates[t]
        da_i, da_f, da_o, da_g = d_gates[t]
        tau = tau_t[t]
        dh.add_(d_hs_t[t])
        torch.mul(a_t[t], a_t[t], out=deriv)
        torch.sub(a_t[t], deriv, out=deriv)                         # s - s²: i, f, o (and g - g²)
        deriv_g.add_(1).sub_(g)                                     # g: 1 - g² = (g - g²) + 1 - g
        # dc += dh ⊙ o ⊙ (1 - τ²), as dc -= dh ⊙ o(τ² - 1)
        torch.mul(tau, tau, out=tmp)
        tmp.sub_(1).mul_(o)
        dc.addcmul_(dh, tmp, value=-1)
        torch.mul(dc, g, out=da_i)
        torch.mul(dc, c_t[t], out=da_f)
        torch.mul(dh, tau, out=da_o)
        torch.mul(dc, i, out=da_g)
        da_t[t].mul_(deriv)
        dc.mul_(f)
        dh = da_t[t].mm(u)                                          # (b, 4H) @ (4H, H)
        if mask is not None:
            dh.mul_(mask)
    return da, dh, dc


class _LSTMSequence(torch.autograd.Function):
    """xp (T, B, 4H), h0, c0 (B, H), mask (B, H) or None, U (4H, H) -> hs (T, B, H), h_T, c_T."""

    @staticmethod
    def forward(ctx, xp, h0, c0, mask, u):
        u_t = u.t().contiguous()                       # (H, 4H): h @ u_t reads U row by row
        hs, h_in, acts, cs, taus = _forward(xp, h0, c0, mask, u_t)
        ctx.save_for_backward(u, mask, h_in, acts, cs, taus)
        return hs, hs[-1].clone(), cs[-1].clone()

    @staticmethod
    def backward(ctx, d_hs, d_h, d_c):
        u, mask, h_in, acts, cs, taus = ctx.saved_tensors
        d_hs = d_hs if d_hs is not None else torch.zeros_like(h_in)
        d_h = d_h if d_h is not None else torch.zeros_like(h_in[0])
        d_c = d_c if d_c is not None else torch.zeros_like(h_in[0])
        da, dh0, dc0 = _backward(d_hs, d_h, d_c, acts, cs, taus, mask, u)
        du = None
        if ctx.needs_input_grad[4]:
            # dU = Σ_t da_tᵀ h_in_t: all steps in one product, computed as its transpose
            # (H, T*B) @ (T*B, 4H), the faster layout here.
            du = h_in.reshape(-1, h_in.shape[2]).t().mm(da.reshape(-1, da.shape[2])).t()
        return da, dh0, dc0, None, du


def gate_order(hidden_size: int, device=None) -> Tensor:
    """Row indices that reorder torch's LSTM gate blocks (i, f, g, o) into the kernel's (i, f, o, g)."""
    H = hidden_size
    return torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)]).to(device)


def lstm_sequence(xp: Tensor, h0: Tensor, c0: Tensor, weight_hh: Tensor,
                  mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Run an LSTM over all steps: xp (T, B, 4H) the input projections with both biases added,
    h0, c0 (B, H), weight_hh U (4H, H), mask (B, H) the variational mask on h_{t-1} (or None).
    The gate blocks of xp and U are in the order (i, f, o, g): index torch's weights with
    :func:`gate_order` first.

    Returns hs (T, B, H), h_T, c_T. Computes in float32 (under bf16 autocast too: at these sizes its
    products gain little from bf16), or in float64 when xp is float64 (for gradcheck).
    """
    dt = torch.float64 if xp.dtype == torch.float64 else torch.float32
    return _LSTMSequence.apply(xp.to(dt), h0.to(dt), c0.to(dt), None if mask is None else mask.to(dt),
                               weight_hh.to(dt))
