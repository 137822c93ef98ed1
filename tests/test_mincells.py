"""minGRU and minLSTM (issue 27): steps by hand, the whole-sequence scans against the step-by-step loop
(outputs, final states, gradients; nonzero initial states; padding on either side), float64 gradient checks,
and the layer options they share with every cell."""

import math

import pytest
import torch

import rnnkit.nn.scan as scan_ops
from rnnkit.nn.cells import CELLS, MinGRUCell, MinLSTMCell, _g, _g_backward, make_cell
from rnnkit.nn.layers import RNN


def sig(v):
    return 1.0 / (1.0 + math.exp(-v))


def g_ref(v):                                          # the paper's g, written as the paper writes it
    return v + 0.5 if v >= 0 else sig(v)


def scalar(t):
    return t.reshape(-1)[0].item()


# -- one step by hand -------------------------------------------------------------------------------------

def test_mingru_step_by_hand():
    cell = MinGRUCell(2, 1)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor([[0.5, -1.0], [2.0, 1.0]]))   # rows: z, h~
        cell.bias_ih.copy_(torch.tensor([0.1, -0.3]))
    x, h0 = torch.tensor([[1.0, 0.5]]), torch.tensor([[0.8]])
    y, (h,) = cell(x, (h0,))
    z = sig(0.5 * 1 - 1.0 * 0.5 + 0.1)
    cand = g_ref(2.0 * 1 + 1.0 * 0.5 - 0.3)                             # 2.2 >= 0: 2.7
    assert scalar(h) == pytest.approx((1 - z) * 0.8 + z * cand, abs=1e-6)
    assert torch.equal(y, h)
    # a negative pre-activation takes the sigmoid branch of g
    y, _ = cell(torch.tensor([[1.0, -3.0]]), (h0,))
    z, cand = sig(0.5 + 3.0 + 0.1), g_ref(2.0 - 3.0 - 0.3)
    assert scalar(y) == pytest.approx((1 - z) * 0.8 + z * cand, abs=1e-6)


def test_minlstm_step_by_hand():
    cell = MinLSTMCell(1, 1)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor([[1.0], [-2.0], [0.5]]))       # rows: f, i, h~
        cell.bias_ih.zero_()
    x, h0 = torch.tensor([[0.7]]), torch.tensor([[-1.5]])                # a negative state is fine
    _, (h,) = cell(x, (h0,))
    f, i, cand = sig(0.7), sig(-1.4), g_ref(0.35)
    assert scalar(h) == pytest.approx(f / (f + i) * -1.5 + i / (f + i) * cand, abs=1e-6)


def test_g_is_the_papers_function_and_its_derivative_is_right():
    x = torch.linspace(-30, 30, 401, dtype=torch.float64)
    expected = torch.tensor([g_ref(v) for v in x.tolist()], dtype=torch.float64)
    torch.testing.assert_close(_g(x), expected)
    assert bool((_g(x) > 0).all())
    xr = x.clone().requires_grad_()
    grad = torch.randn_like(x)
    torch.where(xr >= 0, xr + 0.5, torch.sigmoid(xr)).backward(grad)
    torch.testing.assert_close(_g_backward(grad, x), xr.grad)


def test_registered_and_without_recurrent_weights():
    assert CELLS["mingru"] is MinGRUCell and CELLS["minlstm"] is MinLSTMCell
    cell = make_cell("mingru", 3, 4)
    assert cell.weight_hh is None and cell.state_size == (4,)
    assert sum(p.numel() for p in cell.parameters()) == 2 * 4 * (3 + 1)
    assert sum(p.numel() for p in make_cell("minlstm", 3, 4, bias=False).parameters()) == 3 * 4 * 3
    with pytest.raises(ValueError, match=r"recurrent_dropout=0.25: expected 0 for cell MinGRUCell: its gates "
                                         r"read only x_t, it has no recurrent weights to drop"):
        RNN("mingru", 3, 4, recurrent_dropout=0.25)
    cell.scan_method = "fast"
    with pytest.raises(ValueError, match=r"scan_method='fast': expected one of 'blocked', 'log', 'loop'"):
        cell.scan(torch.zeros(2, 1, 8), (torch.zeros(1, 4),), None)


# -- the scan against the loop -------------------------------------------------------------------------------

def masks(B, T):
    """Valid steps (B, T): full, right-padded, left-padded, padded on both sides, one step only."""
    m = torch.ones(B, T, dtype=torch.bool)
    m[1, T - 4:] = False
    m[2, :3] = False
    m[3, :1] = False
    m[3, T - 2:] = False
    m[4, :T - 1] = False
    return m


