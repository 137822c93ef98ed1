"""The Trainer: numbers and behaviour on tiny models (regression, a GRU with carried state)."""

import errno
import hashlib
import json
import math
import os
import random
import re
import sys
from collections import namedtuple

import numpy as np
import pytest
import torch
from torch import nn

from rnnkit.runs.checkpoint import STATE_JSON, RunDir
from rnnkit.runs.io import read_json
from rnnkit.training.trainer import TrainConfig, Trainer, detach_state, lr_at, seed_everything

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- tiny problems -------------------------------------------------------------------------------------------

def regression_problem(n=64, batch=8):
    """y = x @ w + 0.1 noise; batches reshuffled per epoch by a generator seeded from the epoch."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)

    def train_batches(epoch):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(1000 + epoch))
        return [(x[perm[i:i + batch]], y[perm[i:i + batch]]) for i in range(0, n, batch)]

    def compute_loss(model, b, state):
        xb, yb = b
        return nn.functional.mse_loss(model(xb), yb), None, len(xb)

    def evaluate(model):
        return {"val_loss": nn.functional.mse_loss(model(x), y)}

    return train_batches, compute_loss, evaluate


def mlp(seed=0):
    torch.manual_seed(seed)
    # Dropout draws from the global torch RNG: resume must restore it to give the same bits.
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 1))


class TinyGRU(nn.Module):
    def __init__(self, rnn=nn.GRU):
        super().__init__()
        self.gru = rnn(2, 5, batch_first=True)
        self.head = nn.Linear(5, 1)

    def forward(self, x, h=None):
        out, h = self.gru(x, h)        # (B, T, H), (1, B, H)
        return self.head(out), h


def gru_problem(n_batches=6, batch=2, steps=4):
    """A long series cut into consecutive windows: the state of one window starts the next (stateful)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, n_batches * steps, 2, generator=g)
    y = x.cumsum(1)[..., :1] * 0.1   # depends on the whole past: carried state helps

    def train_batches(epoch):
        return [(x[:, i * steps:(i + 1) * steps], y[:, i * steps:(i + 1) * steps]) for i in range(n_batches)]

    def compute_loss(model, b, state):
        xb, yb = b
        pred, h = model(xb, state)
        return nn.functional.mse_loss(pred, yb), h, xb.shape[0] * xb.shape[1]

    return train_batches, compute_loss


def saved_state(run_dir):
    """The trainer part of the training state in a run directory's current checkpoint (as JSON)."""
    return read_json(RunDir(run_dir).checkpoint_path(STATE_JSON))["tree"]["trainer"]


def params_of(model):
    return [p.detach().clone() for p in model.parameters()]


def assert_same_params(a, b):
    assert len(a) == len(b), f"{len(a)} tensors against {len(b)}"
    for x, y in zip(a, b):
        assert torch.equal(x, y), (x - y).abs().max()


# -- config and small helpers ------------------------------------------------------------------------------------

def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"lr=0: expected a number in \(0, 100.0\]"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match=r"optimizer='lbfgs': expected one of 'adam', 'adamw', 'rmsprop', 'sgd'"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match=r"clip_grad_norm=-1: expected a number in \(0, 1000000.0\]"):
        TrainConfig(clip_grad_norm=-1)
    with pytest.raises(ValueError, match=r"early_stop_patience=0: expected an integer >= 1"):
        TrainConfig(early_stop_patience=0)
    with pytest.raises(ValueError, match=r"ema_decay=1.0: expected a number in \(0, 1\)"):
        TrainConfig(ema_decay=1.0)
    assert TrainConfig(clip_grad_norm=None, max_minutes=None).clip_grad_norm is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_device_without_cuda():
    with pytest.raises(ValueError, match=r"device='cuda': expected 'auto' or 'cpu' \(CUDA is not available"):
        Trainer(nn.Linear(1, 1), TrainConfig(device="cuda"))


def test_lr_schedule_values():
    cfg = TrainConfig(lr=1.0, schedule="cosine", warmup_steps=10, min_lr=0.1)
    # Warmup: linear, reaching lr at step warmup_steps - 1.
    assert lr_at(cfg, 0, 110) == pytest.approx(0.1)
    assert lr_at(cfg, 4, 110) == pytest.approx(0.5)
    assert lr_at(cfg, 9, 110) == pytest.approx(1.0)
    # Cosine from lr at step 10 to min_lr at step 110: halfway (step 60) is the mean of the two.
    assert lr_at(cfg, 10, 110) == pytest.approx(1.0)
    assert lr_at(cfg, 35, 110) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at(cfg, 60, 110) == pytest.approx(0.55)
    assert lr_at(cfg, 110, 110) == pytest.approx(0.1)
    assert lr_at(cfg, 500, 110) == pytest.approx(0.1)
    assert lr_at(TrainConfig(lr=0.3), 1000) == 0.3
    with pytest.raises(ValueError, match=r"schedule='cosine': expected a known number of steps"):
        lr_at(cfg, 20, None)


def test_seed_everything_repeats_all_generators():
    seed_everything(5)
    a = (random.random(), np.random.rand(), torch.rand(2))
    seed_everything(5)
    b = (random.random(), np.random.rand(), torch.rand(2))
    assert a[:2] == b[:2] and torch.equal(a[2], b[2])


def test_detach_state_nested_structures():
    Pair = namedtuple("Pair", "h c")
    w = torch.ones(2, requires_grad=True)
    state = {"lstm": Pair(w * 2, w * 3), "layers": [(w * 4,), None], "n": 3}
    out = detach_state(state)
    assert isinstance(out["lstm"], Pair) and isinstance(out["layers"][0], tuple) and out["n"] == 3
    for t in (out["lstm"].h, out["lstm"].c, out["layers"][0][0]):
        assert not t.requires_grad and t.grad_fn is None
    assert torch.equal(out["lstm"].c, torch.full((2,), 3.0))


# -- training behaviour --------------------------------------------------------------------------------------

