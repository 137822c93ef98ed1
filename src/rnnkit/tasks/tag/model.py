"""The tagger's network: word embeddings and character features -> a bidirectional recurrent stack -> a score for
every tag at every step, read by a softmax per token or by a linear-chain CRF.

* **Words**: an embedding over the training vocabulary (id 0 padding, 1 ``<unk>``); with pretrained vectors,
  also a frozen table of pretrained-only words (never seen in training, so never trained), numbered after the
  training words. During training ``word_dropout`` of the words become ``<unk>``, so the network learns to tag
  an unknown word from its characters and its context.
* **Characters**: each word's characters (case kept) become one vector: a convolution with max pooling over the
  word (``cnn``) or the final states of a bidirectional LSTM over it (``bilstm``, rnnkit's own
  :class:`~rnnkit.nn.RNN` with each word's length). Words the model never saw still get features: suffixes
  (-ly, -ing), capitals, digits, hyphens.
* **Context**: :class:`rnnkit.nn.RNN`, bidirectional, called with each sentence's length, so the padding of a
  batch never changes a tag (the backward direction reads each sentence reversed within its own length).
* **Output**: a linear layer gives the emission scores (B, T, K). ``softmax`` trains them with cross-entropy
  per token and tags each token with its best score; ``crf`` adds transition scores between consecutive tags
  (:class:`CRF`) and tags the sentence with the best-scoring sequence (Viterbi). The CRF is written here, not
  taken from a package: the maintained one (pytorch-crf) would be a dependency for two short loops, and it takes
  masks in the dtype it is given, where rnnkit's batches carry lengths and the sums over tag sequences belong in
  float32 whatever precision the network runs in. Its forward algorithm and Viterbi are batched over sentences
  and masked by their lengths; tests check both against brute force over every tag sequence.

Series (per-step labelling of sensor data) skip the word and character parts: the standardised channels go
straight into the recurrent stack.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn.layers import RNN

OOV = 1


class CRF(nn.Module):
    """A linear-chain conditional random field over K tags: the score of a tag sequence y for emissions e is
    ``start[y_0] + sum_t e[t, y_t] + sum_{t>0} transitions[y_{t-1}, y_t] + end[y_{L-1}]``, and its probability
    that score's exp over the sum over every sequence (the partition function, by the forward algorithm).

    Why rnnkit's own and not a package: the maintained one (pytorch-crf) is ~300 lines that rnnkit would take as
    a dependency for two loops; it works on masks where rnnkit's batches carry lengths, keeps its own batch-first
    switch, and computes in the dtype it is given, where rnnkit runs the emissions in bfloat16 under autocast
    and wants the sums over 17-50 tags in float32. Written here: the forward algorithm and Viterbi, batched over
    sentences and masked by their lengths, both a loop over time whose steps are (B, K, K) tensor operations;
    tests check both against brute force over every tag sequence of short sentences.
    """

    def __init__(self, num_tags: int):
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))   # [i, j]: tag i followed by tag j
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))

    @staticmethod
    def _mask(lengths: Tensor, T: int) -> Tensor:
        return torch.arange(T, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)    # (B, T)

    def score(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        """(B,) scores of the tag sequences ``tags`` (B, T) (padding ignored)."""
        e = emissions.float()
        B, T, _ = e.shape
        mask = self._mask(lengths, T).float()
        emit = e.gather(2, tags.unsqueeze(-1)).squeeze(-1)                           # (B, T)
        trans = self.transitions[tags[:, :-1], tags[:, 1:]]                         # (B, T-1)
        last = tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)                # (B,)
        return (self.start[tags[:, 0]] + (emit * mask).sum(1) + (trans * mask[:, 1:]).sum(1) + self.end[last])

    def log_partition(self, emissions: Tensor, lengths: Tensor) -> Tensor:
        """(B,) log of the sum over every tag sequence of exp(score): the forward algorithm."""
        e = emissions.float()
        T = e.shape[1]
        mask = self._mask(lengths, T)
        alpha = self.start + e[:, 0]                                                # (B, K)
        for t in range(1, T):
            step = torch.logsumexp(alpha.unsqueeze(2) + self.transitions, dim=1) + e[:, t]   # (B, K)
            alpha = torch.where(mask[:, t:t + 1], step, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def nll(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        """(B,) negative log-likelihood of ``tags``."""
        return self.log_partition(emissions, lengths) - self.score(emissions, tags, lengths)

    def decode(self, emissions: Tensor, lengths: Tensor) -> Tensor:
        """(B, T) the best-scoring tag sequence of each sentence (Viterbi); padding positions repeat the last
        tag."""
        e = emissions.float()
        B, T, K = e.shape
        mask = self._mask(lengths, T)
        score = self.start + e[:, 0]                                                # (B, K)
        identity = torch.arange(K, device=e.device).expand(B, K)
        pointers = []
        for t in range(1, T):
            best, arg = (score.unsqueeze(2) + self.transitions).max(dim=1)          # (B, K): best previous tag
            score = torch.where(mask[:, t:t + 1], best + e[:, t], score)
            pointers.append(torch.where(mask[:, t:t + 1], arg, identity))           # padding: keep the tag
        tag = (score + self.end).argmax(dim=1)                                      # (B,) each sentence's last tag
        path = [tag]
        for arg in reversed(pointers):
            tag = arg.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        return torch.stack(path[::-1], dim=1)


class CharCNN(nn.Module):
    """(N, W) character ids of N words -> (N, F): a convolution over each word, max-pooled over its characters."""

    def __init__(self, num_chars: int, embedding_size: int, filters: int, kernel_size: int):
        super().__init__()
        self.embed = nn.Embedding(num_chars, embedding_size, padding_idx=0)
        self.conv = nn.Conv1d(embedding_size, filters, kernel_size, padding=kernel_size // 2)
        self.output_size = filters

    def forward(self, chars: Tensor) -> Tensor:
        valid = chars != 0                                                          # (N, W)
        valid = torch.cat([valid[:, :1] | ~valid.any(1, keepdim=True), valid[:, 1:]], dim=1)  # no word without one
        h = self.conv(self.embed(chars).transpose(1, 2))                            # (N, F, W')
        h = h[:, :, :chars.shape[1]]                                                # an even width pads one more
        h = h.masked_fill(~valid.unsqueeze(1), -1e4)
        return F.relu(h.amax(dim=2))


class CharRNN(nn.Module):
    """(N, W) character ids of N words -> (N, 2H): a bidirectional LSTM's final states over each word."""

    def __init__(self, num_chars: int, embedding_size: int, hidden_size: int):
        super().__init__()
        self.embed = nn.Embedding(num_chars, embedding_size, padding_idx=0)
        self.rnn = RNN("lstm", embedding_size, hidden_size, bidirectional=True, return_sequences=False)
        self.output_size = self.rnn.output_size

    def forward(self, chars: Tensor) -> Tensor:
        lengths = (chars != 0).sum(1).clamp(min=1)                                  # padding words: one step
        return self.rnn(self.embed(chars), lengths=lengths)


