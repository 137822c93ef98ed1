"""word2vec (`rnnkit embed train|predict|export`): the corpus as ids, subsampling, windows and negatives, the loss
and its gradient by hand, the update cap, learning from a text whose answers are known, the run directory
(resume, Ctrl-C, SIGTERM), bad input in one line, and the embedding layer of other runs as GloVe text.
Every corpus is a small file the test writes."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.tasks.embeddings.data import SkipGramData, read_corpus, read_glove_text, write_glove_text
from rnnkit.tasks.embeddings.model import SkipGram
from rnnkit.tasks.embeddings.task import Embeddings
from rnnkit.tasks.embeddings.word2vec import Word2Vec


def msg(text):
    return re.escape(text)


def topics_corpus(path, lines=300, topics=6, words=6, length=10, seed=0):
    """Each line talks about one topic, in that topic's words (t3w0 ... t3w5): words of one topic share
    their contexts, so each word's nearest neighbours are its own topic's words."""
    rng = np.random.default_rng(seed)
    text = [" ".join(f"t{k}w{i}" for i in rng.integers(0, words, size=length))
            for k in rng.integers(0, topics, size=lines)]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


# Settings that learn the topics corpus in a few seconds: small vectors, a high rate, no subsampling.
FAST = {"embedding_size": 16, "window": 3, "min_count": 1, "subsample": 0.0, "batch_size": 128, "lr": 0.05,
        "epochs": 4, "threads": 1}
FAST_FLAGS = ["--embedding-size", "16", "--window", "3", "--min-count", "1", "--subsample", "0", "--batch-size",
              "128", "--lr", "0.05", "--threads", "1"]


def topic_share(emb: Embeddings, topics=6, k=5) -> float:
    """Share of the k nearest neighbours of each topic's first word that belong to the same topic."""
    return float(np.mean([w.startswith(f"t{t}w") for t in range(topics) for w, _ in emb.neighbors(f"t{t}w0", k)]))


# --- the corpus -----------------------------------------------------------------------------------------

def test_read_corpus_counts_orders_and_drops_rare_words(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("the cat sat\n\nThe dog sat, the end.\nrare cat\n", encoding="utf-8")
    c = read_corpus(str(path), min_count=2)
    # counts: the 3, cat 2, sat 2 (ties by first appearance), dog/end/rare 1 (dropped)
    assert c.words == ["the", "cat", "sat"] and c.counts.tolist() == [3, 2, 2]
    assert (c.tokens, c.distinct, c.num_lines) == (10, 6, 3)          # the blank line is not a line of text
    assert c.ids.tolist() == [0, 1, 2, 0, 2, 0, 1]                     # rare words removed before windows
    assert c.lines.tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert read_corpus(str(path), min_count=1, num_words=2).words == ["the", "cat"]
    cased = read_corpus(str(path), min_count=2, lower=False)                # "The" is another word
    assert cased.words == ["the", "cat", "sat"] and cased.counts.tolist() == [2, 2, 2]


def test_bad_corpora_are_refused_in_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"PK\x03\x04\x00\x00" + bytes(range(256)))
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n...!\n")
    rare = tmp_path / "rare.txt"
    rare.write_text("a b c d\ne f a\n")
    lonely = tmp_path / "lonely.txt"
    lonely.write_text("a x1\nb x2\na x3\nb x4\n")                     # one vocabulary word per line
    cases = [
        (empty, [], f"{empty}: the file is empty; expected text, one sentence or document per line"),
        (binary, [], f"{binary}: looks binary (a NUL byte at offset 4); expected a text file"),
        (blank, [], f"corpus='{blank}': no words in 3 lines"),
        (rare, ["--min-count", "2"], (f"corpus='{rare}': too small for min_count=2: 1 of its 6 distinct words "
                                      f"occurs at least 2 times (7 words in all, the most frequent 2 times)")),
        (lonely, ["--min-count", "2"], (f"corpus='{lonely}': too small for window=5: no line holds two of its 4 "
                                        f"vocabulary words (4 lines, 2 words occur at least 2 times)")),
        (tmp_path / "nowhere.txt", [], f"corpus='{tmp_path / 'nowhere.txt'}': no such file"),
        (tmp_path, [], f"corpus='{tmp_path}': is a directory; expected a file"),
    ]
    for path, flags, text in cases:
        out = tmp_path / "v.txt"
        assert main(["embed", "train", "--corpus", str(path), "-o", str(out), "--threads", "1", *flags]) == 2, path
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and text in err[0], (text, err)
        assert not out.exists()
    assert main(["embed", "train", "-o", str(tmp_path / "v.txt")]) == 2
    assert "corpus=None: expected --corpus FILE" in capsys.readouterr().err