def test_loss_decreases_on_a_learnable_problem():
    train_batches, compute_loss, evaluate = regression_problem()
    model = mlp()
    before = evaluate(model)["val_loss"].item()
    trainer = Trainer(model, TrainConfig(epochs=15, lr=0.02, log_every=4), progress=False)
    trainer.fit(train_batches, compute_loss, evaluate)
    epochs = [r for r in trainer.history if r["event"] == "epoch"]
    assert len(epochs) == 15 and trainer.stop_reason == "epochs" and trainer.step == 15 * 8
    assert epochs[-1]["val_loss"] < 0.1 * before
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert trainer.best == min(r["val_loss"] for r in epochs)


@pytest.mark.parametrize("clip, expected", [(0.5, [0.3, 0.4]), (None, [6.0, 8.0])])
def test_gradient_clipping_hand_checked(clip, expected):
    # loss = (w . x - y)^2 with w = 0, x = (3, 4), y = 1: grad = 2 (0 - 1) x = (-6, -8), norm 10.
    # Clipped to 0.5 the gradient is (-0.3, -0.4); one SGD step with lr 1 moves w to (0.3, 0.4).
    model = nn.Linear(2, 1, bias=False)
    nn.init.zeros_(model.weight)
    batch = (torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0]]))
    seen = []
    cfg = TrainConfig(epochs=1, optimizer="sgd", momentum=0.0, lr=1.0, clip_grad_norm=clip, log_every=1)
    trainer = Trainer(model, cfg, progress=False,
                      callbacks={"on_step_end": lambda t: seen.append(model.weight.grad.norm().item())})
    trainer.fit([batch], lambda m, b, s: (((m(b[0]) - b[1]) ** 2).sum(), None, 1))
    assert model.weight.detach().squeeze().tolist() == pytest.approx(expected)
    assert seen == [pytest.approx(0.5 if clip else 10.0)]
    if clip:
        assert trainer.history[0]["grad_norm"] == pytest.approx(10.0)  # logged: the norm before clipping


