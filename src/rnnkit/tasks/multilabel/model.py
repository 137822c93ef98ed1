"""The multilabel network and its losses (Lipton et al. 2015): an LSTM over (values, missing indicators) that
emits L sigmoid outputs at every step; binary cross-entropy averaged over labels, with **target replication**
(every step is asked for the final labels: ``alpha * mean_t BCE(y_t, y) + (1 - alpha) * BCE(y_T, y)``) and
optional **auxiliary outputs** (a second head on extra targets, weighted by ``aux_weight``, never evaluated).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn.layers import RNN


class MultilabelNet(nn.Module):
    """LSTM over (values, missing indicators) -> per-step logits for the labels (and the auxiliary targets)."""

    def __init__(self, input_size: int, num_labels: int, num_aux: int, *, hidden_size: int = 64, num_layers: int = 2,
                 dropout: float = 0.0):
        super().__init__()
        self.rnn = RNN("lstm", input_size, hidden_size, num_layers=num_layers,
                       dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_labels)
        self.aux_head = nn.Linear(hidden_size, num_aux) if num_aux else None

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        h = self.drop(self.rnn(x, lengths=lengths))                 # (B, T, H); zeros past each length
        return self.head(h), (self.aux_head(h) if self.aux_head is not None else None)   # (B, T, L), (B, T, A)


def last_step(seq: Tensor, lengths: Tensor) -> Tensor:
    """(B, T, K) -> (B, K) at each sequence's last valid step."""
    lengths = lengths.to(seq.device)
    return seq.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, seq.shape[2])).squeeze(1)


def replicated_loss(logits: Tensor, y: Tensor, lengths: Tensor, alpha: float,
                    pos_weight: Tensor | None = None) -> Tensor:
    """alpha * (mean over valid steps of BCE(step t, y)) + (1 - alpha) * BCE(last step, y); BCE averaged over labels.

    logits (B, T, L), y (B, L) in {0, 1}, lengths (B,); ``pos_weight`` (L,) weighs each label's positives.
    """
    final = F.binary_cross_entropy_with_logits(last_step(logits, lengths), y, pos_weight=pos_weight)
    if alpha == 0:
        return final
    T = logits.shape[1]
    mask = (torch.arange(T, device=logits.device).unsqueeze(0) < lengths.unsqueeze(1)).float()   # (B, T)
    per_step = F.binary_cross_entropy_with_logits(logits, y.unsqueeze(1).expand_as(logits), reduction="none",
                                                  pos_weight=pos_weight).mean(-1)                  # (B, T)
    every = ((per_step * mask).sum(1) / lengths).mean()
    return alpha * every + (1 - alpha) * final


def final_logits(net: MultilabelNet, X: Tensor, lengths: Tensor, batch_size: int) -> Tensor:
    """(N, L) logits at each stay's last step, computed in batches of stays of similar length (not one batch
    of all N: memory stays that of one batch, and short stays are not padded to the longest)."""
    from rnnkit.text import length_buckets

    out = torch.empty(len(lengths), net.head.out_features)
    device = next(net.parameters()).device
    for g in length_buckets(lengths.numpy(), batch_size):
        idx = torch.from_numpy(g)
        lb = lengths[idx]
        logits, _ = net(X[idx, :int(lb.max())].to(device), lb.to(device))
        out[idx] = last_step(logits, lb).float().cpu()
    return out
