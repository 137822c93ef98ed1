"""Word vectors: loading GloVe text, neighbours, analogies (3CosAdd, 3CosMul), benchmark evaluation,
Spearman with ties, the PCA plot and the `rnnkit embed` commands, all on tiny hand-made files."""

import argparse
import itertools
import json
import math
import re

import numpy as np
import pytest
from scipy.stats import rankdata

from rnnkit.cli import main
from rnnkit.tasks.embeddings import cli as embed_cli
from rnnkit.tasks.embeddings.data import read_analogies, read_similarity_pairs
from rnnkit.tasks.embeddings.task import (
    Embeddings,
    evaluate_analogies,
    evaluate_similarity,
    pca_2d,
    plot_words,
    principal_axes,
    project_words,
    spearman,
)


def msg(text):
    return re.escape(text)


def write_glove(path, rows):
    path.write_text("".join(w + " " + " ".join(repr(float(x)) for x in v) + "\n" for w, v in rows),
                    encoding="utf-8")
    return path


# Built so that every answer is known by hand:
#   king - man + woman = (0, 1, 1)  -> queen (0.1, 1, 1) is the closest word that is not a query word.
#   Vectors are unnormalised on purpose (cosine must not care about length).
ROYALS = [
    ("man", (2.0, 0.0, 0.0)),
    ("king", (1.0, 1.0, 0.0)),
    ("woman", (0.0, 0.0, 3.0)),
    ("queen", (0.1, 1.0, 1.0)),
    ("prince", (1.0, 1.0, -0.5)),
    ("apple", (0.0, -1.0, 0.2)),
]


@pytest.fixture
def royals(tmp_path):
    return write_glove(tmp_path / "royals.txt", ROYALS)


def cos(u, v):
    u, v = np.asarray(u, dtype=float), np.asarray(v, dtype=float)
    return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))


# --- loading and looking up -----------------------------------------------------------------------

def test_load_text_file_and_lookup(royals):
    emb = Embeddings.load(royals)
    assert emb.words == [w for w, _ in ROYALS] and emb.dim == 3 and len(emb) == 6
    np.testing.assert_allclose(emb.get("queen"), [0.1, 1.0, 1.0], rtol=1e-6)
    assert emb.get("nobody") is None
    unit = emb.unit_vectors()
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)
    assert emb.unit_vectors() is unit                      # computed once
    assert emb.restrict(2).words == ["man", "king"]
    assert Embeddings.load(royals, num_words=2).words == ["man", "king"]
    assert emb.similarity("king", "prince") == pytest.approx(cos((1, 1, 0), (1, 1, -0.5)), rel=1e-6)


def test_text_format_errors_name_file_and_line(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("a 1 2 3\nb 4 5 6\nc 7 8\n")
    with pytest.raises(ValueError, match=msg(f"{short}: line 3 has 2 numbers; expected 3 like the first line")):
        Embeddings.load(short)
    nan = tmp_path / "nan.txt"
    nan.write_text("a 1 2\n\nb 4 x\n")
    with pytest.raises(ValueError, match=msg(f"{nan}: line 3: word 'b' has a value that is not a number")):
        Embeddings.load(nan)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("a 1 2\ncaf\xe9 3 4\n".encode("latin-1"))
    with pytest.raises(ValueError, match=msg(f"{latin}: line 2 is not valid utf-8")):
        Embeddings.load(latin)
    assert Embeddings.load(latin, encoding="latin-1").words == ["a", "café"]
    with pytest.raises(FileNotFoundError, match=msg("embeddings='nowhere.txt': no such file and no such dataset")):
        Embeddings.load("nowhere.txt")


def test_unknown_word_is_named_with_suggestions(tmp_path):
    emb = Embeddings.load(write_glove(tmp_path / "g.txt", [("paris", (1, 0)), ("france", (0, 1))]))
    with pytest.raises(ValueError, match=msg("word='Paris': not in the vocabulary of ") + ".*"
                       + msg("(2 words); did you mean 'paris'?")):
        emb.neighbors("Paris")
    with pytest.raises(ValueError, match=msg("word='zzz': not in the vocabulary of ") + r".*words\)$"):
        emb.neighbors("zzz")
    with pytest.raises(ValueError, match=msg("c='rome'")):
        emb.analogy("paris", "france", "rome")


# --- neighbours and analogies ---------------------------------------------------------------------

def test_neighbors_are_ordered_by_cosine(royals):
    emb = Embeddings.load(royals)
    got = emb.neighbors("king", num_results=10)
    vec = dict(ROYALS)
    expected = sorted(((w, cos(vec["king"], v)) for w, v in ROYALS if w != "king"), key=lambda t: -t[1])
    assert [w for w, _ in got] == [w for w, _ in expected]          # all 5 others, the word itself left out
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5)
    assert [w for w, _ in emb.neighbors("king", num_results=2)] == [w for w, _ in expected[:2]]
    with pytest.raises(ValueError, match=msg("num_results=0: expected an integer >= 1")):
        emb.neighbors("king", num_results=0)
    # rnnkit 0.1's top= still works for one release, with a warning naming the new name
    with pytest.warns(FutureWarning, match="top is renamed num_results; the old name goes in the next release"):
        assert emb.neighbors("king", top=2) == emb.neighbors("king", num_results=2)
    with pytest.warns(FutureWarning, match="top is renamed num_results"):
        assert emb.analogy("king", "man", "woman", top=2) == emb.analogy("king", "man", "woman", num_results=2)


