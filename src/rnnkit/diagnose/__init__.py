"""Diagnostics that make the textbook's claims visible on real numbers.

``rnnkit diagnose gradients`` (:mod:`rnnkit.diagnose.gradients`): how much of the error at the last step of a
sequence reaches the states k steps before it, for untrained and trained cells of each kind, and the spectral
norm of the recurrent Jacobian over training: vanishing gradients, seen. The long-memory task it trains on (the
adding problem) lives in :mod:`rnnkit.diagnose.tasks`; bench/long_memory.py runs it at several lengths.
"""
