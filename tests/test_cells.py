"""Cells: hand-computed steps with constant weights, float64 gradient checks, argument errors."""

import math

import pytest
import torch

from rnnkit.nn.cells import (CELLS, GRUCell, JordanCell, LSTMCell, PeepholeLSTMCell, SimpleRNNCell,
                          make_cell)


def sig(v):
    return 1.0 / (1.0 + math.exp(-v))


def const_(cell, value):
    with torch.no_grad():
        for p in cell.parameters():
            p.fill_(value)
    return cell


def scalar(t):
    return t.reshape(-1)[0].item()


def test_lecture_worked_step_weighted_sum_is_1_28():
    # The lecture's step: previous state 0.4, input 3, recurrent weight 0.2, input weight 0.4.
    cell = SimpleRNNCell(1, 1, activation="linear", bias=False)
    with torch.no_grad():
        cell.weight_ih.fill_(0.4)
        cell.weight_hh.fill_(0.2)
    y, (h,) = cell(torch.tensor([[3.0]]), (torch.tensor([[0.4]]),))
    assert scalar(y) == pytest.approx(1.28, abs=1e-6)
    assert scalar(h) == pytest.approx(1.28, abs=1e-6)
    # the same step through tanh gives the activation the slide rounds to 0.9
    cell_tanh = SimpleRNNCell(1, 1, activation="tanh", bias=False)
    cell_tanh.load_state_dict(cell.state_dict())
    y, _ = cell_tanh(torch.tensor([[3.0]]), (torch.tensor([[0.4]]),))
    assert scalar(y) == pytest.approx(math.tanh(1.28), abs=1e-6)
    assert round(scalar(y), 1) == 0.9


@pytest.mark.parametrize("act,fn", [
    ("tanh", math.tanh),
    ("relu", lambda v: max(v, 0.0)),
    ("sigmoid", sig),
    ("hard_sigmoid", lambda v: min(max(v / 6 + 0.5, 0.0), 1.0)),
])
def test_simple_rnn_activations(act, fn):
    cell = const_(SimpleRNNCell(2, 3, activation=act), 0.1)
    x = torch.tensor([[1.0, -2.0]])
    h0 = torch.tensor([[0.5, 0.5, -4.0]])
    y, _ = cell(x, (h0,))
    # each unit: 0.1*(1-2) + 0.1*(0.5+0.5-4) + 0.1 + 0.1 (two biases)
    pre = 0.1 * (1 - 2) + 0.1 * (0.5 + 0.5 - 4.0) + 0.2
    assert torch.allclose(y, torch.full((1, 3), fn(pre)), atol=1e-6)


def test_lstm_step_by_hand():
    cell = const_(LSTMCell(1, 1), 0.5)
    x, h0, c0 = torch.tensor([[2.0]]), torch.tensor([[0.3]]), torch.tensor([[-0.2]])
    y, (h, c) = cell(x, (h0, c0))
    pre = 0.5 * 2.0 + 0.5 * 0.3 + 0.5 + 0.5       # every gate gets the same pre-activation
    c_ref = sig(pre) * -0.2 + sig(pre) * math.tanh(pre)
    h_ref = sig(pre) * math.tanh(c_ref)
    assert scalar(c) == pytest.approx(c_ref, abs=1e-6)
    assert scalar(h) == pytest.approx(h_ref, abs=1e-6)
    assert torch.equal(y, h)


def test_lstm_cell_matches_torch_lstmcell():
    torch.manual_seed(0)
    ours = LSTMCell(4, 6)
    ref = torch.nn.LSTMCell(4, 6)
    ref.load_state_dict(ours.state_dict())
    x, h, c = torch.randn(3, 4), torch.randn(3, 6), torch.randn(3, 6)
    y, (h1, c1) = ours(x, (h, c))
    h2, c2 = ref(x, (h, c))
    assert torch.allclose(h1, h2, atol=1e-6) and torch.allclose(c1, c2, atol=1e-6)


def test_gru_two_formulations_by_hand():
    x, h0 = torch.tensor([[1.0]]), torch.tensor([[0.5]])
    w = 0.3
    pre = w * 1.0 + w * 0.5 + 2 * w                 # r and z: W x + U h + b_ih + b_hh
    r = z = sig(pre)
    # torch / cuDNN: reset applied after the recurrent matmul
    n_after = math.tanh(w * 1.0 + w + r * (w * 0.5 + w))
    # original paper: reset applied to the state before the matmul
    n_before = math.tanh(w * 1.0 + w + (w * (r * 0.5) + w))
    for reset_after, n in [(True, n_after), (False, n_before)]:
        cell = const_(GRUCell(1, 1, reset_after=reset_after), w)
        y, _ = cell(x, (h0,))
        assert scalar(y) == pytest.approx((1 - z) * n + z * 0.5, abs=1e-6)
    assert n_after != pytest.approx(n_before)


