"""The VQA network: a CNN reads the image into a grid of cells, a recurrent layer reads the question, a merge
combines them, an MLP scores the answers. Computes only; the task (task.py) builds and trains it.

Merges (``--merge``):
  film       the question modulates the image's features (FiLM, Perez et al. 2018): ``film_blocks`` residual
             blocks over the grid, each a 1x1 and a 3x3 convolution whose normalised output is scaled and shifted
             per channel by values the question gives (gamma, beta); then a 1x1 convolution and a max over the
             cells. The question picks the channels (the named colour) before the image is pooled, so one
             question's object is found at the grid's full resolution. Runs the blocks once per question.
  none       the question alone (a baseline: what the answer priors give without looking)
  concat     the whole grid flattened, concatenated with the question, an MLP (the CNN+MLP of Santoro et al.)
  attention  attention over the grid guided by the question, in two hops: hop 1 finds the object the question
             names (softmax over cells of a score of cell and question); hop 2 relates every cell to that object
             (an MLP of [cell, attended object, question], as a relation network with one side fixed) and pools
             the relations twice: by a second softmax (picks one cell: "the closest one") and by a sum (counts:
             "how many"). Linear in the cells, so cheap enough to train on a CPU.
  relation   a relation network (Santoro et al. 2017): an MLP g over every ordered pair of cells with the
             question, summed, then the answer MLP f. Quadratic in the cells.
Every cell carries its (row, col) in [-1, 1] as two more channels: relations are about positions. (Only the
grid does: the same two channels on the image's pixels, before the CNN, kept the shape questions at chance.)

Batches hold questions grouped by image: ``forward(images, image_index, words, lengths)`` runs the CNN once per
image of the batch and hands each question its image's grid (a scene has several questions).
"""

from __future__ import annotations

import torch
from torch import nn

from rnnkit.nn import RNN

MERGES = ("film", "none", "concat", "attention", "relation")


