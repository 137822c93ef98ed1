"""The recurrent layer: fused vs loop, torch parity, masking, dropout masks, stateful carry, errors."""

import itertools
import warnings

import pytest
import torch

from rnnkit.nn.cells import Cell
from rnnkit.nn.layers import RNN, reverse_within_length

B, T, I, H = 3, 7, 4, 5


def run(layer, x, fused, **kw):
    """Forward + backward on one path; returns outputs, final states and all gradients."""
    layer.zero_grad()
    layer.fused = fused
    xg = x.clone().requires_grad_()
    out, states = layer(xg, **kw)
    # a loss that weights every output and state differently, so every gradient path counts
    loss = (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum()
    loss = loss + sum((s ** 2).sum() for st in states for s in st)
    loss.backward()
    grads = [p.grad.clone() for p in layer.parameters()] + [xg.grad.clone()]
    return out.detach(), [s.detach() for st in states for s in st], grads


def assert_close_lists(a, b, atol=1e-5):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert torch.allclose(u, v, atol=atol, rtol=1e-5), (u - v).abs().max()


def padding_kwargs(kind):
    lengths = torch.tensor([T, 4, 1])
    if kind == "none":
        return {}
    if kind == "lengths":
        return {"lengths": lengths}
    if kind == "left_mask":
        return {"mask": torch.arange(T).unsqueeze(0) >= (T - lengths).unsqueeze(1)}
    raise AssertionError(kind)


CONFIGS = list(itertools.product(
    ["lstm", "gru", "rnn"],           # cells with a fused kernel
    [1, 2],                           # num_layers
    [False, True],                    # bidirectional
    ["none", "lengths", "left_mask"],
))


@pytest.mark.parametrize("cell,layers,bidir,padding", CONFIGS)
def test_loop_path_equals_fused_path(cell, layers, bidir, padding):
    torch.manual_seed(0)
    layer = RNN(cell, I, H, num_layers=layers, bidirectional=bidir, return_state=True)
    x = torch.randn(B, T, I)
    kw = padding_kwargs(padding)
    assert layer.uses_fused()
    fused = run(layer, x, "always", **kw)
    loop = run(layer, x, "never", **kw)
    for a, b in zip(fused, loop):
        assert_close_lists(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidir", [False, True])
@pytest.mark.parametrize("padding", ["lengths", "left_mask"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_padded_fused_route_without_states_equals_loop(cell, bidir, padding, return_sequences):
    # Without return_state the CPU fused path runs the padded batch (no packing): same numbers as the loop.
    torch.manual_seed(2)
    layer = RNN(cell, I, H, num_layers=2, bidirectional=bidir, return_sequences=return_sequences)
    x = torch.randn(B, T, I)
    kw = padding_kwargs(padding)
    got = []
    for fused in ("always", "never"):
        layer.zero_grad()
        layer.fused = fused
        xg = x.clone().requires_grad_()
        out = layer(xg, **kw)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        got.append([out.detach()] + [p.grad.clone() for p in layer.parameters()] + [xg.grad.clone()])
    assert_close_lists(got[0], got[1])
    if return_sequences:
        valid = padding_kwargs("left_mask")["mask"] if padding == "left_mask" else (
            torch.arange(T).unsqueeze(0) < torch.tensor([T, 4, 1]).unsqueeze(1))
        assert bool((got[0][0][~valid] == 0).all())       # padded steps output exactly 0


def test_reverse_within_length_keeps_padding_in_place():
    x = torch.arange(8.0).view(2, 4, 1)                                     # (B, T, 1)
    out = reverse_within_length(x, torch.tensor([4, 2]), batch_first=True)
    assert out[..., 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]
    torch.testing.assert_close(reverse_within_length(out, torch.tensor([4, 2]), batch_first=True), x)
    torch.testing.assert_close(reverse_within_length(x.transpose(0, 1), torch.tensor([4, 2])), out.transpose(0, 1))


@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_merge_modes_and_last_step_agree_between_paths(merge, return_sequences):
    torch.manual_seed(1)
    layer = RNN("gru", I, H, num_layers=2, bidirectional=True, merge_mode=merge,
                return_sequences=return_sequences, return_state=True)
    x = torch.randn(B, T, I)
    kw = {"lengths": torch.tensor([T, 3, 5])}
    fused, loop = run(layer, x, "always", **kw), run(layer, x, "never", **kw)
    assert_close_lists([fused[0]], [loop[0]])
    assert_close_lists(fused[2], loop[2])
    out = fused[0]
    assert out.shape[-1] == (2 * H if merge == "concat" else H)


def test_merge_modes_by_definition():
    torch.manual_seed(2)
    x = torch.randn(B, T, I)
    base = RNN("lstm", I, H, bidirectional=True, merge_mode="concat")
    fw, bw = base(x).split(H, dim=-1)
    for mode, expect in [("sum", fw + bw), ("mul", fw * bw), ("ave", (fw + bw) / 2)]:
        layer = RNN("lstm", I, H, bidirectional=True, merge_mode=mode)
        layer.load_state_dict(base.state_dict())
        assert torch.allclose(layer(x), expect, atol=1e-6)


@pytest.mark.parametrize("cell,torch_cls,kw", [
    ("lstm", torch.nn.LSTM, {}), ("gru", torch.nn.GRU, {}), ("rnn", torch.nn.RNN, {}),
    ("rnn", torch.nn.RNN, {"activation": "relu"}),
])
def test_same_numbers_as_torch_modules(cell, torch_cls, kw):
    torch.manual_seed(3)
    ours = RNN(cell, I, H, num_layers=2, bidirectional=True, return_state=True, **kw)
    ref_kw = {"nonlinearity": kw["activation"]} if kw else {}
    ref = torch_cls(I, H, num_layers=2, bidirectional=True, batch_first=True, **ref_kw)
    sd = {}
    for layer, d in itertools.product(range(2), range(2)):
        c = ours.cells[layer * 2 + d]
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            sd[f"{name}_l{layer}{'_reverse' if d else ''}"] = getattr(c, name)
    ref.load_state_dict(sd)
    x = torch.randn(B, T, I)
    for fused in ("always", "never"):
        ours.fused = fused
        out, states = ours(x)
        ref_out, ref_h = ref(x)
        assert torch.allclose(out, ref_out, atol=1e-5)
        h_n = ref_h[0] if cell == "lstm" else ref_h
        assert torch.allclose(torch.stack([st[0] for st in states]), h_n, atol=1e-5)


@pytest.mark.parametrize("cell,kw", [("peephole", {}), ("jordan", {}), ("gru", {"reset_after": False}),
                                      ("rnn", {"activation": "hard_sigmoid"})])
def test_cells_without_fused_kernel_take_the_loop(cell, kw):
    layer = RNN(cell, I, H, **kw)
    assert not layer.uses_fused()
    assert layer(torch.randn(B, T, I)).shape == (B, T, layer.output_size)
    layer.fused = "always"
    with pytest.raises(ValueError, match="fused='always': this configuration cannot use the fused kernel"):
        layer(torch.randn(B, T, I))


@pytest.mark.parametrize("cell", ["lstm", "gru", "peephole", "jordan"])
def test_masked_steps_leave_state_untouched(cell):
    torch.manual_seed(4)
    layer = RNN(cell, I, H, return_state=True)
    x = torch.randn(1, T, I)
    mask = torch.tensor([[True, False, True, True, False, False, True]])
    out, states = layer(x, mask=mask)
    # the same sequence with the masked steps removed gives the same final state ...
    _, compact_states = layer(x[:, mask[0]])
    for a, b in zip(states[0], compact_states[0]):
        assert torch.allclose(a, b, atol=1e-6)
    # ... and the masked steps output zeros while the valid steps match the compact run
    assert torch.all(out[0, ~mask[0]] == 0)
    compact_out = layer(x[:, mask[0]])[0]
    assert torch.allclose(out[0, mask[0]], compact_out[0], atol=1e-6)


def test_padding_values_never_change_outputs():
    torch.manual_seed(5)
    layer = RNN("lstm", I, H, bidirectional=True, return_sequences=False)
    x = torch.randn(B, T, I)
    lengths = torch.tensor([T, 2, 5])
    noisy = x.clone()
    for b, n in enumerate(lengths):
        noisy[b, n:] = 1e3                          # garbage in the padding
    for fused in ("always", "never"):
        layer.fused = fused
        assert torch.allclose(layer(x, lengths=lengths), layer(noisy, lengths=lengths), atol=1e-6)


def test_left_and_right_padding_give_the_same_last_output():
    torch.manual_seed(6)
    layer = RNN("gru", I, H, num_layers=2, bidirectional=True, return_sequences=False)
    lengths = torch.tensor([T, 3, 5])
    right = torch.randn(B, T, I)
    left = torch.zeros_like(right)
    for b, n in enumerate(lengths):
        left[b, T - n:] = right[b, :n]
    left_mask = torch.arange(T).unsqueeze(0) >= (T - lengths).unsqueeze(1)
    for fused in ("always", "never"):
        layer.fused = fused
        assert torch.allclose(layer(right, lengths=lengths), layer(left, mask=left_mask), atol=1e-5)


def test_variational_dropout_masks_are_the_same_at_every_step():
    torch.manual_seed(7)
    p = 0.5
    layer = RNN("lstm", I, 64, dropout=p, recurrent_dropout=p)
    layer.variational_kernel = False                # watch the generic loop's steps (the kernel is below)
    cell = layer.cells[0]
    seen_inputs, seen_masks = [], []
    orig_project, orig_step = cell.project_input, cell.step
    cell.project_input = lambda x: (seen_inputs.append(x), orig_project(x))[1]
    cell.step = lambda xp, st, m=None, w=None: (seen_masks.append(m), orig_step(xp, st, m, w))[1]
    layer.train()
    assert not layer.uses_fused()                   # variational recurrent dropout loops
    layer(torch.ones(2, T, I))                      # the same input at every step
    xin = seen_inputs[0]                            # (T, B, I) after input dropout
    assert all(torch.equal(xin[t], xin[0]) for t in range(T))
    assert set(xin.unique().tolist()) <= {0.0, 1 / (1 - p)} and (xin == 0).any()
    assert len(seen_masks) == T and all(m is seen_masks[0] for m in seen_masks)
    m = seen_masks[0]
    assert m.shape == (2, 64) and set(m.unique().tolist()) == {0.0, 2.0}
    assert not torch.equal(m[0], m[1])              # one mask per sequence
    # evaluation mode: no dropout at all, and the fused kernel runs
    layer.eval()
    assert layer.uses_fused()
    assert torch.equal(layer(torch.ones(2, T, I)), layer(torch.ones(2, T, I)))


def kernel_and_loop(layer, x, states, seed=1):
    """Outputs, final states and gradients (weights, x, initial states) with the kernel and the loop."""
    results = []
    for kernel in (True, False):
        layer.variational_kernel = kernel
        torch.manual_seed(seed)                     # the same dropout masks on both paths
        xg = x.clone().requires_grad_()
        h0 = [tuple(s.clone().requires_grad_() for s in st) for st in states]
        out, fin = layer(xg, initial_state=h0)
        loss = (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum()
        loss = loss + sum((s ** 2).sum() for st in fin for s in st)
        grads = torch.autograd.grad(loss, [xg, *[s for st in h0 for s in st], *layer.parameters()])
        results.append([out, *[s for st in fin for s in st], *grads])
    return results


@pytest.fixture(params=["c", "torch"])
def kernel_steps(request, monkeypatch):
    """The kernel's element-wise steps in C (lstm_steps.c, where a compiler builds it) or as torch operations."""
    from rnnkit.nn.lstm_kernel import steps_status
    if request.param == "torch":
        monkeypatch.setenv("RNNKIT_NATIVE", "0")
        assert steps_status() == "turned off by RNNKIT_NATIVE=0"
    elif steps_status() != "C":
        # Only where no C compiler builds lstm_steps.c (then the torch steps, tested above, run instead);
        # CI installs gcc, so there this runs.
        pytest.skip(f"the C steps cannot be built here: {steps_status()}")
    return request.param


@pytest.mark.parametrize("layers,bidir", [(1, False), (2, False), (1, True)])
@pytest.mark.parametrize("batch", [3, 40])          # 40 rows: split across the worker threads
def test_variational_lstm_kernel_equals_the_generic_loop(layers, bidir, batch, kernel_steps):
    torch.manual_seed(0)
    layer = RNN("lstm", I, 16, num_layers=layers, bidirectional=bidir, dropout=0.2, recurrent_dropout=0.4,
                return_state=True).train()
    assert not layer.uses_fused()
    states = [(torch.randn(batch, 16), torch.randn(batch, 16)) for _ in range(layers * (1 + bidir))]
    kernel, loop = kernel_and_loop(layer, torch.randn(batch, T, I), states)
    assert_close_lists(kernel, loop)


def test_variational_lstm_kernel_gives_the_same_numbers_on_one_or_two_threads():
    torch.manual_seed(0)
    layer = RNN("lstm", I, 16, recurrent_dropout=0.3, return_state=True).train()
    x, states = torch.randn(40, T, I), [(torch.randn(40, 16), torch.randn(40, 16))]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)                    # one part
        one = kernel_and_loop(layer, x, states)[0]
        torch.set_num_threads(2)                    # 40 rows in two parts of 20
        two = kernel_and_loop(layer, x, states)[0]
    finally:
        torch.set_num_threads(threads)
    assert_close_lists(one, two)


def test_variational_lstm_kernel_reads_bf16_products_under_bf16_autocast(kernel_steps):
    torch.manual_seed(0)
    layer = RNN("lstm", I, 16, num_layers=2, recurrent_dropout=0.3).train()
    x = torch.randn(4, T, I)
    grads = {}
    for precision in ("fp32", "bf16"):
        layer.zero_grad()
        torch.manual_seed(1)                        # the same masks
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = layer(x)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        grads[precision] = (out.detach(), [p.grad.clone() for p in layer.parameters()])
    (plain, plain_grads), (mixed, mixed_grads) = grads["fp32"], grads["bf16"]
    assert mixed.dtype == torch.float32 and all(g.dtype == torch.float32 for g in mixed_grads)
    # The matrix products read bfloat16 (8 bits of mantissa): close to float32, and not equal to it.
    assert 1e-4 < (mixed - plain).abs().max() < 0.02
    for a, b in zip(mixed_grads, plain_grads):
        assert (a - b).norm() < 0.03 * b.norm()


def test_loading_the_c_steps_leaves_the_process_floating_point_alone():
    """A library built with -ffast-math would switch the process to flushing denormals to zero on load."""
    from rnnkit.nn.lstm_kernel import steps_status
    if steps_status() != "C":
        # Only where no C compiler builds lstm_steps.c (then the torch steps, tested above, run instead);
        # CI installs gcc, so there this runs.
        pytest.skip(f"the C steps cannot be built here: {steps_status()}")
    tiny = 5e-324                                   # the smallest denormal double
    assert tiny * 1.0 > 0 and tiny / 1.0 == tiny
    assert torch.tensor(1e-40) * 1.0 > 0            # a float32 denormal survives too


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_c_steps_give_the_numbers_of_the_torch_steps(bf16, monkeypatch):
    """The two implementations of the kernel's element-wise step: the same outputs and gradients."""
    from rnnkit.nn.lstm_kernel import steps_status
    if steps_status() != "C":
        # Only where no C compiler builds lstm_steps.c (then the torch steps, tested above, run instead);
        # CI installs gcc, so there this runs.
        pytest.skip(f"the C steps cannot be built here: {steps_status()}")
    torch.manual_seed(0)
    layer = RNN("lstm", I, 16, num_layers=2, recurrent_dropout=0.3, return_state=True).train()
    states = [(torch.randn(40, 16), torch.randn(40, 16)) for _ in range(2)]
    x = torch.randn(40, T, I)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        in_c = kernel_and_loop(layer, x, states)[0]
        monkeypatch.setenv("RNNKIT_NATIVE", "0")
        in_torch = kernel_and_loop(layer, x, states)[0]
    if not bf16:
        assert_close_lists(in_c, in_torch)
    else:   # a last-bit difference of float32 can round an operand to the next bfloat16 value
        assert all((a - b).norm() <= 0.01 * b.norm() for a, b in zip(in_c, in_torch))


def test_variational_lstm_kernel_gradcheck_float64():
    from rnnkit.nn.lstm_kernel import lstm_sequence
    torch.manual_seed(0)
    Tn, Bn, In, Hn = 4, 3, 3, 2
    f64 = dict(dtype=torch.float64, requires_grad=True)
    x, w, b = torch.randn(Tn, Bn, In, **f64), torch.randn(4 * Hn, In, **f64), torch.randn(4 * Hn, **f64)
    h0, c0 = torch.randn(Bn, Hn, **f64), torch.randn(Bn, Hn, **f64)
    u = torch.randn(4 * Hn, Hn, **f64)
    mask = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 2.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda *a: lstm_sequence(*a, mask=mask), (x, w, b, h0, c0, u))


def test_variational_lstm_kernel_is_an_lstm_in_its_gate_order():
    from rnnkit.nn.lstm_kernel import gate_order, lstm_sequence
    torch.manual_seed(0)
    cell = torch.nn.LSTMCell(3, 4)
    x, h, c = torch.randn(5, 2, 3), torch.randn(2, 4), torch.randn(2, 4)
    mask = torch.tensor([[2.0, 0.0, 2.0, 2.0], [0.0, 2.0, 2.0, 0.0]])
    order = gate_order(4)
    assert order.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11]
    with torch.no_grad():
        hs, h_last, c_last = lstm_sequence(x, cell.weight_ih[order], (cell.bias_ih + cell.bias_hh)[order], h, c,
                                           cell.weight_hh[order], mask)
        want = []
        for t in range(5):                          # torch's own cell, fed the masked state
            h, c = cell(x[t], (h * mask, c))
            want.append(h)
    assert torch.allclose(hs, torch.stack(want), atol=1e-6)
    assert torch.allclose(h_last, h, atol=1e-6) and torch.allclose(c_last, c, atol=1e-6)


def test_weight_drop_keeps_the_fused_kernel_without_warnings():
    torch.manual_seed(8)
    layer = RNN("lstm", I, H, num_layers=2, recurrent_dropout=0.5, recurrent_dropout_mode="weight_drop")
    layer.train()
    assert layer.uses_fused()
    x = torch.randn(B, T, I)
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # any warning fails the test
        torch.manual_seed(9)
        a = layer(x)
        a.sum().backward()
    # the same DropConnect mask through the loop path gives the same numbers
    layer.fused = "never"
    torch.manual_seed(9)
    b = layer(x)
    assert torch.allclose(a, b, atol=1e-5)
    # the mask is a weight mask: zeros in weight_hh's gradient where the weight was dropped
    g = layer.cells[0].weight_hh.grad
    assert (g == 0).float().mean() > 0.3
    # a different call draws a different mask
    layer.fused = "always"
    assert not torch.allclose(layer(x), a)


def test_stateful_chunks_equal_one_long_sequence_and_detach():
    torch.manual_seed(10)
    x = torch.randn(2, 12, I)
    full = RNN("lstm", I, H, num_layers=2)
    chunked = RNN("lstm", I, H, num_layers=2, stateful=True)
    chunked.load_state_dict(full.state_dict())
    expect = full(x)
    parts = [chunked(x[:, k:k + 4]) for k in range(0, 12, 4)]
    assert torch.allclose(torch.cat(parts, dim=1), expect, atol=1e-5)
    # the carried state is detached: gradients stop at the chunk boundary (truncated BPTT)
    assert all(s.grad_fn is None and not s.requires_grad for st in chunked._carried for s in st)
    chunked.reset_state()
    assert torch.allclose(chunked(x[:, :4]), expect[:, :4], atol=1e-6)
    with pytest.raises(ValueError, match="carried state has batch size 2 but this batch has 3"):
        chunked(torch.randn(3, 4, I))


def test_initial_state_is_used_and_checked():
    torch.manual_seed(11)
    layer = RNN("lstm", I, H, return_state=True)
    x = torch.randn(B, T, I)
    h0, c0 = torch.randn(B, H), torch.randn(B, H)
    out_a, _ = layer(x, initial_state=(h0, c0))
    out_b, _ = layer(x)
    assert not torch.allclose(out_a, out_b)
    ref = torch.nn.LSTM(I, H, batch_first=True)
    ref.load_state_dict({k + "_l0": v for k, v in layer.cells[0].state_dict().items()})
    assert torch.allclose(out_a, ref(x, (h0[None], c0[None]))[0], atol=1e-5)
    with pytest.raises(ValueError, match=r"initial_state\[0\]=\[\(3, 5\)\]: expected shapes \[\(3, 5\), \(3, 5\)\]"):
        layer(x, initial_state=[(h0,)])
    with pytest.raises(ValueError, match=r"expected 1 \(one per layer and direction"):
        layer(x, initial_state=[(h0, c0), (h0, c0)])


def test_return_shapes():
    x = torch.randn(B, T, I)
    assert RNN("gru", I, H)(x).shape == (B, T, H)
    assert RNN("gru", I, H, return_sequences=False)(x).shape == (B, H)
    assert RNN("gru", I, H, bidirectional=True)(x).shape == (B, T, 2 * H)
    tm = RNN("gru", I, H, batch_first=False)
    assert tm(x.transpose(0, 1)).shape == (T, B, H)
    out, states = RNN("lstm", I, H, num_layers=3, bidirectional=True, return_state=True)(x)
    assert len(states) == 6 and all(len(st) == 2 for st in states)


def test_layer_argument_errors():
    with pytest.raises(ValueError, match=r"num_layers=0: expected an integer >= 1"):
        RNN("lstm", I, H, num_layers=0)
    with pytest.raises(ValueError, match=r"merge_mode='max': expected one of 'concat', 'sum', 'mul', 'ave'"):
        RNN("lstm", I, H, bidirectional=True, merge_mode="max")
    with pytest.raises(ValueError, match=r"dropout=1.0: expected a number in \[0.0, 1.0\)"):
        RNN("lstm", I, H, dropout=1.0)
    with pytest.raises(ValueError, match=r"recurrent_dropout_mode='zoneout': expected one of"):
        RNN("lstm", I, H, recurrent_dropout=0.1, recurrent_dropout_mode="zoneout")
    layer = RNN("lstm", I, H)
    x = torch.randn(B, T, I)
    with pytest.raises(ValueError, match=r"lengths=\[7, 9, 1\]: expected lengths between 0 and the sequence length 7"):
        layer(x, lengths=[7, 9, 1])
    with pytest.raises(ValueError, match=r"lengths=\(2,\): expected shape \(3,\)"):
        layer(x, lengths=[7, 9])
    with pytest.raises(ValueError, match=r"mask=\(3, 6\): expected shape \(3, 7\)"):
        layer(x, mask=torch.ones(3, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"x=\(3, 7, 2\): expected last dimension 4 \(input_size\)"):
        layer(torch.randn(B, T, 2))
    with pytest.raises(ValueError, match="pass one of them, not both"):
        layer(x, lengths=[7, 7, 7], mask=torch.ones(B, T))


def test_zero_length_sequences_keep_the_initial_state():
    torch.manual_seed(12)
    layer = RNN("lstm", I, H, return_state=True)
    x = torch.randn(B, T, I)
    out, states = layer(x, lengths=torch.tensor([T, 0, 3]))
    assert torch.all(out[1] == 0)
    assert torch.all(states[0][0][1] == 0) and torch.all(states[0][1][1] == 0)


@pytest.mark.parametrize("fused", ["always", "never"])
def test_layer_gradcheck_float64_with_lengths(fused):
    torch.manual_seed(13)
    layer = RNN("gru", 3, 4, bidirectional=True, fused=fused).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: layer(x, lengths=torch.tensor([5, 2])), (x,))


# -- the two hooks for cells to come: a whole-sequence scan, and a context at every step -------------

class AdditiveCell(Cell):
    """h_t = h_{t-1} + W x_t: linear in the state, so the whole sequence is a cumulative sum."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self._init_weights(input_size, hidden_size, bias=True)
        self.scans = 0

    def step(self, xp, state, h_mask=None, weight_hh=None):
        h = state[0] + xp
        return h, (h,)

    def scan(self, xp, state, mask):                                # xp (T, B, H)
        self.scans += 1
        if mask is not None:
            xp = xp * mask.unsqueeze(-1)                            # a padded step adds nothing ...
        hs = state[0].unsqueeze(0) + xp.cumsum(0)                   # (T, B, H)
        out = hs if mask is None else hs * mask.unsqueeze(-1)       # ... and outputs zeros
        return out, (hs[-1],)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [None, [5, 3, 1]])
def test_a_cell_with_scan_runs_it_and_matches_the_loop(bidirectional, lengths):
    torch.manual_seed(0)
    rnn = RNN(AdditiveCell, input_size=4, hidden_size=3, num_layers=2, bidirectional=bidirectional,
              return_state=True)
    x = torch.randn(3, 5, 4)
    out, finals = rnn(x, lengths=lengths)
    assert all(c.scans == 1 for c in rnn.cells)                    # one scan per cell, no loop
    for c in rnn.cells:
        c.scan = None                                               # the same cells through the loop
    ref, ref_finals = rnn(x, lengths=lengths)
    torch.testing.assert_close(out, ref)
    for a, b in zip(finals, ref_finals):
        torch.testing.assert_close(a[0], b[0])


class ContextCell(Cell):
    """A toy attention-style cell: h_t = tanh(W x_t + U h_{t-1} + mean over the context's positions)."""

    takes_context = True

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self._init_weights(input_size, hidden_size, bias=True)

    def step(self, xp, state, h_mask=None, weight_hh=None, context=None):
        h = torch.tanh(xp + self.recurrent(state[0]) + context.mean(1))   # context (B, S, H)
        return h, (h,)


def test_a_context_reaches_every_step_of_a_cell_that_takes_one():
    torch.manual_seed(0)
    rnn = RNN(ContextCell, input_size=2, hidden_size=3)
    x, memory = torch.randn(4, 6, 2), torch.randn(4, 7, 3)        # memory: (B, S, H), e.g. encoder outputs
    out = rnn(x, context=memory)
    cell, h = rnn.cells[0], torch.zeros(4, 3)
    for t in range(6):                                              # the same by hand
        h = torch.tanh(cell.project_input(x[:, t]) + cell.recurrent(h) + memory.mean(1))
        torch.testing.assert_close(out[:, t], h)
    torch.testing.assert_close(cell(x[:, 0], context=memory)[0], out[:, 0])
    with pytest.raises(ValueError, match=r"context='Tensor': expected cells that take a context "
                                         r"\(takes_context=True\); LSTMCell does not"):
        RNN("lstm", input_size=2, hidden_size=3)(x, context=memory)
