"""rnnkit seq2seq: config.py holds the configs (Seq2SeqConfig, DecodeConfig), task.py the estimator (Seq2Seq,
Translation), model.py the encoder-decoder, data.py the pairs, splits, vocabularies and batches, cli.py
`rnnkit seq2seq`."""

from rnnkit.tasks.seq2seq.config import DecodeConfig, Seq2SeqConfig

_TASK_NAMES = ("Hypothesis", "Seq2Seq", "Translation")


def __getattr__(name: str):
    # The task module imports torch: only when asked for, so that the configs (and --help) stay light.
    if name in _TASK_NAMES:
        from rnnkit.tasks.seq2seq import task
        return getattr(task, name)
    raise AttributeError(f"module 'rnnkit.tasks.seq2seq' has no attribute {name!r}")


__all__ = ["DecodeConfig", "Hypothesis", "Seq2Seq", "Seq2SeqConfig", "Translation"]
