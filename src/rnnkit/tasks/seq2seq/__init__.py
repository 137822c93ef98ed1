"""rnnkit seq2seq: task.py holds the estimator (Seq2Seq, Seq2SeqConfig, Translation), model.py the encoder-decoder,
data.py the pairs, splits, vocabularies and batches, cli.py `rnnkit seq2seq`."""

from rnnkit.tasks.seq2seq.task import Hypothesis, Seq2Seq, Seq2SeqConfig, Translation

__all__ = ["Hypothesis", "Seq2Seq", "Seq2SeqConfig", "Translation"]
