"""examples/bptt_numpy.py: backprop through time written out in NumPy gives autograd's gradients (float64, 1e-8),
through rnnkit's own SimpleRNN layer and GRU cell, and finite differences agree with it."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.nn.cells import GRUCell
from rnnkit.nn.layers import RNN

PATH = Path(__file__).resolve().parents[1] / "examples" / "bptt_numpy.py"
spec = importlib.util.spec_from_file_location("bptt_numpy", PATH)
bptt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bptt)


def t64(a):
    return torch.tensor(a, dtype=torch.float64)


def test_simple_rnn_bptt_matches_autograd():
    rng = np.random.default_rng(0)
    T, B, I, H, O = 12, 3, 4, 5, 2
    p = bptt.init_rnn(I, H, O, rng)
    xs, h0, targets = rng.normal(size=(T, B, I)), rng.normal(size=(B, H)), rng.normal(size=(T, B, O))
    grads, dhs = bptt.rnn_backward(p, xs, h0, targets)

    # the same network in rnnkit: RNN("rnn") (time-major), the NumPy bias split as b_ih = b, b_hh = 0
    rnn = RNN("rnn", I, H, batch_first=False, return_state=True).double()
    cell = rnn.cells[0]
    with torch.no_grad():
        cell.weight_ih.copy_(t64(p["W"]))
        cell.weight_hh.copy_(t64(p["U"]))
        cell.bias_ih.copy_(t64(p["b"]))
        cell.bias_hh.zero_()
    V, c = t64(p["V"]).requires_grad_(), t64(p["c"]).requires_grad_()
    x, h = t64(xs).requires_grad_(), t64(h0).requires_grad_()
    out, _ = rnn(x, initial_state=(h,))                          # (T, B, H)
    loss = 0.5 * ((out @ V.T + c - t64(targets)) ** 2).sum()
    loss.backward()
    assert loss.item() == pytest.approx(bptt.rnn_loss(p, xs, h0, targets), abs=1e-10)
    pairs = {"W": cell.weight_ih.grad, "U": cell.weight_hh.grad, "b": cell.bias_ih.grad, "V": V.grad, "c": c.grad,
             "xs": x.grad, "h0": h.grad}
    for name, auto in pairs.items():
        np.testing.assert_allclose(grads[name], auto.numpy(), atol=1e-8, rtol=0, err_msg=name)
    # ∂L/∂h_t over both paths (the read-out at t and the steps after it): autograd's gradient of each state of
    # the same cell run one step at a time
    h, states = t64(h0), []
    for t in range(T):
        h = cell(t64(xs[t]), (h,))[0]
        h.retain_grad()
        states.append(h)
    (0.5 * ((torch.stack(states) @ V.T + c - t64(targets)) ** 2).sum()).backward()
    np.testing.assert_allclose(dhs, torch.stack([s.grad for s in states]).numpy(), atol=1e-8, rtol=0)


def test_gru_step_backward_matches_autograd():
    rng = np.random.default_rng(1)
    B, I, H = 3, 4, 5
    p = bptt.init_gru(I, H, rng)
    x, h, dh_new = rng.normal(size=(B, I)), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    h_new, cache = bptt.gru_step(p, x, h)
    grads = bptt.gru_step_backward(p, cache, dh_new)

    cell = GRUCell(I, H).double()                                # reset_after=True: torch's formulation
    with torch.no_grad():
        for name in ("W_ih", "W_hh", "b_ih", "b_hh"):
            getattr(cell, {"W_ih": "weight_ih", "W_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}[name]) \
                .copy_(t64(p[name]))
    xt, ht = t64(x).requires_grad_(), t64(h).requires_grad_()
    y, _ = cell(xt, (ht,))
    np.testing.assert_allclose(h_new, y.detach().numpy(), atol=1e-12, rtol=0)
    y.backward(t64(dh_new))
    pairs = {"W_ih": cell.weight_ih.grad, "W_hh": cell.weight_hh.grad, "b_ih": cell.bias_ih.grad,
             "b_hh": cell.bias_hh.grad, "x": xt.grad, "h": ht.grad}
    for name, auto in pairs.items():
        np.testing.assert_allclose(grads[name], auto.numpy(), atol=1e-8, rtol=0, err_msg=name)


def test_finite_differences_agree_and_the_message_vanishes_or_explodes():
    worst = bptt.check_against_finite_differences(seed=3)
    assert max(worst.values()) < 1e-6, worst
    rng = np.random.default_rng(2)
    p = bptt.init_rnn(3, 8, 1, rng)
    q = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    xs = 1e-4 * rng.normal(size=(10, 4, 3))                      # small inputs and no bias: tanh stays near its
    p["b"][:] = 0                                                # linear part, tanh' near 1
    norms = {}
    for scale in (0.5, 1.5):
        p["U"] = scale * q                                       # every singular value of U is `scale`
        norms[scale] = bptt.gradient_through_time(p, xs, np.zeros((4, 8)), np.zeros((4, 1)))
    assert norms[0.5][9] < 0.5 ** 9 * norms[0.5][0] * 1.01      # tanh' <= 1: at most 0.5^k of the start
    assert norms[1.5][9] > 0.5 * 1.5 ** 9 * norms[1.5][0]        # near-linear tanh: about 1.5^k
