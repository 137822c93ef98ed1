"""Generation shared by every decoder: logits processors (processors.py), greedy/sampling/beam search
(search.py), the plain loop over any step function (stateful.py), and the compiled samplers for
language models (fast.py: TorchScript; native.py: a C loop for one LSTM sample)."""