def mlp(sizes: list[int], *, last_activation: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class QuestionEncoder(nn.Module):
    """Word ids (B, T) padded at the end with 0 -> (B, hidden): the recurrent layer's last valid output and the
    maximum over its valid outputs, projected. The maximum hands every word (the colour named in the middle of
    the question) straight to the merge, where the last output alone must carry it through the words after it."""

    def __init__(self, vocab: int, embedding_size: int, hidden_size: int, cell: str):
        super().__init__()
        self.embed = nn.Embedding(vocab, embedding_size, padding_idx=0)
        self.rnn = RNN(cell, input_size=embedding_size, hidden_size=hidden_size, return_sequences=True)
        self.project = nn.Linear(2 * hidden_size, hidden_size)

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out = self.rnn(self.embed(words), lengths=lengths)                       # (B, T, H)
        lengths = lengths.to(out.device)
        last = out[torch.arange(len(out), device=out.device), lengths - 1]      # (B, H)
        valid = torch.arange(out.shape[1], device=out.device) < lengths.unsqueeze(1)   # (B, T)
        most = out.masked_fill(~valid.unsqueeze(2), float("-inf")).amax(1)       # (B, H)
        return self.project(torch.cat([last, most], 1))


def with_coords(grid: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C + 2, h, w): each cell's (row, col) in [-1, 1] as two more channels."""
    b, _, gh, gw = grid.shape
    rows = torch.linspace(-1, 1, gh, device=grid.device, dtype=grid.dtype).view(1, 1, gh, 1).expand(b, 1, gh, gw)
    cols = torch.linspace(-1, 1, gw, device=grid.device, dtype=grid.dtype).view(1, 1, 1, gw).expand(b, 1, gh, gw)
    return torch.cat([grid, rows, cols], 1)


class FiLMBlocks(nn.Module):
    """The film merge's body: (B, C, h, w) features and (B, Q) questions -> (B, hidden) pooled answers' input.

    Block i: h = ReLU(conv1x1([x, coords])); h = Norm(conv3x3(h)); h = ReLU(gamma_i * h + beta_i); x = x + h,
    with (gamma_i, beta_i) = a linear map of the question (gamma around 1: an untrained block passes features
    through). The head: ReLU(conv1x1([x, coords])) -> max over the cells."""

    def __init__(self, channels: int, question_size: int, hidden_size: int, blocks: int):
        super().__init__()
        self.channels, self.blocks = channels, blocks
        self.mix = nn.ModuleList([nn.Conv2d(channels + 2, channels, 1) for _ in range(blocks)])
        self.conv = nn.ModuleList([nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(blocks)])
        # no affine part: the question's gamma and beta are the scale and shift
        self.norm = nn.ModuleList([nn.BatchNorm2d(channels, affine=False) for _ in range(blocks)])
        self.film = nn.Linear(question_size, 2 * channels * blocks)
        self.out = nn.Conv2d(channels + 2, hidden_size, 1)

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        gb = self.film(q).view(len(q), self.blocks, 2, self.channels, 1, 1)     # (B, blocks, 2, C, 1, 1)
        for i in range(self.blocks):
            h = self.norm[i](self.conv[i](torch.relu(self.mix[i](with_coords(x)))))   # (B, C, h, w)
            x = x + torch.relu((1 + gb[:, i, 0]) * h + gb[:, i, 1])
        return torch.relu(self.out(with_coords(x))).amax((2, 3))                # (B, hidden)


class VQANet(nn.Module):
    """See the module docstring. ``encoder``: an image encoder (rnnkit.nn.vision) giving (B, C, h, w); None for
    ``merge="none"`` (the question-only baseline reads no image)."""

    def __init__(self, encoder: nn.Module | None, *, merge: str, num_answers: int, vocab: int,
                 embedding_size: int = 32, question_size: int = 128, cell: str = "lstm", hidden_size: int = 256,
                 grid_cells: int = 25, dropout: float = 0.0, film_blocks: int = 3, film_channels: int = 32):
        super().__init__()
        if merge not in MERGES:
            raise ValueError(f"merge={merge!r}: expected one of {', '.join(MERGES)}")
        self.merge = merge
        self.encoder = encoder if merge != "none" else None
        self.question = QuestionEncoder(vocab, embedding_size, question_size, cell)
        q, h = question_size, hidden_size
        c = (encoder.out_channels + 2) if self.encoder is not None else 0       # + (row, col)
        if merge == "none":
            head_in = q
        elif merge == "film":
            # a pretrained encoder's wide grid (1,280 channels) is narrowed first: the blocks run per question
            width = film_channels
            self.narrow = nn.Conv2d(encoder.out_channels, width, 1) if encoder.out_channels != width else None
            self.film = FiLMBlocks(width, q, h, film_blocks)
            head_in = h
        elif merge == "concat":
            self.project = nn.Linear(c * grid_cells + q, h)                    # the grid flattened, and q
            head_in = h
        elif merge == "attention":
            self.find_cell, self.find_q = nn.Linear(c, h), nn.Linear(q, h, bias=False)
            self.find = nn.Linear(h, 1)
            # g's first layer split by input: W [cell_j, v, q] = Wc cell_j + Wv v + Wq q (one matmul each)
            self.rel_cell, self.rel_obj, self.rel_q = nn.Linear(c, h), nn.Linear(c, h, bias=False), \
                nn.Linear(q, h, bias=False)
            self.g = mlp([h, h, h])
            self.pick = nn.Linear(h, 1)
            head_in = 2 * h + q
        else:
            # g's first layer split by input: W [cell_i, cell_j, q] = Wa cell_i + Wb cell_j + Wq q, so the
            # pairs cost an addition, not a matmul, in the first layer.
            self.rel_a, self.rel_b, self.rel_q = nn.Linear(c, h), nn.Linear(c, h, bias=False), \
                nn.Linear(q, h, bias=False)
            self.g = mlp([h, h, h])
            head_in = h
        self.head = nn.Sequential(nn.Linear(head_in, h), nn.ReLU(), nn.Dropout(dropout), nn.Linear(h, h),
                                  nn.ReLU(), nn.Linear(h, num_answers))
        self._coords: torch.Tensor | None = None

    def cells(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, N, C + 2): the encoder's grid as N cells, each with its (row, col)."""
        return with_coords(self.encoder(images)).flatten(2).transpose(1, 2)     # (B, N, C + 2)

    def forward(self, images: torch.Tensor | None, image_index: torch.Tensor, words: torch.Tensor,
                lengths: torch.Tensor) -> torch.Tensor:
        """images (I, 3, H, W), image_index (B,) into them, words (B, T), lengths (B,) -> answer logits (B, A)."""
        q = self.question(words, lengths)                                        # (B, Q)
        if self.merge == "none":
            return self.head(q)
        if self.merge == "film":
            grid = self.encoder(images)                                          # (I, C, h, w): once per image
            if self.narrow is not None:
                grid = self.narrow(grid)
            return self.head(self.film(grid[image_index], q))                    # blocks once per question
        cells = self.cells(images)[image_index]                                  # (B, N, C)
        if self.merge == "concat":
            return self.head(torch.relu(self.project(torch.cat([cells.flatten(1), q], 1))))
        if self.merge == "attention":
            # hop 1: the cell the question is about
            score = self.find(torch.tanh(self.find_cell(cells) + self.find_q(q).unsqueeze(1)))   # (B, N, 1)
            v = (torch.softmax(score, 1) * cells).sum(1)                           # (B, C)
            # hop 2: every cell related to it, pooled by a softmax (one cell) and by a sum (a count)
            r = self.g(torch.relu(self.rel_cell(cells) + (self.rel_obj(v) + self.rel_q(q)).unsqueeze(1)))  # (B,N,H)
            picked = (torch.softmax(self.pick(r), 1) * r).sum(1)                    # (B, H)
            return self.head(torch.cat([picked, r.sum(1), q], 1))
        a = self.rel_a(cells)                                                     # (B, N, H)
        bq = self.rel_b(cells) + self.rel_q(q).unsqueeze(1)                       # (B, N, H)
        pairs = torch.relu(a.unsqueeze(2) + bq.unsqueeze(1))                      # (B, N, N, H)
        return self.head(self.g(pairs).sum((1, 2)))                               # sum over the N^2 pairs
