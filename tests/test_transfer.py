"""Language-model pretraining for classifiers and taggers (--encoder-from, --unlabeled; the ULMFiT recipe):
the weights copied and mapped, frozen and unfrozen, the rates per layer group, the slanted schedule, concat
pooling, and the one-line errors of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.tasks.classify.model import SequenceNet, final_states, masked_pool
from rnnkit.tasks.classify.task import SequenceClassifier
from rnnkit.tasks.tag.task import Tagger
from rnnkit.tasks.textgen.task import TextGenerator
from rnnkit.tasks.transfer import map_embeddings, param_groups, say_mapping
from rnnkit.text import Tokenizer
from rnnkit.training.config import TrainConfig
from rnnkit.training.schedules import lr_at

POS, NEG = ["good", "great", "lovely", "superb"], ["bad", "awful", "dull", "boring"]
FILLER = ["the", "film", "movie", "was", "a", "and", "it", "plot", "actor", "scene"]


def reviews(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in range(n):
        words = list(rng.choice(FILLER, size=10)) + [str(rng.choice(POS if i % 2 else NEG))] * 2
        rng.shuffle(words)
        X.append(" ".join(words))
        y.append("pos" if i % 2 else "neg")
    return X, y


def lm_config(**kw):
    base = dict(level="word", hidden_size=16, num_layers=2, embedding_size=8, seq_len=10, sample_max_tokens=0,
                max_steps=10, batch_size=8, max_minutes=None, epochs=3, warmup_steps=0, precision="fp32", seed=0)
    return {**base, **kw}


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A tiny finished word-level LSTM language model (2 layers of 16, embedding 8), trained on made-up reviews."""
    run = tmp_path_factory.mktemp("lm") / "lm"
    X, _ = reviews(300, seed=1)
    TextGenerator(**lm_config()).fit("\n".join(X), run_dir=str(run), progress=False)
    return run


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1
    return err[-1]


# ---------------------------------------------------------------------------------------------------------
# The pieces
# ---------------------------------------------------------------------------------------------------------

def test_the_slanted_triangle_rises_for_a_tenth_then_falls_to_lr_over_32():
    cfg = TrainConfig(lr=3.2, schedule="slanted")
    # over 100 steps: 0.1 at the start, 3.2 at step 10, back to 0.1 at the end; linear on both sides
    assert [round(lr_at(cfg, s, 100), 6) for s in (0, 5, 10, 55, 100)] == [0.1, 1.65, 3.2, 1.65, 0.1]
    timed = TrainConfig(lr=3.2, schedule="slanted", max_minutes=1)
    assert round(lr_at(timed, 0, None, time_fraction=0.1), 6) == 3.2     # over the time budget too


def test_concat_pooling_is_last_max_and_mean_side_by_side():
    torch.manual_seed(0)
    net = SequenceNet("lstm", 2, vocab=20, embedding_size=4, hidden_size=3, pooling="concat").eval()
    x, lengths = torch.randint(1, 20, (2, 6)), torch.tensor([6, 4])
    x[1, 4:] = 0
    out = net.rnn(net.embed(x), lengths=lengths)
    mask = torch.arange(6)[None] < lengths[:, None]
    want = torch.cat([final_states(out, lengths, 1), masked_pool(out, mask, "max"), masked_pool(out, mask, "mean")], 1)
    assert net.head.in_features == 9
    torch.testing.assert_close(net(x, lengths), net.head(want))


def test_discriminative_rates_divide_by_2_6_per_group_down_from_the_head():
    net = SequenceNet("lstm", 2, vocab=20, embedding_size=4, hidden_size=3, num_layers=2)
    groups = net.layer_groups()                     # head, layer 2, layer 1, embedding
    assert [len(g) for g in groups] == [2, 4, 4, 1] and groups[-1][0] is net.embed.weight
    scales = [g["lr_scale"] for g in param_groups(groups)]
    np.testing.assert_allclose(scales, [1, 1 / 2.6, 1 / 2.6 ** 2, 1 / 2.6 ** 3])


