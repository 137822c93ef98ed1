"""Text generation: streams, training on tiny patterns, both sampling loops, beam, end tokens, user
processors, bad input, the Task protocol (params, clone, save/load, old run directories), CLI."""

import json
import math
import re
from types import SimpleNamespace

import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.schema import rewrite_run_config
from rnnkit.tasks.base import NotFittedError
from rnnkit.tasks.textgen import task as textgen_task
from rnnkit.tasks.textgen.data import corpus_text, stream_batches, stream_loss
from rnnkit.tasks.textgen.model import LanguageModel
from rnnkit.tasks.textgen.task import TextGenConfig, TextGenerator, weights_kept
from rnnkit.text import Tokenizer
from rnnkit.training import TrainConfig, Trainer
from rnnkit.training.schedules import lr_at

TINY = dict(hidden_size=32, num_layers=1, embedding_size=8, seq_len=16, batch_size=8, max_minutes=1,
            sample_max_tokens=0, warmup_steps=0, lr=1e-2)


def random_generator(text: str, cell: str = "lstm", layers: int = 2, hidden: int = 16, seed: int = 0,
                     end_token=None) -> TextGenerator:
    """An untrained char model over the characters of ``text`` (random weights: varied distributions)."""
    torch.manual_seed(seed)
    gen = TextGenerator(TextGenConfig(cell=cell, hidden_size=hidden, num_layers=layers, embedding_size=8))
    gen.tokenizer_ = Tokenizer(char_level=True, lower=False, filters="").fit_on_texts([text])
    gen.end_token_ = end_token
    gen.model_ = LanguageModel(gen.tokenizer_.vocab_size, 8, hidden, layers, cell=cell).eval()
    with torch.no_grad():                        # sharper distributions than the default init gives
        gen.model_.head.weight.mul_(8)
    return gen


@pytest.fixture(scope="module")
def abcd_model():
    return TextGenerator(epochs=4, **TINY).fit("abcd" * 1000, progress=False)


# --- streams and losses ---------------------------------------------------------------------------------

def test_stream_batches_are_contiguous_streams():
    ids = torch.arange(101)
    batches = stream_batches(ids, batch_size=4, seq_len=10)
    assert len(batches) == 2                                          # 25 steps per stream -> 2 chunks of 10
    (x0, y0), (x1, y1) = batches
    assert x0[1].tolist() == list(range(25, 35))                      # stream 1 starts at 25
    assert x1[1].tolist() == list(range(35, 45))                      # ... and chunk 2 continues it
    assert torch.equal(y0, x0 + 1)


def test_stream_batches_too_short_names_both_sizes():
    with pytest.raises(ValueError, match=r"corpus: 50 tokens is too short for one batch of batch_size=4 x "
                                         r"seq_len=16 \(65 tokens needed\)"):
        stream_batches(torch.arange(50), batch_size=4, seq_len=16)


def test_stream_loss_of_a_uniform_model_is_log_vocab():
    model = LanguageModel(5, 4, 8, 1)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    nats, n = stream_loss(model, torch.randint(1, 5, (200,)), batch_size=3, seq_len=7)
    assert nats == pytest.approx(math.log(5), rel=1e-6)
    assert n == 3 * (199 // 3)


# --- training ---------------------------------------------------------------------------------------------

def test_learns_a_repeating_pattern(abcd_model):
    assert abcd_model.metrics_["val_loss"] < 0.1
    assert abcd_model.metrics_["val_bits_per_char"] == pytest.approx(abcd_model.metrics_["val_loss"] / math.log(2))
    assert abcd_model.generate("abcd", 12, greedy=True) == "abcdabcdabcd"
    assert abcd_model.generate("abc", 5, temperature=0) == "dabcd"     # temperature 0 means greedy


def test_progress_bar_shows_chars_per_second_and_epoch_samples(capsys):
    TextGenerator(epochs=1, log_every=5, **{**TINY, "sample_max_tokens": 8}).fit("abcd" * 600, progress=True)
    err = capsys.readouterr().err
    assert re.search(r"epoch 1/1: 100%\|.*\| step 16/16 \(100%\), loss \d\.\d{4}, \d+ chars/s", err)
    for t in (0.2, 0.5, 1.0):
        assert f"epoch 1, temperature {t} -----" in err
    assert "val_bits_per_char" in err


def test_word_level_epoch_samples_put_a_space_after_the_seed(capsys):
    text = " ".join(["red fox runs", "blue fox sleeps"] * 300)
    TextGenerator(level="word", epochs=1, sample_prompt="red fox", **{**TINY, "sample_max_tokens": 4}).fit(
        text, progress=True)
    err = capsys.readouterr().err
    sample_lines = [ln for ln in err.splitlines() if ln.startswith("red fox")]
    assert len(sample_lines) == 3                                     # one per temperature
    assert all(len(ln.split(" ")) == 2 + 4 for ln in sample_lines)    # seed words, then 4 generated words


def test_cosine_time_schedule_follows_the_clock():
    cfg = TrainConfig(lr=1.0, min_lr=0.0, schedule="cosine_time", max_minutes=10)
    assert lr_at(cfg, 5, None, time_fraction=0.0) == pytest.approx(1.0)
    assert lr_at(cfg, 5, None, time_fraction=0.5) == pytest.approx(0.5)
    assert lr_at(cfg, 5, None, time_fraction=1.2) == pytest.approx(0.0)
    # the steps end first: their progress (3/4) wins over the clock's (1/4)
    assert lr_at(cfg, 75, 100, time_fraction=0.25) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75)))
    with pytest.raises(ValueError, match="schedule='cosine_time': expected 'auto', 'constant' or 'cosine' when max_minutes"):
        TrainConfig(schedule="cosine_time")


def test_trainer_items_name_defaults_to_items():
    assert Trainer(torch.nn.Linear(1, 1), TrainConfig()).items_name == "items"


# --- sampling: fast loop == python loop -------------------------------------------------------------------

@pytest.mark.parametrize("cell,layers", [("lstm", 2), ("gru", 2), ("rnn", 1)])
@pytest.mark.parametrize("options", [{"temperature": 0.7}, {"temperature": 1.3, "top_k": 5},
                                     {"temperature": 1.0, "top_p": 0.8}, {"greedy": True}])
