"""Attention (rnnkit.nn.attention): the three score functions on hand-computed numbers, masking, gradients, and the
decoder cell run by the one time loop against the same steps taken one by one."""

import math

import pytest
import torch
from torch import nn

from rnnkit.nn import RNN
from rnnkit.nn.attention import (ATTENTIONS, AdditiveAttention, AttentionDecoderCell, DotAttention,
                                 GeneralAttention, make_attention)

VALUES = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])       # (B=1, S=3, M=2)
QUERY = torch.tensor([[1.0, 2.0]])                                   # (B=1, Q=2)


def softmax(xs):
    e = [math.exp(x) for x in xs]
    return [v / sum(e) for v in e]


def test_dot_attention_by_hand():
    attn = DotAttention(2, 2)
    context, weights = attn(QUERY, attn.prepare(VALUES))
    a = softmax([1.0, 2.0, 3.0])                                     # q . k_i = 1, 2, 3
    assert weights[0].tolist() == pytest.approx(a)
    assert context[0].tolist() == pytest.approx([a[0] + a[2], a[1] + a[2]])


def test_masked_steps_get_no_weight_and_padding_values_change_nothing():
    attn = DotAttention(2, 2)
    mask = torch.tensor([[True, True, False]])
    context, weights = attn(QUERY, attn.prepare(VALUES, mask))
    assert weights[0].tolist() == pytest.approx([1 / (1 + math.e), math.e / (1 + math.e), 0.0])
    assert weights[0, 2].item() == 0.0                              # exactly zero, not small
    assert context[0].tolist() == pytest.approx([1 / (1 + math.e), math.e / (1 + math.e)])
    other = VALUES.clone()
    other[0, 2] = torch.tensor([123.0, -7.0])                        # whatever sits in the padding
    context2, weights2 = attn(QUERY, attn.prepare(other, mask))
    assert torch.equal(context, context2) and torch.equal(weights, weights2)


def test_general_attention_by_hand():
    attn = GeneralAttention(2, 2)
    with torch.no_grad():
        attn.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))    # W q = (1, 4)
    context, weights = attn(QUERY, attn.prepare(VALUES))
    a = softmax([1.0, 4.0, 5.0])
    assert weights[0].tolist() == pytest.approx(a)
    assert context[0].tolist() == pytest.approx([a[0] + a[2], a[1] + a[2]])


def test_additive_attention_by_hand():
    attn = AdditiveAttention(1, 1, attention_size=2)
    with torch.no_grad():
        attn.query_proj.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        attn.key_proj.weight.copy_(torch.tensor([[2.0], [1.0]]))
        attn.key_proj.bias.copy_(torch.tensor([0.0, 0.5]))
        attn.v.copy_(torch.tensor([1.0, 2.0]))
    values = torch.tensor([[[1.0], [-1.0]]])
    context, weights = attn(torch.tensor([[0.5]]), attn.prepare(values))
    # v . tanh(W_q q + W_k k + b): (0.5 + 2, -0.5 + 1.5) and (0.5 - 2, -0.5 - 1 + 0.5)
    scores = [math.tanh(2.5) + 2 * math.tanh(1.0), math.tanh(-1.5) + 2 * math.tanh(-1.0)]
    a = softmax(scores)
    assert attn.score(torch.tensor([[0.5]]), attn.prepare(values))[0].tolist() == pytest.approx(scores)
    assert weights[0].tolist() == pytest.approx(a)
    assert context[0].tolist() == pytest.approx([a[0] - a[1]])


@pytest.mark.parametrize("kind", sorted(ATTENTIONS))
def test_gradients_of_every_score_function(kind):
    torch.manual_seed(0)
    attn = make_attention(kind, 3, 3).double()
    values = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    query = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])

    def f(q, v):
        return attn(q, attn.prepare(v, mask))

    assert torch.autograd.gradcheck(f, (query, values))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"memory_size=4: expected the query's size 3 for dot attention"):
        DotAttention(3, 4)
    with pytest.raises(ValueError, match=r"attention='bahdanau': expected one of 'none', 'dot', 'general', 'additive'"):
        make_attention("bahdanau", 2, 2)
    assert make_attention("none", 2, 2) is None
    with pytest.raises(ValueError, match=r"mask=\(1, 2\): expected shape \(1, 3\)"):
        DotAttention(2, 2).prepare(VALUES, torch.ones(1, 2, dtype=torch.bool))


# --- the decoder cell ------------------------------------------------------------------------------------

@pytest.mark.parametrize("inner,kind", [("lstm", "general"), ("gru", "additive"), ("lstm", "dot")])
def test_decoder_cell_in_the_one_time_loop_equals_its_steps(inner, kind):
    torch.manual_seed(1)
    rnn = RNN(AttentionDecoderCell, 5, 6, inner=inner, depth=2, attention=kind)
    cell = rnn.cells[0]
    memory = cell.attention.prepare(torch.randn(3, 4, 6), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]))
    state = tuple(torch.randn(3, s) for s in cell.state_size)
    x = torch.randn(3, 7, 5)
    out = rnn(x, initial_state=[state], context=memory)                # (B, T, H)
    st, steps = state, []
    for t in range(7):
        y, st, w = cell.attend(cell.project_input(x[:, t]), st, memory)
        steps.append(y)
        w = w.detach()
        assert torch.allclose(w.sum(1), torch.ones(3)) and float(w[2, 1:].abs().max()) == 0.0
    assert torch.allclose(out, torch.stack(steps, 1), atol=1e-6)


def test_decoder_cell_step_is_the_documented_formula():
    torch.manual_seed(2)
    cell = AttentionDecoderCell(3, 4, inner="lstm", depth=2, attention="general")
    memory = cell.attention.prepare(torch.randn(2, 5, 4))
    state = tuple(torch.randn(2, s) for s in cell.state_size)          # (h1, c1, h2, c2, h~)
    x = torch.randn(2, 3)
    out, new, weights = cell.attend(cell.project_input(x), state, memory)
    lstm1, lstm2 = nn.LSTMCell(3 + 4, 4), nn.LSTMCell(4, 4)
    lstm1.load_state_dict(cell.layers[0].state_dict())
    lstm2.load_state_dict(cell.layers[1].state_dict())
    h1, c1 = lstm1(torch.cat([x, state[4]], 1), (state[0], state[1]))   # input feeding: [x ; h~_{t-1}]
    y2, c2 = lstm2(h1, (state[2], state[3]))
    h2 = y2 + h1                                                        # residual from the second cell on
    context, w = cell.attention(h2, memory)
    expected = torch.tanh(cell.combine(torch.cat([context, h2], 1)))
    assert torch.allclose(out, expected, atol=1e-6) and torch.allclose(weights, w)
    for got, want in zip(new, (h1, c1, y2, c2, expected)):
        assert torch.allclose(got, want, atol=1e-6)


def test_decoder_cell_without_attention_is_the_plain_stack():
    torch.manual_seed(3)
    cell = AttentionDecoderCell(3, 4, inner="gru", depth=1, attention=None)
    assert cell.state_size == (4,) and not cell.input_feeding
    gru = nn.GRUCell(3, 4)
    gru.load_state_dict(cell.layers[0].state_dict())
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    out, (new,), weights = cell.attend(cell.project_input(x), (h,), None)
    assert weights is None and torch.allclose(out, gru(x, h), atol=1e-6) and torch.allclose(new, out)
    with pytest.raises(ValueError, match=r"context=None: expected the encoder's Memory"):
        AttentionDecoderCell(3, 4, attention="dot").attend(torch.zeros(2, 16), tuple(
            torch.zeros(2, 4) for _ in range(3)), None)
