"""Visual question answering: the rendered scenes and their answers (checked against the objects drawn), the same
seed giving the same bytes, the merges' numbers (the relation network's split first layer against the pairs written
out), the CSV reader's refusals, training that learns a question the image settles, and bad input to `ask`."""

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from rnnkit.cli import main
from rnnkit.datasets.sort_of_clevr import (COLOUR_NAMES, KINDS, MARGIN, NUMBER_WORDS, Scene, answer, make_split,
                                           make_splits)
from rnnkit.tasks.vqa.data import batches, read_csv
from rnnkit.tasks.vqa.model import VQANet
from rnnkit.tasks.vqa.task import VisualQA


def png(image, mode="RGB"):
    buf = io.BytesIO()
    Image.fromarray((image * 255).astype("uint8")).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def test_scenes_are_seeded_and_each_question_kind_is_asked():
    a, b = make_split(20, 3), make_split(20, 3)
    assert np.array_equal(a.images, b.images) and a.questions == b.questions and a.answers == b.answers
    assert not np.array_equal(make_split(20, 4).images, a.images)
    assert a.images.shape == (20, 75, 75, 3) and a.images.dtype == np.float32
    assert set(a.kinds) == set(KINDS) and len(a) <= 20 * len(KINDS) * 6
    # shape and count are settled for every object: each scene asks them about all six, with six colours named
    for kind in ("shape", "count"):
        asked = [q for q, k, i in zip(a.questions, a.kinds, a.image_index) if k == kind and i == 0]
        assert len(asked) == 6 and len({q.split()[-2] if kind == "count" else q.split()[4] for q in asked}) == 6
    # per_kind=1 asks one object per kind: the first that the every-object split asks (the same draws)
    one = make_split(20, 3, per_kind=1)
    assert len(one) <= 20 * len(KINDS) and set(one.kinds) == set(KINDS)
    first = {}
    for q, k, i in zip(a.questions, a.kinds, a.image_index):
        first.setdefault((int(i), k), q)
    assert [first[(int(i), k)] for k, i in zip(one.kinds, one.image_index)] == one.questions
    train, val, test = make_splits(5, 2, 3, seed=1)
    assert len({train.images.tobytes(), val.images[:2].tobytes(), test.images[:2].tobytes()}) == 3
    assert np.array_equal(make_splits(9, 1, 3, seed=1)[2].images, test.images)   # test never moves with train


def test_answers_follow_the_objects_drawn():
    # Hand-placed: red square at (10, 10), green circle (10, 60), blue square (60, 60); the canvas is 75 wide.
    c = np.array([[10.0, 10.0], [10.0, 60.0], [60.0, 60.0]])
    scene = Scene(np.ones((75, 75, 3), np.float32), ["red", "green", "blue"], ["square", "circle", "square"], c)
    assert answer(scene, "shape", 1, 75) == "circle"
    assert answer(scene, "left", 0, 75) == "yes" and answer(scene, "left", 1, 75) == "no"
    assert answer(scene, "top", 2, 75) == "no"
    assert answer(scene, "closest", 0, 75) == "green"        # 50 px against 70.7 px
    assert answer(scene, "furthest", 1, 75) is None          # red (50 px) and blue (50 px) tie: not asked
    assert answer(scene, "furthest", 0, 75) == "square"      # blue at 70.7
    assert answer(scene, "count", 0, 75) == "two"
    near_middle = Scene(scene.image, scene.colours, scene.shapes, np.array([[10.0, 37.0], [10, 60], [60, 60]]))
    assert abs(37.0 - 37.5) < MARGIN and answer(near_middle, "left", 0, 75) is None     # the picture cannot say
    # The drawn pixels agree: the red object's pixels are where its centre says.
    d = make_split(1, 0, kinds=["shape"])
    red = np.argwhere(np.all(np.abs(d.images[0] - np.array([0.9, 0.1, 0.1])) < 1e-6, axis=2))
    assert len(red) > 50 and d.questions[0].startswith("what shape is the")
    assert d.answers[0] in ("square", "circle") and set(COLOUR_NAMES) >= {d.questions[0].split()[4]}
    counts = [a for a, k in zip(make_split(50, 1).answers, make_split(50, 1).kinds) if k == "count"]
    assert set(counts) <= set(NUMBER_WORDS[1:7])


