"""The captioner: an image encoder (a grid of features) and a recurrent decoder that writes the caption.

    image (B, 3, H, W) -> encoder -> grid (B, C, h, w) -> S = h*w annotation vectors a_i (B, S, C)
                                                          (+ their row and column in [-1, 1] with attention)

Show and Tell (Vinyals et al. 2015), ``model="show-tell"``::

    x_{-1} = W_I mean_i(a_i)          the pooled image, embedded: the decoder's first input (zero state before it)
    x_t    = E y_t                    <start> y_1 ... : teacher forcing through the one time loop (fused LSTM)
    p(y_{t+1}) = softmax(W_o h_t)

Show, Attend and Tell (Xu et al. 2015, soft attention), ``model="show-attend-tell"``: :class:`AttendCell`, a
cell with ``takes_context``, so :class:`rnnkit.nn.RNN`'s one loop runs it with the annotation vectors as its
context at every step::

    h_0, c_0    = tanh(W_h mean_i a_i), tanh(W_c mean_i a_i)
    z_t, alpha_t = additive attention of h_{t-1} over a_1..a_S        (rnnkit.nn.attention.AdditiveAttention)
    z_t         = sigmoid(W_beta h_{t-1}) * z_t                        the gating scalar beta
    h_t, c_t    = LSTM([E y_t ; z_t], (h_{t-1}, c_{t-1}))
    p(y_{t+1})  = softmax(W_o [h_t ; z_t])

The cell's state carries sum_t alpha_t (B, S) beside (h, c): the layer's masking keeps it at each caption's own
length, so the doubly stochastic regulariser ``mean_i (1 - sum_t alpha_ti)^2`` (Xu et al.'s eq. 14, averaged over
the S grid cells) reads it from the final state.

Token ids 0-3 are ``<pad> <unk> <start> <end>`` (``data.py``); :meth:`CaptionNet.step` never emits <pad>, <unk>
or <start>.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn.attention import AdditiveAttention, Memory
from rnnkit.nn.cells import Cell, State, make_cell
from rnnkit.nn.layers import RNN
from rnnkit.tasks.caption.data import PAD, START, UNK


class AttendCell(Cell):
    """One step of Show, Attend and Tell's decoder (see the module docstring); context: the Memory of the grid.

    state: the inner cell's state ((h, c) or (h,)) then sum_t alpha_t (B, S); output: [h_t ; z_t] (B, H + C)."""

    takes_context = True

    def __init__(self, input_size: int, hidden_size: int, inner: str = "lstm", memory_size: int = 64,
                 grid_cells: int = 1, attention_size: int = 128):
        super().__init__()
        self.input_size, self.hidden_size, self.memory_size = input_size, hidden_size, memory_size
        self.inner = make_cell(inner, input_size + memory_size, hidden_size)
        self.attention = AdditiveAttention(hidden_size, memory_size, attention_size)
        self.gate = nn.Linear(hidden_size, 1)                       # beta: how much of the context goes in
        self._inner_states = len(self.inner.state_size)
        self.state_size = (*self.inner.state_size, grid_cells)
        self.output_size = hidden_size + memory_size

    def project_input(self, x: Tensor) -> Tensor:
        """The word embedding's share of the inner cell's input projection (the layer runs it for all steps at
        once); the context's share is added inside the step."""
        return F.linear(x, self.inner.weight_ih[:, :self.input_size], self.inner.bias_ih)

    def step(self, xp: Tensor, state: State, h_mask: Tensor | None = None, weight_hh: Tensor | None = None,
             context: Memory | None = None) -> tuple[Tensor, State]:
        out, state, _ = self.attend(xp, state, context)
        return out, state

    def attend(self, xp: Tensor, state: State, memory: Memory) -> tuple[Tensor, State, Tensor]:
        """xp (B, G*H) from :meth:`project_input` -> output (B, H + C), the new state, alpha_t (B, S)."""
        h = state[0]
        z, alpha = self.attention(h, memory)                                    # (B, C), (B, S)
        z = torch.sigmoid(self.gate(h)) * z
        xp = xp + F.linear(z, self.inner.weight_ih[:, self.input_size:])
        y, new = self.inner.step(xp, tuple(state[:self._inner_states]))        # (B, H)
        return torch.cat([y, z], dim=-1), (*new, state[-1] + alpha), alpha


