"""Bad data gets a message that names the file, the line and the value, never a misleading error, a
silent wrong answer, a raw library message or a crash for memory (issue 14, part 6).

Each test writes the file a user would have and checks the message text.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from rnnkit import datasets as D
from rnnkit.datasets import series as S
from rnnkit.datasets import windows as W
from rnnkit.datasets.ts import read_ts
from rnnkit.tasks import Forecaster
from rnnkit.datasets.long_format import read_long_csv
from rnnkit.tasks.classify.data import load_data, read_text_csv
from rnnkit.text import Tokenizer, pad_sequences


def msg(text):
    return re.escape(text)


def hourly_csv(path, n=1500, start="2013-01-01T00", edit=None):
    """An hourly CSV of ``n`` rows (line 2 holds row 0); ``edit(lines)`` may change the text lines."""
    times = np.datetime64(start) + np.arange(n).astype("timedelta64[h]")
    lines = ["time,temp"] + [f"{t}:00:00Z,{20 + np.sin(i / 5):.3f}" for i, t in enumerate(times)]
    if edit:
        edit(lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def prepare(path, **kwargs):
    return S.prepare_series(D.load_table(path), "time", ["temp"], source=str(path), **kwargs)


# ----------------------------------------------------------------------------- timestamps

@pytest.mark.parametrize("bad", ["", "NaT", "NA"])
def test_a_missing_timestamp_is_named_by_file_and_line(tmp_path, bad):
    def edit(lines):
        lines[700] = bad + "," + lines[700].split(",")[1]             # line 701 of the file
    path = hourly_csv(tmp_path / "h.csv", edit=edit)
    with pytest.raises(ValueError) as err:
        prepare(path)
    text = str(err.value)
    assert text.startswith("time_col='time': 1 row(s) with no timestamp: ")
    assert f"{path}: line 701: {bad!r}" in text
    assert "Fix or remove these rows" in text
    assert "shorter than lookback" not in text


def test_a_missing_timestamp_through_the_forecaster(tmp_path):
    def edit(lines):
        lines[5] = "," + lines[5].split(",")[1]
    path = hourly_csv(tmp_path / "h.csv", edit=edit)
    fc = Forecaster(csv=str(path), time_col="time", target=["temp"], lookback=24, delay=1)
    with pytest.raises(ValueError, match=msg(f"{path}: line 6: ''")):
        fc.fit(dry_run=True, verbose=False)


def test_unreadable_timestamps_are_all_listed_up_to_five(tmp_path):
    def edit(lines):
        for i in range(10, 17):
            lines[i] = "yesterday," + lines[i].split(",")[1]
    path = hourly_csv(tmp_path / "h.csv", n=50, edit=edit)
    with pytest.raises(ValueError) as err:
        prepare(path)
    text = str(err.value)
    assert "7 row(s) with a timestamp numpy cannot read" in text
    assert f"{path}: line 11: 'yesterday'" in text and "line 15" in text and "(and 2 more)" in text


def test_lines_survive_a_station_filter(tmp_path):
    rows = ["site,time,temp"]
    for h in range(20):
        rows.append(f"A,2021-03-01T{h:02d}:00,{h}")
        rows.append(f"B,2021-03-01T{h:02d}:00,{h}")
    rows[2 * 7 + 1] = "A,,7"                                          # line 16, a row of station A
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=msg(f"{tmp_path / 's.csv'}: line 16: ''")):
        S.prepare_series(D.load_table(tmp_path / "s.csv"), "time", ["temp"], filters=["site=A"])


def test_a_blank_step_number_is_named(tmp_path):
    (tmp_path / "steps.csv").write_text("step,temp\n1,3\n2,4\n,5\n4,6\n")
    with pytest.raises(ValueError, match=msg(f"1 row(s) with no step number: {tmp_path / 'steps.csv'}: line 4: 'nan'")):
        S.prepare_series(D.load_table(tmp_path / "steps.csv"), "step", ["temp"])


# ----------------------------------------------------------------------------- absurd grids

def test_a_typo_year_is_refused_before_resampling(tmp_path):
    def edit(lines):
        lines[17] = "2200" + lines[17][4:]                             # 2013-01-01T16 -> 2200-01-01T16
    path = hourly_csv(tmp_path / "h.csv", edit=edit)
    started = time.perf_counter()
    with pytest.raises(ValueError) as err:
        prepare(path)
    assert time.perf_counter() - started < 2                           # nothing was allocated
    text = str(err.value)
    assert text.startswith(f"{path}: the timestamps in 'time' run from '2013-01-01T00:00:00Z' to "
                           f"'2200-01-01T16:00:00Z'")
    assert "would have 1,639,217 steps for 1,500 rows" in text
    assert "(at most max(100,000, 10 x rows) = 100,000 are allowed)" in text
    assert f"to {path}: line 18: '2200-01-01T16:00:00Z'" in text
    assert "a typo in a date or a stray row?" in text and "aggregate the rows to a coarser step" in text


def test_one_second_data_with_a_row_a_century_later_is_not_killed_for_memory(tmp_path):
    def edit(lines):
        lines.append("2120-01-01T00:00:00Z,20.0")
    times = np.datetime64("2020-01-01T00:00:00") + np.arange(2000).astype("timedelta64[s]")
    lines = ["time,temp"] + [f"{t}Z,{i % 7}" for i, t in enumerate(times)]
    edit(lines)
    path = tmp_path / "sec.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as err:
        prepare(path)
    assert "one step every 1 s would have 3,155,673,601 steps for 2,001 rows" in str(err.value)
    assert f"{path}: line 2002: '2120-01-01T00:00:00Z'" in str(err.value)


def test_real_gaps_pass_and_max_steps_can_be_raised(tmp_path):
    # 100 hourly rows, then a month without data: fine under the default limit.
    def edit(lines):
        for i in range(50, 101):
            later = np.datetime64(lines[i][:13]) + np.timedelta64(720, "h")
            lines[i] = f"{later}:00:00Z,{lines[i].split(',')[1]}"
    path = hourly_csv(tmp_path / "h.csv", n=100, edit=edit)
    assert len(prepare(path)) == 820
    with pytest.raises(ValueError, match=msg("(at most max_steps=500 are allowed)")):
        prepare(path, max_steps=500)


def test_an_infinite_value_is_named(tmp_path):
    def edit(lines):
        lines[9] = lines[9].split(",")[0] + ",inf"
    path = hourly_csv(tmp_path / "h.csv", n=40, edit=edit)
    with pytest.raises(ValueError, match=msg(f"target='temp': expected finite numbers, but 1 value(s) of column "
                                             f"'temp' are infinite: {path}: line 10: inf")):
        prepare(path)


# ----------------------------------------------------------------------------- encodings

@pytest.mark.parametrize("codec, bom", [("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"),
                                        ("utf-16-be", b"\xfe\xff"), ("utf-32-le", b"\xff\xfe\x00\x00"),
                                        ("utf-32-be", b"\x00\x00\xfe\xff")])
def test_byte_order_marks_are_recognised(tmp_path, codec, bom):
    text = "text,label\r\nvoilà un café,pos\r\nnul,neg\r\n"
    path = tmp_path / "spreadsheet.csv"
    path.write_bytes(bom + text.encode(codec))
    table = D.load_table(path)
    assert list(table) == ["text", "label"] and table["text"].tolist() == ["voilà un café", "nul"]
    assert D.load_text(path).startswith("text,label\n")


def test_utf16_without_a_mark_suggests_utf16(tmp_path):
    path = tmp_path / "u16.csv"
    path.write_bytes("text,label\nhello,pos\n".encode("utf-16-le"))
    with pytest.raises(ValueError, match=msg("--encoding utf-16-le")):
        D.load_table(path)


# ----------------------------------------------------------------------------- classification files

@pytest.mark.parametrize("label", ["nan", "NaN", "inf", "-inf", "NA", "null"])
def test_missing_value_labels_are_refused(tmp_path, label):
    path = tmp_path / "reviews.csv"
    path.write_text(f"text,label\ngood film,pos\nawful,{label}\nfine,neg\n")
    with pytest.raises(ValueError, match=msg(f"{path}: line 3: label {label!r} in column 'label' marks a missing "
                                             f"value, not a class")):
        read_text_csv(path, "text", "label")


def test_a_class_named_none_is_still_a_class(tmp_path):
    path = tmp_path / "emotions.csv"
    path.write_text("text,label\nhappy day,joy\nthe bus,None\n")
    assert read_text_csv(path, "text", "label")[1].tolist() == ["joy", "None"]


def test_a_duplicate_header_is_refused(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("text,label,label\ngood,pos,neg\n")
    expected = msg(f"{path}: the header names column 'label' 2 times (fields 2, 3); expected each column name once")
    with pytest.raises(ValueError, match=expected):
        read_text_csv(path, "text", "label")
    with pytest.raises(ValueError, match=expected):
        D.load_table(path)
    assert D.load_table(path, columns=["text"])["text"].tolist() == ["good"]   # the column not used is fine
    (tmp_path / "long.csv").write_text("id,step,ax,ax,label\ns1,0,1,2,walk\n")
    with pytest.raises(ValueError, match=msg("the header names column 'ax' 2 times (fields 3, 4)")):
        read_long_csv(tmp_path / "long.csv")


def test_long_csv_refuses_inf_and_missing_labels(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("id,step,ax,label\ns1,0,1,walk\ns1,1,inf,walk\n")
    with pytest.raises(ValueError, match=msg(f"{path}: line 3, column 'ax': 'inf' is not a finite number")):
        read_long_csv(path)
    path.write_text("id,step,ax,label\ns1,0,1,walk\ns2,0,1,nan\n")
    with pytest.raises(ValueError, match=msg(f"{path}: line 3: label 'nan' in column 'label' marks a missing value")):
        read_long_csv(path)


TS = "@problemName t\n@dimensions 1\n@data\n1,2,3:a\n4,5,6:b\n"


def test_ts_refuses_inf_values_and_missing_labels(tmp_path):
    path = tmp_path / "x.ts"
    path.write_text(TS.replace("4,5,6", "4,inf,6"))
    with pytest.raises(ValueError, match=msg(f"{path}: line 5, column 'channel 1': 'inf' is not a finite number")):
        read_ts(path)
    path.write_text(TS.replace(":b", ":nan"))
    with pytest.raises(ValueError, match=msg(f"{path}: line 5: row 2 has label 'nan', which marks a missing value")):
        read_ts(path)


def test_too_few_examples_for_the_splits_is_an_rnnkit_message(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("text,label\ngood,pos\nbad,neg\n")
    with pytest.raises(ValueError) as err:
        load_data(csv_path=str(path), val_frac=0.1, test_frac=0.2)
    text = str(err.value)
    assert text == (f"val_frac=0.1, test_frac=0.2: {path} has 2 example(s), which leaves none to train on after "
                    f"1 for test and 1 for validation; expected more examples, or smaller (or zero) "
                    f"--val-frac/--test-frac")
    assert "n_samples" not in text


def test_more_classes_than_a_split_can_hold_splits_at_random(tmp_path):
    # 12 examples of 4 classes: a test part of 3 cannot hold every class; scikit-learn would refuse.
    path = tmp_path / "four.csv"
    path.write_text("text,label\n" + "".join(f"text {i},c{i % 4}\n" for i in range(12)))
    with pytest.warns(UserWarning, match=r"too few rows to split by class \(4 classes\).*--val-frac/--test-frac"):
        data = load_data(csv_path=str(path), val_frac=0.1, test_frac=0.2)
    assert (len(data.train), len(data.val), len(data.test)) == (7, 2, 3)


# ----------------------------------------------------------------------------- text pipeline and windows

def test_pad_sequences_values_out_of_range_of_the_dtype():
    with pytest.raises(ValueError, match=msg("sequences[0]=[256]: expected integers that fit dtype='uint8' "
                                             "(0 to 255)")):
        pad_sequences([[256]], dtype="uint8")
    with pytest.raises(ValueError, match=msg("sequences[0]=array([-1]): expected integers that fit dtype='uint8'")):
        pad_sequences([np.array([-1])], dtype="uint8")                 # numpy would wrap it to 255
    with pytest.raises(ValueError, match=msg("value=300: expected integers that fit dtype='uint8' (0 to 255)")):
        pad_sequences([[1]], dtype="uint8", value=300)
    assert pad_sequences([[255]], dtype="uint8").tolist() == [[255]]


def test_pad_sequences_refuses_an_array_larger_than_memory():
    with pytest.raises(ValueError) as err:
        pad_sequences([[1]], maxlen=10**12)
    assert str(err.value).startswith("maxlen=1000000000000: expected a size whose (1, 1000000000000) int32 "
                                     "array fits in memory: it would take 4.0 TB, this machine has ")


def test_texts_to_matrix_with_a_huge_num_words():
    tok = Tokenizer(num_words=10**12).fit_on_texts(["a b"])
    with pytest.raises(ValueError, match=msg("num_words=1000000000000: expected a size whose (1, 1000000000000) "
                                             "float64 array fits in memory: it would take 8.0 TB")):
        tok.texts_to_matrix(["a"])


def test_tokenizer_json_nested_too_deeply():
    with pytest.raises(ValueError, match=msg("text='" + "[" * 36 + "...: expected a Tokenizer's JSON (to_json "
                                             "output), not JSON nested too deeply to read")):
        Tokenizer.from_json("[" * 100000 + "]" * 100000)
    with pytest.raises(ValueError, match="invalid JSON"):
        Tokenizer.from_json("1" * 5000)                                # more digits than Python converts


def test_generator_target_column_out_of_range():
    gen = W.generator(np.zeros((50, 2)), 4, 1, step=1, targets=7)
    with pytest.raises(ValueError, match=msg("targets=7: expected column indices of data's 2 columns (0 to 1, "
                                             "or -2 to -1 from the end)")):
        next(gen)
    with pytest.raises(ValueError, match=msg("targets=[0, 2]: expected column indices")):
        next(W.generator(np.zeros((50, 2)), 4, 1, step=1, targets=[0, 2]))
    with pytest.raises(ValueError, match=msg("data='array of shape (50,)': expected a 2-D array")):
        next(W.generator(np.zeros(50), 4, 1, step=1))
    x, y = next(W.generator(np.arange(100.0).reshape(50, 2), 4, 1, step=1, targets=-1, batch_size=2))
    assert y.tolist() == [11.0, 13.0]                                  # column 1 of rows 5 and 6


# ----------------------------------------------------------------------------- issue 24: unclear messages

def cli_error(argv, capsys) -> str:
    from rnnkit.cli import main

    assert main([str(a) for a in argv]) == 2
    lines = [x for x in capsys.readouterr().err.splitlines() if not x.startswith("rnnkit: using ")]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_directory_given_as_corpus_is_called_a_directory(tmp_path, capsys):
    line = cli_error(["textgen", "train", "--corpus", tmp_path, "--dry-run", "--run-dir", tmp_path / "r"], capsys)
    assert line == f"rnnkit: error: corpus={str(tmp_path)!r}: is a directory; expected a file"


def test_an_empty_corpus_names_the_file(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    line = cli_error(["textgen", "train", "--corpus", tmp_path / "empty.txt", "--dry-run", "--hidden-size", "16",
                      "--run-dir", tmp_path / "r"], capsys)
    assert line.startswith(f"rnnkit: error: {tmp_path / 'empty.txt'}: the text is empty")


def test_a_run_dir_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    start = time.perf_counter()
    line = cli_error(["textgen", "train", "--corpus", tmp_path / "missing.txt", "--run-dir", tmp_path / "afile"],
                     capsys)
    assert line == f"rnnkit: error: --run-dir={tmp_path / 'afile'}: is a file; expected a folder (new or holding a run)"
    assert time.perf_counter() - start < 5


def series_csv(path, n):
    path.write_text("t,y\n" + "".join(f"{i},{np.sin(i / 5):.3f}\n" for i in range(n)))
    return path


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fc")
    fc = Forecaster(csv=str(series_csv(tmp / "s.csv", 300)), time_col="t", target=["y"], lookback=10, delay=1,
                    model="ridge")
    fc.fit(run_dir=str(tmp / "run"), dry_run=True, verbose=False)
    return tmp / "run"


def test_forecast_eval_on_a_short_file_names_the_file(forecast_run, tmp_path, capsys):
    short = series_csv(tmp_path / "short.csv", 4)
    line = cli_error(["forecast", "eval", forecast_run, "--csv", short], capsys)     # was: negative dimensions
    assert line.startswith(f"rnnkit: error: {short}: 4 rows (after resampling) is shorter than lookback + delay")
    line = cli_error(["forecast", "predict", forecast_run, "--csv", short], capsys)   # was: "data: 4 rows"
    assert line.startswith(f"rnnkit: error: {short}: 4 rows")


def test_a_header_only_series_names_the_file_and_the_column(forecast_run, tmp_path, capsys):
    header = tmp_path / "header.csv"
    header.write_text("t,y\n")
    line = cli_error(["forecast", "eval", forecast_run, "--csv", header], capsys)      # was: time_col=''
    assert line == (f"rnnkit: error: {header}: time_col='t': 0 distinct timestamp(s); expected at least two (to "
                    f"infer the series' step): a file with more rows")


def test_classify_eval_with_unknown_labels_names_the_file_in_plain_strings(tmp_path, capsys):
    from rnnkit.tasks import SequenceClassifier

    rows = [(f"{'good great' if i % 2 else 'bad awful'} film {i}", "pos" if i % 2 else "neg") for i in range(60)]
    clf = SequenceClassifier(model="bow").fit([t for t, _ in rows], [y for _, y in rows])
    clf.save(str(tmp_path / "run"))
    other = tmp_path / "other.csv"
    other.write_text("text,label\ngood film,yes\nbad film,no\n")
    line = cli_error(["classify", "eval", tmp_path / "run", "--csv", other], capsys)
    assert line == (f"rnnkit: error: {other}: label(s) 'no', 'yes' are not classes of the model in {tmp_path / 'run'}; "
                    f"expected the classes it was trained on: 'neg', 'pos'")
    assert "np.str_" not in line


def test_a_huge_hidden_size_is_refused_before_torch_allocates(tmp_path, capsys):
    line = cli_error(["textgen", "train", "--corpus", tmp_path / "missing.txt", "--hidden-size", "60000",
                      "--run-dir", tmp_path / "r"], capsys)
    assert line == "rnnkit: error: hidden_size=60000: expected an integer >= 1 and <= 8,192, or 'auto'"
    line = cli_error(["classify", "train", "--csv", tmp_path / "missing.csv", "--hidden-size", "8000",
                      "--num-layers", "4", "--run-dir", tmp_path / "r"], capsys)
    assert "hidden_size=8000, num_layers=4: about" in line and "expected at most 1 G" in line
    assert "allocate" not in line


def test_a_planted_library_in_the_sampler_cache_is_said_once(tmp_path, monkeypatch):
    import shutil
    import warnings

    from rnnkit import native as native_build
    from rnnkit.generation import native

    # The native sampler is compiled on the user's machine: without a C compiler there is no library to plant
    # (rnnkit then samples with its TorchScript loop, tested in test_textgen_native.py). CI has gcc.
    if shutil.which("cc") is None and not __import__("os").environ.get("CC"):
        pytest.skip("no C compiler")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "first"))
    monkeypatch.setattr(native_build, "_loaded", {})
    assert native.kernel_status() == "ready"
    name = next((tmp_path / "first" / "rnnkit" / "kernels").glob("lstm_sampler-*.so")).name
    cache = tmp_path / "second" / "rnnkit" / "kernels"
    cache.mkdir(mode=0o700, parents=True)
    (cache / name).write_bytes(b"not a library")                   # planted: no sha256 record beside it
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "second"))
    monkeypatch.setattr(native_build, "_loaded", {})
    monkeypatch.setattr(native_build, "_warned", False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        native.kernel_status()
        monkeypatch.setattr(native_build, "_loaded", {})                  # asked again in the same process
        native.kernel_status()
    texts = [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning)]
    assert texts == [f"refused the cached native sampler {cache / name}: {name} has no sha256 recorded beside it "
                     f"({name}.sha256): rnnkit did not build it; it is removed and built again (the TorchScript "
                     f"loop samples if that fails)"]