def run(rnn, x, h0, mask):
    """Outputs, final states, and the gradients of a loss that reads both (x, h0, weights)."""
    for p in [x, *h0, *rnn.parameters()]:
        p.grad = None
    out, finals = rnn(x, initial_state=[(h,) for h in h0], mask=mask)
    (out.sin().sum() + sum((f[0] ** 2).sum() for f in finals)).backward()
    return [out, *[f[0] for f in finals], x.grad, *[h.grad for h in h0], *[p.grad for p in rnn.parameters()]]


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
@pytest.mark.parametrize("method", ["blocked", "log", "loop"])
def test_scan_equals_the_step_loop(cell, method, monkeypatch):
    # Small blocks, so the blocked scan crosses block and chunk boundaries (and leaves a remainder).
    monkeypatch.setattr(scan_ops, "BLOCK_ELEMENTS", 5 * 3 * 7)
    torch.manual_seed(0)
    B, T = 5, 23
    rnn = RNN(cell, 4, 3, num_layers=2, bidirectional=True, return_state=True).double()
    for c in rnn.cells:
        c.scan_method = method
    x = torch.randn(B, T, 4, dtype=torch.float64, requires_grad=True)
    h0 = [torch.randn(B, 3, dtype=torch.float64, requires_grad=True) for _ in rnn.cells]   # nonzero, either sign
    mask = masks(B, T)
    scanned = run(rnn, x, h0, mask)
    for c in rnn.cells:
        c.scan = None                                  # the same cells through the layer's loop: one step each
    looped = run(rnn, x, h0, mask)
    for a, b in zip(scanned, looped):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert scanned[0][4, :T - 1].abs().max() == 0      # padded steps output zeros


def test_the_layer_takes_the_scan_and_never_the_step(monkeypatch):
    rnn = RNN("mingru", 3, 4, num_layers=2)
    for c in rnn.cells:
        monkeypatch.setattr(c, "step", lambda *a, **k: pytest.fail("the loop ran"))
    assert rnn(torch.randn(2, 9, 3), lengths=[9, 4]).shape == (2, 9, 4)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_gradcheck_float64(cell, monkeypatch):
    monkeypatch.setattr(scan_ops, "BLOCK_ELEMENTS", 2 * 3 * 4)          # several blocks
    torch.manual_seed(1)
    c = make_cell(cell, 3, 4).double()
    x = torch.randn(10, 2, 3, dtype=torch.float64, requires_grad=True)   # (T, B, I)
    h0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(10, 2, dtype=torch.bool)
    mask[:3, 1] = False                                                  # left padding in one sequence

    def f(x, h0):
        out, (h,) = c.scan(c.project_input(x), (h0,), mask)
        return out, h

    assert torch.autograd.gradcheck(f, (x, h0), fast_mode=True)

    # the weights reach the scan through project_input: check them too
    def g(w, b):
        out, (h,) = c.scan(torch.nn.functional.linear(x.detach(), w, b), (h0.detach(),), mask)
        return out, h
    assert torch.autograd.gradcheck(g, (c.weight_ih.detach().clone().requires_grad_(),
                                        c.bias_ih.detach().clone().requires_grad_()), fast_mode=True)


def test_the_log_space_scan_loses_digits_on_long_float32_sequences_and_the_blocked_one_does_not():
    torch.manual_seed(2)
    cell = MinGRUCell(8, 16)
    xp = cell.project_input(torch.randn(2048, 4, 8)).detach()
    h0 = torch.randn(4, 16)
    with torch.no_grad():
        exact = cell.double().scan(xp.double(), (h0.double(),), None)[0]
        cell.float()
        err = {}
        for method in ("blocked", "log"):
            cell.scan_method = method
            err[method] = ((cell.scan(xp, (h0,), None)[0].double() - exact).abs().max() / exact.abs().max()).item()
    assert err["blocked"] < 1e-6
    assert err["log"] > 10 * err["blocked"]


# -- what every cell gets from the layer ---------------------------------------------------------------------

def test_dropout_stacking_and_lengths_match_the_loop():
    torch.manual_seed(3)
    rnn = RNN("minlstm", 4, 5, num_layers=3, dropout=0.3, return_sequences=False)
    rnn.train()
    x = torch.randn(3, 8, 4)
    torch.manual_seed(7)
    last = rnn(x, lengths=torch.tensor([8, 0, 5]))                       # a sequence of length 0 too
    for c in rnn.cells:
        c.scan = None
    torch.manual_seed(7)                                                 # the same dropout masks
    torch.testing.assert_close(last, rnn(x, lengths=torch.tensor([8, 0, 5])))
    assert last[1].abs().max() == 0                                      # length 0: never stepped