class CaptionNet(nn.Module):
    """Encoder + decoder + output layer; see the module docstring. ``grid``: (h, w) of the encoder's features for
    the training images' size; ``channels``: C."""

    def __init__(self, encoder: nn.Module, vocab_size: int, grid: tuple[int, int], channels: int,
                 model: str = "show-attend-tell", cell: str = "lstm", embedding_size: int = 128,
                 hidden_size: int = 256, attention_size: int = 128, dropout: float = 0.2):
        super().__init__()
        self.encoder = encoder
        self.kind, self.grid, self.channels = model, tuple(grid), channels
        S = grid[0] * grid[1]
        self.embed = nn.Embedding(vocab_size, embedding_size, padding_idx=PAD)
        if model == "show-tell":
            self.image_in = nn.Linear(channels, embedding_size)                 # W_I: the image as word -1
            self.rnn = RNN(cell, embedding_size, hidden_size)
            out_size = hidden_size
        else:
            # Each annotation vector carries its place in the grid (row and column in [-1, 1]): convolutional
            # features say what is there, not where, and "left of" / "above" need the where of what was looked at.
            rows, cols = torch.meshgrid(torch.linspace(-1, 1, grid[0]), torch.linspace(-1, 1, grid[1]), indexing="ij")
            self.register_buffer("places", torch.stack([rows, cols], -1).reshape(S, 2), persistent=False)
            memory = channels + 2
            self.rnn = RNN(AttendCell, embedding_size, hidden_size, inner=cell, memory_size=memory,
                           grid_cells=S, attention_size=attention_size, return_state=True)
            inner = self.cell.inner.state_size
            self.init_state = nn.Linear(memory, sum(inner))                     # h_0 (and c_0) from the mean
            out_size = hidden_size + memory
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(out_size, vocab_size)
        never = torch.zeros(vocab_size)
        never[[PAD, UNK, START]] = -math.inf          # added when choosing a word: never written
        self.register_buffer("never", never, persistent=False)

    @property
    def cell(self) -> Cell:
        return self.rnn.cells[0]

    @property
    def attends(self) -> bool:
        return self.kind != "show-tell"

    def features(self, images: Tensor) -> Tensor:
        """images (B, 3, H, W) in [0, 1] -> the grid (B, C, h, w)."""
        return self.encoder(images)

    def _annotations(self, grid: Tensor) -> Tensor:
        a = grid.flatten(2).transpose(1, 2)                                     # (B, S, C)
        if not self.attends:
            return a
        return torch.cat([a, self.places.to(a.dtype).expand(a.shape[0], -1, -1)], -1)   # (B, S, C + 2)

    # -- training ----------------------------------------------------------------------------------------

    def forward(self, grid: Tensor, tokens_in: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        """grid (B, C, h, w), tokens_in (B, T) (<start> y_1 ...), lengths (B,) -> logits (B, T, V) and, with
        attention, sum_t alpha_t (B, S) over each caption's own steps."""
        a = self._annotations(grid)
        words = self.embed(tokens_in)                                           # (B, T, E)
        if not self.attends:
            image = self.image_in(a.mean(1)).unsqueeze(1)                       # (B, 1, E)
            out = self.rnn(torch.cat([image, words], 1), lengths=lengths + 1)[:, 1:]   # (B, T, H)
            return self.head(self.drop(out)), None
        state, memory = self._start_attending(a)
        out, finals = self.rnn(words, initial_state=[state], lengths=lengths, context=memory)
        return self.head(self.drop(out)), finals[0][-1]

    def _start_attending(self, a: Tensor) -> tuple[State, Memory]:
        inner = self.cell.inner.state_size
        parts = torch.tanh(self.init_state(a.mean(1))).split(list(inner), dim=-1)
        state = (*parts, a.new_zeros(a.shape[0], a.shape[1]))
        return state, self.cell.attention.prepare(a)

    # -- generation: the one step function every search runs ----------------------------------------------

    def start(self, grid: Tensor) -> tuple[State, Memory | None]:
        """grid (B, C, h, w) -> the decoder's state before <start>, and the memory (None for show-tell)."""
        a = self._annotations(grid)
        if not self.attends:
            image = self.image_in(a.mean(1))                                    # (B, E)
            _, state = self.cell(image, None)
            return tuple(state), None
        return self._start_attending(a)

    def step(self, tokens: Tensor, state: State, memory: Memory | None) -> tuple[Tensor, State, Tensor | None]:
        """tokens (N,) -> logits (N, V) (<pad>, <unk>, <start> at -inf), the new state, alpha (N, S) or None."""
        x = self.embed(tokens)
        if not self.attends:
            y, state = self.cell(x, state)
            return self.head(y) + self.never, tuple(state), None
        cell = self.cell
        out, state, alpha = cell.attend(cell.project_input(x), state, memory)
        return self.head(out) + self.never, state, alpha
