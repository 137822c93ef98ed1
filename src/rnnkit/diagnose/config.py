"""The options of ``rnnkit diagnose gradients``. Imports no torch: ``--help`` is built from this class."""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit import _checks
from rnnkit.config import field

# The cells the diagnosis can train (rnnkit.nn.cells names; listed here because importing that module imports torch).
CELLS = ("rnn", "gru", "lstm", "mingru", "minlstm")


@dataclass
class GradientsConfig:
    cell: list[str] = field(["rnn", "gru", "lstm", "mingru"], "the cells to compare, each trained on the same "
                            "batches", choices=CELLS, group="model")
    hidden_size: int = field(32, f"units of each cell (at most {_checks.MAX_WIDTH:,})", group="model")
    seq_len: int = field(50, "steps per sequence of the adding problem: the two values to add are marked in the "
                            f"first and the second half (2 to {_checks.MAX_SEQ_LEN:,})", group="data")
    batch_size: int = field(64, f"sequences per training step (at most {_checks.MAX_BATCH:,})", group="training")
    steps: int = field(1500, "training steps per cell: about what gated cells need to learn T = 50 (at most "
                             f"{_checks.MAX_STEPS:,})", group="training")
    lr: float = field(3e-3, f"Adam's learning rate (at most {_checks.MAX_LR:g})", group="training")
    max_minutes: float | None = field(None, "time budget of the whole command, shared equally by the cells "
                                               "(None: only --steps limits training; at most "
                                               f"{_checks.MAX_MINUTES:,})", group="training")
    seed: int = field(0, f"seed of the data and the weights (0 to {_checks.MAX_SEED:,})", group="training")
    threads: int | None = field(None, "CPU threads for torch (None: one per CPU other processes leave free; at "
                                         f"most {_checks.MAX_THREADS:,})", group="training")

    def __post_init__(self) -> None:
        if isinstance(self.cell, str):
            self.cell = [self.cell]
        if not self.cell:
            _checks.fail("cell", self.cell, f"at least one of {', '.join(CELLS)}")
        for name in self.cell:
            _checks.check_choice("cell", name, CELLS)
        _checks.check_int("hidden_size", self.hidden_size, min=1, cap=_checks.MAX_WIDTH)
        _checks.check_int("seq_len", self.seq_len, min=2, cap=_checks.MAX_SEQ_LEN)
        _checks.check_int("batch_size", self.batch_size, min=1, cap=_checks.MAX_BATCH)
        _checks.check_int("steps", self.steps, min=1, cap=_checks.MAX_STEPS)
        _checks.check_float("lr", self.lr, min=0, max=_checks.MAX_LR, min_open=True)
        _checks.check_float("max_minutes", self.max_minutes, min=0, max=_checks.MAX_MINUTES, min_open=True,
                            allow_none=True)
        _checks.check_int("seed", self.seed, min=0, cap=_checks.MAX_SEED)
        _checks.check_int("threads", self.threads, min=1, cap=_checks.MAX_THREADS, allow_none=True)
        if self.batch_size * self.seq_len > _checks.MAX_BATCH_TOKENS:
            _checks.fail("batch_size, seq_len", (self.batch_size, self.seq_len),
                         f"at most {_checks.MAX_BATCH_TOKENS:,} steps a batch (batch_size x seq_len)")