def test_fast_path_gives_the_same_tokens_as_the_python_loop(cell, layers, options):
    gen = random_generator("the quick brown fox jumps over the lazy dog.\n", cell=cell, layers=layers)
    fast = gen.generate("the ", 60, num_results=3, seed=5, fast=True, **options)
    plain = gen.generate("the ", 60, num_results=3, seed=5, fast=False, **options)
    assert fast == plain
    assert all(len(s) == 60 for s in fast)
    if "greedy" not in options:
        assert len(set(fast)) == 3                                    # the batch rows draw differently


def test_fast_path_in_short_calls_gives_the_same_tokens(monkeypatch):
    from rnnkit.generation import fast as textgen_fast
    gen = random_generator("the quick brown fox jumps over the lazy dog.\n", cell="gru")
    lines = random_generator("red\nblue\ngreen\n", end_token="\n")
    whole = gen.generate("the ", 60, num_results=3, seed=5, temperature=0.8)
    ended = lines.generate("", 80, num_results=6, seed=2, temperature=1.5)
    monkeypatch.setattr(textgen_fast, "CHUNK", 7)                   # 60 = 8 x 7 + 4
    assert gen.generate("the ", 60, num_results=3, seed=5, temperature=0.8) == whole
    assert lines.generate("", 80, num_results=6, seed=2, temperature=1.5) == ended
    assert ended == lines.generate("", 80, num_results=6, seed=2, temperature=1.5, fast=False)
    assert any(7 < len(s) < 80 for s in ended)                      # a row ended in a later call


def test_samples_repeat_with_a_seed_and_vary_without():
    gen = random_generator("abcdefgh ")
    assert gen.generate("a", 40, seed=1) == gen.generate("a", 40, seed=1)
    assert gen.generate("a", 40, seed=1) != gen.generate("a", 40, seed=2)


def test_fast_sampler_follows_new_weights():
    gen = random_generator("abcdefgh ")
    before = gen.generate("a", 30, greedy=True)
    with torch.no_grad():
        gen.model_.head.bias[gen.tokenizer_.word_index["h"]] += 100.0
    assert gen.generate("a", 30, greedy=True) == "h" * 30 != before


def test_end_token_ends_each_sample():
    gen = random_generator("red\nblue\ngreen\n", end_token="\n")
    for fast in (True, False):
        samples = gen.generate("", 200, temperature=1.5, num_results=20, seed=3, fast=fast)
        assert all("\n" not in s for s in samples)
        assert min(len(s) for s in samples) < 200                    # at least one sample ended early
    assert gen.generate("", 200, temperature=1.5, num_results=20, seed=3) == samples


def test_line_corpus_learns_names_and_stops_at_newline():
    names = ["red", "dark red", "blue", "light blue", "green"] * 120
    gen = TextGenerator(epochs=5, **TINY).fit(names, progress=False)
    assert gen.end_token_ == "\n"
    out = gen.generate("", 40, temperature=0.2, num_results=8, seed=0)
    assert all(s in {"red", "dark red", "blue", "light blue", "green"} for s in out)
    assert corpus_text({"names": ["a", "b"], "rgb": None}) == ("a\nb\n", True)   # the xkcd-colors dict


# --- beam search ------------------------------------------------------------------------------------------

def test_generate_with_beam(abcd_model):
    out = abcd_model.generate("ab", 6, beam=3, num_results=2)
    assert out[0] == "cdabcd"
    with pytest.raises(ValueError, match="num_results=4: expected at most beam=3"):
        abcd_model.generate("ab", 6, beam=3, num_results=4)


# --- bad input ------------------------------------------------------------------------------------------

def test_empty_corpus_is_refused():
    with pytest.raises(ValueError, match=r"corpus: the text is empty; expected at least one batch of text "
                                         r"\(batch_size=8 x seq_len=16 tokens\)"):
        TextGenerator(**TINY).fit("")


def test_non_utf8_file_names_file_offset_and_encoding(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes(("abcd" * 100 + "caf\xe9 " + "abcd" * 2000).encode("latin-1"))
    with pytest.raises(ValueError, match=rf"{path}: not valid utf-8 at byte offset 403 .*--encoding latin-1"):
        TextGenerator(corpus=str(path), **TINY).fit()
    gen = TextGenerator(corpus=str(path), encoding="latin-1", epochs=1, **TINY).fit(progress=False)
    assert "é" in gen.tokenizer_.word_index


def test_missing_corpus_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"corpus='.*nope.txt': no such file"):
        TextGenerator(corpus=str(tmp_path / "nope.txt")).fit()


def test_seed_with_unseen_characters(abcd_model):
    with pytest.raises(ValueError, match=r"prompt='abxyx': expected tokens the model saw in training; "
                                         r"unseen: 'x', 'y' \(pass unknown='drop'"):
        abcd_model.generate("abxyx", 4)
    assert abcd_model.generate("abxyx", 4, greedy=True, unknown="drop") == "cdab"
    with pytest.raises(ValueError, match="prompt='zz': expected at least one known token to start from"):
        abcd_model.generate("zz", 4, unknown="drop")
    lines = random_generator("ab\ncd\n")
    assert lines.generate("", 10, greedy=True) == lines.generate("\n", 10, greedy=True)   # starts a line


def test_greedy_and_beam_together_are_refused(abcd_model):
    with pytest.raises(ValueError, match="greedy and beam: choose one"):
        abcd_model.generate("ab", 4, temperature=0, beam=2)


