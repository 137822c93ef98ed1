"""Image captioning: the decoders' numbers (the layer's loop against step-by-step generation, the attention and the
doubly stochastic regulariser), decoding (greedy, beam, sampling, the cap on a caption that never ends), BLEU on
the 0-100 scale, the word map checked against the checkpoint, the CLI verbs, a user's photo folder and bad
images, the uniform apply with a base64 image, and the export refusal."""

import base64
import io
import json
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

import rnnkit
from rnnkit.cli import main
from rnnkit.datasets.images import decode_image_field
from rnnkit.datasets.digit_strips import digit_strips
from rnnkit.export import export
from rnnkit.nn.vision import SmallCNN
from rnnkit.tasks.base import ExportRefused
from rnnkit.tasks.caption.data import END, PAD, Vocab, caption_words, image_tensor, make_batch
from rnnkit.tasks.caption.model import CaptionNet
from rnnkit.tasks.caption.task import BLEU_SCALE, Captioner, _bleu

SMALL = dict(hidden_size=16, embedding_size=8, attention_size=8, encoder_channels=8, batch_size=8, epochs=1,
             min_steps=0, doubly_stochastic=1.0)


def png_bytes(array, mode="RGB"):
    image = Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8))
    if mode != "RGB":
        image = image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def strips():
    return digit_strips(48, 8, 6, seed=0)