def test_relation_network_first_layer_split_matches_the_pairs_written_out():
    torch.manual_seed(0)

    class Grid(torch.nn.Module):
        out_channels, image_size = 3, None

        def forward(self, x):
            return torch.nn.functional.avg_pool2d(x, 4)                                   # (B, 3, 2, 2)

    net = VQANet(Grid(), merge="relation", num_answers=4, vocab=10, hidden_size=6, question_size=5,
                 grid_cells=4).double()
    images = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    idx, words, lengths = torch.tensor([1, 0, 1]), torch.tensor([[3, 4, 0], [5, 0, 0], [6, 7, 8]]), \
        torch.tensor([2, 1, 3])
    got = net(images, idx, words, lengths)
    cells, q = net.cells(images)[idx], net.question(words, lengths)
    W = torch.cat([net.rel_a.weight, net.rel_b.weight, net.rel_q.weight], 1)                 # g's first layer whole
    want = []
    for b in range(3):
        pairs = [torch.cat([cells[b, i], cells[b, j], q[b]]) for i in range(4) for j in range(4)]
        h = torch.relu(torch.stack(pairs) @ W.T + net.rel_a.bias)
        want.append(net.head(net.g(h).sum(0)))
    assert torch.allclose(got, torch.stack(want), atol=1e-12)
    # the coordinates: cell (0, 0) is (-1, -1), cell (1, 1) is (1, 1)
    assert cells[0, 0, -2:].tolist() == [-1.0, -1.0] and cells[0, 3, -2:].tolist() == [1.0, 1.0]
    # the question-only baseline ignores the image entirely
    none = VQANet(None, merge="none", num_answers=4, vocab=10, hidden_size=6, question_size=5)
    assert torch.equal(none(None, idx, words, lengths), none(torch.rand(2, 3, 8, 8), idx, words, lengths))


def test_film_runs_the_image_once_and_each_question_picks_its_own_answer():
    torch.manual_seed(0)
    calls = []

    class Wide(torch.nn.Module):               # a pretrained encoder's wide grid: narrowed to film_channels first
        out_channels, image_size = 12, None

        def forward(self, x):
            calls.append(len(x))
            return torch.nn.functional.avg_pool2d(x, 4).repeat(1, 4, 1, 1)               # (B, 12, 2, 2)

    net = VQANet(Wide(), merge="film", num_answers=4, vocab=10, hidden_size=6, question_size=5, grid_cells=4,
                 film_blocks=2, film_channels=3).double()
    assert net.narrow.in_channels == 12 and net.narrow.out_channels == 3
    images = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    idx, lengths = torch.tensor([1, 0, 1]), torch.tensor([2, 1, 2])
    words = torch.tensor([[3, 4], [5, 0], [3, 4]])
    got = net.eval()(images, idx, words, lengths)
    assert calls == [2]                                                  # the CNN once per image, not per question
    assert torch.equal(got[0], got[2])                                   # same image, same question, same answer
    # another question about the same image moves the answer (the question modulates the image's features)
    other = net(images, idx, torch.tensor([[6, 7], [5, 0], [3, 4]]), lengths)
    assert not torch.allclose(other[0], got[0]) and torch.equal(other[2], got[2])
    # the question reaches the answer only through gamma and beta: with their map zeroed, it no longer matters
    torch.nn.init.zeros_(net.film.film.weight), torch.nn.init.zeros_(net.film.film.bias)
    assert torch.equal(net(images, idx, words, lengths), net(images, idx, torch.tensor([[6, 7], [8, 0], [9, 4]]),
                                                               lengths))


def test_batches_group_an_images_questions():
    image_index = np.array([0, 1, 0, 2, 1, 0])
    got = batches(np.array([2, 0, 1]), image_index, 4)
    assert [b.tolist() for b in got] == [[3, 0, 2, 5], [1, 4]]