def test_old_keyword_names_still_work_for_one_release_with_a_warning(abcd_model):
    new = abcd_model.generate(prompt="ab", max_tokens=12, num_results=2, seed=3, temperature=1.0)
    with pytest.warns(FutureWarning) as caught:
        old = abcd_model.generate(seed_text="ab", length=12, num_samples=2, random_seed=3, temperature=1.0)
    assert old == new
    assert sorted(str(w.message) for w in caught) == [
        f"{a} is renamed {b}; the old name goes in the next release"
        for a, b in sorted([("length", "max_tokens"), ("num_samples", "num_results"), ("random_seed", "seed"),
                            ("seed_text", "prompt")])]
    with pytest.warns(FutureWarning, match="seed_text is renamed prompt"):
        assert abcd_model.encode_seed(seed_text="ab") == abcd_model.encode_seed("ab")
    with pytest.raises(TypeError, match=r"generate\(\): seed_text='a' and prompt='b': the same setting twice"):
        abcd_model.generate(prompt="b", seed_text="a")
    with pytest.warns(FutureWarning) as caught:
        gen = TextGenerator(sample_length=7, sample_seed_text="x")
    assert (gen.config.sample_max_tokens, gen.config.sample_prompt) == (7, "x")
    assert sorted(str(w.message).split(";")[0] for w in caught) == [
        "sample_length is renamed sample_max_tokens", "sample_seed_text is renamed sample_prompt"]


def test_a_run_saved_with_the_old_sample_field_names_loads(abcd_model, tmp_path):
    abcd_model.save(tmp_path / "run")
    path = tmp_path / "run" / "config.json"
    doc = json.loads(path.read_text())
    config = doc["config"]
    config["sample_seed_text"], config["sample_length"] = config.pop("sample_prompt"), config.pop("sample_max_tokens")
    config["sample_seed_text"] = "ab"
    rewrite_run_config(RunDir(tmp_path / "run"), doc)      # an edit made on purpose: its digest recorded anew
    loaded = TextGenerator.load(tmp_path / "run")
    assert (loaded.config.sample_prompt, loaded.config.sample_max_tokens) == ("ab", 0)


def test_unfitted_generator():
    with pytest.raises(NotFittedError, match=r"^this TextGenerator is not fitted \(it has no trained model\): "
                                             r"call fit\(\.\.\.\) first, or TextGenerator\.load\(run_dir\)$"):
        TextGenerator().generate("a")
    with pytest.raises(NotFittedError, match=r"this TextGenerator is not fitted \(tokenizer_ is learned by fit"):
        TextGenerator().tokenizer_
    with pytest.raises(NotFittedError, match="not fitted"):
        TextGenerator().evaluate("abcd")


# --- saving, word level -----------------------------------------------------------------------------------

def test_save_load_round_trip(abcd_model, tmp_path):
    abcd_model.save(tmp_path / "run")
    loaded = TextGenerator.load(tmp_path / "run")
    assert loaded.config == abcd_model.config
    assert loaded.generate("ab", 30, temperature=1.0, seed=4) == abcd_model.generate(
        "ab", 30, temperature=1.0, seed=4)
    assert loaded.evaluate("abcd" * 50) == abcd_model.evaluate("abcd" * 50)


def test_load_missing_or_incomplete_run_dir(tmp_path, abcd_model):
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        TextGenerator.load(tmp_path / "absent")
    abcd_model.save(tmp_path / "run")
    (tmp_path / "run" / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"not a complete rnnkit run directory: missing tokenizer.json "
                                                r"\(it holds: config.json, final.safetensors\)"):
        TextGenerator.load(tmp_path / "run")


def test_word_level_perplexity_and_unknown_words():
    text = " ".join(["the cat sat on the mat"] * 400)
    gen = TextGenerator(level="word", epochs=2, **TINY).fit(text, progress=False)
    result = gen.evaluate("the cat sat on the mat the cat sat on the mat")
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))
    assert result["perplexity"] < 2.0
    assert gen.generate("the cat", 4, greedy=True) == "sat on the mat"
    with pytest.raises(ValueError, match=r"unseen: 'dog'"):
        gen.generate("the dog", 3)


def test_weight_averaging_is_what_fit_returns_evaluates_and_saves(tmp_path):
    text = "abcd" * 300 + "abdc" * 300
    gen = TextGenerator(epochs=2, ema_decay=0.95, **TINY).fit(text, run_dir=str(tmp_path / "run"), progress=False)
    ids = torch.tensor(gen.tokenizer_.texts_to_sequences([text])[0])
    val_ids = ids[int(len(ids) * 0.9):]                   # the held-out last 10%, as fit evaluates it
    with gen.trainer_.trained_weights() as trained:
        trained_loss = stream_loss(trained, val_ids, batch_size=16, seq_len=16)[0]
    averaged_loss = stream_loss(gen.model_, val_ids, batch_size=16, seq_len=16)[0]
    assert trained_loss != averaged_loss                  # two different sets of weights
    assert gen.metrics_["val_loss"] == pytest.approx(averaged_loss, rel=1e-6)
    for checkpoint in (None, "best", "last"):             # every file holds averages; the last one is this
        loaded = TextGenerator.load(tmp_path / "run", checkpoint=checkpoint)
        if checkpoint in (None, "last"):
            for a, b in zip(loaded.model_.parameters(), gen.model_.parameters()):
                assert torch.equal(a, b)
    assert loaded.generate("ab", 20, seed=1) == gen.generate("ab", 20, seed=1)


# --- resume and the command line ---------------------------------------------------------------------------

def test_resume_continues_a_run(tmp_path):
    run = str(tmp_path / "run")
    first = TextGenerator(epochs=1, **TINY).fit("abcd" * 1000, run_dir=run, progress=False)
    steps = first.trainer_.step
    again = TextGenerator(epochs=2, **TINY).fit("abcd" * 1000, run_dir=run, resume=True, progress=False)
    assert again.trainer_.step == 2 * steps
    assert [r["epoch"] for r in again.history_ if r["event"] == "epoch"] == [0, 1]