@pytest.fixture(scope="module")
def run(strips, tmp_path_factory):
    """A tiny show-attend-tell run on digit strips (a few steps: the numbers, not the quality, are tested)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("caption") / "run"
    cap = Captioner(**SMALL, max_steps=3).fit(strips["train"], strips["val"], test_data=strips["test"],
                                              run_dir=str(folder), progress=False)
    return cap, folder


def net(model, vocab=9, grid=(2, 3), channels=4, seed=0):
    torch.manual_seed(seed)
    return CaptionNet(SmallCNN(channels=channels, blocks=1), vocab, grid, channels, model, "lstm", 5, 6, 7,
                      0.0).eval()


@pytest.mark.parametrize("model", ["show-attend-tell", "show-tell"])
def test_the_training_loop_and_step_by_step_generation_give_the_same_numbers(model):
    m = net(model)
    grid = torch.randn(3, 4, 2, 3)
    seqs = [[4, 5, 6], [7], [8, 4]]
    _, tokens_in, tokens_out, lengths = make_batch(np.arange(3), seqs)
    with torch.no_grad():
        logits, alpha_sum = m(grid, tokens_in, lengths)                   # the layer's one loop (fused for show-tell)
        state, memory = m.start(grid)
        steps, alphas = [], []
        for t in range(tokens_in.shape[1]):
            out, state, alpha = m.step(tokens_in[:, t], state, memory)
            steps.append(out[:, 3:])
            alphas.append(alpha)
    stepped = torch.stack(steps, 1)
    valid = tokens_out != PAD
    assert torch.allclose(logits[..., 3:][valid], stepped[valid], atol=1e-5)
    if model == "show-tell":
        assert alpha_sum is None and alphas[0] is None
        return
    # Each annotation vector carries its grid place (row, column in [-1, 1]), so "left of" can be told.
    places = m._annotations(grid)[1, :, -2:]
    assert torch.equal(places, torch.tensor([[-1., -1.], [-1., 0.], [-1., 1.], [1., -1.], [1., 0.], [1., 1.]]))
    alphas = torch.stack(alphas, 1)                                       # (B, T, S)
    assert torch.allclose(alphas.sum(-1), torch.ones(3, 4), atol=1e-6)    # a distribution over the 6 cells
    # The state's running sum stops at each caption's own length (padding adds no attention).
    expected = torch.stack([alphas[b, :lengths[b]].sum(0) for b in range(3)])
    assert torch.allclose(alpha_sum, expected, atol=1e-6)


def test_the_loss_is_cross_entropy_plus_the_doubly_stochastic_regulariser(run, strips):
    cap, _ = run
    model = cap.model_
    batch = make_batch(np.arange(4), [cap.vocab_.encode(c[0]) for c in strips["train"].captions[:4]])
    prepared = type("P", (), {"train_x": image_tensor(strips["train"].images[:4])})()
    model.eval()
    with torch.no_grad():
        loss, _, n = cap._loss(prepared, model, batch, None)
        grids = model.features(prepared.train_x.float() / 255)
        logits, alpha_sum = model(grids, batch[1], batch[3])
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch[2].flatten(), ignore_index=0)
    reg = ((1 - alpha_sum) ** 2).mean()
    assert n == 4 and reg > 0
    assert cap.config.doubly_stochastic == 1.0
    assert float(loss) == pytest.approx(float(ce + reg), rel=1e-5)


def test_greedy_beam_and_sampling_decode_and_beam_1_is_greedy(run, strips):
    cap, _ = run
    images = list(strips["test"].images[:4])
    greedy = cap.caption(images)
    assert cap.caption(images, beam=1) == greedy
    beam = cap.caption(images, beam=3, details=True)
    again = cap.caption(images, beam=3, details=True)
    assert [c.text for c in beam] == [c.text for c in again] and all(math.isfinite(c.log_prob) for c in beam)
    # Beam 3 finds captions at least as likely as greedy's (log-probabilities of the same model).
    best = cap.caption(images, details=True)
    assert all(b.log_prob >= g.log_prob - 1e-9 for b, g in zip(beam, best))
    one = cap.caption(images, greedy=False, seed=5, temperature=1.5)
    assert one == cap.caption(images, greedy=False, seed=5, temperature=1.5)
    with pytest.raises(ValueError, match="greedy=False \\(sampling\\) and beam: choose one"):
        cap.caption(images, beam=2, greedy=False)


def test_a_caption_that_never_writes_end_stops_at_the_cap_and_says_so(run, strips, capsys, tmp_path):
    cap, folder = run
    with torch.no_grad():
        cap.model_.never[END] = -math.inf                  # a model that never learned to stop
    try:
        c = cap.caption(strips["test"].images[0], details=True)
        limit = 2 * cap.max_caption_words_ + 5
        assert cap.cap_words() == limit and len(c.words) == limit and c.capped
        short = cap.caption(strips["test"].images[0], max_tokens=3, beam=2, details=True)
        assert len(short.words) == 3 and short.capped
        assert cap.evaluate(strips["test"])["capped"] == len(strips["test"].ids)
    finally:
        cap.model_.never[END] = 0.0
    # Saved with <end> out of reach, the CLI says that the caption was cut.
    with torch.no_grad():
        cap.model_.head.bias[END] -= 1e4
    try:
        cap.save(tmp_path / "endless")
    finally:
        with torch.no_grad():
            cap.model_.head.bias[END] += 1e4
    image = tmp_path / "strip.png"
    image.write_bytes(png_bytes(strips["test"].images[0]))
    assert main(["caption", "describe", str(tmp_path / "endless"), str(image), "--max-tokens", "4"]) == 0
    out, err = capsys.readouterr()
    assert len(out.split()) == 4
    assert f"{image}: the caption reached the cap of 4 words without writing <end>, and was cut there" in err


def test_bleu_is_on_the_0_to_100_scale_and_says_so(run, strips, monkeypatch):
    refs = [["four two seven", "four two"], ["one one one"]]
    perfect = _bleu(["four two seven", "one one one"], refs)
    assert list(perfect) == ["bleu1", "bleu2", "bleu3", "bleu4"]
    assert all(v == pytest.approx(100.0) for v in perfect.values())      # 100, not 1: the 0-100 scale
    assert _bleu(["seven"], [["four two seven"]])["bleu1"] == pytest.approx(100 * math.exp(1 - 3))   # brevity
    cap, _ = run
    test = strips["test"]
    monkeypatch.setattr(Captioner, "caption", lambda self, images, **kw: [
        type("C", (), {"text": " ".join(caption_words(c[0])), "capped": False})() for c in test.captions])
    m = cap.evaluate(test)
    assert m["bleu4"] == pytest.approx(100.0) and m["exact_match"] == 1.0 and m["bleu_scale"] == BLEU_SCALE
    assert "0-100" in m["bleu_scale"] and "not 1.0" in m["bleu_scale"]


def test_a_word_map_that_does_not_match_the_checkpoint_is_refused(run, tmp_path):
    import shutil

    cap, folder = run
    copy = shutil.copytree(folder, tmp_path / "copy")
    doc = json.loads((copy / "tokenizer.json").read_text())
    index = doc["word_index"]
    a, b = list(index)[-2:]
    index[a], index[b] = index[b], index[a]                  # two words trade ids: every output would lie
    (copy / "tokenizer.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"tokenizer\.json: its content changed since the run was saved"):
        Captioner.load(copy)
    # Another run's (smaller) word map, even trusted on purpose, does not fit the weights.
    index.pop(a)
    doc["word_index"] = {w: i for i, w in enumerate(sorted(index, key=index.get))}
    (copy / "tokenizer.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"tokenizer\.json: \d+ words; expected the \d+ of the vocabulary the model "
                                         r"was trained with"):
        Captioner.load(copy, trust_edits=True)
    assert Vocab.from_dict(Vocab(["<pad>", "<unk>", "<start>", "<end>", "x"]).to_dict(), "v").itos[4] == "x"


def test_save_load_and_the_uniform_apply_with_a_base64_image(run, strips):
    cap, folder = run
    loaded = rnnkit.load(str(folder))
    image = strips["test"].images[1]
    data = base64.b64encode(png_bytes(image)).decode()
    answer = loaded.apply({"image": data, "attention": True})
    assert answer["caption"] == cap.caption(image) == " ".join(answer["words"])
    steps = np.asarray(answer["attention"])
    assert steps.shape == (len(answer["words"]) + 1, *cap.grid_) and answer["grid"] == [1, 6]
    assert np.allclose(steps.sum((1, 2)), 1.0, atol=1e-3)
    assert loaded.apply({"image": "data:image/png;base64," + data}) == {k: v for k, v in answer.items()
                                                                        if k != "attention"}
    with pytest.raises(ValueError, match=r"^image='not base64!': expected an image file as base64"):
        decode_image_field("not base64!")
    with pytest.raises(ValueError, match=r"^image='<24 bytes>': expected an image file"):
        loaded.apply({"image": base64.b64encode(b"plain text, not an image").decode()})
    with pytest.raises(ExportRefused, match=r"^a caption run \(a CNN image encoder and a recurrent decoder\): cannot "
                                            r"be exported to ONNX: "):
        export(loaded, folder / "x.onnx", format="onnx")


def test_images_of_any_mode_and_size_are_fitted_to_the_training_size(run, strips, tmp_path):
    cap, _ = run
    strip = strips["test"].images[2]
    expected = cap.caption(strip)
    for mode in ("L", "RGBA", "P"):
        path = tmp_path / f"strip-{mode}.png"
        path.write_bytes(png_bytes(strip, mode))
        assert isinstance(cap.caption(str(path)), str)
    assert cap.caption(png_bytes(strip)) == expected
    big = np.kron(strip, np.ones((10, 10, 1), np.float32))               # 80 x 480: scaled back to 8 x 48
    assert cap._image(big, "big").shape == (8, 48, 3)
    assert cap._image(np.ones((1, 1, 3), np.float32), "tiny").shape == (8, 48, 3)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"notes\.png"):
        cap.caption(str(tmp_path / "notes.png"))
    full = png_bytes(strip)
    (tmp_path / "cut.png").write_bytes(full[:len(full) // 2])
    with pytest.raises(ValueError, match=r"cut\.png"):
        cap.caption(str(tmp_path / "cut.png"))


def photo_folder(folder, n=12, bad=None):
    """A small Flickr8k-layout folder: coloured photos, two captions each (and a bad line on request)."""
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True)
    lines = []
    for i in range(n):
        colour = ["red", "green", "blue"][i % 3]
        image = np.zeros((20 + i, 30, 3), np.float32)
        image[..., i % 3] = 1.0
        image += rng.uniform(0, 0.2, image.shape).astype(np.float32)
        (folder / "img" / f"p{i}.jpg").write_bytes(png_bytes(image))
        lines += [f"p{i}.jpg#0\tA {colour} picture.", f"p{i}.jpg#1\tsomething {colour}"]
    if bad == "missing":
        lines.insert(5, "nothere.jpg#0\ta ghost")
    if bad == "empty":
        lines.insert(3, "p1.jpg#2\t")
    (folder / "captions.txt").write_text("\n".join(lines) + "\n")
    return folder / "img", folder / "captions.txt"


def test_cli_train_describe_eval_on_a_photo_folder(tmp_path, capsys):
    images, captions = photo_folder(tmp_path)
    run = tmp_path / "run"
    assert main(["caption", "train", "--images", str(images), "--captions", str(captions), "--image-size", "16",
                 "--val-frac", "0.3", "--test-frac", "0.2", "--hidden-size", "16", "--embedding-size", "8",
                 "--encoder-channels", "8", "--max-steps", "2", "--run-dir", str(run), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "(sacrebleu, 0-100 scale)" in out and json.loads((run / "config.json").read_text())["finished"]
    png = tmp_path / "att.png"
    assert main(["caption", "describe", str(run), str(images / "p0.jpg"), "--beam", "3", "--attention-png",
                 str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["caption", "eval", str(run), "--split", "val"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= report["bleu4"] <= 100.0 and report["bleu_scale"] == BLEU_SCALE
    assert main(["caption", "eval", str(run), "--split", "compositional"]) == 2
    assert "--split='compositional'" in capsys.readouterr().err


@pytest.mark.parametrize("bad, where", [("missing", r"line 6"), ("empty", r"line 4")])
def test_a_captions_file_naming_a_missing_image_or_an_empty_caption_is_refused_with_its_line(tmp_path, capsys, bad,
                                                                                              where):
    images, captions = photo_folder(tmp_path, bad=bad)
    assert main(["caption", "train", "--images", str(images), "--captions", str(captions), "--dry-run",
                 "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("rnnkit: error: ") and str(captions) in err and re.search(where, err), err


def test_dry_run_of_each_decoder_and_scenes(tmp_path, capsys):
    for model, dataset in (("show-tell", "digit-strips"), ("show-attend-tell", "scenes")):
        run = tmp_path / model
        assert main(["caption", "train", "--dataset", dataset, "--model", model, "--train-images", "40",
                     "--val-images", "8", "--test-images", "8", "--hidden-size", "16", "--encoder-channels", "8",
                     "--dry-run", "--run-dir", str(run)]) == 0
        out = capsys.readouterr().out
        assert "test (" in out and (("compositional (" in out) == (dataset == "scenes"))
    assert main(["caption", "describe", str(tmp_path / "show-tell"), "x.png", "--attention-png", "a.png"]) == 2
    assert "--attention-png='a.png': expected a show-attend-tell run" in capsys.readouterr().err