def test_clipping_is_counted_per_log_window_and_per_epoch(tmp_path):
    # loss = (w . x - y)^2 with w = 0, y = 1: the gradient norm is 2 |x| at the first step. Batches with
    # |x| = 5, 0.05, 5, 0.05 under SGD with lr 1e-12 (w stays 0): norms 10, 0.1, 10, 0.1; clipping at 1 clips two.
    model = nn.Linear(2, 1, bias=False)
    nn.init.zeros_(model.weight)
    xs = [[3.0, 4.0], [0.03, 0.04]] * 2
    batches = [(torch.tensor([x]), torch.tensor([[1.0]])) for x in xs]
    cfg = TrainConfig(epochs=2, optimizer="sgd", momentum=0.0, lr=1e-12, clip_grad_norm=1.0, log_every=2)
    trainer = Trainer(model, cfg, tmp_path / "run", progress=False)
    trainer.fit(batches, lambda m, b, s: (((m(b[0]) - b[1]) ** 2).sum(), None, 1))
    train = [r for r in trainer.history if r["event"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6, 8]
    for r in train:
        assert (r["grad_norm"], r["grad_norm_mean"], r["grad_norm_max"], r["clipped_share"]) == pytest.approx(
            (0.1, 5.05, 10.0, 0.5))
    epochs = [r for r in trainer.history if r["event"] == "epoch"]
    assert [r["clipped_share"] for r in epochs] == [0.5, 0.5]
    assert trainer.end_report() == ["--clip-grad-norm 1 clipped the gradient in 50% of the last epoch's steps: the "
                                    "threshold, more than --lr, set the step size (metrics.jsonl holds the norms)"]
    # Saved with the position: a resumed run counts on from the same sums.
    from rnnkit.runs.checkpoint import RunDir
    state = RunDir(tmp_path / "run").load_checkpoint(nn.Linear(2, 1, bias=False), None)
    assert float(state["epoch_clipped"]) == 0.0 and state["window_grad"].tolist() == [0.0, 0.0, 0.0]


def test_carried_state_is_detached_and_continues_from_the_previous_batch():
    train_batches, compute_loss = gru_problem()
    seen = []   # (state passed in, final state returned) per call

    def spy(model, batch, state):
        loss, h, n = compute_loss(model, batch, state)
        seen.append((state, h.detach().clone()))
        return loss, h, n

    torch.manual_seed(0)
    trainer = Trainer(TinyGRU(), TrainConfig(epochs=2, lr=0.01), progress=False)
    trainer.fit(train_batches, spy)
    assert len(seen) == 12
    assert seen[0][0] is None and seen[6][0] is None   # each epoch starts without state
    for i in list(range(1, 6)) + list(range(7, 12)):
        state, previous_final = seen[i][0], seen[i - 1][1]
        assert not state.requires_grad and state.grad_fn is None
        assert torch.equal(state, previous_final)


def test_bf16_precision_runs_the_forward_in_bfloat16_and_keeps_weights_and_state_float32(tmp_path):
    train_batches, compute_loss = gru_problem()
    seen = []

    def spy(model, batch, state):
        loss, h, n = compute_loss(model, batch, state)
        pred = model.head(batch[0][:, :, :1].expand(-1, -1, 5))          # a linear layer in this context
        seen.append((torch.is_autocast_enabled("cpu"), pred.dtype, h[0].dtype,
                     None if state is None else {s.dtype for s in state}))
        return loss, h, n

    torch.manual_seed(0)
    # An LSTM: under autocast torch runs it (oneDNN's kernel) in bfloat16, its states included.
    trainer = Trainer(TinyGRU(nn.LSTM), TrainConfig(epochs=1, lr=0.01, precision="bf16"), run_dir=tmp_path,
                      progress=False)
    assert trainer.precision == "bf16"
    before = trainer.model.head.weight.detach().clone()
    trainer.fit(train_batches, spy)
    assert all(autocast for autocast, _, _, _ in seen)
    assert seen[0][1] == seen[0][2] == torch.bfloat16       # matrix products and the LSTM run in bfloat16 ...
    assert all(carried == {torch.float32} for _, _, _, carried in seen[1:])   # ... the carried state is float32
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert not torch.equal(before, trainer.model.head.weight)  # it trained
    fp32 = Trainer(TinyGRU(), TrainConfig(epochs=1, precision="fp32"), progress=False)
    with fp32.autocast():
        assert fp32.model.head(torch.ones(1, 5)).dtype == torch.float32
    with pytest.raises(ValueError, match=r"precision='fp16': expected one of 'auto', 'fp32', 'bf16'"):
        TrainConfig(precision="fp16")


def test_auto_precision_follows_the_hardware(monkeypatch):
    from rnnkit.training import trainer as train
    monkeypatch.setattr(train, "fast_bf16", lambda device: True)
    assert train.resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(train, "fast_bf16", lambda device: False)
    assert train.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert train.resolve_precision("bf16", torch.device("cpu")) == "bf16"   # asked for: given, even if slow


def test_early_stopping_stops_at_the_right_epoch(tmp_path):
    train_batches, compute_loss, _ = regression_problem()
    values = iter([3.0, 2.0, 2.5, 2.2, 1.0, 0.5])  # improves at epochs 0, 1; not at 2, 3 -> stop after 3
    snapshots = {}
    model = mlp()
    trainer = Trainer(model, TrainConfig(epochs=10, early_stop_patience=2), tmp_path, progress=False)
    trainer.fit(train_batches, compute_loss, evaluate=lambda m: {"val_loss": next(values)},
                on_epoch_end=lambda t, epoch, metrics: snapshots.setdefault(epoch, params_of(t.model)))
    assert trainer.stop_reason == "early_stop"
    assert trainer.epoch == 4 and sorted(snapshots) == [0, 1, 2, 3]
    assert trainer.best == 2.0 and trainer.best_epoch == 1
    best = RunDir(tmp_path).load_weights(best=True)
    assert_same_params([best[k] for k in model.state_dict()], snapshots[1])
    assert [r["best"] for r in trainer.history if r["event"] == "epoch"] == [True, True, False, False]


def test_early_stopping_and_the_kept_weights_are_said_in_words(tmp_path):
    train_batches, compute_loss, _ = regression_problem()
    values = iter([3.0, 2.0, 2.5, 2.2])
    # (No clipping: its line is tested on its own.)
    trainer = Trainer(mlp(), TrainConfig(epochs=10, early_stop_patience=2, clip_grad_norm=None), tmp_path,
                      progress=False)
    trainer.fit(train_batches, compute_loss, evaluate=lambda m: {"val_loss": next(values)})
    assert trainer.end_report() == [
        "stopped early after epoch 4: val_loss had not improved for 2 epochs (--early-stop-patience 2)",
        "kept the weights of epoch 2 (val_loss 2), the best; the last epoch's val_loss was 2.2"]
    assert not trainer.still_improving


@pytest.mark.parametrize("budget, flag", [({"epochs": 3}, "--epochs 3"), ({"max_steps": 20}, "--max-steps 20")])
def test_a_budget_that_ends_while_validation_improves_says_what_to_raise(budget, flag):
    train_batches, compute_loss, _ = regression_problem()       # 8 batches an epoch
    values = iter([3.0, 2.0, 1.0, 0.5])                         # better at every evaluation
    trainer = Trainer(mlp(), TrainConfig(**{"epochs": 10, "clip_grad_norm": None, **budget}), progress=False)
    trainer.fit(train_batches, compute_loss, evaluate=lambda m: {"val_loss": next(values)})
    assert trainer.still_improving
    assert trainer.end_report() == [f"val_loss was still improving when {flag} ended (its best was the last "
                                    f"evaluation, {trainer.best:.4g}): a larger {flag.split()[0]} may do better"]
    # Getting worse at the end is not "still improving", and says nothing of the sort.
    values = iter([3.0, 2.0, 2.5])
    trainer = Trainer(mlp(), TrainConfig(epochs=3), progress=False)
    trainer.fit(train_batches, compute_loss, evaluate=lambda m: {"val_loss": next(values)})
    assert not trainer.still_improving and not any("improving" in line for line in trainer.end_report())


def test_min_steps_trains_on_past_the_epochs_of_a_tiny_set(tmp_path):
    train_batches, compute_loss, evaluate = regression_problem(n=16, batch=8)    # 2 batches an epoch
    trainer = Trainer(mlp(), TrainConfig(epochs=1, min_steps=7), tmp_path, progress=False)
    trainer.fit(train_batches, compute_loss, evaluate)
    # ceil(7 / 2) = 4 whole epochs: the minimum holds however small the data, in whole epochs.
    assert (trainer.step, trainer.epoch, trainer.stop_reason) == (8, 4, "epochs")
    # Early stopping waits for min_steps too: a metric that never improves after the first epoch.
    values = iter([1.0] + [2.0] * 20)
    trainer = Trainer(mlp(), TrainConfig(epochs=50, min_steps=10, early_stop_patience=1), progress=False)
    trainer.fit(train_batches, compute_loss, evaluate=lambda m: {"val_loss": next(values)})
    assert (trainer.stop_reason, trainer.step) == ("early_stop", 10)
    assert trainer._epoch_label(5) == "epoch 6/50"
    assert Trainer(mlp(), TrainConfig(epochs=1, min_steps=7), progress=False)._epoch_label(2) == \
        "epoch 3 (past --epochs 1 until --min-steps 7)"


@pytest.mark.parametrize("n, auto, expected", [(50, True, 8), (270, True, 34), (25_000, True, 64), (3, True, 8),
                                               (50, False, 64)])
def test_auto_batch_gives_a_small_set_enough_updates_an_epoch(n, auto, expected):
    config = TrainConfig(batch_size=64, auto_batch=auto)
    assert config.batch_for(n) == expected
    if auto and n >= 64:
        assert -(-n // config.batch_for(n)) >= 8      # at least 8 updates an epoch


def test_monitor_must_be_a_key_of_the_evaluation():
    train_batches, compute_loss, _ = regression_problem()
    trainer = Trainer(mlp(), TrainConfig(epochs=1, monitor="val_acc"), progress=False)
    with pytest.raises(ValueError, match=r"monitor='val_acc': expected a key of the metrics that evaluate "
                                         r"returns: 'train_loss', 'val_loss'"):
        trainer.fit(train_batches, compute_loss, lambda m: {"val_loss": 1.0})


def test_run_dir_files_metrics_and_plot(tmp_path):
    train_batches, compute_loss, evaluate = regression_problem()
    logs = []
    trainer = Trainer(mlp(), TrainConfig(epochs=2, log_every=3), tmp_path / "run", progress=False,
                      callbacks={"on_log": lambda t, record: logs.append(record)})
    trainer.fit(train_batches, compute_loss, evaluate)
    run = RunDir(tmp_path / "run")
    records = run.read_metrics()
    assert records == json.loads(json.dumps(trainer.history))
    train = [r for r in records if r["event"] == "train"]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert [r["step"] for r in train] == [3, 6, 9, 12, 15] and logs == train
    assert [r["epoch"] for r in train] == [0, 0, 1, 1, 1]
    assert [(r["epoch"], r["step"], r["partial"]) for r in epochs] == [(0, 8, False), (1, 16, False)]
    assert set(train[0]) == {"event", "epoch", "step", "loss", "lr", "items_per_s", "elapsed_s", "grad_norm",
                             "grad_norm_mean", "grad_norm_max", "clipped_share"}
    assert set(epochs[0]) == {"event", "epoch", "step", "train_loss", "val_loss", "lr", "best", "partial",
                              "elapsed_s", "precision", "clipped_share"}
    assert epochs[0]["precision"] == "fp32"      # the precision the run actually used is stored
    assert all(r["items_per_s"] > 0 and r["loss"] > 0 for r in train)
    assert run.plot_path.read_bytes()[:8] == PNG_MAGIC
    for name in ("model.safetensors", "best.safetensors", "checkpoint.json"):
        assert (tmp_path / "run" / name).is_file()
    for name in ("model.safetensors", "best.safetensors", "trainer_state.json", "trainer_state.safetensors"):
        assert run.checkpoint_path(name).is_file()
    state = saved_state(tmp_path / "run")
    assert (state["epoch"], state["step"], state["batch_in_epoch"]) == (2, 16, 0)


def test_the_plot_is_redrawn_at_most_every_few_seconds_and_once_at_the_end(tmp_path, monkeypatch):
    # A tiny set ends an epoch every 2 steps; drawing each epoch would cost more than training it.
    from rnnkit.training import trainer as trainer_module
    drawn = []
    monkeypatch.setattr(trainer_module, "plot_history", lambda history, path: drawn.append(len(history)))
    train_batches, compute_loss, evaluate = regression_problem(n=16, batch=8)
    trainer = Trainer(mlp(), TrainConfig(epochs=30, log_every=1000), tmp_path / "run", progress=False)
    trainer.fit(train_batches, compute_loss, evaluate)
    assert len(drawn) < 30 / 2
    assert drawn[-1] == len(trainer.history)     # the last drawing shows every epoch
    monkeypatch.setattr(trainer_module, "PLOT_EVERY_S", 0.0)
    drawn.clear()
    Trainer(mlp(), TrainConfig(epochs=3, log_every=1000), tmp_path / "run2", progress=False).fit(
        train_batches, compute_loss, evaluate)
    assert len(drawn) == 3                       # with no wait: once an epoch, and nothing new to draw at the end


def test_no_host_sync_except_on_logging_steps(monkeypatch):
    # Count reads of tensor values made by the Trainer itself (torch's CPU Adam reads its own step
    # counter, a CPU tensor, which is not a device sync).
    train_batches, compute_loss, _ = regression_problem()
    calls = []

    def counting(real):
        def read(t):
            if sys._getframe(1).f_code.co_filename.endswith("rnnkit/training/trainer.py"):
                calls.append(sys._getframe(1).f_code.co_name)
            return real(t)
        return read

    monkeypatch.setattr(torch.Tensor, "item", counting(torch.Tensor.item))
    monkeypatch.setattr(torch.Tensor, "__float__", counting(torch.Tensor.__float__))
    monkeypatch.setattr(torch.Tensor, "tolist", counting(torch.Tensor.tolist))
    trainer = Trainer(mlp(), TrainConfig(epochs=2, log_every=4), progress=False)
    trainer.fit(train_batches, compute_loss)
    # 16 steps: 4 logging steps (one read: mean loss and the gradient norms), 2 epoch ends (one read: mean loss
    # and steps clipped) and, once, the first step's loss (the yardstick for divergence), read at the first log.
    assert sorted(calls) == ["_evaluate_and_save"] * 2 + ["_log_train"] * 4 + ["_reference_loss"]


def test_nan_loss_is_reported():
    train_batches, compute_loss, _ = regression_problem()
    trainer = Trainer(mlp(), TrainConfig(epochs=1, log_every=2), progress=False)
    with pytest.raises(RuntimeError, match=r"the training loss became nan at step 2"):
        trainer.fit(train_batches, lambda m, b, s: (m(b[0]).sum() * float("nan"), None, 1))


# -- budgets, resume, interrupt ------------------------------------------------------------------------------

def test_resume_gives_the_same_weights_as_a_straight_run(tmp_path):
    train_batches, compute_loss, evaluate = regression_problem()
    # (A cosine schedule spans config.epochs, so a 1-epoch run would have another schedule: the
    # interrupt test below covers cosine with one config throughout.)
    cfg = TrainConfig(epochs=2, lr=0.01, warmup_steps=3, log_every=3)

    straight = Trainer(mlp(), cfg, tmp_path / "a", progress=False)
    straight.fit(train_batches, compute_loss, evaluate)

    first = Trainer(mlp(), TrainConfig(**{**vars(cfg), "epochs": 1}), tmp_path / "b", progress=False)
    first.fit(train_batches, compute_loss, evaluate)
    assert first.epoch == 1 and first.step == 8
    resumed = Trainer(mlp(seed=99), cfg, tmp_path / "b", progress=False)   # other init: all comes from disk
    resumed.fit(train_batches, compute_loss, evaluate, resume=True)

    assert resumed.step == straight.step == 16
    assert_same_params(params_of(resumed.model), params_of(straight.model))
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("elapsed_s", "items_per_s")} for r in rs]
    assert strip(RunDir(tmp_path / "b").read_metrics()) == strip(RunDir(tmp_path / "a").read_metrics())


