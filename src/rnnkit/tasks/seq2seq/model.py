"""The encoder-decoder: a bidirectional-first, residual recurrent encoder and an attention decoder cell.

    source ids (B, S) -> embedding -> encoder (GNMT-style stack)       -> memory (B, S, H) + summary (B, H)
    summary -> bridge -> the decoder's initial state
    <go> y_1 ... y_{T-1} -> embedding -> RNN(AttentionDecoderCell)     -> (B, T, H) -> head -> logits (B, T, V)

* The encoder's first layer is bidirectional with H/2 units per direction (its concatenated output is H wide,
  so every layer above, and the memory, has size H); the layers above it are unidirectional, each with a
  residual connection (its input added to its output). Each layer is one :class:`rnnkit.nn.RNN`, so the
  fused kernel runs it, with the padded batch's lengths (padding never reaches a valid step).
* The summary of the source is the first layer's forward output at the last valid step and its backward
  output at the first step; the *bridge* (a linear map and tanh) turns it into every decoder state tensor.
  Without attention (Sutskever et al. 2014) this is all the decoder knows of the source.
* The decoder is :class:`rnnkit.nn.attention.AttentionDecoderCell` run by :class:`rnnkit.nn.RNN` with the
  memory as its context: teacher forcing goes through the one time loop. With a teacher-forcing ratio
  below 1 the input of a step depends on the previous step's prediction, so :meth:`Seq2SeqModel.forward`
  runs the steps itself (:meth:`step`), the same computation one call at a time.

Token ids 0-3 are ``<pad> <unk> <go> <eos>`` on both sides (see ``data.py``); the decoder never emits
``<pad>`` or ``<go>`` (:meth:`step` masks them).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit.nn.attention import AttentionDecoderCell, Memory
from rnnkit.nn.layers import RNN
from rnnkit.tasks.seq2seq.config import ATTENTION_KINDS, CELLS  # noqa: F401  (defined with the config)
from rnnkit.tasks.seq2seq.data import GO, PAD



class Encoder(nn.Module):
    """Embedded source (B, S, E) -> outputs (B, S, H) and a summary (B, H); see the module docstring."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, cell: str = "lstm",
                 dropout: float = 0.0):
        super().__init__()
        self.hidden_size = hidden_size
        half = hidden_size // 2
        self.layers = nn.ModuleList([RNN(cell, input_size, half, bidirectional=True, dropout=dropout)])
        self.layers.extend(RNN(cell, hidden_size, hidden_size, dropout=dropout) for _ in range(num_layers - 1))

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        out = self.layers[0](x, lengths=lengths)                        # (B, S, H): [forward ; backward]
        half = self.hidden_size // 2
        last = (lengths - 1).to(out.device).view(-1, 1, 1).expand(-1, 1, half)
        summary = torch.cat([out[:, :, :half].gather(1, last).squeeze(1), out[:, 0, half:]], dim=-1)   # (B, H)
        for layer in self.layers[1:]:
            out = layer(out, lengths=lengths) + out                     # residual connection
        return out, summary


