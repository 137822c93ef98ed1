"""rnnkit forecast: config.py holds ForecastConfig, task.py the estimator (Forecaster), compare.py the comparison
of every model, cli.py `rnnkit forecast`."""

from rnnkit.tasks.forecast.config import ForecastConfig


def __getattr__(name: str):
    # The task object imports torch: only when asked for, so that the config (and --help) stays light.
    if name == "Forecaster":
        from rnnkit.tasks.forecast.task import Forecaster
        return Forecaster
    raise AttributeError(f"module 'rnnkit.tasks.forecast' has no attribute {name!r}")


__all__ = ["Forecaster", "ForecastConfig"]