# --- the examples: subsampling, windows, negatives -------------------------------------------------------

def test_subsampling_keeps_words_with_word2vecs_probability(tmp_path):
    rng = np.random.default_rng(1)
    words = rng.choice(["a", "b", "c", "d"], p=[0.7, 0.2, 0.08, 0.02], size=20000)
    path = tmp_path / "s.txt"
    path.write_text("\n".join(" ".join(words[i:i + 20]) for i in range(0, len(words), 20)))
    corpus = read_corpus(str(path), min_count=1)
    data = SkipGramData(corpus, window=2, negative=3, subsample=1e-2, batch_size=100, seed=0)
    t = 1e-2 * corpus.ids.size
    expected = np.minimum(1, (np.sqrt(corpus.counts / t) + 1) * t / corpus.counts)
    np.testing.assert_allclose(data.keep_prob, expected)
    assert data.keep_prob[0] < 0.2 and data.keep_prob[-1] == 1.0       # "a" mostly dropped, "d" always kept
    batches = data.epoch(0)
    kept = np.bincount(corpus.ids[batches.kept], minlength=4) / corpus.counts
    np.testing.assert_allclose(kept, expected, atol=0.02)
    # The batches cover every corpus word once, subsampled ones included: what words/s counts.
    assert sum(b["words"] for b in batches) == corpus.ids.size
    assert data.epoch(1).kept.tolist() != batches.kept.tolist()       # redrawn each epoch


def test_batches_hold_the_windows_and_negatives_of_word2vec(tmp_path):
    path = tmp_path / "w.txt"
    # Line 0: ids 0..9 in order; line 1 starts again: windows never cross the line.
    path.write_text(" ".join(f"w{i}" for i in range(10)) + "\n" + " ".join(f"w{i}" for i in range(10)) + "\n")
    corpus = read_corpus(str(path), min_count=1)
    data = SkipGramData(corpus, window=3, negative=4, subsample=0.0, batch_size=20, seed=0)
    (batch,) = list(data.epoch(0))
    ctx, mask, targets, tmask = batch["contexts"], batch["context_mask"], batch["targets"], batch["target_mask"]
    assert ctx.shape == (20, 6) and targets.shape == (20, 5)
    offsets = np.array([-3, -2, -1, 1, 2, 3])
    reaches = []
    for m in range(20):
        line, pos = divmod(m, 10)
        center = corpus.ids[m]
        assert targets[m, 0] == center
        got = ctx[m][mask[m]]
        near = offsets[mask[m]]
        # Each real context word is the word at that offset on the same line; the window is symmetric
        # (cut at the line's ends) and reaches b <= 3 places.
        assert all(0 <= pos + o < 10 for o in near)
        assert got.tolist() == [corpus.ids[line * 10 + pos + o] for o in near]
        b = int(np.abs(near).max())
        assert set(near.tolist()) == {o for o in offsets if abs(o) <= b and 0 <= pos + o < 10}
        reaches.append(b)
        # A negative that is the center word itself is masked out.
        assert (tmask[m, 1:] == (targets[m, 1:] != center)).all() and tmask[m, 0]
    assert len(set(reaches)) > 1                                      # reduced windows: not always the full 3
    # Batch k of an epoch is the same whenever it is drawn (resume relies on it).
    (again,) = list(data.epoch(0))
    assert all(np.array_equal(batch[k], again[k]) for k in ("contexts", "targets"))


def test_negatives_follow_the_unigram_distribution_to_the_power_three_quarters(tmp_path):
    path = tmp_path / "n.txt"
    path.write_text(" ".join(["a"] * 800 + ["b"] * 150 + ["c"] * 50) + "\n")
    corpus = read_corpus(str(path), min_count=1)
    data = SkipGramData(corpus, window=1, negative=10, subsample=0.0, batch_size=1000, seed=0)
    negatives = np.concatenate([b["targets"][:, 1:].ravel() for b in data.epoch(0)])   # 10,000 draws
    p = np.array([800, 150, 50]) ** 0.75
    np.testing.assert_allclose(np.bincount(negatives, minlength=3) / negatives.size, p / p.sum(), atol=0.015)


# --- the loss and its gradient ----------------------------------------------------------------------------