def test_interrupt_saves_the_exact_position_and_resume_continues(tmp_path, capsys):
    train_batches, compute_loss = gru_problem()
    cfg = TrainConfig(epochs=2, lr=0.01, log_every=2, schedule="cosine", warmup_steps=2, optimizer="adamw",
                      weight_decay=0.01)
    torch.manual_seed(0)
    straight = Trainer(TinyGRU(), cfg, tmp_path / "a", progress=False)
    straight.fit(train_batches, compute_loss)

    calls = {"n": 0}

    def interrupting(model, batch, state):
        calls["n"] += 1
        if calls["n"] == 9:   # step 9 of 12 = batch 2 of epoch 1, with a carried state
            raise KeyboardInterrupt
        return compute_loss(model, batch, state)

    torch.manual_seed(0)
    first = Trainer(TinyGRU(), cfg, tmp_path / "b", progress=False)
    first.fit(train_batches, interrupting)
    assert first.interrupted and first.stop_reason == "interrupted"
    assert "Interrupted in epoch 2/2 after 8 steps; checkpoint saved in" in capsys.readouterr().err
    assert "resume=True" in first.message
    state = saved_state(tmp_path / "b")
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (1, 2, 8)
    assert state["carried_state"] == {"__tensor__": "trainer/carried_state"}

    torch.manual_seed(1)
    resumed = Trainer(TinyGRU(), cfg, tmp_path / "b", progress=False)
    resumed.fit(train_batches, compute_loss, resume=True)
    assert not resumed.interrupted and resumed.step == 12 and resumed.epoch == 2
    assert_same_params(params_of(resumed.model), params_of(straight.model))
    assert resumed.lr == straight.lr == pytest.approx(lr_at(cfg, 11, 12))


