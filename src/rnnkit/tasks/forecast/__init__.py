"""rnnkit forecast: see task.py for the estimator, cli.py for `rnnkit forecast`."""

from rnnkit.tasks.forecast.task import Forecaster, ForecastConfig

__all__ = ["Forecaster", "ForecastConfig"]
