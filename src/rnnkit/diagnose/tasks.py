"""The adding problem, the classic long-memory test, and a small model that learns it.

Hochreiter & Schmidhuber (1997); this version is Le, Jaitly & Hinton's (2015, "A simple way to initialize
recurrent networks of rectified linear units"): every step of a sequence of length T carries two numbers, a
value drawn from U(0, 1) and a marker that is 1 at exactly two steps, one in the first half and one in the
second, and 0 elsewhere. The target, read at the last step, is the sum of the two marked values. Predicting
1 whatever the input gives a mean squared error of 1/6 ≈ 0.167 (the variance of the sum): a model below it
has found the markers, and one near 0 has learned to carry the first value over up to T steps.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from rnnkit.nn.layers import RNN

BASELINE_MSE = 1 / 6          # predicting 1 every time: the variance of the sum of two U(0, 1) values


def adding_problem(batch: int, length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """x (B, T, 2): the values and the markers; y (B,): the sum of the two marked values."""
    values = torch.rand(batch, length, generator=generator)
    half = max(1, length // 2)
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, length, (batch,), generator=generator)
    markers = torch.zeros(batch, length)
    rows = torch.arange(batch)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)
    return x, (values * markers).sum(1)


class MemoryModel(nn.Module):
    """One recurrent layer of ``cell`` and a linear read-out of its last output: x (B, T, 2) -> (B,)."""

    def __init__(self, cell: str, hidden_size: int):
        super().__init__()
        self.rnn = RNN(cell, 2, hidden_size, return_sequences=False)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(x)).squeeze(-1)


def train(model: MemoryModel, length: int, *, steps: int, batch_size: int, lr: float, seed: int,
          seconds: float | None = None, clip: float = 1.0, every: int = 0, on_check=None) -> dict:
    """Adam on fresh adding-problem batches (the batches depend only on ``seed``: every cell sees the same ones)
    for ``steps`` updates or ``seconds``, whichever ends first. ``on_check(step)`` runs before the first update,
    then every ``every`` updates and after the last. Returns the steps done, seconds and the last losses."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses: list[float] = []
    start = time.perf_counter()
    step = 0
    if on_check is not None:
        on_check(0)
    while step < steps and (seconds is None or time.perf_counter() - start < seconds):
        x, y = adding_problem(batch_size, length, g)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)    # a plain RNN's gradient can explode
        opt.step()
        step += 1
        losses.append(loss.item())
        if on_check is not None and every and step % every == 0 and step < steps:
            on_check(step)
    if on_check is not None:
        on_check(step)
    return {"steps": step, "seconds": time.perf_counter() - start, "train_mse": sum(losses[-20:]) / max(1, len(losses[-20:]))}


@torch.no_grad()
def evaluate(model: MemoryModel, length: int, *, batch_size: int = 1000, seed: int = 12345) -> float:
    """Mean squared error on ``batch_size`` new sequences (a fixed seed: the same ones for every model)."""
    model.eval()
    x, y = adding_problem(batch_size, length, torch.Generator().manual_seed(seed))
    return nn.functional.mse_loss(model(x), y).item()
