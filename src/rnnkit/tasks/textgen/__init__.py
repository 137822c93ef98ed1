"""rnnkit textgen: see task.py for the estimator, cli.py for `rnnkit textgen`."""

from rnnkit.tasks.textgen.task import TextGenerator, TextGenConfig

__all__ = ["TextGenerator", "TextGenConfig"]
