"""Every file a run is loaded from has a digest recorded at save time (issue 24, "damage that stays valid JSON").

A flipped digit in a normaliser's ``std``, two swapped ids in ``tokenizer.json`` or a reversed class list read
as well as the real thing: ``load`` (and every CLI apply verb) refuses them in one line naming the file;
``rnnkit runs rehash RUN`` records the digests anew for edits made on purpose; runs written before the digests
still load; the model registry's copy of a run keeps its digests.
"""

import json
import re
import shutil

import pytest
import torch
from test_every_task import EXAMPLES, TASKS, fit

import rnnkit
from rnnkit.cli import main
from rnnkit.runs.checkpoint import RunDir
from rnnkit.runs.registry import Registry
from rnnkit.runs.rehash import rehash
from rnnkit.runs.schema import config_digest, rewrite_run_config
from rnnkit.runs.weights import load_weights, save_weights
from rnnkit.tasks.base import FINAL_WEIGHTS

# Each task's CLI apply verb on a run (the run directory goes in place of RUN).
APPLY = {"textgen": ["textgen", "sample", "RUN", "--max-tokens", "5"],
         "classify": ["classify", "predict", "RUN", "a great film"],
         "classify-multilabel": ["classify", "multilabel", "predict", "RUN"],
         "forecast": ["forecast", "predict", "RUN"],
         "seq2seq": ["seq2seq", "translate", "RUN", "abc"],
         "tag": ["tag", "tag", "RUN", "the cat sat"],
         "caption": ["caption", "describe", "RUN", "strip.png"],
         "vqa": ["vqa", "ask", "RUN", "scene.png", "what shape is the red object?"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny finished run of each task (with its example's request), fitted once for the module."""
    made = {}
    for name in TASKS:
        folder = tmp_path_factory.mktemp(name.replace("-", "_"))
        torch.manual_seed(0)
        task, data, request = EXAMPLES[name](folder)
        fit(task, data, folder / "run")
        made[name] = (folder / "run", request)
    return made


@pytest.fixture
def copy_of(runs, tmp_path):
    def copy(name):
        run, request = runs[name]
        # (forecast reads its training CSV by its path in config.json: it stays where it is)
        return shutil.copytree(run, tmp_path / "run"), request
    return copy


def edit_json(path, edit):
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def flip_digit(value: float) -> float:
    """The number with one digit of its text changed: damage that stays a valid number."""
    text = repr(float(value))
    i = next(i for i, c in enumerate(text) if c.isdigit() and c != "0")
    return float(text[:i] + str((int(text[i]) % 9) + 1 if text[i] != "9" else 1) + text[i + 1:])


def swap_two_ids(doc) -> None:
    """Two tokens of tokenizer.json trade their ids: textgen and classify's Tokenizer ("word_index": token
    -> id), seq2seq's source vocabulary ("tokens": the list of ids' tokens)."""
    if "word_index" in doc:
        index = doc["word_index"]
        a, b = list(index)[-2:]
        index[a], index[b] = index[b], index[a]
    else:
        tokens = doc["source"]["tokens"]
        tokens[-2], tokens[-1] = tokens[-1], tokens[-2]


def fitted_edit(name):
    """(file, edit) per task: damage that stays valid JSON in a value the loaded model uses."""
    if name in ("forecast", "classify-multilabel"):
        return "config.json", lambda d: d["fitted"]["std"].__setitem__(0, flip_digit(d["fitted"]["std"][0]))
    if name == "classify":
        return "config.json", lambda d: d["fitted"]["classes"].reverse()
    if name == "tag":
        return "vocab.json", lambda d: d["tags"].reverse()       # every predicted tag renamed
    return "tokenizer.json", swap_two_ids


def assert_refused_naming(err: str, path, run) -> None:
    assert "\n" not in err.strip()
    assert err.startswith(f"{path}: its content changed since the run was saved (sha256 ")
    assert err.endswith(f"; expected the file as rnnkit wrote it: put it back, or if you edited it on purpose, run "
                        f"`rnnkit runs rehash {run}`")


@pytest.mark.parametrize("name", TASKS)
def test_an_edited_run_file_is_refused_naming_it_until_rehashed(name, copy_of, capsys):
    run, request = copy_of(name)
    answer = rnnkit.load(str(run)).apply(request)
    file, edit = fitted_edit(name)
    edit_json(run / file, edit)
    with pytest.raises(ValueError) as err:
        rnnkit.load(str(run))
    assert_refused_naming(str(err.value), run / file, run)
    # The CLI's apply verb: one line, the same words.
    capsys.readouterr()
    assert main([str(run) if a == "RUN" else a for a in APPLY[name]]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rnnkit: error: ")]
    assert len(errors) == 1         # (a line about CPU threads may come before it, on a busy machine)
    assert_refused_naming(errors[0].removeprefix("rnnkit: error: "), run / file, run)
    # Loaded on purpose as it is now; then rehashed, it loads, and the edit takes effect.
    edited = rnnkit.load(str(run), trust_edits=True)
    assert main(["runs", "rehash", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"{run / file}: " in out and out.rstrip().endswith("digests re-recorded; the run loads as its files "
                                                              "are now")
    assert rnnkit.load(str(run)).apply(request) == edited.apply(request)
    if name == "classify":      # a reversed class list inverts every label: what the digest is there for
        assert edited.apply(request) != answer
    assert main(["runs", "rehash", str(run)]) == 0
    assert "nothing changed" in capsys.readouterr().out


@pytest.mark.parametrize("name", TASKS)
def test_any_changed_value_in_config_json_is_refused(name, copy_of):
    run, _ = copy_of(name)
    edit_json(run / "config.json", lambda d: d["data"].update(extra=1))
    with pytest.raises(ValueError, match=r"config\.json: its content changed since the run was saved"):
        rnnkit.load(str(run))
    # Formatting is not content: the file re-indented by hand still loads.
    doc = json.loads((run / "config.json").read_text())
    del doc["data"]["extra"]
    (run / "config.json").write_text(json.dumps(doc, indent=7, sort_keys=True))
    rnnkit.load(str(run))


@pytest.mark.parametrize("name", TASKS)
def test_a_run_written_before_digests_still_loads(name, copy_of):
    run, request = copy_of(name)
    answer = rnnkit.load(str(run)).apply(request)
    edit_json(run / "config.json", lambda d: [d.pop("digest"), d.pop("files")])
    assert rnnkit.load(str(run)).apply(request) == answer
    # rehash gives it digests.
    assert f"{run / 'config.json'}: " in "\n".join(rehash(run))
    doc = json.loads((run / "config.json").read_text())
    assert doc["digest"] == config_digest(doc) and set(doc["files"]) >= {FINAL_WEIGHTS}


def test_save_records_the_weights_and_each_side_file(runs):
    for name, (run, _) in runs.items():
        files = json.loads((run / "config.json").read_text())["files"]
        side = {"textgen": {"tokenizer.json"}, "classify": {"tokenizer.json"}, "seq2seq": {"tokenizer.json"},
                "tag": {"vocab.json"}, "caption": {"tokenizer.json"},
                "vqa": {"tokenizer.json"}}
        assert set(files) == {FINAL_WEIGHTS} | side.get(name, set()), name


def test_weights_replaced_by_another_valid_file_are_refused(copy_of):
    # A valid safetensors file with its own data digest: only the digest in config.json tells.
    run, _ = copy_of("textgen")
    tensors = load_weights(run / FINAL_WEIGHTS)
    key = next(iter(tensors))
    save_weights(run / FINAL_WEIGHTS, {**tensors, key: tensors[key] + 1e-3})
    with pytest.raises(ValueError, match=rf"^{run / FINAL_WEIGHTS}: its content changed since the run was saved"):
        rnnkit.load(str(run))
    rnnkit.load(str(run), checkpoint="last")     # the checkpoint is its own file, checked by checkpoint.json


def test_a_damaged_digest_says_what_is_damaged(copy_of):
    run, _ = copy_of("textgen")
    edit_json(run / "config.json", lambda d: d.update(digest="sha256:not-hex"))
    with pytest.raises(ValueError, match=r"config\.json: damaged: its recorded digest \('digest'\) is "
                                         r"\"sha256:not-hex\", not a sha256 digest"):
        rnnkit.load(str(run))
    # The file digests damaged (config.json's own digest recorded anew, so that only they are wrong):
    for files, shown in [({"tokenizer.json": 5}, '"tokenizer.json": 5'), ("x", '"x"'),
                         ({"../config.json": "sha256:" + "0" * 64}, '"../config.json"')]:   # never outside RUN
        rewrite_run_config(RunDir(run), {**json.loads((run / "config.json").read_text()), "files": files})
        with pytest.raises(ValueError, match=r"config\.json: damaged: its recorded file digests \('files'\) "
                                             + ("is " if files == "x" else "has ") + re.escape(shown)):
            rnnkit.load(str(run))


def test_a_mangled_data_digest_is_not_reported_as_changed_data(copy_of):
    run, _ = copy_of("textgen")
    from test_every_task import CORPUS, textgen
    good = json.loads((run / "config.json").read_text())
    # Mangled by hand: config.json's own digest names it.
    edit_json(run / "config.json", lambda d: d["data"].update(digest="sha256:12ab"))
    task, _, _ = textgen(run)
    with pytest.raises(ValueError, match=r"config\.json: its content changed since the run was saved"):
        fit(task, (CORPUS,), run, resume=True)
    # Mangled and its digest recorded anew (or a run of before the digests): the data digest itself is named.
    rewrite_run_config(RunDir(run), {**good, "data": {**good["data"], "digest": "sha256:12ab"}})
    with pytest.raises(ValueError, match=r"config\.json: damaged: its recorded data digest \(data\.digest\) is "
                                         r"'sha256:12ab', not a sha256 digest"):
        fit(task, (CORPUS,), run, resume=True)


def test_rehash_refuses_an_edit_that_breaks_the_run(copy_of, capsys):
    run, _ = copy_of("textgen")
    before = (run / "config.json").read_bytes()
    edit_json(run / "config.json", lambda d: d["fitted"].update(end_token=5))
    assert main(["runs", "rehash", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fitted.end_token=5: expected null or a token" in err
    edit_json(run / "config.json", lambda d: d["fitted"].update(end_token=json.loads(before)["fitted"]["end_token"]))
    assert main(["runs", "rehash", str(tmp := run / "nothing")]) == 2
    assert f"{tmp}: no such run directory" in capsys.readouterr().err


def test_a_registered_copy_keeps_its_digests(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNNKIT_MODELS", str(tmp_path / "models"))
    run, request = runs["classify"]
    assert main(["models", "register", str(run), "imdb"]) == 0
    version = Registry().resolve("imdb@1")
    assert rnnkit.load(str(version.path)).apply(request) == rnnkit.load(str(run)).apply(request)
    # An edited run is not registered: the registry's check names the file.
    edited = shutil.copytree(run, tmp_path / "edited")
    edit_json(edited / "config.json", lambda d: d["fitted"]["classes"].reverse())
    capsys.readouterr()
    assert main(["models", "register", str(edited), "imdb"]) == 2
    assert "config.json: its content changed since the run was saved" in capsys.readouterr().err
