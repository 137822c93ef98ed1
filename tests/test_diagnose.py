"""rnnkit diagnose gradients: the gradient-through-time curve and the Jacobian norm against hand-computed values,
the adding problem, and the command end to end (a dry run)."""

import math

import pytest
import torch

from rnnkit.cli import main
from rnnkit.diagnose.config import GradientsConfig
from rnnkit.diagnose.gradients import gradient_through_time, jacobian_norm, summary
from rnnkit.diagnose.tasks import BASELINE_MSE, MemoryModel, adding_problem
from rnnkit.nn.layers import RNN


def linear_rnn_model(H: int, U: torch.Tensor) -> MemoryModel:
    """A MemoryModel whose cell is h_t = U h_{t-1} + W x_t (no activation, no bias): its Jacobian is U."""
    model = MemoryModel("rnn", H)
    model.rnn = RNN("rnn", 2, H, activation="linear", bias=False, return_sequences=False)
    with torch.no_grad():
        model.rnn.cells[0].weight_hh.copy_(U)
    return model


def test_the_gradient_k_steps_back_is_the_jacobian_power_times_the_last_one():
    torch.manual_seed(0)
    H, T, a = 6, 15, 0.8
    Q = torch.linalg.qr(torch.randn(H, H))[0]
    model = linear_rnn_model(H, a * Q)                             # every singular value of U is a
    x, y = adding_problem(5, T, torch.Generator().manual_seed(1))
    curve = gradient_through_time(model, x, y)
    assert curve.shape == (T,)
    # ∂L/∂h_{T-k} = (Uᵀ)^k ∂L/∂h_T, and an orthogonal Q keeps norms: exactly a^k of the last step's, per sequence
    torch.testing.assert_close(curve, curve[0] * a ** torch.arange(T, dtype=curve.dtype), rtol=1e-4, atol=0)
    assert jacobian_norm(model, x) == pytest.approx(a, rel=1e-5)


def test_mingru_jacobian_is_the_diagonal_one_minus_z():
    torch.manual_seed(1)
    model = MemoryModel("mingru", 4)
    x, _ = adding_problem(3, 7, torch.Generator().manual_seed(2))
    cell = model.rnn.cells[0]
    with torch.no_grad():
        z = torch.sigmoid(cell.project_input(x)[..., :4])          # (B, T, H): the update gate
    # ∂h_t/∂h_{t-1} = diag(1 - z_t): its spectral norm is max(1 - z_t); the median over every (sequence, step)
    expected = (1 - z).amax(-1).flatten().median().item()
    assert jacobian_norm(model, x, pairs=21) == pytest.approx(expected, rel=1e-5)


def test_the_adding_problem_marks_one_value_in_each_half():
    x, y = adding_problem(200, 20, torch.Generator().manual_seed(3))
    markers = x[..., 1]
    assert bool((markers.sum(1) == 2).all())
    assert bool((markers[:, :10].sum(1) == 1).all()) and bool((markers[:, 10:].sum(1) == 1).all())
    torch.testing.assert_close(y, (x[..., 0] * markers).sum(1))
    # predicting 1 always: the variance of a sum of two U(0, 1) values
    assert ((y - 1) ** 2).mean().item() == pytest.approx(BASELINE_MSE, abs=0.03)


def test_the_summary_says_what_the_numbers_show():
    cfg = GradientsConfig(cell=["rnn", "lstm"], seq_len=11)
    flat, vanishing = [1.0] * 11, [0.1 ** k for k in range(11)]
    result = {"config": cfg, "cells": {
        "rnn": {"before": vanishing, "after": vanishing, "jacobian": [(0, 0.5), (10, 1.2)], "mse_after": 0.17,
                "steps": 10},
        "lstm": {"before": vanishing, "after": flat, "jacobian": [(0, 0.9), (10, 1.0)], "mse_after": 0.001,
                 "steps": 10}}}
    text = summary(result)
    assert "- rnn: after training the gradient vanishes over 10 steps (1e-10 of it left); the model did not learn" \
        in text
    assert "- lstm: after training the gradient survives over 10 steps (1e+00 of it left); the model learned" in text
    assert "lstm keeps 1e+10x more of the gradient than the plain RNN 10 steps back" in text
    assert "the rnn's median Jacobian norm ends above 1 and its gradient still vanishes" in text
    row = next(line for line in text.splitlines() if line.startswith("rnn "))
    assert row.split()[1:4] == ["1.0e-10", "1.0e-10", f"{math.pow(1e-10, 1 / 10):.3f}"]


def test_the_command_writes_the_plot_and_the_table(tmp_path, capsys):
    out = tmp_path / "images" / "gradients.png"
    code = main(["diagnose", "gradients", "--cell", "rnn", "mingru", "-o", str(out), "--dry-run", "--threads", "1"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [line.split() for line in text.splitlines() if line.split()[:1] in (["rnn"], ["mingru"])]
    assert [r[0] for r in rows] == ["rnn", "mingru"]
    assert all(0 < float(r[1]) < 10 and 0 < float(r[4]) for r in rows)   # shares of the gradient, Jacobian norms
    assert f"wrote {out}" in text


def test_a_missing_run_is_one_line_before_any_training(tmp_path, capsys):
    code = main(["diagnose", "gradients", str(tmp_path / "none"), "--dry-run", "-o", str(tmp_path / "g.png")])
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("rnnkit: using ")]
    assert code == 2
    assert err == [f"rnnkit: error: {tmp_path / 'none'}: no such run directory"]
    assert not (tmp_path / "g.png").exists()