def test_max_minutes_stops_after_the_current_step_with_a_checkpoint(tmp_path):
    train_batches, compute_loss, evaluate = regression_problem()
    trainer = Trainer(mlp(), TrainConfig(epochs=2, max_minutes=1e-9), tmp_path, progress=False)
    trainer.fit(train_batches, compute_loss, evaluate)
    assert trainer.stop_reason == "max_minutes" and trainer.step == 1 and trainer.epoch == 0
    epoch_record = trainer.history[-1]
    assert epoch_record["event"] == "epoch" and epoch_record["partial"] and epoch_record["step"] == 1
    state = saved_state(tmp_path)
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (0, 1, 1)
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG_MAGIC

    resumed = Trainer(mlp(), TrainConfig(epochs=2), tmp_path, progress=False)
    resumed.fit(train_batches, compute_loss, evaluate, resume=True)
    assert resumed.stop_reason == "epochs" and resumed.step == 16 and resumed.epoch == 2


def test_time_budget_counts_over_the_whole_run_across_resumes(tmp_path):
    train_batches, compute_loss, evaluate = regression_problem()
    first = Trainer(mlp(), TrainConfig(epochs=50, max_steps=3, lr=0.1), tmp_path, progress=False)
    first.fit(train_batches, compute_loss, evaluate)
    spent = first.train_seconds
    assert spent > 0 and first.history[-1]["elapsed_s"] <= spent

    # A budget already used up: the resumed run takes no step.
    used_up = Trainer(mlp(), TrainConfig(epochs=50, max_steps=10, max_minutes=1.0), tmp_path, progress=False)
    saved = used_up.resume().train_seconds                   # the time written with the last checkpoint
    assert 0 < saved <= spent
    used_up.config.max_minutes = 0.99 * saved / 60
    used_up.fit(train_batches, compute_loss, evaluate)
    assert used_up.stop_reason == "max_minutes" and used_up.step == 3

    # Twice the time spent: the time-based cosine goes on from half-way, not from the peak again.
    lrs = []
    more = Trainer(mlp(), TrainConfig(epochs=50, max_steps=4, lr=0.1, max_minutes=2 * saved / 60,
                                      schedule="cosine_time"), tmp_path, progress=False,
                   callbacks={"on_step_end": lambda t: lrs.append(t.lr)})
    more.fit(train_batches, compute_loss, evaluate, resume=True)
    assert more.step == 4 and len(lrs) == 1
    assert lrs[0] <= 0.1 * 0.5 * (1 + math.cos(math.pi * 0.5)) + 1e-9    # at or past the half-way value
    assert more.train_seconds > saved


def test_max_steps_and_a_finished_run_stay_put(tmp_path):
    train_batches, compute_loss, _ = regression_problem()
    trainer = Trainer(mlp(), TrainConfig(epochs=5, max_steps=3), tmp_path, progress=False)
    trainer.fit(train_batches, compute_loss)
    assert trainer.stop_reason == "max_steps" and trainer.step == 3
    again = Trainer(mlp(), TrainConfig(epochs=5, max_steps=3), tmp_path, progress=False)
    again.fit(train_batches, compute_loss, resume=True)
    assert again.stop_reason == "max_steps" and again.step == 3
    assert_same_params(params_of(again.model), params_of(trainer.model))


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such run directory"):
        Trainer(mlp(), TrainConfig(), tmp_path / "none", progress=False).resume()
    with pytest.raises(ValueError, match=r"run_dir=None: expected a run directory to resume from"):
        Trainer(mlp(), TrainConfig(), progress=False).resume()


def test_resume_drops_metrics_written_after_the_checkpoint(tmp_path):
    train_batches, compute_loss, _ = regression_problem()
    Trainer(mlp(), TrainConfig(epochs=1, log_every=4), tmp_path, progress=False).fit(train_batches, compute_loss)
    run = RunDir(tmp_path)
    run.append_metrics({"event": "train", "epoch": 1, "step": 12, "loss": 1.0})  # as if killed before a save
    trainer = Trainer(mlp(), TrainConfig(epochs=1), tmp_path, progress=False).resume()
    assert [r["step"] for r in run.read_metrics()] == [4, 8, 8]
    assert trainer.history == run.read_metrics()


def test_resume_refuses_data_that_changed(tmp_path):
    train_batches, compute_loss, _ = regression_problem()
    Trainer(mlp(), TrainConfig(epochs=1, max_steps=3), tmp_path, progress=False).fit(train_batches, compute_loss)
    trainer = Trainer(mlp(), TrainConfig(epochs=1), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"train_batches\(0\) gave 2 batches, but the checkpoint had already "
                                         r"trained on 3 of this epoch"):
        trainer.fit(lambda epoch: train_batches(epoch)[:2], compute_loss, resume=True)


