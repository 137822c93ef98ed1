"""The recurrent layer: the loop over time, written once, and the dispatch to torch's fused kernels.

:class:`RNN` runs any :mod:`rnnkit.nn.cells` cell over a batch of sequences, with stacking,
bidirectional merge modes, dropout, two kinds of recurrent dropout, variable lengths and stateful
state carry for truncated backprop through time. Two paths compute the same function:

* the **fused path** hands a whole layer (both directions) to torch's own LSTM/GRU/RNN kernel
  (oneDNN on CPU, cuDNN on GPU). Variable lengths on the CPU run the padded batch through the plain
  kernel, the backward direction reversed within each length (exact, and several times faster there
  than packing); on GPUs, and for LSTM final states, they go through packed sequences. It is taken whenever
  the configuration allows it: an ``lstm``, ``gru`` (reset_after=True) or ``rnn`` (tanh/relu) cell,
  no variational recurrent dropout while training, and padding only on one side of each sequence;
* the **loop path** precomputes the input projections of all steps in one matmul and then calls
  ``cell.step`` once per time step. It runs every cell and every option. One case of it has its own
  kernel: a plain LSTM with variational recurrent dropout on the CPU, without a mask, runs
  :mod:`rnnkit.nn.lstm_kernel` (the same numbers, with the backward pass written out; ~0.86x the fused
  kernel's speed against ~0.66x for the loop). ``RNN.variational_kernel = False`` turns it off.

Tests check that the paths give the same outputs, final states and gradients for the same weights.
A cell with a whole-sequence ``scan`` (see :mod:`rnnkit.nn.cells`) runs that instead of the loop, and
``forward(..., context=...)`` hands a context (e.g. an encoder's outputs) to every step of cells that
take one (attention decoders).

Recurrent dropout, two ways (``recurrent_dropout_mode``):

* ``"variational"`` (Gal & Ghahramani 2016, Keras's ``recurrent_dropout``): one dropout mask per
  sequence on the previous state where it enters ``U h_{t-1}``, the SAME mask at every time step.
  Needs the loop path (or, for an LSTM, the LSTM kernel) while training.
* ``"weight_drop"`` (DropConnect on ``U``, AWD-LSTM, Merity et al. 2017): one mask on the
  hidden-to-hidden weight matrix per forward call (per batch), shared by every sequence and step.
  Because only the weights change, the fused kernel still runs.

Input ``dropout`` is variational too: one mask per sequence on each layer's input, the same at
every time step, a fresh one for every layer.

Shapes: with ``batch_first=True`` (the default) inputs are (B, T, I) and sequence outputs
(B, T, O); states are a list with one entry per layer and direction (``layer * D + direction``,
as torch orders them), each a tuple of (B, S) tensors: ``(h,)`` for rnn/gru/jordan, ``(h, c)``
for LSTMs.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit._checks import check_choice, check_float, check_int, fail
from rnnkit.nn.cells import Cell, GRUCell, LSTMCell, SimpleRNNCell, State, make_cell
from rnnkit.nn.lstm_kernel import gate_order, lstm_sequence

MERGE_MODES = ("concat", "sum", "mul", "ave")
RECURRENT_DROPOUT_MODES = ("variational", "weight_drop")
FUSED_MODES = ("auto", "always", "never")


class RNN(nn.Module):
    """A recurrent layer (or a stack of them) built from one cell type.

    Args:
        cell: a registered cell name ("rnn"/"elman", "jordan", "gru", "lstm", "peephole") or a
            :class:`~rnnkit.nn.cells.Cell` subclass.
        input_size, hidden_size: feature sizes of x_t and of the hidden layer.
        num_layers: stacked layers; layer k+1 reads layer k's (merged) output sequence.
        bidirectional: run a second cell from the end of each sequence to its start.
        merge_mode: how the two directions' outputs are combined: concat, sum, mul or ave.
        return_sequences: return every step's output (B, T, O) or only the last one (B, O)
            (for the backward direction "last" is its output at the first step, as in Keras).
        return_state: also return the final states (see the module docstring for their layout).
        batch_first: inputs and outputs are (B, T, ...) if True, (T, B, ...) if False.
        dropout: input dropout rate, one mask per sequence, applied to every layer's input.
        recurrent_dropout: rate of recurrent dropout; ``recurrent_dropout_mode`` picks the kind.
        stateful: carry each batch's final states (detached) into the next call, for truncated
            backprop through time over long streams; ``reset_state()`` forgets them.
        fused: "auto" takes the fused kernel when allowed, "never" always loops, "always" raises
            if the configuration cannot be fused.
        **cell_kwargs: passed to the cell (e.g. ``activation="relu"``, ``reset_after=False``).

    ``forward(x, initial_state=None, lengths=None, mask=None)``: ``lengths`` (B,) counts the valid
    steps of each sequence, padded at the end; ``mask`` (B, T) marks valid steps with True and may
    pad on the left, the right, or anywhere (masked steps change neither outputs nor state; their
    outputs are 0).
    """

    # Variational dropout on a plain LSTM (no masks, CPU) runs rnnkit.nn.lstm_kernel, which computes the
    # generic loop's numbers faster; False forces the generic loop (the reference the tests use).
    variational_kernel: bool = True

    def __init__(self, cell: str | type[Cell] = "lstm", input_size: int = 1, hidden_size: int = 1,
                 num_layers: int = 1, bidirectional: bool = False, merge_mode: str = "concat",
                 return_sequences: bool = True, return_state: bool = False, batch_first: bool = True,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 recurrent_dropout_mode: str = "variational", stateful: bool = False,
                 fused: str = "auto", **cell_kwargs):
        super().__init__()
        check_int("input_size", input_size, min=1)
        check_int("hidden_size", hidden_size, min=1)
        check_int("num_layers", num_layers, min=1)
        check_choice("merge_mode", merge_mode, MERGE_MODES)
        check_float("dropout", dropout, min=0.0, max=1.0, max_open=True)
        check_float("recurrent_dropout", recurrent_dropout, min=0.0, max=1.0, max_open=True)
        check_choice("recurrent_dropout_mode", recurrent_dropout_mode, RECURRENT_DROPOUT_MODES)
        check_choice("fused", fused, FUSED_MODES)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.merge_mode = bool(bidirectional), merge_mode
        self.num_directions = 2 if bidirectional else 1
        self.return_sequences, self.return_state = return_sequences, return_state
        self.batch_first, self.stateful, self.fused = batch_first, stateful, fused
        self.dropout, self.recurrent_dropout = float(dropout), float(recurrent_dropout)
        self.recurrent_dropout_mode = recurrent_dropout_mode

        # cells[layer * D + direction]: each layer reads the merged output of the one below.
        self.cells = nn.ModuleList()
        layer_in = input_size
        for _ in range(num_layers):
            for _ in range(self.num_directions):
                self.cells.append(make_cell(cell, layer_in, hidden_size, **cell_kwargs))
            out = self.cells[-1].output_size
            layer_in = out * self.num_directions if merge_mode == "concat" else out
        self.output_size = layer_in
        if self.recurrent_dropout > 0 and getattr(self.cells[0], "weight_hh", True) is None:
            fail("recurrent_dropout", recurrent_dropout, f"0 for cell {type(self.cells[0]).__name__}: its gates "
                 f"read only x_t, it has no recurrent weights to drop")
        self._carried: list[State] | None = None   # stateful mode: last batch's final states

    # ----------------------------------------------------------------------------------------
    # public helpers

    def reset_state(self) -> None:
        """Forget the states carried between calls in stateful mode."""
        self._carried = None

    def fused_kind(self) -> str | None:
        """The torch kernel this layer's cells map onto ("lstm", "gru", "rnn_tanh", "rnn_relu"), or None."""
        c = self.cells[0]
        if type(c) is LSTMCell:
            return "lstm"
        if type(c) is GRUCell and c.reset_after:
            return "gru"
        if type(c) is SimpleRNNCell and c.activation in ("tanh", "relu"):
            return "rnn_" + c.activation
        return None

    def uses_fused(self, mask: Tensor | None = None) -> bool:
        """Whether a forward call in the current mode (and with this mask) takes the fused kernel."""
        return self._fused_reason(_padding_side(mask)) is None

    # ----------------------------------------------------------------------------------------
    # forward

    def forward(self, x: Tensor, initial_state: Sequence[State] | State | None = None,
                lengths: Tensor | Sequence[int] | None = None, mask: Tensor | None = None, context=None):
        if x.dim() != 3:
            fail("x", tuple(x.shape), "a 3-D tensor (B, T, I)" if self.batch_first else "a 3-D tensor (T, B, I)")
        xs = x.transpose(0, 1) if self.batch_first else x          # (T, B, I): time-major inside
        T, B, I = xs.shape
        if I != self.input_size:
            fail("x", tuple(x.shape), f"last dimension {self.input_size} (input_size)")
        mask = self._step_mask(lengths, mask, T, B, xs.device)     # (T, B) bool or None
        side = _padding_side(mask)
        states = self._initial_states(initial_state, B, xs)

        if context is not None:
            lacking = [type(c).__name__ for c in self.cells if not c.takes_context]
            if lacking:
                fail("context", type(context).__name__, f"cells that take a context (takes_context=True); "
                     f"{lacking[0]} does not")
        reason = "a context is given" if context is not None else self._fused_reason(side)
        if reason is not None and self.fused == "always":
            raise ValueError(f"fused='always': this configuration cannot use the fused kernel ({reason})")
        use_fused = reason is None

        D = self.num_directions
        need_finals = self.return_state or self.stateful
        layer_in, finals, last_outputs = xs, [], []
        for layer in range(self.num_layers):
            if self.dropout > 0 and self.training:
                layer_in = layer_in * _dropout_mask(layer_in[0], self.dropout).unsqueeze(0)
            cells = [self.cells[layer * D + d] for d in range(D)]
            layer_states = states[layer * D:(layer + 1) * D]
            w_hh = [self._recurrent_weight(c) for c in cells]
            if use_fused:
                outs, fin = self._run_fused(cells, layer_in, layer_states, w_hh, mask, side, need_finals)
            else:
                outs, fin = [], []
                for d, c in enumerate(cells):
                    o, f = self._run_loop(c, layer_in, layer_states[d], w_hh[d], mask, reverse=d == 1,
                                          context=context)
                    outs.append(o)
                    fin.append(f)
            finals.extend(fin)
            layer_in = self._merge(outs)                             # (T, B, O)
            if layer == self.num_layers - 1 and not self.return_sequences:
                last_outputs = [_last_step(o, mask, reverse=d == 1) for d, o in enumerate(outs)]

        if self.stateful:
            self._carried = [tuple(s.detach() for s in st) for st in finals]
        if self.return_sequences:
            out = layer_in.transpose(0, 1) if self.batch_first else layer_in
        else:
            out = self._merge(last_outputs)                          # (B, O)
        return (out, finals) if self.return_state else out

    # ----------------------------------------------------------------------------------------
    # the two paths

    def _run_loop(self, cell: Cell, xs: Tensor, state: State, w_hh: Tensor | None,
                  mask: Tensor | None, reverse: bool, context=None) -> tuple[Tensor, State]:
        """The loop over time, the one place it is written: xs (T, B, I) -> outputs (T, B, O)."""
        h_mask = None
        if self.recurrent_dropout > 0 and self.training and self.recurrent_dropout_mode == "variational":
            h_mask = _dropout_mask(state[0], self.recurrent_dropout)  # (B, S): one mask per sequence
            if self.variational_kernel and type(cell) is LSTMCell and mask is None and xs.device.type == "cpu":
                return self._run_lstm_kernel(cell, xs, state, h_mask, reverse)
        elif cell.scan is not None and context is None and w_hh is None:
            return self._run_scan(cell, xs, state, mask, reverse)
        extra = {"context": context} if context is not None else {}
        # All input projections in one matmul; unbind (not xp[t]) keeps backward cheap: indexing
        # inside the loop makes autograd build a zero tensor the size of xp at every step.
        T = xs.shape[0]
        xp = cell.project_input(xs).unbind(0)                       # T x (B, G*H)
        steps = mask.unsqueeze(-1).unbind(0) if mask is not None else None   # T x (B, 1)
        outputs: list[Tensor] = [xs] * T                            # placeholders, all overwritten
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            y, new = cell.step(xp[t], state, h_mask, w_hh, **extra)
            if steps is not None:
                # A padded step keeps the old state and outputs zeros.
                m = steps[t]
                new = tuple(torch.where(m, n, s) for n, s in zip(new, state))
                y = y * m
            state = new
            outputs[t] = y
        return torch.stack(outputs), state

    def _run_scan(self, cell: Cell, xs: Tensor, state: State, mask: Tensor | None,
                  reverse: bool) -> tuple[Tensor, State]:
        """A cell's whole-sequence scan; the backward direction reads the flipped sequence (a padded
        step keeps the state, so right padding read backwards is skipped as in the loop)."""
        xp = cell.project_input(xs)                                  # (T, B, G*H)
        if reverse:
            xp, mask = xp.flip(0), (None if mask is None else mask.flip(0))
        out, final = cell.scan(xp, state, mask)
        return (out.flip(0) if reverse else out), final

    def _run_lstm_kernel(self, cell: LSTMCell, xs: Tensor, state: State, h_mask: Tensor,
                         reverse: bool) -> tuple[Tensor, State]:
        """Variational dropout on an LSTM, without masks: :mod:`rnnkit.nn.lstm_kernel` (same numbers, faster)."""
        order = gate_order(cell.hidden_size, xs.device)              # the kernel's gate order: i, f, o, g
        bias = None if cell.bias_ih is None else (cell.bias_ih + cell.bias_hh)[order]
        if reverse:
            xs = xs.flip(0)
        hs, h, c = lstm_sequence(xs, cell.weight_ih[order], bias, state[0], state[1], cell.weight_hh[order],
                                 h_mask)
        return (hs.flip(0) if reverse else hs), (h, c)

    def _run_fused(self, cells: list[Cell], xs: Tensor, states: list[State], w_hh: list[Tensor | None],
                   mask: Tensor | None, side: str, need_finals: bool) -> tuple[list[Tensor], list[State]]:
        """One layer, all directions, in torch's fused kernel: xs (T, B, I) -> D x (T, B, H).

        Variable lengths take one of two routes. On the CPU, the padded batch runs through the plain
        kernel (:meth:`_run_fused_padded`), which was 4.6x faster there than torch's packed sequences;
        packing is used on GPUs, and for LSTM final states, which the padded route cannot see.
        """
        kind = self.fused_kind()
        T, B = xs.shape[:2]
        weights: list[Tensor] = []
        for c, w in zip(cells, w_hh):
            weights += [c.weight_ih, c.weight_hh if w is None else w]
            if c.bias:
                weights += [c.bias_ih, c.bias_hh]
        # hx: (D, B, H) per state tensor, the layout torch's kernels take.
        hx = [torch.stack([st[k] for st in states]) for k in range(len(states[0]))]
        bidir = len(cells) == 2
        lengths = None
        if mask is not None:
            lengths = mask.sum(0)                                   # (B,)
            if side == "left":
                xs = _shift_left_to_right(xs, lengths)
            if xs.device.type == "cpu" and not (kind == "lstm" and need_finals):
                outs, finals = self._run_fused_padded(kind, cells, xs, hx, weights, lengths)
                if side == "left":
                    outs = [_shift_right_to_left(o, lengths) for o in outs]
                return outs, finals
        args = (weights, cells[0].bias, 1, 0.0, self.training, bidir)
        with warnings.catch_warnings():
            # On cuDNN, weights rebuilt every call (weight-drop) are never one flat buffer; torch
            # copies them into one and warns each time. The copy is the price of the new mask.
            warnings.filterwarnings("ignore", message=".*not part of single contiguous chunk.*")
            if lengths is None:
                res = _VF_CALL[kind](xs, hx[0] if kind != "lstm" else tuple(hx), *args, False)
                out = res[0]
            else:
                packed = pack_padded_sequence(xs, lengths.cpu(), enforce_sorted=False)
                order = packed.sorted_indices
                hxs = [h.index_select(1, order) for h in hx]
                res = _VF_CALL[kind](packed.data, packed.batch_sizes,
                                     hxs[0] if kind != "lstm" else tuple(hxs), *args)
                packed_out = packed._replace(data=res[0])
                out, _ = pad_packed_sequence(packed_out, total_length=T)   # (T, B, D*H), original order
                res = (res[0],) + tuple(h.index_select(1, packed.unsorted_indices) for h in res[1:])
                if side == "left":
                    out = _shift_right_to_left(out, lengths)
        H = cells[0].hidden_size
        outs = list(out.split(H, dim=2)) if bidir else [out]
        finals = [tuple(h[d] for h in res[1:]) for d in range(len(cells))]
        return outs, finals

    def _run_fused_padded(self, kind: str, cells: list[Cell], xs: Tensor, hx: list[Tensor],
                          weights: list[Tensor], lengths: Tensor) -> tuple[list[Tensor], list[State]]:
        """Right-padded sequences without packing: xs (T, B, I), lengths (B,) -> D x (T, B, H).

        Why this is exact: a recurrence is causal, so the forward direction's outputs at valid steps
        never see the padding after them. The backward direction reads each sequence reversed *within
        its own length* (the padding stays at the end), so it is causal over the reversed sequence too.
        Outputs at padded steps are set to 0; the final state of each direction is its output at step
        length - 1 (in the order it read), which is the whole state for rnn/gru. The LSTM's cell state
        c is not among the outputs, so LSTM final states go through packing instead.
        """
        T, B = xs.shape[:2]
        per_dir = len(weights) // len(cells)
        valid = (torch.arange(T, device=xs.device).unsqueeze(1) < lengths).unsqueeze(-1)   # (T, B, 1)
        last = (lengths - 1).view(1, B, 1)
        outs, finals = [], []
        for d, cell in enumerate(cells):
            x_d = xs if d == 0 else reverse_within_length(xs, lengths)
            h0 = [h[d:d + 1] for h in hx]                           # (1, B, H) each
            res = _VF_CALL[kind](x_d, h0[0] if kind != "lstm" else tuple(h0), weights[d * per_dir:(d + 1) * per_dir],
                                 cell.bias, 1, 0.0, self.training, False, False)
            out = res[0]                                            # (T, B, H), in the order read
            h_last = out.gather(0, last.expand(1, B, out.shape[2])).squeeze(0)     # (B, H)
            finals.append((h_last,) if kind != "lstm" else (h_last, None))
            if d == 1:
                out = reverse_within_length(out, lengths)          # back to time order
            outs.append(out * valid)
        return outs, finals

    # ----------------------------------------------------------------------------------------
    # pieces

    def _fused_reason(self, side: str) -> str | None:
        """None if the fused kernel can run; else the reason it cannot."""
        if self.fused == "never":
            return "fused='never'"
        if self.fused_kind() is None:
            c = self.cells[0]
            return f"cell {type(c).__name__} has no fused kernel" + (
                " (GRU with reset_after=False)" if isinstance(c, GRUCell) else "")
        if self.training and self.recurrent_dropout > 0 and self.recurrent_dropout_mode == "variational":
            return "variational recurrent dropout needs the loop path while training"
        if side == "general":
            return "the mask has gaps or padding on both sides"
        if side == "empty":
            return "a sequence has length 0"
        return None

    def _recurrent_weight(self, cell: Cell) -> Tensor | None:
        """Weight-drop: U with one DropConnect mask for this call; None means use U as it is."""
        if self.recurrent_dropout > 0 and self.training and self.recurrent_dropout_mode == "weight_drop":
            return F.dropout(cell.weight_hh, self.recurrent_dropout, training=True)
        return None

    def _merge(self, outs: list[Tensor]) -> Tensor:
        if len(outs) == 1:
            return outs[0]
        a, b = outs
        if self.merge_mode == "concat":
            return torch.cat([a, b], dim=-1)
        if self.merge_mode == "sum":
            return a + b
        if self.merge_mode == "mul":
            return a * b
        return (a + b) / 2

    def _step_mask(self, lengths, mask, T: int, B: int, device) -> Tensor | None:
        """(T, B) bool mask of valid steps, or None when every step is valid."""
        if lengths is not None and mask is not None:
            raise ValueError("lengths and mask: pass one of them, not both")
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=device)
            if lengths.shape != (B,):
                fail("lengths", tuple(lengths.shape), f"shape ({B},): one length per sequence in the batch")
            if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
                fail("lengths", lengths.dtype, "an integer tensor")
            lo, hi = int(lengths.min()), int(lengths.max())
            if lo < 0 or hi > T:
                fail("lengths", lengths.tolist() if B <= 8 else f"min {lo}, max {hi}",
                     f"lengths between 0 and the sequence length {T}")
            if lo == T:
                return None
            return torch.arange(T, device=device).unsqueeze(1) < lengths.unsqueeze(0)
        if mask is not None:
            mask = torch.as_tensor(mask, device=device)
            if mask.shape != (B, T):
                fail("mask", tuple(mask.shape), f"shape ({B}, {T}) = (batch, time)")
            mask = mask.bool().transpose(0, 1)
            return None if bool(mask.all()) else mask
        return None

    def _initial_states(self, initial_state, B: int, like: Tensor) -> list[State]:
        n = self.num_layers * self.num_directions
        if initial_state is None and self.stateful and self._carried is not None:
            if self._carried[0][0].shape[0] != B:
                raise ValueError(
                    f"stateful layer: the carried state has batch size {self._carried[0][0].shape[0]} "
                    f"but this batch has {B}; keep the batch size fixed or call reset_state()")
            initial_state = self._carried
        if initial_state is None:
            return [c.init_state(B, like.device, like.dtype) for c in self.cells]
        if isinstance(initial_state, Tensor):
            initial_state = [(initial_state,)]
        elif isinstance(initial_state, tuple) and initial_state and isinstance(initial_state[0], Tensor):
            initial_state = [initial_state]
        states = [tuple(s) for s in initial_state]
        if len(states) != n:
            fail("initial_state", f"a list of {len(states)} states",
                 f"{n} (one per layer and direction: num_layers * num_directions)")
        for k, (st, c) in enumerate(zip(states, self.cells)):
            want = [(B, s) for s in c.state_size]
            got = [tuple(s.shape) for s in st]
            if got != want:
                fail(f"initial_state[{k}]", got, f"shapes {want}")
        return states