class TaggerNet(nn.Module):
    """Scores of every tag at every step: ``forward(x, lengths, chars) -> (B, T, K)``.

    Text: ``x`` (B, T) word ids and ``chars`` (B, T, W) character ids; series: ``x`` (B, T, C) standardised
    values and no ``chars``. The sizes are the config's fields of the same names, passed explicitly; ``vocab``
    > 0 means text (``num_extra`` pretrained-only words after the ``vocab`` trainable ones)."""

    def __init__(self, num_tags: int, *, vocab: int = 0, num_extra: int = 0, num_chars: int = 0, input_size: int = 0,
                 embedding_size: int = 100, char_model: str = "cnn", char_embedding_size: int = 32,
                 char_hidden_size: int = 64, char_kernel_size: int = 3, cell: str = "lstm", hidden_size: int = 128,
                 num_layers: int = 2, dropout: float = 0.0, word_dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, crf: bool = False):
        super().__init__()
        self.text = vocab > 0
        self.dropout, self.word_dropout = dropout, word_dropout
        feat = input_size
        self.chars = None
        if self.text:
            self.embed = nn.Embedding(vocab, embedding_size, padding_idx=0)
            # Pretrained vectors of words never seen in training: looked up, never trained (a buffer, saved with
            # the weights; no optimizer state).
            self.register_buffer("extra", torch.zeros(num_extra, embedding_size), persistent=num_extra > 0)
            feat = embedding_size
            if char_model == "cnn":
                self.chars = CharCNN(num_chars, char_embedding_size, char_hidden_size, char_kernel_size)
            elif char_model == "bilstm":
                self.chars = CharRNN(num_chars, char_embedding_size, char_hidden_size)
            if self.chars is not None:
                feat += self.chars.output_size
        self.rnn = RNN(cell, feat, hidden_size, num_layers=num_layers, bidirectional=True, dropout=dropout,
                       recurrent_dropout=recurrent_dropout, recurrent_dropout_mode="weight_drop")
        self.head = nn.Linear(self.rnn.output_size, num_tags)
        self.crf = CRF(num_tags) if crf else None

    def words(self, x: Tensor) -> Tensor:
        """(B, T) word ids -> (B, T, E): trained rows, or the frozen pretrained rows after them."""
        base = self.embed.num_embeddings
        h = self.embed(x.clamp(max=base - 1))
        if self.extra.shape[0]:
            pre = self.extra[(x - base).clamp(min=0, max=self.extra.shape[0] - 1)]
            h = torch.where((x >= base).unsqueeze(-1), pre, h)
        return h

    def forward(self, x: Tensor, lengths: Tensor, chars: Tensor | None = None) -> Tensor:
        lengths = lengths.to(x.device)
        if self.text:
            if self.training and self.word_dropout > 0:
                drop = torch.rand(x.shape, device=x.device) < self.word_dropout
                x = torch.where(drop & (x > 0), torch.full_like(x, OOV), x)
            h = self.words(x)                                                       # (B, T, E)
            if self.chars is not None:
                B, T, W = chars.shape
                c = self.chars(chars.reshape(B * T, W)).reshape(B, T, -1)           # (B, T, F)
                h = torch.cat([h, c.to(h.dtype)], dim=-1)
        else:
            h = x
        h = self.rnn(h, lengths=lengths)                                            # (B, T, 2H), zeros past L
        h = F.dropout(h, self.dropout, self.training)
        return self.head(h)                                                         # (B, T, K)

    def loss(self, scores: Tensor, tags: Tensor, lengths: Tensor) -> tuple[Tensor, int]:
        """The mean loss per token (cross-entropy, or the CRF's negative log-likelihood over the tokens), and the
        tokens counted."""
        mask = CRF._mask(lengths.to(scores.device), scores.shape[1])
        n = int(lengths.sum())
        if self.crf is not None:
            return self.crf.nll(scores, tags, lengths.to(scores.device)).sum() / n, n
        return F.cross_entropy(scores[mask].float(), tags[mask], reduction="sum") / n, n

    def predict(self, scores: Tensor, lengths: Tensor) -> Tensor:
        """(B, T) tag ids: the best per token (softmax), or the best sequence (CRF)."""
        if self.crf is not None:
            return self.crf.decode(scores, lengths.to(scores.device))
        return scores.argmax(-1)


