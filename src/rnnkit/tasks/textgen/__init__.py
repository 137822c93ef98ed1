"""rnnkit textgen: config.py holds the configs (TextGenConfig, SampleConfig), task.py the estimator
(TextGenerator), model.py the network, data.py the corpus and streams, cli.py `rnnkit textgen`."""

from rnnkit.tasks.textgen.config import TextGenConfig


def __getattr__(name: str):
    # The task object imports torch: only when asked for, so that the configs (and --help) stay light.
    if name == "TextGenerator":
        from rnnkit.tasks.textgen.task import TextGenerator
        return TextGenerator
    raise AttributeError(f"module 'rnnkit.tasks.textgen' has no attribute {name!r}")


__all__ = ["TextGenerator", "TextGenConfig"]