def test_loss_and_gradient_match_the_formula_by_hand():
    torch.manual_seed(0)
    model = SkipGram(5, 3, sparse=False, update_cap=None)
    with torch.no_grad():
        model.words.weight.normal_()
        model.contexts.weight.normal_()
    W, C = model.words.weight.detach().clone(), model.contexts.weight.detach().clone()
    # One center word (2) with context words 0 and 4 (a padded third slot), targets: 2 (true), 1 and 3 (negatives).
    contexts = torch.tensor([[0, 4, 0]])
    cmask = torch.tensor([[True, True, False]])
    targets = torch.tensor([[2, 1, 3]])
    tmask = torch.tensor([[True, True, True]])
    total, pairs = model(contexts, cmask, targets, tmask)
    sig = torch.sigmoid
    expected = 0.0
    for w in (0, 4):
        expected -= math.log(sig(W[w] @ C[2])) + math.log(sig(-W[w] @ C[1])) + math.log(sig(-W[w] @ C[3]))
    assert total.item() == pytest.approx(expected, rel=1e-5) and pairs.item() == 2
    total.backward()
    # d/dW[w] = -(1 - sig(w.c)) c + sum_n sig(w.n) n ; d/dC[n] = sig(w.n) w summed over the context words
    for w in (0, 4):
        grad = -(1 - sig(W[w] @ C[2])) * C[2] + sig(W[w] @ C[1]) * C[1] + sig(W[w] @ C[3]) * C[3]
        torch.testing.assert_close(model.words.weight.grad[w], grad, rtol=1e-5, atol=1e-6)
    grad_c1 = sig(W[0] @ C[1]) * W[0] + sig(W[4] @ C[1]) * W[4]
    torch.testing.assert_close(model.contexts.weight.grad[1], grad_c1, rtol=1e-5, atol=1e-6)
    assert model.words.weight.grad[[1, 2, 3]].abs().sum() == 0         # untouched rows (and the padded slot)


def test_the_update_cap_scales_a_frequent_words_summed_update():
    def grads(cap):
        torch.manual_seed(0)
        model = SkipGram(4, 3, sparse=False, update_cap=cap)
        with torch.no_grad():
            model.contexts.weight.normal_()
        # Word 1 is the context of 4 pairs, word 2 of one: a cap of 2 halves word 1's sum, leaves word 2's.
        contexts = torch.tensor([[1, 1], [1, 1], [2, 0]])
        cmask = torch.tensor([[True, True], [True, True], [True, False]])
        targets = torch.tensor([[3, 0], [3, 0], [3, 0]])
        total, _ = model(contexts, cmask, targets, torch.ones(3, 2, dtype=torch.bool))
        total.backward()
        return model.words.weight.grad, model.contexts.weight.grad
    (w_free, c_free), (w_cap, c_cap) = grads(None), grads(2)
    torch.testing.assert_close(w_cap[1], w_free[1] * 2 / 4)
    torch.testing.assert_close(w_cap[2], w_free[2])
    torch.testing.assert_close(c_cap[3], c_free[3] * 2 / 3)            # word 3: the true target of 3 rows


# --- learning, and the files it writes --------------------------------------------------------------------

def test_learns_which_words_share_their_contexts(tmp_path):
    corpus = topics_corpus(tmp_path / "topics.txt")
    w2v = Word2Vec(**FAST).fit(str(corpus), progress=False)
    emb = w2v.embeddings_
    assert len(emb) == 36 and emb.dim == 16
    assert topic_share(emb) >= 0.9                                    # chance: 5/35
    # What skip-gram predicts around a word is its topic too (first-order: words seen next to it).
    assert np.mean([w.startswith("t2w") for w, _ in w2v.predict("t2w0", 5)]) >= 0.8
    # The vectors file reads back as the same table.
    path = w2v.save_vectors(tmp_path / "v.txt")
    words, vectors = read_glove_text(path)
    assert words == w2v.words_
    np.testing.assert_allclose(vectors, emb.vectors, rtol=1e-5, atol=1e-6)


