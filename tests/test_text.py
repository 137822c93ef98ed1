"""Tokenizer, padding and one-hot encoding, checked against hand-computed numbers (Keras semantics)."""

import json
import math
import os
import re

import numpy as np
import pytest

from rnnkit.text import Tokenizer, length_buckets, one_hot, pad_sequences, text_to_word_sequence, to_categorical

CORPUS = ["Alice in wonderland.", "When suddenly Alice saw a White Rabbit."]


@pytest.fixture
def tok():
    return Tokenizer().fit_on_texts(CORPUS)


def msg(text):
    return re.escape(text)


# --- fitting and word_index -------------------------------------------------------------------

def test_lecture_example(tok):
    # "alice" occurs twice, so it comes first; the rest keep the order of first appearance.
    assert list(tok.word_index) == ["alice", "in", "wonderland", "when", "suddenly", "saw", "a", "white",
                                    "rabbit"]
    assert list(tok.word_index.values()) == list(range(1, 10))
    assert tok.texts_to_sequences(["Alice in wonderland."]) == [[1, 2, 3]]
    padded = pad_sequences(tok.texts_to_sequences(["Alice in wonderland."]), maxlen=10)
    assert padded.tolist() == [[0, 0, 0, 0, 0, 0, 0, 1, 2, 3]]
    assert padded.dtype == np.int32


def test_counts_docs_and_inverse(tok):
    assert tok.document_count == 2
    assert tok.word_counts["alice"] == 2 and tok.word_counts["rabbit"] == 1
    assert tok.word_docs["alice"] == 2 and tok.word_docs["in"] == 1
    assert tok.index_docs[1] == 2
    assert tok.index_word[9] == "rabbit"
    assert tok.vocab_size == 10
    assert tok.sequences_to_texts([[1, 2, 3], [0, 9, 42]]) == ["alice in wonderland", "rabbit"]


def test_word_counted_once_per_document_and_incremental_fit():
    t = Tokenizer().fit_on_texts(["b a a a", "b"])
    assert t.word_counts == {"b": 2, "a": 3}
    assert t.word_docs == {"b": 2, "a": 1}
    assert t.word_index == {"a": 1, "b": 2}
    t.fit_on_texts(["b b"])  # counts add up across calls and the index is rebuilt
    assert t.word_index == {"b": 1, "a": 2} and t.document_count == 3


def test_text_to_word_sequence_filters_and_split():
    assert text_to_word_sequence("Hello, World!  Hi") == ["hello", "world", "hi"]
    assert text_to_word_sequence("a-b;c", filters="-", split=";", lower=False) == ["a", "b", "c"]
    t = Tokenizer(filters="", lower=False).fit_on_texts(["Hi, hi"])
    assert t.word_index == {"Hi,": 1, "hi": 2}


def test_oov_token(tok):
    t = Tokenizer(oov_token="<OOV>").fit_on_texts(CORPUS)
    assert t.word_index["<OOV>"] == 1 and t.word_index["alice"] == 2
    assert t.texts_to_sequences(["Alice met the Rabbit"]) == [[2, 1, 1, 10]]
    assert t.sequences_to_texts([[2, 1, 1, 10, 99]]) == ["alice <OOV> <OOV> rabbit <OOV>"]
    assert t.vocab_size == 11
    # Without an oov_token unknown words simply vanish.
    assert tok.texts_to_sequences(["Alice met the Rabbit"]) == [[1, 9]]


def test_oov_token_in_text_keeps_index_1():
    t = Tokenizer(oov_token="unk", filters="").fit_on_texts(["x unk unk y"])
    assert t.word_index == {"unk": 1, "x": 2, "y": 3}


def test_num_words_cut_off():
    t = Tokenizer(num_words=3).fit_on_texts(CORPUS)
    assert len(t.word_index) == 9  # the index is not shrunk, only conversions are
    assert t.texts_to_sequences(["Alice in wonderland."]) == [[1, 2]]
    assert t.sequences_to_texts([[1, 2, 3]]) == ["alice in"]
    assert t.vocab_size == 3
    assert t.texts_to_matrix(["Alice in wonderland."]).tolist() == [[0, 1, 1]]
    t = Tokenizer(num_words=3, oov_token="<OOV>").fit_on_texts(CORPUS)
    assert t.texts_to_sequences(["Alice in wonderland."]) == [[2, 1, 1]]
    # num_words larger than the vocabulary: vocab_size stays the real size, the matrix is num_words wide
    t = Tokenizer(num_words=50).fit_on_texts(CORPUS)
    assert t.vocab_size == 10 and t.texts_to_matrix(["alice"]).shape == (1, 50)


# --- matrices ---------------------------------------------------------------------------------

