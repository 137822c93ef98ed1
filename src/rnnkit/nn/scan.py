"""Linear recurrences over a whole sequence at once, for cells whose gates read only x_t (minGRU, minLSTM).

Such a cell's state follows ``h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ c_t`` with the update gate ``z_t`` and the
candidate ``c_t`` computed from ``x_t`` alone: a linear recurrence ``h_t = a_t ⊙ h_{t-1} + b_t`` (``a = 1 - z``,
``b = z ⊙ c``) whose coefficients are all known before it starts, so it need not run one step at a time. Three
ways to run it, the same numbers up to rounding (the tests check it):

* :func:`scan_loop`: the reference, one step per time step (T small operations, T autograd nodes).
* :func:`scan_log`: the log-space form of Feng et al. 2024 ("Were RNNs All We Needed?"), for ``b > 0``::

      a*_t = Σ_{s≤t} log a_s                              (a cumulative sum)
      h_t  = exp(a*_t) ⊙ h_0 + exp(a*_t + logcumsumexp_{s≤t}(log b_s − a*_s))

  The h_0 term stands apart, so an initial state of either sign works (a negative h_0 has no log). On a GPU
  ``logcumsumexp`` is a parallel scan; on the CPU torch runs it as a scalar loop along the scanned dimension
  with an ``exp`` and a ``log1p`` per element, forwards and again backwards. In float32 it also loses digits
  on long sequences: ``a*_t`` falls like ``-t``, and adding it back to a log-sum-exp of about ``+t`` cancels
  them (a minGRU's outputs against float64: 5e-6 relative at T = 128, 9e-5 at T = 2048; the loop and the
  blocked scan 1e-7 at every length).
* :func:`update_scan` (what the cells run): a blocked scan in linear space, one block of time steps at a
  time, with the backward pass written out. Inside a block the sequence is cut into C chunks of L ≈ √T
  steps: (1) the recurrence runs inside every chunk at once from a zero state, keeping only each chunk's end
  value and the product of its ``a`` (L vector operations, each over all C chunks); (2) the state entering
  each chunk is carried across chunks (C small operations); (3) the recurrence runs inside every chunk again
  from its true entering state, writing every step (L operations). About 3√T operations instead of T; no
  ``log``/``exp``; any sign of ``h_0``; the rounding of the plain loop (a product of gates in (0, 1) only
  shrinks: nothing overflows). The backward pass is the same kind of recurrence run from the end::

      G_t = g_t + a_{t+1} G_{t+1}          (G_t = ∂L/∂h_t over every path; g_t: from the output at t)
      ∂L/∂z_t = G_t ⊙ (c_t − h_{t−1}),   ∂L/∂c_t = G_t ⊙ z_t,   ∂L/∂h_0 = a_0 ⊙ G_0

  and the cell maps ∂L/∂z, ∂L/∂c back to its input projections (``update_backward``, written out too).

Why blocks, and why written out: on the CPU every element-wise operation over a whole (T, B, H) sequence
allocates a fresh tensor of tens of MB, and the page faults of such fresh memory cost more than the arithmetic
(an add over 8 M floats into a new tensor took 2.7 ns per element, into an existing one 0.3 ns; the machine
shared with other processes). Blocks of about a million elements reuse memory the allocator keeps. And
autograd through the paper's ``g`` (written with ``torch.where`` or ``torch.maximum``) took 3-5x the time of
the few operations of its derivative written out, forward and backward over a million elements. Gates are
recomputed in the backward pass instead of kept.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

METHODS = ("blocked", "log", "loop")
BLOCK_ELEMENTS = 1 << 20     # elements of one gate per block of time steps (4 MB in float32)


def scan_loop(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """The reference: ``h_t = a_t h_{t-1} + b_t`` one step at a time. a, b (T, ...), h0 (...) -> (T, ...)."""
    h, out = h0, []
    for a_t, b_t in zip(a.unbind(0), b.unbind(0)):
        h = torch.addcmul(b_t, a_t, h)
        out.append(h)
    return torch.stack(out)


def scan_log(log_a: Tensor, log_b: Tensor, h0: Tensor) -> Tensor:
    """Feng et al.'s log-space scan of ``h_t = exp(log a_t) h_{t-1} + exp(log b_t)`` (so b > 0 by construction).

    log_a (T, ...) <= 0; log_b (T, ...): a step that adds nothing has a very negative log_b, never -inf (the
    backward pass of ``logcumsumexp`` over a prefix of -inf is NaN); h0 (...) of any sign. -> (T, ...).
    """
    a_star = log_a.cumsum(0)                                        # (T, ...): log of the product of a so far
    log_h = a_star + torch.logcumsumexp(log_b - a_star, dim=0)      # (T, ...): the b terms, in log space
    return torch.exp(log_h) + torch.exp(a_star) * h0                # + the initial state, decayed


def chunk_length(steps: int) -> int:
    """The blocked scan's chunk length: ⌈√T⌉ balances the steps within chunks against those across them."""
    return max(1, math.isqrt(max(steps - 1, 0)) + 1)