def test_cli_train_then_every_embed_verb_reads_the_vectors(tmp_path, capsys):
    corpus = topics_corpus(tmp_path / "topics.txt")
    out, run = tmp_path / "vectors.txt", tmp_path / "run"
    assert main(["embed", "train", "--corpus", str(corpus), "-o", str(out), "--run-dir", str(run), "--epochs", "4",
                 *FAST_FLAGS]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: 36 words x 16 (GloVe text format), after 4 epochs" in printed
    assert main(["embed", "neighbors", "t1w0", "--embeddings", str(out), "--num-results", "3"]) == 0
    neighbours = [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]]
    assert all(w.startswith("t1w") for w in neighbours)
    assert main(["embed", "predict", str(run), "t1w0", "--num-results", "3"]) == 0
    assert all(line.split()[1].startswith("t1w") for line in capsys.readouterr().out.splitlines()[1:])
    again = tmp_path / "again.txt"
    assert main(["embed", "export", str(run), "-o", str(again)]) == 0
    assert "36 word vectors x 16 from the words layer of the word2vec run" in capsys.readouterr().out
    assert again.read_text() == out.read_text()
    assert main(["embed", "plot", "t0w0", "t0w1", "t1w0", "t1w1", "--embeddings", str(out), "-o",
                 str(tmp_path / "p.png")]) == 0
    # A second train into the same run directory is refused (the run is not silently replaced).
    assert main(["embed", "train", "--corpus", str(corpus), "-o", str(out), "--run-dir", str(run)]) == 2
    assert "holds an earlier word2vec run" in capsys.readouterr().err
    # predict needs a word2vec run: a vectors file has no output layer.
    assert main(["embed", "predict", str(tmp_path), "t1w0"]) == 2
    assert "not a word2vec run directory" in capsys.readouterr().err


def test_resume_goes_on_exactly_and_a_kill_leaves_no_half_file(tmp_path, capsys, monkeypatch):
    corpus = topics_corpus(tmp_path / "topics.txt")
    flags = ["--corpus", str(corpus), *FAST_FLAGS, "--batch-size", "64", "--schedule", "constant"]
    straight = tmp_path / "straight.txt"
    assert main(["embed", "train", *flags, "--epochs", "2", "-o", str(straight)]) == 0
    # The same run in two parts: 1 epoch, then --resume with --epochs 2.
    run, out = tmp_path / "run", tmp_path / "v.txt"
    assert main(["embed", "train", *flags, "--epochs", "1", "--run-dir", str(run), "-o", str(out)]) == 0
    first = out.read_text()
    # (no -o: a resumed run writes its vectors where it wrote them before)
    assert main(["embed", "train", "--run-dir", str(run), "--resume", "--epochs", "2"]) == 0
    assert out.read_text() != first
    np.testing.assert_allclose(read_glove_text(out)[1], read_glove_text(straight)[1], rtol=1e-4, atol=1e-5)
    capsys.readouterr()
    # A resumed run may change its budgets only.
    assert main(["embed", "train", "--run-dir", str(run), "--resume", "--window", "2"]) == 2
    assert "--window=2: expected nothing but a budget with --resume" in capsys.readouterr().err
    # SIGTERM after the first step: exit 143 with the command that goes on, and no vectors file at all.
    killed, vec = tmp_path / "killed", tmp_path / "k.txt"
    monkeypatch.setenv("RNNKIT_SIGNAL_AT", "first_step:SIGTERM")
    monkeypatch.setattr("rnnkit.training.phases._fired", False)
    assert main(["embed", "train", *flags, "--epochs", "2", "--run-dir", str(killed), "-o", str(vec)]) == 143
    err = capsys.readouterr().err
    assert f"resume with: rnnkit embed train --run-dir {killed} --resume" in err
    assert not vec.exists() and not list(tmp_path.glob(".k.txt*"))
    monkeypatch.delenv("RNNKIT_SIGNAL_AT")
    assert main(["embed", "train", "--run-dir", str(killed), "--resume", "-o", str(vec)]) == 0
    np.testing.assert_allclose(read_glove_text(vec)[1], read_glove_text(straight)[1], rtol=1e-4, atol=1e-5)
    # The corpus changed since: refused, naming it.
    corpus.write_text(corpus.read_text() + "t0w0 t0w1 t0w2\n")
    assert main(["embed", "train", "--run-dir", str(run), "--resume", "--epochs", "3"]) == 2
    assert "the corpus changed since the run" in capsys.readouterr().err


def test_write_glove_text_names_whitespace_and_reads_back(tmp_path):
    path = write_glove_text(tmp_path / "g.txt", ["a", " ", "\n", "two words"], np.arange(8.0).reshape(4, 2) / 3)
    words, vectors = read_glove_text(path)
    assert words == ["a", "<space>", "<newline>", "two_words"]
    np.testing.assert_allclose(vectors, np.arange(8.0).reshape(4, 2) / 3, rtol=1e-5)
    assert not list(tmp_path.glob(".g.txt*"))                           # atomic: no temporary file left


