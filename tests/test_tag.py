"""Sequence labelling (rnnkit tag): the readers and their rule for multi-word tokens and empty nodes, the tag
schemes, the CRF against brute force, padding that never changes a tag, learning part of speech and entities from
small made-up sets (characters tag unseen words), per-step labelling of a series the test makes, the CLI's three
verbs, ONNX, and every kind of bad input the issue lists, each refused (or warned about) in one line."""

from __future__ import annotations

import gzip
import itertools
import json
import lzma
import subprocess
import sys

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.tasks import Tagger
from rnnkit.tasks.tag.data import Tagged, detect_scheme, read_columns, read_conllu, read_tagged, spans
from rnnkit.tasks.tag.model import CRF, TaggerNet

# ---------------------------------------------------------------------------------------------------------
# Made-up data
# ---------------------------------------------------------------------------------------------------------

DETS, NOUNS, VERBS, ADVS = ["the", "a", "this"], ["cat", "dog", "mat", "log", "house", "tree", "bird"], \
    ["sat", "ran", "saw", "ate", "found"], ["quickly", "slowly", "sadly", "loudly"]
UNSEEN_ADVS = ["gladly", "softly", "badly"]        # never in training: only their -ly says what they are


def pos_data(n: int = 240, seed: int = 0, advs=ADVS):
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n):
        s, t = [], []
        for _ in range(int(rng.integers(1, 4))):
            s += [str(rng.choice(DETS)), str(rng.choice(NOUNS)), str(rng.choice(VERBS)), str(rng.choice(advs))]
            t += ["DET", "NOUN", "VERB", "ADV"]
        X.append(s)
        y.append(t)
    return X, y


PEOPLE, PLACES = ["john", "mary", "ann", "bob"], ["paris", "rome", "oslo"]


def ner_data(n: int = 200, seed: int = 0, scheme: str = "bio"):
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n):
        who = [str(rng.choice(PEOPLE)).title()] + ([str(rng.choice(["smith", "jones"])).title()] if rng.random() < .5
                                                    else [])
        where = str(rng.choice(PLACES)).title()
        s = who + ["went", "to", where, "today"]
        if scheme == "bio":
            t = ["B-PER"] + ["I-PER"] * (len(who) - 1) + ["O", "O", "B-LOC", "O"]
        else:
            t = (["S-PER"] if len(who) == 1 else ["B-PER", "E-PER"]) + ["O", "O", "S-LOC", "O"]
        X.append(s)
        y.append(t)
    return X, y


def small(**kw):
    base = dict(hidden_size=24, num_layers=1, embedding_size=16, char_embedding_size=12, char_hidden_size=16,
                batch_size=16, epochs=8, min_steps=0, lr=5e-3, early_stop_patience=None)
    return Tagger(**{**base, **kw})


def conllu(sentences, extra_lines: dict | None = None) -> str:
    """CoNLL-U text: each sentence a list of (form, upos, xpos); ``extra_lines`` {(sentence, before_word): line}."""
    out = []
    for i, sent in enumerate(sentences):
        out.append(f"# sent_id = {i + 1}")
        for j, (form, upos, xpos) in enumerate(sent, start=1):
            if extra_lines and (i, j) in extra_lines:
                out.append(extra_lines[(i, j)])
            out.append(f"{j}\t{form}\t{form.lower()}\t{upos}\t{xpos}\t_\t0\tdep\t_\t_")
        out.append("")
    return "\n".join(out) + "\n"


def write_pos_files(folder, n_train=160, fmt="conllu"):
    X, y = pos_data(n_train + 40, seed=1)
    paths = []
    for name, part in (("train", slice(0, n_train)), ("dev", slice(n_train, n_train + 20)),
                       ("test", slice(n_train + 20, None))):
        sents = [[(w, t, t[:2]) for w, t in zip(s, ts)] for s, ts in zip(X[part], y[part])]
        if fmt == "conllu":
            path = folder / f"{name}.conllu"
            path.write_text(conllu(sents))
        else:
            path = folder / f"{name}.tsv"
            path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t, _ in s) for s in sents) + "\n")
        paths.append(path)
    return paths


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("rnnkit: using ")]
    assert len(err) == 1, err
    return err[0]