# ---------------------------------------------------------------------------------------------
# module-level helpers

# torch's fused kernels; every one takes (input, hx, weights, has_biases, num_layers, dropout,
# train, bidirectional[, batch_first]) and returns (output, *final_states).
_VF_CALL = {
    "lstm": torch._VF.lstm,
    "gru": torch._VF.gru,
    "rnn_tanh": torch._VF.rnn_tanh,
    "rnn_relu": torch._VF.rnn_relu,
}


def _dropout_mask(like: Tensor, p: float) -> Tensor:
    """Inverted-dropout mask shaped like ``like`` (B, F): zeros with prob p, else 1/(1-p)."""
    return torch.empty_like(like).bernoulli_(1 - p) / (1 - p)


def _padding_side(mask: Tensor | None) -> str:
    """Classify a (T, B) step mask: "none", "right", "left", "general" (gaps) or "empty"."""
    if mask is None:
        return "none"
    lengths = mask.sum(0)
    if bool((lengths == 0).any()):
        return "empty"
    T = mask.shape[0]
    t = torch.arange(T, device=mask.device).unsqueeze(1)
    if torch.equal(mask, t < lengths):
        return "right"
    if torch.equal(mask, t >= T - lengths):
        return "left"
    return "general"


def _shift_left_to_right(xs: Tensor, lengths: Tensor) -> Tensor:
    """Move left-padded sequences (T, B, F) to the start: out[t, b] = xs[(t + T - len_b) % T, b]."""
    T = xs.shape[0]
    idx = (torch.arange(T, device=xs.device).unsqueeze(1) + (T - lengths).unsqueeze(0)) % T   # (T, B)
    return xs.gather(0, idx.unsqueeze(-1).expand(-1, -1, xs.shape[2]))