# --- the embedding layer of other runs --------------------------------------------------------------------

def test_export_the_embedding_of_a_word_language_model_and_refuse_a_series_model(tmp_path, capsys):
    from rnnkit.tasks import Seq2Seq, SequenceClassifier, TextGenerator
    from rnnkit.tasks.embeddings.export import task_vectors

    text = "the cat sat on the mat. the dog sat on the log. " * 40
    gen = TextGenerator(level="word", hidden_size=8, num_layers=1, embedding_size=6, seq_len=8, batch_size=4,
                        epochs=1, max_steps=1, sample_max_tokens=0).fit(text, run_dir=tmp_path / "lm", progress=False)
    out = tmp_path / "lm.txt"
    assert main(["embed", "export", str(tmp_path / "lm"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "word vectors x 6 from the embed layer of the textgen run" in printed and "left out: <unk>" in printed
    words, vectors = read_glove_text(out)
    table = gen.model_.embed.weight.detach().numpy()
    for w in ("cat", "dog", "the"):
        np.testing.assert_allclose(vectors[words.index(w)], table[gen.tokenizer_.word_index[w]], rtol=1e-5)
    assert "<unk>" not in words
    assert main(["embed", "export", str(tmp_path / "nowhere"), "-o", str(tmp_path / "s.txt")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    # The others from the fitted objects (the run directory path is the same): a character model gives
    # character vectors, a space among them.
    chars = TextGenerator(level="char", hidden_size=8, num_layers=1, embedding_size=4, seq_len=8, batch_size=4,
                          epochs=1, max_steps=1, sample_max_tokens=0).fit(text, progress=False)
    found = task_vectors(chars)
    assert found.level == "character" and " " in found.embeddings.words and "c" in found.embeddings.words
    # A sequence-to-sequence model has two: the source's (here words) and the target's (here characters).
    rng = np.random.default_rng(0)
    numbers = ["one", "two", "three", "four", "five", "six"]
    pairs = [(" ".join(rng.choice(numbers, 3)), " ".join(rng.choice(numbers, 2))) for _ in range(40)]
    s2s = Seq2Seq(source_level="word", target_level="char", hidden_size=8, embedding_size=6, encoder_layers=1,
                  decoder_layers=1, batch_size=8, epochs=1, max_steps=1, val_frac=0.2).fit(pairs, progress=False)
    source = task_vectors(s2s)
    assert sorted(source.embeddings.words) == sorted(numbers) and source.left_out == ["<pad>", "<unk>", "<go>", "<eos>"]
    table = s2s.model_.src_embed.weight.detach().numpy()
    np.testing.assert_allclose(source.embeddings.get("two"), table[s2s.source_vocab_.stoi["two"]], rtol=1e-6)
    target = task_vectors(s2s, side="target")
    assert target.layer == "tgt_embed" and target.level == "character" and " " in target.embeddings.words
    # A text classifier's embedding; a bag of words has none.
    texts = [f"{'a great' if i % 2 else 'an awful'} film about the sea" for i in range(24)]
    clf = SequenceClassifier(model="gru", hidden_size=4, embedding_size=5, batch_size=8, epochs=1, min_steps=0,
                             early_stop_patience=None).fit(texts, np.arange(24) % 2, progress=False)
    found = task_vectors(clf)
    assert {"great", "awful", "film"} <= set(found.embeddings.words) and found.left_out == ["<unk>"]
    np.testing.assert_allclose(found.embeddings.get("sea"),
                               clf.model_.embed.weight.detach().numpy()[clf.tokenizer_.word_index["sea"]], rtol=1e-6)
    bow = SequenceClassifier(model="bow", bow_min_df=1).fit(texts, np.arange(24) % 2, progress=False)
    with pytest.raises(ValueError, match=msg("a classify run without a word embedding (its model reads its inputs "
                                             "without one (bow model))")):
        task_vectors(bow)
    # A classifier of series has no word embedding: one line that says so.
    X = list(rng.normal(size=(16, 5, 2)).astype(np.float32))
    series = SequenceClassifier(model="gru", hidden_size=4, batch_size=8, epochs=1, min_steps=0,
                                early_stop_patience=None).fit(X, np.arange(16) % 2, progress=False)
    with pytest.raises(ValueError, match=msg("<task>: a classify run without a word embedding (its model reads "
                                             "numeric series, not words)")):
        task_vectors(series)