def blocked_scan(a: Tensor, b: Tensor, h0: Tensor, out: Tensor, reverse: bool = False) -> Tensor:
    """``h_t = a_t h_{t-1} + b_t`` (``reverse``: ``h_t = a_t h_{t+1} + b_t``, from the end) into ``out``, without
    autograd. a, b, out (T, N); h0 (N,): the state before the first step (after the last one if ``reverse``)."""
    T, N = a.shape
    L = chunk_length(T)
    C = T // L if T >= 2 * L else 0                                 # whole chunks; the other steps: a plain loop
    rest = range(C * L, T)
    s = h0
    if reverse:                                                     # the steps after the last chunk come first
        for t in reversed(rest):
            s = torch.addcmul(b[t], a[t], s, out=out[t])
    if C:
        A, Bc, Hc = a[:C * L].view(C, L, N), b[:C * L].view(C, L, N), out[:C * L].view(C, L, N)
        js = range(L - 1, -1, -1) if reverse else range(L)          # the order of the steps within a chunk
        # (1) every chunk at once, from a zero state: its end value and the product of its a, (C, N) each
        end, prod = Bc[:, js[0]].clone(), A[:, js[0]].clone()
        for j in js[1:]:
            end.mul_(A[:, j]).add_(Bc[:, j])
            prod.mul_(A[:, j])
        # (2) the state entering each chunk, carried from chunk to chunk
        starts = torch.empty_like(end)                              # (C, N)
        for c in (range(C - 1, -1, -1) if reverse else range(C)):
            starts[c] = s
            s = torch.addcmul(end[c], prod[c], s)
        # (3) every chunk again, from its entering state, writing every step
        state = starts
        for j in js:
            state = torch.addcmul(Bc[:, j], A[:, j], state, out=Hc[:, j])
    if not reverse:
        for t in rest:
            s = torch.addcmul(b[t], a[t], s, out=out[t])
    return out


def _gate_major(xp: Tensor, gates: int) -> list[Tensor]:
    """(T, B, G*H) -> G contiguous (T, B, H) tensors. Why the copy: element-wise operations on a slice of the
    last dimension (what ``chunk`` gives) ran 3-5x slower on the CPU than on contiguous memory."""
    T, B = xp.shape[:2]
    return list(xp.reshape(T, B, gates, -1).permute(2, 0, 1, 3).contiguous().unbind(0))


