"""Skip-gram with negative sampling (word2vec, Mikolov et al. 2013): the network, which computes only.

Two tables of vectors: ``words`` (what is kept: the word vectors) and ``contexts`` (the output layer). For a
center word c, a context word w within its window and K negative words n_k drawn at random, the loss is

    -log sigmoid(words[w] . contexts[c]) - sum_k log sigmoid(-words[w] . contexts[n_k])

as in word2vec.c, whose skip-gram takes the context word's vector as input and the center word (and the
negatives) as targets. The batch comes from data.SkipGramData: per center word, all its context words share
its targets (the center word and its negatives), so a batch is one batched matrix product.

The gradient is written out (``_SkipGramLoss``), as word2vec.c writes it: d loss / d score = sigmoid(score) -
label, then one batched product back to each side. Autograd through the same operations gave the same numbers
1.4x slower: it also kept and returned the padded context slots, and a graph node per step of the loss.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _SkipGramLoss(torch.autograd.Function):
    """The summed loss of a batch; its backward gives each table's gradient, sparse (only the rows the batch
    touched, for plain SGD) or dense, with each word's summed update capped (see ``SkipGram``)."""

    @staticmethod
    def forward(ctx, words: torch.Tensor, contexts: torch.Tensor, context_ids: torch.Tensor,
                context_mask: torch.Tensor, targets: torch.Tensor, target_mask: torch.Tensor,
                update_cap: int | None, sparse: bool) -> torch.Tensor:
        # float32 whatever the autocast outside: the backward below runs without it, in float32 too.
        with torch.autocast(words.device.type, enabled=False):
            u = words.index_select(0, context_ids.reshape(-1)).view(*context_ids.shape, -1)    # (M, 2W, D)
            v = contexts.index_select(0, targets.reshape(-1)).view(*targets.shape, -1)         # (M, 1+K, D)
            scores = torch.bmm(u, v.transpose(1, 2))                                           # (M, 2W, 1+K)
            label = torch.zeros(targets.shape[1], device=scores.device)                        # (1+K,)
            label[0] = 1.0                                                # column 0: the true target
            weight = (context_mask.unsqueeze(2) & target_mask.unsqueeze(1)).float()            # (M, 2W, 1+K)
            # -log sigmoid(s) for the true target, -log sigmoid(-s) for the negatives: -log sigmoid(s (2 label - 1))
            total = -(F.logsigmoid(scores * (2 * label - 1)) * weight).sum()
            grad_scores = (torch.sigmoid(scores) - label).mul_(weight)                         # d total / d scores
        ctx.save_for_backward(u, v, grad_scores, context_ids, context_mask, targets, target_mask)
        ctx.update_cap, ctx.sparse = update_cap, sparse
        ctx.shapes = (words.shape, contexts.shape)
        return total

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor):
        u, v, grad_scores, context_ids, context_mask, targets, target_mask = ctx.saved_tensors
        g = grad_scores * grad_total                                                           # (M, 2W, 1+K)
        # The real context slots only: the padding neither gets nor gives a gradient.
        grad_u = torch.bmm(g, v)[context_mask]                                                 # (P, D)
        grad_v = torch.bmm(g.transpose(1, 2), u).reshape(-1, u.shape[-1])                      # (M (1+K), D)
        word_ids, target_ids = context_ids[context_mask], targets.reshape(-1)
        if ctx.update_cap is not None:
            grad_u.mul_(_cap_scale(word_ids, word_ids, ctx.update_cap))
            grad_v.mul_(_cap_scale(target_ids, target_ids[target_mask.reshape(-1)], ctx.update_cap))
        return (_table_grad(word_ids, grad_u, ctx.shapes[0], ctx.sparse),
                _table_grad(target_ids, grad_v, ctx.shapes[1], ctx.sparse), None, None, None, None, None, None)


def _cap_scale(ids: torch.Tensor, counted: torch.Tensor, cap: int) -> torch.Tensor:
    """(len(ids), 1): for each row, cap / (occurrences of its word among ``counted``), at most 1."""
    counts = torch.bincount(counted, minlength=int(ids.max()) + 1 if ids.numel() else 1)
    return (cap / counts[ids].clamp(min=1).float()).clamp_(max=1.0).unsqueeze(1)


def _table_grad(ids: torch.Tensor, rows: torch.Tensor, shape: torch.Size, sparse: bool) -> torch.Tensor:
    """The gradient of a (V, D) table whose rows ``ids`` get ``rows`` (ids repeat: their rows add up)."""
    if sparse:
        return torch.sparse_coo_tensor(ids.unsqueeze(0), rows, shape, check_invariants=False)
    return torch.zeros(shape, dtype=rows.dtype, device=rows.device).index_add_(0, ids, rows)


class SkipGram(nn.Module):
    """The two tables; ``forward`` gives the summed loss of a batch and its number of (word, context) pairs.

    ``sparse``: the tables' gradients hold only the rows a batch touched, so SGD updates only those (1.1-1.3x
    faster than dense gradients on a 30k-word vocabulary, measured; more on larger ones). ``update_cap``: in one step a
    word's gradient adds up at most this many of its occurrences in the batch (the rest scale it down).
    Plain SGD on a batch sums every occurrence's update, all computed from the same weights: for a word seen
    a few times that is what sequential word2vec does, but a frequent word (a negative drawn hundreds of times
    in one batch) overshoots where one update at a time would have corrected itself, and the vectors drift
    (measured with a first version on IMDB, 5 epochs at batch 2048, the rate decaying linearly: analogy
    accuracy 0.2% without the cap, 14.3% with a cap of 16)."""

    def __init__(self, vocab_size: int, embedding_size: int, *, sparse: bool = True, update_cap: int | None = 16):
        super().__init__()
        self.sparse, self.update_cap = sparse, update_cap
        self.words = nn.Embedding(vocab_size, embedding_size)
        self.contexts = nn.Embedding(vocab_size, embedding_size)
        # word2vec's start: word vectors uniform in +-0.5/D, the output layer zero.
        with torch.no_grad():
            self.words.weight.uniform_(-0.5 / embedding_size, 0.5 / embedding_size)
            self.contexts.weight.zero_()

    def forward(self, contexts: torch.Tensor, context_mask: torch.Tensor, targets: torch.Tensor,
                target_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """contexts (M, 2W) ids and context_mask (M, 2W) bool; targets (M, 1+K) ids, column 0 the true one, and
        target_mask (M, 1+K) bool -> (summed loss, number of pairs)."""
        cap = self.update_cap if self.training else None
        total = _SkipGramLoss.apply(self.words.weight, self.contexts.weight, contexts, context_mask, targets,
                                    target_mask, cap, self.sparse)
        return total, context_mask.sum()