def test_words_the_lm_never_saw_start_at_the_mean_of_its_vectors_and_are_counted():
    lm_tok = Tokenizer(num_words=4, oov_token="<unk>").fit_on_texts(["a a a b b c d"])   # ids: <unk>1 a2 b3 (c cut)
    lm_vectors = np.arange(4 * 2, dtype=np.float32).reshape(4, 2)                        # row 0: padding
    index = {"<unk>": 1, "b": 2, "c": 3, "zebra": 4, "a": 5}
    out, found, missing = map_embeddings(lm_tok, lm_vectors, index, vocab_size=6)
    mean = lm_vectors[1:].mean(0)
    np.testing.assert_array_equal(out[[0, 1, 2, 5]], [[0, 0], lm_vectors[1], lm_vectors[3], lm_vectors[2]])
    np.testing.assert_array_equal(out[[3, 4]], [mean, mean])            # c (cut as rare) and zebra: the mean
    assert (found, missing) == (3, ["c", "zebra"])
    assert say_mapping(found, missing, "LM", 3) == (
        "encoder LM: 3 of 5 vocabulary words have the language model's vectors (its vocabulary: 3); 2 (40%) it "
        "never saw (e.g. c, zebra) start at the mean of its vectors and are learned in fine-tuning")


# ---------------------------------------------------------------------------------------------------------
# Fine-tuning a classifier from the language model
# ---------------------------------------------------------------------------------------------------------

def test_the_classifier_starts_from_the_lm_and_trains_the_head_alone_first(lm_run, capsys):
    X, y = reviews(96)
    lm = TextGenerator.load(str(lm_run))
    clf = SequenceClassifier(encoder_from=str(lm_run), pooling="concat", max_steps=3, min_steps=0, epochs=1,
                             batch_size=32, auto_batch=False)
    clf.fit(X + ["zyzzyva quokka"], y + ["pos"], (X[:16], y[:16]))
    err = capsys.readouterr().err
    # the LM's settings, printed; the vocabulary mapped (two words the LM never saw)
    cfg = clf.config
    assert (cfg.model, cfg.hidden_size, cfg.num_layers, cfg.embedding_size, cfg.train.schedule) == (
        "lstm", 16, 2, 8, "slanted")
    assert "encoder " in err and "lstm, 2 layer(s) of 16, embedding 8" in err
    assert clf.embedding_stats_["unknown_examples"] == ["zyzzyva", "quokka"]
    assert "2 (" in err and "it never saw (e.g. zyzzyva, quokka)" in err
    # One epoch of 3 steps with the head alone: the recurrent layers and the embedding are still the LM's.
    net, lm_net = clf.model_, lm.model_
    for k, v in lm_net.rnn.state_dict().items():
        torch.testing.assert_close(net.rnn.state_dict()[k], v)
    for word in ("good", "film"):
        i, j = clf.tokenizer_.word_index[word], lm.tokenizer_.word_index[word]
        torch.testing.assert_close(net.embed.weight[i], lm_net.embed.weight[j])
    mean = lm_net.embed.weight[1:].mean(0)
    torch.testing.assert_close(net.embed.weight[clf.tokenizer_.word_index["quokka"]], mean)
    # the optimizer's groups: the rates of the last step, 2.6 times lower per group down
    lrs = [g["lr"] for g in clf.trainer_.optimizer.param_groups]
    np.testing.assert_allclose(np.array(lrs[:-1]) / np.array(lrs[1:]), 2.6)
    assert all(p.requires_grad for p in net.parameters())          # the finished model is ordinary again


def test_gradual_unfreezing_adds_one_group_an_epoch_and_the_run_learns(lm_run, tmp_path, capsys):
    X, y = reviews(240)
    Xv, yv = reviews(60, seed=5)
    clf = SequenceClassifier(encoder_from=str(lm_run), max_steps=None, min_steps=0, epochs=6, batch_size=16,
                             lr=3e-2, early_stop_patience=None)
    clf.fit(X, y, (Xv, yv), run_dir=str(tmp_path / "clf"))
    err = capsys.readouterr().err
    assert [line.split(": ")[1] for line in err.splitlines() if line.startswith("unfreezing")] == [
        "2 of 4 layer groups train from epoch 2", "3 of 4 layer groups train from epoch 3",
        "4 of 4 layer groups train from epoch 4"]
    assert clf.evaluate(Xv, yv)["accuracy"] >= 0.8                  # chance: 0.5
    # the run loads without the language model, with the LM's sizes in its config
    saved = json.loads((tmp_path / "clf" / "config.json").read_text())
    assert saved["config"]["encoder_from"] == str(lm_run) and saved["config"]["hidden_size"] == 16
    assert saved["fitted"]["embeddings"]["encoder_from"] == str(lm_run)
    loaded = SequenceClassifier.load(str(tmp_path / "clf"))
    np.testing.assert_allclose(loaded.predict_proba(Xv[:5]), clf.predict_proba(Xv[:5]), atol=1e-6)


