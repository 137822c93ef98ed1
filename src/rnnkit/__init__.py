"""rnnkit: recurrent sequence models on real data, with PyTorch as the engine."""

__version__ = "0.1.0"
