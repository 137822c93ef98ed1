"""Sequence to sequence training options: label smoothing (the loss against a hand-computed one, the flag, bad
values) and weight averaging (the Trainer's ema_decay) with an encoder-decoder: the averaged weights against
the formula, and the saved model holding them."""

import json

import pytest
import torch

from rnnkit.cli import main
from rnnkit.tasks.seq2seq import Seq2Seq
from rnnkit.tasks.seq2seq.data import Vocab, make_batch

from test_seq2seq import reverse_pairs


def tiny(**options) -> Seq2Seq:
    """An untrained model over letters -> x y z (the loss itself is summed in float32, as in training)."""
    torch.manual_seed(0)
    s2s = Seq2Seq(source_level="char", target_level="char", hidden_size=16, embedding_size=8, dropout=0.0,
                  **options)
    s2s.source_vocab_, s2s.target_vocab_ = Vocab(list("abcdefgh"), "char"), Vocab(list("xyz"), "char")
    s2s.model_ = s2s._build_model().double()
    return s2s


def hand_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float) -> float:
    """Per target token (padding, id 0, skipped): (1 - eps) x -log p(target) + eps x the mean of -log p over the
    whole vocabulary; then the mean over the tokens. Written out token by token."""
    total, count = 0.0, 0
    for row_logits, row_targets in zip(logits, targets):
        for step_logits, target in zip(row_logits, row_targets):
            if int(target) == 0:
                continue
            log_p = [float(v) for v in torch.log_softmax(step_logits, -1)]
            total += (1 - eps) * -log_p[int(target)] + eps * sum(-v for v in log_p) / len(log_p)
            count += 1
    return total / count


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_loss_equals_the_hand_computed_one(eps):
    s2s = tiny(label_smoothing=eps)
    sources = [s2s.source_vocab_.encode(t)[0] for t in ("abc", "h", "gfedc")]
    targets = [s2s.target_vocab_.encode(t)[0] for t in ("xyz", "zz", "y")]        # padded: lengths 3, 2, 1
    batch = make_batch(sources, targets)
    loss, _, items = s2s._loss(None, s2s.model_, batch, None)
    assert items == 3
    with torch.no_grad():
        logits = s2s.model_(*batch[:3])
    loss = float(loss.detach())
    assert loss == pytest.approx(hand_loss(logits, batch[3], eps), rel=1e-6)
    if eps:
        assert abs(loss - hand_loss(logits, batch[3], 0.0)) > 1e-4     # smoothing changed the loss: the check bites


def test_label_smoothing_bad_values_are_named():
    for bad in (-0.1, 1.0, 1.5, True, "some"):
        with pytest.raises(ValueError, match="label_smoothing"):
            Seq2Seq(label_smoothing=bad)


def test_label_smoothing_flag_reaches_the_config(tmp_path):
    run = tmp_path / "run"
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{s}\t{t}\n" for s, t in reverse_pairs(300, 0)), encoding="utf-8")
    assert main(["seq2seq", "train", "--tsv", str(pairs), "--run-dir", str(run), "--dry-run",
                 "--label-smoothing", "0.2", "--hidden-size", "16", "--embedding-size", "8"]) == 0
    assert json.loads((run / "config.json").read_text())["config"]["label_smoothing"] == 0.2
    assert Seq2Seq.load(run).config.label_smoothing == 0.2


def test_the_validation_loss_stays_plain_cross_entropy_with_label_smoothing():
    """val_loss (what picks the best epoch) is the plain cross-entropy of the weights, whatever the smoothing:
    runs with and without it are compared on the same scale."""
    torch.set_num_threads(1)
    val = reverse_pairs(40, 1)
    s2s = Seq2Seq(source_level="char", target_level="char", hidden_size=16, embedding_size=8, dropout=0.0,
                  epochs=1, max_steps=2, min_steps=0, val_decode=0, label_smoothing=0.3,
                  ).fit(reverse_pairs(64, 0), val, progress=False)
    src = [s2s.source_vocab_.encode(s)[0] for s, _ in val]
    tgt = [s2s.target_vocab_.encode(t)[0] for _, t in val]
    batch = make_batch(src, tgt)
    with torch.no_grad():
        s2s.model_.eval()
        logits = s2s.model_(*batch[:3])
    assert s2s.metrics_["val_loss"] == pytest.approx(hand_loss(logits, batch[3], 0.0), rel=1e-5)
    assert s2s.metrics_["val_loss"] != pytest.approx(hand_loss(logits, batch[3], 0.3), rel=1e-3)