def test_unfreeze_every_adds_a_group_after_that_many_updates(lm_run, capsys):
    X, y = reviews(64)
    clf = SequenceClassifier(encoder_from=str(lm_run), unfreeze_every=2, max_steps=6, min_steps=0, epochs=1,
                             batch_size=8, auto_batch=False)
    clf.fit(X, y)
    assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("unfreezing")] == [
        "unfreezing: 2 of 4 layer groups train after 2 updates", "unfreezing: 3 of 4 layer groups train after 2 updates",
        "unfreezing: 4 of 4 layer groups train from epoch 2"]       # steps 3 and 6, then the (budget's) epoch end


def test_the_cli_fine_tunes_from_a_run_dir(lm_run, tmp_path, capsys):
    X, y = reviews(80)
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in zip(X, y)))
    assert main(["classify", "train", "--csv", str(csv), "--encoder-from", str(lm_run), "--pooling", "concat",
                 "--run-dir", str(tmp_path / "run"), "--dry-run"]) == 0
    assert "encoder " in capsys.readouterr().err


def test_the_tagger_takes_the_lm_word_vectors_and_first_forward_layer(lm_run, capsys):
    sents = [s.split() for s in reviews(40)[0]]
    tags = [["ADJ" if w in POS + NEG else "X" for w in s] for s in sents]
    tagger = Tagger(encoder_from=str(lm_run), char_model="none", cell="lstm", hidden_size=16, num_layers=1,
                    max_steps=1, min_steps=0, epochs=1, lr=1e-9)
    tagger.fit(sents, tags)
    assert "the first layer's forward direction (lstm, 16) from the LM" in capsys.readouterr().err
    lm = TextGenerator.load(str(lm_run)).model_
    assert tagger.config.embedding_size == 8
    for k, v in lm.rnn.cells[0].state_dict().items():          # lr 1e-9: one step changes nothing visible
        torch.testing.assert_close(tagger.model_.rnn.cells[0].state_dict()[k], v, atol=1e-6, rtol=0)
    i = tagger.vocab_.words.word_index["good"]
    torch.testing.assert_close(tagger.model_.embed.weight[i], lm.embed.weight[TextGenerator.load(
        str(lm_run)).tokenizer_.word_index["good"]], atol=1e-6, rtol=0)


def test_unlabeled_text_is_added_to_the_lm_corpus(tmp_path):
    X, _ = reviews(200)
    extra = tmp_path / "more.txt"
    extra.write_text("marvellous cinematography\n" * 50)
    gen = TextGenerator(**lm_config(max_steps=1, corpus=None, unlabeled=str(extra)))
    gen.fit("\n".join(X), progress=False)
    assert "marvellous" not in gen.tokenizer_.word_index       # text passed to fit: the file is for the CLI
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(X))
    gen = TextGenerator(**lm_config(max_steps=1, corpus=str(corpus), unlabeled=str(extra)))
    gen.fit(None, progress=False)
    assert "marvellous" in gen.tokenizer_.word_index and gen.data_["tokens"] == 200 * 12 + 100


# ---------------------------------------------------------------------------------------------------------
# Bad input: one line each
# ---------------------------------------------------------------------------------------------------------

def lm_argv(tmp_path, *more):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(reviews(200)[0]))
    return ["textgen", "train", "--corpus", str(corpus), "--level", "word", "--run-dir", str(tmp_path / "lm"),
            "--hidden-size", "16", "--dry-run", *more]