def test_cli_train_sample_eval(tmp_path, capsys):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcd" * 3000)
    run = str(tmp_path / "run")
    flags = ["--hidden-size", "32", "--num-layers", "1", "--embedding-size", "8", "--seq-len", "16",
             "--batch-size", "8", "--epochs", "2", "--lr", "0.01", "--sample-max-tokens", "0"]
    assert main(["textgen", "train", "--corpus", str(corpus), *flags, "--run-dir", run]) == 0
    assert "bits/char" in capsys.readouterr().out
    for name in ("config.json", "tokenizer.json", "final.safetensors", "model.safetensors", "best.safetensors",
                 "metrics.jsonl", "loss.png"):
        assert (tmp_path / "run" / name).is_file()
    assert main(["textgen", "sample", run, "--prompt", "abcd", "--max-tokens", "8", "--temperature", "0"]) == 0
    assert capsys.readouterr().out == "abcdabcdabcd\n"
    assert main(["textgen", "sample", run, "--prompt", "abcd", "--max-tokens", "8", "--greedy"]) == 0   # a flag
    assert capsys.readouterr().out == "abcdabcdabcd\n"
    assert main(["textgen", "sample", run, "--prompt", "ab", "--max-tokens", "6", "--num-results", "2",
                 "--seed", "1", "--temperature", "0.1"]) == 0
    assert capsys.readouterr().out.count("abcdabcd") == 2
    assert main(["textgen", "eval", run, "--corpus", str(corpus)]) == 0
    assert "bits/char over" in capsys.readouterr().out
    assert main(["textgen", "sample", run, "--prompt", "xy"]) == 2
    assert "unseen: 'x', 'y'" in capsys.readouterr().err
    assert main(["textgen", "sample", str(tmp_path / "nothing")]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_cli_resume_takes_a_new_budget_and_refuses_model_flags(tmp_path, capsys):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcd" * 3000)
    run = str(tmp_path / "run")
    flags = ["--hidden-size", "32", "--num-layers", "1", "--embedding-size", "8", "--seq-len", "16",
             "--batch-size", "8", "--lr", "0.01", "--sample-max-tokens", "0"]
    assert main(["textgen", "train", "--corpus", str(corpus), *flags, "--epochs", "1", "--run-dir", run]) == 0
    capsys.readouterr()
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert config["train"]["epochs"] == 1 and config["hidden_size"] == 32
    # More epochs: the run goes on from its checkpoint, and its config records the new total.
    assert main(["textgen", "train", "--run-dir", run, "--resume", "--epochs", "3"]) == 0
    assert "(epochs)" in capsys.readouterr().out
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history if r["event"] == "epoch"] == [0, 1, 2]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["train"]["epochs"] == 3
    # The model's shape is the run's own: changing it is refused in one line naming the flag, with the flags
    # that may change.
    assert main(["textgen", "train", "--run-dir", run, "--resume", "--hidden-size", "64"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("rnnkit: error: --hidden-size=64: expected no --hidden-size with --resume: the run "
                          "keeps its own config; a resumed run may change only ")
    assert "--max-minutes" in err and "--epochs" in err and "--sample-max-tokens" in err
    # The per-epoch samples only report: a resumed run may change them.
    assert main(["textgen", "train", "--run-dir", run, "--resume", "--epochs", "4", "--sample-max-tokens", "5"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["sample_max_tokens"] == 5
    # --resume is a flag that uses --run-dir: a directory with no run is named.
    assert main(["textgen", "train", "--run-dir", str(tmp_path / "none"), "--resume"]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_cli_dry_run(tmp_path, capsys):
    corpus = tmp_path / "text.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 200)
    assert main(["textgen", "train", "--corpus", str(corpus), "--dry-run", "--hidden-size", "16",
                 "--run-dir", str(tmp_path / "run"), "--sample-max-tokens", "20"]) == 0
    assert "1 steps (max_steps)" in capsys.readouterr().out


def test_device_choice_trains_there_and_samples_on_the_cpu():
    text = "abcd" * 1000
    if torch.cuda.is_available():
        gen = TextGenerator(epochs=1, device="cuda", **TINY).fit(text, progress=False)
        assert next(gen.model_.parameters()).device.type == "cuda"
        assert gen.generate("abcd", 8, greedy=True) == "abcdabcd"   # sampled from a CPU copy
        assert gen.evaluate(text)["loss"] < 0.1                      # scored where the model is
    else:
        # No GPU here: asking for one fails before any work, naming the flag and the way out.
        with pytest.raises(ValueError, match=r"device.*'cuda'.*CUDA is not available on this machine"):
            TextGenerator(epochs=1, device="cuda", **TINY).fit(text, progress=False)
    with pytest.raises(ValueError, match=r"device.*'tpu'.*one of"):
        TextGenerator(device="tpu")


# --- the Task protocol: parameters, clone, rnnkit.load, old run directories ------------------------------

def test_params_are_flat_names_and_training_options_nest():
    gen = TextGenerator(hidden_size=8, lr=0.01, val_frac=0.2)
    assert gen.config.hidden_size == 8 and gen.config.train.lr == 0.01 and gen.config.val_frac == 0.2
    assert gen.config.train.max_minutes == 15.0 and gen.config.train.schedule == "auto"    # textgen's defaults
    params = gen.get_params()
    assert params["hidden_size"] == 8 and params["lr"] == 0.01 and "train" not in params
    assert gen.set_params(epochs=3, seq_len=7) is gen
    assert (gen.config.train.epochs, gen.config.seq_len) == (3, 7)
    assert repr(gen) == "TextGenerator(hidden_size=8, seq_len=7, val_frac=0.2, epochs=3, lr=0.01)"
    with pytest.raises(ValueError, match=r"val_fraction=0.2: expected a field of TextGenConfig"):
        TextGenerator(val_fraction=0.2)                 # the one spelling is val_frac


def test_sklearn_clone_gives_equal_params():
    from sklearn.base import clone

    gen = TextGenerator(hidden_size=8, lr=0.01)
    copy = clone(gen)
    assert copy is not gen and copy.get_params() == gen.get_params()
    assert copy.config == gen.config and copy.config.train.lr == 0.01
    assert not copy.is_fitted()


def test_rnnkit_load_returns_a_text_generator(abcd_model, tmp_path):
    abcd_model.save(tmp_path / "run")
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (doc["task"], doc["format_version"]) == ("textgen", 2)
    assert doc["config"]["train"]["epochs"] == 4 and doc["fitted"] == {"end_token": None}
    assert doc["data"]["source"] == "text passed to fit" and doc["data"]["characters"] == 4000
    loaded = rnnkit.load(tmp_path / "run")
    assert type(loaded) is TextGenerator and loaded.config == abcd_model.config
    # save() wrote the finished model only: there is no Trainer checkpoint to ask for
    with pytest.warns(FutureWarning, match=r"load\(weights=\.\.\.\) is renamed checkpoint="), \
            pytest.raises(FileNotFoundError, match=r"the run has no checkpoint \(no model\.safetensors\)"):
        TextGenerator.load(tmp_path / "run", weights="last")
    assert loaded.generate("abcd", 8, greedy=True) == "abcdabcd"


def old_format(doc: dict) -> dict:
    """config.json as rnnkit wrote it before format_version 2: one flat "textgen" object."""
    cfg = doc["config"]
    flat = {k: v for k, v in cfg.items() if k not in ("train", "val_frac")}
    flat.update(val_fraction=cfg["val_frac"], **{k: cfg["train"][k] for k in (
        "batch_size", "lr", "schedule", "warmup_steps", "clip_grad_norm", "ema_decay", "epochs", "max_minutes",
        "seed", "device", "precision", "log_every")})
    return {"rnnkit_version": "0.1.0", "task": "textgen", "model": "LanguageModel", "textgen": flat,
            "end_token": doc["fitted"]["end_token"], "vocabulary": "tokenizer.json"}


def test_a_run_directory_of_the_old_format_loads_and_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    lines = ["red", "blue", "green"] * 200
    gen = TextGenerator(epochs=1, val_frac=0.2, **TINY).fit(lines, run_dir=str(run), progress=False)
    doc = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(old_format(doc)))
    for loaded in (TextGenerator.load(run), rnnkit.load(run)):
        assert type(loaded) is TextGenerator
        assert loaded.config == gen.config                               # val_fraction -> val_frac, lr -> train.lr
        assert loaded.end_token_ == "\n"
        assert loaded.generate("", 30, seed=3) == gen.generate("", 30, seed=3)
    # Fields an older version did not write take today's defaults.
    old = old_format(doc)
    del old["textgen"]["ema_decay"], old["textgen"]["precision"]
    (run / "config.json").write_text(json.dumps(old))
    assert TextGenerator.load(run).config == gen.config
    # A resumed run goes on from its checkpoint and writes the current format. (Old runs came from the CLI,
    # which read a corpus file: the same text here; an old config.json has no digest to check it against.)
    (tmp_path / "colors.txt").write_text("".join(line + "\n" for line in lines))
    old["textgen"]["corpus"] = str(tmp_path / "colors.txt")
    (run / "config.json").write_text(json.dumps(old))
    assert main(["textgen", "train", "--run-dir", str(run), "--resume", "--epochs", "2"]) == 0
    new = json.loads((run / "config.json").read_text())
    assert new["format_version"] == 2 and new["config"]["val_frac"] == 0.2 and new["config"]["train"]["epochs"] == 2
    # A config.json of no shape this version knows is refused, saying what to do.
    (run / "config.json").write_text(json.dumps({"task": "textgen", "weights": "x"}))
    with pytest.raises(ValueError, match="format_version 1, which this rnnkit cannot convert: train the run again"):
        TextGenerator.load(run)


# --- a user's own logits processors -------------------------------------------------------------------------

def test_user_processors_ban_a_token(abcd_model):
    a = abcd_model.tokenizer_.word_index["a"]
    seen = []

    def ban_a(tokens, logits):                       # (N, t), (N, V) -> a new (N, V)
        seen.append(tokens.shape)
        return logits.index_fill(1, torch.tensor([a]), -math.inf)

    assert abcd_model.generate("abcd", 12, greedy=True) == "abcdabcdabcd"
    banned = abcd_model.generate("abcd", 12, greedy=True, processors=[ban_a])
    assert len(banned) == 12 and "a" not in banned and banned.startswith("b")   # the next likeliest after d
    assert seen[0] == (1, 4) and seen[-1] == (1, 4 + 11)                          # seed, then what was chosen
    samples = abcd_model.generate("ab", 40, temperature=1.5, num_results=4, seed=0, processors=[ban_a])
    assert all(len(s) == 40 and "a" not in s for s in samples)
    # The compiled loops cannot run Python: with processors the plain loop runs, fast=True or not.
    assert samples == abcd_model.generate("ab", 40, temperature=1.5, num_results=4, seed=0,
                                          processors=[ban_a], fast=False)
    assert "a" not in abcd_model.generate("ab", 8, beam=3, processors=[ban_a])
    with pytest.raises(ValueError, match=r"processors\[0\]=3: expected a callable \(tokens, logits\) -> logits"):
        abcd_model.generate("ab", 4, processors=[3])


def test_user_processors_run_after_temperature_top_k_and_top_p():
    gen = random_generator("the quick brown fox jumps over the lazy dog.\n")
    got = []

    def record(tokens, logits):
        got.append(logits.clone())
        return logits

    gen.generate("the ", 1, temperature=0.5, top_k=3, seed=0, processors=[record])
    finite = torch.isfinite(got[0][0])
    assert int(finite.sum()) == 3                                          # after top-k
    model = gen.model_
    raw, _ = model(torch.tensor([gen.encode_seed("the ")]))
    assert torch.allclose(got[0][0][finite], raw[0, -1][finite] / 0.5)     # after the temperature


# --- models trained on a GPU sample on the CPU ---------------------------------------------------------------

def test_a_model_copied_in_inference_mode_samples():
    # A model trained on CUDA is copied to the CPU for sampling inside generate(), under inference_mode.
    # Its tensors had no version counter, and the fast sampler's cache key raised "Inference tensors do not
    # track version counter" at the first epoch's samples. Here the copy is made the same way, on the CPU.
    from rnnkit.generation.fast import compiled_sampler
    gen = random_generator("abcdefgh ", hidden=16)
    want = gen.generate("ab", 30, seed=2, fast=False)
    with torch.inference_mode():
        copy = gen._build_model()
        copy.load_state_dict(gen.model_.state_dict())
    assert next(copy.parameters()).is_inference()
    compiled_sampler(copy)                                                 # raised before
    gen.model_ = copy.eval()
    assert gen.generate("ab", 30, seed=2) == want
    with torch.inference_mode():
        copy.head.bias[gen.tokenizer_.word_index["h"]] += 100.0           # weights changed in place
    assert gen.generate("ab", 30, greedy=True) == "h" * 30                 # the sampler was rebuilt


def test_a_model_off_the_cpu_samples_from_a_cached_cpu_copy(monkeypatch):
    gen = random_generator("abcdefgh ", hidden=16)
    want = gen.generate("ab", 30, seed=2)
    monkeypatch.setattr(textgen_task, "_on_cpu", lambda model: False)     # as if model_ lived on a GPU
    assert gen.generate("ab", 30, seed=2) == want
    copy = gen._cpu_copy[1]
    assert copy is not gen.model_ and not next(copy.parameters()).is_inference()
    assert gen.generate("ab", 30, seed=2) == want and gen._cpu_copy[1] is copy     # reused
    with torch.no_grad():
        gen.model_.head.bias[gen.tokenizer_.word_index["h"]] += 100.0
    assert gen.generate("ab", 30, greedy=True) == "h" * 30                 # a new copy of the new weights
    assert gen._cpu_copy[1] is not copy


def test_sampling_in_the_middle_of_training_keeps_dropout_on():
    gen = random_generator("abcdefgh ", hidden=16)
    gen.model_.train()
    gen.generate("ab", 5, seed=0)
    assert gen.model_.training                   # generate() put the model back as it found it


# --- nothing lost: no silent overwrite or drift, Ctrl-C, damaged run files (issue 14) ------------------------

CLI_TINY = ["--hidden-size", "16", "--num-layers", "1", "--embedding-size", "8", "--seq-len", "16",
            "--batch-size", "8", "--lr", "0.01", "--sample-max-tokens", "0"]


def epochs_logged(run):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["epoch"] for r in records if r["event"] == "epoch"]


def test_cli_train_refuses_a_run_dir_that_holds_a_run_and_overwrite_replaces_it(tmp_path, capsys):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcd" * 1000)
    run = tmp_path / "run"
    assert main(["textgen", "train", "--corpus", str(corpus), *CLI_TINY, "--epochs", "1", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    before = (run / "config.json").read_text()
    # Again into the same folder (even with another model): refused in one line, the earlier run untouched.
    assert main(["textgen", "train", "--corpus", str(corpus), *CLI_TINY, "--hidden-size", "24", "--epochs", "1",
                 "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err == (f"rnnkit: error: {run}: holds an earlier textgen run, which training again would overwrite; "
                   f"expected a new folder: go on with that run with --resume (rnnkit textgen train --run-dir {run} "
                   f"--resume), choose another --run-dir, or replace it with --overwrite\n")
    assert (run / "config.json").read_text() == before and epochs_logged(run) == [0]
    assert main(["textgen", "train", "--corpus", str(corpus), "--dry-run", "--run-dir", str(run)]) == 2
    capsys.readouterr()
    # --overwrite deletes the earlier run's files first (a file of the user's stays): one run's metrics only.
    (run / "notes.txt").write_text("mine")
    assert main(["textgen", "train", "--corpus", str(corpus), *CLI_TINY, "--hidden-size", "24", "--epochs", "1",
                 "--run-dir", str(run), "--overwrite"]) == 0
    assert json.loads((run / "config.json").read_text())["config"]["hidden_size"] == 24
    assert epochs_logged(run) == [0] and (run / "notes.txt").read_text() == "mine"
    assert main(["textgen", "train", "--run-dir", str(run), "--resume", "--overwrite"]) == 2
    assert "--overwrite=True: expected no --overwrite with --resume" in capsys.readouterr().err
    # A dry run into a new folder, or an empty one, is fine.
    (tmp_path / "empty").mkdir()
    for folder in ("fresh", "empty"):
        assert main(["textgen", "train", "--corpus", str(corpus), "--dry-run", "--hidden-size", "8",
                     "--run-dir", str(tmp_path / folder)]) == 0


def test_resume_refuses_a_corpus_that_changed(tmp_path, capsys):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcd" * 1000)
    run = tmp_path / "run"
    assert main(["textgen", "train", "--corpus", str(corpus), *CLI_TINY, "--epochs", "1", "--run-dir", str(run)]) == 0
    digest = json.loads((run / "config.json").read_text())["data"]["digest"]
    assert digest.startswith("sha256:") and len(digest) == 7 + 64
    corpus.write_text("abcd" * 900 + "dcba" * 100)
    capsys.readouterr()
    assert main(["textgen", "train", "--run-dir", str(run), "--resume", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"rnnkit: error: {corpus}: the training data changed since the run in {run} began (digest "
                          f"{digest[:19]}... then, sha256:")
    assert err.endswith("now); expected the same data to resume: put the data back, or start a new run (another "
                        "--run-dir, or --overwrite)\n")
    assert epochs_logged(run) == [0]
    corpus.write_text("abcd" * 1000)                     # the same data again: the run goes on
    assert main(["textgen", "train", "--run-dir", str(run), "--resume", "--epochs", "2"]) == 0
    assert epochs_logged(run) == [0, 1]


def test_ctrl_c_exits_130_with_a_resume_command_that_works(tmp_path, capsys, ctrl_c_at_step):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcd" * 1000)
    run = tmp_path / "run"
    ctrl_c_at_step(3)
    assert main(["textgen", "train", "--corpus", str(corpus), *CLI_TINY, "--batch-size", "4", "--epochs", "2",
                 "--run-dir", str(run)]) == 130
    captured = capsys.readouterr()
    assert "validation loss" not in captured.out
    command = f"rnnkit textgen train --run-dir {run} --resume"
    assert f"resume with: {command}\n" in captured.err
    assert main(command.split()[1:]) == 0                # the printed command, as typed
    assert epochs_logged(run) == [0, 1]


def test_resume_of_a_complete_run_says_how_to_extend_it(tmp_path, capsys):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcd" * 1000)
    run = tmp_path / "run"
    assert main(["textgen", "train", "--corpus", str(corpus), *CLI_TINY, "--epochs", "1", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["textgen", "train", "--run-dir", str(run), "--resume"]) == 2
    assert capsys.readouterr().err.endswith(f"\nrnnkit: error: {run}: the run is complete: all --epochs 1 epochs "
                                            f"are trained; expected a larger budget to train on, e.g. rnnkit textgen "
                                            f"train --run-dir {run} --resume --epochs 2\n")
    assert main(["textgen", "train", "--run-dir", str(run), "--resume", "--epochs", "3", "--max-steps", "3"]) == 2
    assert ("the run is complete: its --max-steps 3 budget is used up (28 steps taken); expected a larger budget "
            f"to train on, e.g. rnnkit textgen train --run-dir {run} --resume --max-steps 56\n"
            in capsys.readouterr().err)
    # A refused resume leaves the run's config as it was; the budget the message names goes on.
    assert json.loads((run / "config.json").read_text())["config"]["train"]["max_steps"] is None
    assert main(["textgen", "train", "--run-dir", str(run), "--resume", "--epochs", "2"]) == 0


def test_damaged_or_foreign_run_files_are_one_line_errors(tmp_path, capsys):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcd\n" * 800)
    run = tmp_path / "run"
    assert main(["textgen", "train", "--corpus", str(corpus), *CLI_TINY, "--epochs", "1", "--end-token", "\\n",
                 "--run-dir", str(run)]) == 0
    capsys.readouterr()
    good = json.loads((run / "config.json").read_text())

    def with_config(doc):
        # Consistent edits (the digest recorded anew): the field checks behind the digest are what is tested.
        rewrite_run_config(RunDir(run), doc)
        assert main(["textgen", "sample", str(run), "--max-tokens", "5"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"rnnkit: error: {run / 'config.json'}: ")
        return err

    # A wrong end token is named when the run is read, not at sampling.
    err = with_config({**good, "fitted": {"end_token": 5}})
    assert "fitted.end_token=5: expected null or a token of the run's vocabulary (tokenizer.json)" in err
    err = with_config({k: v for k, v in good.items() if k != "config"})
    assert err.endswith("config.json: no 'config'; expected \"config\": {...}, the textgen run's settings as a JSON "
                        "object\n")
    assert "'config' is null; expected" in with_config({**good, "config": None})
    err = with_config({**good, "config": {**good["config"], "hidden_size": "big"}})
    assert "config.json: hidden_size='big': expected an integer >= 1" in err
    err = with_config({"task": "textgen", "textgen": None})                     # format 1, its section null
    assert "format_version 1, which this rnnkit cannot convert: train the run again" in err
    (run / "config.json").write_text(json.dumps(good))
    assert main(["textgen", "sample", str(run), "--max-tokens", "5", "--seed", "-1"]) == 2
    assert capsys.readouterr().err.startswith("rnnkit: error: seed=-1: expected an integer between 0 and ")


def test_resume_on_another_tasks_run_names_its_own_command(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "classify", "format_version": 2, "config": {}}))
    assert main(["textgen", "train", "--run-dir", str(run), "--resume"]) == 2
    assert capsys.readouterr().err == (f"rnnkit: error: {run / 'config.json'}: this run directory holds a 'classify' "
                                       f"run, expected 'textgen': resume it with its own command, rnnkit classify "
                                       f"train --run-dir {run} --resume\n")
    assert main(["textgen", "train", "--run-dir", str(run), "--dry-run"]) == 2
    assert capsys.readouterr().err == (f"rnnkit: error: {run}: holds a 'classify' run, which training again would "
                                       f"overwrite; expected a new folder: choose another --run-dir, or replace that "
                                       f"run with --overwrite\n")


# --- what validates: a file of its own, the held-out end of the corpus, or nothing ---------------------------

def test_val_file_is_the_validation_text_and_all_the_corpus_trains(tmp_path, capsys):
    corpus, val = tmp_path / "train.txt", tmp_path / "val.txt"
    corpus.write_text("abcd" * 1000)
    val.write_text("dcbaz" * 80)                   # another order (the model gets it ever more wrong); 'z' never trains
    run = tmp_path / "run"
    assert main(["textgen", "train", "--corpus", str(corpus), "--val-file", str(val), *CLI_TINY, "--epochs", "3",
                 "--run-dir", str(run)]) == 0
    out, err = capsys.readouterr()
    assert (f"31 batches of 8x16 per epoch; validation on {val}: 320 characters (80 characters the corpus lacks left "
            f"out); all the corpus trains") in err       # 4000 characters: 499 a stream, 31 chunks of 16
    doc = json.loads((run / "config.json").read_text())
    assert doc["config"]["val_file"] == str(val) and doc["data"]["source"] == f"{corpus} (validation: {val})"
    assert doc["data"]["train_tokens"] == doc["data"]["tokens"] == 4000 and doc["data"]["val_tokens"] == 320
    # The summary names the weights the run kept, as the Trainer's end report does, and its loss is theirs on val.
    kept = re.search(r"validation loss ([\d.]+) nats/char \([\d.]+ bits/char\) with the weights of epoch (\d) \(step "
                     r"(\d+)\), the best; training went on to epoch 3; 93 steps \(epochs\); run saved in ", out)
    assert kept and int(kept[3]) == 31 * int(kept[2])
    report = re.search(r"^kept the weights of epoch (\d) \(val_loss ([\d.]+)\), the best; the last epoch's val_loss "
                       r"was ([\d.]+)$", err, re.M)                     # the Trainer's end report: the same epoch
    assert report[1] == kept[2] and float(report[2]) == pytest.approx(float(kept[1]), rel=1e-3)
    assert float(report[3]) > float(report[2])
    score = TextGenerator.load(str(run)).evaluate(val.read_text())
    assert score["loss"] == pytest.approx(float(kept[1]), abs=1e-4) and score["unknown"] == 80
    # eval without --corpus scores the run's validation file
    assert main(["textgen", "eval", str(run)]) == 0
    assert capsys.readouterr().out.startswith(f"{val}: {score['loss']:.4f} nats/char")
    # the digest covers the validation text: a resumed run refuses one that changed, naming both files
    val.write_text("dcba" * 80)
    assert main(["textgen", "train", "--run-dir", str(run), "--resume", "--epochs", "4"]) == 2
    assert capsys.readouterr().err.startswith(f"rnnkit: error: {corpus} (validation: {val}): the training data "
                                              f"changed since the run in {run} began")
    # --val-frac has no meaning beside --val-file: one line, before any work
    assert main(["textgen", "train", "--corpus", str(corpus), "--val-file", str(val), "--val-frac", "0.2",
                 "--run-dir", str(tmp_path / "other")]) == 2
    assert capsys.readouterr().err == ("rnnkit: error: --val-frac=0.2: expected no --val-frac with --val-file (the "
                                       "file is the validation text and all the corpus trains)\n")
    assert not (tmp_path / "other").exists()


def test_val_frac_zero_trains_on_all_the_corpus_and_keeps_the_last_weights(tmp_path, capsys):
    corpus = tmp_path / "train.txt"
    corpus.write_text("abcd" * 1000)
    run = tmp_path / "run"
    assert main(["textgen", "train", "--corpus", str(corpus), "--val-frac", "0", *CLI_TINY, "--epochs", "3",
                 "--early-stop-patience", "1", "--run-dir", str(run)]) == 0
    out, err = capsys.readouterr()
    assert ("31 batches of 8x16 per epoch; nothing held out (val_frac=0): all the corpus trains, no validation and no "
            "early stopping; the last weights are kept") in err
    # all 3 epochs (no early stop without validation), 31 batches each
    assert re.fullmatch(rf"no validation \(val_frac=0\): the last weights \(epoch 3, step 93\) kept, training loss "
                        rf"[\d.]+ nats/char over the last epoch; 93 steps \(epochs\); run saved in {run}\n", out)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [0, 1, 2]
    assert not any("val_loss" in r for r in records)
    last = RunDir(run).load_weights(best=False)             # the finished model is the last checkpoint's weights
    for name, value in TextGenerator.load(str(run)).model_.state_dict().items():
        torch.testing.assert_close(value, last[name])
    # no held-out text to score by default: eval asks for one
    assert main(["textgen", "eval", str(run)]) == 2
    assert capsys.readouterr().err == ("rnnkit: error: --corpus=None: expected a text file to evaluate on: this run "
                                       "trained on all of its corpus (val_frac=0) and held none out\n")
    assert main(["textgen", "eval", str(run), "--corpus", str(corpus)]) == 0


def test_val_text_in_python_and_what_is_refused(tmp_path):
    gen = TextGenerator(epochs=1, **TINY).fit("abcd" * 1000, val_text=["abcd", "dcba"] * 20, progress=False)
    # a list is one item per line; the corpus has no newline, so the 40 newlines are left out of the 200 characters
    assert gen.data_["train_tokens"] == 4000 and gen.data_["val_tokens"] == 160
    assert gen.data_["source"] == "text passed to fit (validation: val_text)"
    assert gen.metrics_["val_loss"] == pytest.approx(gen.evaluate("abcd\ndcba\n" * 20)["loss"], abs=1e-5)
    val = tmp_path / "val.txt"
    val.write_text("abcd")
    with pytest.raises(ValueError, match=r"^val_text: expected None when val_file='.*val.txt' is set \(one validation "
                                         r"text, not two\)$"):
        TextGenerator(val_file=str(val), **TINY).fit("abcd" * 1000, val_text="abcd", progress=False)
    val.write_text("")
    with pytest.raises(ValueError, match=r"val.txt: the text is empty; expected a text to validate on$"):
        TextGenerator(val_file=str(val), **TINY).fit("abcd" * 1000, progress=False)
    with pytest.raises(FileNotFoundError, match=r"^val_file='.*none.txt': no such file$"):
        TextGenerator(val_file=str(tmp_path / "none.txt"), **TINY).fit("abcd" * 1000, progress=False)
    with pytest.raises(ValueError, match=r"^val_text: 0 characters of the training text's vocabulary; expected at "
                                         r"least 2 to validate on$"):
        TextGenerator(**TINY).fit("abcd" * 1000, val_text="xyz" * 10, progress=False)
    for bad in (-0.1, 0.6):
        with pytest.raises(ValueError, match=rf"^val_frac={bad}: expected"):
            TextGenerator(val_frac=bad)


def test_weights_kept_names_the_epoch_whose_weights_the_model_holds():
    history = [{"event": "epoch", "epoch": 0, "step": 10, "best": True}, {"event": "train", "step": 15},
               {"event": "epoch", "epoch": 1, "step": 20, "best": True},
               {"event": "epoch", "epoch": 2, "step": 30, "best": False}]
    trainer = SimpleNamespace(history=history, step=30, config=TrainConfig(restore_best=True))
    assert weights_kept(trainer) == "the weights of epoch 2 (step 20), the best; training went on to epoch 3"
    trainer.config = TrainConfig(restore_best=False)
    assert weights_kept(trainer) == "the last weights (epoch 3, step 30)"
    trainer.config, history[-1]["best"] = TrainConfig(restore_best=True), True
    assert weights_kept(trainer) == "the last weights (epoch 3, step 30)"


def test_defaults_give_a_short_corpus_fewer_streams(capsys):
    """The default budget is the clock (--epochs is a ceiling, patience stops a run past its best), and a short
    corpus gets fewer streams (auto_batch), so that an epoch still makes 8 updates."""
    train = TextGenConfig().train
    assert (train.epochs, train.auto_batch, train.early_stop_patience, train.max_minutes) == (100, True, 5, 15.0)
    text = "the quick brown fox jumps over the lazy dog. " * 40            # 1,800 characters
    gen = TextGenerator(hidden_size=16, num_layers=1, embedding_size=8, seq_len=20, epochs=1,
                        sample_max_tokens=0).fit(text, progress=False)
    # 1,620 training characters: 80 chunks of 20, so 10 streams (not 64) and 8 updates an epoch
    assert "batch: 10 streams, not 64 (--auto-batch: the training text holds 80 chunks of 20 characters, so an " \
           "epoch makes 8 updates; --no-auto-batch keeps --batch-size)" in capsys.readouterr().err
    assert gen.trainer_.step == 8 and gen.data_["train_tokens"] == 1620
    # without it: 64 streams of 25 characters, one update an epoch
    gen = TextGenerator(hidden_size=16, num_layers=1, embedding_size=8, seq_len=20, epochs=1, auto_batch=False,
                        sample_max_tokens=0).fit(text, progress=False)
    assert gen.trainer_.step == 1 and "1 batches of 64x20 per epoch" in capsys.readouterr().err