def test_matrix_modes(tok):
    texts = ["alice alice rabbit", "in"]
    binary = np.zeros((2, 10)); binary[0, 1] = binary[0, 9] = binary[1, 2] = 1
    count = np.zeros((2, 10)); count[0, 1] = 2; count[0, 9] = 1; count[1, 2] = 1
    freq = np.zeros((2, 10)); freq[0, 1] = 2 / 3; freq[0, 9] = 1 / 3; freq[1, 2] = 1
    # tfidf, with 2 documents: alice is in 2 of them, rabbit and in in 1.
    #   alice: (1 + ln 2) * ln(1 + 2/3) = 1.6931472 * 0.5108256 = 0.8649030
    #   rabbit, in: 1 * ln(1 + 2/2) = 0.6931472
    tfidf = np.zeros((2, 10)); tfidf[0, 1] = 0.8649030; tfidf[0, 9] = tfidf[1, 2] = 0.6931472
    for mode, want in [("binary", binary), ("count", count), ("freq", freq), ("tfidf", tfidf)]:
        got = tok.texts_to_matrix(texts, mode=mode)
        assert got.shape == (2, 10) and got.dtype == np.float64
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=mode)
    assert math.isclose(tok.texts_to_matrix(["alice alice"], mode="tfidf")[0, 1],
                        (1 + math.log(2)) * math.log(1 + 2 / 3))


def test_sequences_to_matrix_freq_counts_cut_tokens_in_length():
    t = Tokenizer(num_words=3).fit_on_texts(CORPUS)
    # Index 5 is beyond num_words: ignored as a column but still part of len(seq), as in Keras.
    np.testing.assert_allclose(t.sequences_to_matrix([[1, 5, 5], []], mode="freq"), [[0, 1 / 3, 0], [0, 0, 0]])


def test_matrix_errors(tok):
    with pytest.raises(ValueError, match=msg("mode='tf': expected one of 'binary', 'count', 'freq', 'tfidf'")):
        tok.texts_to_matrix(["alice"], mode="tf")
    with pytest.raises(ValueError, match="not fitted"):
        Tokenizer().texts_to_matrix(["alice"])
    with pytest.raises(ValueError, match="tfidf"):
        Tokenizer(num_words=5).sequences_to_matrix([[1]], mode="tfidf")
    with pytest.raises(ValueError, match=msg("sequences[0][1]='x': expected an integer")):
        tok.sequences_to_matrix([[1, "x"]])


# --- character level --------------------------------------------------------------------------

def test_char_level():
    t = Tokenizer(char_level=True, lower=False, filters="").fit_on_texts(["abca", "Ab!"])
    assert t.word_index == {"a": 1, "b": 2, "c": 3, "A": 4, "!": 5}
    assert t.texts_to_sequences(["cab!"]) == [[3, 1, 2, 5]]
    assert t.sequences_to_texts([[3, 1, 2, 5]]) == ["cab!"]  # characters are joined with ''
    # Keras semantics: lower applies at character level, filters do not (spaces and '!' are tokens).
    t = Tokenizer(char_level=True).fit_on_texts(["Ab! a"])
    assert t.word_index == {"a": 1, "b": 2, "!": 3, " ": 4}


# --- saving -----------------------------------------------------------------------------------

def test_json_round_trip():
    t = Tokenizer(num_words=6, oov_token="<OOV>", lower=False).fit_on_texts(CORPUS + ["Alice again"])
    u = Tokenizer.from_json(t.to_json())
    assert u.get_config() == t.get_config()
    assert list(u.word_index.items()) == list(t.word_index.items())
    assert u.index_word == t.index_word and u.word_docs == t.word_docs and u.index_docs == t.index_docs
    assert list(u.word_counts.items()) == list(t.word_counts.items())
    assert u.document_count == 3
    texts = ["Alice saw the White Rabbit"]
    assert u.texts_to_sequences(texts) == t.texts_to_sequences(texts)
    np.testing.assert_array_equal(u.texts_to_matrix(texts, "tfidf"), t.texts_to_matrix(texts, "tfidf"))
    # A loaded tokenizer can keep learning, with the same tie order as the original.
    assert u.fit_on_texts(["new words"]).word_index == t.fit_on_texts(["new words"]).word_index


def test_save_load(tmp_path):
    t = Tokenizer(char_level=True, lower=False).fit_on_texts(["héllo\nwörld"])
    path = tmp_path / "vocab.json"
    t.save(path)
    t.save(path)  # overwriting is fine
    assert os.listdir(tmp_path) == ["vocab.json"]  # no temporary file left behind
    u = Tokenizer.load(path)
    assert u.word_index == t.word_index and u.char_level and "\n" in u.word_index
    assert json.loads(path.read_text(encoding="utf-8"))["format"] == "rnnkit.Tokenizer"