@pytest.mark.parametrize("content, why", [
    (b"", "an empty file; expected unlabelled text, one document (or paragraph) per line"),
    (b"  \n\n", "an empty file; expected unlabelled text, one document (or paragraph) per line"),
    (b"PK\x03\x04\x00\x00binary", "a binary file (it holds NUL bytes); expected plain text in utf-8"),
    (b"caf\xe9 au lait", "not utf-8 text (byte 3: b'\\xe9'); expected plain text (or give --encoding)"),
])
def test_an_empty_or_binary_unlabeled_file_is_refused(tmp_path, capsys, content, why):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    assert main(lm_argv(tmp_path, "--unlabeled", str(bad))) == 2
    assert one_error_line(capsys) == f"rnnkit: error: unlabeled={str(bad)!r}: {why}"


def test_a_corpus_too_small_for_one_batch_says_so(tmp_path, capsys):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("a good film")
    assert main(["textgen", "train", "--corpus", str(corpus), "--level", "word", "--hidden-size", "16",
                 "--seq-len", "20", "--batch-size", "8", "--no-auto-batch"]) == 2
    assert one_error_line(capsys) == (
        "rnnkit: error: corpus: 3 words (2 for training after holding out val_frac=0.1) is too short for one batch "
        "of batch_size=8 x seq_len=20 (161 training words needed); use a longer text or lower --batch-size or "
        "--seq-len")


def classify_argv(tmp_path, encoder, *more):
    X, y = reviews(40)
    csv = tmp_path / "r.csv"
    csv.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in zip(X, y)))
    return ["classify", "train", "--csv", str(csv), "--encoder-from", str(encoder), "--dry-run", *more]


def test_encoder_from_a_run_of_another_task_or_level_or_cell_or_size_says_what_differs(lm_run, tmp_path, capsys):
    X, y = reviews(40)
    clf_run = tmp_path / "clf"
    SequenceClassifier(model="bow").fit(X, y, run_dir=str(clf_run), progress=False)
    assert main(classify_argv(tmp_path, clf_run)) == 2
    assert one_error_line(capsys) == (f"rnnkit: error: encoder_from={str(clf_run)!r}: a run of 'classify'; expected "
                                      f"a language-model run of textgen (`rnnkit textgen train --level word`)")
    char_run = tmp_path / "char"
    TextGenerator(**lm_config(level="char", max_steps=1)).fit("\n".join(X), run_dir=str(char_run), progress=False)
    assert main(classify_argv(tmp_path, char_run)) == 2
    assert one_error_line(capsys) == (f"rnnkit: error: encoder_from={str(char_run)!r}: a char-level language model; "
                                      f"expected a word-level one (`rnnkit textgen train --level word`): a "
                                      f"classifier reads words")
    assert main(classify_argv(tmp_path, lm_run, "--model", "gru", "--hidden-size", "32")) == 2
    assert one_error_line(capsys) == (f"rnnkit: error: encoder_from={str(lm_run)!r}: model='gru' (the LM's is "
                                      f"'lstm'); hidden_size=32 (the LM's is 16); expected the language model's "
                                      f"settings (leave them out to take the LM's)")
    assert main(classify_argv(tmp_path, tmp_path / "nowhere")) == 2
    assert one_error_line(capsys) == (f"rnnkit: error: encoder_from={str(tmp_path / 'nowhere')!r}: no such run "
                                      f"directory; expected a run of `rnnkit textgen train --level word`")


@pytest.mark.parametrize("model, why", [
    ("bow", "model='bow': expected lstm, gru or rnn with --encoder-from (it starts a recurrent network from the "
            "language model; bow has no such layers)"),
    ("bilstm", "model='bilstm': expected lstm with --encoder-from (a forward language model has no backward "
               "direction to start)"),
])
def test_encoder_from_needs_a_one_direction_network(lm_run, tmp_path, capsys, model, why):
    assert main(classify_argv(tmp_path, lm_run, "--model", model)) == 2
    assert one_error_line(capsys) == f"rnnkit: error: {why}"


def test_a_tagger_of_another_cell_than_the_lm_is_refused(lm_run, capsys):
    sents = [s.split() for s in reviews(20)[0]]
    with pytest.raises(ValueError) as e:
        Tagger(encoder_from=str(lm_run), cell="gru").fit(sents, [["X"] * len(s) for s in sents], dry_run=True)
    assert str(e.value) == (f"encoder_from={str(lm_run)!r}: cell='gru' (the LM's is 'lstm'); expected the language "
                            f"model's settings (leave them out to take the LM's)")
