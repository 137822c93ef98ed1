"""Recurrent cells: one class per cell, each computing ONE time step.

Every cell has the same shape of interface::

    y_t, new_state = cell(x_t, state)      # x_t: (B, I); state: tuple of (B, S_k) tensors

and declares ``state_size`` (one size per state tensor) and ``output_size``. The loop over time
lives once, in :class:`rnnkit.nn.layers.RNN`; a list of cells is a stack.

For speed the step is split in two: ``project_input(x)`` computes the input half ``W x + b`` and
works on any leading shape, so the layer can run it for ALL time steps in one large matmul;
``step(xp_t, state, h_mask)`` then does the recurrent half. ``forward`` is simply the two in a row.

Notation follows the lectures: ``W`` multiplies the input ``x_t``, ``U`` the previous state
``h_{t-1}``, ``b`` is a bias, ``σ`` the logistic sigmoid and ``⊙`` the element-wise product.
Parameter names and gate orders follow ``torch.nn.RNN/GRU/LSTM`` (``weight_ih`` = stacked W,
``weight_hh`` = stacked U, ``bias_ih`` + ``bias_hh`` = b), so weights copy one to one between a
cell and torch's fused kernels.

``h_mask`` is the optional variational recurrent-dropout mask (B, H): it multiplies the previous
state where it enters the recurrent matmul ``U h_{t-1}``, and nowhere else (Gal & Ghahramani 2016).

Two optional hooks for cells to come, both used by the layer when a cell has them:

* ``takes_context = True``: ``step(xp_t, state, h_mask, weight_hh, context=...)`` also receives
  whatever the caller passed as ``RNN(...)(x, context=...)``, the same object at every step: an
  attention decoder gets the encoder's outputs (B, S, E) this way and computes its own weights from
  its state, so the one time loop runs it too.
* ``scan(xp, state, mask)``: the whole sequence at once, for cells whose recurrence is linear in the
  state and so runs as a parallel scan (minGRU, minLSTM). ``xp`` is ``project_input`` of all steps
  (T, B, G*H), ``mask`` (T, B) or None (a padded step keeps the state and outputs zeros, as in the
  loop); it returns ``(outputs (T, B, O), final state)``. The layer calls it instead of the loop
  whenever no variational recurrent dropout is active.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit._checks import check_choice, check_int, fail
from rnnkit.nn import scan as scan_ops

State = tuple[Tensor, ...]


def _hard_sigmoid(x: Tensor) -> Tensor:
    # The piecewise-linear sigmoid: 0 below -3, 1 above 3, x/6 + 1/2 in between
    # (torch's and Keras 3's definition).
    return F.hardsigmoid(x)


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": _hard_sigmoid,
    "linear": lambda x: x,
}


def get_activation(name: str, arg: str = "activation") -> Callable[[Tensor], Tensor]:
    check_choice(arg, name, ACTIVATIONS)
    return ACTIVATIONS[name]


class Cell(nn.Module):
    """Base class of all cells. Subclasses set ``state_size`` and ``output_size`` and implement
    ``project_input`` and ``step``; a custom cell that does so works in :class:`rnnkit.nn.layers.RNN`."""

    input_size: int
    hidden_size: int
    state_size: tuple[int, ...]   # size of each state tensor, e.g. (H, H) for LSTM's (h, c)
    output_size: int              # size of y_t
    gates: int = 1                # rows of weight_ih = gates * hidden_size
    takes_context: bool = False   # step() takes a context= (attention decoders); see the module doc
    scan = None                   # optional scan(xp, state, mask) over a whole sequence; see the module doc

    def _init_weights(self, input_size: int, hidden_size: int, bias: bool, rec_size: int | None = None,
                      recurrent: bool = True) -> None:
        """W (``weight_ih``, (G*H, I)) and, for a ``recurrent`` cell, U (``weight_hh``, (G*H, rec_size or H)),
        with their biases; a cell whose gates read only x_t (ScanCell) has no U (None)."""
        check_int("input_size", input_size, min=1)
        check_int("hidden_size", hidden_size, min=1)
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = self.gates * hidden_size
        self.bias = bias
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.register_parameter("weight_hh", nn.Parameter(torch.empty(rows, rec_size or hidden_size))
                                if recurrent else None)
        self.register_parameter("bias_ih", nn.Parameter(torch.empty(rows)) if bias else None)
        self.register_parameter("bias_hh", nn.Parameter(torch.empty(rows)) if bias and recurrent else None)
        # Defaults for a cell whose state is one vector fed back into U; LSTMs and Jordan override.
        self.state_size = (rec_size or hidden_size,)
        self.output_size = hidden_size
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch's default for recurrent layers: U(-1/sqrt(H), 1/sqrt(H)) for every weight.
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def init_state(self, batch_size: int, device=None, dtype=None) -> State:
        """The all-zeros state for a batch."""
        return tuple(torch.zeros(batch_size, s, device=device, dtype=dtype) for s in self.state_size)

    def project_input(self, x: Tensor) -> Tensor:
        """Input half of the step for any leading shape: (..., I) -> (..., gates*H)."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    @staticmethod
    def masked(h: Tensor, h_mask: Tensor | None) -> Tensor:
        """The state as it enters the recurrent matmul: times the variational mask, if any."""
        return h if h_mask is None else h * h_mask

    def recurrent(self, h: Tensor, weight_hh: Tensor | None = None) -> Tensor:
        """``U h (+ b_hh)``: (B, H) -> (B, gates*H). ``weight_hh`` overrides U (weight-drop)."""
        return F.linear(h, self.weight_hh if weight_hh is None else weight_hh, self.bias_hh)

    def step(self, xp: Tensor, state: State, h_mask: Tensor | None = None,
             weight_hh: Tensor | None = None) -> tuple[Tensor, State]:
        raise NotImplementedError  # abstract: each cell defines its step

    def forward(self, x: Tensor, state: State | None = None, context=None) -> tuple[Tensor, State]:
        """One time step: x (B, I), state tuple of (B, S) -> (y (B, O), new state)."""
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        if context is not None:
            return self.step(self.project_input(x), tuple(state), context=context)
        return self.step(self.project_input(x), tuple(state))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class SimpleRNNCell(Cell):
    """Elman's simple recurrent cell; the output is the state.

        h_t = act(W x_t + U h_{t-1} + b)
        y_t = h_t

    ``activation``: tanh (default), relu, sigmoid or hard_sigmoid.
    """

    def __init__(self, input_size: int, hidden_size: int, activation: str = "tanh", bias: bool = True):
        super().__init__()
        self.activation = activation
        self.act = get_activation(activation)
        self._init_weights(input_size, hidden_size, bias)

    def step(self, xp, state, h_mask=None, weight_hh=None):
        (h,) = state
        h_in = self.masked(h, h_mask)
        h = self.act(xp + self.recurrent(h_in, weight_hh))      # (B, H)
        return h, (h,)


