"""Reports written once for every task: figures (plots.py) and metrics (metrics.py)."""
