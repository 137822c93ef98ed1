"""rnnkit tag: config.py (TagConfig, DataConfig, TagRequest), data.py (readers, tag schemes, the encoder), model.py
(the network and its CRF), task.py (Tagger), cli.py (`rnnkit tag train|tag|eval`)."""

from rnnkit.tasks.tag.config import TagConfig


def __getattr__(name: str):
    # The task object imports torch: only when asked for, so that the configs (and --help) stay light.
    if name == "Tagger":
        from rnnkit.tasks.tag.task import Tagger
        return Tagger
    raise AttributeError(f"module 'rnnkit.tasks.tag' has no attribute {name!r}")


__all__ = ["TagConfig", "Tagger"]