def test_interrupt_without_run_dir_returns_with_the_flag(capsys):
    def stop(model, batch, state):
        raise KeyboardInterrupt

    trainer = Trainer(mlp(), TrainConfig(epochs=1), progress=False)
    assert trainer.fit([(torch.zeros(1, 3), torch.zeros(1, 1))], stop) is trainer
    assert trainer.interrupted and trainer.step == 0
    assert "nothing saved (no run_dir)" in capsys.readouterr().err


# -- faults: divergence, signals, a full disk, damaged or older checkpoints ------------------------------------

def test_an_exploding_loss_stops_the_run_naming_the_step(tmp_path):
    train_batches, compute_loss, evaluate = regression_problem()
    calls = {"n": 0}

    def exploding(model, batch, state):
        calls["n"] += 1
        loss, state, n = compute_loss(model, batch, state)
        return loss * (1e8 if calls["n"] > 10 else 1.0), state, n

    trainer = Trainer(mlp(), TrainConfig(epochs=3, log_every=4, lr=0.01), tmp_path, progress=False)
    with pytest.raises(RuntimeError) as err:
        trainer.fit(train_batches, exploding, evaluate)
    first = trainer.first_loss
    assert first > 0
    assert str(err.value).startswith("the training loss became ")
    assert " at step 12, " in str(err.value) and f" times the first step's loss {first:.4g}: training diverged; " \
        "try a lower --lr (now 0.01) or set --clip-grad-norm. The last checkpoint saved before this is kept" \
        in str(err.value)
    assert saved_state(tmp_path)["step"] == 8          # epoch 1's checkpoint: the last sound one


def test_a_loss_gone_bad_between_logs_stops_at_the_epoch_end(tmp_path):
    train_batches, compute_loss, evaluate = regression_problem()
    calls = {"n": 0}

    def bad_once(model, batch, state):
        calls["n"] += 1
        loss, state, n = compute_loss(model, batch, state)
        return (loss * float("nan") if calls["n"] == 11 else loss), state, n

    trainer = Trainer(mlp(), TrainConfig(epochs=2, log_every=100, lr=0.01), tmp_path, progress=False)
    with pytest.raises(RuntimeError, match=r"^the training loss became nan in epoch 2 \(its mean up to step 16\): "
                                           r"training diverged; try a lower --lr \(now 0\.01\) or set "
                                           r"--clip-grad-norm\. The last checkpoint saved before this is kept$"):
        trainer.fit(train_batches, bad_once, evaluate)
    assert saved_state(tmp_path)["step"] == 8


def test_the_first_loss_travels_with_the_checkpoint(tmp_path):
    train_batches, compute_loss, evaluate = regression_problem()
    first = Trainer(mlp(), TrainConfig(epochs=1), tmp_path, progress=False).fit(train_batches, compute_loss)
    resumed = Trainer(mlp(), TrainConfig(epochs=1), tmp_path, progress=False).resume()
    assert resumed.first_loss == first.first_loss == saved_state(tmp_path)["first_loss"] > 0


def test_sigterm_saves_like_ctrl_c_and_ends_the_process(tmp_path, capsys):
    from rnnkit.training.trainer import Terminated
    train_batches, compute_loss = gru_problem()
    cfg = TrainConfig(epochs=2, lr=0.01, log_every=2)
    torch.manual_seed(0)
    straight = Trainer(TinyGRU(), cfg, tmp_path / "a", progress=False).fit(train_batches, compute_loss)
    calls = {"n": 0}

    def terminated(model, batch, state):
        calls["n"] += 1
        if calls["n"] == 9:
            raise Terminated("SIGTERM")
        return compute_loss(model, batch, state)

    torch.manual_seed(0)
    first = Trainer(TinyGRU(), cfg, tmp_path / "b", progress=False)
    with pytest.raises(Terminated):          # raised again after the save: the process is to end
        first.fit(train_batches, terminated)
    assert first.interrupted and first.stop_reason == "interrupted"
    assert f"Terminated (SIGTERM) in epoch 2/2 after 8 steps; checkpoint saved in {tmp_path / 'b'}. Resume with " \
           f"fit(..., resume=True) on a Trainer with this run_dir." in capsys.readouterr().err
    resumed = Trainer(TinyGRU(), cfg, tmp_path / "b", progress=False).fit(train_batches, compute_loss, resume=True)
    assert resumed.step == 12
    assert_same_params(params_of(resumed.model), params_of(straight.model))


def test_a_second_ctrl_c_during_the_ctrl_c_save_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    from rnnkit.runs import io as runio
    train_batches, compute_loss = gru_problem()
    cfg = TrainConfig(epochs=2, lr=0.01, log_every=2)
    torch.manual_seed(0)
    straight = Trainer(TinyGRU(), cfg, tmp_path / "a", progress=False).fit(train_batches, compute_loss)
    for second_at in (1, 3, 6, 9):             # fault points of the save: mid-file, after files, the commit
        calls, faults = {"n": 0}, {"n": 0}

        def interrupting(model, batch, state):
            calls["n"] += 1
            if calls["n"] == 9:
                monkeypatch.setattr(runio, "fault_point", second_ctrl_c)
                raise KeyboardInterrupt
            return compute_loss(model, batch, state)

        def second_ctrl_c():
            faults["n"] += 1
            if faults["n"] == second_at:
                raise KeyboardInterrupt

        run = tmp_path / f"b{second_at}"
        torch.manual_seed(0)
        with pytest.raises(KeyboardInterrupt):
            Trainer(TinyGRU(), cfg, run, progress=False).fit(train_batches, interrupting)
        monkeypatch.undo()
        assert saved_state(run)["step"] in (6, 8)     # epoch 1's checkpoint, or the interrupt's if committed
        resumed = Trainer(TinyGRU(), cfg, run, progress=False).fit(train_batches, compute_loss, resume=True)
        assert resumed.step == 12
        assert_same_params(params_of(resumed.model), params_of(straight.model))