def _shift_right_to_left(xs: Tensor, lengths: Tensor) -> Tensor:
    """The inverse of :func:`_shift_left_to_right`."""
    T = xs.shape[0]
    idx = (torch.arange(T, device=xs.device).unsqueeze(1) - (T - lengths).unsqueeze(0)) % T
    return xs.gather(0, idx.unsqueeze(-1).expand(-1, -1, xs.shape[2]))


def reverse_within_length(x: Tensor, lengths: Tensor, batch_first: bool = False) -> Tensor:
    """Reverse each right-padded sequence within its own length; the padding stays at the end.

    x is (T, B, F), or (B, T, F) with ``batch_first``. Step t of sequence b comes from step L_b - 1 - t
    when t < L_b. Applying it twice gives x back.
    """
    xs = x.transpose(0, 1) if batch_first else x                    # (T, B, F)
    T = xs.shape[0]
    t = torch.arange(T, device=xs.device).unsqueeze(1)             # (T, 1)
    L = lengths.to(xs.device).unsqueeze(0)                          # (1, B)
    idx = torch.where(t < L, L - 1 - t, t)                          # (T, B)
    out = xs.gather(0, idx.unsqueeze(-1).expand(-1, -1, xs.shape[2]))
    return out.transpose(0, 1) if batch_first else out


def _last_step(out: Tensor, mask: Tensor | None, reverse: bool) -> Tensor:
    """The output (B, O) at each sequence's last valid step (its first one if ``reverse``)."""
    if mask is None:
        return out[0] if reverse else out[-1]
    T = mask.shape[0]
    if reverse:
        idx = mask.int().argmax(0)                                  # first valid step
    else:
        idx = T - 1 - mask.flip(0).int().argmax(0)                  # last valid step
    return out.gather(0, idx.view(1, -1, 1).expand(1, -1, out.shape[2])).squeeze(0)
