"""rnnkit vqa: config.py (VQAConfig, DataConfig, VQARequest), data.py (the CSV reader, the question encoder, batches
grouped by image), model.py (CNN + recurrent question encoder + merge + answer MLP), task.py (VisualQA), cli.py
(`rnnkit vqa train|ask|eval`)."""

from rnnkit.tasks.vqa.config import VQAConfig


def __getattr__(name: str):
    # The task object imports torch: only when asked for, so that the configs (and --help) stay light.
    if name == "VisualQA":
        from rnnkit.tasks.vqa.task import VisualQA
        return VisualQA
    raise AttributeError(f"module 'rnnkit.tasks.vqa' has no attribute {name!r}")


__all__ = ["VQAConfig", "VisualQA"]