# ---------------------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------------------

def test_conllu_skips_multiword_token_lines_and_empty_nodes_and_reads_any_column(tmp_path):
    sents = [[("I", "PRON", "PRP"), ("do", "AUX", "VBP"), ("n't", "PART", "RB"), ("know", "VERB", "VB")],
             [("Go", "VERB", "VB"), ("home", "ADV", "RB")]]
    text = conllu(sents, {(0, 2): "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_",
                          (1, 2): "1.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t_\t_"})
    path = tmp_path / "a.conllu"
    path.write_text("# newdoc id = x\n" + text)
    data = read_conllu(path)
    assert data.X == [["I", "do", "n't", "know"], ["Go", "home"]]        # the words, not "don't", not "gone"
    assert data.y == [["PRON", "AUX", "PART", "VERB"], ["VERB", "ADV"]]
    assert data.lines[0] == [3, 5, 6, 7]                                    # each word's own line
    assert read_conllu(path, "xpos").y[0] == ["PRP", "VBP", "RB", "VB"]
    assert read_conllu(path, "3").y[1] == ["go", "home"]                     # column 3, LEMMA
    # compressed files are read as they are, whatever they are called
    (tmp_path / "a.conllu.xz").write_bytes(lzma.compress(path.read_bytes()))
    (tmp_path / "b.gz").write_bytes(gzip.compress(path.read_bytes()))
    assert read_tagged(tmp_path / "a.conllu.xz").X == data.X
    assert read_tagged(tmp_path / "b.gz", "conllu").y == data.y


def test_columns_reader_reads_tabs_spaces_and_the_last_column(tmp_path):
    path = tmp_path / "ner.txt"
    path.write_text("-DOCSTART- -X- -X- O\n\nJohn NNP B-NP B-PER\nlives VBZ B-VP O\n\n\nParis NNP B-NP B-LOC\n")
    data = read_columns(path)
    assert data.X == [["John", "lives"], ["Paris"]] and data.y == [["B-PER", "O"], ["B-LOC"]]
    assert read_columns(path, "2").y == [["NNP", "VBZ"], ["NNP"]]
    tsv = tmp_path / "pos.tsv"
    tsv.write_text("New York\tPROPN\nis\tAUX\n")                              # a tab: tokens may hold spaces
    assert read_columns(tsv).X == [["New York", "is"]]


