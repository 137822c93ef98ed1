"""Vanishing gradients, seen: how much of the last step's error reaches each earlier state, before and after training.

For a loss ``L_T`` read at the last step T of a sequence, backprop through time carries ``∂L_T/∂s_t`` backwards
one step at a time, multiplying it by the recurrent Jacobian ``J_t = ∂s_t/∂s_{t-1}`` at every step::

    ∂L_T/∂s_{T-k} = J_{T-k+1}ᵀ ... J_Tᵀ ∂L_T/∂s_T

(``s`` is the whole state: h, and c for the LSTM.) When the Jacobians' spectral norms stay below 1 the product
shrinks geometrically with k, and what happened k steps back barely moves the weights: the plain RNN's problem
(Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013). Gated cells have a path whose Jacobian is
close to the identity when a gate says so: the LSTM's cell state (``c_t = f ⊙ c_{t-1} + ...``), the GRU's and
minGRU's ``(1 - z) ⊙ h_{t-1}``.

:func:`diagnose` trains one small model per cell on the same batches of the adding problem
(:mod:`rnnkit.diagnose.tasks`), measures ``‖∂L_T/∂s_{T-k}‖`` for k = 0 .. T-1 before and after training and the
median spectral norm of ``J_t`` as training goes; :func:`plot` draws both, :func:`summary` says in words what the
numbers show. ``rnnkit diagnose gradients`` runs the three.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.diagnose.config import GradientsConfig
from rnnkit.diagnose.tasks import BASELINE_MSE, MemoryModel, adding_problem, evaluate, train

PROBE_SEED = 4321        # the sequences the curves are measured on: the same for every cell and every check
JACOBIAN_PAIRS = 256     # (sequence, step) pairs whose Jacobian norms are measured at each check


def _states(cell, x: Tensor, keep_graph: bool) -> tuple[list[tuple[Tensor, ...]], Tensor]:
    """Run ``cell`` one step at a time over x (B, T, I): every state after each step, and the last output."""
    xp = cell.project_input(x.transpose(0, 1)).unbind(0)           # T x (B, G*H)
    state = cell.init_state(x.shape[0], x.device, x.dtype)
    states = []
    with torch.set_grad_enabled(keep_graph):
        for xp_t in xp:
            y, state = cell.step(xp_t, state)
            states.append(state)
    return states, y


def gradient_through_time(model: MemoryModel, x: Tensor, y: Tensor) -> Tensor:
    """‖∂L_T/∂s_{T-k}‖ for k = 0 .. T-1 (T,), mean over the sequences of x (B, T, 2); L_T = ½ (ŷ_T - y)² summed over
    the batch, so each sequence's gradient is its own."""
    model.eval()
    states, last = _states(model.rnn.cells[0], x, keep_graph=True)
    loss = 0.5 * ((model.head(last).squeeze(-1) - y) ** 2).sum()
    flat = [s for st in states for s in st]
    grads = torch.autograd.grad(loss, flat)
    per_step = len(states[0])
    norms = torch.stack([torch.cat(grads[t * per_step:(t + 1) * per_step], dim=1).norm(dim=1).mean()
                         for t in range(len(states))])              # (T,): step t
    return norms.flip(0).detach()                                   # index k: step T-1-k


def jacobian_norm(model: MemoryModel, x: Tensor, pairs: int = JACOBIAN_PAIRS) -> float:
    """The median spectral norm of the recurrent Jacobian ∂s_t/∂s_{t-1} over up to ``pairs`` (sequence, step)
    pairs of x (B, T, 2), each at the state the model reaches there."""
    cell = model.rnn.cells[0]
    model.eval()
    with torch.no_grad():
        states, _ = _states(cell, x, keep_graph=False)
        xp = cell.project_input(x.transpose(0, 1))                  # (T, B, G*H)
    T, B = xp.shape[:2]
    prev = [cell.init_state(B)] + states[:-1]                       # the state each step starts from
    prev = torch.stack([torch.cat(st, dim=1) for st in prev])       # (T, B, S)
    idx = torch.linspace(0, T * B - 1, min(pairs, T * B)).long()    # evenly over steps and sequences
    s0, xp0 = prev.reshape(T * B, -1)[idx], xp.reshape(T * B, -1)[idx]
    sizes = list(cell.state_size)

    def step(s: Tensor, xp_t: Tensor) -> Tensor:                    # one sequence: (S,), (G*H,) -> (S,)
        state = tuple(part.unsqueeze(0) for part in s.split(sizes))
        _, new = cell.step(xp_t.unsqueeze(0), state)
        return torch.cat(new, dim=1).squeeze(0)

    with torch.no_grad():
        J = torch.func.vmap(torch.func.jacrev(step))(s0, xp0)       # (N, S, S)
    return torch.linalg.matrix_norm(J, ord=2).median().item()