def test_a_full_disk_stops_training_with_the_last_checkpoint_intact_and_it_resumes(tmp_path, monkeypatch):
    from rnnkit.runs.checkpoint import CheckpointError
    train_batches, compute_loss, evaluate = regression_problem()
    cfg = TrainConfig(epochs=2, lr=0.01, log_every=3)
    straight = Trainer(mlp(), cfg, tmp_path / "a", progress=False).fit(train_batches, compute_loss, evaluate)
    Trainer(mlp(), TrainConfig(**{**vars(cfg), "epochs": 1}), tmp_path / "b", progress=False).fit(
        train_batches, compute_loss, evaluate)

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(CheckpointError, match=r": no space left on device; the previous checkpoint \(step 8\) is "
                                              r"intact\. Free some space"):
        Trainer(mlp(), cfg, tmp_path / "b", progress=False).fit(train_batches, compute_loss, evaluate, resume=True)
    monkeypatch.undo()
    assert saved_state(tmp_path / "b")["step"] == 8
    resumed = Trainer(mlp(seed=5), cfg, tmp_path / "b", progress=False)
    resumed.fit(train_batches, compute_loss, evaluate, resume=True)
    assert resumed.step == 16
    assert_same_params(params_of(resumed.model), params_of(straight.model))


def edit_state(run_dir, edit):
    """Edit the current checkpoint's trainer_state.json by hand, and its digest in checkpoint.json with it
    (a consistent edit: only the field checks can catch it)."""
    run = RunDir(run_dir)
    path = run.checkpoint_path(STATE_JSON)
    doc = read_json(path)
    edit(doc["tree"]["trainer"])
    path.write_text(json.dumps(doc))
    pointer = read_json(run.pointer_path)
    pointer["files"][STATE_JSON]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    run.pointer_path.write_text(json.dumps(pointer))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.update(step="abc"), "trainer.step='abc': expected an integer >= 0"),
    (lambda t: t.pop("epoch"), "trainer.epoch is missing: expected an integer >= 0"),
    (lambda t: t.update(best="low"), "trainer.best='low': expected a number or null"),
    (lambda t: t["rng"].update(python=[3, [1, 2], None]), "trainer.rng: not a saved random generator state"),
], ids=["step", "epoch", "best", "rng"])
def test_a_hand_edited_trainer_state_is_refused_naming_file_and_field(tmp_path, edit, message):
    train_batches, compute_loss, _ = regression_problem()
    Trainer(mlp(), TrainConfig(epochs=1), tmp_path, progress=False).fit(train_batches, compute_loss)
    path = edit_state(tmp_path, edit)
    state = random.getstate()
    with pytest.raises(ValueError) as err:
        Trainer(mlp(), TrainConfig(epochs=2), tmp_path, progress=False).resume()
    assert str(err.value).startswith(f"{path}: {message}")
    assert random.getstate() == state      # trying out a bad generator state changed nothing


def test_damage_to_the_checkpoint_is_refused_naming_the_file(tmp_path):
    train_batches, compute_loss, _ = regression_problem()
    Trainer(mlp(), TrainConfig(epochs=1), tmp_path, progress=False).fit(train_batches, compute_loss)
    path = RunDir(tmp_path).checkpoint_path(STATE_JSON)
    path.write_text(path.read_text().replace('"step": 8', '"step": "abc"'))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: damaged: its sha256 .* is not the one "
                                         r"checkpoint\.json recorded"):
        Trainer(mlp(), TrainConfig(epochs=2), tmp_path, progress=False).resume()


def test_a_run_directory_of_the_earlier_layout_resumes_and_is_converted(tmp_path):
    train_batches, compute_loss, evaluate = regression_problem()
    cfg = TrainConfig(epochs=2, lr=0.01, log_every=3)
    straight = Trainer(mlp(), cfg, tmp_path / "a", progress=False).fit(train_batches, compute_loss, evaluate)
    Trainer(mlp(), TrainConfig(**{**vars(cfg), "epochs": 1}), tmp_path / "b", progress=False).fit(
        train_batches, compute_loss, evaluate)
    run = RunDir(tmp_path / "b")
    folder = run.checkpoint_path(STATE_JSON).parent      # -> the four files at the top level, no pointer
    for path in folder.iterdir():
        os.replace(path, run.path / path.name)
    folder.rmdir()
    run.pointer_path.unlink()
    resumed = Trainer(mlp(seed=3), cfg, run.path, progress=False).fit(train_batches, compute_loss, evaluate,
                                                                      resume=True)
    assert resumed.step == 16
    assert_same_params(params_of(resumed.model), params_of(straight.model))
    assert not (run.path / STATE_JSON).exists() and run.pointer_path.is_file()


def test_leftovers_of_a_killed_save_are_removed_at_the_next_start(tmp_path):
    train_batches, compute_loss, _ = regression_problem()
    Trainer(mlp(), TrainConfig(epochs=1), tmp_path, progress=False).fit(train_batches, compute_loss)
    (tmp_path / "checkpoints" / "step-000000016-deadbeef").mkdir()
    (tmp_path / "checkpoints" / "step-000000016-deadbeef" / "model.safetensors").write_bytes(b"half")
    (tmp_path / ".model.safetensors.x1y2z3w4.tmp").write_bytes(b"half")
    (tmp_path / "checkpoints" / "notes.txt").write_text("not rnnkit's: kept")
    Trainer(mlp(), TrainConfig(epochs=1), tmp_path, progress=False).fit(train_batches, compute_loss, resume=True)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == [
        "notes.txt", RunDir(tmp_path).checkpoint_path(STATE_JSON).parent.name]
    assert not list(tmp_path.glob(".*.tmp"))


# -- weight averaging (ema_decay) ---------------------------------------------------------------------------------

