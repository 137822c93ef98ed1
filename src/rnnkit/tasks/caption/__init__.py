"""rnnkit caption: config.py (CaptionConfig, DescribeConfig, CaptionRequest), data.py (the image sets, the caption
vocabulary, the batches), model.py (Show and Tell; Show, Attend and Tell), task.py (Captioner), cli.py (`rnnkit
caption train|describe|eval`)."""

from rnnkit.tasks.caption.config import CaptionConfig


def __getattr__(name: str):
    # The task object imports torch: only when asked for, so that the configs (and --help) stay light.
    if name == "Captioner":
        from rnnkit.tasks.caption.task import Captioner
        return Captioner
    raise AttributeError(f"module 'rnnkit.tasks.caption' has no attribute {name!r}")


__all__ = ["CaptionConfig", "Captioner"]