def test_a_stateful_layer_carries_the_state_as_one_long_sequence():
    torch.manual_seed(4)
    rnn = RNN("mingru", 2, 3, stateful=True)
    x = torch.randn(2, 12, 2)
    whole = rnn(x)
    rnn.reset_state()
    halves = torch.cat([rnn(x[:, :5]), rnn(x[:, 5:])], dim=1)
    torch.testing.assert_close(halves, whole)


def test_generation_steps_give_the_training_outputs():
    # what a sampler does: one token at a time through step(), carrying the state
    torch.manual_seed(5)
    rnn = RNN("mingru", 3, 6, num_layers=2, return_state=True)
    x = torch.randn(1, 30, 3)
    out, _ = rnn(x)
    state = None
    for t in range(30):
        y, state = rnn(x[:, t:t + 1], initial_state=state)
        torch.testing.assert_close(y[:, 0], out[:, t])


def test_bfloat16_autocast_runs_the_recurrence_in_float32():
    torch.manual_seed(6)
    rnn = RNN("mingru", 4, 8)
    x = torch.randn(2, 40, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = rnn(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, rnn(x), atol=0.05, rtol=0.05)      # bfloat16 projections: close, not equal


# -- generation and export --------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_the_fast_sampler_gives_the_plain_loops_tokens(cell):
    from rnnkit.generation.fast import compiled_sampler, sample, supports
    from rnnkit.generation.processors import make_processors
    from rnnkit.generation.stateful import decode
    from rnnkit.tasks.textgen.model import LanguageModel, no_padding, stack_states

    torch.manual_seed(0)
    model = LanguageModel(30, 8, 16, 2, cell=cell).eval()
    assert supports(model)
    with torch.inference_mode():
        logits, state = model(torch.tensor([[3, 5, 7]]))
        logits = no_padding(logits[:, -1])
        uniforms = torch.rand(200, 1, generator=torch.Generator().manual_seed(1))
        scripted, native = compiled_sampler(model)
        fast = sample(scripted, logits, stack_states(state), uniforms, 0.8, -1, 1.0, False, -1)
        plain = decode(model.step, logits, state, 200, processors=make_processors(0.8), uniforms=uniforms)
    assert native is None                                    # the C loop is the LSTM's only
    assert torch.equal(fast, plain)


def mingru_classifier(hidden: int, layers: int, seed: int = 0):
    """A CModel of a minGRU classifier (6 channels, 4 classes, max+mean pooling), with PyTorch's reference."""
    import numpy as np

    from rnnkit.export.c import CModel, rnn_layers

    torch.manual_seed(seed)
    rnn, head = RNN("mingru", 6, hidden, num_layers=layers).eval(), torch.nn.Linear(2 * hidden, 4)
    mean, std = np.linspace(-1, 1, 6).astype(np.float32), np.linspace(0.5, 2, 6).astype(np.float32)
    kind, weights = rnn_layers(rnn, "model 'mingru'")

    def reference(sequences):
        with torch.no_grad():
            out = []
            for x in sequences:
                h = rnn(torch.from_numpy((x - mean) / std).unsqueeze(0))[0]              # (T, H)
                out.append(head(torch.cat([h.max(0).values, h.mean(0)])).numpy())
        return np.stack(out)

    def inputs(rng, n):
        return [(rng.normal(size=(int(rng.integers(1, 40)), 6)) * std + mean).astype(np.float32) for _ in range(n)]

    return CModel("classes", kind, weights, head.weight.detach().numpy(), head.bias.detach().numpy(), mean, std,
                  reference, inputs, pooling="maxmean", classes=["a", "b", "c", "d"])


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_a_mingru_classifier_exports_to_c_and_computes_pytorchs_logits(precision, tmp_path):
    import numpy as np

    from rnnkit.export.c import compile_driver, find_compiler, memory, render, run_compiled

    if find_compiler() is None:
        # Compiling the header needs a system C compiler, which pip cannot install; the numbers of the same
        # export are checked against PyTorch without it above. CI has gcc, so CI runs this test.
        pytest.skip("no C compiler on PATH")
    model = mingru_classifier(hidden=16, layers=2)
    assert model.kind == "mingru" and model.hidden_size == 16
    header = tmp_path / "gestures.h"
    header.write_text(render(model, "gestures", precision), encoding="utf-8")
    sequences = model.inputs(np.random.default_rng(0), 12)
    got, state_bytes = run_compiled(compile_driver(header, tmp_path), sequences)
    want = model.reference(sequences)
    assert np.abs(got - want).max() < (1e-4 if precision == "float32" else 0.1)
    assert (got.argmax(1) == want.argmax(1)).mean() >= (1.0 if precision == "float32" else 0.9)
    ram = memory(model)
    assert state_bytes == ram["state"]                       # the header's sizeof(state), as memory() counts it
    assert ram["step_stack"] == 4 * (6 + 2 * 16)             # z[I] and xp[G]: no U h