def test_gru_reset_after_matches_torch_grucell():
    torch.manual_seed(1)
    ours = GRUCell(4, 5)
    ref = torch.nn.GRUCell(4, 5)
    ref.load_state_dict(ours.state_dict())
    x, h = torch.randn(2, 4), torch.randn(2, 5)
    assert torch.allclose(ours(x, (h,))[0], ref(x, h), atol=1e-6)


def test_jordan_feeds_back_the_output():
    cell = const_(JordanCell(1, 2, output_size=1, activation="tanh", output_activation="sigmoid"), 0.2)
    x, y0 = torch.tensor([[1.0]]), torch.tensor([[0.7]])
    y, (state,) = cell(x, (y0,))
    h = math.tanh(0.2 * 1.0 + 0.2 * 0.7 + 0.4)     # both hidden units alike
    y_ref = sig(0.2 * h * 2 + 0.2)
    assert scalar(y) == pytest.approx(y_ref, abs=1e-6)
    assert torch.equal(state, y)
    assert cell.state_size == (1,) and cell.output_size == 1


def test_peephole_by_hand_and_zero_peepholes_equal_lstm():
    cell = const_(PeepholeLSTMCell(1, 1), 0.5)
    x, h0, c0 = torch.tensor([[2.0]]), torch.tensor([[0.3]]), torch.tensor([[-0.2]])
    _, (h, c) = cell(x, (h0, c0))
    pre = 0.5 * 2.0 + 0.5 * 0.3 + 1.0
    i = f = sig(pre + 0.5 * -0.2)
    c_ref = f * -0.2 + i * math.tanh(pre)
    o = sig(pre + 0.5 * c_ref)
    assert scalar(c) == pytest.approx(c_ref, abs=1e-6)
    assert scalar(h) == pytest.approx(o * math.tanh(c_ref), abs=1e-6)

    torch.manual_seed(2)
    fresh = PeepholeLSTMCell(3, 4)                   # peepholes start at zero
    plain = LSTMCell(3, 4)
    plain.load_state_dict({k: v for k, v in fresh.state_dict().items() if "peephole" not in k})
    xs, hs, cs = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
    assert torch.allclose(fresh(xs, (hs, cs))[0], plain(xs, (hs, cs))[0], atol=1e-7)


@pytest.mark.parametrize("name,kwargs", [
    ("rnn", {}), ("rnn", {"activation": "relu"}), ("jordan", {"output_size": 2}),
    ("gru", {}), ("gru", {"reset_after": False}), ("lstm", {}), ("peephole", {}),
])
def test_gradcheck_float64(name, kwargs):
    torch.manual_seed(3)
    cell = make_cell(name, 3, 4, **kwargs).double()
    if name == "peephole":
        with torch.no_grad():                        # non-zero peepholes so their paths are checked
            for p in (cell.peephole_i, cell.peephole_f, cell.peephole_o):
                p.uniform_(-0.5, 0.5)
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(2, s, dtype=torch.float64, requires_grad=True) for s in cell.state_size)
    mask = torch.tensor([[1.0, 0.0, 2.0, 2.0][: cell.state_size[0]]] * 2, dtype=torch.float64)

    def f(x, *state):
        y, new = cell.step(cell.project_input(x), state, mask)
        return (y,) + tuple(new)

    params = tuple(cell.parameters())
    assert torch.autograd.gradcheck(f, (x,) + state)
    # and with respect to the weights
    def g(*ps):
        return torch.func.functional_call(cell, dict(zip([n for n, _ in cell.named_parameters()], ps)),
                                          (x.detach(), tuple(s.detach() for s in state)))[0]
    assert torch.autograd.gradcheck(g, tuple(p.detach().clone().requires_grad_() for p in params))


def test_every_registered_cell_declares_its_state():
    for name, cls in CELLS.items():
        cell = make_cell(name, 3, 5)
        st = cell.init_state(4)
        assert [s.shape for s in st] == [torch.Size([4, n]) for n in cell.state_size]
        y, new = cell(torch.zeros(4, 3), st)
        assert y.shape == (4, cell.output_size)
        assert [s.shape for s in new] == [s.shape for s in st]


def test_cell_argument_errors():
    with pytest.raises(ValueError, match=r"cell='transformer': expected one of 'rnn'"):
        make_cell("transformer", 2, 3)
    with pytest.raises(ValueError, match=r"activation='softmax': expected one of 'tanh'"):
        SimpleRNNCell(2, 3, activation="softmax")
    with pytest.raises(ValueError, match=r"hidden_size=0: expected an integer >= 1"):
        LSTMCell(2, 0)
    with pytest.raises(ValueError, match=r"output_size=-1: expected an integer >= 1"):
        JordanCell(2, 3, output_size=-1)
