"""rnnkit: recurrent sequence models on real data, with PyTorch as the engine."""

__version__ = "0.1.0"


def load(path, **options):
    """The fitted task object of any run directory (TextGenerator, SequenceClassifier, Forecaster, ...)."""
    from rnnkit.runs.schema import load as _load
    return _load(path, **options)