def test_load_bad_files(tmp_path):
    good = Tokenizer().fit_on_texts(CORPUS).to_json()
    path = tmp_path / "vocab.json"
    path.write_text(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"vocab\.json: not a valid Tokenizer file: invalid JSON"):
        Tokenizer.load(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"vocab\.json: .*expected a JSON object"):
        Tokenizer.load(path)
    data = json.loads(good)
    for change, problem in [
        ({"format": "keras"}, "'format' is 'keras'"),
        ({"config": {**data["config"], "num_words": 0}}, "num_words=0: expected an integer >= 1"),
        ({"word_index": {"alice": 1, "in": 1}}, "'word_index' does not number its tokens 1..n"),
        ({"word_counts": {"alice": "two"}}, "'word_counts' is not an object of token -> integer"),
        ({"document_count": -1}, "'document_count' is -1"),
    ]:
        path.write_text(json.dumps({**data, **change}))
        with pytest.raises(ValueError, match=msg(str(path)) + ".*" + msg(problem)):
            Tokenizer.load(path)
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match="not UTF-8"):
        Tokenizer.load(path)
    del data["word_docs"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=msg("missing key(s) ['word_docs']")):
        Tokenizer.load(path)


# --- argument checks --------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, text", [
    ({"num_words": 0}, "num_words=0: expected an integer >= 1"),
    ({"num_words": 2.5}, "num_words=2.5: expected an integer >= 1"),
    ({"split": ""}, "split='': expected a non-empty str"),
    ({"lower": "yes"}, "lower='yes': expected True or False"),
    ({"char_level": 1}, "char_level=1: expected True or False"),
    ({"oov_token": 0}, "oov_token=0: expected a str"),
    ({"filters": None}, "filters=None: expected a str"),
])
def test_tokenizer_argument_errors(kwargs, text):
    with pytest.raises(ValueError, match=msg(text)):
        Tokenizer(**kwargs)


def test_texts_errors(tok):
    with pytest.raises(ValueError, match=msg("texts='Alice in wonderland.': expected a list of str")):
        tok.fit_on_texts("Alice in wonderland.")
    with pytest.raises(ValueError, match=msg("texts[1]=3: expected a str")):
        tok.texts_to_sequences(["alice", 3])
    with pytest.raises(ValueError, match=msg("texts=None: expected a list of str")):
        tok.texts_to_sequences(None)
    long_text = "x" * 10_000
    with pytest.raises(ValueError) as info:
        tok.fit_on_texts(long_text)
    assert len(str(info.value)) < 200  # a huge corpus is abbreviated in the message


# --- pad_sequences ----------------------------------------------------------------------------

def test_pad_and_truncate_modes():
    seqs = [[1, 2, 3, 4], [5, 6], []]
    assert pad_sequences(seqs).tolist() == [[1, 2, 3, 4], [0, 0, 5, 6], [0, 0, 0, 0]]
    assert pad_sequences(seqs, padding="post").tolist() == [[1, 2, 3, 4], [5, 6, 0, 0], [0, 0, 0, 0]]
    assert pad_sequences(seqs, maxlen=3).tolist() == [[2, 3, 4], [0, 5, 6], [0, 0, 0]]
    assert pad_sequences(seqs, maxlen=3, truncating="post").tolist() == [[1, 2, 3], [0, 5, 6], [0, 0, 0]]
    assert pad_sequences(seqs, maxlen=3, truncating="post", padding="post", value=-1).tolist() == \
        [[1, 2, 3], [5, 6, -1], [-1, -1, -1]]
    assert pad_sequences(seqs, maxlen=0).shape == (3, 0)
    assert pad_sequences([]).shape == (0, 0)
    out = pad_sequences([[0.5, 1.5]], maxlen=3, dtype="float32")
    assert out.dtype == np.float32 and out.tolist() == [[0.0, 0.5, 1.5]]
    assert pad_sequences((np.array([7, 8]), (9,))).tolist() == [[7, 8], [0, 9]]


def test_pad_vector_items():
    seqs = [np.ones((1, 2)), np.full((3, 2), 2.0)]
    out = pad_sequences(seqs, dtype="float32", padding="post")
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out[0], [[1, 1], [0, 0], [0, 0]])