class TaggerGraph(nn.Module):
    """The ONNX graph: ids (or raw values) and a mask in, the tag scores of every step out.

    Text: ``words`` (B, T) int64, ``chars`` (B, T, W) int64 (the run's vocabulary; no such input with char_model
    none), ``mask`` (B, T) float, 1 for
    the valid steps (first). Series: ``x`` (B, T, C) raw values (NaN: missing) and ``mask``; the graph
    standardises them as the tagger does. Out: ``scores`` (B, T, K): per-token logits (softmax; argmax is the
    tag) or the CRF's emissions (decode them with the run's transition scores: docs/tag.md)."""

    def __init__(self, net: TaggerNet, mean: np.ndarray | None = None, std: np.ndarray | None = None):
        super().__init__()
        self.net = net
        self.series = mean is not None
        if self.series:
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, *inputs: Tensor) -> Tensor:
        if self.series:
            x, mask = inputs
            lengths = mask.sum(1).long()
            x = torch.nan_to_num((x - self.mean) / self.std, nan=0.0) * mask.unsqueeze(-1)
            return self.net(x, lengths)
        if self.net.chars is None:
            words, mask = inputs
            return self.net(words, mask.sum(1).long())
        words, chars, mask = inputs
        return self.net(words, mask.sum(1).long(), chars)