def test_weight_averaging_holds_the_average_of_the_trained_weights(tmp_path, monkeypatch):
    """ema_decay with an encoder-decoder: after one step the model holds d x initial + (1 - d) x trained, with
    d = min(ema_decay, (1 + step) / (10 + step)) = 2/11 at step 1; the saved model holds the same average."""
    initial = {}
    make = Seq2Seq._make_model

    def keep_initial(self, prepared):
        model = make(self, prepared)
        initial.update({name: p.detach().clone() for name, p in model.named_parameters()})
        return model

    monkeypatch.setattr(Seq2Seq, "_make_model", keep_initial)
    torch.set_num_threads(1)
    run = tmp_path / "run"
    s2s = Seq2Seq(source_level="char", target_level="char", hidden_size=16, embedding_size=8, encoder_layers=1,
                  decoder_layers=1, dropout=0.0, epochs=1, max_steps=1, min_steps=0, lr=0.05, val_decode=10,
                  ema_decay=0.999).fit(reverse_pairs(64, 0), reverse_pairs(20, 1), run_dir=str(run), progress=False)
    assert s2s.trainer_.step == 1
    averaged = {name: p.detach().clone() for name, p in s2s.model_.named_parameters()}
    with s2s.trainer_.trained_weights() as model:
        trained = {name: p.detach().clone() for name, p in model.named_parameters()}
    d = 2 / 11
    moved = 0
    for name, w0 in initial.items():
        assert torch.allclose(averaged[name], d * w0 + (1 - d) * trained[name], atol=1e-6), name
        moved += int(not torch.equal(trained[name], w0))
    assert moved > 0                                          # the step changed the weights: the check bites
    loaded = Seq2Seq.load(run)
    for name, p in loaded.model_.named_parameters():
        assert torch.allclose(p, averaged[name], atol=1e-6), name
    assert loaded.translate(["abc", "fed"]) == s2s.translate(["abc", "fed"])


def test_eval_tune_picks_beam_and_length_penalty_on_validation(tmp_path, capsys):
    """`eval --tune`: every (beam, alpha) of the grid decodes the validation part; the first with the highest
    exact match is the pick, and the test part is scored with it."""
    from rnnkit.tasks.seq2seq.data import load_pairs

    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in reverse_pairs(600, 5)), encoding="utf-8")
    run = tmp_path / "run"
    assert main(["seq2seq", "train", "--tsv", str(tsv), "--source-level", "char", "--target-level", "char",
                 "--hidden-size", "24", "--embedding-size", "8", "--encoder-layers", "1", "--decoder-layers", "1",
                 "--val-frac", "0.1", "--test-frac", "0.1", "--max-steps", "60", "--lr", "0.01",
                 "--run-dir", str(run), "--threads", "1"]) == 0
    assert main(["seq2seq", "eval", str(run), "--tune", "--tune-beams", "1", "3", "--tune-length-penalties", "0",
                 "2"]) == 0
    assert "tuned on the validation part: beam" in capsys.readouterr().err
    report = json.loads((run / "eval.json").read_text())
    grid = report["tuned"]["grid"]
    assert [(g["beam"], g["length_penalty"]) for g in grid] == [(1, 0.0), (1, 2.0), (3, 0.0), (3, 2.0)]
    s2s = Seq2Seq.load(run)
    splits = load_pairs(s2s.config)
    for g in grid:                                            # the grid's figures are the validation part's
        assert g["exact_match"] == s2s.evaluate(splits.val, beam=g["beam"],
                                                length_penalty=g["length_penalty"])["exact_match"]
    best = max(g["exact_match"] for g in grid)
    first = next(g for g in grid if g["exact_match"] == best)
    assert report["tuned"]["picked"] == {"beam": first["beam"], "length_penalty": first["length_penalty"]}
    test = s2s.evaluate(splits.test, beam=first["beam"], length_penalty=first["length_penalty"])
    assert report["decoding"] == f"beam {first['beam']}" and report["exact_match"] == test["exact_match"]

    assert main(["seq2seq", "eval", str(run), "--tune", "--tune-beams", "0"]) == 2
    assert "tune_beams=0: expected" in capsys.readouterr().err
    assert main(["seq2seq", "eval", str(run), "--tune", "--tune-length-penalties", "-1"]) == 2
    assert "tune_length_penalties=-1.0: expected" in capsys.readouterr().err