class Seq2SeqModel(nn.Module):
    """Encoder, bridge, attention decoder and output head; see the module docstring."""

    def __init__(self, source_vocab: int, target_vocab: int, embedding_size: int = 64, hidden_size: int = 256,
                 encoder_layers: int = 2, decoder_layers: int = 2, cell: str = "lstm", attention: str = "general",
                 dropout: float = 0.0):
        super().__init__()
        self.src_embed = nn.Embedding(source_vocab, embedding_size, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(target_vocab, embedding_size, padding_idx=PAD)
        self.encoder = Encoder(embedding_size, hidden_size, encoder_layers, cell, dropout)
        self.decoder = RNN(AttentionDecoderCell, embedding_size, hidden_size, dropout=dropout, inner=cell,
                           depth=decoder_layers, attention=None if attention == "none" else attention,
                           memory_size=hidden_size)
        cell = self.cell
        # Every decoder state tensor but the fed-back attentional vector starts from the source summary.
        self.bridge = nn.Linear(hidden_size, sum(cell.state_size[:-1] if cell.input_feeding else cell.state_size))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, target_vocab)
        # Added to the logits when choosing a token: the decoder never emits <pad> or <go>.
        never = torch.zeros(target_vocab)
        never[[PAD, GO]] = -math.inf
        self.register_buffer("never", never, persistent=False)

    @property
    def cell(self) -> AttentionDecoderCell:
        return self.decoder.cells[0]

    # -- the two halves ---------------------------------------------------------------------------------

    def encode(self, src: Tensor, lengths: Tensor) -> tuple[Memory | None, tuple[Tensor, ...]]:
        """src (B, S) ids padded at the end, lengths (B,) -> the memory (None without attention) and the
        decoder's initial state (a flat tuple of (B, size) tensors)."""
        outputs, summary = self.encoder(self.src_embed(src), lengths)  # (B, S, H), (B, H)
        cell = self.cell
        parts = torch.tanh(self.bridge(summary)).split(
            list(cell.state_size[:-1] if cell.input_feeding else cell.state_size), dim=-1)
        state = tuple(parts)
        if cell.input_feeding:
            state += (summary.new_zeros(summary.shape[0], cell.hidden_size),)    # h~_0 = 0
        if cell.attention is None:
            return None, state
        mask = torch.arange(src.shape[1], device=src.device).unsqueeze(0) < lengths.to(src.device).unsqueeze(1)
        return cell.attention.prepare(outputs, mask), state

    def step(self, tokens: Tensor, state: tuple[Tensor, ...], memory: Memory | None
             ) -> tuple[Tensor, tuple[Tensor, ...], Tensor | None]:
        """One decoder step for N rows: tokens (N,) -> logits (N, V) (``<pad>`` and ``<go>`` at -inf), the new
        state, and the attention weights (N, S) (None without attention)."""
        cell = self.cell
        out, state, weights = cell.attend(cell.project_input(self.tgt_embed(tokens)), state, memory)
        return self.head(out) + self.never, state, weights

    # -- training ----------------------------------------------------------------------------------------

    def forward(self, src: Tensor, lengths: Tensor, tgt_in: Tensor, teacher_forcing: float = 1.0) -> Tensor:
        """Logits (B, T, V) for the targets' next tokens; ``tgt_in`` (B, T) is ``<go>`` + the target.

        ``teacher_forcing`` < 1: at each step after the first, each row reads the target token with this
        probability and its own previous prediction (the argmax) otherwise (scheduled sampling)."""
        memory, state = self.encode(src, lengths)
        if teacher_forcing >= 1.0:
            out = self.decoder(self.tgt_embed(tgt_in), initial_state=[state], context=memory)   # (B, T, H)
            return self.head(self.drop(out))
        return self._free_running(tgt_in, state, memory, teacher_forcing)

    def _free_running(self, tgt_in: Tensor, state, memory, ratio: float) -> Tensor:
        cell = self.cell
        drop_inputs = self.decoder.dropout > 0 and self.training
        tokens, logits = tgt_in[:, 0], []
        for t in range(tgt_in.shape[1]):
            x = self.tgt_embed(tokens)
            if drop_inputs:
                x = nn.functional.dropout(x, self.decoder.dropout)
            out, state, _ = cell.attend(cell.project_input(x), state, memory)
            logits.append(self.head(self.drop(out)))                    # (B, V)
            if t + 1 < tgt_in.shape[1]:
                teacher = torch.rand(tokens.shape[0], device=tokens.device) < ratio
                tokens = torch.where(teacher, tgt_in[:, t + 1], (logits[-1].detach() + self.never).argmax(-1))
        return torch.stack(logits, dim=1)                               # (B, T, V)