class JordanCell(Cell):
    """Jordan's recurrent cell: the state fed back is the previous OUTPUT, not the hidden layer.

        h_t = act(W x_t + U y_{t-1} + b)
        y_t = act_y(V h_t + c)

    The state is ``(y,)`` of size ``output_size``. ``V`` is ``weight_ho`` and ``c`` is ``bias_ho``.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int | None = None,
                 activation: str = "tanh", output_activation: str = "tanh", bias: bool = True):
        super().__init__()
        output_size = hidden_size if output_size is None else output_size
        check_int("output_size", output_size, min=1)
        self.activation, self.output_activation = activation, output_activation
        self.act = get_activation(activation)
        self.act_y = get_activation(output_activation, "output_activation")
        self.weight_ho = nn.Parameter(torch.empty(output_size, hidden_size))
        self.bias_ho = nn.Parameter(torch.empty(output_size)) if bias else None
        self._init_weights(input_size, hidden_size, bias, rec_size=output_size)   # state: (y,) of size O
        self.output_size = output_size

    def step(self, xp, state, h_mask=None, weight_hh=None):
        (y,) = state                                              # (B, O): last output
        y_in = self.masked(y, h_mask)
        h = self.act(xp + self.recurrent(y_in, weight_hh))        # (B, H)
        y = self.act_y(F.linear(h, self.weight_ho, self.bias_ho))  # (B, O)
        return y, (y,)


class GRUCell(Cell):
    """Gated recurrent unit (Cho et al. 2014), in two formulations.

        r_t = σ(W_r x_t + U_r h_{t-1} + b_r)          reset gate
        z_t = σ(W_z x_t + U_z h_{t-1} + b_z)          update gate
        reset_after=True  (torch / cuDNN, Keras default):
            n_t = tanh(W_n x_t + b_in + r_t ⊙ (U_n h_{t-1} + b_hn))
        reset_after=False (the original paper):
            n_t = tanh(W_n x_t + U_n (r_t ⊙ h_{t-1}) + b_n)
        h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    Gate order in the stacked weights is (r, z, n), as in ``torch.nn.GRU``. Only
    ``reset_after=True`` can run on torch's fused kernel.
    """

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, reset_after: bool = True, bias: bool = True):
        super().__init__()
        self.reset_after = bool(reset_after)
        self._init_weights(input_size, hidden_size, bias)

    def step(self, xp, state, h_mask=None, weight_hh=None):
        (h,) = state
        h_in = self.masked(h, h_mask)
        H = self.hidden_size
        x_r, x_z, x_n = xp.split(H, dim=1)                        # each (B, H)
        U = self.weight_hh if weight_hh is None else weight_hh
        b = self.bias_hh
        if self.reset_after:
            h_r, h_z, h_n = F.linear(h_in, U, b).split(H, dim=1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)
        else:
            U_rz, U_n = U[: 2 * H], U[2 * H:]
            b_rz, b_n = (None, None) if b is None else (b[: 2 * H], b[2 * H:])
            h_r, h_z = F.linear(h_in, U_rz, b_rz).split(H, dim=1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + F.linear(r * h_in, U_n, b_n))
        h = n + z * (h - n)                                       # = (1-z)⊙n + z⊙h, one op fewer
        return h, (h,)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, reset_after={self.reset_after}"


class LSTMCell(Cell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with a forget gate), as torch computes it.

        i_t = σ(W_i x_t + U_i h_{t-1} + b_i)          input gate
        f_t = σ(W_f x_t + U_f h_{t-1} + b_f)          forget gate
        g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)       candidate cell
        o_t = σ(W_o x_t + U_o h_{t-1} + b_o)          output gate
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        h_t = o_t ⊙ tanh(c_t)

    State is ``(h, c)``; gate order (i, f, g, o) as in ``torch.nn.LSTM``.
    """

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        self._init_weights(input_size, hidden_size, bias)
        self.state_size = (hidden_size, hidden_size)     # (h, c)

    def step(self, xp, state, h_mask=None, weight_hh=None):
        h, c = state
        h_in = self.masked(h, h_mask)
        gates = xp + self.recurrent(h_in, weight_hh)              # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class PeepholeLSTMCell(LSTMCell):
    """LSTM with peephole connections (Gers & Schmidhuber 2000): the gates also look at the cell.

        i_t = σ(W_i x_t + U_i h_{t-1} + p_i ⊙ c_{t-1} + b_i)
        f_t = σ(W_f x_t + U_f h_{t-1} + p_f ⊙ c_{t-1} + b_f)
        g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        o_t = σ(W_o x_t + U_o h_{t-1} + p_o ⊙ c_t + b_o)      (looks at the NEW cell)
        h_t = o_t ⊙ tanh(c_t)

    The peephole weights ``p`` are diagonal: vectors ``peephole_i/f/o`` of size H, initialised to 0
    so that a fresh peephole LSTM starts out as a plain LSTM.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(input_size, hidden_size, bias)
        self.peephole_i = nn.Parameter(torch.zeros(hidden_size))
        self.peephole_f = nn.Parameter(torch.zeros(hidden_size))
        self.peephole_o = nn.Parameter(torch.zeros(hidden_size))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for name in ("peephole_i", "peephole_f", "peephole_o"):
            if hasattr(self, name):
                nn.init.zeros_(getattr(self, name))

    def step(self, xp, state, h_mask=None, weight_hh=None):
        h, c = state
        h_in = self.masked(h, h_mask)
        gates = xp + self.recurrent(h_in, weight_hh)              # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=1)
        i = torch.sigmoid(i + self.peephole_i * c)
        f = torch.sigmoid(f + self.peephole_f * c)
        c = f * c + i * torch.tanh(g)
        o = torch.sigmoid(o + self.peephole_o * c)
        h = o * torch.tanh(c)
        return h, (h, c)


def _g(x: Tensor) -> Tensor:
    """Feng et al.'s positive activation for the candidate state: x + 1/2 for x >= 0, σ(x) below.

    Continuous, increasing, always > 0 (so the log-space scan can take its log) and like the identity for
    large x. Computed as relu(x) + σ(x - relu(x)) = relu(x) + σ(min(x, 0)): the same values, without
    ``torch.where``, with which it ran 4x slower on the CPU."""
    r = torch.relu(x)
    return r + torch.sigmoid(x - r)


def _g_backward(grad: Tensor, x: Tensor) -> Tensor:
    """grad ⊙ g'(x): g' = 1 for x > 0, σ(x)(1 - σ(x)) for x <= 0."""
    q = torch.ops.aten.sigmoid_backward(grad, torch.sigmoid(x - torch.relu(x)))   # grad ⊙ σ'(min(x, 0))
    return q + torch.ops.aten.threshold_backward(grad - q, x, 0)                   # x > 0: grad instead


def _log_g(x: Tensor) -> Tensor:
    """log g(x), stable for every x: log(x + 1/2) above 0, log σ(x) = -softplus(-x) below."""
    return torch.where(x >= 0, torch.log(torch.relu(x) + 0.5), -F.softplus(-x))


class ScanCell(Cell):
    """A cell whose gates read only x_t, so that its state follows a linear recurrence::

        h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ c_t          (z_t, c_t) = update(W x_t + b)

    with an update gate ``z_t`` in [0, 1] and a candidate ``c_t`` known for every step before the recurrence
    starts: training runs the whole sequence as one scan (:meth:`scan`, :mod:`rnnkit.nn.scan`), generation
    runs :meth:`step` one token at a time, with the same weights and the same numbers.

    There is no recurrent matrix U (``weight_hh`` and ``bias_hh`` are None), so no recurrent dropout:
    :class:`~rnnkit.nn.layers.RNN` refuses ``recurrent_dropout`` for these cells. State ``(h,)``; output ``h``.
    A subclass gives ``update`` (z, c), its derivative ``update_backward`` (written out: the blocked scan
    uses it; the tests check it against autograd) and ``log_coefficients`` (log(1 - z), log(z c)).

    ``scan_method``: "blocked" (default: :func:`rnnkit.nn.scan.update_scan`), "log" (Feng et al.'s log-space
    scan, :func:`rnnkit.nn.scan.scan_log`) or "loop" (one step at a time): the same function three ways.
    """

    scan_method: str = "blocked"

    def _init_weights(self, input_size: int, hidden_size: int, bias: bool, rec_size: int | None = None,
                      recurrent: bool = False) -> None:
        super()._init_weights(input_size, hidden_size, bias, recurrent=False)    # gates read only x_t: no U

    def update(self, *gates: Tensor) -> tuple[Tensor, Tensor]:
        """(z, c) from the G gates' input projections, each (..., H)."""
        raise NotImplementedError  # abstract: MinGRUCell and MinLSTMCell each define it

    def update_backward(self, gates: list[Tensor], z: Tensor, grad_z: Tensor, grad_c: Tensor) -> list[Tensor]:
        """The gradients of the G gates' input projections from those of z and c (``z``: as ``update`` gave it)."""
        raise NotImplementedError  # abstract: MinGRUCell and MinLSTMCell each define it

    def log_coefficients(self, *gates: Tensor) -> tuple[Tensor, Tensor]:
        """(log(1 - z), log(z c)), computed stably (c > 0 in these cells)."""
        raise NotImplementedError  # abstract: MinGRUCell and MinLSTMCell each define it

    def step(self, xp, state, h_mask=None, weight_hh=None):
        if h_mask is not None or weight_hh is not None:
            fail("recurrent_dropout", "> 0", f"0 for {type(self).__name__}: it has no recurrent weights to drop")
        (h,) = state
        z, c = self.update(*xp.chunk(self.gates, dim=-1))    # (B, H) each
        h = torch.addcmul(h, z, c - h)                       # (1 - z) ⊙ h + z ⊙ c
        return h, (h,)

    def scan(self, xp: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, State]:
        """The whole sequence: xp (T, B, G*H), state ((B, H),), mask (T, B) or None -> outputs (T, B, H) (0 at
        padded steps) and the final state (a padded step keeps it, as in the layer's loop)."""
        (h0,) = state
        check_choice("scan_method", self.scan_method, scan_ops.METHODS)
        # Under bfloat16 autocast the projections come in bfloat16: the recurrence runs in the state's dtype,
        # as the loop's does (a step's sum with the float32 state is float32).
        xp = xp.to(h0.dtype)
        m = None if mask is None else mask.unsqueeze(-1).to(xp.dtype)   # (T, B, 1): 1 valid, 0 padded
        # One step (generation through the layer, an exported step graph): plain operations, no scan machinery.
        method = "loop" if xp.shape[0] == 1 else self.scan_method
        if method == "blocked":
            hs = scan_ops.update_scan(self, xp, h0, mask)                  # (T, B, H)
        elif method == "log":
            log_a, log_b = self.log_coefficients(*xp.chunk(self.gates, dim=-1))
            if m is not None:
                # A padded step: a = 1 (log 0) and b = 0 (a log far below any real one: not -inf, see scan_log).
                log_a = log_a * m
                log_b = log_b * m + (1 - m) * (torch.finfo(xp.dtype).min / 4)
            hs = scan_ops.scan_log(log_a, log_b, h0)
        else:
            z, c = self.update(*xp.chunk(self.gates, dim=-1))
            if m is not None:
                z = z * m
            hs = scan_ops.scan_loop(1 - z, z * c, h0)
        out = hs if m is None else hs * m
        return out, (hs[-1],)


