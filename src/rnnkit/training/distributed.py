"""Training on several processes or machines: ``torch.distributed`` under ``torchrun``, in one place.

``torchrun --nproc-per-node N -m rnnkit <task> train ...`` starts N copies of the command and tells each one
its place through environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``). rnnkit joins the process group only when those are present and ``WORLD_SIZE > 1``; without
them every function here gives the one-process answer (rank 0 of 1) and does nothing. rnnkit starts no
processes of its own: torchrun starts them, watches them and stops the rest when one fails.

How the Trainer shares the work (see ``trainer.py``):

* ``--batch-size`` stays the *global* batch. Every rank builds the same batches and trains on its own rows
  of each: rows ``rank, rank + N, rank + 2N, ...`` (:func:`shard_rows`). In text generation a batch's rows
  are its parallel streams, so each rank reads its own streams, batch after batch, and carries their state;
  in classification each rank gets a distinct share of every one of the epoch's shuffled batches.
  DistributedDataParallel averages the gradients, and each rank's loss is weighted by its share of the rows,
  so the step is the step of the whole batch: N processes follow the loss curve of one process with the same
  ``--batch-size`` and learning rate.
* Rank 0 writes the run directory (checkpoints, metrics.jsonl, loss.png, config.json) and shows progress;
  the other ranks send their standard output to /dev/null (results are printed once) and keep standard
  error for errors. Every rank reads the checkpoint to resume.
* Decisions are made once: at every step the loss is averaged and the items summed over the ranks; rank 0's clock
  decides the time budget and the time-based learning rate, and rank 0's validation figures decide the best
  epoch and early stopping. So all ranks stop after the same step.
* Small collectives (clocks, figures, barriers) use CPU tensors, which go over gloo even beside nccl on a
  GPU: gloo notices a process that died, so the others stop with an error instead of waiting.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any

import torch
import torch.distributed as dist

# What torchrun (or a hand-written launch) sets for every process.
ENV_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def requested() -> bool:
    """Whether this process was started as one of several (torchrun's variables are set, WORLD_SIZE > 1)."""
    return all(name in os.environ for name in ENV_VARIABLES) and int(os.environ["WORLD_SIZE"]) > 1


def active() -> bool:
    """Whether this process is in a process group of more than one (after :func:`init_from_env`)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_from_env() -> bool:
    """Join the process group torchrun describes (once; later calls do nothing); returns :func:`active`.

    gloo carries CPU tensors, nccl CUDA tensors where a GPU is present. On ranks other than 0 the standard
    output goes to /dev/null, so that results are printed once.
    """
    if active() or not requested():
        return active()
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    atexit.register(_leave)
    if not is_main():
        sys.stdout = open(os.devnull, "w")
    return True


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    """This process's number, 0 to world_size() - 1 (known from the environment before the group is joined)."""
    if active():
        return dist.get_rank()
    return int(os.environ["RANK"]) if requested() else 0


def world_size() -> int:
    """How many processes train together (1 without torchrun)."""
    if active():
        return dist.get_world_size()
    return int(os.environ["WORLD_SIZE"]) if requested() else 1


def local_rank() -> int:
    """This process's number on its machine: which GPU it uses."""
    return int(os.environ.get("LOCAL_RANK", 0)) if requested() else 0


def is_main() -> bool:
    """Whether this process writes the run directory and prints: rank 0 (or the only process)."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """``cuda`` -> this process's own GPU, ``cuda:LOCAL_RANK``, when several processes share a machine."""
    if device.type == "cuda" and device.index is None and requested():
        device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)
    return device


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model to train with: wrapped in DistributedDataParallel (which averages the gradients over the
    ranks during backward, and starts every rank from rank 0's weights) in a distributed run, else itself."""
    if not init_from_env():
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


# ---------------------------------------------------------------------------------------------------------
# Sharing a batch: this rank's rows, and back
# ---------------------------------------------------------------------------------------------------------

def shard_rows(batch: Any) -> tuple[Any, float]:
    """This rank's rows of a batch (rows ``rank::world_size`` of every tensor), and its loss weight.

    ``batch``: a tensor, or tuples/lists/dicts of them, whose dim 0 is the batch (B, ...). The weight,
    ``world_size * rows here / B``, makes the average over ranks of the weighted per-rank mean losses the
    mean over the whole batch, also when B is not a multiple of the number of ranks. A rank left without a
    row (B < world_size) trains on row 0 with weight 0, so that it still takes part in the step.
    """
    if not active() or batch is None:
        return batch, 1.0
    from rnnkit.training.trainer import map_tensors

    sizes = set()
    map_tensors(lambda t: sizes.add(t.shape[0] if t.dim() else None), batch)
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"batch: dim 0 sizes {sorted(sizes, key=str)}; expected every tensor of a batch to have "
                         f"the batch in dim 0 with one size, to share it among {world_size()} processes")
    rows, n, r = sizes.pop(), world_size(), rank()
    if r >= rows:
        return map_tensors(lambda t: t[:1], batch), 0.0
    mine = len(range(r, rows, n))
    return map_tensors(lambda t: t[r::n], batch), n * mine / rows


def gather_rows(piece: Any) -> Any:
    """The inverse of :func:`shard_rows` for a carried recurrent state: every rank's rows put back in the
    whole batch's order (tensors (B, ...) on the CPU, in the same tuples/lists/dicts). Every rank must call it."""
    if not active() or piece is None:
        return piece
    from rnnkit.training.trainer import map_tensors

    pieces: list[Any] = [None] * world_size()
    dist.all_gather_object(pieces, map_tensors(lambda t: t.detach().cpu(), piece))
    return _interleave(pieces)


def _interleave(pieces: list[Any]) -> Any:
    first, n = pieces[0], len(pieces)
    if isinstance(first, torch.Tensor):
        out = first.new_empty((sum(len(p) for p in pieces), *first.shape[1:]))      # (B, ...)
        for r, p in enumerate(pieces):
            out[r::n] = p
        return out
    if isinstance(first, (tuple, list)):
        parts = [_interleave([p[i] for p in pieces]) for i in range(len(first))]
        return type(first)(*parts) if hasattr(first, "_fields") else type(first)(parts)
    if isinstance(first, dict):
        return {k: _interleave([p[k] for p in pieces]) for k in first}
    return first


# ---------------------------------------------------------------------------------------------------------
# Agreeing: sums, rank 0's values, waiting for each other
# ---------------------------------------------------------------------------------------------------------

def average_loss(loss: torch.Tensor, items: Any) -> tuple[torch.Tensor, Any]:
    """(mean of ``loss`` over the ranks, sum of the number ``items`` over the ranks).

    The loss is reduced on its own device (on a GPU: queued, no wait for the GPU); the count on the CPU.
    """
    if not active():
        return loss, items
    loss = loss.detach().clone()
    dist.all_reduce(loss)
    count = torch.tensor([float(items)], dtype=torch.float64)
    dist.all_reduce(count)
    total = count.item()
    return loss / world_size(), int(total) if total.is_integer() else total


def from_main(value: float) -> float:
    """Rank 0's ``value`` on every rank (a clock reading, so that all ranks decide alike)."""
    if not active():
        return value
    box = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(box, src=0)
    return float(box[0])


def object_from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` (a small picklable value, e.g. a dict of metrics) on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait until every rank gets here (joining the process group first when torchrun started this one)."""
    if init_from_env():
        dist.all_reduce(torch.zeros(1))     # a CPU tensor: over gloo, also beside nccl