class _UpdateScan(torch.autograd.Function):
    """``h_t = (1 - z_t) h_{t-1} + z_t c_t`` with ``(z, c) = cell.update(gates of xp)``, a block of steps at a time.

    Keeps xp, h0 and the outputs h; z and c are recomputed in the backward pass."""

    @staticmethod
    def forward(ctx, cell, block: int, xp: Tensor, h0: Tensor, mask: Tensor | None) -> Tensor:
        T, B = xp.shape[:2]
        H = h0.shape[-1]
        h = xp.new_empty(T, B, H)
        s = h0.reshape(-1)                                          # (N,) = (B*H,)
        for t0 in range(0, T, block):
            part = slice(t0, min(T, t0 + block))
            z, c = cell.update(*_gate_major(xp[part], cell.gates))  # (Tb, B, H) each
            if mask is not None:
                z = z * mask[part].unsqueeze(-1)                    # a padded step: z = 0 keeps the state
            Tb = z.shape[0]
            out = h[part].view(Tb, -1)
            blocked_scan((1 - z).view(Tb, -1), (z * c).view(Tb, -1), s, out)   # a = 1 - z, b = z c
            s = out[-1]
        ctx.cell, ctx.block = cell, block
        ctx.save_for_backward(xp, h0, h, mask)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):                                   # g (T, B, H): ∂L/∂h_t from the outputs
        xp, h0, h, mask = ctx.saved_tensors
        cell = ctx.cell
        T, B, H = h.shape
        grad_xp = torch.empty_like(xp)
        carry = torch.zeros_like(h0).reshape(-1)                    # a_{t+1} G_{t+1} from the block after
        for t0 in reversed(range(0, T, ctx.block)):
            part = slice(t0, min(T, t0 + ctx.block))
            gates = _gate_major(xp[part], cell.gates)
            z, c = cell.update(*gates)                              # (Tb, B, H) each
            m = None if mask is None else mask[part].unsqueeze(-1).to(z.dtype)
            zm = z if m is None else z * m
            Tb = z.shape[0]
            # G_t = g_t + a_{t+1} G_{t+1}: a reversed scan whose coefficient at t is a_{t+1}; after the block's
            # last step it is 1, where `carry` comes in. a = 1 - z goes into rows 0..Tb-1 of a (Tb+1)-row buffer.
            a = zm.new_empty(Tb + 1, B * H)
            torch.sub(1, zm.view(Tb, -1), out=a[:Tb])
            a[Tb] = 1
            G = blocked_scan(a[1:], g[part].reshape(Tb, -1), carry, torch.empty_like(a[1:]), reverse=True)
            G = G.view(Tb, B, H)
            if t0 == 0:
                h_prev = torch.cat([h0.unsqueeze(0), h[:part.stop - 1]])   # (Tb, B, H): h_{t-1}
            else:
                h_prev = h[t0 - 1:part.stop - 1]                    # a view: no copy
            grad_z = G * (c - h_prev)
            if m is not None:
                grad_z = grad_z * m
            grads = cell.update_backward(gates, z, grad_z, G * zm)
            out = grad_xp[part].view(Tb, B, cell.gates, H)
            for k, grad in enumerate(grads):
                out[:, :, k] = grad
            carry = a[0] * G[0].view(-1)
        return None, None, grad_xp, carry.view_as(h0), None


def update_scan(cell, xp: Tensor, h0: Tensor, mask: Tensor | None = None) -> Tensor:
    """The states of ``h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ c_t`` for every step, by the blocked scan.

    ``cell``: has ``gates`` (G), ``update(*gates) -> (z, c)`` (element-wise, each gate's input projections
    (T', B, H)) and ``update_backward(gates, z, grad_z, grad_c)`` -> the G gradients (see
    :class:`rnnkit.nn.cells.ScanCell`). xp (T, B, G*H): the input projections of every step; h0 (B, H); mask
    (T, B) or None: a False step keeps the state. Returns h (T, B, H). Differentiable once (xp and h0).
    """
    T, B = xp.shape[:2]
    block = max(1, min(T, BLOCK_ELEMENTS // max(1, B * h0.shape[-1])))   # time steps per block
    return _UpdateScan.apply(cell, block, xp, h0, mask)
