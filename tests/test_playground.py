"""The playground page in a real headless browser (Playwright driving Debian's chromium): each page works
against a live server, shows what the models answer, and fetches nothing from anywhere else.

Skipped only where no chromium is installed (.ci/run installs it). Screenshots of each page go to a
temporary folder; RNNKIT_SCREENSHOTS=docs/screenshots writes the README's copies there instead."""

import base64
import os
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason='rnnkit serve needs its extra: pip install "rnnkit[serve]"')
pytest.importorskip("playwright", reason='the browser test needs playwright: pip install "rnnkit[test]"')
CHROMIUM = "/usr/bin/chromium"
# The one skip: a browser is a system package that pip cannot install (Playwright's own download is
# impossible here); .ci/run installs Debian's chromium, so CI runs these tests.
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)",
                allow_module_level=True)

from playwright.sync_api import expect, sync_playwright    # noqa: E402

import rnnkit                                              # noqa: E402
from rnnkit.serve.app import create_app                    # noqa: E402
from test_serve import live_server, shared_runs            # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return shared_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def base_url(runs):
    """A live server (uvicorn in a thread) on a free loopback port."""
    app = create_app([str(runs[k]) for k in ("words", "reviews", "weather", "reverse")], [str(runs["toy"])])
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def page(base_url):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.requested = []
        page.on("request", lambda request: page.requested.append(request.url))
        yield page
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("RNNKIT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_generate_page_streams_tokens_and_compares_temperatures(page, base_url, runs, shots):
    page.goto(f"{base_url}/#generate")
    expect(page.locator("#tabs a")).to_have_text(["Generate", "Classify", "Forecast", "Translate", "Word vectors"])
    page.fill("#gen-prompt", "the ")
    page.fill("#gen-max", "60")
    page.fill("#gen-seed", "5")
    page.locator("#gen-temp").fill("0.7")
    expect(page.locator("#gen-temp-value")).to_have_text("0.70")
    page.click("#gen-go")
    meta = page.locator("#gen-outputs .meta")
    expect(meta).to_contain_text("model words · 60 tokens · ended by length · seed 5", timeout=20_000)
    expected = rnnkit.load(str(runs["words"])).generate("the ", 60, temperature=0.7, seed=5)
    assert page.inner_text("#gen-outputs pre") == "the " + expected
    # Each streamed token arrived as its own text node after the prompt's <span>: 60 events, not one answer.
    assert page.evaluate("document.querySelector('#gen-outputs pre').childNodes.length") == 61

    page.fill("#gen-max", "120")
    page.click("#gen-compare")
    expect(page.locator("#gen-outputs .meta")).to_have_count(3)
    for i in range(3):
        expect(page.locator("#gen-outputs .meta").nth(i)).to_contain_text("120 tokens", timeout=20_000)
    headings = page.locator("#gen-outputs h3").all_inner_texts()
    assert headings == ["temperature 0.20", "temperature 0.50", "temperature 1.00"]
    page.screenshot(path=str(shots / "generate.png"), full_page=True)


def test_classify_page_shows_the_class_probabilities(page, base_url, runs, shots):
    page.goto(f"{base_url}/#classify")
    texts = ["a great story with music", "the plot was awful"]
    page.fill("#cls-input", "\n".join(texts))
    page.click("#cls-go")
    expect(page.locator("#cls-results .result")).to_have_count(2, timeout=10_000)
    probs = rnnkit.load(str(runs["reviews"])).predict_proba(texts)      # columns: neg, pos
    for i, result in enumerate(page.locator("#cls-results .result").all()):
        shown = dict(zip(result.locator(".bar > span:first-child").all_inner_texts(),
                         map(float, result.locator(".bar .value").all_inner_texts())))
        assert shown == pytest.approx({"neg": probs[i, 0], "pos": probs[i, 1]}, abs=6e-4)
        best = "pos" if probs[i, 1] > probs[i, 0] else "neg"
        assert result.locator(".bar.top > span:first-child").inner_text() == best
    page.screenshot(path=str(shots / "classify.png"), full_page=True)


def test_forecast_page_plots_the_past_and_the_forecast(page, base_url, runs, shots):
    page.goto(f"{base_url}/#forecast")
    page.fill("#fc-history", "72")
    page.click("#fc-go")
    expect(page.locator("#fc-plot svg circle")).to_have_count(2, timeout=10_000)      # horizon 2
    rows = rnnkit.load(str(runs["weather"])).predict()
    cells = page.locator("#fc-table td").all_inner_texts()
    assert cells == [x for r in rows for x in (r["time"], f"{r['y']:.3f}")]
    # 72 past points on the line
    points = page.get_attribute("#fc-plot svg polyline", "points").split()
    assert len(points) == 72
    page.screenshot(path=str(shots / "forecast.png"), full_page=True)


def test_translate_page_draws_the_attention_heatmap(page, base_url, runs, shots):
    page.goto(f"{base_url}/#translate")
    page.fill("#tr-input", "abc\nbca")
    page.click("#tr-go")
    expect(page.locator("#tr-results .result")).to_have_count(2, timeout=10_000)
    outputs = rnnkit.load(str(runs["reverse"])).translate(["abc", "bca"], return_attention=True, details=True)
    for result, t in zip(page.locator("#tr-results .result").all(), outputs):
        assert result.locator(".text").inner_text() == f"{t.source} → {t.text}"
        attention = np.asarray(t.hypotheses[0].attention)
        assert result.locator("rect").count() == attention.size                 # one cell per (output, source)
    page.screenshot(path=str(shots / "translate.png"), full_page=True)


def test_embeddings_page_lists_neighbours_and_shows_errors(page, base_url, shots):
    page.goto(f"{base_url}/#embeddings")
    page.fill("#emb-word", "king")
    page.fill("#emb-top", "3")
    page.click("#emb-go")
    expect(page.locator("#emb-results .bar")).to_have_count(3, timeout=10_000)
    assert page.locator("#emb-results .bar > span:first-child").all_inner_texts() == ["queen", "prince", "pear"]
    page.screenshot(path=str(shots / "embeddings.png"), full_page=True)
    page.fill("#emb-word", "kign")
    page.click("#emb-go")
    expect(page.locator("#error")).to_contain_text("word='kign': not in the vocabulary")
    expect(page.locator("#error")).to_contain_text("did you mean 'king'")


def test_the_page_fetches_nothing_from_elsewhere(page, base_url):
    assert page.requested, "the browser made no requests at all"
    outside = [url for url in page.requested if not url.startswith(base_url)]
    assert outside == []


def test_the_page_asks_for_the_api_key_and_sends_it(runs, page):
    """A server started with an API key: the page asks for it (a refused key asks again), keeps it for the tab
    and sends it with every request."""
    from rnnkit.serve import ServeConfig

    app = create_app([str(runs["reviews"])], config=ServeConfig(api_key="s3cret"))
    with live_server(app) as url:
        context = page.context.browser.new_context()        # the module's browser; a tab of its own
        page = context.new_page()
        page.goto(f"{url}/#classify")
        expect(page.locator("#key-form")).to_be_visible(timeout=10_000)
        expect(page.locator("#key-message")).to_contain_text("This server needs an API key")
        page.fill("#key-input", "wrong")
        page.click("#key-go")
        expect(page.locator("#key-message")).to_contain_text("That key was refused")
        page.fill("#key-input", "s3cret")
        page.click("#key-go")
        expect(page.locator("#key-form")).to_be_hidden()
        expect(page.locator("#tabs a")).to_have_text(["Classify"], timeout=10_000)
        page.fill("#cls-input", "a great story")
        page.click("#cls-go")
        expect(page.locator("#cls-results .result")).to_have_count(1, timeout=10_000)
        assert page.evaluate("sessionStorage.getItem('rnnkit-api-key')") == "s3cret"
        context.close()


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory):
    """A tiny captioner (digit strips) and a tiny VQA model (Sort-of-CLEVR scenes), served by a server of their own;
    yields (url, {"caption": run, "vqa": run}, {"caption": png, "vqa": png})."""
    from PIL import Image

    from rnnkit.datasets.digit_strips import digit_strips
    from rnnkit.datasets.sort_of_clevr import make_split
    from rnnkit.tasks import Captioner, VisualQA

    folder = tmp_path_factory.mktemp("images")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Captioner(train_images=32, val_images=8, test_images=4, hidden_size=8, embedding_size=8, attention_size=8,
                  encoder_channels=4, batch_size=8, epochs=2, min_steps=0).fit(
            run_dir=str(folder / "caption"), progress=False)
        VisualQA(channels=4, blocks=3, hidden_size=8, question_size=8, embedding_size=8, batch_size=12, epochs=2,
                 min_steps=0).fit(make_split(8, 7, size=32, object_size=4), make_split(2, 8, size=32, object_size=4),
                                  run_dir=str(folder / "vqa"), progress=False)
    finally:
        torch.set_num_threads(threads)
    pngs = {"caption": folder / "strip.png", "vqa": folder / "scene.png"}
    Image.fromarray((digit_strips(0, 0, 1)["test"].images[0] * 255).astype("uint8")).save(pngs["caption"])
    Image.fromarray((make_split(1, 9, size=32, object_size=4).images[0] * 255).astype("uint8")).save(pngs["vqa"])
    runs = {"caption": folder / "caption", "vqa": folder / "vqa"}
    with live_server(create_app([str(runs["caption"]), str(runs["vqa"])])) as url:
        yield url, runs, pngs