def diagnose(config: GradientsConfig, say=print) -> dict:
    """Train one model per cell of ``config.cell`` on the same adding-problem batches; measure each before and
    after. Returns {"config": ..., "cells": {name: {"before", "after": k-curves (lists), "jacobian": [(step,
    norm)], "mse_before", "mse_after", "steps", "seconds"}}}."""
    probe_x, probe_y = adding_problem(64, config.seq_len, torch.Generator().manual_seed(PROBE_SEED))
    seconds = None if config.max_minutes is None else 60 * config.max_minutes / len(config.cell)
    every = max(1, config.steps // 10)
    out = {"config": config, "cells": {}}
    for name in config.cell:
        torch.manual_seed(config.seed)
        model = MemoryModel(name, config.hidden_size)
        record = {"jacobian": []}

        def check(step: int, model=model, record=record) -> None:
            record["jacobian"].append((step, jacobian_norm(model, probe_x[:16])))
            model.train()

        record["before"] = gradient_through_time(model, probe_x, probe_y).tolist()
        record["mse_before"] = evaluate(model, config.seq_len)
        start = time.perf_counter()
        done = train(model, config.seq_len, steps=config.steps, batch_size=config.batch_size, lr=config.lr,
                     seed=config.seed, seconds=seconds, every=every, on_check=check)
        record["after"] = gradient_through_time(model, probe_x, probe_y).tolist()
        record["mse_after"] = evaluate(model, config.seq_len)
        record.update(steps=done["steps"], seconds=time.perf_counter() - start)
        out["cells"][name] = record
        say(f"{name}: {done['steps']} steps in {record['seconds']:.0f} s; test mean squared error "
            f"{record['mse_before']:.3f} -> {record['mse_after']:.3f} (predicting 1 always: {BASELINE_MSE:.3f})")
    return out


def language_model_curve(run: str, length: int, seed: int) -> tuple[str, list[float]]:
    """A textgen run's ‖∂L_T/∂s_{T-k}‖ on text it samples itself (its whole stacked state; L_T: the cross-entropy
    of the next token after the sample). Returns a label and the curve."""
    import rnnkit
    from rnnkit import _checks

    task = rnnkit.load(run)
    model = getattr(task, "model_", None)
    if model is None or not hasattr(model, "embed") or not hasattr(model, "rnn"):
        _checks.fail("run", run, f"a textgen run (a language model); this one is a {type(task).__name__}")
    text = task.generate(max_tokens=length, seed=seed)
    ids = task.encode_seed(text)
    if len(ids) < 3:
        _checks.fail("run", run, f"a model whose sample has at least 3 tokens; it gave {text!r}")
    model.eval()
    tokens = torch.tensor([ids[:-1]])
    inputs = model.embed(tokens).detach()                          # (1, T, E)
    cells = list(model.rnn.cells)
    xs, per_layer = inputs, []
    for cell in cells:                                              # the stack, one layer after the other
        states, _ = _states(cell, xs, keep_graph=True)
        per_layer.append(states)
        xs = torch.stack([st[0] for st in states], dim=1)           # (1, T, H): the layer's outputs
    logits = model.head(xs[:, -1])
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([ids[-1]]))
    T = tokens.shape[1]
    flat = [s for layer in per_layer for st in layer for s in st]
    grads = iter(torch.autograd.grad(loss, flat, allow_unused=True))
    sq = torch.zeros(T)
    for layer in per_layer:
        for t, st in enumerate(layer):
            for _ in st:
                g = next(grads)
                if g is not None:
                    sq[t] += g.pow(2).sum()
    label = f"{run} ({type(cells[0]).__name__}, {len(cells)}x{cells[0].hidden_size}, trained)"
    return label, sq.sqrt().flip(0).tolist()