def test_scheme_detection_and_spans():
    X, y = ner_data(20)
    assert detect_scheme(Tagged(X, y)) == "bio"
    X2, y2 = ner_data(20, scheme="bioes")
    assert detect_scheme(Tagged(X2, y2)) == "bioes"
    assert detect_scheme(Tagged([["a"]], [["NOUN"]])) == "none"
    assert spans(["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "B-LOC"], "bio") == [("PER", 0, 2), ("LOC", 3, 5),
                                                                                 ("LOC", 5, 6)]
    assert spans(["S-PER", "B-LOC", "E-LOC", "O"], "bioes") == [("PER", 0, 1), ("LOC", 1, 3)]


# ---------------------------------------------------------------------------------------------------------
# The CRF
# ---------------------------------------------------------------------------------------------------------

@torch.no_grad()
def brute_force(crf: CRF, e: torch.Tensor):
    """log Z and the best path of one sentence (T, K) over every tag sequence."""
    T, K = e.shape
    scores = {}
    for path in itertools.product(range(K), repeat=T):
        t = torch.tensor(path)
        scores[path] = float(crf.score(e.unsqueeze(0), t.unsqueeze(0), torch.tensor([T])))
    values = torch.tensor(list(scores.values()))
    return float(torch.logsumexp(values, 0)), list(max(scores, key=scores.get))


def test_the_crf_forward_algorithm_and_viterbi_match_brute_force_in_a_padded_batch():
    torch.manual_seed(0)
    K, lengths = 3, torch.tensor([4, 2, 1])
    crf = CRF(K)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    e = torch.randn(3, 4, K)
    with torch.no_grad():
        logz = crf.log_partition(e, lengths)
        best = crf.decode(e, lengths)
    for b, L in enumerate(lengths.tolist()):
        want_z, want_path = brute_force(crf, e[b, :L])
        assert abs(float(logz[b]) - want_z) < 1e-4
        assert best[b, :L].tolist() == want_path
    # the negative log-likelihood of any tag sequence is >= 0 (its probability is at most 1)
    tags = torch.randint(0, K, (3, 4))
    assert (crf.nll(e, tags, lengths) >= 0).all()


def test_padding_never_changes_a_tag():
    torch.manual_seed(0)
    net = TaggerNet(4, vocab=20, num_extra=3, num_chars=10, embedding_size=8, char_hidden_size=6, hidden_size=8,
                    num_layers=2, crf=True).eval()
    words = torch.randint(1, 23, (1, 5))
    chars = torch.randint(1, 10, (1, 5, 4))
    alone = net(words, torch.tensor([5]), chars)
    padded_words = torch.cat([torch.cat([words, torch.zeros(1, 4, dtype=torch.long)], 1), torch.randint(1, 20, (1, 9))])
    padded_chars = torch.zeros(2, 9, 6, dtype=torch.long)
    padded_chars[0, :5, :4] = chars[0]
    padded_chars[1] = torch.randint(1, 10, (9, 6))
    together = net(padded_words, torch.tensor([5, 9]), padded_chars)
    assert torch.allclose(alone[0], together[0, :5], atol=1e-5)
    assert net.predict(together, torch.tensor([5, 9]))[0, :5].tolist() == \
        net.predict(alone, torch.tensor([5]))[0].tolist()


# ---------------------------------------------------------------------------------------------------------
# Learning
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("output_layer, char_model", [("softmax", "cnn"), ("crf", "bilstm")])
def test_it_learns_part_of_speech_and_tags_unseen_words_from_their_characters(output_layer, char_model):
    torch.manual_seed(0)
    X, y = pos_data(240)
    # Every weight set from epoch 1 on tags the validation sentences perfectly (their words are all known): the
    # last epoch's weights, not the first perfect one, have learned the most from the characters.
    tagger = small(output_layer=output_layer, char_model=char_model, epochs=15, restore_best=False).fit(
        X[:200], y[:200], (X[200:], y[200:]), progress=False)
    Xt, yt = pos_data(60, seed=5, advs=UNSEEN_ADVS)
    m = tagger.evaluate(Xt, yt)
    assert m["accuracy"] > 0.95, m
    assert m["unseen_tokens"] == sum(len(s) for s in Xt) // 4                 # every adverb is new
    assert m["unseen_accuracy"] > 0.8, m
    assert tagger.predict([["the", "bird", "ate", "softly"]]) == [["DET", "NOUN", "VERB", "ADV"]]
    assert {"true", "predicted", "count", "share_of_true"} <= set((m["confusions"] or [{}])[0] or
                                                                   {"true", "predicted", "count", "share_of_true"})


def test_bio_entities_are_scored_by_seqeval_and_returned_by_apply():
    pytest.importorskip("seqeval")
    torch.manual_seed(0)
    X, y = ner_data(200)
    tagger = small(output_layer="crf").fit(X[:160], y[:160], (X[160:], y[160:]), progress=False)
    assert tagger.scheme_ == "bio"
    m = tagger.evaluate(X[160:], y[160:])
    assert m["entity_f1"] > 0.9 and set(m["entities"]) == {"PER", "LOC"}, m
    answer = tagger.apply({"texts": ["Mary Jones went to Oslo today"]})
    assert answer["sentences"][0]["entities"] == [{"type": "PER", "start": 0, "end": 2, "text": "Mary Jones"},
                                                  {"type": "LOC", "start": 4, "end": 5, "text": "Oslo"}]


def rising_series(n: int, seed: int):
    """Sine waves of random frequency and phase with a second, noisy channel; each step's tag says whether the
    wave is rising or falling there, which no single step shows: the tagger must read its neighbours."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n):
        T, f, p = int(rng.integers(30, 80)), rng.uniform(0.1, 0.3), rng.uniform(0, 2 * np.pi)
        t = np.arange(T)
        x = np.stack([np.sin(f * t + p), rng.normal(0, 1, T)], 1).astype(np.float32)
        X.append(x)
        y.append(["rising" if c > 0 else "falling" for c in np.cos(f * t + p)])
    return X, y


def test_per_step_labelling_of_a_series(tmp_path):
    torch.manual_seed(0)
    X, y = rising_series(120, 0)
    tagger = small(epochs=15).fit(X[:100], y[:100], (X[100:], y[100:]), progress=False)
    assert tagger.kind_ == "series" and tagger.scheme_ == "none"
    Xt, yt = rising_series(30, 1)
    assert tagger.evaluate(Xt, yt)["accuracy"] > 0.9
    answer = tagger.apply({"series": [Xt[0].tolist()]})
    assert len(answer["series"][0]["tags"]) == len(Xt[0])
    # through the CLI: a series CSV (id, step values, tag), trained, tagged and scored
    for name, (Xs, ys) in (("train", (X, y)), ("test", (Xt, yt))):
        rows = ["id,wave,noise,label"] + [f"s{i},{a:.5f},{b:.5f},{t}" for i, (x, tags) in enumerate(zip(Xs, ys))
                                          for (a, b), t in zip(x, tags)]
        (tmp_path / f"{name}.csv").write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    assert main(["tag", "train", "--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"),
                 "--run-dir", str(run), "--hidden-size", "24", "--num-layers", "1", "--epochs", "12",
                 "--min-steps", "0", "--lr", "5e-3"]) == 0
    assert json.loads((run / "test_metrics.json").read_text())["accuracy"] > 0.85
    assert main(["tag", "tag", str(run), "--file", str(tmp_path / "test.csv"), "-o", str(tmp_path / "out.csv")]) == 0
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == "id,step,tag"


# ---------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------

def test_train_tag_and_eval_from_the_command_line(tmp_path, capsys):
    train, dev, test = write_pos_files(tmp_path)
    run = tmp_path / "run"
    assert main(["tag", "train", "--train", str(train), "--dev", str(dev), "--test", str(test), "--run-dir", str(run),
                 "--hidden-size", "24", "--num-layers", "1", "--epochs", "6", "--min-steps", "0", "--lr", "5e-3",
                 "--output-layer", "crf"]) == 0
    out = capsys.readouterr().out
    assert "crf: test accuracy" in out and "sentences of" in out
    assert rnnkit.load(str(run)).predict([["the", "dog", "ran", "slowly"]]) == [["DET", "NOUN", "VERB", "ADV"]]
    # tag: printed, or a CoNLL-U file with the tag column filled and its other lines as they were
    assert main(["tag", "tag", str(run), "a cat ate quickly"]) == 0
    assert capsys.readouterr().out.strip() == "a/DET cat/NOUN ate/VERB quickly/ADV"
    blank = tmp_path / "blank.conllu"
    blank.write_text(test.read_text().replace("\tDET\t", "\t_\t").replace("\tNOUN\t", "\t_\t"))
    assert main(["tag", "predict", str(run), "--file", str(blank), "-o", str(tmp_path / "tagged.conllu")]) == 0
    assert read_conllu(tmp_path / "tagged.conllu").y == read_conllu(test).y
    # eval: a JSON line, and the report in RUN/eval
    assert main(["tag", "eval", str(run), "--test", str(test)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["accuracy"] > 0.95 and line["sentences"] == 20
    assert (run / "eval" / "eval_metrics.json").is_file()


def test_a_two_column_file_without_a_dev_file_holds_out_validation_sentences(tmp_path, capsys):
    train, _, test = write_pos_files(tmp_path, fmt="columns")
    run = tmp_path / "run"
    assert main(["tag", "train", "--train", str(train), "--test", str(test), "--run-dir", str(run), "--dry-run"]) == 0
    assert "validation 16 sentences" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["data"]["format"] == "auto"


# ---------------------------------------------------------------------------------------------------------
# Bad input: one line each
# ---------------------------------------------------------------------------------------------------------

def train_argv(path, run, *more):
    return ["tag", "train", "--train", str(path), "--run-dir", str(run), "--dry-run", *more]


def test_a_conllu_line_with_the_wrong_column_count_names_its_line(tmp_path, capsys):
    path = tmp_path / "bad.conllu"
    path.write_text(conllu([[("a", "DET", "DT"), ("cat", "NOUN", "NN")]]).replace("2\tcat\tcat\tNOUN\tNN\t_\t0",
                                                                                  "2\tcat\tcat\tNOUN\tNN\t0"))
    assert main(train_argv(path, tmp_path / "run")) == 2
    assert one_error_line(capsys) == (f"rnnkit: error: {path}:3: 9 tab-separated columns; expected the 10 of "
                                      f"CoNLL-U (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC)")


def test_a_tag_column_that_does_not_exist(tmp_path, capsys):
    train, _, _ = write_pos_files(tmp_path)
    assert main(train_argv(train, tmp_path / "run", "--tag-column", "colour")) == 2
    assert "tag_column='colour': expected a CoNLL-U column: id, form, lemma, upos" in one_error_line(capsys)
    cols, _, _ = write_pos_files(tmp_path, fmt="columns")
    assert main(train_argv(cols, tmp_path / "run", "--tag-column", "5")) == 2
    assert one_error_line(capsys) == (f"rnnkit: error: {cols}:1: tag_column=5, but the line has 2 columns; "
                                      f"expected a column that exists")


def test_a_token_with_no_tag(tmp_path, capsys):
    path = tmp_path / "a.tsv"
    path.write_text("The\tDET\ncat\n")
    assert main(train_argv(path, tmp_path / "run")) == 2
    assert one_error_line(capsys) == f"rnnkit: error: {path}:2: the token 'cat' has no tag; expected token<TAB>tag"
    path = tmp_path / "a.conllu"
    path.write_text(conllu([[("The", "DET", "DT"), ("cat", "_", "NN")]]))
    assert main(train_argv(path, tmp_path / "run")) == 2
    assert one_error_line(capsys).startswith(f"rnnkit: error: {path}:3: the word 'cat' has no tag in column 4 "
                                             f"(UPOS is '_')")
    with pytest.raises(ValueError, match=r"sentence 1: 2 tokens but 1 tags; expected a tag for every token"):
        small().fit([["a"], ["a", "cat"]], [["DET"], ["DET"]])


def test_an_empty_sentence(tmp_path, capsys):
    path = tmp_path / "a.conllu"
    path.write_text(conllu([[("The", "DET", "DT")]]) + "# sent_id = 2\n# text =\n\n")
    assert main(train_argv(path, tmp_path / "run")) == 2
    assert one_error_line(capsys) == (f"rnnkit: error: {path}:4: an empty sentence (comment lines, or only multi-word "
                                      f"token and empty node lines, then the blank line at line 6); expected at "
                                      f"least one word line")
    with pytest.raises(ValueError, match=r"X\[1\]: an empty sentence; expected at least one token"):
        small().fit([["a"], []], [["DET"], []])
    X, y = pos_data(30)
    tagger = small(epochs=1).fit(X, y, progress=False)
    with pytest.raises(ValueError, match=r"^tokens\[1\]: an empty sentence; expected at least one token$"):
        tagger.apply({"tokens": [["a", "cat"], []]})
    with pytest.raises(ValueError, match=r"^texts\[0\]: an empty sentence"):
        tagger.apply({"texts": ["   "]})
    with pytest.raises(ValueError, match=r"^X\[0\]='the': expected a sentence as a list of tokens"):
        tagger.predict(["the", "cat"])               # one sentence, not a list of sentences


def test_mixed_bio_and_bioes_tags_say_which_lines(tmp_path, capsys):
    path = tmp_path / "mixed.tsv"
    path.write_text("John\tS-PER\nwent\tO\n\nMary\tB-PER\nsang\tO\n\nAnn\tB-PER\nLee\tE-PER\n")
    assert main(train_argv(path, tmp_path / "run")) == 2
    assert one_error_line(capsys) == (f"rnnkit: error: {path}: mixed BIO and BIOES tags: BIOES's S-/E- tags on lines "
                                      f"1, 8, BIO's entity endings (on B- or I-) on lines 4; expected one scheme "
                                      f"throughout")


def test_an_unknown_tag_at_eval_time_names_its_line(tmp_path, capsys):
    train, dev, test = write_pos_files(tmp_path)
    run = tmp_path / "run"
    assert main(["tag", "train", "--train", str(train), "--dev", str(dev), "--run-dir", str(run), "--dry-run"]) == 0
    capsys.readouterr()
    odd = tmp_path / "odd.conllu"
    odd.write_text(conllu([[("The", "DET", "DT"), ("cat", "NOUN", "NN")], [("Wow", "INTJ", "UH")]]))
    assert main(["tag", "eval", str(run), "--test", str(odd)]) == 2
    assert one_error_line(capsys).startswith(f"rnnkit: error: {odd}:6: tag 'INTJ' is not a tag of this model; "
                                             f"expected one of the tags it was trained on: ADV, DET, NOUN, VERB")
    # at training time the test file is checked before any training
    assert main(["tag", "train", "--train", str(train), "--test", str(odd), "--run-dir", str(tmp_path / "r2"),
                 "--dry-run"]) == 2
    assert "odd.conllu:6: tag 'INTJ' occurs in no training or validation sentence" in one_error_line(capsys)
    assert not (tmp_path / "r2").exists()


def test_a_sentence_longer_than_any_seen_is_tagged_with_a_one_line_warning(tmp_path):
    X, y = pos_data(40)
    tagger = small(epochs=1).fit(X, y, progress=False)
    long = (["the", "cat", "sat", "quickly"] * 40)
    with pytest.warns(UserWarning, match=r"1 sentence\(s\) longer than any in training \(this one 160 tokens, the "
                                         r"longest in training 12\): tagged all the same") as caught:
        tags = tagger.predict([["a", "dog"], long])
    assert len(tags[1]) == 160 and len(caught) == 1 and "\n" not in str(caught[0].message)
    path = tmp_path / "long.txt"
    path.write_text("a dog ran\n" + " ".join(long) + "\n")
    run = tmp_path / "run"
    tagger.save(run)
    # A process of its own: pytest records warnings instead of letting rnnkit print them.
    done = subprocess.run([sys.executable, "-m", "rnnkit", "tag", "tag", str(run), "--file", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2 and done.stdout.startswith("a/")
    warning = [line for line in done.stderr.splitlines() if "longer than any" in line]
    assert warning == [f"rnnkit: warning: {path}:2: 1 sentence(s) longer than any in training (this one 160 tokens, "
                       f"the longest in training 12): tagged all the same (a recurrent tagger reads any length), but "
                       f"tags past 12 tokens are untested"]


def test_bounds_of_the_tag_flags(capsys):
    assert main(["tag", "train", "--train", "/nonexistent", "--char-kernel-size", "1000"]) == 2
    assert "char_kernel_size=1000: expected an integer >= 1 and <= 64" in one_error_line(capsys)


# ---------------------------------------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(output_layer="softmax", char_model="cnn"),
                                dict(output_layer="crf", char_model="bilstm"),
                                dict(output_layer="softmax", char_model="none", cell="gru")])
def test_the_onnx_graph_gives_the_scores_the_tagger_computes(tmp_path, kw):
    pytest.importorskip("onnxruntime")
    from rnnkit.export.onnx import export_onnx, max_abs_difference

    torch.manual_seed(0)
    X, y = pos_data(40)
    tagger = small(epochs=1, **kw).fit(X, y, progress=False)
    info = export_onnx(tagger, tmp_path / "tagger.onnx")
    assert info["outputs"] == ["scores"] and info["kind"] == "whole-sequence"
    assert max_abs_difference(tagger, tmp_path / "tagger.onnx") < 1e-4


def test_a_series_tagger_exports_to_onnx_and_not_to_c(tmp_path):
    pytest.importorskip("onnxruntime")
    from rnnkit.export.onnx import export_onnx, max_abs_difference
    from rnnkit.tasks.base import ExportRefused

    X, y = rising_series(20, 0)
    tagger = small(epochs=1).fit(X, y, progress=False)
    export_onnx(tagger, tmp_path / "s.onnx")
    assert max_abs_difference(tagger, tmp_path / "s.onnx") < 1e-4
    with pytest.raises(ExportRefused, match=r"^a tag run \(a bidirectional tagger\): cannot be exported to C: "):
        tagger.export_spec("c")
