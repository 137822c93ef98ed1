"""Run directories: atomic checkpoints, and the one config.json schema every task writes."""
