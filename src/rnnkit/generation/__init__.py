"""Generation shared by every decoder: logits processors, greedy/sampling/beam search, the stateful loop,
and the compiled samplers (TorchScript, and a C loop for one LSTM sample)."""