def plot(result: dict, path: str | Path, extra: tuple[str, list[float]] | None = None) -> Path:
    """Two panels: ‖∂L_T/∂s_{T-k}‖ against k (log scale; dashed untrained, solid trained), and the recurrent
    Jacobian's median spectral norm against the training step. Written atomically as a PNG."""
    from rnnkit.report.plots import new_figure, save_png

    cfg = result["config"]
    fig = new_figure(11, 4.2)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    colors = {"rnn": "tab:red", "gru": "tab:blue", "lstm": "tab:green", "mingru": "tab:purple", "minlstm": "tab:orange"}
    for name, r in result["cells"].items():
        k = range(len(r["before"]))
        left.semilogy(k, _positive(r["before"]), ls="--", color=colors[name], alpha=0.7, label=f"{name}, untrained")
        left.semilogy(k, _positive(r["after"]), color=colors[name], label=f"{name}, trained {r['steps']} steps")
        steps, norms = zip(*r["jacobian"])
        right.plot(steps, norms, marker="o", ms=3, color=colors[name], label=name)
    if extra is not None:
        label, curve = extra
        left.semilogy(range(len(curve)), _positive(curve), color="black", label=label)
    left.set_xlabel("k: steps back from the last one")
    left.set_ylabel("‖∂L_T / ∂s_(T−k)‖ (mean over 64 sequences)")
    left.set_title(f"Gradient reaching k steps back: adding problem, T = {cfg.seq_len}", fontsize=10)
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    right.axhline(1.0, color="0.5", lw=0.8, ls=":")
    right.set_xlabel("training step")
    right.set_ylabel("median spectral norm of ∂s_t / ∂s_(t−1)")
    right.set_title("Recurrent Jacobian over training", fontsize=10)
    right.grid(True, alpha=0.3)
    right.legend(fontsize=7)
    return save_png(fig, path)


def _positive(curve: list[float]) -> list[float]:
    """A log axis cannot show 0 (an underflowed gradient): such points are left out (NaN)."""
    return [v if v > 0 else math.nan for v in curve]


def summary(result: dict, extra: tuple[str, list[float]] | None = None) -> str:
    """A table of the numbers and a few sentences saying what the plot shows."""
    cfg = result["config"]
    T = cfg.seq_len
    lines = [(f"Adding problem, T = {T}, {cfg.hidden_size} units, batch {cfg.batch_size}, seed {cfg.seed}. "
              f"Gradient left k = {T - 1} steps back, as a share of the gradient at the last step:"),
             (f"{'cell':8s} {'untrained':>10s} {'trained':>10s} {'per step':>9s} {'|J| start':>10s} {'|J| end':>8s} "
              f"{'test MSE':>9s} (predicting 1: {BASELINE_MSE:.3f})")]
    kept = {}
    for name, r in result["cells"].items():
        before, after = _kept(r["before"]), _kept(r["after"])
        kept[name] = after
        per_step = after ** (1 / (T - 1)) if after > 0 else 0.0
        lines.append(f"{name:8s} {before:10.1e} {after:10.1e} {per_step:9.3f} {r['jacobian'][0][1]:10.2f} "
                     f"{r['jacobian'][-1][1]:8.2f} {r['mse_after']:9.3f}")
    if extra is not None:
        lines.append(f"{extra[0]}: {_kept(extra[1]):.1e} of the gradient left {len(extra[1]) - 1} steps back")
    lines.append("")
    lines.append("What the plot shows. Left: how much of the error at the last step reaches the state k steps "
                 "earlier (log scale; dashed before training, solid after). Backprop through time multiplies it "
                 "by the recurrent Jacobian once per step back, so a straight falling line is a constant factor "
                 "per step: the gradient vanishes geometrically. Right: the median spectral norm of that "
                 "Jacobian as training goes; below 1 (the dotted line) every step back shrinks the gradient.")
    for name, r in result["cells"].items():
        verdict = ("vanishes" if kept[name] < 1e-4 else "fades" if kept[name] < 1e-1 else "survives")
        solved = r["mse_after"] < 0.1 * BASELINE_MSE
        lines.append(f"- {name}: after training the gradient {verdict} over {T - 1} steps ({kept[name]:.0e} of it "
                     f"left); the model {'learned' if solved else 'did not learn'} to add the marked values "
                     f"(test MSE {r['mse_after']:.3f}).")
    rnn = result["cells"].get("rnn")
    if rnn is not None and kept["rnn"] < 1e-4 and rnn["jacobian"][-1][1] > 1:
        lines.append("A norm above 1 allows the gradient to grow but does not make it grow: the rnn's median "
                     "Jacobian norm ends above 1 and its gradient still vanishes, because successive Jacobians "
                     "do not stretch the same directions (tanh' < 1 where the state saturates).")
    if "rnn" in kept and len(kept) > 1:
        best = max((n for n in kept if n != "rnn"), key=lambda n: kept[n])
        if kept[best] > 100 * kept["rnn"]:
            lines.append(f"The gated cells keep a path whose Jacobian is near the identity (the LSTM's cell state, "
                         f"(1 - z) h in the GRU and minGRU): {best} keeps {kept[best] / max(kept['rnn'], 1e-300):.0e}x "
                         f"more of the gradient than the plain RNN {T - 1} steps back.")
    return "\n".join(lines)


def _kept(curve: list[float]) -> float:
    """The gradient at the first step as a share of that at the last: curve[-1] / curve[0]."""
    return curve[-1] / curve[0] if curve[0] > 0 else 0.0