def test_csv_reader_converts_images_and_refuses_bad_rows(tmp_path):
    scene = make_split(1, 2).images[0]
    (tmp_path / "a.png").write_bytes(png(scene))
    (tmp_path / "grey.png").write_bytes(png(scene, "L"))
    (tmp_path / "rgba.png").write_bytes(png(scene, "RGBA"))
    (tmp_path / "q.csv").write_text("image,question,answer\na.png,what shape is the red object?,square\n"
                                    "grey.png,is it grey?,yes\nrgba.png,\"is it, really?\",no\na.png,and again?,yes\n")
    d = read_csv(tmp_path / "q.csv", 32)
    assert d.images.shape == (3, 32, 32, 3) and d.image_index.tolist() == [0, 1, 2, 0]
    assert d.questions[2] == "is it, really?" and d.lines == [2, 3, 4, 5]
    assert np.allclose(d.images[1][..., 0], d.images[1][..., 1])              # greyscale: three equal channels
    bad = {"image,question,answer\nmissing.png,q?,a\n": r"q.csv, line 2: image 'missing.png' not found",
           "image,question,answer\na.png,,a\n": r"q.csv, line 2: an empty question",
           "image,question,answer\na.png,q?,\n": r"q.csv, line 2: an empty answer",
           "picture,question,answer\na.png,q?,a\n": r"q.csv, line 1: header .* has no 'image' column",
           "image,question,answer\nq.csv,q?,a\n": r"q.csv, line 2: image.*expected an image file"}
    for text, message in bad.items():
        (tmp_path / "q.csv").write_text(text)
        with pytest.raises(ValueError, match=message) as err:
            read_csv(tmp_path / "q.csv", 32)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("merge", ["film", "attention"])
def test_training_learns_a_question_the_image_answers(tmp_path, merge):
    # "Is the red object on the left?" on 16x16 scenes: the question-only baseline can do no better than the
    # majority answer; the film (default) and attention merges must look at the image to beat it.
    torch.manual_seed(0)
    kw = dict(size=16, objects=2, object_size=4, kinds=["left"])
    train, val = make_split(400, 11, **kw), make_split(100, 12, **kw)
    common = dict(image_size=16, blocks=2, channels=8, hidden_size=32, question_size=8, embedding_size=8,
                  epochs=12, batch_size=16, lr=3e-3, threads=1, early_stop_patience=None)
    model = VisualQA(merge=merge, **common).fit(train, val, progress=False)
    baseline = VisualQA(merge="none", **common).fit(train, val, progress=False)
    majority = max(val.answers.count("yes"), val.answers.count("no")) / len(val)
    m, b = model.evaluate(val), baseline.evaluate(val)
    assert b["accuracy"] <= majority + 0.02
    # After 12 short epochs on this machine, against a majority of 0.54: film 1.00, attention 0.71.
    bar = 0.95 if merge == "film" else majority + 0.12
    assert m["accuracy"] >= bar and m["nonrelational_accuracy"] == m["accuracy"]
    assert m["per_kind"]["left"]["questions"] == len(val)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vqa")
    assert main(["vqa", "train", "--dry-run", "--run-dir", str(folder / "run"), "--channels", "4", "--hidden-size",
                 "8", "--question-size", "8"]) == 0
    scene = make_split(1, 5).images[0]
    (folder / "scene.png").write_bytes(png(scene))
    (folder / "rgba.png").write_bytes(png(scene, "RGBA"))
    (folder / "not.png").write_text("not an image")
    return folder


def test_cli_ask_eval_and_bad_input(run, capsys):
    capsys.readouterr()
    assert main(["vqa", "ask", str(run / "run"), str(run / "rgba.png"), "what shape is the red object?"]) == 0
    out = capsys.readouterr()
    model = VisualQA.load(run / "run")
    assert out.out.strip() in model.answers_
    assert main(["vqa", "eval", str(run / "run"), "--test-scenes", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["questions"] <= 3 * 36 and {"nonrelational_accuracy", "relational_accuracy"} <= set(report)
    for args, message in (([str(run / "not.png"), "what shape is the red object?"], "expected an image file"),
                          ([str(run / "scene.png"), "zebra giraffe"], "none of its words occurs in the training"),
                          ([str(run / "scene.png"), "  "], "expected a question in words")):
        assert main(["vqa", "ask", str(run / "run"), *args]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rnnkit: error:")]
        assert len(err) == 1 and message in err[0]


def test_apply_takes_base64_and_gives_every_answers_probability(run):
    model = VisualQA.load(run / "run")
    image = base64.b64encode((run / "scene.png").read_bytes()).decode()
    out = model.apply({"image": "data:image/png;base64," + image, "question": "what shape is the red thing?"})
    assert out["answer"] in model.answers_ and set(out["probabilities"]) == set(model.answers_)
    assert abs(sum(out["probabilities"].values()) - 1) < 1e-5 and out["unknown_words"] == ["thing"]
    with pytest.raises(ValueError, match=r"^image=.*expected an image file as base64"):
        model.apply({"image": "%%%", "question": "what shape is the red object?"})
    with pytest.raises(ValueError, match="cannot be exported to ONNX"):
        model.export_spec("onnx")
