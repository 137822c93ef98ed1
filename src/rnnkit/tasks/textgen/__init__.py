"""rnnkit textgen: task.py holds the estimator (TextGenerator, TextGenConfig), model.py the network,
data.py the corpus and streams, cli.py `rnnkit textgen`."""

from rnnkit.tasks.textgen.task import TextGenConfig, TextGenerator

__all__ = ["TextGenerator", "TextGenConfig"]