def test_weight_average_follows_the_formula_and_is_what_evaluation_sees(tmp_path):
    train_batches, compute_loss, evaluate = regression_problem()
    model = mlp()
    expected = params_of(model)                  # the average starts at the initial weights
    seen = []

    def after_step(trainer):                     # the model holds the trained weights here
        decay = min(0.9, (1 + trainer.step) / (10 + trainer.step))   # ramps up: 2/11, 3/12, ... then 0.9
        for a, p in zip(expected, trainer.model.parameters()):
            a.mul_(decay).add_((1 - decay) * p.detach())

    def after_epoch(trainer, epoch, metrics):
        seen.append((params_of(trainer.model), metrics["val_loss"]))

    cfg = TrainConfig(epochs=2, lr=0.05, optimizer="sgd", ema_decay=0.9, log_every=4)
    trainer = Trainer(model, cfg, tmp_path / "run", progress=False,
                      callbacks={"on_step_end": after_step, "on_epoch_end": after_epoch})
    trainer.fit(train_batches, compute_loss, evaluate)

    # After fit the model holds the average; the trained weights are one context away and differ from it.
    for a, p in zip(expected, trainer.model.parameters()):
        torch.testing.assert_close(p.detach(), a, rtol=1e-5, atol=1e-6)
    with trainer.trained_weights() as trained:
        last = params_of(trained)
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(last, expected))
    assert_same_params(params_of(trainer.model), [p.detach() for p in seen[-1][0]])   # swapped back
    # Evaluation at each epoch end measured the average, and the weight files hold it.
    x_all = torch.cat([b[0] for b in train_batches(0)])
    y_all = torch.cat([b[1] for b in train_batches(0)])
    with torch.no_grad():
        loss = float(nn.functional.mse_loss(trainer.model.eval()(x_all), y_all))
    assert seen[-1][1] == pytest.approx(loss, rel=1e-5)
    on_disk = mlp(seed=5)
    RunDir(tmp_path / "run").load_weights(on_disk)
    assert_same_params(params_of(on_disk), params_of(trainer.model))


def test_weight_average_resumes_exactly(tmp_path):
    train_batches, compute_loss, evaluate = regression_problem()
    cfg = TrainConfig(epochs=3, lr=0.01, ema_decay=0.8, log_every=3)
    straight = Trainer(mlp(), cfg, tmp_path / "a", progress=False)
    straight.fit(train_batches, compute_loss, evaluate)

    Trainer(mlp(), TrainConfig(**{**vars(cfg), "epochs": 1}), tmp_path / "b", progress=False).fit(
        train_batches, compute_loss, evaluate)
    resumed = Trainer(mlp(seed=99), cfg, tmp_path / "b", progress=False)
    resumed.fit(train_batches, compute_loss, evaluate, resume=True)

    assert_same_params(params_of(resumed.model), params_of(straight.model))        # the averages
    with resumed.trained_weights() as a, straight.trained_weights() as b:
        assert_same_params(params_of(a), params_of(b))                              # the trained weights
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("elapsed_s", "items_per_s")} for r in rs]
    assert strip(RunDir(tmp_path / "b").read_metrics()) == strip(RunDir(tmp_path / "a").read_metrics())


def test_turning_weight_averaging_on_or_off_at_resume(tmp_path):
    train_batches, compute_loss, evaluate = regression_problem()
    plain = TrainConfig(epochs=1, lr=0.01)
    first = Trainer(mlp(), plain, tmp_path / "run", progress=False).fit(train_batches, compute_loss, evaluate)
    trained = params_of(first.model)
    # On: averaging starts from the weights the plain run trained.
    on = Trainer(mlp(seed=3), TrainConfig(epochs=1, lr=0.01, ema_decay=0.9), tmp_path / "run", progress=False)
    on.resume()
    assert_same_params(params_of(on.model), trained)
    with on.averaged_weights() as model:
        assert_same_params(params_of(model), trained)
    # Off again: a run that averaged continues from its trained weights, not from the average in the file.
    on.config.epochs = 2
    on.fit(train_batches, compute_loss, evaluate, resume=True)
    with on.trained_weights() as model:
        trained_two = params_of(model)
    off = Trainer(mlp(seed=4), TrainConfig(epochs=2, lr=0.01), tmp_path / "run", progress=False).resume()
    assert_same_params(params_of(off.model), trained_two)
    with off.averaged_weights() as model:            # nothing to swap without averaging
        assert_same_params(params_of(model), trained_two)


# -- best-epoch restore ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_run_dir", [False, True])
def test_restore_best_leaves_the_best_epoch_in_the_model_and_trains_on_from_the_last(tmp_path, with_run_dir):
    train_batches, compute_loss, _ = regression_problem()
    values = iter([3.0, 1.0, 2.0, 2.5, 9.0, 9.0])       # the best epoch is epoch 1 of 4
    snapshots = {}
    trainer = Trainer(mlp(), TrainConfig(epochs=4), tmp_path if with_run_dir else None, progress=False)
    trainer.fit(train_batches, compute_loss, evaluate=lambda m: {"val_loss": next(values)},
                on_epoch_end=lambda t, epoch, metrics: snapshots.setdefault(epoch, params_of(t.model)))
    assert trainer.best_epoch == 1
    assert_same_params(params_of(trainer.model), snapshots[1])
    # A second fit goes on from the LAST weights (epoch 3), not from the restored best.
    trainer.config.epochs = 5
    seen = []
    trainer.fit(train_batches, compute_loss, evaluate=lambda m: {"val_loss": next(values)},
                on_epoch_end=lambda t, epoch, metrics: seen.append(epoch))
    assert seen == [4]
    assert_same_params(params_of(trainer.model), snapshots[1])        # 9.0 did not beat 1.0

    kept = Trainer(mlp(), TrainConfig(epochs=4, restore_best=False), progress=False)
    values = iter([3.0, 1.0, 2.0, 2.5])
    last = {}
    kept.fit(train_batches, compute_loss, evaluate=lambda m: {"val_loss": next(values)},
             on_epoch_end=lambda t, epoch, metrics: last.update({epoch: params_of(t.model)}))
    assert_same_params(params_of(kept.model), last[3])


def test_restore_best_after_resume_reads_the_best_file(tmp_path):
    train_batches, compute_loss, _ = regression_problem()
    values = iter([3.0, 1.0, 2.0, 2.5])
    snapshots = {}
    first = Trainer(mlp(), TrainConfig(epochs=2), tmp_path, progress=False)
    first.fit(train_batches, compute_loss, evaluate=lambda m: {"val_loss": next(values)},
              on_epoch_end=lambda t, epoch, metrics: snapshots.setdefault(epoch, params_of(t.model)))
    second = Trainer(mlp(seed=1), TrainConfig(epochs=4), tmp_path, progress=False)
    second.fit(train_batches, compute_loss, evaluate=lambda m: {"val_loss": next(values)}, resume=True)
    assert second.best_epoch == 1 and second.epoch == 4
    assert_same_params(params_of(second.model), snapshots[1])