def test_length_buckets_in_order_and_shuffled():
    lengths = np.array([5, 1, 4, 1, 3, 2, 9])
    groups = length_buckets(lengths, 3)                  # evaluation and inference: sorted, stable
    assert [g.tolist() for g in groups] == [[1, 3, 5], [4, 2, 0], [6]]
    # Training: every row once, batches of 3 (the last smaller); the same rng gives the same batches,
    # another one other batches.
    lengths = np.random.default_rng(0).integers(1, 50, size=200)
    groups = length_buckets(lengths, 3, np.random.default_rng(1), chunk_batches=4)
    assert sorted(np.concatenate(groups).tolist()) == list(range(200))
    assert sorted(len(g) for g in groups)[:2] == [2, 3] and max(len(g) for g in groups) == 3
    again = length_buckets(lengths, 3, np.random.default_rng(1), chunk_batches=4)
    assert all(np.array_equal(a, b) for a, b in zip(groups, again))
    other = length_buckets(lengths, 3, np.random.default_rng(2), chunk_batches=4)
    assert not all(np.array_equal(a, b) for a, b in zip(groups, other))
    # Bucketing pays: a batch's longest row is much closer to its shortest than in a plain shuffle.
    spread = np.mean([lengths[g].max() - lengths[g].min() for g in groups])
    plain = np.random.default_rng(1).permutation(200)
    plain_spread = np.mean([np.ptp(lengths[plain[i:i + 3]]) for i in range(0, 200, 3)])
    assert spread < plain_spread / 2
    assert length_buckets([], 4) == [] and length_buckets([], 4, np.random.default_rng(0)) == []


@pytest.mark.parametrize("kwargs, text", [
    ({"maxlen": -1}, "maxlen=-1: expected an integer >= 0"),
    ({"maxlen": "10"}, "maxlen='10': expected an integer >= 0"),
    ({"padding": "middle"}, "padding='middle': expected one of 'pre', 'post'"),
    ({"truncating": "both"}, "truncating='both': expected one of 'pre', 'post'"),
    ({"dtype": "nonsense"}, "dtype='nonsense': expected a numpy dtype"),
    ({"value": "x"}, "value='x': expected a number for dtype='int32'"),
])
def test_pad_argument_errors(kwargs, text):
    with pytest.raises(ValueError, match=msg(text)):
        pad_sequences([[1, 2]], **kwargs)


def test_pad_sequence_errors():
    with pytest.raises(ValueError, match=msg("sequences[1]=5: expected a sequence")):
        pad_sequences([[1], 5])
    with pytest.raises(ValueError, match=msg("sequences=7: expected a list of sequences")):
        pad_sequences(7)
    with pytest.raises(ValueError, match=msg("sequences[1]=") + ".*items of shape"):
        pad_sequences([np.ones((2, 2)), np.ones((2, 3))])


# --- one-hot ----------------------------------------------------------------------------------

def test_to_categorical():
    np.testing.assert_array_equal(to_categorical([0, 2, 1]), [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    out = to_categorical(np.array([[1], [0]]), num_classes=4)
    assert out.shape == (2, 4) and out.dtype == np.float32 and out.tolist() == [[0, 1, 0, 0], [1, 0, 0, 0]]
    assert to_categorical([[1, 2], [0, 0]], num_classes=3).shape == (2, 2, 3)
    assert to_categorical([1.0, 0.0]).tolist() == [[0, 1], [1, 0]]


def test_to_categorical_errors():
    with pytest.raises(ValueError, match=msg("y=[0, 3]: expected class indices < num_classes=3")):
        to_categorical([0, 3], num_classes=3)
    with pytest.raises(ValueError, match=msg("y=[0, -1]: expected class indices >= 0")):
        to_categorical([0, -1])
    with pytest.raises(ValueError, match=msg("y=[0.5]: expected integer class indices")):
        to_categorical([0.5])
    with pytest.raises(ValueError, match=msg("num_classes=0: expected an integer >= 1")):
        to_categorical([0], num_classes=0)
    with pytest.raises(ValueError, match=msg("num_classes=None: expected an integer >= 1 when y is empty")):
        to_categorical([])


def test_one_hot_sequences():
    t = Tokenizer(char_level=True, lower=False).fit_on_texts(["abb"])
    x = pad_sequences(t.texts_to_sequences(["ab", "b"]), maxlen=2)  # [[2, 1], [0, 1]]: b is more frequent
    out = one_hot(x, num_classes=t.vocab_size)
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], [[0, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(out[1], [[1, 0, 0], [0, 1, 0]])
    assert one_hot([[1]], 2, dtype="float64").dtype == np.float64
    with pytest.raises(ValueError, match=msg("sequences=[[1, 2], [1]]: expected a rectangular array")):
        one_hot([[1, 2], [1]], 3)
    with pytest.raises(ValueError, match=msg("sequences=[[1, 3]]: expected class indices < num_classes=3")):
        one_hot([[1, 3]], 3)
    with pytest.raises(ValueError, match=msg("num_classes=0: expected an integer >= 1")):
        one_hot([[0]], 0)