class MinGRUCell(ScanCell):
    """minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): a GRU whose gates read only x_t.

        z_t = σ(W_z x_t + b_z)                        update gate
        h̃_t = g(W_h x_t + b_h)                        candidate, g(x) = x + 1/2 (x ≥ 0), σ(x) (x < 0)
        h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t

    No reset gate, no tanh, no U: the state is a linear recurrence, so training runs as a scan. g keeps
    h̃ > 0 (the paper's choice: log h̃ exists for the log-space scan). Gate order in ``weight_ih``: (z, h̃).
    Its weights are 2·H·(I + 1), a third of a GRU's 3·H·(I + H + 2) when I = H.
    """

    gates = 2

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        self._init_weights(input_size, hidden_size, bias)

    def update(self, k, x_h):                                # (..., H) each: W_z x + b_z, W_h x + b_h
        return torch.sigmoid(k), _g(x_h)

    def update_backward(self, gates, z, grad_z, grad_c):
        x_h = gates[1]
        return [torch.ops.aten.sigmoid_backward(grad_z, z), _g_backward(grad_c, x_h)]

    def log_coefficients(self, k, x_h):
        # log(1 - σ(k)) = -softplus(k), log σ(k) = -softplus(-k): no log of a rounded-off 0
        return -F.softplus(k), -F.softplus(-k) + _log_g(x_h)