def test_analogy_3cosadd_known_answer(royals):
    emb = Embeddings.load(royals)
    vec = dict(ROYALS)
    got = emb.analogy("king", "man", "woman", num_results=3)        # king - man + woman
    assert got[0][0] == "queen"
    # The score is cos(x, king) - cos(x, man) + cos(x, woman).
    q = vec["queen"]
    assert got[0][1] == pytest.approx(cos(q, vec["king"]) - cos(q, vec["man"]) + cos(q, vec["woman"]), rel=1e-5)
    assert {w for w, _ in got}.isdisjoint({"man", "king", "woman"})


def test_3cosadd_excludes_the_query_words(tmp_path):
    # b - a + c = (0, 1.1) points almost exactly at c itself; the answer must be the next best word.
    emb = Embeddings.load(write_glove(tmp_path / "g.txt", [
        ("a", (1.0, 0.0)), ("b", (1.0, 0.1)), ("c", (0.0, 1.0)), ("d", (0.5, 1.0)), ("e", (-1.0, 0.2))]))
    unit = emb.unit_vectors()
    raw = unit @ (unit[1] - unit[0] + unit[2])
    assert emb.words[int(raw.argmax())] == "c"                      # without exclusion c would win
    got = emb.analogy("b", "a", "c", num_results=5)                 # b - a + c
    assert [w for w, _ in got] == ["d", "e"]                        # only the two non-query words
    np.testing.assert_allclose([s for _, s in got], [raw[3], raw[4]], rtol=1e-6)


def test_3cosmul_matches_the_formula(royals):
    emb = Embeddings.load(royals)
    vec = dict(ROYALS)

    def shifted(x, y):
        return (cos(x, y) + 1) / 2

    expected = {w: shifted(v, vec["king"]) * shifted(v, vec["woman"]) / (shifted(v, vec["man"]) + 1e-3)
                for w, v in ROYALS if w not in ("man", "king", "woman")}
    got = emb.analogy("king", "man", "woman", num_results=3, method="3cosmul")
    assert [w for w, _ in got] == sorted(expected, key=lambda w: -expected[w])
    for w, s in got:
        assert s == pytest.approx(expected[w], rel=1e-5)
    with pytest.raises(ValueError, match=msg("method='3cosdiv': expected one of '3cosadd', '3cosmul'")):
        emb.analogy("king", "man", "woman", method="3cosdiv")


# --- Spearman -------------------------------------------------------------------------------------

