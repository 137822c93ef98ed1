"""Figures, written once for every task: a new figure, PNG bytes written atomically, the loss curve.

Figures are built without pyplot, on an Agg canvas: no global backend switch, no GUI, safe in threads
and on machines without a display.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rnnkit.runs.io import atomic_write_bytes


def new_figure(width: float = 7, height: float = 4, dpi: int = 100):
    """A matplotlib ``Figure`` on its own Agg canvas (``fig.add_subplot()`` to draw)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (a kill never leaves half an image)."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())


def plot_history(history: list[dict[str, Any]], path) -> None:
    """Draw training loss (per log) and epoch losses against the step, as a PNG written atomically."""
    fig = new_figure(7, 4)
    ax = fig.add_subplot()
    logs = [r for r in history if r.get("event") == "train"]
    epochs = [r for r in history if r.get("event") == "epoch"]
    if logs:
        ax.plot([r["step"] for r in logs], [r["loss"] for r in logs], lw=1, alpha=0.6, label="train (logged)")
    loss_keys = [k for k in (epochs[-1] if epochs else {}) if k.endswith("loss")]
    for key in loss_keys:
        points = [(r["step"], r[key]) for r in epochs if key in r]
        ax.plot(*zip(*points), marker="o", label=f"{key} (epoch)")
    for r in epochs:
        ax.axvline(r["step"], color="0.85", lw=0.8, zorder=0)  # epoch boundaries
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    if logs or epochs:
        ax.legend()
    save_png(fig, path)