class MinLSTMCell(ScanCell):
    """minLSTM (Feng et al. 2024): an LSTM whose gates read only x_t, with no output gate and no cell state.

        f_t = σ(W_f x_t + b_f),  i_t = σ(W_i x_t + b_i)          forget and input gates
        h̃_t = g(W_h x_t + b_h)                                    candidate (g as in minGRU)
        f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)       normalised, so f' + i' = 1
        h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t

    So i' is an update gate: i' = σ(d) with d = log i - log f = softplus(-k_f) - softplus(-k_i), the form
    computed here (stable when both gates are near 0), and f' = 1 - i'. Gate order in ``weight_ih``:
    (f, i, h̃). State ``(h,)``.
    """

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        self._init_weights(input_size, hidden_size, bias)

    def update(self, k_f, k_i, x_h):                         # (..., H) each
        d = F.softplus(-k_f) - F.softplus(-k_i)              # log i - log f
        return torch.sigmoid(d), _g(x_h)

    def update_backward(self, gates, z, grad_z, grad_c):
        k_f, k_i, x_h = gates
        grad_d = torch.ops.aten.sigmoid_backward(grad_z, z)
        # softplus'(u) = σ(u): ∂d/∂k_f = -σ(-k_f), ∂d/∂k_i = σ(-k_i)
        return [-grad_d * torch.sigmoid(-k_f), grad_d * torch.sigmoid(-k_i), _g_backward(grad_c, x_h)]

    def log_coefficients(self, k_f, k_i, x_h):
        d = F.softplus(-k_f) - F.softplus(-k_i)
        return -F.softplus(d), -F.softplus(-d) + _log_g(x_h)


# Registered names, so a config or a CLI flag can pick a cell by name (a Cell subclass works too).
CELLS: dict[str, type[Cell]] = {
    "rnn": SimpleRNNCell,
    "elman": SimpleRNNCell,
    "jordan": JordanCell,
    "gru": GRUCell,
    "lstm": LSTMCell,
    "peephole": PeepholeLSTMCell,
    "peephole_lstm": PeepholeLSTMCell,
    "mingru": MinGRUCell,
    "minlstm": MinLSTMCell,
}


def make_cell(cell: str | type[Cell], input_size: int, hidden_size: int, **kwargs) -> Cell:
    """Build a cell from a registered name or a :class:`Cell` subclass."""
    if isinstance(cell, type) and issubclass(cell, Cell):
        return cell(input_size, hidden_size, **kwargs)
    check_choice("cell", cell, CELLS)
    return CELLS[cell](input_size, hidden_size, **kwargs)