def test_rankdata_averages_ties():
    # spearman() relies on scipy's ranks: tied values share the average of the ranks they span.
    np.testing.assert_array_equal(rankdata([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
    np.testing.assert_array_equal(rankdata([3, 1, 3, 3]), [3, 1, 3, 3])    # ranks 2, 3, 4 -> 3
    np.testing.assert_array_equal(rankdata([0.5]), [1])


def test_spearman_with_ties_by_hand():
    # ranks x = [1, 2.5, 2.5, 4], y = [1, 3, 2, 4]; centred: [-1.5, 0, 0, 1.5], [-1.5, .5, -.5, 1.5]
    # sum of products 4.5; sums of squares 4.5 and 5.0 -> rho = 4.5 / sqrt(22.5) = sqrt(0.9)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9), rel=1e-12)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 4, 9]) == pytest.approx(1.0)           # monotone, not linear
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))                     # a constant has no ranking
    with pytest.raises(ValueError, match="x has 3 values but y has 2"):
        spearman([1, 2, 3], [1, 2])


# --- evaluation -----------------------------------------------------------------------------------

ANALOGY_FILE = """\
: capital-common-countries
paris france rome italy
paris france tokyo japan
paris france berlin narnia
: gram8-plural
cat cats dog dogs
Cat cats dog dogs

cat cats frog frogs
"""


def toy_vectors():
    # Countries = capital + (0, 0, 1); plurals = singular + (0, 0, 0, 1) in a 4-d space.
    return [
        ("paris", (1.0, 0.0, 0.0, 0.0)), ("france", (1.0, 0.0, 1.0, 0.0)),
        ("rome", (0.0, 1.0, 0.0, 0.0)), ("italy", (0.0, 1.0, 1.0, 0.0)),
        ("tokyo", (0.7, 0.7, 0.0, 0.0)), ("japan", (0.7, 0.7, 1.0, 0.0)),
        ("cat", (0.3, 0.0, 0.0, 0.2)), ("cats", (0.3, 0.0, 0.0, 1.2)),
        ("dog", (0.0, 0.3, 0.0, 0.2)), ("dogs", (0.0, 0.3, 0.0, 1.2)),
        ("berlin", (0.2, 0.2, 0.2, 0.2)),
        ("frog", (0.0, 0.0, 0.3, 0.2)),       # rare words: last in the file, outside num_words=11
        ("frogs", (0.0, 0.0, 0.3, 1.2)),
    ]


@pytest.fixture
def toy(tmp_path):
    return Embeddings.load(write_glove(tmp_path / "toy.txt", toy_vectors()))


def test_read_analogies_and_its_errors(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text(ANALOGY_FILE)
    q = read_analogies(path)
    assert list(q["section"]) == ["capital-common-countries"] * 3 + ["gram8-plural"] * 3
    assert list(q["a"][:2]) == ["paris", "paris"] and q["d"][-1] == "frogs"
    bad = tmp_path / "bad.txt"
    bad.write_text(": s\na b c d\na b c\n")
    with pytest.raises(ValueError, match=msg(f"{bad}: line 3 has 3 words ('a b c'); expected four words")):
        read_analogies(bad)
    no_section = tmp_path / "plain.txt"
    no_section.write_text("a b c d\n")
    assert list(read_analogies(no_section)["section"]) == ["questions"]


def test_analogy_eval_counts_and_skips(tmp_path, toy):
    path = tmp_path / "q.txt"
    path.write_text(ANALOGY_FILE)
    q = read_analogies(path)
    res = evaluate_analogies(toy, q, num_words=None)
    caps, plurals = res["sections"]["capital-common-countries"], res["sections"]["gram8-plural"]
    # 'narnia' is unknown: skipped, not scored. The other capital questions are exact by construction.
    assert (caps["correct"], caps["answered"], caps["skipped"], caps["questions"]) == (2, 2, 1, 3)
    # 'Cat' is matched case-insensitively (as gensim does), so all three plural questions count.
    assert (plurals["correct"], plurals["answered"], plurals["skipped"]) == (3, 3, 0)
    assert res["semantic"]["answered"] == 2 and res["syntactic"]["answered"] == 3
    assert res["total"]["accuracy"] == 1.0 and res["total"]["accuracy_all"] == pytest.approx(5 / 6)

    # Case-sensitive: 'Cat' becomes unknown.
    assert evaluate_analogies(toy, q, num_words=None, lower=False)["sections"]["gram8-plural"]["skipped"] == 1
    # Restricted to the 11 most frequent words: frog/frogs drop out as question words.
    res = evaluate_analogies(toy, q, num_words=11)
    assert res["num_words"] == 11
    assert res["sections"]["gram8-plural"]["skipped"] == 1
    assert res["total"]["skipped"] == 2 and res["total"]["answered"] == 4


def test_analogy_eval_agrees_with_single_queries_and_batches():
    # Random (a, b, c) triples: the batched evaluation must pick what analogy() picks, for both methods,
    # whatever the batch size. Random vectors make exact ties between candidates (practically) impossible.
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    emb = Embeddings(words, rng.normal(size=(40, 8)).astype(np.float32))
    triples = [tuple(rng.choice(words, size=3, replace=False)) for _ in range(50)]
    for method in ("3cosadd", "3cosmul"):
        # The file's question a:b :: c:? is b - a + c, i.e. analogy(b, a, c).
        answers = [emb.analogy(b, a, c, method=method)[0][0] for a, b, c in triples]
        q = {"section": np.array(["s"] * len(triples), dtype=object),
             **{k: np.array([t[i] for t in triples], dtype=object) for i, k in enumerate("abc")},
             "d": np.array(answers, dtype=object)}
        for batch_size in (1, 7, 1000):
            res = evaluate_analogies(emb, q, num_words=None, method=method, batch_size=batch_size)
            assert res["total"]["correct"] == len(triples)


def test_case_variants_of_query_words_are_not_answers(tmp_path):
    # With case-insensitive matching 'Paris' is the same word as 'paris': it must not be the answer.
    emb = Embeddings.load(write_glove(tmp_path / "g.txt", [
        ("paris", (1.0, 0.0)), ("france", (1.0, 0.2)), ("rome", (0.0, 1.0)), ("Rome", (0.05, 1.0)),
        ("italy", (0.3, 1.0))]))
    q = {"section": np.array(["s"], dtype=object), "a": np.array(["paris"], dtype=object),
         "b": np.array(["france"], dtype=object), "c": np.array(["rome"], dtype=object),
         "d": np.array(["italy"], dtype=object)}
    assert evaluate_analogies(emb, q, num_words=None)["total"]["correct"] == 1
    # Case-sensitive, 'Rome' is another word and the closest one.
    assert evaluate_analogies(emb, q, num_words=None, lower=False)["total"]["correct"] == 0


def test_similarity_eval_skips_unknown_pairs(tmp_path, toy):
    path = tmp_path / "ws.tsv"
    path.write_text("# a comment\nWord 1\tWord 2\tHuman (mean)\nparis\tfrance\t8.0\nCat\tcats\t9.0\n"
                    "dog\tunicorn\t3.0\nrome\tdogs\t1.0\ncat\tdog\t5.5\n")
    pairs = read_similarity_pairs(path)
    assert list(pairs["word1"]) == ["paris", "Cat", "dog", "rome", "cat"]
    res = evaluate_similarity(toy, pairs)
    assert (res["pairs"], res["used"], res["skipped"]) == (5, 4, 1)
    assert res["skipped_pairs"] == [("dog", "unicorn")]
    vec = dict(toy_vectors())
    cosines = [cos(vec["paris"], vec["france"]), cos(vec["cat"], vec["cats"]), cos(vec["rome"], vec["dogs"]),
               cos(vec["cat"], vec["dog"])]
    assert res["spearman"] == pytest.approx(spearman(cosines, [8.0, 9.0, 1.0, 5.5]))

    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,1\nc,d,lots\n")
    with pytest.raises(ValueError, match=msg(f"{bad}: line 2: score 'lots' is not a number")):
        read_similarity_pairs(bad)
    with pytest.raises(ValueError, match="only 0 of 1 pairs have both words"):
        evaluate_similarity(toy, {"word1": ["x"], "word2": ["y"], "score": np.array([1.0])})


# --- the 2-D picture ------------------------------------------------------------------------------

def test_pca_2d_keeps_planar_distances():
    rng = np.random.default_rng(0)
    plane = rng.normal(size=(6, 2))
    basis = np.linalg.qr(rng.normal(size=(5, 2)))[0]                # orthonormal (5, 2)
    points = plane @ basis.T + 3.0                                  # 6 points on a plane in 5-d, shifted
    coords = pca_2d(points)
    def dist(p):
        return np.linalg.norm(p[:, None] - p[None], axis=-1)

    np.testing.assert_allclose(dist(coords), dist(plane), atol=1e-9)
    # Collinear points: everything lies on the first axis.
    line = np.outer([0.0, 1.0, 3.0], [1.0, 2.0, 2.0])
    np.testing.assert_allclose(np.abs(pca_2d(line)[:, 0]), np.abs([-4 / 3, -1 / 3, 5 / 3]) * 3, atol=1e-9)
    np.testing.assert_allclose(pca_2d(line)[:, 1], 0.0, atol=1e-9)


def test_plot_writes_a_png(tmp_path, toy):
    out = plot_words(toy, ["paris", "france", "rome", "italy"], tmp_path / "sub" / "words.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=msg("word='atlantis'")):
        plot_words(toy, ["paris", "atlantis"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# --- the command line -----------------------------------------------------------------------------

def test_cli_neighbors_and_analogy(royals, capsys):
    assert main(["embed", "neighbors", "king", "--embeddings", str(royals), "--num-results", "2"]) == 0
    out = capsys.readouterr().out
    lines = [ln.split() for ln in out.splitlines()[1:]]
    assert [ln[1] for ln in lines] == ["prince", "man"]             # cos 0.943 and 0.707; queen is 0.549
    assert float(lines[0][2]) == pytest.approx(cos((1, 1, 0), (1, 1, -0.5)), abs=1e-4)
    assert main(["embed", "analogy", "king", "man", "woman", "--embeddings", str(royals),
                 "--num-results", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[1] == "queen"


def test_cli_and_python_analogy_take_the_words_in_the_same_order(tmp_path, capsys):
    # Random vectors: each order of the three words has its own answer, and the command line and
    # Embeddings.analogy must give the same one for the same order, with either method.
    rng = np.random.default_rng(3)
    rows = [(f"w{i}", rng.normal(size=6)) for i in range(30)]
    glove = write_glove(tmp_path / "r.txt", rows)
    emb = Embeddings.load(glove)
    for method in ("3cosadd", "3cosmul"):
        answers = set()
        for a, b, c in itertools.permutations(["w0", "w1", "w2"]):
            expected = emb.analogy(a, b, c, method=method)[0][0]
            assert main(["embed", "analogy", a, b, c, "--embeddings", str(glove), "--num-results", "1",
                         "--method", method]) == 0
            assert capsys.readouterr().out.splitlines()[1].split()[1] == expected
            answers.add(expected)
        assert len(answers) > 1                                     # the order matters


def test_cli_unknown_word_exits_2(royals, capsys):
    assert main(["embed", "neighbors", "King", "--embeddings", str(royals)]) == 2
    assert "word='King': not in the vocabulary" in capsys.readouterr().err
    assert main(["embed", "analogy", "king", "men", "woman", "--embeddings", str(royals)]) == 2
    assert "B='men': not in the vocabulary" in capsys.readouterr().err


def test_cli_eval_dry_run_with_files_and_report(tmp_path, toy, capsys):
    glove = write_glove(tmp_path / "toy.txt", toy_vectors())
    q = tmp_path / "q.txt"
    q.write_text(ANALOGY_FILE)
    ws = tmp_path / "ws.tsv"
    ws.write_text("paris\tfrance\t8\ncat\tcats\t9\ndog\tunicorn\t3\nrome\tdogs\t1\n")
    report = tmp_path / "eval.json"
    assert main(["embed", "eval", "--embeddings", str(glove), "--analogies", str(q), "--similarity", str(ws),
                 "--num-words", "11", "-o", str(report), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 of 6 questions skipped" in out
    assert "over 3 of 4 pairs; 1 skipped" in out
    data = json.loads(report.read_text())
    assert data["analogies"]["total"]["correct"] == 4 and data["analogies"]["num_words"] == 11
    assert data["similarity"]["skipped_pairs"] == [["dog", "unicorn"]]
    # --dry-run keeps 5 questions per section: a file with 7 in one section evaluates 5.
    many = tmp_path / "many.txt"
    many.write_text(": s\n" + "paris france rome italy\n" * 7)
    assert main(["embed", "eval", "--embeddings", str(glove), "--analogies", str(many), "--similarity", "none",
                 "--output", str(report), "--dry-run"]) == 0
    assert json.loads(report.read_text())["analogies"]["total"]["questions"] == 5


def test_embed_help_renders_in_the_one_vocabulary():
    parser = argparse.ArgumentParser(prog="rnnkit")
    groups = parser.add_subparsers()
    embed_cli.add_commands(groups)
    verbs = next(a for a in groups.choices["embed"]._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(verbs) == {"neighbors", "analogy", "eval", "plot", "train", "predict", "export"}
    # The verbs that explore vectors; train takes the training flags every train verb has (tests/test_cli.py).
    for name, p in ((n, verbs[n]) for n in ("neighbors", "analogy", "eval", "plot")):
        text = p.format_help()
        for markup in ("``", ":class:", ":func:", ":mod:", ":meth:"):
            assert markup not in text, f"embed {name} --help shows {markup!r}"
        options = [a for a in p._actions if a.option_strings and not isinstance(a, argparse._HelpAction)
                   and a.help != argparse.SUPPRESS]             # an old spelling (--top) is parsed, not shown
        assert text.lower().count("default") == len(options), f"embed {name} --help: one default per flag"
        assert "--num-words" in text and "--max-words" not in text and "--top " not in text
        assert "--report" not in text and "--out " not in text
    assert "-o FILE, --output FILE" in verbs["eval"].format_help()
    assert "-o FILE, --output FILE" in verbs["plot"].format_help()
    assert "--lower, --no-lower" in verbs["eval"].format_help()
    args = parser.parse_args(["embed", "eval", "--no-lower", "--num-words", "none", "-o", "r.json"])
    cfg = embed_cli.config_from_args(embed_cli.EvalConfig, args)
    assert (cfg.lower, cfg.num_words, cfg.output) == (False, None, "r.json")


def test_cli_plot(tmp_path, royals, capsys):
    out = tmp_path / "w.png"
    assert main(["embed", "plot", "king", "queen", "man", "woman", "--embeddings", str(royals),
                 "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert "4 words" in capsys.readouterr().out


# Gender along x, royalty (smaller) along y: the first principal axis of these four words is gender.
GENDER = [("man", (1.0, 0.0, 0.0)), ("woman", (-1.0, 0.0, 0.0)), ("king", (1.0, 1.0, 0.0)),
          ("queen", (-1.0, 1.0, 0.0)), ("he", (3.0, 0.0, 0.1)), ("she", (-3.0, 0.0, 0.1)), ("crown", (0.0, 5.0, 0.0)),
          ("apple", (0.0, -0.5, 0.3))]


def test_principal_axes_name_what_each_axis_is(tmp_path):
    emb = Embeddings.load(write_glove(tmp_path / "g.txt", GENDER))
    words = ["man", "woman", "king", "queen"]
    coords, axes, share = principal_axes(np.array([v for w, v in GENDER[:4]]))
    # Centred: x = +-1, y = +-0.5: the spread is 4 * 1 along x and 4 * 0.25 along y.
    np.testing.assert_allclose(share, [1 / 1.25, 0.25 / 1.25], rtol=1e-9)
    np.testing.assert_allclose(np.abs(axes), [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    assert coords[np.abs(coords[:, 0]).argmax(), 0] > 0               # each axis points to its largest coordinate
    projection = project_words(emb, words, num_ends=2)
    x_end = {frozenset(end) for end in projection.ends[0]["plotted"]}
    assert x_end == {frozenset({"man", "king"}), frozenset({"woman", "queen"})}
    y_low, y_high = projection.ends[1]["plotted"]
    assert set(y_high) == {"king", "queen"} and set(y_low) == {"man", "woman"}
    # Along the same directions over the whole vocabulary (the plotted words left out): he/she, crown/apple.
    low, high = projection.ends[0]["vocabulary"]
    assert {low[0], high[0]} == {"he", "she"}
    assert projection.ends[1]["vocabulary"][1][0] == "crown" and projection.ends[1]["vocabulary"][0][0] == "apple"


def test_cli_plot_prints_the_axes_and_tsne_draws_neighbourhoods(tmp_path, capsys):
    glove = write_glove(tmp_path / "g.txt", GENDER)
    assert main(["embed", "plot", "man", "woman", "king", "queen", "--embeddings", str(glove), "-o",
                 str(tmp_path / "pca.png")]) == 0
    out = capsys.readouterr().out
    axis1 = next(line for line in out.splitlines() if line.strip().startswith("axis 1"))
    assert "(80% of the spread)" in axis1 and "<->" in axis1
    assert "furthest along it among the 8 most frequent words:" in out
    png = tmp_path / "tsne.png"
    assert main(["embed", "plot", "man", "woman", "king", "queen", "he", "she", "--method", "tsne",
                 "--embeddings", str(glove), "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG" and "t-SNE with perplexity" in capsys.readouterr().out
    assert main(["embed", "plot", "man", "woman", "--method", "tsne", "--embeddings", str(glove), "-o",
                 str(tmp_path / "x.png")]) == 2
    assert "words: 2 given; expected at least 3 for t-SNE" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