def test_caption_page_uploads_an_image_and_shows_the_caption_and_where_it_looked(page, image_runs, shots):
    from rnnkit.datasets.images import read_image

    url, runs, pngs = image_runs
    page.goto(f"{url}/#caption")
    page.set_input_files("#cap-file", str(pngs["caption"]))
    page.click("#cap-go")
    expect(page.locator("#cap-results .result")).to_have_count(1, timeout=10_000)
    model = rnnkit.load(str(runs["caption"]))
    text = model.caption(read_image(pngs["caption"]))
    shown = page.locator("#cap-results .result .text").inner_text()
    assert shown.split("   (cut")[0] == text
    # One attention map per word and one for <end>, each with a cell per place of the feature grid.
    words = len(text.split()) + 1
    expect(page.locator("#cap-results svg.attention")).to_have_count(words)
    grid = model.apply({"image": base64.b64encode(pngs["caption"].read_bytes()).decode(), "attention": True})["grid"]
    assert page.locator("#cap-results svg.attention").first.locator("rect").count() == grid[0] * grid[1]
    page.screenshot(path=str(shots / "caption.png"), full_page=True)


def test_answer_page_asks_about_an_image_and_shows_each_answers_probability(page, image_runs, shots):
    from rnnkit.datasets.images import read_image

    url, runs, pngs = image_runs
    page.goto(f"{url}/#answer")
    page.set_input_files("#vqa-file", str(pngs["vqa"]))
    page.fill("#vqa-question", "what shape is the red object?")
    page.click("#vqa-go")
    expect(page.locator("#vqa-results .result")).to_have_count(1, timeout=10_000)
    expected = rnnkit.load(str(runs["vqa"])).ask(read_image(pngs["vqa"]), "what shape is the red object?")
    result = page.locator("#vqa-results .result")
    assert result.locator(".text").inner_text() == f"what shape is the red object? → {expected['answer']}"
    shown = dict(zip(result.locator(".bar > span:first-child").all_inner_texts(),
                     map(float, result.locator(".bar .value").all_inner_texts())))
    assert shown == pytest.approx(expected["probabilities"], abs=6e-4)
    assert result.locator(".bar.top > span:first-child").inner_text() == expected["answer"]
    page.screenshot(path=str(shots / "answer.png"), full_page=True)
    # A question in none of the model's words: its one-line refusal, shown on the page.
    page.fill("#vqa-question", "zzz qqq")
    page.click("#vqa-go")
    expect(page.locator("#error")).to_contain_text("question='zzz qqq'")
